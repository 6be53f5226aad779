/**
 * A process stopped and continued (Ctrl-Z then `fg`, SIGSTOP/SIGCONT, a cgroup freeze) while
 * operations wait in the kernel's io-wq workers: those blocked on a pipe or a FIFO are interrupted
 * (EINTR, having done nothing), where a plain system call would be restarted. The `Uring` issues
 * them again: a splice from an empty pipe rejected with EINTR, and an open of a FIFO for reading
 * never came through when its writer opened (only once the writer wrote).
 */

import assert from "node:assert/strict";
import { skipKernel, tempDir } from "./_support.ts";
import { sleep } from "./uring_support.ts";

const MOD = JSON.stringify(new URL("../mod.ts", import.meta.url).href);
const IO = JSON.stringify(new URL("./_io.ts", import.meta.url).href);

/** The child: waits in the kernel, prints "waiting", then after 1.5 s gives what it waits for. */
const CHILD = `
import { Uring } from ${MOD};
import { mkfifo, pipe, sysWrite } from ${IO};
const [what, sqpoll, dir] = Deno.args;
const uring = new Uring({ entries: 8, sqpoll: sqpoll === "true" });
const settle = (p) => p.then((v) => "ok " + v, (e) => e.name + " " + e.code);
let result;
if (what === "splice") {
  const [r, w] = pipe();
  const dst = await uring.open(dir + "/out", { write: true, create: true });
  const spliced = settle(uring.splice(r, -1, dst.fd, 0, 4096));
  console.log("waiting");
  await new Promise((res) => setTimeout(res, 1500));
  sysWrite(w, new TextEncoder().encode("hello"));
  result = await spliced;
  await dst.close();
} else {
  mkfifo(dir + "/fifo");
  const opened = settle(uring.open(dir + "/fifo", { read: true }).then(async (f) => (await f.close(), "file")));
  console.log("waiting");
  await new Promise((res) => setTimeout(res, 1500));
  const writer = await Deno.open(dir + "/fifo", { write: true }); // waits for the reader: it is there
  result = await Promise.race([opened, new Promise((res) => setTimeout(() => res("still pending 2 s after the writer opened"), 2000))]);
  await writer.write(new Uint8Array([1])).catch(() => {}); // (lets an open still waiting through)
  writer.close();
  await opened;
}
console.log(result);
await uring.close();
`;

for (const what of ["splice", "fifo open"] as const) {
  for (const sqpoll of [false, true]) {
    Deno.test({
      name: `Uring: a ${what} waiting in the kernel while the process is stopped and continued goes on [${
        sqpoll ? "sqpoll" : "nosqpoll"
      }]`,
      ignore: skipKernel(),
      async fn() {
        using dir = tempDir();
        const script = `${dir.path}/child.ts`;
        Deno.writeTextFileSync(script, CHILD);
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--quiet",
            "--allow-all",
            script,
            what === "splice" ? "splice" : "fifo",
            String(sqpoll),
            dir.path,
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(child.stderr).text();
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let out = "";
        try {
          while (!out.includes("waiting")) {
            const { value, done } = await reader.read();
            if (done) break;
            out += value;
          }
          await sleep(300); // in the kernel by now
          child.kill("SIGSTOP");
          await sleep(100);
          child.kill("SIGCONT");
          const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            out += value;
          }
          clearTimeout(timer);
          const status = await child.status;
          assert.ok(status.success, `child: ${out} ${await stderr}`);
          const result = out.trim().split("\n").at(-1);
          assert.equal(result, what === "splice" ? "ok 5" : "ok file", `${out}`);
        } finally {
          try {
            child.kill("SIGKILL");
          } catch { /* ended */ }
          await child.status;
          reader.releaseLock();
        }
      },
    });
  }
}

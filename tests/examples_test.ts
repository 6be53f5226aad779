/**
 * The scripts in `examples/` run as the README and their own comments say: each is started as
 * its own `deno run` process, with small arguments.
 */
import assert from "node:assert/strict";
import { skipKernel, tempDir } from "./_support.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const FLAGS = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"];

/** `deno run FLAGS examples/NAME ARGS` with `TMPDIR` set to `tmp`; its status and output. */
async function runExample(name: string, args: string[], tmp: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, `${ROOT}examples/${name}`, ...args],
    env: { TMPDIR: tmp, NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The rows of a markdown table in `text`, as cells, without the header and the rule. */
function tableRows(text: string): string[][] {
  return text.split("\n")
    .filter((line) => line.startsWith("| ") && !line.startsWith("| mode "))
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim()));
}

Deno.test({
  name: "examples/zero_syscall.ts: both modes do OPS reads; enters by reason add up; no file left",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const r = await runExample("zero_syscall.ts", ["3000"], tmp.path);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3000 reads of 4096 bytes, 32 in flight/);
    const rows = tableRows(r.stdout);
    assert.equal(rows.length, 2, r.stdout);
    const [sqpoll, plain] = rows;
    assert.match(sqpoll[0], /^SQPOLL/);
    assert.equal(plain[0], "no SQPOLL");
    for (const [, ops, submit, wakeup, wait, total] of rows) {
      assert.equal(ops, "3000");
      assert.equal(Number(submit) + Number(wakeup) + Number(wait), Number(total));
    }
    // Without SQPOLL every submission is an enter: at least one per 32 reads.
    assert.ok(Number(plain[2]) >= 3000 / 32, r.stdout);
    assert.deepEqual([...Deno.readDirSync(tmp.path)], []);
  },
});

Deno.test({
  name: "examples/zero_syscall.ts: a run killed midway leaves no scratch file",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, `${ROOT}examples/zero_syscall.ts`, "1000000000"],
      env: { TMPDIR: tmp.path },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    // The scratch file is made and unnamed within milliseconds of start-up; the run takes minutes.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    assert.deepEqual([...Deno.readDirSync(tmp.path)], []);
  },
});

Deno.test("examples/zero_syscall.ts: OPS that is not a positive integer is a usage error", async () => {
  using tmp = tempDir();
  for (const ops of ["0", "-5", "1.5", "abc", ""]) {
    const r = await runExample("zero_syscall.ts", [ops], tmp.path);
    assert.equal(r.code, 2, `OPS '${ops}': ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`OPS must be a positive integer, got '${ops}'`));
    assert.equal(r.stdout, "");
  }
});

Deno.test({
  name: "examples/ring_read.ts: prints the first bytes of the file it is given",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const path = `${tmp.path}/hello.txt`;
    Deno.writeTextFileSync(path, "hello from the ring\n");
    const r = await runExample("ring_read.ts", [path], tmp.path);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^read 20 bytes from ${path} \\(sqpoll: (true|false), enters: \\{`));
    assert.ok(r.stdout.endsWith("\nhello from the ring\n\n"), r.stdout);
  },
});

Deno.test({
  name: "examples/echo_server.ts: echoes what each client sends, then stops after --max connections",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const path = `${tmp.path}/echo.sock`;
    const server = new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, `${ROOT}examples/echo_server.ts`, "--unix", path, "--max", "2"],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Connect once it says it listens (the socket file exists from the bind, before the listen).
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let stdout = "";
    while (!stdout.includes("\n")) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the server ended before listening: ${stdout}`);
      stdout += value;
    }
    const rest = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        stdout += value;
      }
    })();
    const stderr = new Response(server.stderr).text();
    const echo = async (i: number) => {
      const conn = await Deno.connect({ transport: "unix", path });
      const payload = new TextEncoder().encode(`client ${i}; `.repeat(3000)); // more than the buffers
      const writing = (async () => {
        for (let done = 0; done < payload.length;) done += await conn.write(payload.subarray(done));
      })();
      const got = new Uint8Array(payload.length);
      let have = 0;
      while (have < payload.length) {
        const n = await conn.read(got.subarray(have));
        if (n === null) break;
        have += n;
      }
      await writing;
      conn.close();
      assert.equal(have, payload.length);
      assert.deepEqual(got, payload);
      return have;
    };
    const bytes = (await Promise.all([echo(0), echo(1)])).reduce((a, b) => a + b);
    const status = await server.status;
    await rest;
    assert.equal(status.code, 0, await stderr);
    assert.match(
      stdout,
      new RegExp(`^listening on unix:${path.replaceAll("/", "\\/")} \\(sqpoll: (true|false)\\)`),
    );
    assert.match(
      stdout,
      new RegExp(`\\n2 connections, ${bytes} bytes echoed, 0 still open; io_uring_enter calls: `),
    );
    assert.equal(existsSocket(path), false, "the socket file is removed at the end");
  },
});

function existsSocket(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSocket === true;
  } catch {
    return false;
  }
}

Deno.test("examples/echo_server.ts: bad arguments are usage errors", async () => {
  using tmp = tempDir();
  for (
    const [args, message] of [
      [["--port", "0"], /--port must be an integer from 1 to 65535, got '0'/],
      [["--max", "x"], /--max must be an integer/],
      [["--port", "1", "--unix", "p"], /give --port or --unix, not both/],
      [["--nope"], /Unknown option '--nope'/],
    ] as const
  ) {
    const r = await runExample("echo_server.ts", [...args], tmp.path);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, message);
  }
});

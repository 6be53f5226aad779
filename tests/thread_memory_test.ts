import assert from "node:assert/strict";
import { skipKernel, tempDir } from "./_support.ts";
import { MOD_URL } from "./uring_support.ts";

const SRC = (name: string) => JSON.stringify(new URL(`../src/${name}`, import.meta.url).href);

/**
 * Runs `code` with `deno eval` (every permission: /proc/self needs it), in `cwd` and with `env` if
 * given; returns its last stdout line.
 */
async function evalChild(code: string, cwd?: string, env?: Record<string, string>): Promise<string> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    cwd,
    env,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stdout = new TextDecoder().decode(r.stdout).trim();
  const stderr = new TextDecoder().decode(r.stderr);
  assert.ok(
    r.success,
    `the child ended with code ${r.code} (signal ${r.signal}): ${stderr}${stdout.slice(-500)}`,
  );
  return stdout.split("\n").at(-1)!;
}

/**
 * Child code that runs `snippet` (module code leaving its answer in the variable `answer`) on the
 * first thread, then in a Worker, and prints `{ main, worker }` with `more`'s fields (an object
 * expression evaluated last).
 */
function onBothThreads(snippet: string, answer: string, more = "{}"): string {
  const inWorker = `${snippet}\npostMessage(${answer});`;
  return `
${snippet}
const main = ${answer};
const url = URL.createObjectURL(new Blob([${JSON.stringify(inWorker)}], { type: "text/javascript" }));
const w = new Worker(url, { type: "module" });
const worker = await new Promise((resolve) => (w.onmessage = (e) => resolve(e.data)));
w.terminate();
console.log(JSON.stringify({ main, worker, ...(${more}) }));
`;
}

Deno.test({
  name:
    "kernelBytes (and a registered pool) in a Worker: held memory on a ring whose memory goes with the thread " +
    "and has no SQ poll thread; reused once given back; unmapped once the thread is gone",
  ignore: skipKernel(),
  fn: async () => {
    const worker = `
import { IoUring, makeRingDyingWithThread } from ${SRC("ring.ts")};
import { giveBackKernelBytes, isHeldKernelBytes, kernelBytes } from ${SRC("thread_memory.ts")};
import { Uring } from ${SRC("uring.ts")};
const bound = makeRingDyingWithThread(() => new IoUring(8, { sqpoll: false }));
// A registered pool (AlignedBuffer memory) on such a Uring: a copy's fixed buffers.
const uring = makeRingDyingWithThread(() => new Uring({ entries: 8, sqpoll: false }));
const pool = uring.registerBufferPool({ count: 2, size: 65536 });
globalThis.kept = [bound, uring, pool];
const plain = new IoUring(8, { sqpoll: false });
const polled = makeRingDyingWithThread(() => new IoUring(8, { sqpoll: {} }));
const statx = kernelBytes(bound, 256);
const address = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(statx)));
statx.fill(7);
giveBackKernelBytes(statx);
const again = kernelBytes(bound, 200); // the same 256-byte block, zeroed
const big = kernelBytes(bound, 100_000); // its own mapping (131,072 bytes)
postMessage({
  address,
  poolAddress: Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(pool.buffer(0).bytes))),
  held: isHeldKernelBytes(again),
  reused: Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(again))) === address,
  length: again.length,
  zeroed: again.every((b) => b === 0),
  bigHeld: isHeldKernelBytes(big) && big.length === 100_000,
  plainHeld: isHeldKernelBytes(kernelBytes(plain, 256)),
  polled: polled.sqpoll,
  polledHeld: isHeldKernelBytes(kernelBytes(polled, 256)),
});
`;
    const code = `
import { IoUring, makeRingDyingWithThread } from ${SRC("ring.ts")};
import { getSys } from ${SRC("sys.ts")};
import { isHeldKernelBytes, kernelBytes } from ${SRC("thread_memory.ts")};
const mapped = (address) => Deno.readTextFileSync("/proc/self/maps").split("\\n").some((line) => {
  const [start, end] = line.split(" ")[0].split("-").map((h) => parseInt(h, 16));
  return start <= address && address < end;
});
// The first thread's memory is ordinary: its end is the program's.
const mainHeld = isHeldKernelBytes(kernelBytes(makeRingDyingWithThread(() => new IoUring(8, { sqpoll: false })), 256));
const url = URL.createObjectURL(new Blob([${JSON.stringify(worker)}], { type: "text/javascript" }));
const w = new Worker(url, { type: "module" });
const reply = await new Promise((resolve) => (w.onmessage = (e) => resolve(e.data)));
const mappedWhileAlive = mapped(reply.address) && mapped(reply.poolAddress);
w.terminate();
let unmapped = false;
for (let i = 0; i < 300 && !unmapped; i++) {
  await new Promise((resolve) => setTimeout(resolve, 10));
  unmapped = getSys().heldGraves() === 0 && !mapped(reply.address) && !mapped(reply.poolAddress);
}
console.log(JSON.stringify({ mainHeld, ...reply, address: undefined, poolAddress: undefined, mappedWhileAlive, unmapped }));
`;
    const result = JSON.parse(await evalChild(code));
    const polled = result.polled;
    assert.deepEqual(result, {
      mainHeld: false,
      held: true,
      reused: true,
      length: 200,
      zeroed: true,
      bigHeld: true,
      plainHeld: false,
      polled,
      polledHeld: false, // (an SQ poll thread's workers outlive the Worker: ordinary memory there)
      mappedWhileAlive: true,
      unmapped: true,
    });
  },
});

Deno.test({
  name:
    "copyFile (sqpoll asked for too) and copyTree in Workers terminated mid-copy do not crash the process, " +
    "nor make files elsewhere: the kernel's memory outlives the Worker (without the helper, Deno's APIs copy)",
  ignore: skipKernel(),
  fn: async () => {
    // Deno frees a terminated Worker's memory as its thread ends, while the thread's io-wq workers
    // finish what they run: the chains' closing statx wrote into freed memory, and the process
    // died (a segfault, or "corrupted double-linked list") in every run of 20 such Workers. With
    // SQPOLL, whose kernel thread reads a chain's paths when it gets to it, copies in 30 Workers
    // made files with garbage names in the current directory, and crashed in 2 of 4 runs: a
    // Worker's copies run on a plain ring.
    using dir = tempDir();
    using cwd = tempDir();
    const tree = `${dir.path}/tree`;
    for (let d = 0; d < 4; d++) {
      Deno.mkdirSync(`${tree}/d${d}`, { recursive: true });
      for (let f = 0; f < 40; f++) {
        Deno.writeFileSync(`${tree}/d${d}/f${f}`, new Uint8Array(1 + ((d * 40 + f) * 397) % 60_000).fill(f));
      }
    }
    const worker = `
import { copyFile, copyTree } from ${JSON.stringify(MOD_URL)};
const tree = ${JSON.stringify(tree)};
const out = Deno.makeTempDirSync({ dir: ${JSON.stringify(dir.path)} });
const files = [];
for (let d = 0; d < 4; d++) for (let f = 0; f < 40; f++) files.push(tree + "/d" + d + "/f" + f);
self.onmessage = async (e) => {
  postMessage("started");
  for (let n = 0;; n++) {
    if (e.data === "tree") {
      await copyTree(tree, out + "/t" + n).catch(() => {});
    } else {
      const options = e.data === "sqpoll" ? { sqpoll: true } : {};
      await Promise.all(files.slice((n * 16) % 160, (n * 16) % 160 + 16).map((f, i) =>
        copyFile(f, out + "/c" + n + "-" + i, options).catch(() => {})));
    }
  }
};
`;
    const code = `
const url = URL.createObjectURL(new Blob([${JSON.stringify(worker)}], { type: "text/javascript" }));
for (let i = 0; i < 30; i++) {
  const w = new Worker(url, { type: "module" });
  w.postMessage(["files", "sqpoll", "tree"][i % 3]);
  await new Promise((resolve) => (w.onmessage = resolve));
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 15));
  w.terminate();
}
// Work the heap the Workers' memory went back to.
let sum = 0;
for (let i = 0; i < 200_000; i++) sum += JSON.stringify({ i, list: [i, i + 1] }).length;
await new Promise((resolve) => setTimeout(resolve, 100));
console.log("ok", sum > 0);
`;
    for (const backend of ["helper", "libc"]) {
      // (The libc backend cannot hold memory past a thread: a Worker's copies use Deno's file APIs.)
      assert.equal(await evalChild(code, cwd.path, { URING_BACKEND: backend }), "ok true", backend);
      assert.deepEqual([...Deno.readDirSync(cwd.path)].map((e) => e.name), [], backend);
    }
  },
});

Deno.test({
  name:
    "copyFile({ sqpoll: true }) polls on the process's first thread, and runs on a plain ring in a Worker",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeFileSync(`${dir.path}/src`, new Uint8Array(8 << 20).fill(3));
    const copy = `
import { copyFile } from ${JSON.stringify(MOD_URL)};
let polled = false;
// An SQ poll thread is named for the thread that made its ring: this one's, not another's still
// ending (the rings of the main thread's copy are torn down after it settles).
const own = "iou-sqp-" + Deno.readLinkSync("/proc/thread-self").split("/").at(-1);
const onProgress = () => {
  for (const t of Deno.readDirSync("/proc/self/task")) {
    try {
      if (Deno.readTextFileSync("/proc/self/task/" + t.name + "/comm").trim() === own) polled = true;
    } catch { /* gone */ }
  }
};
await copyFile(${JSON.stringify(`${dir.path}/src`)}, ${JSON.stringify(dir.path)} + "/c" + Math.random(),
  { sqpoll: true, blockSize: 65536, splice: false, onProgress });
`;
    const code = `
const { IoUring } = await import(${JSON.stringify(MOD_URL)});
${
      onBothThreads(
        copy,
        "polled",
        "(() => { const ring = new IoUring(8, { sqpoll: {} }); const canPoll = ring.sqpoll; ring.close(); return { canPoll }; })()",
      )
    }`;
    const result = JSON.parse(await evalChild(code));
    assert.deepEqual(result, { main: result.canPoll, worker: false, canPoll: result.canPoll });
  },
});

Deno.test({
  name: "Workers terminated mid-copy leave open none of the sources their copies had open",
  ignore: skipKernel(),
  fn: async () => {
    // Nothing closes a terminated Worker's files but the helper, as its thread exits: the copies
    // list theirs there while open. (A file whose open was still running in the kernel as the
    // thread ended is not listed: a destination being created then can stay open.)
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/src`);
    for (let i = 0; i < 6; i++) Deno.writeFileSync(`${dir.path}/src/f${i}`, new Uint8Array(3 << 20).fill(i));
    const worker = `
import { copyFile } from ${JSON.stringify(MOD_URL)};
const dir = ${JSON.stringify(dir.path)};
const out = Deno.makeTempDirSync({ dir });
let told = false;
const onProgress = () => { if (!told) { told = true; postMessage("copying"); } };
for (let n = 0;; n++) {
  await Promise.all([0, 1, 2, 3, 4, 5].map((i) =>
    copyFile(dir + "/src/f" + i, out + "/c" + n + "-" + i, { splice: false, blockSize: 65536, onProgress }).catch(() => {})));
}
`;
    const code = `
import { getSys } from ${SRC("sys.ts")};
const sources = () => [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
  try { return Deno.readLinkSync("/proc/self/fd/" + e.name).startsWith(${
      JSON.stringify(`${dir.path}/src/`)
    }); }
  catch { return false; }
}).length;
const url = URL.createObjectURL(new Blob([${JSON.stringify(worker)}], { type: "text/javascript" }));
let seen = 0;
for (let i = 0; i < 10; i++) {
  const w = new Worker(url, { type: "module" });
  await new Promise((resolve) => (w.onmessage = resolve));
  await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 10));
  seen = Math.max(seen, sources());
  w.terminate();
}
for (let i = 0; i < 100 && getSys().heldGraves() > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
await new Promise((resolve) => setTimeout(resolve, 100));
console.log(JSON.stringify({ openWhileCopying: seen > 0, leftOpen: sources() }));
`;
    assert.deepEqual(JSON.parse(await evalChild(code)), { openWhileCopying: true, leftOpen: 0 });
  },
});

Deno.test({
  name:
    "Without the helper, a Worker's copies use Deno's file APIs (unless fallback: false); the first thread's do not",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x".repeat(5000));
    const copy = `
import { copyFile } from ${JSON.stringify(MOD_URL)};
const dir = ${JSON.stringify(dir.path)};
const engines = [];
for (const fallback of [true, false]) {
  const r = await copyFile(dir + "/src", dir + "/c" + Math.random(), { fallback });
  engines.push(r.engine + (r.fallbackReason?.startsWith("a Worker without the uring helper") ? " (Worker)" : ""));
}
`;
    const code = onBothThreads(copy, "engines");
    for (const backend of ["helper", "libc"]) {
      assert.deepEqual(JSON.parse(await evalChild(code, undefined, { URING_BACKEND: backend })), {
        main: ["io_uring", "io_uring"],
        worker: backend === "libc" ? ["deno (Worker)", "io_uring"] : ["io_uring", "io_uring"],
      }, backend);
    }
  },
});

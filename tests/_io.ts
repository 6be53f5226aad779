/**
 * Test helpers for kernel tests of the ring layer: run one SQE to completion, reap a batch by
 * user_data, open and close files through the ring, and a few libc calls the ring has no
 * opcode for (pipe, eventfd, mkfifo).
 */

import assert from "node:assert/strict";
import { AT_FDCWD, cstring, errnoName, type IoUring, prepClose, prepOpenat, type Sqe } from "../mod.ts";

/** One reaped completion. */
export interface Done {
  /** `cqe.res`. */
  res: number;
  /** `cqe.flags`. */
  flags: number;
}

/** Largest time any single test waits for completions that should arrive at once. */
export const REAP_TIMEOUT_MS = 5000;

/**
 * Reaps exactly `n` completions (waiting with a timeout, so a lost completion fails the test
 * instead of hanging it) and returns them by user_data. A user_data seen twice fails the test.
 */
export function reap(ring: IoUring, n: number, timeoutMs = REAP_TIMEOUT_MS): Map<bigint, Done> {
  const out = new Map<bigint, Done>();
  const deadline = performance.now() + timeoutMs;
  while (out.size < n) {
    const left = deadline - performance.now();
    const cqe = ring.waitCqe({ timeoutMs: Math.max(0, left) });
    if (cqe === null) {
      assert.fail(`timed out waiting for completions: got ${out.size} of ${n} (${[...out.keys()]})`);
    }
    const ud = cqe.userData;
    assert.ok(!out.has(ud), `user_data ${ud} completed twice`);
    out.set(ud, { res: cqe.res, flags: cqe.flags });
    ring.cqAdvance(1);
  }
  return out;
}

/**
 * Spins on the CQ tail (no system call) until `n` completions are ready; fails the test with
 * `what` if they are not there within `timeoutMs`.
 */
export function spinUntilReady(ring: IoUring, n: number, what: string, timeoutMs = 5000): void {
  const start = performance.now();
  while (ring.cqReady() < n) {
    if (performance.now() - start > timeoutMs) assert.fail(what);
  }
}

/** Asserts that no completion shows up within `ms` (a little wait, for "nothing more" checks). */
export function assertNoCompletion(ring: IoUring, ms = 20): void {
  const cqe = ring.waitCqe({ timeoutMs: ms });
  assert.equal(cqe, null, cqe ? `unexpected completion ${cqe.userData} res ${cqe.res}` : "");
}

/** Gets an SQE, lets `prep` fill it, submits it alone and returns its `res`. */
export function run(ring: IoUring, prep: (sqe: Sqe) => void, userData = 0x5eedn): number {
  const sqe = ring.getSqe();
  assert.ok(sqe, "the SQ should have room");
  prep(sqe);
  sqe.setUserData(userData);
  ring.submit();
  const done = reap(ring, 1);
  const d = done.get(userData);
  assert.ok(d, `completion for ${userData} missing`);
  return d.res;
}

/** `run`, asserting success (a result ≥ 0). */
export function ok(ring: IoUring, what: string, prep: (sqe: Sqe) => void): number {
  const res = run(ring, prep);
  assert.ok(res >= 0, `${what} failed: ${describe(res)}`);
  return res;
}

/** Describes a result for assertion messages: `-2 (ENOENT)`. */
export function describe(res: number): string {
  return res < 0 ? `${res} (${errnoName(-res)})` : String(res);
}

/** Asserts `res` is `-errno(name)`. */
export function assertErr(res: number, name: string, what = "result"): void {
  assert.equal(res < 0 ? errnoName(-res) : describe(res), name, `${what}: ${describe(res)}`);
}

/** Opens `path` through the ring (`openat`) and returns the fd; fails the test on error. */
export function openFile(ring: IoUring, path: string, flags: number, mode = 0o644): number {
  const p = cstring(path);
  const fd = run(ring, (sqe) => prepOpenat(sqe, AT_FDCWD, p, flags, mode));
  assert.ok(fd >= 0, `openat(${path}) failed: ${describe(fd)}`);
  return fd;
}

/** Closes `fd` through the ring. */
export function closeFd(ring: IoUring, fd: number): void {
  const r = run(ring, (sqe) => prepClose(sqe, fd));
  assert.equal(r, 0, `close(${fd}): ${describe(r)}`);
}

const libc = Deno.dlopen("libc.so.6", {
  pipe: { parameters: ["buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  mkfifo: { parameters: ["buffer", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  creat: { parameters: ["buffer", "u32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
}).symbols;

/** `EFD_NONBLOCK` (= O_NONBLOCK). */
export const EFD_NONBLOCK = 0o4000;

/** `pipe()` through libc: `[readFd, writeFd]`. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  assert.equal(libc.pipe(fds), 0, "pipe() failed");
  return [fds[0], fds[1]];
}

/** `eventfd(0, flags)` through libc. */
export function eventfd(flags = EFD_NONBLOCK): number {
  const fd = libc.eventfd(0, flags);
  assert.ok(fd >= 0, "eventfd() failed");
  return fd;
}

/** `mkfifo(path, 0600)` through libc. */
export function mkfifo(path: string): void {
  assert.equal(libc.mkfifo(cstring(path), 0o600), 0, `mkfifo(${path}) failed`);
}

/** Plain `read(2)` through libc; returns the count or -1. */
export function sysRead(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  return Number(libc.read(fd, buf, BigInt(buf.byteLength)));
}

/** Plain `open(2)` of a NUL-terminated `path` with `flags` through libc; returns the fd or -1. */
export function sysOpen(path: Uint8Array<ArrayBuffer>, flags: number): number {
  return libc.open(path, flags);
}

/** Plain `write(2)` through libc; returns the count or -1. */
export function sysWrite(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  return Number(libc.write(fd, buf, BigInt(buf.byteLength)));
}

/** A CPU mask for `sched_setaffinity` (1024 CPUs). */
function cpuMask(cpu: number): BigUint64Array<ArrayBuffer> {
  const mask = new BigUint64Array(16);
  mask[cpu >> 6] = 1n << BigInt(cpu & 63);
  return mask;
}

/** The body of {@link OtherCpuWriter}'s Worker: pins itself, then writes one byte per request. */
const WRITER_SOURCE = `
const libc = Deno.dlopen("libc.so.6", {
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
}).symbols;
self.onmessage = (e) => {
  const { control, fd, cpu } = e.data;
  const ctl = new Int32Array(control);
  const mask = new BigUint64Array(16);
  mask[cpu >> 6] = 1n << BigInt(cpu & 63);
  libc.sched_setaffinity(0, 128n, mask);
  const byte = new Uint8Array([0x5a]);
  self.postMessage("ready");
  for (;;) {
    Atomics.wait(ctl, 0, 0);
    if (Atomics.exchange(ctl, 0, 0) < 0) break;
    Atomics.store(ctl, 1, Number(libc.write(fd, byte, 1n)));
    Atomics.add(ctl, 2, 1);
  }
};
`;

/**
 * Writes one byte at a time into `fd` from another thread on another CPU: the calling thread is
 * pinned to CPU 0 and a Worker to CPU 1 until `close()`, so the write wakes whatever waits on
 * `fd` from a CPU where this thread is not running (where the pinning fails, on a single CPU or
 * in a cpuset, the writes still come from the Worker).
 */
export class OtherCpuWriter {
  readonly #worker: Worker;
  readonly #ctl = new Int32Array(new SharedArrayBuffer(12));
  readonly #saved = new BigUint64Array(16);
  #restore = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /** Starts the Worker and pins both threads. */
  static async start(fd: number): Promise<OtherCpuWriter> {
    const url = URL.createObjectURL(new Blob([WRITER_SOURCE], { type: "text/javascript" }));
    const writer = new OtherCpuWriter(new Worker(url, { type: "module" }));
    URL.revokeObjectURL(url);
    const ready = new Promise<void>((resolve) => {
      writer.#worker.onmessage = () => resolve();
    });
    writer.#worker.postMessage({ control: writer.#ctl.buffer, fd, cpu: 1 });
    await ready;
    writer.#restore = libc.sched_getaffinity(0, 128n, writer.#saved) === 0;
    if (writer.#restore) libc.sched_setaffinity(0, 128n, cpuMask(0));
    return writer;
  }

  /** Asks the Worker for one write; returns at once. */
  write(): void {
    Atomics.store(this.#ctl, 0, 1);
    Atomics.notify(this.#ctl, 0);
  }

  /** Writes done so far; `lastResult` is the last one's `write(2)` result. */
  get writes(): number {
    return Atomics.load(this.#ctl, 2);
  }

  get lastResult(): number {
    return Atomics.load(this.#ctl, 1);
  }

  /** Stops the Worker and gives this thread its CPUs back. */
  close(): void {
    Atomics.store(this.#ctl, 0, -1);
    Atomics.notify(this.#ctl, 0);
    this.#worker.terminate();
    if (this.#restore) libc.sched_setaffinity(0, 128n, this.#saved);
  }
}

/**
 * Creates an empty file (mode 0644) whose path is the raw bytes `path` (NUL added): a name that
 * is not valid UTF-8, which Deno's string paths cannot make.
 */
export function createRawName(path: Uint8Array): void {
  const z = new Uint8Array(path.length + 1);
  z.set(path);
  const fd = libc.creat(z, 0o644);
  assert.ok(fd >= 0, "creat() failed");
  libc.close(fd);
}

/** Plain `close(2)` through libc. */
export function sysClose(fd: number): void {
  libc.close(fd);
}

/** Bytes 0..n-1 of a recognisable pattern. */
export function pattern(n: number, seed = 1): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

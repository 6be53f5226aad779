/**
 * libc calls the waiting-opcode tests need and Deno has no API for: an epoll instance, and child
 * processes Deno does not track (`posix_spawn`; Deno reaps the children of `Deno.Command`
 * itself, so a `waitid` through the ring would never see them), with `kill` and a `waitpid`
 * to clean up after a test that failed before reaping its child.
 */

import assert from "node:assert/strict";
import { cstring, EPOLL_CLOEXEC } from "../mod.ts";

const libc = Deno.dlopen("libc.so.6", {
  epoll_create1: { parameters: ["i32"], result: "i32" },
  posix_spawn: { parameters: ["buffer", "buffer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
}).symbols;

/** `SIGKILL` (9 on every Linux architecture). */
export const SIGKILL = 9;
/** `WNOHANG` for `waitpid`. */
const WNOHANG = 1;

/** `epoll_create1(EPOLL_CLOEXEC)`: a new epoll fd (close it with `sysClose`). */
export function epollCreate(): number {
  const fd = libc.epoll_create1(EPOLL_CLOEXEC);
  assert.ok(fd >= 0, "epoll_create1() failed");
  return fd;
}

/**
 * Starts `/bin/sh -c script` with `posix_spawn` (an empty environment) and returns its pid: a
 * child of this process that Deno knows nothing of, left for the test to reap.
 */
export function spawnShell(script: string): number {
  const strings = [cstring("/bin/sh"), cstring("-c"), cstring(script)];
  const argv = new BigUint64Array(strings.length + 1); // NULL-terminated char *argv[]
  strings.forEach((s, i) => argv[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
  const envp = new BigUint64Array(1); // {NULL}
  const pid = new Int32Array(1);
  const err = libc.posix_spawn(pid, strings[0], null, null, argv, envp);
  assert.equal(err, 0, `posix_spawn failed: error ${err}`);
  // (posix_spawn returns once the child has exec'd: the strings may go now.)
  return pid[0];
}

/** `kill(pid, signal)`; returns 0 or -1. */
export function kill(pid: number, signal: number): number {
  return libc.kill(pid, signal);
}

/**
 * Kills and reaps `pid` if it is still around (after a failed test); a child already reaped
 * (the usual case) is left alone: `waitpid` then fails with `ECHILD`, which is fine.
 */
export function reapQuietly(pid: number): void {
  const status = new Int32Array(1);
  if (libc.waitpid(pid, status, WNOHANG) === 0) {
    libc.kill(pid, SIGKILL);
    libc.waitpid(pid, status, 0);
  }
}

/** The Worker of {@link futexWakeFromWorker}: one `futex(FUTEX_WAKE_PRIVATE)` system call. */
const WAKER_SOURCE = `
const libc = Deno.dlopen("libc.so.6", {
  syscall: { parameters: ["i64", "pointer", "i32", "i32"], result: "i64" },
}).symbols;
self.onmessage = (e) => {
  const { memory, index, sysFutex } = e.data;
  const word = new Uint32Array(memory, index * 4, 1);
  // futex(uaddr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1): wake one waiter
  self.postMessage(Number(libc.syscall(BigInt(sysFutex), Deno.UnsafePointer.of(word), 1 | 128, 1)));
};
`;

/**
 * Wakes one waiter of the private futex `memory[index]` (a `SharedArrayBuffer`'s u32) with a
 * `futex(2)` system call made from another thread (a Worker, through libc): V8's
 * `Atomics.notify` does not use futex(2). Resolves with the number woken.
 */
export async function futexWakeFromWorker(memory: SharedArrayBuffer, index: number): Promise<number> {
  const url = URL.createObjectURL(new Blob([WAKER_SOURCE], { type: "text/javascript" }));
  const worker = new Worker(url, { type: "module" });
  URL.revokeObjectURL(url);
  try {
    const woken = new Promise<number>((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data as number);
      worker.onerror = (e) => reject(new Error(`waker worker: ${e.message}`));
    });
    // SYS_futex: 202 on x86_64, 98 on aarch64.
    worker.postMessage({ memory, index, sysFutex: Deno.build.arch === "aarch64" ? 98 : 202 });
    return await woken;
  } finally {
    worker.terminate();
  }
}

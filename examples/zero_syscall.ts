/**
 * The zero-syscall experiment: the same workload (4 KiB reads at queue depth 32 from a cached
 * file) on a ring with SQPOLL and on one without, printing how many `io_uring_enter` calls each
 * made, by reason (`ring.stats`), and how many operations each call carried.
 *
 * With SQPOLL a kernel thread picks submissions up from the SQ ring and completions are reaped by
 * watching the CQ tail, so while the thread is busy the loop makes no system call at all. Without
 * SQPOLL every submission is one `io_uring_enter`.
 *
 *   deno run --allow-ffi --allow-read --allow-write --allow-env examples/zero_syscall.ts [OPS]
 *
 * Confirm the counts from outside with strace (it counts every `io_uring_enter` of the process,
 * including the few made at start-up):
 *
 *   strace -f -c -e trace=io_uring_enter deno run --allow-ffi --allow-read --allow-write \
 *     --allow-env examples/zero_syscall.ts
 */
import {
  AT_FDCWD,
  cstring,
  IoUring,
  IoUringError,
  O_RDWR,
  prepClose,
  prepOpenat,
  prepRead,
  prepWrite,
} from "../mod.ts";

const USAGE =
  "usage: examples/zero_syscall.ts [OPS]   (OPS: reads per mode, a positive integer; default 200000)";
const QD = 32;
const BS = 4096;
const FILE_SIZE = 8 << 20;

/** The reads to make in each mode: the first argument, a positive integer (default 200,000). */
function parseOps(arg: string | undefined): number {
  if (arg === undefined) return 200_000;
  const ops = Number(arg);
  if (arg.trim() === "" || !Number.isSafeInteger(ops) || ops < 1) {
    console.error(`zero_syscall: OPS must be a positive integer, got '${arg}'\n${USAGE}`);
    Deno.exit(2);
  }
  return ops;
}

const OPS = parseOps(Deno.args[0]);

/** Runs one SQE to completion on `ring` and returns its result (or throws the errno). */
function once(ring: IoUring, what: string, prep: (ring: IoUring) => void): number {
  prep(ring);
  ring.submit();
  const cqe = ring.waitCqe()!;
  const res = cqe.res;
  ring.cqAdvance(1);
  if (res < 0) throw new IoUringError(what, -res);
  return res;
}

/**
 * Makes the scratch file: creates it, opens it through `ring` and removes its name at once (the
 * open descriptor keeps the data, so nothing is left behind even when Ctrl-C stops the run),
 * then fills it through the ring, which leaves it in the page cache. Returns the descriptor:
 * any ring of the process can use it.
 */
function openScratchFile(ring: IoUring): number {
  const path = Deno.makeTempFileSync({ prefix: "zero_syscall_" });
  let fd: number;
  try {
    const cpath = cstring(path);
    fd = once(ring, "openat", (r) => prepOpenat(r.getSqe()!, AT_FDCWD, cpath, O_RDWR));
  } finally {
    Deno.removeSync(path);
  }
  const chunk = new Uint8Array(65536).map((_, i) => i * 31);
  for (let offset = 0; offset < FILE_SIZE;) {
    offset += once(ring, "write", (r) => prepWrite(r.getSqe()!, fd, chunk, offset));
  }
  return fd;
}

interface Outcome {
  mode: string;
  ops: number;
  ms: number;
  submit: number;
  wakeup: number;
  wait: number;
}

function workload(fd: number, sqpoll: boolean): Outcome {
  // SQ twice QD: under SQPOLL a CQE can be visible before the kernel moves the SQ head past it.
  using ring = new IoUring(2 * QD, { sqpoll: sqpoll ? { idleMs: 100 } : false });
  const buffers = Array.from({ length: QD }, () => new Uint8Array(BS));
  const blocks = FILE_SIZE / BS;
  let queued = 0;
  const queue = (slot: number) => {
    let sqe = ring.getSqe();
    while (sqe === null) { // the kernel has not consumed the older SQEs yet
      ring.submit();
      sqe = ring.getSqe();
    }
    prepRead(sqe, fd, buffers[slot], ((queued++ * 7919) % blocks) * BS).setUserData(slot);
  };
  const before = { ...ring.stats };
  const t0 = performance.now();
  for (let slot = 0; slot < Math.min(QD, OPS); slot++) queue(slot);
  let done = 0;
  while (done < OPS) {
    if (sqpoll) {
      ring.submit(); // a tail store; an enter only if the SQ thread went to sleep
      // Reap by watching the CQ tail; fall back to a blocking wait if nothing comes for a while.
      for (let spins = 0; ring.cqReady() === 0; spins++) {
        if (spins === 1_000_000) {
          ring.waitCqe();
          break;
        }
      }
    } else {
      ring.submitAndWait(1); // one io_uring_enter: submit, and cached reads complete inside it
    }
    for (let cqe = ring.peekCqe(); cqe !== null; cqe = ring.peekCqe()) {
      if (cqe.res < 0) throw new IoUringError("read", -cqe.res);
      if (cqe.res !== BS) throw new Error(`short read: ${cqe.res} of ${BS} bytes`);
      const slot = cqe.userDataLo;
      ring.cqAdvance(1);
      done++;
      if (queued < OPS) queue(slot);
    }
  }
  const ms = performance.now() - t0;
  const s = ring.stats;
  const outcome = {
    mode: sqpoll ? "SQPOLL" : "no SQPOLL",
    ops: done,
    ms,
    submit: s.submit - before.submit,
    wakeup: s.wakeup - before.wakeup,
    wait: s.wait - before.wait,
  };
  if (sqpoll && !ring.sqpoll) outcome.mode += ` (refused: ${ring.sqpollFallbackReason})`;
  return outcome;
}

using setup = new IoUring(4, { sqpoll: false }); // opens and closes the scratch file
const fd = openScratchFile(setup);
const rows = [workload(fd, true), workload(fd, false)];
once(setup, "close", (r) => prepClose(r.getSqe()!, fd));

console.log(`${OPS} reads of ${BS} bytes, ${QD} in flight, from a cached file\n`);
console.log("| mode | ops | enter: submit | wakeup | wait | total enters | ops per enter | ms |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const total = r.submit + r.wakeup + r.wait;
  const perEnter = total === 0 ? "∞ (none)" : (r.ops / total).toFixed(1);
  console.log(
    `| ${r.mode} | ${r.ops} | ${r.submit} | ${r.wakeup} | ${r.wait} | ${total} | ${perEnter} | ${
      r.ms.toFixed(0)
    } |`,
  );
}

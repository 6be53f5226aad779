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
import { AT_FDCWD, cstring, IoUring, O_RDONLY, prepClose, prepOpenat, prepRead } from "../mod.ts";

const OPS = Number(Deno.args[0] ?? 200_000);
const QD = 32;
const BS = 4096;
const FILE_SIZE = 8 << 20;

// A scratch file, written once and so in the page cache.
const path = Deno.makeTempFileSync({ prefix: "zero_syscall_" });
Deno.writeFileSync(path, new Uint8Array(65536).map((_, i) => i * 31));
{
  const chunk = Deno.readFileSync(path);
  const f = Deno.openSync(path, { append: true });
  for (let n = chunk.length; n < FILE_SIZE; n += chunk.length) f.writeSync(chunk);
  f.close();
}

/** Runs one SQE to completion on `ring` and returns its result. */
function once(ring: IoUring, prep: (ring: IoUring) => void): number {
  prep(ring);
  ring.submit();
  const cqe = ring.waitCqe()!;
  const res = cqe.res;
  ring.cqAdvance(1);
  if (res < 0) throw new Error(`operation failed: ${res}`);
  return res;
}

interface Outcome {
  mode: string;
  ops: number;
  ms: number;
  submit: number;
  wakeup: number;
  wait: number;
}

function workload(sqpoll: boolean): Outcome {
  // SQ twice QD: under SQPOLL a CQE can be visible before the kernel moves the SQ head past it.
  using ring = new IoUring(2 * QD, { sqpoll: sqpoll ? { idleMs: 100 } : false });
  const cpath = cstring(path);
  const fd = once(ring, (r) => prepOpenat(r.getSqe()!, AT_FDCWD, cpath, O_RDONLY));
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
  for (let slot = 0; slot < QD; slot++) queue(slot);
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
      if (cqe.res !== BS) throw new Error(`short read: ${cqe.res}`);
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
  once(ring, (r) => prepClose(r.getSqe()!, fd));
  if (sqpoll && !ring.sqpoll) outcome.mode += ` (refused: ${ring.sqpollFallbackReason})`;
  return outcome;
}

const rows = [workload(true), workload(false)];
Deno.removeSync(path);

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

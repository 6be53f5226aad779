/**
 * NOP round trips through `IoUring` against the same loop in C over liburing
 * (`bench/peers/nop.c`), at batch 1 and 32, with and without SQPOLL.
 *
 * A round queues `batch` NOPs, submits them and reaps `batch` completions. Without SQPOLL that is
 * one `submitAndWait(batch)` (one `io_uring_enter`); with SQPOLL a tail store and a spin on the
 * CQ tail (bounded: then a blocking wait, counted in `stats.wait`). Run: `deno task bench:nop`.
 *
 * Two APIs, one row each:
 * - rows without a suffix use the handle path ({@link ourNops}): `prepNop(ring.getSqe()!)
 *   .setUserData(i)` per NOP and `ring.forEachCqe(fn)` with a `Cqe` per completion;
 * - rows ending in "queueNop + forEachCompletion" use the handle-free path
 *   ({@link ourQueuedNops}): `ring.queueNop(i)` per NOP and `ring.forEachCompletion(fn)` with
 *   `(userData, res, flags)` per completion.
 *
 * Both are measured in the same alternation as the C peer (handle path, C, handle-free path,
 * handle path, ...), so the two rows of a case share the C figure.
 *
 * Our rings drop the SQ index array where the kernel allows it (`IORING_SETUP_NO_SQARRAY`, 6.6),
 * as liburing does since 2.6; Debian's liburing (2.3) keeps it. At batch 32 without SQPOLL a
 * third row runs the handle-free path on a ring that keeps the array (`sqArray: true`), the
 * layout the C peer uses.
 *
 * @module
 */

import { type Cqe, type EnterStats, IoUring, prepNop } from "../mod.ts";
import {
  alternate,
  buildPeer,
  cpuSeconds,
  type LoopResult,
  peerOpsPerSec,
  printTable,
  type Row,
  SECONDS,
  withCpu,
} from "./_lib.ts";

/** Spins on the CQ tail before falling back to a blocking wait (as the C peer does). */
export const SPIN_LIMIT = 1 << 20;

let check = 0;
const reap = (cqe: Cqe): void => {
  check = (check + cqe.userDataLo + cqe.res) | 0; // int32: a growing double would allocate
};

let checkFast = 0;
const reapFast = (userData: number, res: number): void => {
  checkFast = (checkFast + userData + res) | 0;
};

/** What one timed run did: operations, their rate, its CPU time, and the ring's `io_uring_enter` counts. */
export interface RunResult extends LoopResult {
  stats: EnterStats;
}

/**
 * Publishes a round's SQEs and returns once `batch` completions are ready: without SQPOLL one
 * `submitAndWait(batch)`; with SQPOLL `submit()` and a spin on the CQ tail, then a blocking wait
 * if the SQ thread is starved of CPU (as the C peer does).
 */
function completeRound(ring: IoUring, batch: number, sqpoll: boolean): void {
  if (!sqpoll) {
    ring.submitAndWait(batch);
    return;
  }
  ring.submit();
  for (let spins = 0; ring.cqReady() < batch; spins++) {
    if (spins === SPIN_LIMIT) {
      ring.submitAndWait(batch);
      return;
    }
  }
}

/** NOPs per second through `IoUring` for `seconds`. */
export function ourNops(batch: number, sqpoll: boolean, seconds: number): RunResult {
  using ring = new IoUring(Math.max(64, batch), { sqpoll: sqpoll ? { idleMs: 50 } : false });
  let ops = 0;
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let t = t0;
  for (let round = 0;; round++) {
    for (let i = 0; i < batch; i++) prepNop(ring.getSqe()!).setUserData(i);
    completeRound(ring, batch, sqpoll);
    ops += ring.forEachCqe(reap);
    if ((round & 63) === 0 && (t = performance.now()) >= end) break;
  }
  return { ops, opsPerSec: ops / ((t - t0) / 1000), cpuSeconds: cpuSeconds() - c0, stats: { ...ring.stats } };
}

/**
 * The same loop through the handle-free path: `queueNop` and `forEachCompletion`. Written out
 * rather than sharing the loop with {@link ourNops} through a per-round callback, which measured
 * 1–1.5% slower at batch 1 (a cost of the bench, not of the ring).
 */
export function ourQueuedNops(batch: number, sqpoll: boolean, seconds: number, sqArray = false): RunResult {
  using ring = new IoUring(Math.max(64, batch), { sqpoll: sqpoll ? { idleMs: 50 } : false, sqArray });
  let ops = 0;
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let t = t0;
  for (let round = 0;; round++) {
    for (let i = 0; i < batch; i++) ring.queueNop(i);
    completeRound(ring, batch, sqpoll);
    ops += ring.forEachCompletion(reapFast);
    if ((round & 63) === 0 && (t = performance.now()) >= end) break;
  }
  return { ops, opsPerSec: ops / ((t - t0) / 1000), cpuSeconds: cpuSeconds() - c0, stats: { ...ring.stats } };
}

if (import.meta.main) {
  const peer = await buildPeer("nop");
  const missing = "missing" in peer ? peer.missing : undefined;
  // `fast`: also measure the handle-free path, in the same alternation; `classic`: that path also
  // on a ring that keeps the SQ index array.
  const cases = [
    { batch: 1, sqpoll: false, target: 0.85, fast: true, classic: false },
    { batch: 32, sqpoll: false, target: 0.9, fast: true, classic: true },
    { batch: 32, sqpoll: true, target: 0.9, fast: true, classic: false },
    { batch: 1, sqpoll: true, target: undefined, fast: false, classic: false },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    ourNops(c.batch, c.sqpoll, 0.3); // warm up the JIT
    if (c.fast) ourQueuedNops(c.batch, c.sqpoll, 0.3);
    if (c.classic) ourQueuedNops(c.batch, c.sqpoll, 0.3, true);
    const m = await alternate(
      () => withCpu(() => ourNops(c.batch, c.sqpoll, SECONDS)),
      [
        () => peerOpsPerSec(peer, [String(c.batch), c.sqpoll ? "1" : "0", String(SECONDS)]),
        ...(c.fast ? [() => withCpu(() => ourQueuedNops(c.batch, c.sqpoll, SECONDS))] : []),
        ...(c.classic ? [() => withCpu(() => ourQueuedNops(c.batch, c.sqpoll, SECONDS, true))] : []),
      ],
    );
    const work = `NOPs, batch ${c.batch}, ${c.sqpoll ? "SQPOLL (CQ spin)" : "no SQPOLL"}`;
    const row = (suffix: string, ours: number, oursCpu: number | null): Row => ({
      work: work + suffix,
      ours,
      peer: "C liburing, same loop",
      theirs: m.peers[0],
      unit: "ops/s",
      better: "higher",
      target: c.target === undefined ? undefined : { op: ">=", value: c.target },
      missing,
      oursCpu,
      theirsCpu: m.peersCpu[0],
    });
    rows.push(row("", m.ours, m.oursCpu));
    if (c.fast) rows.push(row(", queueNop + forEachCompletion", m.peers[1]!, m.peersCpu[1]));
    if (c.classic) {
      rows.push({
        ...row(", same, SQ index array kept (the C peer's layout)", m.peers[2]!, m.peersCpu[2]),
        target: undefined,
      });
    }
  }
  printTable("NOP round trips: IoUring vs C liburing", rows);
  if (check === 0.5 || checkFast === 0.5) console.log(check, checkFast); // keep the reaped values alive
}

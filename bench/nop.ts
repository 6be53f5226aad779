/**
 * NOP round trips through `IoUring` against the same loop in C over liburing
 * (`bench/peers/nop.c`), at batch 1 and 32, with and without SQPOLL.
 *
 * A round queues `batch` NOPs, submits them and reaps `batch` completions. Without SQPOLL that is
 * one `submitAndWait(batch)` (one `io_uring_enter`); with SQPOLL a tail store and a spin on the
 * CQ tail (bounded: then a blocking wait, counted in `stats.wait`). Run: `deno task bench:nop`.
 *
 * @module
 */

import { type Cqe, type EnterStats, IoUring, prepNop } from "../mod.ts";
import { alternate, buildPeer, peerOpsPerSec, printTable, type Row, SECONDS, withCpu } from "./_lib.ts";

/** Spins on the CQ tail before falling back to a blocking wait (as the C peer does). */
export const SPIN_LIMIT = 1 << 20;

let check = 0;
const reap = (cqe: Cqe): void => {
  check = (check + cqe.userDataLo + cqe.res) | 0; // int32: a growing double would allocate
};

/** What one timed run did: operations, their rate, and the ring's `io_uring_enter` counts. */
export interface RunResult {
  ops: number;
  opsPerSec: number;
  stats: EnterStats;
}

/** NOPs per second through `IoUring` for `seconds`. */
export function ourNops(batch: number, sqpoll: boolean, seconds: number): RunResult {
  using ring = new IoUring(Math.max(64, batch), { sqpoll: sqpoll ? { idleMs: 50 } : false });
  let ops = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let t = t0;
  for (let round = 0;; round++) {
    for (let i = 0; i < batch; i++) prepNop(ring.getSqe()!).setUserData(i);
    if (sqpoll) {
      ring.submit();
      // Spin on the CQ tail; if the SQ thread is starved of CPU, wait in the kernel instead.
      for (let spins = 0; ring.cqReady() < batch; spins++) {
        if (spins === SPIN_LIMIT) {
          ring.submitAndWait(batch);
          break;
        }
      }
    } else {
      ring.submitAndWait(batch);
    }
    ops += ring.forEachCqe(reap);
    if ((round & 63) === 0 && (t = performance.now()) >= end) break;
  }
  return { ops, opsPerSec: ops / ((t - t0) / 1000), stats: { ...ring.stats } };
}

if (import.meta.main) {
  const peer = await buildPeer("nop");
  const missing = "missing" in peer ? peer.missing : undefined;
  const cases = [
    { batch: 1, sqpoll: false, target: 0.85 },
    { batch: 32, sqpoll: false, target: 0.9 },
    { batch: 32, sqpoll: true, target: 0.9 },
    { batch: 1, sqpoll: true, target: undefined },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    ourNops(c.batch, c.sqpoll, 0.3); // warm up the JIT
    const m = await alternate(
      () => withCpu(() => ourNops(c.batch, c.sqpoll, SECONDS)),
      [() => peerOpsPerSec(peer, [String(c.batch), c.sqpoll ? "1" : "0", String(SECONDS)])],
    );
    rows.push({
      work: `NOPs, batch ${c.batch}, ${c.sqpoll ? "SQPOLL (CQ spin)" : "no SQPOLL"}`,
      ours: m.ours,
      peer: "C liburing, same loop",
      theirs: m.peers[0],
      unit: "ops/s",
      better: "higher",
      target: c.target === undefined ? undefined : { op: ">=", value: c.target },
      missing,
      oursCpu: m.oursCpu,
      theirsCpu: m.peersCpu[0],
    });
  }
  printTable("NOP round trips: IoUring vs C liburing", rows);
  if (check === 0.5) console.log(check); // keep the reaped values alive
}

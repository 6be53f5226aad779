/**
 * 4 KiB random reads of a cached 256 MiB file at queue depth 32 through `IoUring`, against fio's
 * io_uring engine (`--invalidate=0`, without its per-I/O statistics: `--gtod_reduce=1
 * --norandommap`; with and without `--sqthread_poll=1`, with and without batched
 * submission/completion, and batched with registered buffers and files) and the same loop in C over
 * liburing (`bench/peers/randread.c`).
 *
 * The loop keeps 32 reads in flight: each completion is checked and its slot refilled with a
 * read at a new random aligned offset. Without SQPOLL a round is one `submitAndWait(1)` (cached
 * reads complete inside it); with SQPOLL each refill is published at once (`flushSq`, a tail
 * store, as fio publishes each request), so the kernel thread starts on it while the loop is
 * still reaping, and a round ends with `submit()` (wakes the thread if it slept) and a spin on
 * the CQ tail (bounded: then a blocking wait). The C peer does the same (a release store of
 * the tail per request). Under SQPOLL both read the file as a registered (fixed) file, as fio's
 * engine does with `--sqthread_poll=1`. Ours also runs with registered buffers (`READ_FIXED`) and
 * file in both modes, as fio does with `--fixedbufs --registerfiles`; the headline row compares
 * the best of our four modes with the best of fio's six configurations.
 * Run: `deno task bench:read`.
 *
 * @module
 */

import {
  AT_FDCWD,
  type Cqe,
  cstring,
  IOSQE_FIXED_FILE,
  IoUring,
  O_RDONLY,
  prepClose,
  prepOpenat,
  prepRead,
  prepReadFixed,
} from "../mod.ts";
import {
  alternate,
  buildPeer,
  cachedFile,
  cpuSeconds,
  findFio,
  fioIops,
  peerOpsPerSec,
  printTable,
  randomBlocks,
  type Row,
  SECONDS,
  warm,
  withCpu,
} from "./_lib.ts";
import { type RunResult, SPIN_LIMIT } from "./nop.ts";

/** File size of the random-read benches (re-read into the page cache before every run). */
export const READ_FILE_SIZE = 256 << 20;
/** Name of that file under DATA_DIR. */
export const READ_FILE = "256m.bin";
const BS = 4096;
const QD = 32;

/** Runs one SQE on a scratch ring and returns its result (throws on -errno). */
function once(prep: (ring: IoUring) => void): number {
  using ring = new IoUring(2, { sqpoll: false });
  prep(ring);
  ring.submitAndWait(1);
  const res = ring.peekCqe()!.res;
  ring.cqAdvance(1);
  if (res < 0) throw new Error(`io_uring op failed: ${res}`);
  return res;
}

/** Opens `path` read-only through io_uring and returns the raw fd. */
export function openFd(path: string): number {
  const p = cstring(path);
  return once((ring) => prepOpenat(ring.getSqe()!, AT_FDCWD, p, O_RDONLY));
}

/** Closes a raw fd through io_uring. */
export function closeFd(fd: number): void {
  once((ring) => prepClose(ring.getSqe()!, fd));
}

const nextBlock = randomBlocks(0x9e3779b9);

/**
 * Random `bs` reads per second at depth `qd` through `IoUring`, for `seconds`. With `fixed`, the
 * buffers and the file are registered and read with `READ_FIXED`, as fio's `--fixedbufs
 * --registerfiles`.
 */
export function ourRandomReads(
  fd: number,
  size: number,
  qd: number,
  sqpoll: boolean,
  seconds: number,
  fixed = false,
): RunResult {
  // Twice QD: under SQPOLL a CQE can be visible before the kernel moves the SQ head past its SQE.
  using ring = new IoUring(2 * qd, { sqpoll: sqpoll ? { idleMs: 50 } : false });
  // Under SQPOLL the file is registered and read as fixed file 0, as fio does (and the C peer):
  // the kernel thread then skips a file lookup per read.
  const fixedFile = sqpoll || fixed;
  if (fixedFile) ring.registerFiles([fd]);
  const target = fixedFile ? 0 : fd, fileFlags = fixedFile ? IOSQE_FIXED_FILE : 0;
  const blocks = Math.floor(size / BS);
  const arena = new ArrayBuffer(qd * BS); // one block of buffers, as the C peer has
  if (fixed) ring.registerBuffers([new Uint8Array(arena)]); // buffer index 0 holds every slot
  const bufs = Array.from({ length: qd }, (_, i) => new Uint8Array(arena, i * BS, BS));
  let bad = 0;
  const queue = (slot: number) => {
    let sqe = ring.getSqe();
    while (sqe === null) {
      ring.submit();
      sqe = ring.getSqe();
    }
    if (fixed) {
      prepReadFixed(sqe, target, bufs[slot], nextBlock(blocks) * BS, 0).setUserData(slot).setFlags(fileFlags);
    } else prepRead(sqe, target, bufs[slot], nextBlock(blocks) * BS).setUserData(slot).setFlags(fileFlags);
    if (sqpoll) ring.flushSq();
  };
  const reap = (cqe: Cqe) => {
    if (cqe.res !== BS) bad = cqe.res;
    queue(cqe.userDataLo);
  };
  for (let i = 0; i < qd; i++) queue(i);
  let ops = 0;
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let t = t0;
  for (let round = 0;; round++) {
    if (sqpoll) {
      ring.submit();
      // Spin on the CQ tail; if the SQ thread is starved of CPU, wait in the kernel instead.
      for (let spins = 0; ring.cqReady() === 0; spins++) {
        if (spins === SPIN_LIMIT) {
          ring.submitAndWait(1);
          break;
        }
      }
    } else {
      ring.submitAndWait(1);
    }
    ops += ring.forEachCqe(reap);
    if (bad !== 0) throw new Error(`read returned ${bad}`);
    if ((round & 63) === 0 && (t = performance.now()) >= end) break;
  }
  const cpu = cpuSeconds() - c0;
  const stats = { ...ring.stats };
  // Let the reads still in flight finish before their buffers go.
  ring.submitAndWait(qd);
  return { ops, opsPerSec: ops / ((t - t0) / 1000), cpuSeconds: cpu, stats };
}

if (import.meta.main) {
  const file = cachedFile(READ_FILE, READ_FILE_SIZE, "pin");
  const [peer, fio] = await Promise.all([buildPeer("randread"), findFio()]);
  const fd = openFd(file);
  const batched = [
    "--iodepth_batch_submit=32",
    "--iodepth_batch_complete_min=1",
    "--iodepth_batch_complete_max=32",
  ];
  // Registered buffers (READ_FIXED) and files: fio registers its files under SQPOLL anyway.
  const fixed = ["--fixedbufs", "--registerfiles"];
  const fioCases = [
    { name: "fio io_uring", sqpoll: false, extra: [] },
    { name: "fio io_uring, batched", sqpoll: false, extra: batched },
    { name: "fio io_uring, batched, fixed buffers and files", sqpoll: false, extra: [...batched, ...fixed] },
    { name: "fio io_uring SQPOLL", sqpoll: true, extra: [] },
    { name: "fio io_uring SQPOLL, batched", sqpoll: true, extra: batched },
    { name: "fio io_uring SQPOLL, batched, fixed buffers", sqpoll: true, extra: [...batched, ...fixed] },
  ];
  const fioRuns = fioCases.map((c) => () =>
    fioIops(fio, { file, iodepth: QD, bs: BS, seconds: SECONDS, sqpoll: c.sqpoll, extra: c.extra })
  );
  const cRun = (sqpoll: boolean) => () =>
    peerOpsPerSec(peer, [file, String(QD), sqpoll ? "1" : "0", String(SECONDS), String(BS)]);

  // Every configuration in the same alternating rounds (ours in four modes, the C loop both ways,
  // fio's six), so the headline's "best mode" on each side comes from the same rounds.
  // `c`: the C loop's index among alternate's peers (after our other three modes).
  const ourModes = [
    { mode: "no SQPOLL", sqpoll: false, fixed: false, c: 3 },
    { mode: "SQPOLL (CQ spin)", sqpoll: true, fixed: false, c: 4 },
    { mode: "no SQPOLL, fixed buffers and file", sqpoll: false, fixed: true, c: undefined },
    { mode: "SQPOLL (CQ spin), fixed buffers", sqpoll: true, fixed: true, c: undefined },
  ];
  const ourRuns = ourModes.map((m) => () =>
    withCpu(() => ourRandomReads(fd, READ_FILE_SIZE, QD, m.sqpoll, SECONDS, m.fixed))
  );
  for (const m of ourModes) ourRandomReads(fd, READ_FILE_SIZE, QD, m.sqpoll, 0.3, m.fixed); // warm up the JIT
  const all = await alternate(
    ourRuns[0],
    [...ourRuns.slice(1), cRun(false), cRun(true), ...fioRuns],
    undefined,
    () => warm(file),
  );
  closeFd(fd);
  const fioMissing = "missing" in fio ? fio.missing : undefined;
  const cMissing = "missing" in peer ? peer.missing : undefined;
  const fioResults = fioCases.map((c, i) => ({ ...c, iops: all.peers[ourModes.length + 1 + i] }));
  // ours[i]: mode i's median (mode 0 is alternate's "ours", the others its first peers).
  const figure = (i: number) => (i === 0 ? all.ours : all.peers[i - 1]!);
  const cpu = (i: number) => (i === 0 ? all.oursCpu : all.peersCpu[i - 1]);
  const modes = ourModes.map((m, i) => ({ ...m, ours: figure(i), oursCpu: cpu(i) }));
  const ourBest = modes.reduce((a, b) => (b.ours > a.ours ? b : a));
  const fioBest = fioResults.filter((f) => f.iops !== null).sort((a, b) => b.iops! - a.iops!)[0];
  const unit = "IOPS";
  const rows: Row[] = [];
  rows.push({
    work: `4 KiB cached random reads, QD 32, IoUring (best mode: ${ourBest.mode})`,
    ours: ourBest.ours,
    peer: `fio io_uring, best of all ${fioCases.length} configurations${fioBest ? ` (${fioBest.name})` : ""}`,
    theirs: fioBest?.iops ?? null,
    unit,
    better: "higher",
    target: { op: ">=", value: 0.95 },
    missing: fioMissing,
  });
  for (const m of modes) {
    if (m.c !== undefined) {
      rows.push({
        work: `same, IoUring ${m.mode}`,
        ours: m.ours,
        peer: "C liburing, same loop",
        theirs: all.peers[m.c],
        unit,
        better: "higher",
        missing: cMissing,
        oursCpu: m.oursCpu,
        theirsCpu: all.peersCpu[m.c],
      });
    }
    for (const f of fioResults.filter((f) => f.sqpoll === m.sqpoll)) {
      rows.push({
        work: `same, IoUring ${m.mode}`,
        ours: m.ours,
        peer: f.name,
        theirs: f.iops,
        unit,
        better: "higher",
        missing: fioMissing,
      });
    }
  }
  printTable("4 KiB random reads of a cached file, QD 32: IoUring vs fio and C", rows);
}

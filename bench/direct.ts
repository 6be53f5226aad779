/**
 * O_DIRECT 4 KiB random reads at queue depth 32 from a file on the disk (/var/tmp, not tmpfs)
 * through `IoUring`: plain `READ` into page-aligned buffers, and `READ_FIXED` from a
 * `FixedBufferPool` (registered buffers), against `fio --direct=1 --ioengine=io_uring` without
 * and with `--fixedbufs`, in the same run, alternating, medians quoted, with the work per
 * CPU-second of each process next to it.
 *
 * The loop keeps 32 reads in flight; every completion is checked and its slot refilled with a
 * read at a new random 4 KiB-aligned offset. O_DIRECT reads complete from the device, not
 * inside the submit, so a round either waits in the kernel (`submitAndWait(1)`: the thread
 * sleeps until a completion arrives) or submits, then spins on the CQ tail for up to
 * {@link SPIN_CHECKS} checks (about half a millisecond) before it waits. In this VM a sleeping
 * vCPU wakes slowly, and the device is idle for that long. No SQPOLL on either side (fio's
 * default).
 *
 * A round reaps one completion and refills its slot, as fio does by default
 * (`iodepth_batch_complete_max` = 1): each `io_uring_enter` then submits one read and waits for
 * one. Reaping every ready completion per round and refilling them together measured ~15–20%
 * fewer IOPS on this VM's virtio disk, for C liburing in the same loop (68–70k → 80k) as for us,
 * and fio drops the same way with `--iodepth_batch_complete_max=32` (84k → 73k).
 * Run: `deno task bench:direct`.
 *
 * @module
 */

import {
  alignedBuffer,
  AT_FDCWD,
  type Cqe,
  cstring,
  FixedBufferPool,
  IoUring,
  O_DIRECT,
  O_RDONLY,
  prepClose,
  prepOpenat,
  prepRead,
  prepReadFixed,
} from "../mod.ts";
import {
  alternate,
  type Alternated,
  cachedFile,
  cpuSeconds,
  findFio,
  type LoopResult,
  type Measured,
  type Peer,
  printTable,
  randomBlocks,
  type Row,
  run,
  SECONDS,
  withCpu,
} from "./_lib.ts";

/** The random-read file (shared with bench:read), on the disk. */
const FILE = "256m.bin";
const FILE_SIZE = 256 << 20;
const BS = 4096;
const QD = 32;
/** CQ checks (~15 ns each) before a round that found nothing waits in the kernel. */
export const SPIN_CHECKS = 1 << 15;

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

const nextBlock = randomBlocks(0x2545f491);

/**
 * O_DIRECT random `BS` reads per second at depth `qd` on `fd` for `seconds`: `READ` into
 * page-aligned buffers, or (`fixed`) `READ_FIXED` from a registered {@link FixedBufferPool};
 * with `spin`, a round spins on the CQ before it waits.
 */
export function directRandomReads(
  fd: number,
  size: number,
  qd: number,
  fixed: boolean,
  spin: boolean,
  seconds: number,
): LoopResult {
  using ring = new IoUring(2 * qd, { sqpoll: false });
  const blocks = Math.floor(size / BS);
  using arena = alignedBuffer(qd * BS);
  using pool = fixed ? new FixedBufferPool(ring, { count: qd, size: BS }) : undefined;
  const bufs = Array.from(
    { length: qd },
    (_, i) => pool ? pool.acquire()!.bytes : arena.bytes.subarray(i * BS, (i + 1) * BS),
  );
  let bad = 0;
  const queue = (slot: number) => {
    let sqe = ring.getSqe();
    while (sqe === null) {
      ring.submit();
      sqe = ring.getSqe();
    }
    const offset = nextBlock(blocks) * BS;
    if (fixed) prepReadFixed(sqe, fd, bufs[slot], offset, slot).setUserData(slot);
    else prepRead(sqe, fd, bufs[slot], offset).setUserData(slot);
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
    if (spin) {
      ring.submit();
      for (let checks = 0; checks < SPIN_CHECKS && ring.cqReady() === 0; checks++);
      if (ring.cqReady() === 0) ring.submitAndWait(1);
    } else {
      ring.submitAndWait(1);
    }
    const cqe = ring.peekCqe();
    if (cqe !== null) {
      ring.cqAdvance(1);
      reap(cqe);
      ops++;
    }
    if (bad !== 0) throw new Error(`O_DIRECT read returned ${bad}`);
    if ((round & 15) === 0 && (t = performance.now()) >= end) break;
  }
  const cpu = cpuSeconds() - c0;
  // Let the reads still in flight finish before their buffers go.
  let left = qd;
  while (left > 0) {
    ring.submitAndWait(1);
    left -= ring.forEachCqe(() => {});
  }
  return { ops, opsPerSec: ops / ((t - t0) / 1000), cpuSeconds: cpu };
}

/**
 * One fio O_DIRECT random-read job (`--fixedbufs` when `fixedbufs`): its IOPS and its reads per
 * CPU-second (fio's own user + system time), or `null`.
 */
async function fioDirect(fio: Peer, file: string, fixedbufs: boolean): Promise<Measured | null> {
  if (!("path" in fio)) return null;
  const args = [
    "--name=direct",
    `--filename=${file}`,
    "--rw=randread",
    `--bs=${BS}`,
    "--ioengine=io_uring",
    `--iodepth=${QD}`,
    "--direct=1",
    "--time_based",
    `--runtime=${Math.round(SECONDS * 1000)}ms`,
    "--gtod_reduce=1", // as fioIops: no per-I/O clock reads, statistics or map of blocks read
    "--norandommap",
    "--randrepeat=0",
    "--ramp_time=0",
    "--numjobs=1",
    "--thread",
    "--output-format=json",
    ...(fixedbufs ? ["--fixedbufs"] : []),
  ];
  const r = await run(fio.path, args);
  if (r === null || r.code !== 0) {
    console.error(`bench: fio ${args.join(" ")} failed: ${r?.stderr.trim()}`);
    return null;
  }
  const job = JSON.parse(r.stdout.slice(r.stdout.indexOf("{"))).jobs[0];
  const cpuSeconds = ((job.usr_cpu + job.sys_cpu) / 100) * (job.read.runtime / 1000);
  return { value: job.read.iops, perCpu: cpuSeconds > 0 ? job.read.total_ios / cpuSeconds : undefined };
}

if (import.meta.main) {
  const file = cachedFile(FILE, FILE_SIZE, "none"); // made once; O_DIRECT reads bypass the cache
  const fio = await findFio();
  const p = cstring(file);
  const fd = once((ring) => prepOpenat(ring.getSqe()!, AT_FDCWD, p, O_RDONLY | O_DIRECT));
  const missing = "missing" in fio ? fio.missing : undefined;
  const rows: Row[] = [];
  for (const fixed of [false, true]) {
    for (const spin of [true, false]) {
      directRandomReads(fd, FILE_SIZE, QD, fixed, spin, 0.3); // warm up the JIT
      const r: Alternated = await alternate(
        () => withCpu(() => directRandomReads(fd, FILE_SIZE, QD, fixed, spin, SECONDS)),
        [() => fioDirect(fio, file, fixed)],
      );
      rows.push({
        work:
          `O_DIRECT 4 KiB random reads, QD 32, IoUring ${fixed ? "READ_FIXED (FixedBufferPool)" : "READ"}, ` +
          (spin ? "CQ spin then wait" : "waits in the kernel"),
        ours: r.ours,
        peer: `fio io_uring --direct=1${fixed ? " --fixedbufs" : ""}`,
        theirs: r.peers[0],
        unit: "IOPS",
        better: "higher",
        // Judged where both sides wait in the kernel for completions; the CQ spin trades CPU for
        // latency, which fio does not.
        ...(spin ? {} : { target: { op: ">=" as const, value: 0.9 } }),
        missing,
        oursCpu: r.oursCpu,
        theirsCpu: r.peersCpu[0],
      });
    }
  }
  once((ring) => prepClose(ring.getSqe()!, fd));
  printTable(
    `O_DIRECT 4 KiB random reads of ${file} (disk), QD 32: IoUring vs fio`,
    rows,
    "Both sides without SQPOLL. The device (virtio, no poll queues) sets the pace; what differs is " +
      "how soon each side notices a completion and refills the slot. Waiting in the kernel sleeps the " +
      "vCPU, which wakes slowly here; fio keeps its thread busier (one io_uring_enter per request, " +
      "DEFER_TASKRUN), the spinning loop busier still (more CPU per read).",
  );
}

/**
 * O_DIRECT 4 KiB random reads at queue depth 32 from a file on the disk (/var/tmp, not tmpfs)
 * through `IoUring`: plain `READ` into page-aligned buffers, and `READ_FIXED` from a
 * `FixedBufferPool` (registered buffers), against `fio --direct=1 --ioengine=io_uring` without
 * and with `--fixedbufs`, in the same run, alternating, medians quoted.
 *
 * The loop keeps 32 reads in flight: `submitAndWait(1)` (O_DIRECT reads complete from the
 * device, not inside the submit), then every completion is checked and its slot refilled with a
 * read at a new random 4 KiB-aligned offset. No SQPOLL on either side (fio's default).
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
  findFio,
  fioIops,
  printTable,
  type Row,
  SECONDS,
  withCpu,
} from "./_lib.ts";

/** The random-read file (shared with bench:read), on the disk. */
const FILE = "256m.bin";
const FILE_SIZE = 256 << 20;
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

let rng = 0x2545f491;
function nextBlock(blocks: number): number {
  rng ^= rng << 13;
  rng ^= rng >>> 17;
  rng ^= rng << 5;
  return (rng >>> 0) % blocks;
}

/**
 * O_DIRECT random `BS` reads per second at depth `qd` on `fd` for `seconds`: `READ` into
 * page-aligned buffers, or (`fixed`) `READ_FIXED` from a registered {@link FixedBufferPool}.
 */
export function directRandomReads(
  fd: number,
  size: number,
  qd: number,
  fixed: boolean,
  seconds: number,
): { ops: number; opsPerSec: number } {
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
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let t = t0;
  for (let round = 0;; round++) {
    ring.submitAndWait(1);
    ops += ring.forEachCqe(reap);
    if (bad !== 0) throw new Error(`O_DIRECT read returned ${bad}`);
    if ((round & 15) === 0 && (t = performance.now()) >= end) break;
  }
  // Let the reads still in flight finish before their buffers go.
  let left = qd;
  while (left > 0) {
    ring.submitAndWait(1);
    left -= ring.forEachCqe(() => {});
  }
  return { ops, opsPerSec: ops / ((t - t0) / 1000) };
}

if (import.meta.main) {
  const file = cachedFile(FILE, FILE_SIZE); // made once; O_DIRECT reads bypass the cache anyway
  const fio = await findFio();
  const p = cstring(file);
  const fd = once((ring) => prepOpenat(ring.getSqe()!, AT_FDCWD, p, O_RDONLY | O_DIRECT));
  const fioRun = (fixedbufs: boolean) => () =>
    fioIops(fio, {
      file,
      iodepth: QD,
      bs: BS,
      seconds: SECONDS,
      sqpoll: false,
      extra: ["--direct=1", ...(fixedbufs ? ["--fixedbufs"] : [])],
    });
  const results: Record<string, Alternated> = {};
  for (const fixed of [false, true]) {
    directRandomReads(fd, FILE_SIZE, QD, fixed, 0.3); // warm up the JIT
    results[fixed ? "fixed" : "plain"] = await alternate(
      () => withCpu(() => directRandomReads(fd, FILE_SIZE, QD, fixed, SECONDS)),
      [fioRun(fixed)],
    );
  }
  once((ring) => prepClose(ring.getSqe()!, fd));
  const missing = "missing" in fio ? fio.missing : undefined;
  const rows: Row[] = [
    {
      work: "O_DIRECT 4 KiB random reads, QD 32, IoUring READ (aligned buffers)",
      ours: results.plain.ours,
      peer: "fio io_uring --direct=1",
      theirs: results.plain.peers[0],
      unit: "IOPS",
      better: "higher",
      target: { op: ">=", value: 0.9 },
      missing,
    },
    {
      work: "same, IoUring READ_FIXED (FixedBufferPool)",
      ours: results.fixed.ours,
      peer: "fio io_uring --direct=1 --fixedbufs",
      theirs: results.fixed.peers[0],
      unit: "IOPS",
      better: "higher",
      target: { op: ">=", value: 0.9 },
      missing,
    },
  ];
  printTable(
    `O_DIRECT 4 KiB random reads of ${file} (disk), QD 32: IoUring vs fio`,
    rows,
    "Both sides without SQPOLL; the device (virtio, no poll queues) sets the pace, so the ratio " +
      "shows the per-I/O overhead of each side rather than a difference in peak rate.",
  );
}

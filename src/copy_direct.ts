/**
 * O_DIRECT copies (`direct: true`, `cp --direct`): both files are opened with `O_DIRECT`, data
 * moves through page-aligned buffers the module maps ({@link AlignedBuffer}), so neither side's
 * data passes through the page cache and a huge copy evicts nothing.
 *
 * Alignment: each file's `statx(STATX_DIOALIGN)` (6.1; 4096 when the kernel does not say); the
 * copy uses the largest of the source's and the destination's memory and offset alignments as
 * its unit, and blocks of the largest multiple of the unit that fits the (page-rounded) block
 * size.
 *
 * The unaligned tail: the last block is read with O_DIRECT in full units (the kernel returns the
 * bytes up to the end of the file), the rest of the buffer is zeroed, the whole unit-rounded
 * block is written with O_DIRECT, then the destination is cut to the real size with `ftruncate`.
 * Cutting a file inside a file-system block makes the file system zero the rest of that block
 * through the page cache, which leaves one dirty page behind; so such a file then gets an
 * `fdatasync` and `POSIX_FADV_DONTNEED` on its last page, and the copy leaves no page of the
 * destination in the page cache. (Aligned sizes need neither.)
 *
 * Buffers: registered with the copy's `Uring` as fixed buffers when it can ({@link CopyFixedBuffers}:
 * no pool there yet, at most {@link MAX_FIXED_POOL_BYTES}), so every read and write goes as
 * `READ_FIXED`/`WRITE_FIXED`; the pool is unregistered when the copy ends. Otherwise (another
 * pool there, registration refused, too much memory to pin) they are plain page-aligned mappings.
 *
 * The `statx` of the open files and the `fadvise` run on a small private ring of this module:
 * `Uring` has no `fadvise`, and the copy works on raw fds (`openFd`), whose `statx` through
 * `Uring` does not ask for `STATX_DIOALIGN` (only `UringFile.stat()` does).
 *
 * A file whose file system refuses O_DIRECT (`openat` fails with `EINVAL`: ramfs, some FUSE and
 * network file systems, tmpfs before 6.6) is an error naming the file and O_DIRECT; there is no
 * silent fallback to buffered I/O (copy without `direct` instead).
 *
 * @module
 */

import { AT_EMPTY_PATH, POSIX_FADV_DONTNEED, STATX_BASIC_STATS, STATX_DIOALIGN } from "./abi.ts";
import { AlignedBuffer, DEFAULT_ALIGNMENT, withHeldMemory } from "./aligned.ts";
import type { FixedBufferPool } from "./fixed_pool.ts";
import type { EngineContext, EntryStat } from "./copy_engine.ts";
import { codeOf, dirnameOf, staged, tagStage } from "./copy_errors.ts";
import { CopyFixedBuffers, MAX_FIXED_POOL_BYTES } from "./copy_fixed.ts";
import { type Crew, runWorkers } from "./copy_workers.ts";
import { DataRangeWalk, HOLE_GRAIN, writeBlockData } from "./copy_uring_engine.ts";
import { type DirectAlignment, directAlignmentFromStatx } from "./direct.ts";
import { operationError } from "./deno_errors.ts";
import { errno } from "./errno.ts";
import { cstring } from "./memory.ts";
import { prepFadvise, prepStatx } from "./prep.ts";
import { IoUring, makeRingDyingWithThread } from "./ring.ts";
import { parseStatx, statxBuffer } from "./structs.ts";
import { holdsKernelMemory } from "./thread_memory.ts";
import type { Uring } from "./uring.ts";

/** Alignment of every buffer of an O_DIRECT copy (a page). */
export const DIRECT_BUFFER_ALIGNMENT: number = DEFAULT_ALIGNMENT;
export { MAX_FIXED_POOL_BYTES };
/** Granularity of the page cache the tail clean-up works in (the smallest Linux page). */
const PAGE = 4096;
const EINVAL = errno("EINVAL");
const EIO = errno("EIO");
/** What to assume when `statx` cannot tell (as `directAlignment` does). */
const UNKNOWN_ALIGNMENT: DirectAlignment = Object.freeze({
  memory: DIRECT_BUFFER_ALIGNMENT,
  offset: DIRECT_BUFFER_ALIGNMENT,
  source: "default",
});

/** `n` rounded up to a multiple of `unit`. */
export function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** `n` rounded down to a multiple of `unit`. */
export function roundDown(n: number, unit: number): number {
  return Math.floor(n / unit) * unit;
}

/** Bytes per buffer of an O_DIRECT copy with `blockSize`: rounded up to a page. */
export function directBufferSize(blockSize: number): number {
  return roundUp(blockSize, DIRECT_BUFFER_ALIGNMENT);
}

/**
 * The unit an O_DIRECT copy between files with alignments `a` and `b` moves data in: the largest
 * of their memory and offset alignments (so a resumed read or write stays aligned in memory and
 * in the file). Throws a `RangeError` when the copy's buffers cannot satisfy it.
 */
export function directUnit(a: DirectAlignment, b: DirectAlignment, bufferSize: number): number {
  const unit = Math.max(a.memory, a.offset, b.memory, b.offset);
  if (unit > bufferSize) {
    throw new RangeError(
      `O_DIRECT on these files needs blocks of ${unit} bytes: use a block size of at least ${unit}`,
    );
  }
  if (Math.max(a.memory, b.memory) > DIRECT_BUFFER_ALIGNMENT) {
    throw new RangeError(
      `O_DIRECT on these files needs buffers aligned to ${
        Math.max(a.memory, b.memory)
      } bytes (the copy's are aligned to ${DIRECT_BUFFER_ALIGNMENT})`,
    );
  }
  return unit;
}

/** The errors {@link directRefusedError} and {@link directUnsupportedError} made, by side. */
const refusals = new WeakMap<object, "source" | "destination">();

/**
 * The side whose file refused O_DIRECT, for an error made by {@link directRefusedError} or
 * {@link directUnsupportedError} or one whose cause chain holds one; else `undefined`.
 */
export function directRefusalSide(e: unknown): "source" | "destination" | undefined {
  for (let depth = 0; typeof e === "object" && e !== null && depth < 8; depth++) {
    const side = refusals.get(e);
    if (side !== undefined) return side;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * The error for a file whose file system refused O_DIRECT (`openat` gave `EINVAL`): names the
 * file and O_DIRECT, keeps `code`/`errno`/`cause`. `side` says which file it was.
 */
export function directRefusedError(cause: unknown, path: string, side: "source" | "destination"): Error {
  const what = side === "source"
    ? `source '${path}' cannot be opened with O_DIRECT`
    : `the destination directory '${dirnameOf(path)}' does not support O_DIRECT`;
  const error = new Error(
    `${what}: its file system refuses direct I/O (EINVAL); copy without direct / --direct`,
    { cause },
  ) as Error & { code: string; errno: number; syscall: string };
  error.code = "EINVAL";
  error.errno = EINVAL;
  error.syscall = "open";
  refusals.set(error, side);
  return error;
}

/**
 * The error for a file that opened with O_DIRECT but whose `statx` (`STATX_DIOALIGN`) reports no
 * direct I/O for it (alignments 0): the kernel would quietly do buffered I/O there (ext4's
 * `data=journal`, inline data, fs-verity, ...). A `Deno.errors.NotSupported`: no system call
 * failed. Counted as a refusal, as {@link directRefusedError}'s are.
 */
export function directUnsupportedError(path: string, side: "source" | "destination"): Error {
  const what = side === "source" ? `source '${path}'` : `the destination directory '${dirnameOf(path)}'`;
  const error = new Deno.errors.NotSupported(
    `${what}: statx (STATX_DIOALIGN) reports no direct I/O for it (its file system, or a mode such as ext4's ` +
      "data=journal, inline data or fs-verity, where O_DIRECT is quietly buffered); copy without direct / --direct",
  );
  refusals.set(error, side);
  return error;
}

/** True for the error an `O_DIRECT` open gives when the file system refuses direct I/O. */
export function isDirectRefusal(e: unknown): boolean {
  return codeOf(e) === "EINVAL";
}

/**
 * The per-copy part of O_DIRECT: the aligned buffers (registered with the copy's `Uring` when it
 * can; released on {@link DirectIo.close}, after every operation on them has completed) and a
 * private two-entry ring for `statx` on open files and `fadvise`. Synchronous calls on that
 * ring do no I/O (metadata of an open file, dropping a clean page), so they never block for long.
 */
export class DirectIo {
  /** Bytes per buffer (the block size rounded up to a page). */
  readonly bufferSize: number;
  readonly #fixed: CopyFixedBuffers;
  readonly #buffers: AlignedBuffer[] = [];
  /** Whether the buffers map held memory (a Worker's copy: see `thread_memory.ts`). */
  readonly #held: boolean;
  #ring: IoUring | null | undefined;
  readonly #statx = statxBuffer();
  readonly #empty = cstring("");

  /**
   * State for a copy with `count` buffers of `directBufferSize(blockSize)` bytes, made on demand
   * and registered with `uring` when possible.
   */
  constructor(blockSize: number, count: number, uring?: Uring) {
    this.bufferSize = directBufferSize(blockSize);
    this.#fixed = new CopyFixedBuffers(uring, count, this.bufferSize, DIRECT_BUFFER_ALIGNMENT);
    this.#held = uring !== undefined && holdsKernelMemory(uring.ring);
  }

  /**
   * Says the copy will move about `bytes` bytes: a copy too small to pay for registering its
   * buffers uses plain mappings (see `CopyFixedBuffers.expect`). Call before the first buffer.
   */
  expect(bytes: number): void {
    this.#fixed.expect(bytes);
  }

  /** The registered pool the buffers come from, or `null` when they are plain mappings. */
  get fixedPool(): FixedBufferPool | null {
    return this.#fixed.pool;
  }

  /**
   * A page-aligned buffer: one of the registered pool's (made on the first call) or a new
   * mapping, freed by {@link DirectIo.close}. At most `count` are asked for.
   */
  makeBuffer(): Uint8Array<ArrayBuffer> {
    const fixed = this.#fixed.take();
    if (fixed !== null) return fixed;
    const make = () => new AlignedBuffer(this.bufferSize, DIRECT_BUFFER_ALIGNMENT);
    const buf = this.#held ? withHeldMemory(make) : make();
    this.#buffers.push(buf);
    return buf.bytes;
  }

  /** The private ring, made on first use; `null` when it cannot be set up. */
  #privateRing(): IoUring | null {
    if (this.#ring === undefined) {
      try {
        // (Its memory goes with this thread: a Worker terminated mid-copy leaves it behind otherwise.)
        this.#ring = makeRingDyingWithThread(() => new IoUring(2, { sqpoll: false }));
      } catch {
        this.#ring = null;
      }
    }
    return this.#ring;
  }

  #run(prep: (ring: IoUring) => void): number | null {
    const ring = this.#privateRing();
    if (ring === null) return null;
    prep(ring);
    ring.submitAndWait(1);
    const res = ring.peekCqe()!.res;
    ring.cqAdvance(1);
    return res;
  }

  /**
   * The O_DIRECT alignment of the open file `fd` (`statx(STATX_DIOALIGN)`, 4096 when unknown),
   * or `null` when the kernel says the file does not support O_DIRECT.
   */
  alignmentOf(fd: number): DirectAlignment | null {
    const res = this.#run((ring) =>
      prepStatx(
        ring.getSqe()!,
        fd,
        this.#empty,
        AT_EMPTY_PATH,
        STATX_BASIC_STATS | STATX_DIOALIGN,
        this.#statx,
      )
    );
    if (res === null || res < 0) return UNKNOWN_ALIGNMENT;
    return directAlignmentFromStatx(parseStatx(this.#statx));
  }

  /**
   * Drops the clean pages of `fd` from `offset` to the end of the file from the page cache
   * (`POSIX_FADV_DONTNEED`). Best effort: failures are ignored (it is advice).
   */
  dropCache(fd: number, offset: number): void {
    this.#run((ring) => prepFadvise(ring.getSqe()!, fd, offset, 0, POSIX_FADV_DONTNEED));
  }

  /** Whether `e`, from an `O_DIRECT` open, means the file system refuses direct I/O. */
  refused(e: unknown): boolean {
    return isDirectRefusal(e);
  }

  /** {@link directRefusedError}: the error naming the file that refused O_DIRECT. */
  refusedError(cause: unknown, path: string, side: "source" | "destination"): Error {
    return directRefusedError(cause, path, side);
  }

  /** Runs {@link pumpDirect} with this copy's O_DIRECT state. */
  pump(p: Omit<DirectPump, "direct">): Promise<number> {
    return pumpDirect({ ...p, direct: this });
  }

  /** Unregisters and frees the buffers, closes the private ring (once nothing uses them). */
  close(): void {
    this.#fixed.close();
    for (const buf of this.#buffers) buf.free();
    this.#buffers.length = 0;
    this.#ring?.close();
    this.#ring = undefined;
  }
}

/** What {@link pumpDirect} works with. */
export interface DirectPump {
  /** The ring the data moves through. */
  uring: Uring;
  /** Runs one operation under the copy's in-flight budget. */
  op<T>(fn: () => Promise<T>): Promise<T>;
  /** The copy's shared state (buffers come from its pool). */
  ctx: EngineContext;
  /** The per-copy O_DIRECT state. */
  direct: DirectIo;
  /** The source, open with O_DIRECT. */
  srcFd: number;
  /** The destination, open with O_DIRECT. */
  dstFd: number;
  /** The source's path (for messages). */
  srcPath: string;
  /** The destination's path (for messages, and the `truncate` fallback before 6.9). */
  dstPath: string;
  /** The source as looked at. */
  srcStat: EntryStat;
  /**
   * Where a sparse source's data is, as `[start, end)` pairs (`SEEK_DATA`/`SEEK_HOLE`), so no
   * hole is read; `null` to read every block (a dense source, or a file system that cannot tell).
   */
  ranges: number[] | null;
}

/**
 * Moves `srcStat.size` bytes from `srcFd` to `dstFd`, both open with O_DIRECT, with up to
 * `queueDepth` aligned blocks in flight; handles the unaligned tail as the module notes say.
 * Returns the bytes in the copy (fewer when the source shrank meanwhile).
 */
export async function pumpDirect(p: DirectPump): Promise<number> {
  const { uring, ctx, direct, srcFd, dstFd, srcStat } = p;
  const size = srcStat.size;
  if (size === 0) return 0;
  const srcAlign = direct.alignmentOf(srcFd);
  const dstAlign = direct.alignmentOf(dstFd);
  if (srcAlign === null) throw tagStage(directUnsupportedError(p.srcPath, "source"), "open-source");
  if (dstAlign === null) throw tagStage(directUnsupportedError(p.dstPath, "destination"), "create");
  const unit = directUnit(srcAlign, dstAlign, direct.bufferSize);
  const chunk = roundDown(direct.bufferSize, unit);
  const signal = ctx.signal;
  const pool = ctx.pool;
  const sparse = srcStat.blocks * 512 < size;
  const grain = roundUp(HOLE_GRAIN, unit); // hole detection in whole units of O_DIRECT
  // The data ranges, widened to whole units (O_DIRECT moves nothing smaller).
  const walk = p.ranges === null ? null : new DataRangeWalk(p.ranges, unit);
  let next = 0;
  let end = size;
  let holes = false;
  let counted = 0; // (by ctx.addBytes: more than `end` when the source shrank meanwhile)

  const readAt = (buf: Uint8Array, at: number) =>
    p.op(() => uring.read(srcFd, buf, at, { signal })).catch((e) => {
      throw tagStage(e, "read");
    });
  const writeAt = (buf: Uint8Array, at: number) =>
    p.op(() => uring.write(dstFd, buf, at, { signal })).catch((e) => {
      throw tagStage(e, "write");
    });

  /** Writes `buf[from, to)` (whole units) at `offset + from`; a short write resumes from its last whole unit. */
  const writeAll = async (buf: Uint8Array, from: number, to: number, offset: number): Promise<void> => {
    let done = from;
    while (done < to) {
      const n = await writeAt(buf.subarray(done, to), offset + done);
      const resumed = n <= 0 ? done : roundDown(done + n, unit);
      if (resumed <= done) {
        // Less than one O_DIRECT unit went in, so the rest cannot be resumed aligned: the kernel
        // stops a write short at a full device or at the process's file size limit.
        const detail = `O_DIRECT write of ${to - done} bytes at ${offset + done} moved ${n}, less than one ` +
          `unit (${unit}): the destination's device is full, or the file reached the process's file ` +
          "size limit (ulimit -f)";
        throw tagStage(operationError("write", EIO, null, null, dstFd, detail), "write");
      }
      done = resumed;
    }
  };

  const worker = async (crew: Crew): Promise<void> => {
    while (!crew.failed && next < end) {
      let limit = end;
      if (walk !== null) {
        const data = walk.dataFrom(next, end);
        if (data > next) { // a hole: nothing to read or write there
          ctx.addBytes(data - next);
          counted += data - next;
          next = data;
          holes = true;
          if (next >= end) break;
        }
        limit = walk.dataEnd(end);
      }
      const offset = next;
      const want = Math.min(chunk, limit - offset); // real bytes of this block
      next = offset + want;
      const span = roundUp(want, unit); // what O_DIRECT moves: whole units
      const buf = await pool.take();
      try {
        let got = 0;
        while (got < want) {
          const n = await readAt(buf.subarray(got, span), offset + got);
          if (n === 0) break; // end of file: the source shrank since it was looked at
          got += n;
          // O_DIRECT stops short of a unit only at the end of the file: the source shrank.
          if (got < want && got % unit !== 0) break;
        }
        if (got > want) got = want; // the source grew: copy what was looked at
        if (got < want) end = Math.min(end, offset + got);
        if (got === 0) continue;
        const put = roundUp(got, unit);
        if (put > got) buf.fill(0, got, put); // no stale bytes of an earlier block past the end
        // Grains are whole units, so the runs of data stay aligned for O_DIRECT.
        if (await writeBlockData(buf, put, offset, sparse, grain, writeAll)) holes = true;
        ctx.addBytes(got);
        counted += got;
      } finally {
        pool.give(buf);
      }
    }
  };

  await runWorkers(Math.min(ctx.pool.count, Math.ceil(size / chunk)), worker);
  if (counted > end) ctx.countCut(counted - end); // blocks past the end the source shrank to
  if (holes || end !== size || end % unit !== 0) {
    // The last block went out whole (or trailing holes were never written): set the real size.
    await staged("write", truncate(p, end));
    if (end % PAGE !== 0) {
      // Cutting inside a block left its last page dirty in the page cache: write it, drop it.
      await staged("write", p.op(() => uring.fsync(dstFd, { datasync: true, signal })));
      direct.dropCache(dstFd, roundDown(end, PAGE));
    }
  }
  return end;
}

/** `ftruncate` through the ring (6.9), or `truncate(path)` where the ring lacks it. */
async function truncate(p: DirectPump, length: number): Promise<void> {
  try {
    await p.op(() => p.uring.ftruncate(p.dstFd, length, { signal: p.ctx.signal }));
  } catch (e) {
    if (codeOf(e) !== "EINVAL" && codeOf(e) !== "EOPNOTSUPP") throw e;
    await p.op(() => Deno.truncate(p.dstPath, length));
  }
}

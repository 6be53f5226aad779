/**
 * The io_uring engine of the copy: `openat`/`statx`/`read`/`write`/`close`/`renameat`/`mkdirat`/
 * `symlinkat` through one `Uring`, every operation holding one permit of the copy's global
 * in-flight budget. A file's data moves through a pipeline of up to `queueDepth` blocks: each
 * block's read feeds its write from the same pooled buffer, short reads and writes are resumed,
 * offsets are 64-bit, and all-zero 64 KiB grains of a sparse source become holes.
 *
 * @module
 */

import {
  AT_SYMLINK_NOFOLLOW,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_EXCL,
  O_NOFOLLOW,
  O_RDONLY,
  O_WRONLY,
  RENAME_NOREPLACE,
  SEEK_DATA,
  SEEK_HOLE,
  STATX_BASIC_STATS,
  STATX_BTIME,
} from "./abi.ts";
import {
  birthMs,
  DESCRIPTOR_SHARES,
  type Engine,
  type EngineContext,
  type EntryStat,
  kindOfMode,
  sameFile,
} from "./copy_engine.ts";
import { codeOf, SourceReplaced, staged, tagStage } from "./copy_errors.ts";
import type { ChainResult } from "./chain.ts";
import {
  type LaneShelf,
  reserveFilePair,
  SmallFileChains,
  SOURCE_REPLACED,
  SOURCE_SUSPECT,
} from "./copy_small.ts";
import { SPLICE_PIPES, spliceData, SplicePipes, SpliceUnsupported } from "./copy_splice.ts";
import { type Crew, runWorkers } from "./copy_workers.ts";
import { operationError } from "./deno_errors.ts";
import { errno } from "./errno.ts";
import { ClosedError } from "./errors.ts";
import { parseStatx, type Statx, statxBuffer } from "./structs.ts";
import { cstring, cstringInto } from "./memory.ts";
import { checkAccess, checkGrant } from "./permissions.ts";
import { getSys, type Sys } from "./sys.ts";
import { holdsKernelMemory } from "./thread_memory.ts";
import { destinationOps, type Uring } from "./uring.ts";

/**
 * The `st_dev` number of a device (glibc's `makedev`), as `Deno.FileInfo.dev` holds it, from the
 * major and minor numbers `statx` reports: so that ids from either engine compare equal.
 */
export function makedev(major: number, minor: number): number {
  return Math.floor(major / 0x1000) * 2 ** 44 + Math.floor(minor / 0x100) * 2 ** 20 +
    (major & 0xfff) * 0x100 +
    (minor & 0xff);
}

/** A `statx` result as the copy needs it. */
export function entryFromStatx(s: Statx, noFollow = false): EntryStat {
  return {
    kind: kindOfMode(s.mode),
    perm: s.mode & 0o7777,
    size: s.size,
    blocks: s.blocks,
    atime: s.atime.sec + s.atime.nsec / 1e9,
    mtime: s.mtime.sec + s.mtime.nsec / 1e9,
    timesNs: [s.atime.sec, s.atime.nsec, s.mtime.sec, s.mtime.nsec],
    id: `${makedev(s.devMajor, s.devMinor)}:${s.ino}`, // as entryFromFileInfo's
    ino: Number(s.ino),
    btimeMs: s.mask & STATX_BTIME ? birthMs(s.btime.sec, s.btime.nsec) : 0,
    ...(s.mask & STATX_BTIME ? { btimeNsec: s.btime.nsec } : {}),
    noFollow,
  };
}

const ENOENT = errno("ENOENT");

/** Path memory of {@link statNow} (grown as needed; one look at a time: it is synchronous). */
let lookPath: Uint8Array<ArrayBuffer> | null = null;
/** The `struct statx` {@link statNow} fills. */
const lookStatx = statxBuffer();
/** Path memory of {@link UringEngine.rename}'s two paths (grown as needed). */
let renameFrom: Uint8Array<ArrayBuffer> | null = null;
let renameTo: Uint8Array<ArrayBuffer> | null = null;

/**
 * `statx` of `path` now, on this thread (a system call through `sys`: no io-wq worker, no
 * promise), following a final symlink when `follow`, with every time to the nanosecond (Deno's
 * `lstat` gives birth times in ms). Asks Deno's permissions first, as Deno's own `lstat` does
 * (read access; `--allow-all` under `/dev`, `/proc` and `/sys`, unless `below`: a tree's entry,
 * below a directory that passed that check; with `dest`, a copy's destination: write access will
 * do too, as a copy may write where it may not read (as `Deno.copyFile` may), and the entry is not
 * marked `noFollow`). Throws the `stat`/`lstat` error.
 */
export function statNow(sys: Sys, path: string, follow: boolean, below?: boolean, dest?: boolean): EntryStat;
/** {@link statNow}, returning `undefined` for a path with nothing there (`ENOENT`), no error made. */
export function statNow(
  sys: Sys,
  path: string,
  follow: boolean,
  below: boolean,
  dest: boolean,
  missing: true,
): EntryStat | undefined;
export function statNow(
  sys: Sys,
  path: string,
  follow: boolean,
  below = false,
  dest = false,
  missing = false,
): EntryStat | undefined {
  const op = follow ? "stat" : "lstat";
  // An entry of a directory that passed is special only as `/`'s `dev`, `proc` or `sys` is.
  const name = below ? path.slice(path.lastIndexOf("/") + 1) : "";
  let denied = below && name !== "dev" && name !== "proc" && name !== "sys"
    ? checkGrant(op, "read", path)
    : checkAccess(op, "read", path);
  // (A destination: write permission will do too.)
  if (denied !== null && dest) denied = checkAccess(op, "write", path);
  if (denied !== null) throw denied;
  const bytes = cstringInto(path, lookPath);
  if (bytes.buffer !== lookPath?.buffer) lookPath = new Uint8Array(bytes.buffer);
  const r = sys.statx(bytes, follow ? 0 : AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, lookStatx);
  if (r === -ENOENT && missing) return undefined;
  if (r < 0) throw operationError(op, -r, path);
  return entryFromStatx(parseStatx(lookStatx), !follow && !dest);
}

/**
 * Whether `src` now names another file than the one `st` describes (see `sameFile`), once its
 * copy is written: a file renamed over it since it was looked at would have been opened instead,
 * and only its first `st.size` bytes copied. Looked at as `st` was (through a final symlink or
 * not), on this thread, with {@link statNow} (a few µs; the one-block chains ask the kernel
 * instead, in the chain, and come here only when its `statx` found nothing). False when nothing
 * is there now (the file was removed or moved away after it was opened: what was copied came
 * from one open file) or it cannot be told.
 */
function replacedSince(sys: Sys, src: string, st: EntryStat): boolean {
  // A file looked at as empty was read to its end, whatever file it was: one version whole (and
  // /proc's files, which say 0, are other files seen from the kernel's worker threads).
  if (!st.ino || st.size === 0) return false;
  let now: EntryStat;
  try {
    now = statNow(sys, src, !st.noFollow);
  } catch {
    return false;
  }
  return !sameFile(st, now.ino ?? 0, now.btimeMs ?? 0, now.btimeNsec);
}

/**
 * True when the first `length` bytes of `buf` are all zero. Reads 32-bit words, eight at a
 * time (about 0.1 s per GiB here), so it only runs for sources that have holes.
 */
export function isZeroBlock(buf: Uint8Array, length: number): boolean {
  const words = length >>> 2;
  if (buf.byteOffset % 4 === 0) {
    const w = new Int32Array(buf.buffer, buf.byteOffset, words);
    let i = 0;
    for (; i + 8 <= words; i += 8) {
      if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) {
        return false;
      }
    }
    for (; i < words; i++) if (w[i] !== 0) return false;
    for (let j = words * 4; j < length; j++) if (buf[j] !== 0) return false;
    return true;
  }
  for (let j = 0; j < length; j++) if (buf[j] !== 0) return false;
  return true;
}

/**
 * Granularity of hole detection inside a block: 64 KiB of the file. A sparse source's data is
 * written in runs of whole grains that hold a non-zero byte, so a block larger than the grain
 * (1 MiB, say) still leaves the all-zero grains around a little data as holes.
 */
export const HOLE_GRAIN = 64 * 1024;

/**
 * The runs of `buf[0, length)` holding data, as flat `[start, end, start, end, ...]` offsets into
 * `buf`: consecutive grains with a non-zero byte merge into one run, all-zero grains are left out.
 * Grains are aligned to the file (`buf[0]` is at file offset `offset`), so run edges inside the
 * block are multiples of `grain` in the file; the last run may end at `length`.
 */
export function dataRuns(buf: Uint8Array, length: number, offset: number, grain = HOLE_GRAIN): number[] {
  const runs: number[] = [];
  let pos = 0;
  let start = -1;
  while (pos < length) {
    const next = Math.min(length, pos + grain - ((offset + pos) % grain));
    const zero = isZeroBlock(pos === 0 ? buf : buf.subarray(pos), next - pos);
    if (!zero && start < 0) start = pos;
    if (zero && start >= 0) {
      runs.push(start, pos);
      start = -1;
    }
    pos = next;
  }
  if (start >= 0) runs.push(start, length);
  return runs;
}

/**
 * A walk over a sparse source's data, as `[start, end)` pairs (`SEEK_DATA`/`SEEK_HOLE`) widened
 * to whole `unit`s (1, or O_DIRECT's), shared by the workers of one copy, which ask in file order:
 * where data starts at or after a position ({@link DataRangeWalk.dataFrom}), and where that data
 * ends ({@link DataRangeWalk.dataEnd}). The holes between are skipped, never read.
 */
export class DataRangeWalk {
  /** The index in `ranges` of the first pair not wholly behind the position last asked about. */
  #at = 0;

  /** A walk over `ranges` (flat `[start, end, ...]`, in order), widened to multiples of `unit`. */
  constructor(readonly ranges: readonly number[], readonly unit = 1) {}

  /** Where data starts at or after `next`, or `end` when none does before it. */
  dataFrom(next: number, end: number): number {
    const ranges = this.ranges, unit = this.unit;
    while (this.#at < ranges.length && Math.ceil(ranges[this.#at + 1] / unit) * unit <= next) this.#at += 2;
    return this.#at < ranges.length ? Math.min(Math.floor(ranges[this.#at] / unit) * unit, end) : end;
  }

  /** Where the data `dataFrom` last found ends, at most `end`. */
  dataEnd(end: number): number {
    return Math.min(end, Math.ceil(this.ranges[this.#at + 1] / this.unit) * this.unit);
  }
}

/**
 * Writes block `buf[0, length)` (file offset `offset`) with `writeAll(buf, from, to, offset)`:
 * whole, or for a `sparse` source only the runs of `grain`-sized grains holding data, so the zero
 * grains stay holes. Resolves with whether it left any hole.
 */
export async function writeBlockData(
  buf: Uint8Array,
  length: number,
  offset: number,
  sparse: boolean,
  grain: number,
  writeAll: (buf: Uint8Array, from: number, to: number, offset: number) => Promise<void>,
): Promise<boolean> {
  if (!sparse) {
    await writeAll(buf, 0, length, offset);
    return false;
  }
  const runs = dataRuns(buf, length, offset, grain);
  let data = 0;
  for (let r = 0; r < runs.length; r += 2) {
    await writeAll(buf, runs[r], runs[r + 1], offset);
    data += runs[r + 1] - runs[r];
  }
  return data < length;
}

/**
 * Permits the chain that copies a file of one block holds: one per operation that opens, moves
 * or closes (six). Its seventh member, the closing `statx` that checks the source is still the
 * same file, holds no file and no buffer, and rides along.
 */
export const SMALL_CHAIN = 6;

/**
 * Whether a file is copied by one linked chain ({@link UringEngine.copySmall}): not empty, at
 * most one block, and dense (a sparse file goes block by block so its holes stay holes).
 */
export function isSmallDense(st: EntryStat, blockSize: number): boolean {
  return st.size > 0 && st.size <= blockSize && st.blocks * 512 >= st.size;
}

/**
 * The flags a copy opens its source with: read-only, and `O_NOFOLLOW` when it was looked at with
 * `lstat` (see `EntryStat.noFollow`).
 */
function sourceFlags(st: EntryStat): number {
  return st.noFollow ? O_RDONLY | O_NOFOLLOW : O_RDONLY;
}

/** `lseek(SEEK_DATA)`'s answer when no data follows the offset. */
const ENXIO = errno("ENXIO");

/** The engine over a `Uring`; closes the ring at the end only when it made it (`owned`). */
export class UringEngine implements Engine {
  /** Always `"io_uring"`. */
  readonly name = "io_uring" as const;
  readonly #uring: Uring;
  readonly #owned: boolean;
  /** The one-block chains (made on first use; null when the kernel cannot skip CQEs). */
  #small: SmallFileChains | null | undefined = undefined;
  /** Removes the listener that cancels the one-block chains when the copy stops. */
  #unlisten: () => void = () => {};
  /** The pipes of the block path's splice lanes (made on first use). */
  #pipes: SplicePipes | undefined;
  /** False once a splice failed with `EINVAL`: the rest of the copy reads and writes. */
  #splicing = true;
  /**
   * Members a chain may have on this ring (a caller's `Uring` may be smaller than the copy's
   * budget): a one-block chain needs six, a splice lane two.
   */
  readonly #chainRoom: number;
  /** The system layer of the ring's backend ({@link statNow}'s calls). */
  readonly #sys: Sys;

  /** Free one-block lanes kept between the copies on this ring, if it keeps any (see `LaneShelf`). */
  readonly #shelf: LaneShelf | undefined;

  /**
   * Whether the files the copy opens are listed with the helper, to be closed if this thread
   * exits with them open (a Worker terminated mid-copy: see `Sys.holdFd`): on the rings whose
   * kernel memory outlives a Worker (`thread_memory.ts`).
   */
  readonly #holdFds: boolean;

  /** Wraps `uring`; `owned` means `close()` closes it; `shelf`: the lanes kept for the ring, if any. */
  constructor(uring: Uring, owned: boolean, shelf?: LaneShelf) {
    this.#uring = uring;
    this.#owned = owned;
    this.#shelf = shelf;
    this.#sys = getSys(uring.ring.backend);
    this.#chainRoom = Math.min(uring.ring.sqEntries, uring.ring.cqEntries);
    this.#holdFds = this.#sys.holdFd !== undefined && holdsKernelMemory(uring.ring);
  }

  /** `fd`, just opened by the copy, listed with the helper where {@link UringEngine.#holdFds}. */
  #opened = (fd: number): number => {
    if (this.#holdFds) this.#sys.holdFd!(fd);
    return fd;
  };

  /** The `Uring` the engine runs on. */
  get uring(): Uring {
    return this.#uring;
  }

  /**
   * Takes `ops` permits of the in-flight budget after the event loop's turn when one is due:
   * `undefined` when that is done now, else a promise that resolves once it is.
   */
  #admit(ctx: EngineContext, ops: number): Promise<void> | undefined {
    const breather = ctx.breather();
    if (breather === undefined && ctx.inflight.tryAcquire(ops)) return undefined;
    return (async () => {
      if (breather !== undefined) await breather;
      if (!ctx.inflight.tryAcquire(ops)) await ctx.inflight.acquire(ops);
    })();
  }

  /**
   * Removes the incomplete file `tmp` with {@link UringEngine.unlink} (holding a permit of the
   * budget when `ctx` is given). Never throws.
   */
  async #removeIncomplete(tmp: string, ctx?: EngineContext): Promise<void> {
    await (ctx === undefined ? this.unlink(tmp) : this.#op(ctx, () => this.unlink(tmp))).catch(() => {});
  }

  /** Runs one ring call holding `ops` permits of the in-flight budget (one per operation). */
  async #op<T>(ctx: EngineContext, fn: () => Promise<T>, ops = 1): Promise<T> {
    const admitting = this.#admit(ctx, ops);
    if (admitting !== undefined) await admitting;
    try {
      return await fn();
    } finally {
      ctx.inflight.release(ops);
    }
  }

  /**
   * Closes `fd` (from `openFd`) through the ring. When the Uring was closed under the copy before
   * this close reached the kernel (`ClosedError`, or `ECANCELED` for one still queued then), the
   * descriptor is still open and nothing else will close it: a plain `close(2)` through the
   * system layer does, with its error reported as the ring's would be.
   */
  async #closeFd(fd: number, ctx: EngineContext): Promise<void> {
    const uring = this.#uring;
    try {
      await this.#op(ctx, () => {
        // (Off the list as the close is queued: the number is free once the kernel has closed it.)
        if (this.#holdFds) this.#sys.unholdFd!(fd);
        return uring.close(fd);
      });
    } catch (e) {
      if (!uring.closed || !(e instanceof ClosedError || codeOf(e) === "ECANCELED")) throw e;
      const r = getSys(uring.ring.backend).close(fd);
      if (r < 0) throw operationError("close", -r, null, null, fd);
    }
  }

  /**
   * `statx` (following symlinks when `follow`), on this thread ({@link statNow}): a few µs,
   * where the ring's `statx` goes to an io-wq worker and back (4,000 one-block `copyFile`s, 32
   * at a time: 12-18% less time with both of a copy's looks made so).
   */
  stat(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat> {
    return this.#look(path, follow, false, ctx);
  }

  /** {@link statNow}: `statx` of `path` now, on this thread. */
  statNow(path: string, follow: boolean, below = false): EntryStat {
    return statNow(this.#sys, path, follow, below);
  }

  /**
   * `statx` of a destination path, on this thread as {@link UringEngine.stat}: read or write
   * permission will do (see {@link statNow}).
   */
  statDest(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat> {
    return this.#look(path, follow, true, ctx);
  }

  /**
   * {@link UringEngine.statDest}, resolving `undefined` when nothing is there: a new
   * destination, the usual case, makes no error object (~2.5 µs of a one-block copy).
   */
  statDestIfAny(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat | undefined> {
    return this.#look(path, follow, true, ctx, true);
  }

  /**
   * {@link statNow} of a source or (`dest`) a destination, as a promise; with `missing`,
   * `undefined` for nothing there.
   */
  #look(path: string, follow: boolean, dest: boolean, ctx: EngineContext): Promise<EntryStat>;
  #look(
    path: string,
    follow: boolean,
    dest: boolean,
    ctx: EngineContext,
    missing: true,
  ): Promise<EntryStat | undefined>;
  #look(
    path: string,
    follow: boolean,
    dest: boolean,
    ctx: EngineContext,
    missing = false,
  ): Promise<EntryStat | undefined> {
    if (ctx.signal.aborted) return Promise.reject(ctx.signal.reason);
    // (A closed Uring is the failure, as its own statx would say: ClosedError, with its cause.)
    if (this.#uring.closed) {
      return this.#uring.statx(path).then(() => statNow(this.#sys, path, follow, false, dest));
    }
    try {
      return Promise.resolve(
        missing
          ? statNow(this.#sys, path, follow, false, dest, true)
          : statNow(this.#sys, path, follow, false, dest),
      );
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Opens both files at once, pumps the data, closes both; removes `tmp` on failure. */
  async copyData(
    src: string,
    srcStat: EntryStat,
    tmp: string,
    perm: number,
    ctx: EngineContext,
  ): Promise<number> {
    const uring = this.#uring;
    const signal = ctx.signal;
    const direct = ctx.direct;
    const extra = direct === undefined ? 0 : O_DIRECT;
    const [input, output] = await Promise.allSettled([
      staged(
        "open-source",
        this.#op(ctx, () => uring.openFd(src, sourceFlags(srcStat) | O_CLOEXEC | extra, 0, { signal }))
          .then(this.#opened),
      ),
      staged(
        "create",
        this.#op(
          ctx,
          () => uring.openFd(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | extra, perm, { signal }),
        ).then(this.#opened),
      ),
    ]);
    if (direct !== undefined) {
      // EINVAL from an O_DIRECT open: the file system refuses direct I/O. The exclusive create
      // made the file before the refusal, so it is ours to remove.
      if (input.status === "rejected" && direct.refused(input.reason)) {
        input.reason = tagStage(direct.refusedError(input.reason, src, "source"), "open-source");
      }
      if (output.status === "rejected" && direct.refused(output.reason)) {
        output.reason = tagStage(direct.refusedError(output.reason, tmp, "destination"), "create");
        await this.#removeIncomplete(tmp, ctx);
      }
    }
    if (input.status === "rejected" || output.status === "rejected") {
      const closing: Promise<unknown>[] = [];
      if (input.status === "fulfilled") {
        closing.push(this.#closeFd(input.value, ctx).catch(() => {}));
      }
      if (output.status === "fulfilled") {
        closing.push(this.#closeFd(output.value, ctx).catch(() => {}));
        closing.push(this.#removeIncomplete(tmp, ctx));
      }
      await Promise.all(closing);
      throw input.status === "rejected" ? input.reason : (output as PromiseRejectedResult).reason;
    }
    const srcFd = input.value;
    const dstFd = output.value;
    let copied = 0;
    let failure: unknown;
    try {
      copied = direct === undefined ? await this.#pump(srcFd, dstFd, srcStat, ctx) : await direct.pump({
        uring,
        op: (fn) => this.#op(ctx, fn),
        ctx,
        srcFd,
        dstFd,
        srcPath: src,
        dstPath: tmp,
        srcStat,
        ranges: srcStat.blocks * 512 < srcStat.size ? this.#dataRanges(srcFd, srcStat.size) : null,
      });
    } catch (e) {
      failure = e;
    }
    // Close both (close errors on the written file matter: some file systems report ENOSPC there).
    const [, closeOut] = await Promise.allSettled([
      this.#closeFd(srcFd, ctx),
      staged("close", this.#closeFd(dstFd, ctx)),
    ]);
    if (failure === undefined && closeOut.status === "rejected") failure = closeOut.reason;
    if (failure === undefined && replacedSince(this.#sys, src, srcStat)) {
      return this.#replaced(src, tmp, copied);
    }
    if (failure !== undefined) {
      await this.#removeIncomplete(tmp, ctx);
      throw failure;
    }
    return copied;
  }

  /**
   * Removes `tmp`, written from a source that was replaced meanwhile, and says so (see
   * `SourceReplaced`); `counted`: its bytes already counted in the progress (the block path counts
   * each write; a chain counts its file only once it is known to be whole).
   */
  async #replaced(src: string, tmp: string, counted = 0): Promise<never> {
    await this.#removeIncomplete(tmp);
    throw new SourceReplaced(src, counted);
  }

  /**
   * A file of one block in one submission (when `queueDepth` and the ring allow six operations in
   * flight): a linked chain `openat(src)` → `openat(tmp, O_CREAT | O_EXCL)` → `read` → `write` →
   * `close` → `close` over two direct descriptors → `statx(src)` (is it still the same file?), so
   * the whole copy runs in the kernel (on io-wq workers: the exclusive create would go there
   * anyway) and settles one promise instead of seven; it holds six permits of the budget
   * ({@link SMALL_CHAIN}). A source replaced meanwhile rejects with `SourceReplaced`, `tmp`
   * removed. `undefined` when the file is not one dense block (or the
   * copy is O_DIRECT). Resolves with the bytes copied, or -1 when `copyData` must redo the file:
   * the file table is full, or the read or write was short or failed (the chain stops there; what
   * it opened is closed and `tmp` removed). An open failure rejects as `copyData`'s would (tagged
   * `open-source` or `create`). When permits, a buffer (for a chain that cannot splice) and the
   * event loop allow, nothing is awaited before the chain is queued.
   */
  copySmall(
    src: string,
    srcStat: EntryStat,
    tmp: string,
    perm: number,
    ctx: EngineContext,
  ): Promise<number> | undefined {
    if (
      ctx.direct !== undefined || Math.min(ctx.options.queueDepth, this.#chainRoom) < SMALL_CHAIN ||
      !isSmallDense(srcStat, ctx.options.blockSize)
    ) {
      return undefined;
    }
    const size = srcStat.size;
    const flags = sourceFlags(srcStat);
    // A chain that splices moves no byte through memory, so it takes no buffer. (The buffers are
    // blocks, 1 MiB by default: a process copying tree after tree had its lanes' 32 MiB of them
    // zeroed and resident: 102 against 70 MiB after five 4,000-file copies.)
    const spliced = this.#smallChains(ctx)?.splices(size) === true;
    let admitting = this.#admit(ctx, SMALL_CHAIN);
    if (admitting === undefined) {
      if (spliced) return this.#runSmall(src, flags, srcStat, tmp, perm, ctx, null);
      const buf = ctx.smallPool.tryTake();
      if (buf !== null) return this.#runSmall(src, flags, srcStat, tmp, perm, ctx, buf);
      ctx.inflight.release(SMALL_CHAIN);
      admitting = this.#admit(ctx, SMALL_CHAIN);
    }
    return this.#copySmallWaiting(src, flags, srcStat, tmp, perm, ctx, admitting, spliced);
  }

  /** `copySmall` once `admitting` (see `#admit`) is done and, unless `spliced`, a buffer is free. */
  async #copySmallWaiting(
    src: string,
    flags: number,
    srcStat: EntryStat,
    tmp: string,
    perm: number,
    ctx: EngineContext,
    admitting: Promise<void> | undefined,
    spliced: boolean,
  ): Promise<number> {
    if (admitting !== undefined) await admitting;
    // A spliced chain needs no buffer, but it still waits one microtask here, as taking a buffer
    // does: queueing it in the same microtask as its permits came back made a 4,000-file tree
    // copy 1.3-4.8% slower (five alternating A/B runs), with no more io_uring_enter calls. Why is
    // not known.
    const buf = spliced ? await null : await ctx.smallPool.take();
    return this.#runSmall(src, flags, srcStat, tmp, perm, ctx, buf);
  }

  /**
   * Runs the chain holding six permits and `buf` (`null`: a spliced chain, no buffer); gives them
   * back when it is over. A chain that turns out unable to splice takes a buffer first.
   */
  #runSmall(
    src: string,
    flags: number,
    srcStat: EntryStat,
    tmp: string,
    perm: number,
    ctx: EngineContext,
    buf: Uint8Array<ArrayBuffer> | null,
  ): Promise<number> {
    if (ctx.signal.aborted) {
      // Stopped while it waited for permits: a chain queued now would miss the stop's cancel.
      if (buf !== null) ctx.smallPool.give(buf);
      ctx.inflight.release(SMALL_CHAIN);
      return Promise.reject(ctx.signal.reason);
    }
    const size = srcStat.size;
    const chains = this.#smallChains(ctx);
    const queued = buf === null
      ? chains?.startSpliced(src, tmp, perm, size, flags, srcStat)
      : chains?.start(src, tmp, perm, buf.subarray(0, size), flags, srcStat);
    if (queued !== undefined) {
      const release = () => {
        if (buf !== null) ctx.smallPool.give(buf);
        ctx.inflight.release(SMALL_CHAIN);
      };
      return queued.then(
        (failure) => {
          if (failure === null) {
            release();
            ctx.addBytes(size);
            return size;
          }
          if (failure === SOURCE_REPLACED) {
            release();
            return this.#replaced(src, tmp);
          }
          if (failure === SOURCE_SUSPECT) {
            // The chain's statx found nothing there (or failed): look again, on this thread.
            release();
            if (replacedSince(this.#sys, src, srcStat)) return this.#replaced(src, tmp);
            ctx.addBytes(size);
            return size;
          }
          return this.#smallFailed(failure.results, failure.input, failure.output, tmp).finally(() => {
            failure.done();
            release();
          });
        },
        (e) => this.#smallRefused(e, tmp, ctx, release),
      );
    }
    if (buf === null) return this.#runSmallBuffered(src, flags, srcStat, tmp, perm, ctx);
    return this.#chainSmall(src, flags, srcStat, buf.subarray(0, size), tmp, perm, ctx, buf);
  }

  /** `#runSmall` with a buffer, once one is free (the chain could not be queued spliced). */
  async #runSmallBuffered(
    src: string,
    flags: number,
    srcStat: EntryStat,
    tmp: string,
    perm: number,
    ctx: EngineContext,
  ): Promise<number> {
    const buf = await ctx.smallPool.take();
    return this.#runSmall(src, flags, srcStat, tmp, perm, ctx, buf);
  }

  /**
   * Gives back descriptors after `EMFILE`: closes the idle pipes of the one-block chains and of
   * the splice lanes, and makes no new ones for this copy. Returns how many pipes it closed.
   */
  shedPipes(): number {
    return (this.#small?.shedPipes() ?? 0) + (this.#pipes?.shed() ?? 0);
  }

  /** The one-block chains written straight into the ring, when the kernel allows (5.17). */
  #smallChains(ctx: EngineContext): SmallFileChains | null {
    if (this.#small === undefined) {
      try {
        this.#small = SmallFileChains.supported(this.#uring)
          ? new SmallFileChains(
            this.#uring,
            ctx.options.splice,
            DESCRIPTOR_SHARES.chainPipes(ctx.descriptors),
            this.#shelf,
          )
          : null;
      } catch {
        return null; // the Uring is closing: Uring.chain says so
      }
      // Its chains carry no signal: a stop cancels those in flight (and #runSmall starts none).
      const small = this.#small;
      if (small !== null) {
        const signal = ctx.signal, onAbort = () => small.cancel();
        signal.addEventListener("abort", onAbort, { once: true });
        // (A caller's signal outlives the copy, and the listener would hold the engine and ring.)
        this.#unlisten = () => signal.removeEventListener("abort", onAbort);
      }
    }
    return this.#small;
  }

  /**
   * A chain refused before anything ran (a permission), or cut short by the ring closing under a
   * stop: then the create may have run, and an incomplete file must not stay behind.
   */
  async #smallRefused(e: unknown, tmp: string, ctx: EngineContext, release: () => void): Promise<never> {
    try {
      if (ctx.signal.aborted || this.#uring.closed) await this.#removeIncomplete(tmp);
    } finally {
      release();
    }
    throw tagStage(e, "create");
  }

  /** `#runSmall` through `Uring.chain` (no CQE skipping, or no room in the ring right now). */
  #chainSmall(
    src: string,
    flags: number,
    srcStat: EntryStat,
    view: Uint8Array,
    tmp: string,
    perm: number,
    ctx: EngineContext,
    buf: Uint8Array<ArrayBuffer>,
  ): Promise<number> {
    const size = view.byteLength;
    const uring = this.#uring;
    const pair = reserveFilePair(uring);
    const release = () => {
      if (pair !== null) {
        uring.releaseFileIndex(pair[0]);
        uring.releaseFileIndex(pair[1]);
      }
      ctx.smallPool.give(buf);
      ctx.inflight.release(SMALL_CHAIN);
    };
    if (pair === null) {
      release();
      return Promise.resolve(-1);
    }
    const [input, output] = pair;
    // With the copy's signal (a listener per file, which cost ~10% of a small-file tree copy when
    // every file came this way; now only those the raw chains have no room for do): a member may
    // wait for good (opening a FIFO that replaced the source), and a stop must end it.
    const chained = uring.chain((c) =>
      c.openDirect(src, input, { flags })
        .openDirect(tmp, output, { flags: O_WRONLY | O_CREAT | O_EXCL, mode: perm })
        .readDirect(input, view, 0)
        .writeDirect(output, view, 0)
        .closeDirect(input)
        .closeDirect(output), { async: true, signal: ctx.signal });
    return chained.then(
      (results) => {
        const read = results[2], write = results[3];
        if (results[5].ok && read.ok && read.value === size && write.ok && write.value === size) {
          release();
          if (replacedSince(this.#sys, src, srcStat)) return this.#replaced(src, tmp);
          ctx.addBytes(size);
          return size;
        }
        return this.#smallFailed(results, input, output, tmp).finally(release);
      },
      (e) => this.#smallRefused(e, tmp, ctx, release),
    );
  }

  /**
   * After a chain that did not copy the file: closes what it left open, removes `tmp` if it made
   * it, and rejects for an open (or final close) failure; resolves -1 for a short or failed read
   * or write, or an open the kernel dropped (`ECANCELED`), which `copyData` redoes and, if it
   * fails again, explains. Uses the chain's own permits (none more), so clean-up never waits on
   * the budget.
   */
  async #smallFailed(results: ChainResult[], input: number, output: number, tmp: string): Promise<number> {
    const uring = this.#uring;
    const [openIn, openOut, , , closeIn, closeOut] = results;
    // Each close alone: a failure must not cancel the other.
    await Promise.all([
      openIn.ok && !closeIn.ok ? uring.chain((c) => c.closeDirect(input)).catch(() => {}) : null,
      openOut.ok && !closeOut.ok ? uring.chain((c) => c.closeDirect(output)).catch(() => {}) : null,
    ]);
    // An open the kernel cancelled although nobody asked (io-wq could not start a worker; see
    // `Uring`) opened or created nothing: redo the file the block way, as after a short read.
    // (When the source's open fails, the create after it is cancelled too: report the first.)
    if (!openIn.ok && codeOf(openIn.error) !== "ECANCELED") throw tagStage(openIn.error, "open-source");
    if (openIn.ok && !openOut.ok && codeOf(openOut.error) !== "ECANCELED") {
      throw tagStage(openOut.error, "create");
    }
    await this.#removeIncomplete(tmp);
    // Some file systems report ENOSPC only when the written file is closed.
    if (!closeOut.ok && codeOf(closeOut.error) !== "ECANCELED") throw tagStage(closeOut.error, "close");
    return -1;
  }

  /**
   * Moves `srcStat.size` bytes from `srcFd` to `dstFd`: by splice lanes when the source is dense
   * and pipes are free (see copy_splice.ts), else through buffers with up to `queueDepth` blocks in
   * flight. Returns the bytes in the copy (less than the size when the source shrank meanwhile).
   */
  async #pump(srcFd: number, dstFd: number, srcStat: EntryStat, ctx: EngineContext): Promise<number> {
    const size = srcStat.size;
    if (size === 0) return await this.#pumpUnsized(srcFd, dstFd, ctx);
    // Fewer blocks allocated than the size needs: the source has holes; keep them holes.
    const sparse = srcStat.blocks * 512 < size;
    let copied: { end: number; holes: boolean } | undefined;
    const chainOps = Math.min(ctx.options.queueDepth, this.#chainRoom);
    if (!sparse && this.#splicing && ctx.options.splice && chainOps >= 2) {
      copied = await this.#spliceBlocks(srcFd, dstFd, size, chainOps, ctx);
    }
    copied ??= await this.#pumpBlocks(
      srcFd,
      dstFd,
      size,
      sparse,
      ctx,
      sparse ? this.#dataRanges(srcFd, size) : null,
    );
    const { end, holes } = copied;
    if (holes || end < size) {
      // Trailing holes were never written, and a shrunk source must not leave stale bytes.
      await staged("write", this.#op(ctx, () => this.#uring.ftruncate(dstFd, end, { signal: ctx.signal })));
    }
    return end;
  }

  /**
   * A source whose size says it is empty. Files of `/proc` (and the like) say so but have content,
   * so, as `cp` does, this reads block by block until a read returns 0: one read for a file that
   * really is empty.
   */
  async #pumpUnsized(srcFd: number, dstFd: number, ctx: EngineContext): Promise<number> {
    const buf = await ctx.pool.take();
    let at = 0;
    try {
      for (;;) {
        const n = await this.#readAt(ctx, srcFd, buf, at);
        if (n === 0) return at;
        await this.#writeAll(ctx, dstFd, buf, 0, n, at);
        at += n;
        ctx.addBytes(n);
      }
    } finally {
      ctx.pool.give(buf);
    }
  }

  /** One read of `buf` at `at` (holding a permit), tagged `read` when it fails. */
  #readAt(ctx: EngineContext, fd: number, buf: Uint8Array, at: number): Promise<number> {
    return this.#op(ctx, () => this.#uring.read(fd, buf, at, { signal: ctx.signal })).catch((e) => {
      throw tagStage(e, "read");
    });
  }

  /** Writes `buf[from, to)` at file offset `offset + from`, resuming short writes; tagged `write`. */
  async #writeAll(
    ctx: EngineContext,
    fd: number,
    buf: Uint8Array,
    from: number,
    to: number,
    offset: number,
  ): Promise<void> {
    for (let put = from; put < to;) {
      const n = await this.#op(
        ctx,
        () => this.#uring.write(fd, buf.subarray(put, to), offset + put, { signal: ctx.signal }),
      )
        .catch((e) => {
          throw tagStage(e, "write");
        });
      if (n <= 0) throw tagStage(new Error(`write returned ${n} at offset ${offset + put}`), "write");
      put += n;
    }
  }

  /**
   * The splice lanes: as many free pipes as the file has chunks for; `undefined` when none is
   * free or the file system cannot splice (then the copy reads and writes).
   */
  async #spliceBlocks(
    srcFd: number,
    dstFd: number,
    size: number,
    maxOps: number,
    ctx: EngineContext,
  ): Promise<{ end: number; holes: boolean } | undefined> {
    const uring = this.#uring;
    const pool = this.#pipes ??= new SplicePipes(
      getSys(uring.ring.backend),
      ctx.options.blockSize,
      Math.min(SPLICE_PIPES, DESCRIPTOR_SHARES.splicePipes(ctx.descriptors)),
    );
    const pipes = pool.take(Math.ceil(size / pool.size));
    if (pipes.length === 0) return undefined;
    let counted = 0; // (more than the end when the source shrank meanwhile)
    const job = {
      uring,
      op: <T>(ops: number, fn: () => Promise<T>) => this.#op(ctx, fn, ops),
      signal: ctx.signal,
      srcFd,
      dstFd,
      size,
      maxOps,
      addBytes: (n: number) => {
        counted += n;
        ctx.addBytes(n);
      },
      unsupported: () => {
        this.#splicing = false;
      },
    };
    try {
      const end = await spliceData(job, pipes, pool);
      if (counted > end) ctx.countCut(counted - end); // chunks past the end the source shrank to
      return { end, holes: false };
    } catch (e) {
      if (!(e instanceof SpliceUnsupported)) throw e;
      return undefined; // splicing is off now: the buffered path copies the file again
    }
  }

  /**
   * Where a sparse source's data is, as `[start, end)` pairs below `size` (`SEEK_DATA` /
   * `SEEK_HOLE`, as `cp` finds it), so the copy reads no hole; `null` when the file system cannot
   * tell (then every block is read and its zeros are found).
   */
  #dataRanges(fd: number, size: number): number[] | null {
    const sys = getSys(this.#uring.ring.backend);
    const ranges: number[] = [];
    for (let at = 0; at < size;) {
      const data = sys.seek(fd, at, SEEK_DATA);
      if (data === -ENXIO) break; // no data from `at` on
      if (data < 0) return null;
      if (data >= size) break;
      const hole = sys.seek(fd, data, SEEK_HOLE);
      if (hole <= data) return null;
      ranges.push(data, Math.min(hole, size));
      at = hole;
    }
    return ranges;
  }

  /**
   * The buffered path: reads into pooled blocks and writes them out, `queueDepth` at once. With
   * `ranges` (see {@link UringEngine.#dataRanges}) only those are read; the holes between them
   * are skipped (and counted as copied).
   */
  async #pumpBlocks(
    srcFd: number,
    dstFd: number,
    size: number,
    sparse: boolean,
    ctx: EngineContext,
    ranges: number[] | null = null,
  ): Promise<{ end: number; holes: boolean }> {
    const blockSize = ctx.options.blockSize;
    const pool = ctx.pool;
    let next = 0;
    let end = size;
    let holes = false;
    let counted = 0; // (by ctx.addBytes: more than `end` when the source shrank meanwhile)

    const readBlock = (buf: Uint8Array, at: number) => this.#readAt(ctx, srcFd, buf, at);
    const writeAll = (buf: Uint8Array, from: number, to: number, offset: number) =>
      this.#writeAll(ctx, dstFd, buf, from, to, offset);

    const walk = ranges === null ? null : new DataRangeWalk(ranges);
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
        const length = Math.min(blockSize, limit - offset);
        next = offset + length;
        const buf = await pool.take();
        try {
          let got = 0;
          while (got < length) {
            const n = await readBlock(buf.subarray(got, length), offset + got);
            if (n === 0) break; // end of file: the source shrank since it was looked at
            got += n;
          }
          if (got < length) end = Math.min(end, offset + got);
          if (got === 0) continue;
          if (await writeBlockData(buf, got, offset, sparse, HOLE_GRAIN, writeAll)) holes = true;
          ctx.addBytes(got);
          counted += got;
        } finally {
          pool.give(buf);
        }
      }
    };

    await runWorkers(Math.min(pool.count, Math.ceil(size / blockSize)), worker);
    if (counted > end) ctx.countCut(counted - end); // blocks past the end the source shrank to
    return { end, holes };
  }

  /** `mkdirat`. */
  mkdir(path: string, mode: number, ctx: EngineContext): Promise<void> {
    return this.#op(ctx, () => this.#uring.mkdir(path, { mode, signal: ctx.signal }));
  }

  /** `symlinkat`. */
  symlink(target: string, path: string, ctx: EngineContext): Promise<void> {
    return this.#op(ctx, () => this.#uring.symlink(target, path, { signal: ctx.signal }));
  }

  /**
   * `renameat2` on this thread (a few µs; `RENAME_NOREPLACE` when `noReplace`), where io_uring's
   * rename always goes to an io-wq worker and back: ~80 µs of the ~400 a lone one-block
   * `copyFile` took here. Needs write access to both paths (the temporary file is the copy's own).
   */
  rename(from: string, to: string, noReplace: boolean, ctx: EngineContext): Promise<void> {
    if (ctx.signal.aborted) return Promise.reject(ctx.signal.reason);
    // (A closed Uring is the failure, as its own rename would say: ClosedError, with its cause.)
    if (this.#uring.closed) return destinationOps(this.#uring).rename(from, to, noReplace, ctx.signal);
    const denied = checkAccess("rename", "write", from) ?? checkAccess("rename", "write", to);
    if (denied !== null) return Promise.reject(denied);
    const fromBytes = cstringInto(from, renameFrom);
    if (fromBytes.buffer !== renameFrom?.buffer) renameFrom = new Uint8Array(fromBytes.buffer);
    const toBytes = cstringInto(to, renameTo);
    if (toBytes.buffer !== renameTo?.buffer) renameTo = new Uint8Array(toBytes.buffer);
    const r = this.#sys.rename(fromBytes, toBytes, noReplace ? RENAME_NOREPLACE : 0);
    return r < 0 ? Promise.reject(operationError("rename", -r, from, to)) : Promise.resolve();
  }

  /**
   * `unlinkat` (no signal: clean-up of the copy's own incomplete files after a failure or stop).
   * When the Uring was closed under the copy (a caller's Uring may be closed at any moment; a
   * chain cut short then leaves the file its create made), Deno's own `remove` does it.
   */
  async unlink(path: string): Promise<void> {
    const uring = this.#uring;
    if (!uring.closed) {
      try {
        return await uring.unlink(path);
      } catch (e) {
        if (!uring.closed) throw e;
      }
    }
    return Deno.remove(path);
  }

  /**
   * `chmod` (io_uring has no such operation) on this thread: a few µs, where `Deno.chmod` took
   * ~18 µs of the main thread to hand to Deno's thread pool (a fifth of a small file's copy, many
   * at once). Needs write access to `path`, as `Deno.chmod` does.
   */
  setMode(path: string, mode: number): Promise<void> {
    const denied = checkAccess("chmod", "write", path);
    if (denied !== null) return Promise.reject(denied);
    const r = getSys(this.#uring.ring.backend).chmod(cstring(path), mode);
    return r < 0 ? Promise.reject(operationError("chmod", -r, path)) : Promise.resolve();
  }

  /**
   * `utimensat` (io_uring has no such operation): the times to the nanosecond when `st` came from
   * `statx`, else as `Deno.utime` sets them (to the millisecond). Needs write access to `path`,
   * as `Deno.utime` does.
   */
  setTimes(path: string, st: EntryStat): Promise<void> {
    const ns = st.timesNs;
    if (ns === undefined) return Deno.utime(path, st.atime, st.mtime);
    const denied = checkAccess("utime", "write", path);
    if (denied !== null) return Promise.reject(denied);
    const times = new BigInt64Array(4);
    for (let i = 0; i < 4; i++) times[i] = BigInt(ns[i]);
    const r = getSys(this.#uring.ring.backend).utimens(cstring(path), new Uint8Array(times.buffer));
    return r < 0 ? Promise.reject(operationError("utime", -r, path)) : Promise.resolve();
  }

  /** Gives back the one-block chains' file-table indexes, closes the splice pipes, and closes the ring when the engine made it. */
  async close(): Promise<void> {
    this.#unlisten();
    this.#small?.close();
    this.#pipes?.close();
    if (this.#owned) await this.#uring.close();
  }
}

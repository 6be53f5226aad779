/**
 * Options, progress reports and results of {@link copyFile} and {@link copyTree}, with their
 * defaults and limits, and the checks that reject bad options before any I/O.
 *
 * @module
 */

import { checkOptionsObject, shown } from "./memory.ts";
import { Uring } from "./uring.ts";

/**
 * Default number of I/O operations kept in flight (`queueDepth`): 192, room for 32 one-block
 * files at once (each a chain holding six operations: open, create, the data, close, close; its
 * closing `statx` holds none). Measured on a 4,000-file tree to tmpfs, the
 * CLI in alternating runs: 96 took a median of ~460 ms, 192 ~430 ms; beyond 32 chains (288, 384,
 * 576 with the file table to match) nothing more was gained. A 1 GiB file takes the same time at
 * 96 and 192 (its blocks are bounded by {@link BLOCK_BUFFER_MEMORY}).
 */
export const DEFAULT_QUEUE_DEPTH = 192;
/**
 * Memory the data blocks in flight may use: 32 MiB (at least {@link MIN_BLOCK_BUFFERS} blocks),
 * so a deep queue does not mean 96 MiB of buffers for one big file.
 */
export const BLOCK_BUFFER_MEMORY = 32 * 1024 * 1024;
/** Fewest block buffers a copy gets, however large its blocks. */
export const MIN_BLOCK_BUFFERS = 2;

/** How many data blocks may be in flight: `queueDepth`, within {@link BLOCK_BUFFER_MEMORY}. */
export function blockBuffers(queueDepth: number, blockSize: number): number {
  return Math.min(queueDepth, Math.max(MIN_BLOCK_BUFFERS, Math.floor(BLOCK_BUFFER_MEMORY / blockSize)));
}

/**
 * How many one-block files may be read and written at once, each by one chain holding six operations
 * and one buffer of `blockSize`: `queueDepth / 6`, within {@link BLOCK_BUFFER_MEMORY} (at least
 * one). Chains that splice hold no buffer.
 */
export function smallFileBuffers(queueDepth: number, blockSize: number): number {
  return Math.max(1, Math.min(Math.floor(queueDepth / 6), Math.floor(BLOCK_BUFFER_MEMORY / blockSize)));
}
/** Largest accepted `queueDepth`. */
export const MAX_QUEUE_DEPTH = 4096;
/**
 * Default bytes per read/write (`blockSize`): 1 MiB. Measured on a 1 GiB cached copy to tmpfs,
 * 1 MiB blocks took about 20% less CPU and wall time than 128 KiB (fewer operations per byte);
 * holes are still found per 64 KiB inside a block, so sparse copies stay as sparse.
 */
export const DEFAULT_BLOCK_SIZE = 1024 * 1024;
/** Smallest accepted `blockSize`: 512 bytes. */
export const MIN_BLOCK_SIZE = 512;
/** Largest accepted `blockSize`: 64 MiB. */
export const MAX_BLOCK_SIZE = 64 * 1024 * 1024;

/** A snapshot of a copy's progress, passed to `onProgress`. */
export interface CopyProgress {
  /** Bytes written so far. */
  bytes: number;
  /** Files (regular files and symlinks) completed so far. */
  files: number;
  /** Bytes of all regular files found so far (final once `scanning` is false). */
  totalBytes: number;
  /** Files and symlinks found so far (final once `scanning` is false). */
  totalFiles: number;
  /** True while the source tree is still being walked (totals may still grow). */
  scanning: boolean;
  /** The file most recently completed, if any. */
  path?: string;
}

/** Options shared by {@link copyFile} and {@link copyTree}. */
export interface CopyOptions {
  /**
   * I/O operations kept in flight at once, across all files (default 192, 1..4096). A file of one
   * block goes as one chain (open, create, read, write, close, close, and a `statx` of the source)
   * holding six of them, when there is room for six; data blocks in flight are further held to 32 MiB of buffers (at least two).
   */
  queueDepth?: number;
  /** Bytes per read and write (default 1 MiB, 512 B..64 MiB). */
  blockSize?: number;
  /**
   * Replace destination files that exist (default `false`: an existing destination file is an
   * `AlreadyExists` error). A destination that is a directory is never replaced by a file.
   * Replacing is a rename over the name, as `cp --remove-destination` does, not a write into the
   * old file as plain `cp`, `Deno.copyFile` and Node's `copyFile` do: a destination that is a
   * symlink is replaced by the copy (the file it pointed to is left alone), and other hard links
   * to the old file keep the old content.
   */
  overwrite?: boolean;
  /**
   * Also keep access and modification times, to the nanosecond (`utimensat`; to the millisecond
   * on the fallback without io_uring); modes are always kept (files' without setuid/setgid).
   * Default `false`.
   */
  preserve?: boolean;
  /** Stops the copy: it rejects with an `AbortError` naming the file, removing partial copies. */
  signal?: AbortSignal;
  /**
   * Called as data is written (often: throttle any drawing yourself). If it throws, the copy stops
   * as after a failure (what it has not finished is removed) and rejects with that error; it is
   * not called again. A throw from the last report, once the file is in place, still rejects.
   * The copy does not wait for a promise it returns, but one that rejects before the copy has
   * settled stops it the same way; one that rejects later is left unhandled, as the caller's own.
   */
  onProgress?: (progress: CopyProgress) => void;
  /**
   * Run on this `Uring` (it is not closed at the end). Without it, `copyTree` makes a ring of its
   * own, and `copyFile` runs on a ring the copies of the main thread share (see `copyFile`). Its
   * ring should have room for `queueDepth` operations; on a smaller one the copy still works,
   * with fewer operations per submission (below 6 SQ entries, files of one block are copied
   * operation by operation; below 2, without splice). On a kernel before 5.17 (no `IORING_FEAT_LINKED_FILE`)
   * the copy falls back as `fallback` says.
   */
  uring?: Uring;
  /**
   * Kernel submission polling (SQPOLL) for the ring the copy makes (then its own, never shared).
   * Default `false`: measured on a 2-core machine, the polling thread competes with the copy's
   * own kernel work and made copies up to 1.5× slower. `true` turns it on where the kernel allows
   * it (else a plain ring is used), on the process's first thread: a Worker's copy runs on a
   * plain ring, since the polling thread reads the copy's paths whenever it gets to their
   * operations, which can be after a terminated Worker's memory was freed (30 Workers terminated
   * mid-copy made files with garbage names, and crashed the process in 2 of 4 runs).
   */
  sqpoll?: boolean;
  /**
   * When io_uring cannot be set up here (`io_uring_setup` fails with `EPERM` or `ENOSYS`, or with
   * `ENOMEM` after a few retries: `RLIMIT_MEMLOCK` has no room for a ring), or the kernel's is older than the copy engine needs (5.17), copy with Deno's own file APIs instead
   * (default `true`); the result's `engine` says which ran.
   * `false` makes the setup error ({@link IoUringError}) the copy's error.
   * Also in a Worker without the uring helper (the libc backend), given no `uring`: there the
   * kernel could write into a terminated Worker's freed memory (see `README`, Workers), so the
   * copy uses Deno's file APIs by default; `false` runs it on io_uring all the same.
   */
  fallback?: boolean;
  /**
   * O_DIRECT on both files (default `false`): the data bypasses the page cache, so a huge copy
   * neither evicts what is cached nor leaves the copy's pages behind. Buffers are page-aligned,
   * the block size is rounded up to the files' O_DIRECT alignment (`statx` `STATX_DIOALIGN`, else
   * 4096), and the unaligned tail of a file is written as a whole block, then cut to size with
   * `ftruncate` (such files also get an `fdatasync`, to drop the last page the cut dirtied). A
   * file whose file system refuses O_DIRECT (`EINVAL`: ramfs, some FUSE/network file systems) is
   * an error naming it; there is no silent buffered fallback. Without io_uring (the Deno
   * fallback) data goes through the page cache, and `fallbackReason` says so.
   */
  direct?: boolean;
  /**
   * Move file data by `splice` through pipes (default `true`): the kernel copies each byte once,
   * from the page cache into the destination, as `sendfile` does, instead of into a buffer and
   * out again. A file bigger than one block goes through up to four pipes of up to one block
   * (1 MiB at most) that all the copy's files share; a one-block file through its chain's 64 KiB
   * pipe when it fits. Sparse sources (to keep their holes), O_DIRECT copies, and the rest of a
   * copy after a file system refused splice (`EINVAL`) read and write through buffers, as
   * `false` makes every file do. Needs `queueDepth` ≥ 2.
   */
  splice?: boolean;
}

/** Options of {@link copyTree}. */
export interface CopyTreeOptions extends CopyOptions {
  /**
   * Keep going after a failure and report every failure at the end, as a {@link CopyTreeError}
   * (an `AggregateError`) thrown after everything else was copied. Default `false`: the first
   * failure stops the copy and is thrown as it is. A copy aborted by `signal` after failures
   * rejects with its `AbortError` carrying them as `errors`.
   */
  continueOnError?: boolean;
}

/** What a copy did. */
export interface CopyResult {
  /** Files (regular files and symlinks) copied. */
  files: number;
  /**
   * Bytes of file data copied: what the copies hold. (A source that shrank while it was copied
   * counts with the copy's size; the progress's `bytes` also counted what was written past it.)
   */
  bytes: number;
  /** Wall-clock milliseconds the copy took. */
  ms: number;
  /** Directories created or merged into (always 0 for `copyFile`). */
  dirs: number;
  /** Which engine copied the data: io_uring, or Deno's own APIs after a fallback. */
  engine: "io_uring" | "deno";
  /** Why the copy fell back to Deno's APIs, when it did. */
  fallbackReason?: string;
}

/** Options with every default filled in and checked. */
export interface ResolvedCopyOptions {
  queueDepth: number;
  blockSize: number;
  overwrite: boolean;
  preserve: boolean;
  signal: AbortSignal | undefined;
  onProgress: ((progress: CopyProgress) => void) | undefined;
  uring: Uring | undefined;
  sqpoll: boolean;
  fallback: boolean;
  continueOnError: boolean;
  direct: boolean;
  splice: boolean;
}

function intInRange(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be an integer from ${min} to ${max}, got ${shown(value)}`);
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${shown(value)}`);
  }
  return value;
}

/** `value` when it is a boolean, `fallback` when it is `undefined`; else a `TypeError`. */
function booleanOption(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new TypeError(`${name} must be a boolean, got ${shown(value)}`);
  return value;
}

/** Fills in defaults and rejects bad options with a `TypeError`/`RangeError`. */
export function resolveCopyOptions(options: CopyTreeOptions | undefined): ResolvedCopyOptions {
  const o = options ?? {};
  checkOptionsObject(o);
  const queueDepth = intInRange(o.queueDepth ?? DEFAULT_QUEUE_DEPTH, "queueDepth", 1, MAX_QUEUE_DEPTH);
  const blockSize = intInRange(
    o.blockSize ?? DEFAULT_BLOCK_SIZE,
    "blockSize",
    MIN_BLOCK_SIZE,
    MAX_BLOCK_SIZE,
  );
  if (o.onProgress !== undefined && typeof o.onProgress !== "function") {
    throw new TypeError("onProgress must be a function");
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError("signal must be an AbortSignal");
  }
  if (o.uring !== undefined && !(o.uring instanceof Uring)) {
    throw new TypeError("uring must be a Uring (new Uring(...))");
  }
  if (o.uring?.iopoll && o.direct !== true) {
    // Without this, dense files would copy (splices go to the polled Uring's plain ring) and the
    // first sparse one would fail: refuse up front.
    throw new TypeError(
      "a polled Uring (iopoll: true) reads and writes only O_DIRECT files: copy with direct: true, " +
        "or give a Uring without iopoll",
    );
  }
  return {
    queueDepth,
    blockSize,
    overwrite: booleanOption(o.overwrite, "overwrite", false),
    preserve: booleanOption(o.preserve, "preserve", false),
    signal: o.signal,
    onProgress: o.onProgress,
    uring: o.uring,
    sqpoll: booleanOption(o.sqpoll, "sqpoll", false),
    fallback: booleanOption(o.fallback, "fallback", true),
    continueOnError: booleanOption(o.continueOnError, "continueOnError", false),
    direct: booleanOption(o.direct, "direct", false),
    splice: booleanOption(o.splice, "splice", true),
  };
}

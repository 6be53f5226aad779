/**
 * The engine a copy runs on: the handful of file-system operations `copyFile`/`copyTree` need,
 * done through io_uring (`Uring`) or, when io_uring cannot be set up, through Deno's own APIs.
 * {@link openEngine} picks one. The copy logic above (temporary names, modes, failure rules) is
 * the same for both.
 *
 * @module
 */

import type { BufferPool, Semaphore } from "./copy_budget.ts";
import type { DirectIo } from "./copy_direct.ts";
import type { ResolvedCopyOptions } from "./copy_options.ts";

/** What a copy needs to know about a file system entry. */
export interface EntryStat {
  /** Regular file, directory, symlink, or anything else (device, FIFO, socket). */
  kind: "file" | "dir" | "symlink" | "other";
  /** Permission bits with setuid/setgid/sticky (`mode & 0o7777`). */
  perm: number;
  /** Size in bytes. */
  size: number;
  /** 512-byte blocks allocated (fewer than `size / 512` means the file has holes). */
  blocks: number;
  /** Access time, seconds since the epoch (with fraction). */
  atime: number;
  /** Modification time, seconds since the epoch (with fraction). */
  mtime: number;
  /**
   * The same times to the nanosecond, when they came from `statx`: access seconds and
   * nanoseconds, then modification seconds and nanoseconds.
   */
  timesNs?: readonly [number, number, number, number];
  /** Device and inode, to spot a source and destination that are the same file. */
  id: string;
  /**
   * The inode number alone (0 when unknown): a copy checks at the end that the source is still
   * this file (see `SourceReplaced`).
   */
  ino?: number;
  /** Birth time in ms since the epoch (0 when unknown): with `ino`, tells a recreated file apart. */
  btimeMs?: number;
  /** Its nanoseconds within the second, when a `statx` gave them (Deno's `lstat` gives ms only). */
  btimeNsec?: number;
  /**
   * Looked at without following a final symlink (`lstat`, as a tree's walk does): the file is
   * then opened with `O_NOFOLLOW`, so a symlink put in its place since (to a file the copy should
   * not read) is refused (`ELOOP`) rather than followed.
   */
  noFollow: boolean;
}

/** Who a source file is, as a look at it found (see {@link EntryStat}). */
export type FileIdentity = Pick<EntryStat, "ino" | "btimeMs" | "btimeNsec">;

/** A birth time of `sec` seconds and `nsec` nanoseconds in ms, as {@link EntryStat.btimeMs} holds it. */
export function birthMs(sec: number, nsec: number): number {
  return sec * 1000 + Math.floor(nsec / 1e6);
}

/**
 * Whether `ino`, `btimeMs` and `btimeNsec` (as a later look at the path gave them; 0 / -1:
 * unknown) name the file `st` describes: the same inode number and, where both are known, the
 * same birth time (file systems such as ext4 hand a freed inode number to the next file at once),
 * to the nanosecond where both looks were `statx`es, else to the millisecond.
 */
export function sameFile(st: FileIdentity, ino: number, btimeMs: number, btimeNsec = -1): boolean {
  if (ino !== st.ino) return false;
  if (!btimeMs || !st.btimeMs) return true;
  if (btimeMs !== st.btimeMs) return false;
  return btimeNsec < 0 || st.btimeNsec === undefined || btimeNsec === st.btimeNsec;
}

/** File descriptors a copy leaves free, beyond those open when it starts, for the rest of the process. */
export const RESERVED_DESCRIPTORS = 64;

/**
 * How a copy shares out its file descriptors (`EngineContext.descriptors`), each holder taking
 * two: files in progress up to half of them, the one-block chains' pipes a quarter, the splice
 * lanes' pipes an eighth; the last eighth is slack.
 */
export const DESCRIPTOR_SHARES = {
  /** Most files in progress at once (a file copied by blocks holds two descriptors). */
  files: (descriptors: number): number => Math.floor(descriptors / 4),
  /** Most pipes the one-block chains hold. */
  chainPipes: (descriptors: number): number => Math.floor(descriptors / 8),
  /** Most pipes the splice lanes of the block path hold. */
  splicePipes: (descriptors: number): number => Math.floor(descriptors / 16),
} as const;

/** Shared state one copy's operations draw on. */
export interface EngineContext {
  /** The checked options. */
  readonly options: ResolvedCopyOptions;
  /** One permit per operation in flight, shared by every file of the copy. */
  readonly inflight: Semaphore;
  /** The data buffers (`queueDepth` of `blockSize`; page-aligned for O_DIRECT copies). */
  readonly pool: BufferPool;
  /**
   * Plain (never registered) buffers for files of one block copied by one chain: only the pages
   * a small file touches get faulted in, where the registered pool pins all of its memory.
   */
  readonly smallPool: BufferPool;
  /** O_DIRECT state, for `direct` copies on io_uring (else `undefined`). */
  readonly direct?: DirectIo;
  /** The signal every operation listens to (the caller's, plus the copy's own stop). */
  readonly signal: AbortSignal;
  /**
   * File descriptors the copy may hold at once: those free when it started (`ulimit -n` less
   * those open) less {@link RESERVED_DESCRIPTORS} for the rest of the process (Infinity when
   * unknown), shared out as {@link DESCRIPTOR_SHARES}
   * says.
   */
  readonly descriptors: number;
  /** Called with the bytes of each completed write. */
  addBytes(n: number): void;
  /**
   * Called with the bytes counted by `addBytes` for data a source that shrank while it was copied
   * no longer has (the copy was cut to its new end): they stay counted (`bytes` never goes back)
   * and the total grows by as much, so the progress's `bytes` and `totalBytes` still meet.
   */
  countCut(n: number): void;
  /**
   * A promise to wait on before the next operation when the event loop is due a turn (see
   * `CopyContext.breather`), else `undefined`.
   */
  breather(): Promise<void> | undefined;
}

/** File-system operations, each rejecting with an error that carries `code` (`"ENOENT"`). */
export interface Engine {
  /** Which engine this is. */
  readonly name: "io_uring" | "deno";
  /** Closes idle pipes the engine keeps, after `EMFILE`; returns how many (none: `undefined`). */
  shedPipes?(): number;
  /** Why io_uring was not used, for the Deno engine after a fallback. */
  readonly fallbackReason?: string;
  /** `statx`/`stat` (`follow`) or `lstat` of `path`. */
  stat(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat>;
  /**
   * {@link Engine.stat} done at once, on this thread (a tree's walk looks at each entry so: a
   * cached `lstat` is a few µs, where io_uring's `statx` goes to a worker thread). `below`: `path`
   * is an entry of a directory already looked at (its permission check can be the cheaper one).
   * Throws.
   */
  statNow(path: string, follow: boolean, below?: boolean): EntryStat;
  /**
   * {@link Engine.stat} of a path on the destination side, which a copy may write without
   * reading (as `Deno.copyFile` may): the io_uring engine asks for read or write permission;
   * Deno's `stat` needs read.
   */
  statDest(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat>;
  /**
   * Creates `tmp` (exclusively, with permission bits `perm`) and fills it with the `src.size`
   * bytes of `src`; closes both. Returns the bytes copied (fewer when the source shrank).
   */
  copyData(src: string, srcStat: EntryStat, tmp: string, perm: number, ctx: EngineContext): Promise<number>;
  /**
   * A faster way for a small file, tried before `copyData`: `undefined` when it does not apply;
   * else a promise of the bytes copied, or of -1 when `copyData` must do the file after all
   * (nothing of `tmp` is left then).
   */
  copySmall?(
    src: string,
    srcStat: EntryStat,
    tmp: string,
    perm: number,
    ctx: EngineContext,
  ): Promise<number> | undefined;
  /** `mkdir(path, mode)`. */
  mkdir(path: string, mode: number, ctx: EngineContext): Promise<void>;
  /** `symlink(target, path)`. */
  symlink(target: string, path: string, ctx: EngineContext): Promise<void>;
  /**
   * `rename(from, to)` of the copy's own temporary file `from`; with `noReplace`, `EEXIST` when
   * `to` exists (atomically).
   */
  rename(from: string, to: string, noReplace: boolean, ctx: EngineContext): Promise<void>;
  /** `unlink(path)`. */
  unlink(path: string): Promise<void>;
  /** Sets `path`'s mode (`chmod`, following a final symlink). */
  setMode(path: string, mode: number): Promise<void>;
  /** Sets `path`'s access and modification times to `st`'s (as exactly as the engine can). */
  setTimes(path: string, st: EntryStat): Promise<void>;
  /** Releases the engine (closes a ring the engine made). */
  close(): Promise<void>;
}

const S_IFMT = 0o170000;

/** The kind of entry an `st_mode` describes. */
export function kindOfMode(mode: number): EntryStat["kind"] {
  switch (mode & S_IFMT) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "dir";
    case 0o120000:
      return "symlink";
    default:
      return "other";
  }
}

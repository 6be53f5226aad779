/**
 * `Uring`: the promise layer over one {@link IoUring}. Every operation queues an SQE and returns
 * a promise settled by its CQE.
 *
 * How it runs (see also DESIGN.md, "Measured on this machine"):
 * - `user_data` is a slot index (low word) and generation (high word) into a preallocated
 *   {@link SlotTable}; the slot holds the resolvers and everything the kernel touches until the
 *   CQE is reaped. Queueing allocates nothing but the promise.
 * - Operations go into the SQ as they are called; one microtask per tick publishes them all
 *   (one tail store; under SQPOLL usually no system call). When the SQ is full, or as many
 *   operations are in the ring as the CQ holds, further ones wait in a JavaScript FIFO and go in
 *   as completions free room.
 * - After every submit, and on every turn, the CQ is checked synchronously (one `Atomics.load`).
 *   Ready CQEs are first drained into a list, then their promises are settled. Only when work is
 *   pending and nothing is ready does the Uring park ONE nonblocking `io_uring_enter(GETEVENTS)`
 *   on Deno's thread pool (1 s timeout, re-armed while work is pending); with no work pending,
 *   nothing waits and nothing spins, so the process can exit. A parked wait left without work is
 *   released by a no-op whose CQE is left for it to find.
 * - Under SQPOLL the SQ thread completes cached I/O a few microseconds after the tail store, so
 *   before parking a wait the pump watches the CQ tail briefly (`spinUs`), and only while such
 *   watches pay off.
 *
 * @module
 */

import {
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  IORING_ASYNC_CANCEL_ALL,
  IORING_ASYNC_CANCEL_ANY,
  IORING_FEAT_EXT_ARG,
  IOSQE_IO_LINK,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  RENAME_NOREPLACE,
  STATX_SIZE,
} from "./abi.ts";
import { type ChainBuilder, ChainCollector, type ChainResult } from "./chain.ts";
import { operationError } from "./deno_errors.ts";
import { errno } from "./errno.ts";
import { ClosedError, IoUringError } from "./errors.ts";
import { type FileOps, type OpOptions, UringFile } from "./file.ts";
import { checkU32 } from "./memory.ts";
import {
  fillClose,
  fillFallocate,
  fillFstat,
  fillFsync,
  fillFtruncate,
  fillNop,
  fillPath,
  fillPath2,
  fillRw,
  fillRwv,
  fillSplice,
  fillTimeout,
  hasDetachedBuffer,
  K_FSTAT,
  K_LINK,
  K_MKDIR,
  K_OPEN,
  K_OPENFD,
  K_READ,
  K_READV,
  K_RENAME,
  K_STATX,
  K_SYMLINK,
  K_TIMEOUT,
  K_UNLINK,
  K_WRITE,
  K_WRITEV,
  OP_NAMES,
  prepSlot,
  returnsCount,
} from "./ops.ts";
import { type Access, checkAccess, toPath } from "./permissions.ts";
import { prepCancel, prepClose, prepNop } from "./prep.ts";
import { IoUring, type SqpollOptions } from "./ring.ts";
import { type Cqe, type Sqe, W } from "./sqe.ts";
import { type ChainState, DONE, IN_RING, QUEUED, type Slot, SlotQueue, SlotTable } from "./slots.ts";
import { parseStatx, type Statx } from "./structs.ts";
import type { Backend } from "./sys.ts";

export type { OpOptions } from "./file.ts";

const ETIME = errno("ETIME");
const ECANCELED = errno("ECANCELED");
const EINVAL = errno("EINVAL");
const EAGAIN = errno("EAGAIN");
const EBUSY = errno("EBUSY");
const EINTR = errno("EINTR");

/** `user_data` high word of the Uring's own SQEs (slot generations stay below 2^31). */
const INTERNAL = 0xffffffff;
/** Internal SQE: a no-op that releases a parked wait. */
const I_WAKE = 0;
/** Internal SQE: `ASYNC_CANCEL` of one operation. */
const I_CANCEL = 1;
/** Internal SQE: `ASYNC_CANCEL` of everything (`ANY`), on close. */
const I_CANCEL_ALL = 2;
/** Internal SQE: `close` of an fd the Uring owns. */
const I_CLOSE = 3;

/** How long one parked wait lasts before it is re-armed (ms). */
const WAIT_MS = 1000;
/** Completions settled in one go before the pump yields to the event loop. */
const YIELD_AFTER = 8192;
/**
 * The longest the pump keeps running from microtasks without the event loop taking a turn (ms).
 * Cached I/O completes inside the submit, so `await`-ing one operation after another never
 * leaves the microtask queue: past this budget the next pump waits for a macrotask, and timers,
 * `AbortSignal.timeout` and signal handlers get to run.
 */
const TURN_BUDGET_MS = 10;
/** The clock is read once every this many pumps started from a microtask (a power of two). */
const TURN_CHECK_EVERY = 16;
/** Default spin on the CQ tail under SQPOLL before parking a wait (µs); see `UringOptions.spinUs`. */
export const DEFAULT_SPIN_US = 50;
/** Spins that found nothing, in a row, after which spinning becomes occasional. */
const SPIN_MISS_LIMIT = 4;
/** While spins miss, one turn in this many still spins, to notice when they would pay again. */
const SPIN_PROBE_EVERY = 16;
/** How long to watch for SQ room the kernel is about to release (ms). */
const SQ_ROOM_WAIT_MS = 0.2;
/** The longest spin, in units of `spinUs`, while the SQ thread is still taking in SQEs. */
const SPIN_CAP = 8;
/** Extra spin per SQE the kernel has not yet taken in (ms): ~1 µs per cached request. */
const SPIN_PER_SQE_MS = 0.001;

/** Options of {@link Uring}. */
export interface UringOptions {
  /** SQ size (default 256); the CQ is twice that unless `cqEntries` says otherwise. */
  entries?: number;
  /** Kernel-side submission polling (default: on, falling back if refused); see `IoUring`. */
  sqpoll?: boolean | SqpollOptions;
  /** Force the system-layer backend. */
  backend?: Backend;
  /** `IORING_SETUP_IOPOLL` (O_DIRECT on devices with poll queues only). */
  iopoll?: boolean;
  /** CQ size: also the most operations in flight at once. */
  cqEntries?: number;
  /**
   * Under SQPOLL, how long (µs) to watch the CQ tail for completions the SQ thread is about to
   * post before parking a wait on the thread pool (which costs 25–30 µs a round trip). Default
   * {@link DEFAULT_SPIN_US}; 0 turns it off. Ignored without SQPOLL.
   */
  spinUs?: number;
}

/** Options of {@link Uring.open}. */
export interface OpenOptions extends OpOptions {
  /** Open for reading (the default when none of read/write/append is given). */
  read?: boolean;
  /** Open for writing. */
  write?: boolean;
  /** Create the file if missing (needs write or append). */
  create?: boolean;
  /** Truncate to 0 bytes (needs write). */
  truncate?: boolean;
  /** Writes go to the end (implies write). */
  append?: boolean;
  /** Fail with `AlreadyExists` if the file exists (`O_CREAT | O_EXCL`). */
  exclusive?: boolean;
  /** Permission bits for a new file (default 0o666, less the umask). */
  mode?: number;
  /** `O_DIRECT`: bypass the page cache (buffers, offsets and sizes must be aligned). */
  direct?: boolean;
}

/** Counters of a {@link Uring}, for tests and tuning. */
export interface UringStats {
  /** SQEs queued (operations, cancels and wake-ups). */
  sqes: number;
  /** CQEs reaped. */
  cqes: number;
  /** Promises settled (a chain counts once). */
  settled: number;
  /** Waits parked on the thread pool. */
  waits: number;
  /** Spins on the CQ tail, and how many of them found a completion. */
  spins: number;
  /** Spins that found a completion. */
  spinHits: number;
  /** No-ops queued to release a parked wait. */
  wakes: number;
  /** Times the pump yielded to the event loop in the middle of a burst. */
  yields: number;
}

function isRetryable(e: unknown): boolean {
  return e instanceof IoUringError && (e.errno === EAGAIN || e.errno === EBUSY || e.errno === EINTR);
}

/**
 * Linux io_uring as promises. `new Uring(options)` sets up one ring (SQPOLL by default); every
 * operation returns a promise settled by its completion and takes `{ signal }` to cancel it.
 * Failures reject with the matching `Deno.errors` class (see `operationError`). Operations on
 * paths first check `Deno.permissions` and reject with `Deno.errors.NotCapable` when Deno did
 * not grant access.
 *
 * At most `cqEntries` operations are in the kernel at once; later ones wait their turn in order.
 * So operations that may wait indefinitely (reads of an empty pipe) can hold up those behind
 * them when they fill the ring: size the ring for them. Buffers must not be transferred or
 * resized while an operation uses them.
 *
 * `close()` stops accepting work, rejects what never reached the kernel, cancels what is in
 * flight (`IORING_OP_ASYNC_CANCEL`), waits for every completion (so no buffer is released while
 * the kernel could still write it), closes the files `open()` returned that are still open, then
 * closes the ring. Every promise settles. Needs Linux 5.11 (`IORING_FEAT_EXT_ARG`).
 */
export class Uring implements AsyncDisposable {
  readonly #ring: IoUring;
  readonly #slots: SlotTable;
  readonly #backlog = new SlotQueue();
  /** Internal SQEs waiting for room: triples of (kind, a, b). */
  #internal: number[] = [];
  #internalHead = 0;
  /** CQEs drained but not yet settled. */
  #ready: (Slot | null)[];
  #readyCount = 0;
  /** SQEs taken (operations and internal) whose CQE has not been reaped. */
  #inRing = 0;
  /** The most SQEs in the ring at once: the CQ size. */
  readonly #limit: number;
  #toSubmit = 0;
  #flushQueued = false;
  #waiting = false;
  #wakeOutstanding = false;
  #yieldTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the event loop was last known to take a turn (a macrotask entered the pump). */
  #turnAt = performance.now();
  /** Pumps started from microtasks (counts to `TURN_CHECK_EVERY`). */
  #microPumps = 0;
  /** A pump waits for the event loop's next turn (see `#deferToTurn`). */
  #deferred = false;
  readonly #spinUs: number;
  #spinMisses = 0;
  #spinProbe = 0;
  #closing = false;
  #closed = false;
  #closePromise: Promise<void> | null = null;
  #closeResolve: (() => void) | null = null;
  #lastCancelAll = 0;
  #files = new Set<UringFile>();
  #statxPool: Uint8Array[] = [];
  #newSlot: Slot | null = null;
  readonly #fileOps: FileOps;

  /** Counters, for tests and tuning. */
  readonly stats: UringStats = {
    sqes: 0,
    cqes: 0,
    settled: 0,
    waits: 0,
    spins: 0,
    spinHits: 0,
    wakes: 0,
    yields: 0,
  };

  /** Sets up the ring (see {@link UringOptions}). */
  constructor(options: UringOptions = {}) {
    const entries = options.entries ?? 256;
    const spinUs = options.spinUs ?? DEFAULT_SPIN_US;
    if (!(spinUs >= 0) || !Number.isFinite(spinUs)) throw new RangeError(`spinUs must be ≥ 0, got ${spinUs}`);
    this.#ring = new IoUring(entries, {
      sqpoll: options.sqpoll,
      backend: options.backend,
      iopoll: options.iopoll,
      cqEntries: options.cqEntries,
    });
    if (!this.#ring.hasFeature(IORING_FEAT_EXT_ARG)) {
      this.#ring.close();
      throw new IoUringError("io_uring_enter", EINVAL, "Uring needs Linux 5.11 (IORING_FEAT_EXT_ARG)");
    }
    this.#spinUs = this.#ring.sqpoll ? spinUs : 0;
    this.#limit = this.#ring.cqEntries;
    this.#slots = new SlotTable(this.#limit, this.#onAbort);
    this.#ready = new Array(this.#limit).fill(null);
    this.#fileOps = {
      read: (fd, buf, position, signal, path) => this.#rw(K_READ, fd, buf, position, signal, path),
      write: (fd, buf, position, signal, path) => this.#rw(K_WRITE, fd, buf, position, signal, path),
      fsync: (fd, datasync, signal, path) =>
        this.#fdOp(signal, path, (slot) => fillFsync(slot, fd, datasync)),
      ftruncate: (fd, length, signal, path) =>
        this.#fdOp(signal, path, (slot) => fillFtruncate(slot, fd, length)),
      fstat: (fd, signal, path) =>
        this.#fdOp(signal, path, (slot) => {
          fillFstat(slot, fd);
          slot.statx = this.#takeStatx();
        }),
      close: (file) => {
        this.#files.delete(file);
        return this.#fdOp(undefined, file.path, (slot) => fillClose(slot, file.fd));
      },
    };
  }

  /**
   * The underlying ring, for its counters and settings (`stats`, `sqpoll`, `params`). Do not
   * submit, reap or close through it: the Uring owns its queues.
   */
  get ring(): IoUring {
    return this.#ring;
  }

  /** Whether the kernel polls the SQ (SQPOLL) for this Uring. */
  get sqpoll(): boolean {
    return this.#ring.sqpoll;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** Operations accepted and not yet settled (chain members count one each). */
  get pending(): number {
    return this.#slots.used;
  }

  // -------------------------------------------------------------------------------------------
  // Operations

  /** A no-op that completes with nothing: measures the round trip. Since 5.1. */
  nop(options?: OpOptions): Promise<void> {
    return this.#fdOp(options?.signal, null, fillNop);
  }

  /**
   * Reads into `buf` from `position` of `fd` (`pread`); resolves with the bytes read (0 at end of
   * file; may be short). Since 5.6.
   */
  read(fd: number, buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    return this.#rw(K_READ, fd, buf, position, options?.signal, null);
  }

  /** Writes `buf` at `position` of `fd` (`pwrite`); resolves with the bytes written. Since 5.6. */
  write(fd: number, buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    return this.#rw(K_WRITE, fd, buf, position, options?.signal, null);
  }

  /** Scatter read (`preadv`); resolves with the bytes read. Since 5.1. */
  readv(
    fd: number,
    bufs: readonly ArrayBufferView[],
    position: number | bigint,
    options?: OpOptions,
  ): Promise<number> {
    return this.#fdOp(options?.signal, null, (slot) => fillRwv(slot, K_READV, fd, bufs, position));
  }

  /** Gather write (`pwritev`); resolves with the bytes written. Since 5.1. */
  writev(
    fd: number,
    bufs: readonly ArrayBufferView[],
    position: number | bigint,
    options?: OpOptions,
  ): Promise<number> {
    return this.#fdOp(options?.signal, null, (slot) => fillRwv(slot, K_WRITEV, fd, bufs, position));
  }

  /** `fsync(fd)`, or `fdatasync` with `datasync: true`. Since 5.1. */
  fsync(fd: number, options?: OpOptions & { datasync?: boolean }): Promise<void> {
    return this.#fdOp(options?.signal, null, (slot) => fillFsync(slot, fd, options?.datasync === true));
  }

  /** `fallocate(fd, mode, offset, length)`. Since 5.6. */
  fallocate(
    fd: number,
    offset: number | bigint,
    length: number | bigint,
    options?: OpOptions & { mode?: number },
  ): Promise<void> {
    return this.#fdOp(
      options?.signal,
      null,
      (slot) => fillFallocate(slot, fd, offset, length, options?.mode ?? 0),
    );
  }

  /** `ftruncate(fd, length)`. Since 6.9. */
  ftruncate(fd: number, length: number | bigint, options?: OpOptions): Promise<void> {
    return this.#fdOp(options?.signal, null, (slot) => fillFtruncate(slot, fd, length));
  }

  /**
   * `splice` between two fds (one must be a pipe); an offset of -1 uses the fd's own position
   * (required for pipes). Resolves with the bytes moved. Since 5.7.
   */
  splice(
    fdIn: number,
    offIn: number | bigint,
    fdOut: number,
    offOut: number | bigint,
    nbytes: number,
    options?: OpOptions,
  ): Promise<number> {
    return this.#fdOp(options?.signal, null, (slot) => fillSplice(slot, fdIn, offIn, fdOut, offOut, nbytes));
  }

  /** Resolves after `ms` milliseconds (an io_uring timeout; no JavaScript timer). Since 5.4. */
  timeout(ms: number, options?: OpOptions): Promise<void> {
    return this.#fdOp(options?.signal, null, (slot) => fillTimeout(slot, ms));
  }

  /**
   * The metadata of `path` (`statx`; `followSymlinks: false` describes a link itself). Needs
   * read permission on `path`. Since 5.6.
   */
  statx(path: string | URL, options?: OpOptions & { followSymlinks?: boolean }): Promise<Statx> {
    return this.#pathOp(options?.signal, path, null, "statx", "read", null, (slot, p) => {
      fillPath(slot, K_STATX, p, options?.followSymlinks === false ? AT_SYMLINK_NOFOLLOW : 0);
      slot.statx = this.#takeStatx();
    });
  }

  /**
   * Opens `path` (`openat`, always `O_CLOEXEC`) and resolves with a {@link UringFile} that owns
   * the fd. Needs read and/or write permission as the options imply. Since 5.6.
   */
  open(path: string | URL, options: OpenOptions = {}): Promise<UringFile> {
    let flags: number;
    let access: Access | "both";
    try {
      ({ flags, access } = openFlags(options));
      if (options.mode !== undefined) checkU32(options.mode, "mode", 0o7777);
    } catch (e) {
      return Promise.reject(e);
    }
    const mode = options.mode ?? 0o666;
    return this.#pathOp(options.signal, path, null, "open", access, null, (slot, p) => {
      fillPath(slot, K_OPEN, p, flags, mode);
    });
  }

  /**
   * `openat(AT_FDCWD, path, flags, mode)` with raw `O_*` flags; resolves with an fd the caller
   * owns (close it with `close(fd)`). Permission is checked from the flags. Since 5.6.
   */
  openFd(path: string | URL, flags: number, mode = 0o666, options?: OpOptions): Promise<number> {
    try {
      checkU32(flags, "flags");
      checkU32(mode, "mode", 0o7777);
    } catch (e) {
      return Promise.reject(e);
    }
    const accmode = flags & 3;
    const writes = accmode !== O_RDONLY || (flags & (O_CREAT | O_TRUNC)) !== 0;
    const access: Access | "both" = accmode === O_RDWR ? "both" : writes ? "write" : "read";
    return this.#pathOp(options?.signal, path, null, "open", access, null, (slot, p) => {
      fillPath(slot, K_OPENFD, p, flags, mode);
    });
  }

  /** Closes `fd` (`close`). Since 5.6. */
  close(fd: number, options?: OpOptions): Promise<void>;
  /**
   * Closes the Uring: stops accepting work (later calls reject with `ClosedError`), rejects
   * queued operations that never reached the kernel (`ECANCELED`), cancels those in flight,
   * waits for every completion, closes the files `open()` returned that are still open, and
   * closes the ring. Resolves when all of that is done; calling it again returns the same
   * promise.
   */
  close(): Promise<void>;
  close(fd?: number, options?: OpOptions): Promise<void> {
    if (fd === undefined) return this.#closeUring();
    return this.#fdOp(options?.signal, null, (slot) => fillClose(slot, fd));
  }

  /** Removes `path` (`unlinkat`; `directory: true` removes an empty directory). Since 5.11. */
  unlink(path: string | URL, options?: OpOptions & { directory?: boolean }): Promise<void> {
    return this.#pathOp(options?.signal, path, null, "unlink", "write", null, (slot, p) => {
      fillPath(slot, K_UNLINK, p, options?.directory ? AT_REMOVEDIR : 0);
    });
  }

  /**
   * Renames `oldPath` to `newPath` (`renameat2`; `noReplace` refuses to overwrite). Needs read
   * and write permission on `oldPath` and write permission on `newPath`. Since 5.11.
   */
  rename(
    oldPath: string | URL,
    newPath: string | URL,
    options?: OpOptions & { noReplace?: boolean },
  ): Promise<void> {
    return this.#pathOp(options?.signal, oldPath, newPath, "rename", "both", "write", (slot, p, q) => {
      fillPath2(slot, K_RENAME, p, q!, options?.noReplace ? RENAME_NOREPLACE : 0);
    });
  }

  /** Creates directory `path` (`mkdirat`, mode default 0o777 less the umask). Since 5.15. */
  mkdir(path: string | URL, options?: OpOptions & { mode?: number }): Promise<void> {
    const mode = options?.mode ?? 0o777;
    try {
      checkU32(mode, "mode", 0o7777);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#pathOp(options?.signal, path, null, "mkdir", "write", null, (slot, p) => {
      fillPath(slot, K_MKDIR, p, 0, mode);
    });
  }

  /**
   * Creates a symbolic link at `path` pointing to `target` (`symlinkat`). Like `Deno.symlink`,
   * needs full read and write permission (a link can point anywhere). Since 5.15.
   */
  symlink(target: string, path: string | URL, options?: OpOptions): Promise<void> {
    const signal = options?.signal;
    if (typeof target !== "string" || target.length === 0) {
      return Promise.reject(new TypeError("target must be a non-empty string"));
    }
    for (const access of ["read", "write"] as const) {
      const denied = this.#closing ? null : checkAccess("symlink", access);
      if (denied) return Promise.reject(denied);
    }
    return this.#pathOp(signal, path, null, "symlink", "write", null, (slot, p) => {
      fillPath2(slot, K_SYMLINK, target, p); // errors read `symlink 'target' -> 'path'`
    });
  }

  /** Creates a hard link `newPath` to `oldPath` (`linkat`). Since 5.15. */
  link(oldPath: string | URL, newPath: string | URL, options?: OpOptions): Promise<void> {
    return this.#pathOp(options?.signal, oldPath, newPath, "link", "both", "both", (slot, p, q) => {
      fillPath2(slot, K_LINK, p, q!);
    });
  }

  /**
   * Runs the members `build` adds as one linked chain (`IOSQE_IO_LINK`): each starts after the
   * previous one succeeded; a failure (or a short read/write) cancels the rest, which report
   * `ECANCELED`. Resolves with every member's {@link ChainResult}, in order. Aborting cancels the
   * members still in flight and rejects with the signal's reason (unless all had succeeded).
   * A chain may not have more members than the SQ has entries.
   */
  chain(build: (c: ChainBuilder) => void, options?: OpOptions): Promise<ChainResult[]> {
    const signal = options?.signal;
    if (this.#closing) return Promise.reject(new ClosedError("Uring"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const builder = new ChainCollector(() => {
      const slot = this.#slots.alloc();
      slot.state = DONE;
      return slot;
    });
    const members = builder.members;
    try {
      if (typeof build !== "function") throw new TypeError("chain() needs a function that adds members");
      build(builder);
      if (members.length === 0) throw new RangeError("a chain needs at least one member");
      const max = Math.min(this.#ring.sqEntries, this.#limit);
      if (members.length > max) {
        throw new RangeError(`a chain of ${members.length} members does not fit the ring (at most ${max})`);
      }
    } catch (e) {
      for (const slot of members) this.#slots.release(slot);
      return Promise.reject(e);
    }
    const { promise, resolve, reject } = Promise.withResolvers<ChainResult[]>();
    const chain: ChainState = {
      slots: members,
      results: new Array(members.length),
      remaining: members.length,
      resolve: resolve as (value: unknown) => void,
      reject,
      signal: signal ?? null,
      aborted: false,
    };
    for (let i = 0; i < members.length; i++) {
      const slot = members[i];
      slot.chain = chain;
      slot.chainIndex = i;
      slot.sqeFlags = i < members.length - 1 ? IOSQE_IO_LINK : 0;
    }
    const head = members[0];
    if (signal) signal.addEventListener("abort", head.onAbort);
    this.#enqueue(head);
    return promise;
  }

  // -------------------------------------------------------------------------------------------
  // Queueing

  #takeStatx(): Uint8Array {
    const buf = this.#statxPool.pop();
    if (buf === undefined) return new Uint8Array(STATX_SIZE);
    return buf;
  }

  /** A read or write: the hot path, written out without closures. */
  #rw(
    kind: number,
    fd: number,
    buf: ArrayBufferView,
    position: number | bigint,
    signal: AbortSignal | undefined,
    path: string | null,
  ): Promise<number> {
    if (this.#closing) return Promise.reject(new ClosedError("Uring"));
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    const slot = this.#slots.alloc();
    slot.state = DONE;
    try {
      fillRw(slot, kind, fd, buf, position);
    } catch (e) {
      this.#slots.release(slot);
      return Promise.reject(e);
    }
    slot.path = path;
    return this.#start(slot, signal);
  }

  /** An operation on an fd (or none): `fill` checks the arguments and stores them in the slot. */
  #fdOp<T>(signal: AbortSignal | undefined, path: string | null, fill: (slot: Slot) => void): Promise<T> {
    if (this.#closing) return Promise.reject(new ClosedError("Uring"));
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    const slot = this.#slots.alloc();
    slot.state = DONE;
    try {
      fill(slot);
    } catch (e) {
      this.#slots.release(slot);
      return Promise.reject(e);
    }
    slot.path = path;
    return this.#start(slot, signal);
  }

  /** An operation on one or two paths, after Deno's permission checks. */
  #pathOp<T>(
    signal: AbortSignal | undefined,
    path: string | URL,
    path2: string | URL | null,
    op: string,
    access: Access | "both",
    access2: Access | "both" | null,
    fill: (slot: Slot, p: string, q: string | null) => void,
  ): Promise<T> {
    if (this.#closing) return Promise.reject(new ClosedError("Uring"));
    if (signal !== undefined && signal.aborted) return Promise.reject(signal.reason);
    let p: string;
    let q: string | null = null;
    try {
      p = toPath(path);
      if (path2 !== null) q = toPath(path2, "newPath");
    } catch (e) {
      return Promise.reject(e);
    }
    const denied = checkBoth(op, access, p) ??
      (q !== null && access2 !== null ? checkBoth(op, access2, q) : null);
    if (denied) return Promise.reject(denied);
    const slot = this.#slots.alloc();
    slot.state = DONE;
    try {
      fill(slot, p, q);
    } catch (e) {
      this.#slots.release(slot);
      return Promise.reject(e);
    }
    return this.#start(slot, signal);
  }

  readonly #executor = (resolve: (value: never) => void, reject: (reason: unknown) => void): void => {
    const slot = this.#newSlot!;
    slot.resolve = resolve;
    slot.reject = reject;
  };

  #start<T>(slot: Slot, signal: AbortSignal | undefined): Promise<T> {
    this.#newSlot = slot;
    const promise = new Promise<T>(
      this.#executor as (resolve: (value: T) => void, reject: (e: unknown) => void) => void,
    );
    this.#newSlot = null;
    if (signal !== undefined) {
      slot.signal = signal;
      signal.addEventListener("abort", slot.onAbort);
    }
    this.#enqueue(slot);
    return promise;
  }

  /** Puts an operation (or a chain, by its head) into the SQ now if it fits, else in the FIFO. */
  #enqueue(head: Slot): void {
    const chain = head.chain;
    const n = chain === null ? 1 : chain.slots.length;
    if (this.#backlog.size === 0 && this.#inRing + n <= this.#limit) {
      if (n === 1) {
        const sqe = this.#ring.getSqe();
        if (sqe !== null) {
          this.#put(head, sqe);
          this.#schedule();
          return;
        }
      } else if (this.#ring.sqSpaceLeft() >= n) {
        for (const slot of chain!.slots) this.#put(slot, this.#ring.getSqe()!);
        this.#schedule();
        return;
      }
    }
    if (chain === null) head.state = QUEUED;
    else for (const slot of chain.slots) slot.state = QUEUED;
    this.#backlog.push(head);
    this.#schedule();
  }

  #put(slot: Slot, sqe: Sqe): void {
    prepSlot(slot, sqe);
    slot.state = IN_RING;
    this.#inRing++;
    this.#toSubmit++;
    this.stats.sqes++;
  }

  #putInternal(sqe: Sqe, kind: number, a: number, b: number): void {
    switch (kind) {
      case I_WAKE:
        prepNop(sqe);
        this.#wakeOutstanding = true;
        this.stats.wakes++;
        break;
      case I_CANCEL:
        prepCancel(sqe, 0);
        sqe.u32[sqe.base + W.addrLo] = a; // the target's user_data: slot index, generation
        sqe.u32[sqe.base + W.addrHi] = b;
        break;
      case I_CANCEL_ALL:
        prepCancel(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        break;
      case I_CLOSE:
        prepClose(sqe, a);
        break;
    }
    sqe.u32[sqe.base + W.userLo] = kind;
    sqe.u32[sqe.base + W.userHi] = INTERNAL;
    this.#inRing++;
    this.#toSubmit++;
    this.stats.sqes++;
  }

  #queueInternal(kind: number, a = 0, b = 0): void {
    this.#internal.push(kind, a, b);
    this.#schedule();
  }

  /** Moves internal SQEs, then queued operations, into free SQ slots (within the CQ limit). */
  #fill(): void {
    const q = this.#internal;
    while (this.#internalHead < q.length) {
      if (this.#inRing >= this.#limit) return;
      const sqe = this.#ring.getSqe();
      if (sqe === null) return;
      const at = this.#internalHead;
      this.#internalHead += 3;
      this.#putInternal(sqe, q[at], q[at + 1], q[at + 2]);
    }
    if (this.#internalHead > 0) {
      q.length = 0;
      this.#internalHead = 0;
    }
    for (;;) {
      const head = this.#backlog.peek();
      if (head === null) return;
      const chain = head.chain;
      if (chain === null ? hasDetachedBuffer(head) : chain.slots.some(hasDetachedBuffer)) {
        // A buffer was transferred away while the operation waited here: it cannot run.
        this.#backlog.shift();
        this.#rejectQueued(
          head,
          new TypeError(`${OP_NAMES[head.kind]}: a buffer was detached before the operation started`),
        );
        continue;
      }
      if (chain === null) {
        if (this.#inRing >= this.#limit) return;
        const sqe = this.#ring.getSqe();
        if (sqe === null) return;
        this.#backlog.shift();
        this.#put(head, sqe);
      } else {
        const n = chain.slots.length;
        if (this.#inRing + n > this.#limit || this.#ring.sqSpaceLeft() < n) return;
        this.#backlog.shift();
        for (const slot of chain.slots) this.#put(slot, this.#ring.getSqe()!);
      }
    }
  }

  #schedule(): void {
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushTask);
    }
  }

  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    if (this.#deferred) return; // the turn's pump will do the work
    if (
      (++this.#microPumps & (TURN_CHECK_EVERY - 1)) === 0 &&
      performance.now() - this.#turnAt > TURN_BUDGET_MS
    ) {
      this.#deferToTurn();
      return;
    }
    this.#guardedPump();
  };

  /**
   * Runs the pump from a macrotask instead of this microtask: the event loop takes a turn first
   * (timers, signal handlers, other I/O). A fresh `MessageChannel` per deferral (closed when its
   * message arrives, so nothing keeps the process alive) costs tens of µs, against ~2 ms for
   * `setTimeout(0)`; it happens at most once per `TURN_BUDGET_MS`.
   */
  #deferToTurn(): void {
    this.#deferred = true;
    this.stats.yields++;
    const channel = new MessageChannel();
    channel.port2.onmessage = () => {
      channel.port1.close();
      channel.port2.close();
      this.#deferred = false;
      this.#turnAt = performance.now();
      this.#guardedPump();
    };
    channel.port1.postMessage(null);
  }

  /** The pump, with anything unexpected turned into rejections rather than a crash. */
  #guardedPump(): void {
    try {
      this.#pump();
    } catch (e) {
      this.#fail(e);
    }
  }

  // -------------------------------------------------------------------------------------------
  // The pump: submit, reap, settle, then wait or go idle

  #pump(): void {
    if (this.#closed) return;
    let settled = 0;
    for (;;) {
      this.#fill();
      if (this.#toSubmit > 0) {
        this.#toSubmit = 0;
        try {
          this.#ring.submit();
        } catch (e) {
          if (!isRetryable(e)) throw e;
          this.#toSubmit = 1; // the SQEs stay queued: try again on the next turn
        }
      }
      let n = this.#reap();
      if (
        n === 0 && this.#spinUs > 0 && this.#inRing > (this.#wakeOutstanding ? 1 : 0) && this.#shouldSpin()
      ) {
        n = this.#spin();
      }
      if (n === 0) {
        const need = this.#roomNeeded();
        if (need > 0 && this.#inRing === (this.#wakeOutstanding ? 1 : 0)) {
          // Every CQE is in, yet queued work found no SQ room: the kernel posts a batch's
          // completions before it advances the SQ head past the batch, so the room is a moment
          // away. Watch for it briefly, else retry on a timer (nothing else would wake us).
          if (this.#awaitSqRoom(need)) continue;
          this.#yield();
          return;
        }
        break;
      }
      settled += n;
      if (settled >= YIELD_AFTER && this.#backlog.size > 0) {
        this.#yield();
        return;
      }
    }
    this.#afterPump();
  }

  /** SQ entries the first queued unit (internal SQE, operation or chain) needs; 0 if none. */
  #roomNeeded(): number {
    if (this.#internalHead < this.#internal.length) return 1;
    const head = this.#backlog.peek();
    if (head === null) return 0;
    return head.chain === null ? 1 : head.chain.slots.length;
  }

  /** Watches the SQ head for up to `SQ_ROOM_WAIT_MS` until `need` entries are free. */
  #awaitSqRoom(need: number): boolean {
    const deadline = performance.now() + SQ_ROOM_WAIT_MS;
    for (;;) {
      for (let i = 0; i < 64; i++) if (this.#ring.sqSpaceLeft() >= need) return true;
      if (performance.now() >= deadline) return false;
    }
  }

  /** Whether the CQ may be reaped now: not while only a wake-up no-op is out for a parked wait. */
  #mayReap(): boolean {
    return this.#inRing > (this.#wakeOutstanding && this.#waiting ? 1 : 0);
  }

  /** Drains ready CQEs into the ready list, then settles them. Returns the count. */
  #reap(): number {
    if (!this.#mayReap()) return 0;
    this.#readyCount = 0;
    const n = this.#ring.forEachCqe(this.#onCqe);
    this.stats.cqes += n;
    const ready = this.#ready;
    for (let i = 0; i < this.#readyCount; i++) {
      const slot = ready[i]!;
      ready[i] = null;
      this.#complete(slot);
    }
    this.#readyCount = 0;
    return n;
  }

  /**
   * Watches the CQ tail for up to `spinUs` (SQPOLL: the SQ thread posts completions soon). The
   * kernel posts a batch's completions after it has taken in the whole batch, so while the SQ
   * thread is still consuming our SQEs the watch is extended (up to `SPIN_CAP` times `spinUs`).
   */
  /**
   * Whether to spin now: always while spins pay off; after `SPIN_MISS_LIMIT` misses in a row
   * (the work in flight is slow: disk, pipes, timers) only every `SPIN_PROBE_EVERY`th time, so
   * slow I/O does not cost the main thread a spin per turn.
   */
  #shouldSpin(): boolean {
    if (this.#spinMisses < SPIN_MISS_LIMIT) return true;
    return (++this.#spinProbe % SPIN_PROBE_EVERY) === 0;
  }

  #spin(): number {
    this.stats.spins++;
    const ring = this.#ring;
    const spinMs = this.#spinUs / 1000;
    const start = performance.now();
    const cap = start + SPIN_CAP * spinMs;
    // The kernel needs roughly a microsecond per cached request of a batch before it posts the
    // batch's CQEs: allow for the SQEs it has not taken in yet.
    let unconsumed = ring.sqReady();
    let deadline = Math.min(cap, start + spinMs + unconsumed * SPIN_PER_SQE_MS);
    for (;;) {
      for (let i = 0; i < 64; i++) {
        if (ring.cqReady() > 0) {
          this.stats.spinHits++;
          this.#spinMisses = 0;
          return this.#reap();
        }
      }
      const now = performance.now();
      if (now >= deadline) {
        // Watch longer only while the SQ thread is visibly taking SQEs in. If it is not running
        // (asleep, or without a CPU on a busy machine), spinning would only keep a core from it.
        const left = ring.sqReady();
        if (now < cap && left > 0 && left < unconsumed) {
          unconsumed = left;
          deadline = Math.min(cap, now + spinMs);
        } else {
          this.#spinMisses++;
          return 0;
        }
      }
    }
  }

  readonly #onCqe = (cqe: Cqe): void => {
    this.#inRing--;
    if (cqe.userDataHi === INTERNAL) {
      const kind = cqe.userDataLo;
      if (kind === I_WAKE) this.#wakeOutstanding = false;
      else if (kind === I_CANCEL_ALL && cqe.res === -EINVAL) this.#cancelEachInRing(); // before 5.19
      return;
    }
    const slot = this.#slots.at(cqe.userDataLo);
    if (slot === undefined || slot.gen !== cqe.userDataHi || slot.state !== IN_RING) {
      throw new Error(
        `internal error: a completion for no operation (user_data ${cqe.userDataHi}:${cqe.userDataLo})`,
      );
    }
    slot.res = cqe.res;
    slot.state = DONE;
    this.#ready[this.#readyCount++] = slot;
  };

  #afterPump(): void {
    const active = this.#inRing - (this.#wakeOutstanding ? 1 : 0);
    if (active > 0) {
      if (!this.#waiting) this.#park();
      if (this.#closing && performance.now() - this.#lastCancelAll > WAIT_MS) {
        // Something survived the cancel (it was already running): ask again.
        this.#lastCancelAll = performance.now();
        this.#queueInternal(I_CANCEL_ALL);
      }
      return;
    }
    if (this.#waiting) {
      // Nothing of ours is in flight but a wait is parked: leave it a completion to find.
      if (!this.#wakeOutstanding) this.#postWake();
      return;
    }
    // Nothing in flight but maybe a wake-up no-op whose wait already returned (under SQPOLL its
    // CQE can come after the wait did): it touches no memory, so the ring may close under it.
    if (this.#closing && this.#roomNeeded() === 0) this.#finishClose();
  }

  #postWake(): void {
    let sqe = this.#ring.getSqe();
    // Under SQPOLL the SQ head can lag the CQEs for a moment (see #pump): wait for the room.
    if (sqe === null && this.#awaitSqRoom(1)) sqe = this.#ring.getSqe();
    if (sqe === null) {
      this.#yield(); // try again shortly
      return;
    }
    this.#putInternal(sqe, I_WAKE, 0, 0);
    this.#toSubmit = 0;
    try {
      this.#ring.submit();
    } catch (e) {
      if (!isRetryable(e)) throw e;
      this.#toSubmit = 1; // the parked wait times out and the next turn submits it
    }
  }

  #park(): void {
    this.#waiting = true;
    this.stats.waits++;
    this.#ring.waitAsync(WAIT_MS).then(this.#onWaitDone, this.#onWaitDone);
  }

  readonly #onWaitDone = (): void => {
    this.#waiting = false;
    this.#turnAt = performance.now(); // a thread-pool completion: the event loop turned
    this.#guardedPump();
  };

  #yield(): void {
    this.stats.yields++;
    if (this.#yieldTimer !== undefined) return;
    this.#yieldTimer = setTimeout(() => {
      this.#yieldTimer = undefined;
      this.#turnAt = performance.now();
      this.#guardedPump();
    }, 0);
  }

  // -------------------------------------------------------------------------------------------
  // Settling

  #complete(slot: Slot): void {
    const chain = slot.chain;
    if (chain !== null) {
      this.#completeMember(chain, slot);
      return;
    }
    const { resolve, reject, signal } = slot;
    if (signal !== null) signal.removeEventListener("abort", slot.onAbort);
    const res = slot.res;
    let error: unknown = null;
    let value: unknown = undefined;
    if (res >= 0 || (slot.kind === K_TIMEOUT && res === -ETIME)) {
      value = this.#value(slot);
      if (this.#closing && slot.kind === K_OPEN) {
        // The Uring is closing: the file would outlive it. Close the fd and report the close.
        (value as UringFile).detach();
        this.#files.delete(value as UringFile);
        this.#queueInternal(I_CLOSE, res);
        error = this.#error(slot, ECANCELED);
      }
    } else if (slot.aborted && signal !== null) {
      error = signal.reason;
    } else {
      error = this.#error(slot, -res);
    }
    if (slot.statx !== null) this.#statxPool.push(slot.statx);
    this.#slots.release(slot);
    this.stats.settled++;
    if (error !== null) reject!(error);
    else (resolve as (v: unknown) => void)(value);
  }

  #value(slot: Slot): unknown {
    const kind = slot.kind;
    if (returnsCount(kind)) return slot.res;
    if (kind === K_STATX || kind === K_FSTAT) return parseStatx(slot.statx!);
    if (kind === K_OPEN) {
      const file = new UringFile(this.#fileOps, slot.res, slot.path!);
      this.#files.add(file);
      return file;
    }
    return undefined;
  }

  #error(slot: Slot, errnum: number): Error {
    const detail = this.#closing && errnum === ECANCELED ? "the Uring was closed" : undefined;
    return operationError(OP_NAMES[slot.kind], errnum, slot.path, slot.path2, slot.fd, detail);
  }

  #completeMember(chain: ChainState, slot: Slot): void {
    const res = slot.res;
    let result: ChainResult;
    if (res >= 0 || (slot.kind === K_TIMEOUT && res === -ETIME)) {
      result = { ok: true, value: res >= 0 ? res : 0 };
    } else {
      result = { ok: false, error: this.#error(slot, -res) };
    }
    chain.results[slot.chainIndex] = result;
    this.#slots.release(slot);
    if (--chain.remaining > 0) return;
    this.#settleChain(chain);
  }

  #settleChain(chain: ChainState): void {
    const signal = chain.signal;
    if (signal !== null) signal.removeEventListener("abort", chain.slots[0].onAbort);
    this.stats.settled++;
    const results = chain.results as ChainResult[];
    if (chain.aborted && signal !== null && results.some((r) => !r.ok)) chain.reject(signal.reason);
    else chain.resolve(results);
  }

  // -------------------------------------------------------------------------------------------
  // Cancellation

  readonly #onAbort = (slot: Slot): void => {
    const chain = slot.chain;
    if (chain !== null) {
      this.#abortChain(chain);
      return;
    }
    if (slot.state === QUEUED) {
      // It never reached the kernel: take it out of the FIFO (the entry goes stale) and reject.
      const { reject, signal } = slot;
      signal!.removeEventListener("abort", slot.onAbort);
      if (slot.statx !== null) this.#statxPool.push(slot.statx);
      this.#slots.release(slot);
      this.stats.settled++;
      reject!(signal!.reason);
    } else if (slot.state === IN_RING && !slot.aborted) {
      slot.aborted = true;
      this.#queueInternal(I_CANCEL, slot.index, slot.gen);
    }
  };

  #abortChain(chain: ChainState): void {
    if (chain.aborted) return;
    const head = chain.slots[0];
    if (head.state === QUEUED) {
      const signal = chain.signal!;
      signal.removeEventListener("abort", head.onAbort);
      for (const slot of chain.slots) this.#slots.release(slot);
      this.stats.settled++;
      chain.reject(signal.reason);
      return;
    }
    chain.aborted = true;
    for (const slot of chain.slots) {
      if (slot.state === IN_RING && slot.chain === chain) this.#queueInternal(I_CANCEL, slot.index, slot.gen);
    }
  }

  /** Per-operation cancels, for kernels without `IORING_ASYNC_CANCEL_ANY` (before 5.19). */
  #cancelEachInRing(): void {
    this.#slots.forEachUsed((slot) => {
      if (slot.state === IN_RING) this.#queueInternal(I_CANCEL, slot.index, slot.gen);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Closing

  #closeUring(): Promise<void> {
    if (this.#closePromise !== null) return this.#closePromise;
    if (this.#closed) return this.#closePromise = Promise.resolve(); // it failed earlier (#fail)
    this.#closing = true;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#closePromise = promise;
    this.#closeResolve = resolve;
    // 1. What never reached the kernel is rejected now.
    for (let head = this.#backlog.peek(); head !== null; head = this.#backlog.peek()) {
      this.#backlog.shift();
      this.#rejectQueued(head);
    }
    // 2. Cancel everything in the ring; 3. close the files open() returned.
    if (this.#inRing - (this.#wakeOutstanding ? 1 : 0) > 0) {
      this.#lastCancelAll = performance.now();
      this.#queueInternal(I_CANCEL_ALL);
    }
    for (const file of this.#files) {
      file.detach();
      this.#queueInternal(I_CLOSE, file.fd);
    }
    this.#files.clear();
    // 4. The pump waits for every CQE, then #finishClose closes the ring.
    this.#schedule();
    return promise;
  }

  #rejectQueued(head: Slot, error: Error = this.#error(head, ECANCELED)): void {
    const chain = head.chain;
    if (chain !== null) {
      if (chain.signal !== null) chain.signal.removeEventListener("abort", head.onAbort);
      for (const slot of chain.slots) this.#slots.release(slot);
      this.stats.settled++;
      chain.reject(error);
      return;
    }
    const { reject, signal } = head;
    if (signal !== null) signal.removeEventListener("abort", head.onAbort);
    if (head.statx !== null) this.#statxPool.push(head.statx);
    this.#slots.release(head);
    this.stats.settled++;
    reject!(error);
  }

  /**
   * The ring failed in a way the pump cannot recover from (an unexpected `io_uring_enter` error
   * or a completion for no operation): every pending promise rejects with `error` and the Uring
   * stops. Slots keep their buffers referenced, since the kernel may still use them.
   */
  #fail(error: unknown): void {
    if (this.#closed) return;
    this.#closing = true;
    this.#closed = true;
    if (this.#yieldTimer !== undefined) clearTimeout(this.#yieldTimer);
    const chains = new Set<ChainState>();
    this.#slots.forEachUsed((slot) => {
      if (slot.chain !== null) chains.add(slot.chain);
      else if (slot.reject !== null) {
        const reject = slot.reject;
        slot.resolve = slot.reject = null;
        reject(error);
      }
    });
    for (const chain of chains) chain.reject(error);
    this.#closeResolve?.();
  }

  #finishClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#yieldTimer !== undefined) clearTimeout(this.#yieldTimer);
    this.#ring.close();
    this.#closeResolve!();
  }

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#closeUring();
  }
}

function checkBoth(op: string, access: Access | "both", path: string): Error | null {
  if (access === "both") return checkAccess(op, "read", path) ?? checkAccess(op, "write", path);
  return checkAccess(op, access, path);
}

/** The `O_*` flags and the permission `open` options imply. */
export function openFlags(options: OpenOptions): { flags: number; access: Access | "both" } {
  const append = options.append === true;
  const write = options.write === true || append;
  const read = options.read === true || (!write && options.read !== false);
  if (!read && !write) throw new TypeError("open needs read, write or append");
  if ((options.create || options.truncate || options.exclusive) && !write) {
    throw new TypeError("create, truncate and exclusive need write or append");
  }
  let flags = O_CLOEXEC | (read && write ? O_RDWR : write ? O_WRONLY : O_RDONLY);
  if (options.create) flags |= O_CREAT;
  if (options.exclusive) flags |= O_CREAT | O_EXCL;
  if (options.truncate) flags |= O_TRUNC;
  if (append) flags |= O_APPEND;
  if (options.direct) flags |= O_DIRECT;
  return { flags, access: read && write ? "both" : write ? "write" : "read" };
}

/**
 * One copy's shared state: the engine (io_uring, or Deno's APIs after a fallback), the global
 * in-flight budget and buffer pool, the counters behind progress reports, and the stop switch.
 *
 * Testing hook: with the environment variable `URING_FORCE_UNAVAILABLE=1` the copy behaves as if
 * `io_uring_setup` had failed with `EPERM`, to exercise the fallback on a system where io_uring
 * works.
 *
 * @module
 */

import { IORING_FEAT_LINKED_FILE, IORING_OP_MKDIRAT } from "./abi.ts";
import { BufferPool, Semaphore } from "./copy_budget.ts";
import { DenoEngine } from "./copy_deno_engine.ts";
import { directBufferSize, DirectIo } from "./copy_direct.ts";
import { CopyFixedBuffers } from "./copy_fixed.ts";
import { type Engine, type EngineContext, type EntryStat, RESERVED_DESCRIPTORS } from "./copy_engine.ts";
import { codeOf, staged } from "./copy_errors.ts";
import { drainBeforeExit } from "./copy_incomplete.ts";
import { holdSharedCopyRing, keptLanesOf } from "./copy_shared_ring.ts";
import {
  blockBuffers,
  type CopyProgress,
  type CopyResult,
  DEFAULT_QUEUE_DEPTH,
  type ResolvedCopyOptions,
  smallFileBuffers,
} from "./copy_options.ts";
import { UringEngine } from "./copy_uring_engine.ts";
import { errno } from "./errno.ts";
import { IoUringError } from "./errors.ts";
import { getSys, type Sys } from "./sys.ts";
import { giveBackKernelBytes, kernelBytes } from "./thread_memory.ts";
import { onNextTurn } from "./turn.ts";
import { Uring } from "./uring.ts";
import { type IoUring, makeRingDyingWithThread } from "./ring.ts";

/**
 * Longest stretch (ms) the copy runs without letting the event loop turn. Cached reads and
 * writes complete inside the submitting system call and settle their promises as microtasks, so
 * a copy could otherwise run for minutes without timers, signal handlers (Ctrl-C) or other I/O
 * getting a turn.
 */
export const BREATHE_EVERY_MS = 25;

/** The environment variable that makes copies act as if io_uring were unavailable. */
export const FORCE_UNAVAILABLE_ENV = "URING_FORCE_UNAVAILABLE";

function forcedUnavailable(): boolean {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: FORCE_UNAVAILABLE_ENV }).state !== "granted") {
      return false;
    }
    const v = Deno.env.get(FORCE_UNAVAILABLE_ENV);
    return v !== undefined && v !== "" && v !== "0";
  } catch {
    return false;
  }
}

/**
 * True for the failures that mean "no io_uring for copies here": setup refused (`EPERM`) or
 * missing (`ENOSYS`), a kernel whose io_uring is too old for the copy engine (see
 * {@link createCopyUring}: call `"io_uring"`, `ENOSYS`), or setup's `ENOMEM` after the retries
 * (a process without `CAP_IPC_LOCK` whose `RLIMIT_MEMLOCK` has no room for a ring, as in
 * containers with a small `ulimit -l`: Deno's file APIs need no locked memory).
 */
export function isUnavailableError(e: unknown): e is IoUringError {
  if (!(e instanceof IoUringError)) return false;
  if (e.call === "io_uring_setup") {
    return e.code === "EPERM" || e.code === "EACCES" || e.code === "ENOSYS" || e.code === "ENOMEM";
  }
  return e.call === "io_uring" && e.code === "ENOSYS";
}

/** The error for a kernel whose io_uring lacks what copies need: `what`, since `version`. */
function tooOldForCopies(what: string, version: string): IoUringError {
  return new IoUringError(
    "io_uring",
    errno("ENOSYS"),
    `this kernel's io_uring lacks ${what}, which copies need (Linux ${version})`,
  );
}

/** SQ entries for a copy with `queueDepth` operations in flight (room for clean-up besides). */
export function ringEntries(queueDepth: number): number {
  let n = 64;
  while (n < queueDepth * 2) n *= 2;
  return Math.min(n, 32768);
}

/**
 * Registered file table entries for a copy's own `Uring`: two direct descriptors for each
 * one-block file that may be in flight (`queueDepth / 6`), within `RLIMIT_NOFILE`'s usual 1024.
 * When the table is full, a file goes the block-by-block way instead.
 */
export function copyFixedFiles(queueDepth: number): number {
  return Math.max(64, Math.min(1024, 2 * Math.ceil(queueDepth / 6) + 8));
}

/**
 * A `Uring` sized for `queueDepth` operations in flight, with SQPOLL when `sqpoll` (falling back
 * to a plain ring if the kernel refuses it), its memory going with this thread when
 * `diesWithThread` (`makeRingDyingWithThread`: for the copies' own rings, whose memory no view
 * of leaves the module; then so does the kernel's memory of its copies, see
 * `thread_memory.ts`); throws the setup error
 * ({@link isUnavailableError} tells whether it means "no io_uring here"), also when
 * `URING_FORCE_UNAVAILABLE=1` pretends so.
 */
export function createCopyUring(queueDepth: number, sqpoll: boolean, diesWithThread = false): Uring {
  if (forcedUnavailable()) {
    throw new IoUringError("io_uring_setup", errno("EPERM"), `forced by ${FORCE_UNAVAILABLE_ENV}=1`);
  }
  // `sqpoll: undefined` is Uring's "on, unless the kernel refuses": a refusal is no reason to fail.
  let uring: Uring;
  try {
    const make = () =>
      new Uring({
        entries: ringEntries(queueDepth),
        sqpoll: sqpoll ? undefined : false,
        fixedFiles: copyFixedFiles(queueDepth),
      });
    uring = withMemlockRetries(() => diesWithThread ? makeRingDyingWithThread(make) : make());
  } catch (e) {
    // A Uring refuses a kernel before 5.11 (no IORING_FEAT_EXT_ARG) with this error.
    if (e instanceof IoUringError && e.call === "io_uring_enter" && e.code === "EINVAL") {
      throw tooOldForCopies("IORING_FEAT_EXT_ARG (waits with a timeout)", "5.11");
    }
    throw e;
  }
  const missing = missingForCopies(uring.ring);
  if (missing !== null) {
    uring.close().catch(() => {}); // nothing was queued: it closes at once
    throw tooOldForCopies(missing.what, missing.version);
  }
  return uring;
}

/**
 * What a ring's kernel lacks that the copy engine needs beyond a `Uring` (5.11), or null:
 * `mkdirat`/`symlinkat` for trees (5.15), and `IORING_FEAT_LINKED_FILE` (5.17) for the chains
 * that open a file into a direct descriptor and read, write and close it in the same submission
 * (before it, the kernel looks the later members' files up when the chain is submitted, so they
 * find the slot empty). A kernel with the feature has `mkdirat`: the opcodes are probed (a
 * system call) only to name what an older one lacks.
 */
export function missingForCopies(
  ring: Pick<IoUring, "hasFeature" | "probe">,
): { what: string; version: string } | null {
  if (ring.hasFeature(IORING_FEAT_LINKED_FILE)) return null;
  if (!ring.probe().supports(IORING_OP_MKDIRAT)) return { what: "IORING_OP_MKDIRAT", version: "5.15" };
  return { what: "IORING_FEAT_LINKED_FILE (files opened and used in one chain)", version: "5.17" };
}

/**
 * File descriptors a copy may hold at once: those free now (`ulimit -n` less those open) less
 * {@link RESERVED_DESCRIPTORS} for the rest of the process; Infinity when the limit is unknown.
 * Counting what is open matters: a program holding most of its descriptors already would
 * otherwise see the copy take the last ones (Deno itself panicked when it then could not make
 * the socket pair of its first signal listener). Without `countOpen` (a one-file copy: at most
 * a few pipes, which it gives back on `EMFILE`), the limit alone: counting lists `/proc/self/fd`,
 * 14 ms with 15,000 descriptors open, which every `copyFile` would pay.
 */
export function freeDescriptors(sys: Pick<Sys, "fileLimit" | "openFiles">, countOpen = true): number {
  const limit = sys.fileLimit();
  if (limit < 0) return Infinity;
  if (!countOpen) return Math.max(0, limit - RESERVED_DESCRIPTORS);
  const open = sys.openFiles();
  // (-EMFILE: not one free to count with; another failure: the limit alone, as before counting.)
  const inUse = open >= 0 ? open : open === -errno("EMFILE") ? limit : 0;
  return Math.max(0, limit - inUse - RESERVED_DESCRIPTORS);
}

/**
 * How long (ms) a `copyFile` goes by the file limit another read (`getrlimit` cost ~5 µs of a
 * one-block file's ~70 µs of main thread here, many copies at once). A limit lowered meanwhile
 * costs nothing worse than a pipe refused with `EMFILE`, which the copy gives back pipes for.
 */
const LIMIT_FRESH_MS = 1000;
/** The last {@link freeDescriptors} a `copyFile` read (limit alone), through which layer and when. */
let limitRead: { sys: Sys | null; at: number; free: number } = { sys: null, at: -Infinity, free: 0 };

/** When retries of {@link withMemlockRetries} last came to nothing (`performance.now()`). */
let memlockGaveUpAt = -Infinity;

/**
 * `make()`, tried again after 2, 4, 8, 16 and 32 ms (62 ms in all, blocking) while it fails with
 * `io_uring_setup`'s `ENOMEM`: a process without `CAP_IPC_LOCK` has its rings charged to
 * `RLIMIT_MEMLOCK`, and a ring just closed (the last copy's) stays charged until the kernel has
 * torn it down, ~20 ms later here (more on a loaded machine: the teardown runs in a kernel
 * worker); under a 64 KiB limit every copy straight after another failed. Within a second of
 * retries that came to nothing (the memory is held for good), it fails at once.
 */
function withMemlockRetries<T>(make: () => T): T {
  for (let wait = 2;; wait *= 2) {
    try {
      return make();
    } catch (e) {
      if (!(e instanceof IoUringError && e.call === "io_uring_setup" && e.code === "ENOMEM")) throw e;
      if (wait > 32) {
        memlockGaveUpAt = performance.now();
        throw e;
      }
      if (performance.now() - memlockGaveUpAt < 1000) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
    }
  }
}

/**
 * Why a Worker's copies use Deno's file APIs when the system layer cannot hold their kernel
 * memory (see {@link workerWithoutHeldMemory}).
 */
export const WORKER_WITHOUT_HELPER =
  "a Worker without the uring helper (URING_BACKEND=libc, or a helper built before uring_mmap_anon_held): " +
  "the kernel could still write into a terminated Worker's freed memory, which crashed the process, so " +
  "copies here use Deno's file APIs (`deno task build`, or URING_HELPER, gives the helper)";

/**
 * Whether this thread is not the process's first and the default system layer cannot hold a
 * copy's kernel memory until the thread is gone (`Sys.mmapAnonHeld`, see `thread_memory.ts`).
 */
function workerWithoutHeldMemory(): boolean {
  // (Asked once, as the system layer is chosen: a module instance is a thread's.)
  if (workerWithoutHelper === undefined) {
    const sys = getSys();
    workerWithoutHelper = sys.mmapAnonHeld === undefined && !sys.isMainThread();
  }
  return workerWithoutHelper;
}

/** {@link workerWithoutHeldMemory}'s answer, once asked. */
let workerWithoutHelper: boolean | undefined;

/**
 * The engine for `options`: the caller's `Uring`, a new one, or Deno's APIs after a fallback.
 * With `shared` (a `copyFile`), neither `uring` nor `sqpoll` given and no deeper `queueDepth` than
 * the default, this thread's shared copy ring (see `copy_shared_ring.ts`), held until
 * `release` (returned with the engine) is called. On a caller's `uring`, the lanes kept for it,
 * if any (the CLI's: see `keepLanesFor`).
 */
export function openEngine(
  options: ResolvedCopyOptions,
  shared = false,
): { engine: Engine; release?: () => Promise<void> | undefined } {
  if (options.uring) {
    const missing = missingForCopies(options.uring.ring);
    if (missing === null) {
      return { engine: new UringEngine(options.uring, false, keptLanesOf(options.uring)) };
    }
    const e = tooOldForCopies(missing.what, missing.version);
    if (options.fallback) return { engine: fallbackEngine(e, options) };
    throw e;
  }
  // (With `fallback: false`, a ring of its own all the same: the program asked for io_uring.)
  if (options.fallback && workerWithoutHeldMemory()) {
    return { engine: fallbackEngine(new Error(WORKER_WITHOUT_HELPER), options) };
  }
  try {
    if (
      shared && !options.sqpoll && options.queueDepth <= DEFAULT_QUEUE_DEPTH && !forcedUnavailable()
    ) {
      // (A ring whose memory goes with this thread, as a Worker's must: see copy_shared_ring.ts.)
      const held = holdSharedCopyRing(() => createCopyUring(DEFAULT_QUEUE_DEPTH, false, true));
      return { engine: new UringEngine(held.uring, false, held.lanes), release: held.release };
    }
    // (Its memory goes with this thread too: a Worker terminated mid-copy leaves no ring running.
    // SQPOLL on the process's first thread only: see CopyOptions.sqpoll.)
    const sqpoll = options.sqpoll && getSys().isMainThread();
    return { engine: new UringEngine(createCopyUring(options.queueDepth, sqpoll, true), true) };
  } catch (e) {
    if (options.fallback && isUnavailableError(e)) return { engine: fallbackEngine(e, options) };
    throw e;
  }
}

/** Deno's engine, saying why (`e`) and, for a `direct` copy, that the page cache is not bypassed. */
function fallbackEngine(e: Error, options: ResolvedCopyOptions): DenoEngine {
  const note = options.direct ? " (without O_DIRECT: Deno's file APIs go through the page cache)" : "";
  return new DenoEngine(`${e.message}${note}`);
}

/**
 * What `onProgress` threw, in words, without running its code (an object's `toString` may throw,
 * or be missing): strings quoted, other primitives as they print, objects by their kind.
 */
function describeThrown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || (typeof value !== "object" && typeof value !== "function")) return String(value);
  return typeof value === "function" ? "a function" : "an object";
}

/** Everything one `copyFile`/`copyTree` call shares. */
/** Whether `value` is a promise or another thenable (what an async `onProgress` returns). */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

export class CopyContext implements EngineContext {
  /** The checked options. */
  readonly options: ResolvedCopyOptions;
  /** The engine. */
  readonly engine: Engine;
  /** One permit per operation in flight, across every file. */
  readonly inflight: Semaphore;
  /** The data buffers. */
  readonly pool: BufferPool;
  /** Plain buffers for files of one block (see `EngineContext.smallPool`, {@link expectOneFile}). */
  smallPool: BufferPool;
  /** O_DIRECT state, for `direct` copies on io_uring. */
  readonly direct: DirectIo | undefined;
  /** The buffered copy's fixed buffers, on io_uring (see `CopyFixedBuffers`). */
  readonly fixed: CopyFixedBuffers | undefined;
  /** Fires on the caller's abort or on {@link CopyContext.stop}. */
  readonly signal: AbortSignal;
  /** What {@link CopyContext.descriptors} worked out, once asked. */
  #descriptors: number | undefined;
  /** Whether {@link CopyContext.descriptors} counts those open (a tree copy's, see `freeDescriptors`). */
  readonly #countOpen: boolean;
  /**
   * The mask new files are created under in the tree's destination, when a probe found it there
   * (see {@link CopyContext.learnUmask}; a `copyFile` does not look, and sets each file's mode).
   */
  umask: number | undefined;
  /** Progress so far (reported through `onProgress`). */
  readonly progress: CopyProgress = { bytes: 0, files: 0, totalBytes: 0, totalFiles: 0, scanning: false };
  /** Directories created or merged into. */
  dirs = 0;
  readonly #stop = new AbortController();
  /** What `onProgress` threw, as {@link CopyContext.progressError} gives it (the copy stops then). */
  #progressError: Error | undefined;
  /** Set when `close()` begins: the copy has settled (see `#onProgressRejected`). */
  #closing = false;
  readonly #start = performance.now();
  #doneBytes = 0;
  #lastBreath = performance.now();
  #breath: Promise<void> | undefined;
  /** Ends the hold on the shared copy ring, when the engine runs on it. */
  readonly #releaseRing: (() => Promise<void> | undefined) | undefined;
  /** Unregisters the drain of the engine's Uring before an exit (copy_incomplete.ts). */
  readonly #undrain: () => void;

  /**
   * Opens the engine for `options`; `countOpen`: see {@link freeDescriptors}; `sharedRing`: see
   * {@link openEngine}.
   */
  constructor(options: ResolvedCopyOptions, countOpen = false, sharedRing = false) {
    this.options = options;
    this.#countOpen = countOpen;
    // First, before anything is held: a look-alike signal that passed the options' check makes
    // AbortSignal.any throw (a hold on the shared ring taken before it was never given back).
    this.signal = options.signal ? AbortSignal.any([options.signal, this.#stop.signal]) : this.#stop.signal;
    const opened = openEngine(options, sharedRing);
    this.engine = opened.engine;
    this.#releaseRing = opened.release;
    this.#undrain = this.engine instanceof UringEngine ? drainBeforeExit(this.engine.uring) : () => {};
    this.inflight = new Semaphore(options.queueDepth);
    if (options.direct && this.engine instanceof UringEngine) {
      // As many buffers as the pool below holds (all of them fixed when ≤ 64 MiB: with one per
      // operation in flight, 192 of 1 MiB, the registration was refused and none was).
      const direct = new DirectIo(
        options.blockSize,
        blockBuffers(options.queueDepth, directBufferSize(options.blockSize)),
        this.engine.uring,
      );
      this.direct = direct;
      this.fixed = undefined;
      this.pool = new BufferPool(
        blockBuffers(options.queueDepth, direct.bufferSize),
        direct.bufferSize,
        () => direct.makeBuffer(),
      );
    } else if (this.engine instanceof UringEngine) {
      // Registered as fixed buffers with the ring when it can (no pool there, ≤ 64 MiB).
      const size = options.blockSize;
      const count = blockBuffers(options.queueDepth, size);
      const fixed = new CopyFixedBuffers(this.engine.uring, count, size);
      this.direct = undefined;
      this.fixed = fixed;
      // (Plain buffers as the kernel's memory: see thread_memory.ts, and close() below.)
      const ring = this.engine.uring.ring;
      this.pool = new BufferPool(count, size, () => fixed.take() ?? kernelBytes(ring, size));
    } else {
      this.direct = undefined;
      this.fixed = undefined;
      this.pool = new BufferPool(blockBuffers(options.queueDepth, options.blockSize), options.blockSize);
    }
    this.smallPool = this.#bufferPool(
      smallFileBuffers(options.queueDepth, options.blockSize),
      options.blockSize,
    );
  }

  /**
   * A pool of `count` buffers of `size` bytes: on the io_uring engine, memory for the kernel (see
   * `thread_memory.ts`), given back when the copy closes.
   */
  #bufferPool(count: number, size: number): BufferPool {
    const engine = this.engine;
    if (!(engine instanceof UringEngine)) return new BufferPool(count, size);
    return new BufferPool(count, size, () => kernelBytes(engine.uring.ring, size));
  }

  /**
   * Tells the context that it copies one file, of `size` bytes (`copyFile`), before it starts: a
   * file smaller than a block gets a buffer of its own size, not a whole block (zeroing 1 MiB for
   * a 4 KiB file cost more than the rest of its copy's work in JavaScript).
   */
  expectOneFile(size: number): void {
    if (size < this.options.blockSize) this.smallPool = this.#bufferPool(1, Math.max(1, size));
  }

  /**
   * File descriptors the copy may hold at once (see `EngineContext.descriptors`), worked out when
   * first asked for.
   */
  get descriptors(): number {
    return this.#descriptors ??= this.#freeDescriptors();
  }

  /**
   * {@link freeDescriptors} through the ring's system layer, or for Deno's engine the default
   * one; `Infinity` when there is none (no `--allow-ffi`: nothing to ask the limit with).
   */
  #freeDescriptors(): number {
    let sys: Sys;
    try {
      sys = this.#sys();
    } catch {
      return Infinity;
    }
    if (this.#countOpen) return freeDescriptors(sys, true);
    // (A `copyFile`: the limit alone, read at most every LIMIT_FRESH_MS.)
    const now = performance.now();
    if (sys !== limitRead.sys || now - limitRead.at > LIMIT_FRESH_MS) {
      limitRead = { sys, at: now, free: freeDescriptors(sys, false) };
    }
    return limitRead.free;
  }

  /** The system layer: the ring's, or (Deno's engine) the default one, for event-loop turns. */
  #sys(): Sys {
    return getSys(this.engine instanceof UringEngine ? this.engine.uring.ring.backend : undefined);
  }

  /** True once the caller's signal fired. */
  get userAborted(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  /** True once the copy is stopping (caller's abort, or a failure without `continueOnError`). */
  get stopping(): boolean {
    return this.signal.aborted;
  }

  /** Stops every operation still to come (after the first failure). */
  stop(reason: unknown): void {
    if (!this.#stop.signal.aborted) this.#stop.abort(reason);
  }

  /**
   * Finds the mask new files get in `dir` (where the copy writes anyway): creates a directory
   * with mode 0o777 there, reads what mode it got, removes it. That is the umask, unless `dir`
   * has a default POSIX ACL, which replaces the umask (`Deno.umask()` would not say so); so it is
   * asked of the directory, for each tree copy, and holds for the directories the copy creates
   * below it (they inherit the ACL). Without it every copied file needs a `chmod`.
   */
  async learnUmask(dir: string): Promise<void> {
    if (this.umask !== undefined) return;
    const probe = `${dir === "/" ? "" : dir}/.uring-umask-probe-${Math.random().toString(16).slice(2, 10)}`;
    try {
      await this.engine.mkdir(probe, 0o777, this);
    } catch {
      return; // the copy itself will report why this directory is not writable
    }
    try {
      const st = await this.engine.statDest(probe, false, this);
      if (st.kind === "dir") this.umask = 0o777 & ~st.perm;
    } catch {
      // leave it unknown: every file gets a chmod
    } finally {
      await Deno.remove(probe).catch(() => {});
    }
  }

  /**
   * What is at destination `path` (`follow`: through a final symlink), or `undefined` when
   * nothing is there (`ENOENT`); any other failure rejects, tagged with the "stat-dest" step.
   */
  async existingDest(path: string, follow: boolean): Promise<EntryStat | undefined> {
    const engine = this.engine;
    try {
      if (engine instanceof UringEngine) {
        return await staged("stat-dest", engine.statDestIfAny(path, follow, this));
      }
      return await staged("stat-dest", engine.statDest(path, follow, this));
    } catch (e) {
      if (codeOf(e) !== "ENOENT") throw e;
      return undefined;
    }
  }

  /**
   * Whether a file created with `perm` in a directory this copy made needs a `chmod` to end up
   * with exactly `perm`: when the mask found there ({@link CopyContext.learnUmask}) is unknown or
   * takes bits of `perm`, and always with `preserve` (the mode is asked for).
   */
  needsChmod(perm: number): boolean {
    return this.umask === undefined || (perm & this.umask) !== 0 || this.options.preserve;
  }

  /**
   * Every {@link BREATHE_EVERY_MS} ms, a promise that resolves on the next event-loop turn that
   * polls for I/O (see `onNextTurn`: ~35 µs, where a zero timer took ~2.2 ms), shared by every
   * caller until then, so all of the copy's work pauses at once and the loop runs; otherwise
   * `undefined` (no allocation).
   */
  breather(): Promise<void> | undefined {
    if (this.#breath !== undefined) return this.#breath;
    const now = performance.now();
    if (now - this.#lastBreath < BREATHE_EVERY_MS) return undefined;
    this.#breath = new Promise<void>((resolve) =>
      onNextTurn(this.#sys(), () => {
        this.#breath = undefined;
        this.#lastBreath = performance.now();
        resolve();
      })
    );
    return this.#breath;
  }

  /** Counts written bytes and reports progress. */
  addBytes(n: number): void {
    this.progress.bytes += n;
    this.#report(undefined);
  }

  /** See {@link EngineContext.countCut}. */
  countCut(n: number): void {
    this.progress.totalBytes += n;
  }

  /**
   * Counts a finished file (with its `bytes`; `expected`: the size the total has for it) or
   * symlink and reports progress.
   */
  fileDone(path: string, bytes: number, expected = bytes): void {
    // A file that grew or shrank since it was looked at (one looked at as empty is read to its
    // end): its bytes in the total become those it had.
    this.progress.totalBytes += bytes - expected;
    this.progress.files++;
    this.#doneBytes += bytes;
    this.#report(path);
  }

  /** Reports progress now (after totals changed). */
  report(): void {
    this.#report(undefined);
  }

  /**
   * Calls `onProgress`. It runs inside the engine's completion handling, so what it throws is
   * kept, not let through: the copy stops as after a failure (each file cleans up as it would),
   * and {@link CopyContext.progressError} gives the error to reject with. Nothing is reported
   * after that. The stop has a reason of its own: were it the thrown value, the operations it
   * cancels would reject with that object and tag it with their step, and the copy would reject
   * blaming a step that did not fail ("creating the destination directory failed: ...").
   */
  #report(path: string | undefined): void {
    const onProgress = this.options.onProgress;
    if (onProgress === undefined || this.#progressError !== undefined) return;
    const p = this.progress;
    try {
      const returned: unknown = onProgress({
        bytes: p.bytes,
        files: p.files,
        totalBytes: p.totalBytes,
        totalFiles: p.totalFiles,
        scanning: p.scanning,
        ...(path === undefined ? {} : { path }),
      });
      // An async callback: its rejection, while the copy runs, stops it as a throw does (left
      // alone, it ended the program with files half written under their own names).
      if (isThenable(returned)) Promise.resolve(returned).catch(this.#onProgressRejected);
    } catch (e) {
      this.#progressFailed(e, "threw");
    }
  }

  /** An async `onProgress`'s rejection: see {@link CopyContext.#report}. */
  readonly #onProgressRejected = (e: unknown): void => {
    // The copy has settled (its close began in the same turn as its outcome): the rejection is
    // the caller's own again, unhandled as it would be without the copy.
    if (this.#closing) throw e;
    if (this.#progressError === undefined) this.#progressFailed(e, "rejected with");
  };

  #progressFailed(e: unknown, how: string): void {
    this.#progressError = e instanceof Error
      ? e
      : new Error(`onProgress ${how} ${describeThrown(e)}`, { cause: e });
    this.stop(new DOMException(`onProgress ${how === "threw" ? "threw" : "rejected"}`, "AbortError"));
  }

  /**
   * The error a copy that `onProgress` stopped rejects with: what it threw when that is an
   * `Error`, else an `Error` that says what it was (as its `cause`); `undefined` when it threw
   * nothing.
   */
  progressError(): Error | undefined {
    return this.#progressError;
  }

  /** The result so far. */
  result(): CopyResult {
    const engine = this.engine;
    return {
      files: this.progress.files,
      bytes: this.#doneBytes,
      ms: performance.now() - this.#start,
      dirs: this.dirs,
      engine: engine.name,
      ...(engine.fallbackReason === undefined ? {} : { fallbackReason: engine.fallbackReason }),
    };
  }

  /**
   * Releases the O_DIRECT or fixed buffers (every operation on them has completed; a `Uring`
   * operation would hold their memory mapped anyway), then the engine; a caller's `Uring` is left
   * open, without the copy's pool. The pool goes while the ring is open, so that its locked
   * memory's charge comes back at once (see `Uring.close`).
   */
  async close(): Promise<void> {
    this.#closing = true;
    this.#undrain();
    try {
      this.direct?.close();
      this.fixed?.close();
      // (Every operation has completed: the kernel is done with the buffers.)
      for (const buf of this.pool.takeIdle()) giveBackKernelBytes(buf);
      for (const buf of this.smallPool.takeIdle()) giveBackKernelBytes(buf);
    } finally {
      try {
        await this.engine.close();
      } finally {
        // (A Worker's last copy closes the ring where it cannot linger: see copy_shared_ring.ts.)
        await this.#releaseRing?.();
      }
    }
  }
}

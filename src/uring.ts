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
 * - Cached I/O settles in microtasks, so a program that awaits one operation after another
 *   would never let the event loop turn. The pump reads the clock every 16th time a microtask
 *   starts it; once 4 ms have passed since the loop last turned, the next pump waits for a
 *   turn of the loop that polls for I/O (a call on the thread pool that does nothing), so
 *   sockets, timers, `AbortSignal.timeout` and signal handlers run.
 * - Direct I/O: `open(path, { direct: true })` learns the file's O_DIRECT alignment and checks
 *   every read and write against it before queueing; `registerBufferPool()` registers aligned
 *   buffers, recognised by their memory (no lookup table, no allocation), so reads and writes
 *   into them go as `READ_FIXED`/`WRITE_FIXED`; `open(path, { fixed: true })` puts the fd in a
 *   registered file table (`IOSQE_FIXED_FILE`). A polled Uring (`iopoll: true`) keeps a small
 *   plain Uring for what a polled ring refuses (everything but reads, writes and no-ops).
 *
 * @module
 */

import {
  abortSignalOption,
  listenAbort,
  signalAborted,
  signalOption,
  signalReason,
  unlistenAbort,
} from "./abort.ts";
import {
  AT_EMPTY_PATH,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  IORING_ASYNC_CANCEL_ALL,
  IORING_ASYNC_CANCEL_ANY,
  IORING_FEAT_CQE_SKIP,
  IORING_FEAT_EXT_ARG,
  IORING_REGISTER_IOWQ_MAX_WORKERS,
  IOSQE_ASYNC,
  IOSQE_CQE_SKIP_SUCCESS,
  IOSQE_FIXED_FILE,
  IOSQE_IO_LINK,
  O_APPEND,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_EXCL,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_TRUNC,
  O_WRONLY,
  RENAME_NOREPLACE,
  S_IFIFO,
  S_IFMT,
  SQ_THREAD_SHARED_BATCH,
  STATX,
  STATX_SIZE,
  STATX_TYPE,
} from "./abi.ts";
import { type ChainBuilder, ChainCollector, type ChainResult } from "./chain.ts";
import { operationError } from "./deno_errors.ts";
import { FifoOpenFailed, FifoWriterWait } from "./fifo_wait.ts";
import { type DirectAlignment, directAlignmentFromStatx, iopollError } from "./direct.ts";
import { errno, isInterruption } from "./errno.ts";
import { ClosedError, IoUringError, refusedArgument } from "./errors.ts";
import { type ChainOptions, configureFile, type FileOps, type OpOptions, UringFile } from "./file.ts";
import { borrowedPoolReason, FixedBufferPool, poolOperationInFlight } from "./fixed_pool.ts";
import { withHeldMemory } from "./aligned.ts";
import {
  badNumber,
  bufferOf,
  byteLengthOf,
  byteOffsetOf,
  checkU32,
  notAnOptionsObject,
  shown,
} from "./memory.ts";
import {
  directIndexOf,
  EMPTY_PATH,
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
  K_CLOSE,
  K_CLOSE_DIRECT,
  K_FALLOCATE,
  K_FSTAT,
  K_FSYNC,
  K_LINK,
  K_MKDIR,
  K_NOP,
  K_OPEN,
  K_OPEN_DIRECT,
  K_OPENFD,
  K_READ,
  K_READV,
  K_RENAME,
  K_SPLICE,
  K_STATX,
  K_SYMLINK,
  K_TIMEOUT,
  K_UNLINK,
  K_WRITE,
  K_WRITEV,
  OP_NAMES,
  prepSlot,
  resizedInFlight,
  returnsCount,
} from "./ops.ts";
import { type Access, checkAccess, checkOpenTarget, kernelPath, toPath } from "./permissions.ts";
import { prepCancel, prepClose, prepNop } from "./prep.ts";
import { IoUring, MAX_ENTRIES, type SqpollOptions } from "./ring.ts";
import { onNextTurn } from "./turn.ts";
import { type Cqe, type Sqe, W } from "./sqe.ts";
import {
  type ChainState,
  DONE,
  IN_RING,
  QUEUED,
  SettleWatch,
  type Slot,
  SlotQueue,
  SlotTable,
} from "./slots.ts";
import { parseStatx, type Statx } from "./structs.ts";
import { type Backend, getSys, type Sys } from "./sys.ts";
import { giveBackKernelBytes, holdsKernelMemory, kernelBytes } from "./thread_memory.ts";

export type { OpOptions } from "./file.ts";

const ETIME = errno("ETIME");
const ECANCELED = errno("ECANCELED");
/**
 * The error for an operation whose buffer was detached (transferred, or an `AlignedBuffer`
 * freed) or whose iovec buffer shrank while the kernel used it: the kernel read or wrote
 * memory that is no longer the buffer's, so its result must not pass for a success.
 */
function detachedInFlight(slot: Slot): TypeError {
  if (slot.pinned !== null) { // (a read: a write's result stands, see wroteFromPinnedMemory)
    return new TypeError(
      `${OP_NAMES[slot.kind]}: an AlignedBuffer was freed while the operation ran; its memory stayed ` +
        `mapped until the completion, but what the kernel wrote there is lost`,
    );
  }
  return new TypeError(
    `${OP_NAMES[slot.kind]}: a buffer was detached or shrunk while the operation ran, so the kernel ` +
      `used memory that is no longer the buffer's (other data may be corrupted): do not transfer, shrink ` +
      `or free a buffer an operation uses`,
  );
}

/**
 * Whether `slot` is a write whose buffer, an `AlignedBuffer` freed while it ran, stayed mapped
 * until its completion (pinned): the kernel read the caller's bytes, so its result (a count, or a
 * real errno such as `ENOSPC`) is the write's, and stands.
 */
function wroteFromPinnedMemory(slot: Slot): boolean {
  return slot.pinned !== null && slot.kind === K_WRITE; // (a writev's other buffers may not be pinned)
}

/** What the Uring's close stops a FIFO open's wait with (made into `closedOpenError(path)`). */
const FIFO_WAIT_CLOSED: unique symbol = Symbol("the Uring was closed");

/** The error of an open the Uring's close ended. */
function closedOpenError(path: string | null): Error {
  return operationError("open", ECANCELED, path, null, undefined, "the Uring was closed");
}

/** How often an operation the kernel cancelled unasked is issued again (see `#complete`). */
const MAX_REISSUES = 3;
/** How often in a row an operation the kernel interrupted is issued again (see `#complete`). */
const MAX_INTERRUPTS = 100;

/**
 * Whether an operation of `kind` interrupted (EINTR, having done nothing) may simply be issued
 * again, as the kernel restarts the system call: reads, writes, splices, opens, `statx`, `fsync`.
 * Not a close (its fd may be gone), nor operations on names (a rename may have happened).
 */
function restartsWhenInterrupted(kind: number): boolean {
  return kind === K_READ || kind === K_WRITE || kind === K_READV || kind === K_WRITEV || kind === K_SPLICE ||
    kind === K_OPEN || kind === K_OPENFD || kind === K_STATX || kind === K_FSTAT || kind === K_FSYNC;
}
/** Why the kernel cancels an operation nobody cancelled, before it runs (see `reissued`). */
const DROPPED_WHY = "io-wq could not start a worker thread for it (the user's process limit, `ulimit -u`, " +
  "or the cgroup's pids limit; or a signal pending at each attempt)";
const EINVAL = errno("EINVAL");
const ENXIO = errno("ENXIO");
const EAGAIN = errno("EAGAIN");
const EBUSY = errno("EBUSY");
const EINTR = errno("EINTR");
const EOPNOTSUPP = errno("EOPNOTSUPP");
const EFAULT = errno("EFAULT");

/** Default size of the registered file table for `open(path, { fixed: true })`. */
const DEFAULT_FIXED_FILES = 64;
/** Largest registered file table a Uring sets up (the kernel allows up to 2^20, within RLIMIT_NOFILE). */
const MAX_FIXED_FILES = 1 << 16;
/** SQ size of the plain ring a polled Uring keeps for what a polled ring cannot run. */
const AUX_ENTRIES = 32;

/** `user_data` high word of the Uring's own SQEs (slot generations stay below 2^31). */
const INTERNAL = 0xffffffff;
/**
 * Operation slots made up front (the table doubles when they run out): making all `cqEntries` of
 * a large ring at once cost milliseconds of start-up, before the JIT has warmed up.
 */
const INITIAL_SLOTS = 64;
/**
 * `user_data` high words from here up (below `INTERNAL`) belong to raw clients (client id +
 * `RAW_BASE`); slot generations stay below 2^31.
 */
const RAW_BASE = 0xc0000000;
/** Most raw clients a Uring hands out ids to. */
const RAW_CLIENTS = 0x3fffffff;
/** Internal SQE: a no-op that releases a parked wait. */
const I_WAKE = 0;
/** Internal SQE: `ASYNC_CANCEL` of one operation. */
const I_CANCEL = 1;
/** Internal SQE: `ASYNC_CANCEL` of everything (`ANY`), on close. */
const I_CANCEL_ALL = 2;
/** Internal SQE: `close` of an fd the Uring owns. */
const I_CLOSE = 3;
/** Internal SQE: a no-op in the place of an operation whose prep threw (its CQE is ignored). */
const I_VOID = 4;
/**
 * Internal SQE: a no-op behind a close under SQPOLL (see `Uring.#barrier`); its CQE goes to the
 * oldest waiting close, chain or Uring close (no-ops complete in the order they were submitted).
 */
const I_BARRIER = 5;
/** The target of the Uring's own barrier, before it closes its files and its ring. */
const CLOSING_BARRIER = "closing";

/**
 * FIFO opens waiting in an io-wq's workers, its bounded worker limit before they raised it (0:
 * not read yet), the calls that set it, in order, and the Urings on it (held weakly), through
 * the first open one of which the calls are made (see `Uring`).
 */
interface IowqState {
  waiting: number;
  bounded: number;
  calls: Promise<void>;
  rings: Set<WeakRef<Uring>>;
}

/** A fresh {@link IowqState}. */
function iowqState(): IowqState {
  return { waiting: 0, bounded: 0, calls: Promise.resolve(), rings: new Set() };
}

/** The io-wq of this thread: every Uring without SQPOLL on it shares it. */
const THREAD_IOWQ: IowqState = iowqState();

/** How long one parked wait lasts before it is re-armed (ms). */
const WAIT_MS = 1000;
/**
 * First delay before a file close asks again to cancel the chains it cancels (ms), doubled at
 * each try up to {@link WAIT_MS}: a chain's member is only found by a cancel once the kernel has
 * issued it, which it does as the member before completes.
 */
const CHAIN_CANCEL_RETRY_MS = 2;
/** Completions settled in one go before the pump yields to the event loop. */
const YIELD_AFTER = 8192;
/**
 * The longest the pump keeps running from microtasks without the event loop taking a turn (ms).
 * Cached I/O completes inside the submit, so `await`-ing one operation after another never
 * leaves the microtask queue: past this budget the next pump waits for a turn of the event loop
 * that polls for I/O (see `turn.ts`), and sockets, timers, `AbortSignal.timeout` and signal
 * handlers get to run.
 */
const TURN_BUDGET_MS = 4;
/** The clock is read once every this many pumps started from a microtask (a power of two). */
const TURN_CHECK_EVERY = 16;
/**
 * The longest `spinUs`: a spin holds the event loop (up to SPIN_CAP times this), so more than a
 * millisecond would stall timers and I/O for longer than parking the wait costs.
 */
const MAX_SPIN_US = 1000;
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
/** Completions a spin gathers at most before reaping, under SQPOLL. */
const GATHER_MAX = 16;
/**
 * How long (ms) a spin keeps gathering completions after the first, under SQPOLL: 5 µs. 4 KiB
 * cached reads, 32 promises in flight: +5% (alternating runs); 32 or 10 µs did no better.
 */
const GATHER_MS = 0.005;
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
  /**
   * `IORING_SETUP_IOPOLL`: completions are polled for, not signalled by interrupts. Only reads
   * and writes of O_DIRECT files on devices with poll queues work on a polled ring (elsewhere
   * they reject with `Deno.errors.NotSupported` saying the device has no poll queues). The
   * kernel refuses other file operations on such a ring, so a polled Uring runs them (open,
   * close, statx, fsync, timeouts, chains, ...) on a small plain ring of its own. Since 5.1.
   */
  iopoll?: boolean;
  /** CQ size: also the most operations in flight at once. */
  cqEntries?: number;
  /**
   * Under SQPOLL, how long (µs) to watch the CQ tail for completions the SQ thread is about to
   * post before parking a wait on the thread pool (which costs 25–30 µs a round trip). Operations
   * a watch waited for in vain (a pipe read, a timeout) are not watched for again: the pump
   * watches only while more than those are in flight. Default {@link DEFAULT_SPIN_US}; 0 turns it
   * off; at most 1000. Ignored without SQPOLL.
   */
  spinUs?: number;
  /**
   * Size of the registered file table that `open(path, { fixed: true })` fills (default 64; 1 to
   * 65536). It is registered, empty, on the first such open; the kernel allows no more entries
   * than `RLIMIT_NOFILE` (`ulimit -n`), and a larger table is halved until it fits.
   */
  fixedFiles?: number;
  /**
   * Share the SQ poll thread of another SQPOLL `Uring` of this process (see `IoUring`'s
   * `attachTo`): several Urings then cost one polling core instead of one each. Needs SQPOLL on
   * both (a refusal is then an error, not a fallback). Since 5.11.
   */
  attachTo?: Uring;
}

/** Options of {@link Uring.registerBufferPool}. */
export interface UringBufferPoolOptions {
  /** Number of buffers (1 to 16384; 1024 before 5.13). */
  count: number;
  /** Bytes per buffer (up to 1 GiB). */
  size: number;
  /** Alignment of each buffer (a power of two ≥ 512; default 4096, enough for O_DIRECT). */
  alignment?: number;
}

/** Options of {@link Uring.open}. */
export interface OpenOptions extends OpOptions {
  /** Open for reading (the default when none of read/write/append is given). */
  read?: boolean;
  /** Open for writing. */
  write?: boolean;
  /** Create the file if missing (needs write or append). */
  create?: boolean;
  /** Truncate to 0 bytes (needs write; not with append, as in Deno.open). */
  truncate?: boolean;
  /** Writes go to the end (implies write). */
  append?: boolean;
  /** Fail with `AlreadyExists` if the file exists (`O_CREAT | O_EXCL`; needs write or append). */
  exclusive?: boolean;
  /**
   * `Deno.OpenOptions`' name for {@link OpenOptions.exclusive}: create the file, failing with
   * `AlreadyExists` if it exists (needs write or append).
   */
  createNew?: boolean;
  /** Permission bits for a new file (default 0o666, less the umask). */
  mode?: number;
  /**
   * `O_DIRECT`: bypass the page cache. Buffer addresses, lengths and file positions must then
   * be multiples of the file's {@link UringFile.alignment} (from `statx` `STATX_DIOALIGN`, else
   * 4096): misaligned requests reject with an `AlignmentError` before reaching the kernel. Not
   * with `append` (its writes land at the file's end, whose alignment no check can know). A file
   * whose `statx` reports no direct I/O (alignments 0: ext4's `data=journal`, inline data,
   * fs-verity, where O_DIRECT is quietly buffered) is refused with `Deno.errors.NotSupported`.
   */
  direct?: boolean;
  /**
   * Register the file in the ring's file table: its SQEs then name it by index
   * (`IOSQE_FIXED_FILE`), which spares the kernel a file-table lookup and reference count per
   * request. Transparent: the file keeps its fd, and `close()` frees the index. When the table
   * (`UringOptions.fixedFiles`) is full the file opens unregistered (`file.fixed` is false).
   * Since 5.5.
   */
  fixed?: boolean;
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
  /** SQEs that used a registered buffer (`READ_FIXED`/`WRITE_FIXED`). */
  fixedBuffers: number;
  /** SQEs that named a registered file (`IOSQE_FIXED_FILE`). */
  fixedFiles: number;
  /**
   * Operations issued again because the kernel cancelled them although nobody asked (io-wq
   * could not start a worker thread: see `Uring`); each is retried up to 3 times.
   */
  reissued: number;
  /**
   * Closes (under SQPOLL) that settled only after two no-ops behind them completed, so that the
   * kernel had let go of the file (see `Uring.close`).
   */
  closeBarriers: number;
  /**
   * CQEs the Uring did not ask for, which it ignores: messages another ring or a Worker posted on
   * its ring (`prepMsgRing`, `IoUring.sendMsgRing`). One whose `user_data` happened to match an
   * operation in flight would settle that operation, and `user_data` with a high word of
   * 0xc0000000 or more is the Uring's own (its raw clients', its internal SQEs'): post to a ring
   * of your own instead.
   */
  foreignCqes: number;
}

function isRetryable(e: unknown): boolean {
  return e instanceof IoUringError && (e.errno === EAGAIN || e.errno === EBUSY || e.errno === EINTR);
}

/**
 * A caller that queues its own SQEs on a Uring's ring through {@link rawRing} (internal: the copy
 * engine's one-block files). It gets its CQEs back by the tag it queued them with.
 */
export interface RawClient {
  /** One of the client's CQEs: the tag given to `RawRing.sqe` and the result. */
  complete(tag: number, res: number): void;
  /** The Uring failed for good (see `Uring`'s internal `#fail`): no more CQEs will come. */
  fail(error: unknown): void;
}

/**
 * Direct access to a Uring's ring for a {@link RawClient} (internal). Queue only while
 * `room(sqes, cqes)` says so, then take each SQE with `sqe(id, tag)` (zeroed, `user_data` set: do
 * not change it), prep it, and `commit(sqes, cqes)` with the CQEs the SQEs will post (one per
 * SQE, or one per chain whose members skip theirs); the Uring submits them with its own.
 */
export interface RawRing {
  /** Registers `client`; returns its id (at most 2^30 - 1 clients over the Uring's life). */
  attach(client: RawClient): number;
  /** Forgets the client `id` (once none of its CQEs is outstanding). */
  detach(id: number): void;
  /** Whether `sqes` SQEs posting `cqes` CQEs may be queued now, ahead of nothing queued before. */
  room(sqes: number, cqes: number): boolean;
  /** Whether the ring can ever take `sqes` SQEs posting `cqes` CQEs at once (its SQ and limit). */
  fits(sqes: number, cqes: number): boolean;
  /** The next SQE, for client `id`'s `tag` (a u32). Only after `room` said yes. */
  sqe(id: number, tag: number): Sqe;
  /**
   * Hands `sqes` SQEs taken with `sqe` to the Uring, expecting `cqes` CQEs for them; `fixedFiles`
   * of them name a registered file (counted in `stats.fixedFiles`).
   */
  commit(sqes: number, cqes: number, fixedFiles: number): void;
  /**
   * Asks the kernel to cancel client `id`'s operation `tag` (`IORING_OP_ASYNC_CANCEL` by its
   * `user_data`; one not in the kernel, or done, is not found). The cancel's own CQE is the
   * Uring's; the operation's comes to the client as usual.
   */
  cancel(id: number, tag: number): void;
  /**
   * Calls `then` once the kernel has let go of the files the client's completed operations used
   * (under SQPOLL after two no-ops behind them: see `Uring.#barrier`; at once without SQPOLL). For a
   * client that closed files and reports them closed.
   */
  barrier(then: () => void): void;
}

let rawRingOf: (uring: Uring) => RawRing;

/**
 * A copy's operations on its own destination (internal: the copy engine): the rename of the
 * temporary file it made there needs write permission on both names. (Its look at the
 * destination is `statNow` in copy_uring_engine.ts, on its own thread.)
 */
export interface DestinationOps {
  /** `renameat` of the copy's own temporary file `from` to `to`: needs write permission. */
  rename(from: string, to: string, noReplace: boolean, signal?: AbortSignal): Promise<void>;
}

let destinationOpsOf: (uring: Uring) => DestinationOps;

/** The {@link DestinationOps} of `uring` (internal: not exported from the module). */
export function destinationOps(uring: Uring): DestinationOps {
  return destinationOpsOf(uring);
}

let drainOf: (uring: Uring, deadline: number) => void;

/**
 * For a program about to exit (internal: copy_incomplete.ts, through the copy's context):
 * cancels everything `uring` has in the kernel and waits, blocking, until every operation there
 * has posted its completion (so that none, a file's create, still runs after this returns), or
 * until `deadline` (a `performance.now()` time). What never left JavaScript is not submitted.
 * The completions are consumed unread: the Uring is not usable for anything afterwards.
 */
export function drainForExit(uring: Uring, deadline: number): void {
  drainOf(uring, deadline);
}

let quiesceOf: (uring: Uring, deadline: number) => void;

/** The open Urings, weakly (an unreachable one is released by the collector), for {@link quiesceOnFatal}. */
const openUrings = new Set<WeakRef<Uring>>();
/** The longest an ending program blocks in {@link quiesceOnFatal}, for all its Urings together. */
const QUIESCE_MS = 1000;
/**
 * How long {@link quiesceOnFatal} waits on a Uring whose completions stopped coming: what it
 * still has in the kernel waits on something else (a pipe with no writer, a timeout).
 */
const QUIESCE_STALL_MS = 50;
let watchingFatal = false;

/**
 * An uncaught error or unhandled rejection may be about to end the program (a listener after
 * this one may yet prevent that): Deno would then free every `ArrayBuffer` while the kernel may
 * still be writing into some (a read's buffer, a `statx`'s struct), which corrupts the heap as
 * the process ends. So every open Uring waits, blocking, until what it has in the kernel has
 * completed (cancelling nothing and reaping nothing: a program that goes on finds its operations
 * as they were), or until its completions stop coming, within {@link QUIESCE_MS}.
 */
function quiesceOnFatal(event: Event): void {
  if (event.defaultPrevented) return;
  const deadline = performance.now() + QUIESCE_MS;
  for (const ref of [...openUrings]) {
    const uring = ref.deref();
    if (uring === undefined) openUrings.delete(ref);
    else quiesceOf(uring, deadline);
  }
}

/** Installs {@link quiesceOnFatal}, once per program (or Worker). */
function watchFatal(): void {
  if (watchingFatal) return;
  watchingFatal = true;
  globalThis.addEventListener("error", quiesceOnFatal);
  globalThis.addEventListener("unhandledrejection", quiesceOnFatal);
}

/** The {@link RawRing} of `uring` (internal: not exported from the module). */
export function rawRing(uring: Uring): RawRing {
  return rawRingOf(uring);
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
 * them when they fill the ring: size the ring for them. Closes do not wait behind them: they go
 * past the limit, up to twice it. Buffers must not be transferred,
 * shrunk or freed while an operation uses them: the kernel holds their address, and nothing in
 * JavaScript can pin an `ArrayBuffer`'s memory, so it would read or write memory that may by then
 * belong to something else. Such an operation rejects with a `TypeError` rather than resolve
 * (one still waiting for room never starts), but the damage may be done: hold an
 * `AlignedBuffer` with `pin()` across its operations.
 *
 * `close()` stops accepting work, rejects what never reached the kernel, cancels what is in
 * flight (`IORING_OP_ASYNC_CANCEL`), waits for every completion (so no buffer is released while
 * the kernel could still write it), closes the files `open()` returned that are still open, then
 * closes the ring. Every promise settles. Needs Linux 5.11 (`IORING_FEAT_EXT_ARG`): the "Since"
 * of a method names the kernel that added its operation.
 *
 * Direct I/O: `open(path, { direct: true })` gives a {@link UringFile} that refuses misaligned
 * requests with an `AlignmentError` before they reach the kernel; {@link Uring.registerBufferPool}
 * registers aligned buffers that reads and writes use as fixed buffers automatically;
 * `open(path, { fixed: true })` registers the file. With `iopoll: true` reads and writes are
 * polled for: open files with `direct: true`; the other operations (open, close, statx, fsync,
 * timeouts, chains, ...) run on a plain ring the Uring keeps for them; an abort cannot cancel a
 * polled read or write (the kernel refuses cancels there), which settles with its outcome.
 */
export class Uring implements AsyncDisposable {
  static {
    rawRingOf = (uring) => uring.#rawRing ??= uring.#makeRawRing();
    drainOf = (uring, deadline) => uring.#drainForExit(deadline);
    quiesceOf = (uring, deadline) => uring.#quiesce(deadline);
    destinationOpsOf = (uring) => uring.#destinationOps ??= uring.#makeDestinationOps();
  }

  #destinationOps: DestinationOps | null = null;

  #makeDestinationOps(): DestinationOps {
    // A polled Uring's path operations run on its plain aux ring, as its public ones do.
    const on = this.#aux ?? this;
    const closedAux = () => this.#aux !== null && this.#closing;
    const rejectClosed = () => this.#rejectClosed();
    return {
      rename(from, to, noReplace, signal) {
        if (closedAux()) return rejectClosed();
        return on.#pathOp(signal, from, to, "rename", "write", "write", (slot, p, q) => {
          fillPath2(slot, K_RENAME, p, q!, noReplace ? RENAME_NOREPLACE : 0);
        });
      },
    };
  }

  readonly #ring: IoUring;
  /** This Uring in `openUrings` while it is open (see `quiesceOnFatal`). */
  readonly #openEntry = new WeakRef(this);
  /** The ring's system layer: the event loop's turns are taken through it (see `turn.ts`). */
  readonly #sys: Sys;
  /** Where {@link Uring.#isFifo} has the kernel write (made on first use). */
  #typeScratch: Uint8Array | null = null;
  /** FIFO opens waiting for a writer (see `fifo_wait.ts`): the Uring's close stops them. */
  readonly #fifoWaits = new Set<FifoWriterWait>();
  /** What the opens that wait for a FIFO's writer resolve with (see #fifoReaderWait). */
  readonly #fifoOpens = new Set<Promise<unknown>>();
  /**
   * The FIFO opens waiting in workers of this Uring's io-wq, and its bounded worker limit before
   * they raised it (see {@link Uring.#fifoWorker}): shared with the Urings of the same io-wq.
   */
  #iowq: IowqState = THREAD_IOWQ;
  /** This Uring among the rings of its SQ thread's io-wq (see {@link IowqState}); removed at close. */
  #iowqMember: WeakRef<Uring> | null = null;
  /**
   * SQPOLL: each operation's SQE (and each raw client's commit) is published (SQ tail store) as
   * soon as it is written, so the kernel thread starts on it while the promise continuations
   * that follow are still queueing more; the pump's `submit()` then only wakes the thread if it
   * sleeps. Waiting for the pump left the thread idle through each burst (readAt ×32: +19%).
   */
  readonly #sqpollRing: boolean;
  readonly #slots: SlotTable;
  readonly #backlog = new SlotQueue();
  /**
   * The closes among the backlog's entries, with their generations: they may go past a unit the
   * limit holds back (see `#enqueue`, `#fillCloses`). Entries no longer queued are dropped there.
   */
  readonly #queuedCloses: Slot[] = [];
  readonly #queuedCloseGens: number[] = [];
  /** The SQEs a chain's members took so far, while #putChain writes them (reused). */
  readonly #chainSqes: Sqe[] = [];
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
  /** The kernel has `IOSQE_CQE_SKIP_SUCCESS` (5.17): chains post one CQE (see `ChainState.skip`). */
  readonly #cqeSkip: boolean;
  /** Raw clients by id (see {@link rawRing}), and their CQEs reaped but not yet handed over. */
  #rawRing: RawRing | null = null;
  readonly #rawClients = new Map<number, RawClient>();
  /** The id the next raw client gets (ids are not reused: a late CQE can only miss). */
  #rawNextId = 0;
  readonly #rawReady: number[] = [];
  /** What the barrier no-ops in flight (or queued) settle, oldest first (see #barrier). */
  readonly #barriers: (Slot | ChainState | typeof CLOSING_BARRIER | (() => void))[] = [];
  /** Per entry of #barriers: whether its no-op is the second of the two (see #barrier). */
  readonly #barrierSecond: boolean[] = [];
  #barrierHead = 0;
  /** Barrier no-ops whose CQE was reaped in this pass (settled after the CQ loop). */
  #barriersDone = 0;
  /** Whether the Uring's own barrier before its close (under SQPOLL) has completed. */
  #closingBarrierDone = false;
  /** CQEs raw clients committed for and have not been handed yet. */
  #rawOutstanding = 0;
  /** Internal SQEs (`I_*`) in the ring, each with one CQE to come. */
  #internalInRing = 0;
  #spinMisses = 0;
  /**
   * Operations in flight that the last spin waited for in vain (a pipe read, a timeout): none of
   * them is expected soon, so the pump spins only while more than these are in the ring. Without
   * it, a program awaiting cached reads beside one such operation spun out `spinUs` after every
   * read (53-59 µs a read instead of 2, and a second busy core).
   */
  #slowInRing = 0;
  #spinProbe = 0;
  #closing = false;
  #closed = false;
  /** Whether the Uring failed (`#fail`): the kernel may still hold its operations. */
  #failed = false;
  /** Why the Uring failed (see `#fail`): the cause of the `ClosedError`s after it. */
  #failure: unknown = undefined;
  /** Chains an abort or a file close cancels until they settle (see `#retryChainCancels`). */
  readonly #chainsCancelling = new Set<ChainState>();
  #chainCancelDelay = CHAIN_CANCEL_RETRY_MS;
  #chainCancelTimer: ReturnType<typeof setTimeout> | undefined;
  #closePromise: Promise<void> | null = null;
  #closeResolve: (() => void) | null = null;
  #lastCancelAll = 0;
  #files = new Map<number, UringFile>();
  /** Files whose close has not reached the kernel yet, by fd: the number is still theirs. */
  readonly #closingFiles = new Map<number, UringFile>();
  /**
   * Plain fds (no `UringFile`) whose `close(fd)` has not reached the kernel yet, each with a token
   * of that close: operations on them are refused (see #closingFileError), as on a closing file's.
   */
  readonly #closingFds = new Map<number, object>();
  /**
   * The fds of closing files and fds (above) whose closes' SQEs are in the SQ, held back from the
   * kernel until the code that called them has ended: the microtask that runs the pump (under
   * SQPOLL the SQ tail is not published past them until then). Until then an operation on the
   * number is surely the closing file's (refused); once the close is submitted the kernel may
   * close the fd at any moment and give the number to the next file opened (a `pipe2` or
   * `Deno.open` of this thread, long before the close's CQE is reaped), so the number is let go
   * then (see #letNumbersGo).
   */
  readonly #closesHeld: number[] = [];
  /**
   * Descriptors to close once the Uring's last completion is in (see `#closeUring`), with what
   * settles each one's close when it was asked for (null: a file `open()` returned).
   */
  readonly #fdsAtEnd: { fd: number; path: string | null; settle: ((error: unknown) => void) | null }[] = [];
  #statxPool: Uint8Array[] = [];
  #newSlot: Slot | null = null;
  readonly #fileOps: FileOps;
  /** IOPOLL: the plain ring for what a polled ring refuses; its file behind each of ours. */
  readonly #aux: Uring | null = null;
  readonly #auxFiles = new Map<UringFile, UringFile>();
  /** The registered buffer pool, and what recognises its buffers without allocating. */
  #pool: FixedBufferPool | null = null;
  #poolMemory: ArrayBufferLike | null = null;
  /** The ring's table of registered buffers as the pool registered it (see `#rw`). */
  #poolRegistration: readonly ArrayBufferView[] | undefined;
  #poolStride = 0;
  #poolSize = 0;
  #poolCount = 0;
  /** Free indexes of the registered file table (null until the first `fixed` open). */
  #fixedFree: number[] | null = null;
  /** Indexes `reserveFileIndex` handed out and not yet given back. */
  readonly #reservedFiles = new Set<number>();
  #fixedFiles: number; // smaller once registered if RLIMIT_NOFILE did not allow it (see #takeFileIndex)
  readonly #backend: Backend | undefined;

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
    fixedBuffers: 0,
    fixedFiles: 0,
    reissued: 0,
    closeBarriers: 0,
    foreignCqes: 0,
  };

  /** Sets up the ring (see {@link UringOptions}). */
  constructor(options: UringOptions = {}) {
    options = optionsObject(options, "Uring") ?? {}; // null: the defaults
    const entries = options.entries ?? 256;
    // (Checked here: the ring's own message offers IORING_SETUP_CLAMP, which a Uring cannot ask for.)
    if (!(Number.isInteger(entries) && entries >= 1 && entries <= MAX_ENTRIES)) {
      throw badNumber(entries, `entries must be an integer from 1 to ${MAX_ENTRIES}, got ${shown(entries)}`);
    }
    const spinUs = options.spinUs ?? DEFAULT_SPIN_US;
    if (typeof spinUs !== "number" || !(spinUs >= 0 && spinUs <= MAX_SPIN_US)) {
      throw badNumber(spinUs, `spinUs must be from 0 to ${MAX_SPIN_US}, got ${shown(spinUs)}`);
    }
    const fixedFiles: unknown = options.fixedFiles ?? DEFAULT_FIXED_FILES;
    if (
      !(Number.isInteger(fixedFiles) && (fixedFiles as number) >= 1 &&
        (fixedFiles as number) <= MAX_FIXED_FILES)
    ) {
      throw badNumber(
        fixedFiles,
        `fixedFiles must be an integer from 1 to ${MAX_FIXED_FILES}, got ${shown(fixedFiles)}`,
      );
    }
    this.#fixedFiles = fixedFiles as number;
    this.#backend = options.backend;
    const attachTo = options.attachTo;
    if (attachTo !== undefined && !(attachTo instanceof Uring)) {
      throw new TypeError(`attachTo must be a Uring, got ${shown(attachTo)}`);
    }
    if (attachTo !== undefined && attachTo.#closing) throw attachTo.#closedError();
    this.#ring = new IoUring(entries, {
      attachTo: attachTo === undefined ? undefined : attachTo.#ring,
      sqpoll: options.sqpoll,
      backend: options.backend,
      iopoll: options.iopoll,
      cqEntries: options.cqEntries,
      // Without SQPOLL, io-wq completions (copies, opens) would interrupt the main thread.
      coopTaskrun: true,
    });
    this.#sys = getSys(this.#ring.backend);
    // Without SQPOLL the io-wq is this thread's; with it, the SQ thread's (shared when attached).
    this.#iowq = !this.#ring.sqpoll ? THREAD_IOWQ : attachTo !== undefined ? attachTo.#iowq : iowqState();
    this.#iowqMember = new WeakRef(this);
    this.#iowq.rings.add(this.#iowqMember);
    this.#cqeSkip = this.#ring.hasFeature(IORING_FEAT_CQE_SKIP);
    this.#sqpollRing = this.#ring.sqpoll;
    if (!this.#ring.hasFeature(IORING_FEAT_EXT_ARG)) {
      this.#ring.close();
      throw new IoUringError("io_uring_enter", EINVAL, "Uring needs Linux 5.11 (IORING_FEAT_EXT_ARG)");
    }
    if (this.#ring.iopoll) {
      try {
        this.#aux = new Uring({ entries: AUX_ENTRIES, sqpoll: false, backend: options.backend });
      } catch (e) {
        this.#ring.close();
        throw e;
      }
    }
    this.#spinUs = this.#ring.sqpoll ? spinUs : 0;
    this.#limit = this.#ring.cqEntries;
    openUrings.add(this.#openEntry);
    watchFatal();
    this.#slots = new SlotTable(Math.min(this.#limit, INITIAL_SLOTS), this.#onAbort); // grows on demand
    this.#ready = new Array(this.#limit).fill(null);
    this.#fileOps = {
      read: (file, buf, position, signal) =>
        this.#rw(K_READ, file.fd, file.fixedIndex, buf, position, signal, file.path),
      write: (file, buf, position, signal) =>
        this.#rw(K_WRITE, file.fd, file.fixedIndex, buf, position, signal, file.path),
      fsync: (file, datasync, signal) => {
        const aux = this.#auxFiles.get(file);
        // (The signal as read, checked by `aux` as by this Uring.)
        if (aux !== undefined) {
          return this.#closing ? this.#rejectClosed() : aux.sync({ signal: signal as AbortSignal, datasync });
        }
        return this.#fdOp("fsync", signal, file.path, (slot) => {
          fillFsync(slot, file.fd, datasync);
          useFixedFile(slot, file);
        });
      },
      ftruncate: (file, length, signal) => {
        const aux = this.#auxFiles.get(file);
        if (aux !== undefined) {
          return this.#closing
            ? this.#rejectClosed()
            : aux.truncate(length, { signal: signal as AbortSignal });
        }
        return this.#fdOp("ftruncate", signal, file.path, (slot) => {
          fillFtruncate(slot, file.fd, length);
          useFixedFile(slot, file);
        });
      },
      fstat: (file, signal) => {
        const aux = this.#auxFiles.get(file);
        if (aux !== undefined) {
          return this.#closing ? this.#rejectClosed() : aux.stat({ signal: signal as AbortSignal });
        }
        return this.#fdOp("stat", signal, file.path, (slot) => {
          fillFstat(slot, file.fd); // statx cannot name a registered file: always the fd
          slot.statx = this.#takeStatx();
        });
      },
      close: (file) => this.#closeFile(file),
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

  /** Whether the ring polls for completions (`iopoll: true`). */
  get iopoll(): boolean {
    return this.#ring.iopoll;
  }

  /**
   * Operations accepted and not yet settled (chain members count one each; so does each CQE an
   * internal raw client awaits).
   */
  get pending(): number {
    let waitingForRoom = 0; // (a FIFO open's wait for a writer, not queued yet)
    for (const wait of this.#fifoWaits) if (wait.waitingForRoom) waitingForRoom++;
    return this.#slots.used + this.#rawOutstanding + waitingForRoom + (this.#aux?.pending ?? 0);
  }

  /** The buffer pool {@link Uring.registerBufferPool} registered, while it is open; else null. */
  get bufferPool(): FixedBufferPool | null {
    return this.#pool !== null && !this.#pool.closed ? this.#pool : null;
  }

  /**
   * Registers `count` aligned buffers of `size` bytes with the ring (`IORING_REGISTER_BUFFERS`)
   * and returns them as a {@link FixedBufferPool}: take buffers with `acquire()`, give them back
   * with `release()` once their operations have settled. Any read or write of this Uring
   * (`read`, `write`, `UringFile.readAt`/`writeAt`, ...) whose buffer lies inside one pool buffer
   * (its `bytes`, or a subarray of them) goes to the kernel as `READ_FIXED`/`WRITE_FIXED`,
   * which spares it pinning the pages per request; other buffers work as before. The buffers
   * suit O_DIRECT. One pool per Uring at a time: `pool.close()` unregisters it (after its
   * operations have settled), and closing the Uring closes it. Since 5.1.
   */
  registerBufferPool(options: UringBufferPoolOptions): FixedBufferPool {
    if (this.#closing) throw this.#closedError();
    if (this.bufferPool !== null) {
      const borrowed = borrowedPoolReason(this.bufferPool);
      throw new RangeError(
        `this Uring already has a buffer pool: ${borrowed ?? "close it before registering another"}`,
      );
    }
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw new TypeError("registerBufferPool needs options");
    }
    const make = () =>
      new FixedBufferPool(this.#ring, {
        count: options.count,
        size: options.size,
        alignment: options.alignment,
        backend: this.#backend,
      });
    // (A Worker's copies' ring: memory that outlives the Worker if need be, see thread_memory.ts.)
    const pool = holdsKernelMemory(this.#ring) ? withHeldMemory(make) : make();
    const first = pool.buffer(0).bytes;
    this.#pool = pool;
    this.#poolMemory = first.buffer;
    this.#poolRegistration = this.#ring.registeredBuffers;
    this.#poolCount = pool.count;
    this.#poolSize = pool.size;
    this.#poolStride = pool.count > 1 ? pool.buffer(1).bytes.byteOffset - first.byteOffset : pool.size;
    return pool;
  }

  // -------------------------------------------------------------------------------------------
  // Operations

  /** A no-op that completes with nothing: measures the round trip. Since 5.1. */
  nop(options?: OpOptions): Promise<void> {
    return this.#fdOp("nop", signalOption(options), null, fillNop);
  }

  /**
   * Reads into `buf` from `position` of `fd` (`pread`); resolves with the bytes read (0 at end of
   * file; may be short). A pipe or terminal has no position: the kernel ignores it there (pass
   * 0); on a socket a position other than 0 fails with `ESPIPE`. A pipe opened `O_NONBLOCK` still
   * waits for data here (io_uring polls it), unlike `read(2)`. Since 5.6.
   */
  read(fd: number, buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    return this.#rw(K_READ, fd, -1, buf, position, signalOption(options), null);
  }

  /**
   * Writes `buf` at `position` of `fd` (`pwrite`); resolves with the bytes written. A pipe or
   * terminal has no position: the kernel ignores it there (pass 0); on a socket a position other
   * than 0 fails with `ESPIPE`. Since 5.6.
   */
  write(fd: number, buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    return this.#rw(K_WRITE, fd, -1, buf, position, signalOption(options), null);
  }

  /** Scatter read (`preadv`); resolves with the bytes read. Since 5.1. */
  readv(
    fd: number,
    bufs: readonly ArrayBufferView[],
    position: number | bigint,
    options?: OpOptions,
  ): Promise<number> {
    return this.#fdOp(
      "readv",
      signalOption(options),
      null,
      (slot) => fillRwv(slot, K_READV, fd, bufs, position),
    );
  }

  /** Gather write (`pwritev`); resolves with the bytes written. Since 5.1. */
  writev(
    fd: number,
    bufs: readonly ArrayBufferView[],
    position: number | bigint,
    options?: OpOptions,
  ): Promise<number> {
    return this.#fdOp(
      "writev",
      signalOption(options),
      null,
      (slot) => fillRwv(slot, K_WRITEV, fd, bufs, position),
    );
  }

  /** `fsync(fd)`, or `fdatasync` with `datasync: true`. Since 5.1. */
  fsync(fd: number, options?: OpOptions & { datasync?: boolean }): Promise<void> {
    if (this.#aux !== null) return this.#closing ? this.#rejectClosed() : this.#aux.fsync(fd, options);
    return this.#fdOp(
      "fsync",
      signalOption(options),
      null,
      (slot) => fillFsync(slot, fd, options?.datasync === true),
    );
  }

  /**
   * `fallocate(fd, mode, offset, length)`: the range first, `mode` (`FALLOC_FL_*`, default 0: allocate
   * and extend the file) in the options. Since 5.6.
   */
  fallocate(
    fd: number,
    offset: number | bigint,
    length: number | bigint,
    options?: OpOptions & { mode?: number },
  ): Promise<void> {
    if (this.#aux !== null) {
      return this.#closing ? this.#rejectClosed() : this.#aux.fallocate(fd, offset, length, options);
    }
    return this.#fdOp(
      "fallocate",
      signalOption(options),
      null,
      (slot) => fillFallocate(slot, fd, offset, length, options?.mode ?? 0),
    );
  }

  /** `ftruncate(fd, length)`. Since 6.9. */
  ftruncate(fd: number, length: number | bigint, options?: OpOptions): Promise<void> {
    if (this.#aux !== null) {
      return this.#closing ? this.#rejectClosed() : this.#aux.ftruncate(fd, length, options);
    }
    return this.#fdOp("ftruncate", signalOption(options), null, (slot) => fillFtruncate(slot, fd, length));
  }

  /**
   * `splice` between two fds (one must be a pipe); an offset of -1 (or `-1n`) uses the fd's own
   * position (required for pipes). Resolves with the bytes moved. A pipe opened `O_NONBLOCK` that
   * has no data (or no room) fails it at once with `WouldBlock` (`EAGAIN`), where `read` and
   * `write` wait. Since 5.7.
   */
  splice(
    fdIn: number,
    offIn: number | bigint,
    fdOut: number,
    offOut: number | bigint,
    nbytes: number,
    options?: OpOptions,
  ): Promise<number> {
    if (this.#aux !== null) {
      return this.#closing
        ? this.#rejectClosed()
        : this.#aux.splice(fdIn, offIn, fdOut, offOut, nbytes, options);
    }
    return this.#fdOp(
      "splice",
      signalOption(options),
      null,
      (slot) => fillSplice(slot, fdIn, offIn, fdOut, offOut, nbytes),
    );
  }

  /** Resolves after `ms` milliseconds (an io_uring timeout; no JavaScript timer). Since 5.4. */
  timeout(ms: number, options?: OpOptions): Promise<void> {
    if (this.#aux !== null) return this.#closing ? this.#rejectClosed() : this.#aux.timeout(ms, options);
    return this.#fdOp("timeout", signalOption(options), null, (slot) => fillTimeout(slot, ms));
  }

  /**
   * The metadata of `path` (`statx`; `followSymlinks: false` describes a link itself). Needs
   * read permission on `path`. Since 5.6.
   */
  statx(path: string | URL, options?: OpOptions & { followSymlinks?: boolean }): Promise<Statx> {
    if (this.#aux !== null) return this.#closing ? this.#rejectClosed() : this.#aux.statx(path, options);
    return this.#pathOp(signalOption(options), path, null, "statx", "read", null, (slot, p) => {
      fillPath(slot, K_STATX, p, options?.followSymlinks === false ? AT_SYMLINK_NOFOLLOW : 0);
      slot.statx = this.#takeStatx();
    });
  }

  /**
   * Opens `path` (`openat`, always `O_CLOEXEC`) and resolves with a {@link UringFile} that owns
   * the fd. Needs read and/or write permission as the options imply. `direct: true` opens with
   * O_DIRECT and asks the file's alignment (`statx` `STATX_DIOALIGN`, one more operation);
   * `fixed: true` registers the fd in the ring's file table. A polled Uring (`iopoll`) opens
   * only with `direct: true`, on its plain ring. A FIFO's open waits for the other end, as
   * `Deno.open` does (one with `create` or `truncate` waits in one of the ring's bounded io-wq
   * workers, `min(entries, 4 × CPUs)`, which then serve nothing else meanwhile). A reading open
   * waiting for its writer takes two of the ring's in-flight operations (see `cqEntries`): size
   * the ring for as many as may wait, as for any operation that may wait indefinitely. (On a ring
   * of one SQE it takes one, a poll, which ends the wait once a writer has written or has come and
   * gone, not when it merely opens.) Since 5.6.
   */
  open(path: string | URL, given: OpenOptions = {}): Promise<UringFile> {
    if (this.#closing) return this.#rejectClosed();
    let options: OpenOptions;
    let flags: number;
    let access: Access | "both";
    try {
      // Each option is read once: a getter that answered differently at a second read could
      // open with flags other than those the permission check asked for.
      options = openOptionsOnce(optionsObject(given, "open") ?? {}); // null: the defaults
      ({ flags, access } = openFlags(options));
      if (options.mode !== undefined) checkU32(options.mode, "mode", 0o7777);
      if (this.#aux !== null && !options.direct) {
        throw new TypeError(
          "a polled Uring (iopoll: true) reads and writes only O_DIRECT files: open them with { direct: true }",
        );
      }
    } catch (e) {
      return Promise.reject(refusedArgument("open", e));
    }
    if (this.#aux !== null) return this.#openPolled(path, options, access);
    const mode = options.mode ?? 0o666;
    if (options.direct && (flags & (O_CREAT | O_TRUNC)) !== 0) {
      return this.#openDirect(path, options, flags, mode, access);
    }
    const opened = this.#openPath(path, options.signal, access, flags, mode);
    if (!options.direct && !options.fixed) return opened;
    return opened.then((file) => this.#setUpFile(file, options));
  }

  /** `openat` of `path` with `flags` and `mode`, as a `UringFile` opened for `access`. */
  #openPath(
    path: string | URL,
    signal: unknown,
    access: Access | "both",
    flags: number,
    mode: number,
  ): Promise<UringFile> {
    return this.#pathOp<UringFile>(signal, path, null, "open", access, null, (slot, p) => {
      fillPath(slot, K_OPEN, p, flags, mode);
    });
  }

  /**
   * `open` with `direct` of a file it may create or truncate, so that a file that refuses direct
   * I/O (see #setUpFile) is left as it was: opened without `O_TRUNC` (truncated once accepted),
   * and created with `O_EXCL` when not there (removed again when refused), to know it was this
   * open that made it.
   */
  async #openDirect(
    path: string | URL,
    options: OpenOptions,
    flags: number,
    mode: number,
    access: Access | "both",
  ): Promise<UringFile> {
    const code = (e: unknown) => (e as { code?: unknown })?.code;
    const open = async (withFlags: number) => {
      try {
        return await this.#openPath(path, options.signal, access, withFlags, mode);
      } catch (e) {
        // A file system that refuses O_DIRECT (EINVAL) does so once the exclusive create has made
        // the file: nothing was there, so the empty file left is this open's, and goes again.
        if ((withFlags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL) && code(e) === "EINVAL") {
          await this.#removeEmptyFile(path);
        }
        throw e;
      }
    };
    const base = flags & ~O_TRUNC;
    let file: UringFile | undefined;
    let created = (base & O_EXCL) !== 0;
    if ((base & O_CREAT) === 0 || created) file = await open(base);
    for (let attempt = 1; file === undefined; attempt++) {
      // Open it if it is there, else create it: another process may create or remove it between
      // the two (then try again, a few times).
      try {
        file = await open(base & ~O_CREAT);
        break;
      } catch (e) {
        if (code(e) !== "ENOENT" || attempt === 4) throw e;
      }
      try {
        file = await open(base | O_EXCL);
        created = true;
      } catch (e) {
        if (code(e) !== "EEXIST" || attempt === 4) throw e;
      }
    }
    const filePath = file.path;
    try {
      await this.#setUpFile(file, options); // (closes the file when it refuses it)
    } catch (e) {
      if (created) await this.unlink(filePath).catch(() => {});
      throw e;
    }
    // (A file this open created is empty: an abort there left it behind, the open rejected.)
    if ((flags & O_TRUNC) !== 0 && !created) {
      try {
        await file.truncate(0, { signal: options.signal });
      } catch (e) {
        await file.close().catch(() => {});
        throw e;
      }
    }
    return file;
  }

  /** Removes `path` if it is an empty regular file (what a refused exclusive create leaves). */
  async #removeEmptyFile(path: string | URL): Promise<void> {
    try {
      const info = await this.statx(path);
      if (info.isFile && info.size === 0) await this.unlink(path);
    } catch { /* gone, or not ours to look at: left as it is */ }
  }

  /**
   * `open` on a polled Uring: the plain ring opens the file; this one reads and writes it.
   * `access`: what `options` open it for.
   */
  async #openPolled(path: string | URL, options: OpenOptions, access: Access | "both"): Promise<UringFile> {
    const aux = await this.#aux!.open(path, { ...options, fixed: false });
    if (this.#closing) {
      aux.close().catch(() => {}); // the plain ring's close would close it otherwise
      throw this.#closedError();
    }
    const file = new UringFile(this.#fileOps, aux.fd, aux.path, access);
    this.#files.set(file.fd, file);
    this.#auxFiles.set(file, aux);
    try {
      configureFile(file, aux.alignment, options.fixed ? this.#registerFile(file.fd) : -1);
    } catch (e) {
      await file.close().catch(() => {});
      throw e;
    }
    return file;
  }

  /** Learns an O_DIRECT file's alignment and registers a `fixed` one; closes it on failure. */
  async #setUpFile(file: UringFile, options: OpenOptions): Promise<UringFile> {
    try {
      let alignment: DirectAlignment | null = null;
      if (options.direct) {
        alignment = directAlignmentFromStatx(await file.stat({ signal: options.signal }));
        // The kernel took the O_DIRECT open, yet says the file does no direct I/O (both values 0):
        // its reads and writes would quietly go through the page cache.
        if (alignment === null) {
          throw new Deno.errors.NotSupported(
            `open '${file.path}' with direct: statx (STATX_DIOALIGN) reports no direct I/O for it (its file ` +
              "system, or a mode such as ext4's data=journal, inline data or fs-verity, where O_DIRECT is " +
              "quietly buffered); open it without direct",
          );
        }
      }
      const index = options.fixed ? this.#registerFile(file.fd) : -1;
      configureFile(file, alignment, index);
      return file;
    } catch (e) {
      await file.close().catch(() => {});
      if (this.#closing) throw this.#closedError();
      throw e;
    }
  }

  /** A free index of the registered file table, now holding `fd`; -1 when the table is full. */
  #registerFile(fd: number): number {
    const index = this.#takeFileIndex();
    if (index < 0) return -1;
    try {
      this.#ring.registerFilesUpdate(index, [fd]);
    } catch (e) {
      this.#fixedFree!.push(index);
      throw e;
    }
    return index;
  }

  /**
   * Closes a file `open()` returned. A registered file's index is freed only after the close
   * has completed and (polled Uring) after a no-op queued behind every earlier operation of this
   * ring, so no SQE still waiting for room can reach a file that reuses the index.
   */
  #closeFile(file: UringFile): Promise<void> {
    const fd = file.fd;
    this.#files.delete(fd);
    this.#closingFiles.set(fd, file);
    const gone = () => {
      if (this.#closingFiles.get(fd) === file) this.#closingFiles.delete(fd);
    };
    const aux = this.#auxFiles.get(file);
    let closed: Promise<void>;
    if (aux !== undefined) {
      this.#auxFiles.delete(file);
      closed = aux.close();
      closed.then(gone, gone);
    } else {
      const cancelled = this.#cancelOnFile(fd, file.fixedIndex);
      // The kernel closes the fd only once the operations cancelled on the file have settled: a
      // chain's member is issued when the one before it completes, and a member the kernel could
      // no longer cancel must find the fd still this file's, not closed or another file's.
      closed = cancelled === null
        ? this.#closeFd(fd, file.path)
        : cancelled.promise.then(() => this.#closeFd(fd, file.path));
      closed.then(gone, gone);
    }
    const index = file.fixedIndex;
    if (index < 0) return closed;
    const release = () => {
      if (this.#closing || this.#fixedFree === null) return; // the table goes with the ring
      this.#ring.registerFilesUpdate(index, [-1]);
      this.#fixedFree.push(index);
    };
    if (aux === undefined) return closed.finally(release);
    return closed.finally(() => this.nop().then(release, release));
  }

  /**
   * Closes `fd` through the ring; or, once the Uring is closing, as its last completion is in
   * (now, if it is in already): nothing in the kernel can then still be about to use the fd.
   */
  #closeFd(fd: number, path: string | null): Promise<void> {
    // (A failed Uring's operations may still be in the kernel: the fd stays open, as they need.)
    if (!this.#closing || this.#failed) {
      return this.#fdOp("close", undefined, path, (slot) => fillClose(slot, fd));
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const settle = (error: unknown) => error === null ? resolve() : reject(error);
    if (this.#closed) settle(this.#closeFdNow(fd, path));
    else this.#fdsAtEnd.push({ fd, path, settle });
    return promise;
  }

  /** `close(2)` of `fd` now; the error, or null. */
  #closeFdNow(fd: number, path: string | null): Error | null {
    const r = getSys(this.#ring.backend).close(fd);
    return r < 0 ? operationError("close", -r, path, null, fd) : null;
  }

  /**
   * `openat(AT_FDCWD, path, flags, mode)` with raw `O_*` flags; resolves with an fd the caller
   * owns (close it with `close(fd)`). Permission is checked from the flags. `O_CLOEXEC` is always
   * added, as Deno opens every file: a child process (`Deno.Command`) inherits none of them. An
   * open that completes while the Uring closes is closed again and rejects with `ECANCELED` (the
   * fd would outlive the Uring, with nothing left to close it); a file it created with
   * `O_CREAT | O_EXCL` is removed again. Since 5.6.
   */
  openFd(path: string | URL, flags: number, mode = 0o666, options?: OpOptions): Promise<number> {
    if (this.#closing) return this.#rejectClosed();
    if (this.#aux !== null) return this.#aux.openFd(path, flags, mode, options);
    try {
      checkU32(flags, "flags");
      checkU32(mode, "mode", 0o7777);
    } catch (e) {
      return Promise.reject(refusedArgument("open", e));
    }
    return this.#pathOp(signalOption(options), path, null, "open", accessOfFlags(flags), null, (slot, p) => {
      fillPath(slot, K_OPENFD, p, flags | O_CLOEXEC, mode);
    });
  }

  /**
   * Closes `fd` (`close`). The fd of a `UringFile` this Uring opened is refused (a `TypeError`):
   * close the file, which knows its fd is gone. This Uring's operations on `fd` are cancelled
   * first, as a file's close cancels its own (they reject with `ECANCELED`, "the file was
   * closed", unless they completed first), and the close waits for them: the kernel would keep
   * the file open for them (an abort from then on no longer stops the close: they were told the
   * file was closed). Operations on `fd` issued before the close reaches the kernel (while
   * it waits for those, and by the code that called it: the close goes in the Uring's next
   * microtask) are refused (`Deno.errors.BadResource`), as on a closing file's: they would run on
   * whatever file the kernel gives the number next (one `open()` queued meanwhile, say). Once the
   * close is in the kernel, the number is the kernel's to give again, as after `close(2)`: a file
   * opened since (by `pipe2`, `Deno.open`) may have it, and its operations go. Under SQPOLL it
   * settles once the kernel has let go of the file (two no-ops behind the close: the SQ thread
   * drops the references of the operations completed just after their CQEs are posted), so a
   * pipe's or FIFO's other end sees it closed, as after `close(2)`. Since 5.6.
   */
  close(fd: number, options?: OpOptions): Promise<void>;
  /**
   * Closes the Uring: stops accepting work (later calls reject with `ClosedError`), rejects
   * queued operations that never reached the kernel (`ECANCELED`), cancels those in flight,
   * waits for every completion, closes the files `open()` returned that are still open, and
   * closes the ring. A `close(fd)` it kept from running (queued, or a chain's member it
   * cancelled) still closes its fd, at the end: a chain in flight then reports that close in its
   * results; a queued chain rejects (`ECANCELED`) with its fds closed all the same. Resolves when
   * all of that is done; calling it again returns the same promise.
   */
  close(): Promise<void>;
  close(fd?: number, options?: OpOptions): Promise<void> {
    // By the argument count: `close(fds[name])` with a missing entry must not close the Uring.
    if (arguments.length === 0) return this.#closeUring();
    if (this.#aux !== null) return this.#closing ? this.#rejectClosed() : this.#aux.close(fd!, options);
    const owned = this.#fileOwning(fd, "close");
    if (owned !== null) return Promise.reject(owned);
    const signal = signalOption(options);
    const close = (given: unknown = signal) =>
      this.#fdOp<void>("close", given, null, (slot) => fillClose(slot, fd!));
    // A close refused (a bad fd, an aborted signal, a closing Uring) is refused there, before
    // anything is cancelled.
    if (typeof fd !== "number" || fd >>> 0 !== fd || fd > 0x7fffffff || this.#closing) return close();
    const refused = refusedBySignal(signal, "close");
    if (refused !== null) return refused;
    if (this.#closingFds.has(fd)) {
      return Promise.reject(new Deno.errors.BadResource(`close(${fd}): the fd is being closed already`));
    }
    // From here until the close settles, operations on the fd are refused: queued behind the
    // close (or behind its cancels), one would run on whatever file the kernel gives the number
    // next (a write issued after close() landed in a file opened after it), or keep a pipe open.
    // This Uring's own operations on the fd are cancelled first, as a file's close does: the
    // kernel would keep the file open for them, and a pipe's reader would take what the other
    // end wrote next.
    // (The entry goes once the close is submitted: see #closesHeld.)
    const entry = {};
    this.#closingFds.set(fd, entry);
    const cancelled = this.#cancelOnFile(fd, -1);
    // (The Uring may have begun to close meanwhile: the fd is then closed at its end, as a file's.)
    const closed = cancelled === null
      ? close()
      // (Once the fd's operations are cancelled, an abort no longer stops the close: they were
      // told the file was closed.)
      : cancelled.promise.then(() => this.#closing ? this.#closeFd(fd, null) : close(null));
    // (A close of another file given the number since has an entry of its own: it stays.)
    const done = () => {
      if (this.#closingFds.get(fd) === entry) this.#closingFds.delete(fd);
    };
    closed.then(done, done);
    return closed;
  }

  /**
   * A `TypeError` when `fd` belongs to a `UringFile` of this Uring (open, or its close in flight),
   * else null: closing it apart from the file would let the file later close a number the kernel
   * may meanwhile have given to another file.
   */
  #fileOwning(fd: unknown, what: string): TypeError | null {
    // (A plain fd being closed is refused by the close itself, as closing already.)
    const file = this.#files.get(fd as number) ?? this.#closingFiles.get(fd as number);
    if (file === undefined) return null;
    return new TypeError(`${what}(${fd}): the fd belongs to a UringFile ('${file.path}'): call its close()`);
  }

  /** Removes `path` (`unlinkat`; `directory: true` removes an empty directory). Since 5.11. */
  unlink(path: string | URL, options?: OpOptions & { directory?: boolean }): Promise<void> {
    if (this.#aux !== null) return this.#closing ? this.#rejectClosed() : this.#aux.unlink(path, options);
    return this.#pathOp(signalOption(options), path, null, "unlink", "write", null, (slot, p) => {
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
    if (this.#aux !== null) {
      return this.#closing ? this.#rejectClosed() : this.#aux.rename(oldPath, newPath, options);
    }
    return this.#pathOp(signalOption(options), oldPath, newPath, "rename", "both", "write", (slot, p, q) => {
      fillPath2(slot, K_RENAME, p, q!, options?.noReplace ? RENAME_NOREPLACE : 0);
    });
  }

  /** Creates directory `path` (`mkdirat`, mode default 0o777 less the umask). Since 5.15. */
  mkdir(path: string | URL, options?: OpOptions & { mode?: number }): Promise<void> {
    if (this.#closing) return this.#rejectClosed();
    if (this.#aux !== null) return this.#aux.mkdir(path, options);
    let mode: number;
    try {
      mode = options?.mode ?? 0o777;
      checkU32(mode, "mode", 0o7777);
    } catch (e) {
      return Promise.reject(refusedArgument("mkdir", e));
    }
    return this.#pathOp(signalOption(options), path, null, "mkdir", "write", null, (slot, p) => {
      fillPath(slot, K_MKDIR, p, 0, mode);
    });
  }

  /**
   * Creates a symbolic link at `path` pointing to `target` (`symlinkat`). Like `Deno.symlink`,
   * needs unscoped read and write permission (a link can point anywhere: `--allow-read` and
   * `--allow-write`, with or without `--deny-*` lists, not `--allow-read=<paths>`), and write
   * access to `path` itself (which `Deno.symlink` does not check against a `--deny-write` list).
   * Since 5.15.
   */
  symlink(target: string, path: string | URL, options?: OpOptions): Promise<void> {
    if (this.#closing) return this.#rejectClosed();
    if (this.#aux !== null) return this.#aux.symlink(target, path, options);
    const signal = signalOption(options);
    if (typeof target !== "string" || target.length === 0) {
      return Promise.reject(new TypeError("symlink: target must be a non-empty string"));
    }
    for (const access of ["read", "write"] as const) {
      const denied = this.#closing ? null : checkAccess("symlink", access);
      if (denied) return Promise.reject(denied);
    }
    return this.#pathOp(signal, path, null, "symlink", "write", null, (slot, p) => {
      fillPath2(slot, K_SYMLINK, target, p, 0, "target", "path"); // errors read `symlink 'target' -> 'path'`
    });
  }

  /** Creates a hard link `newPath` to `oldPath` (`linkat`). Since 5.15. */
  link(oldPath: string | URL, newPath: string | URL, options?: OpOptions): Promise<void> {
    if (this.#aux !== null) {
      return this.#closing ? this.#rejectClosed() : this.#aux.link(oldPath, newPath, options);
    }
    return this.#pathOp(signalOption(options), oldPath, newPath, "link", "both", "both", (slot, p, q) => {
      fillPath2(slot, K_LINK, p, q!);
    });
  }

  /**
   * Runs the members `build` adds as one linked chain (`IOSQE_IO_LINK`): each starts after the
   * previous one succeeded; a failure (or a short read/write) cancels the rest, which report
   * `ECANCELED`. Resolves with every member's {@link ChainResult}, in order. Aborting cancels the
   * members still in flight and rejects with the signal's reason (unless all had succeeded).
   * A chain may not have more members than the SQ has entries. `async: true` issues every
   * member from the kernel's io-wq worker threads (`IOSQE_ASYNC`, 5.6) instead of trying it
   * inline first: worth it when the chain would block anyway (an `O_CREAT` open always goes to a
   * worker), so the members after it do not come back to run in this thread.
   */
  chain(build: (c: ChainBuilder) => void, options?: ChainOptions): Promise<ChainResult[]> {
    if (this.#aux !== null) return this.#closing ? this.#rejectClosed() : this.#aux.chain(build, options);
    let async: boolean;
    try {
      async = options?.async === true;
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#closing) return Promise.reject(this.#closedError());
    const given = signalOption(options);
    const refused = refusedBySignal(given, "chain");
    if (refused !== null) return refused;
    const signal = (given ?? undefined) as AbortSignal | undefined; // null: no signal
    const builder = new ChainCollector(
      () => {
        const slot = this.#slots.alloc();
        slot.state = DONE;
        return slot;
      },
      (slot) => this.#slots.release(slot),
      this.#checkOpenPath,
    );
    const members = builder.members;
    try {
      if (typeof build !== "function") throw new TypeError("chain: needs a function that adds members");
      let returned: unknown;
      try {
        returned = build(builder);
      } finally {
        builder.seal(); // a builder kept for later adds nothing: its members would never run
      }
      if (returned instanceof Promise) {
        returned.catch(() => {}); // its own failure (say, adding to the sealed builder) is reported here
        throw new TypeError("chain: needs a function that adds its members before it returns (not async)");
      }
      if (this.#closing) throw this.#closedError(); // the build function closed it
      if (signal !== undefined && signalAborted(signal)) throw signalReason(signal); // or aborted
      if (members.length === 0) throw new RangeError("chain: needs at least one member");
      // Fds and direct descriptors the chain's own members close: a later member on one would
      // run on whatever file then has the number (an openDirect may fill the index again).
      const closedFds = new Set<number>(), closedIndexes = new Set<number>();
      for (const slot of members) {
        const owned = slot.kind === K_CLOSE ? this.#fileOwning(slot.fd, "chain: close") : null;
        if (owned !== null) throw owned;
        // A member on a file the build function closed (or whose close is under way) would run
        // after that close, on whatever file then has the number.
        // A direct descriptor must be one reserved for the caller: any other index may be a
        // `fixed` UringFile's (an openDirect there replaced it, and the file's writes went to the
        // new file) or free (taken by the next open).
        const direct = directIndexOf(slot);
        const what = `chain: ${OP_NAMES[slot.kind]}`;
        if (direct >= 0 && !this.#reservedFiles.has(direct)) {
          throw new RangeError(
            `${what}: direct descriptor ${direct} was not reserved with reserveFileIndex()`,
          );
        }
        if ((slot.sqeFlags & IOSQE_FIXED_FILE) === 0) {
          const closing = this.#closingFileFor(slot, what);
          if (closing !== null) throw closing;
          const fd = closedFds.has(slot.fd)
            ? slot.fd
            : slot.kind === K_SPLICE && closedFds.has(slot.fd2)
            ? slot.fd2
            : -1;
          if (fd >= 0) {
            throw new TypeError(`${what} on fd ${fd}, which an earlier member of the chain closes`);
          }
          if (slot.kind === K_CLOSE) closedFds.add(slot.fd);
        }
        if (direct >= 0) {
          if (slot.kind === K_OPEN_DIRECT) closedIndexes.delete(direct);
          else if (closedIndexes.has(direct)) {
            throw new TypeError(
              `${what} on direct descriptor ${direct}, which an earlier member of the chain closes`,
            );
          }
          if (slot.kind === K_CLOSE_DIRECT) closedIndexes.add(direct);
        }
      }
      const max = Math.min(this.#ring.sqEntries, this.#limit);
      if (members.length > max) {
        throw new RangeError(`chain: ${members.length} members do not fit the ring (at most ${max})`);
      }
      if (this.#ring.sharesSqThread && members.length > SQ_THREAD_SHARED_BATCH) {
        throw chainTooLongForSharedThread(members.length);
      }
    } catch (e) {
      for (const slot of members) this.#slots.release(slot);
      return Promise.reject(e);
    }
    const { promise, resolve, reject } = Promise.withResolvers<ChainResult[]>();
    const last = members.length - 1;
    let skip = this.#cqeSkip && last > 0;
    for (let i = 0; skip && i < last; i++) skip = succeedsAsAsked(members[i].kind);
    const chain: ChainState = {
      slots: members,
      results: new Array(members.length),
      remaining: skip ? 1 : members.length,
      resolve: resolve as (value: unknown) => void,
      reject,
      signal: signal ?? null,
      aborted: false,
      skip,
      closes: members.some((m) => closesFile(m.kind)),
      endCloses: 0,
      onAbort: () => this.#abortChain(chain),
    };
    for (let i = 0; i < members.length; i++) {
      const slot = members[i];
      slot.chain = chain;
      slot.chainIndex = i;
      // (Members on direct descriptors already hold IOSQE_FIXED_FILE.)
      if (i < last) slot.sqeFlags |= skip ? IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS : IOSQE_IO_LINK;
      if (async) slot.sqeFlags |= IOSQE_ASYNC;
    }
    const head = members[0];
    if (signal !== undefined) {
      try {
        listenAbort(signal, chain.onAbort);
      } catch (e) {
        chain.signal = null;
        this.#rejectQueued(head, e); // an exotic signal (a proxy) that refused the listener
        return promise;
      }
    }
    this.#enqueueGuarded(head);
    return promise;
  }

  /** A chain's `openDirect` path, checked like `openFd`'s (throws when refused). */
  readonly #checkOpenPath = (path: string | URL, flags: number): string => {
    const given = toPath(path);
    const p = resolvedFor("open", given); // what is checked is what the kernel gets
    const denied = checkPathAccess("open", accessOfFlags(flags), p, given) ??
      checkOpenTarget("open", p, given);
    if (denied) throw denied;
    return p;
  };

  /**
   * Reserves a free index of the ring's registered file table (`UringOptions.fixedFiles`
   * entries, registered on first use; no system call after that) for direct descriptors:
   * chains open files there with `openDirect` and use them with `readDirect`/`writeDirect`/
   * `closeDirect`. Returns -1 when every index is taken. Give it back with {@link Uring.releaseFileIndex}. Since 5.15.
   */
  reserveFileIndex(): number {
    if (this.#aux !== null) {
      if (this.#closing) throw this.#closedError();
      return this.#aux.reserveFileIndex();
    }
    const index = this.#takeFileIndex();
    if (index >= 0) this.#reservedFiles.add(index);
    return index;
  }

  /** A free index of the registered file table (registered on first use); -1 when full. */
  #takeFileIndex(): number {
    if (this.#closing) throw this.#closedError();
    if (this.#fixedFree === null) {
      this.#registerFileTable();
      this.#fixedFree = [];
      for (let i = this.#fixedFiles - 1; i >= 0; i--) this.#fixedFree.push(i);
    }
    return this.#fixedFree.pop() ?? -1;
  }

  /**
   * Registers the empty file table. The kernel refuses one larger than `RLIMIT_NOFILE`
   * (`EMFILE`): the table is then halved until it fits, so that `fixed` opens still work and a
   * full table still means "open unregistered".
   */
  #registerFileTable(): void {
    for (let size = this.#fixedFiles;; size = Math.ceil(size / 2)) {
      try {
        this.#ring.registerFiles(new Array(size).fill(-1));
        this.#fixedFiles = size;
        return;
      } catch (e) {
        if (!(e instanceof IoUringError && e.code === "EMFILE") || size === 1) throw e;
      }
    }
  }

  /**
   * Returns an index from {@link Uring.reserveFileIndex}. Close its direct descriptor first
   * (`closeDirect`): one left open there stays open until the index is opened into again (the
   * kernel then replaces it) or the Uring closes. Refused (`TypeError`) while a chain that names
   * the index is pending. Since 5.15.
   */
  releaseFileIndex(index: number): void {
    if (this.#aux !== null) return this.#aux.releaseFileIndex(index);
    checkU32(index, "index", this.#fixedFiles - 1);
    if (this.#closing) return; // the table goes with the ring
    // Only an index reserveFileIndex handed out (not one a `fixed` file holds, not twice).
    if (this.#fixedFree === null || !this.#reservedFiles.has(index)) {
      throw new RangeError(`file index ${index} is not reserved`);
    }
    // Not while a chain that names it is pending: the next open would get the index, and the
    // chain's members would act on that file (its closeDirect would close it).
    let inUse = false;
    this.#slots.forEachUsed((slot) => {
      if ((slot.state === QUEUED || slot.state === IN_RING) && directIndexOf(slot) === index) inUse = true;
    });
    if (inUse) {
      throw new TypeError(
        `file index ${index} is used by a chain still pending: release it once the chain settles`,
      );
    }
    this.#reservedFiles.delete(index);
    this.#fixedFree.push(index);
  }

  // -------------------------------------------------------------------------------------------
  // Queueing

  #takeStatx(): Uint8Array {
    const buf = this.#statxPool.pop();
    if (buf === undefined) return kernelBytes(this.#ring, STATX_SIZE); // (see thread_memory.ts)
    return buf;
  }

  /**
   * A read or write: the hot path, written out without closures. `fixed` is the file's index in
   * the registered file table, or -1; a buffer inside one buffer of the registered pool makes it
   * `READ_FIXED`/`WRITE_FIXED`.
   */
  #rw(
    kind: number,
    fd: number,
    fixed: number,
    buf: ArrayBufferView,
    position: number | bigint,
    signal: unknown,
    path: string | null,
  ): Promise<number> {
    if (this.#closing) return Promise.reject(this.#closedError());
    const refused = refusedBySignal(signal, OP_NAMES[kind]);
    if (refused !== null) return refused;
    const slot = this.#slots.alloc();
    slot.state = DONE;
    try {
      fillRw(slot, kind, fd, buf, position);
    } catch (e) {
      this.#slots.release(slot);
      return Promise.reject(refusedArgument(OP_NAMES[kind], e));
    }
    if (fixed >= 0) {
      slot.fd = fixed;
      slot.sqeFlags = IOSQE_FIXED_FILE;
    } else if (this.#closingFiles.size !== 0 || this.#closingFds.size !== 0) {
      const closing = this.#closingFileError(fd, OP_NAMES[kind]);
      if (closing !== null) {
        this.#slots.release(slot);
        return Promise.reject(closing);
      }
    }
    // The view's memory as the engine knows it (not its own, overridable, properties). (#put
    // drops the index if the pool's registration has changed through `ring` by the time the SQE
    // is written.)
    if (this.#poolMemory !== null && bufferOf(buf) === this.#poolMemory) {
      slot.bufIndex = slot.poolBuffer = this.#poolIndex(buf);
      // Counted in flight from here until the operation settles (the slot's release): waiting in
      // the backlog, in the ring, issued again (see FixedBufferPool.release).
      if (slot.poolBuffer >= 0 && this.#pool !== null) {
        slot.pool = this.#pool;
        poolOperationInFlight(this.#pool, slot.poolBuffer, 1);
      }
    }
    slot.path = path;
    return this.#start(slot, signal);
  }

  /** The pool buffer `buf` (a view of the pool's memory) lies inside, or -1 if it spans two. */
  #poolIndex(buf: ArrayBufferView): number {
    const offset = byteOffsetOf(buf);
    const index = Math.floor(offset / this.#poolStride);
    if (index < this.#poolCount && offset + byteLengthOf(buf) <= index * this.#poolStride + this.#poolSize) {
      return index;
    }
    return -1;
  }

  /**
   * An operation on an fd (or none), `op` by name: `fill` checks the arguments and stores them in
   * the slot.
   */
  #fdOp<T>(op: string, signal: unknown, path: string | null, fill: (slot: Slot) => void): Promise<T> {
    if (this.#closing) return Promise.reject(this.#closedError());
    const refused = refusedBySignal(signal, op);
    if (refused !== null) return refused;
    const slot = this.#slots.alloc();
    slot.state = DONE;
    try {
      fill(slot);
    } catch (e) {
      this.#slots.release(slot);
      return Promise.reject(refusedArgument(op, e));
    }
    // (A close here is the file's own, or one #fileOwning let through: not on a closing file.)
    if (
      (this.#closingFiles.size !== 0 || this.#closingFds.size !== 0) &&
      (slot.sqeFlags & IOSQE_FIXED_FILE) === 0 && slot.kind !== K_CLOSE
    ) {
      const closing = this.#closingFileFor(slot, op);
      if (closing !== null) {
        this.#slots.release(slot);
        return Promise.reject(closing);
      }
    }
    slot.path = path;
    return this.#start(slot, signal);
  }

  /**
   * A `BadResource` when `fd` is the fd of a `UringFile` of this Uring whose close is under way,
   * else null: queued behind that close, the operation would run on whatever file the kernel
   * gives the number next.
   */
  #closingFileError(fd: number, op: string): Error | null {
    const file = this.#closingFiles.get(fd);
    if (file === undefined) {
      if (!this.#closingFds.has(fd)) return null;
      return new Deno.errors.BadResource(`${op}(${fd}): the fd is being closed (close(${fd}) was called)`);
    }
    return new Deno.errors.BadResource(
      `${op}(${fd}): the fd belongs to a UringFile ('${file.path}') that is being closed`,
    );
  }

  /** {@link Uring.#closingFileError} for the fds `slot` names: its fd, and a splice's output. */
  #closingFileFor(slot: Slot, op: string): Error | null {
    return this.#closingFileError(slot.fd, op) ??
      (slot.kind === K_SPLICE ? this.#closingFileError(slot.fd2, op) : null);
  }

  /** An operation on one or two paths, after Deno's permission checks. */
  #pathOp<T>(
    signal: unknown,
    path: string | URL,
    path2: string | URL | null,
    op: string,
    access: Access | "both",
    access2: Access | "both" | null,
    fill: (slot: Slot, p: string, q: string | null) => void,
  ): Promise<T> {
    if (this.#closing) return Promise.reject(this.#closedError());
    const refused = refusedBySignal(signal, op);
    if (refused !== null) return refused;
    let given: string, p: string;
    let given2: string | null = null, q: string | null = null;
    try {
      // What is checked is what the kernel gets: resolved as Deno resolves it (see kernelPath).
      given = toPath(path);
      p = resolvedFor(op, given);
      if (path2 !== null) q = resolvedFor(op, given2 = toPath(path2, "newPath"));
    } catch (e) {
      return Promise.reject(refusedArgument(op, e));
    }
    const denied = checkPathAccess(op, access, p, given) ??
      (q !== null && access2 !== null ? checkPathAccess(op, access2, q, given2!) : null) ??
      (op === "open" ? checkOpenTarget(op, p, given) : null);
    if (denied) return Promise.reject(denied);
    const slot = this.#slots.alloc();
    slot.state = DONE;
    try {
      fill(slot, p, q);
    } catch (e) {
      this.#slots.release(slot);
      return Promise.reject(refusedArgument(op, e));
    }
    // Errors name the paths as given: two paths (rename, link) are `path` and `path2`; a symlink's
    // `path` is its target (kept as given) and `path2` the link.
    if (q !== null) {
      slot.path = given;
      slot.path2 = given2;
    } else if (slot.path2 !== null) {
      slot.path2 = given;
    } else {
      slot.path = given;
    }
    return this.#start(slot, signal);
  }

  readonly #executor = (resolve: (value: never) => void, reject: (reason: unknown) => void): void => {
    const slot = this.#newSlot!;
    slot.resolve = resolve;
    slot.reject = reject;
  };

  /** Queues the operation in `slot`; `signal` was checked by {@link refusedBySignal} (null: none). */
  #start<T>(slot: Slot, given: unknown): Promise<T> {
    const signal = given as AbortSignal | null | undefined; // checked: see the doc
    this.#newSlot = slot;
    const promise = new Promise<T>(
      this.#executor as (resolve: (value: T) => void, reject: (e: unknown) => void) => void,
    );
    this.#newSlot = null;
    // The caller's own code may have run since the checks at the call's start (a getter of an
    // argument, a URL's `pathname`): it may have closed the Uring or fired the signal.
    if (this.#closing) {
      this.#rejectQueued(slot, this.#closedError());
      return promise;
    }
    if (signal != null) {
      if (signalAborted(signal)) {
        this.#rejectQueued(slot, signalReason(signal));
        return promise;
      }
      try {
        listenAbort(signal, slot.onAbort);
      } catch (e) {
        this.#rejectQueued(slot, e); // an exotic signal (a proxy) that refused the listener
        return promise;
      }
      slot.signal = signal;
    }
    this.#enqueueGuarded(slot);
    return promise;
  }

  /**
   * {@link Uring.#enqueue} outside the pump: if the ring throws (only misuse gets there: the ring
   * under the Uring closed with `uring.ring.close()`), the Uring fails, and this operation with
   * it, rather than the call throwing while its promise stays pending (to be rejected unheard).
   */
  #enqueueGuarded(head: Slot): void {
    try {
      this.#enqueue(head);
    } catch (e) {
      this.#fail(e);
    }
  }

  /** Puts an operation (or a chain, by its head) into the SQ now if it fits, else in the FIFO. */
  #enqueue(head: Slot): void {
    const chain = head.chain;
    const n = chain === null ? 1 : chain.slots.length;
    // A close goes ahead of the backlog, and past the limit up to twice it (as the internal
    // operations may): operations that wait indefinitely (reads of an empty pipe) filling the
    // limit must not hold up the close of another file. (The file's own operations were
    // cancelled, those queued rejected, before it: nothing of it stays behind.)
    const close = chain === null && head.kind === K_CLOSE;
    if ((this.#backlog.size === 0 || close) && this.#inRing + n <= this.#limitFor(head)) {
      if (n === 1) {
        const sqe = this.#ring.getSqe();
        if (sqe !== null) {
          this.#put(head, sqe);
          if (this.#sqpollRing && this.#closesHeld.length === 0) this.#ring.flushSq();
          this.#schedule();
          return;
        }
      } else if (this.#ring.sqSpaceLeft() >= n && this.#chainFits(n)) {
        this.#putChain(chain!);
        if (this.#sqpollRing && this.#closesHeld.length === 0) this.#ring.flushSq();
        this.#schedule();
        return;
      }
    }
    if (chain === null) head.state = QUEUED;
    else for (const slot of chain.slots) slot.state = QUEUED;
    this.#backlog.push(head);
    if (close) {
      this.#queuedCloses.push(head);
      this.#queuedCloseGens.push(head.gen);
    }
    this.#schedule();
  }

  #put(slot: Slot, sqe: Sqe): void {
    // A pool operation goes plain once the pool's registration was changed through `ring` (before
    // its call, or while it waited in the backlog): its index would name another buffer's memory,
    // or none (EFAULT).
    if (slot.bufIndex >= 0 && this.#ring.registeredBuffers !== this.#poolRegistration) slot.bufIndex = -1;
    try {
      prepSlot(slot, sqe);
      slot.pin(); // an AlignedBuffer freed meanwhile stays mapped until the CQE
    } catch (e) {
      // Only the caller's code run by the prep (a getter, a proxy) can get here, after the checks
      // passed. The SQE is taken: it goes as an internal no-op, and the operation fails alone
      // (a chain's members are put by #putChain).
      sqe.clear();
      this.#putInternal(sqe, I_VOID, 0, 0);
      this.#rejectQueued(slot, e);
      return;
    }
    if (slot.kind === K_CLOSE && (this.#closingFiles.has(slot.fd) || this.#closingFds.has(slot.fd))) {
      this.#closesHeld.push(slot.fd);
    }
    this.#inSq(slot);
  }

  /** Counts `slot`, its SQE written and its memory pinned, as in the SQ. */
  #inSq(slot: Slot): void {
    slot.state = IN_RING;
    // Counts the CQEs to come: a skip chain's members but its last post none (see ChainState.skip).
    if ((slot.sqeFlags & IOSQE_CQE_SKIP_SUCCESS) === 0) this.#inRing++;
    this.#toSubmit++;
    this.stats.sqes++;
    if (slot.bufIndex >= 0) this.stats.fixedBuffers++;
    if ((slot.sqeFlags & IOSQE_FIXED_FILE) !== 0) this.stats.fixedFiles++;
  }

  /**
   * Whether a chain of `n` SQEs (or a raw client's SQEs) may be published now: always, unless the
   * ring's SQ thread serves other rings too, when the chain must fit in the thread's next pass
   * (at most `SQ_THREAD_SHARED_BATCH` SQEs of this ring; one it cut would run as two chains:
   * see `IoUring.sharesSqThread`). Its pass starts at the SQ head, so a chain published behind at
   * most 8 - n unconsumed SQEs lies within it. Otherwise the chain waits in the backlog until the
   * thread has taken what is before it.
   */
  #chainFits(n: number): boolean {
    return !this.#ring.sharesSqThread || this.#ring.sqReady() + n <= SQ_THREAD_SHARED_BATCH;
  }

  /**
   * Puts every member of `chain` into the SQ (room for all was checked). When a member's prep
   * throws (see #put), the members written before it are not yet published: they become
   * internal no-ops too, and that chain alone rejects with the error.
   */
  #putChain(chain: ChainState): void {
    const slots = chain.slots;
    const sqes = this.#chainSqes;
    sqes.length = 0;
    let failure: unknown = undefined;
    for (let i = 0; i < slots.length; i++) {
      const sqe = this.#ring.getSqe()!;
      sqes.push(sqe);
      try {
        prepSlot(slots[i], sqe);
        slots[i].pin();
      } catch (e) {
        failure = e;
        break;
      }
    }
    // A later member's prep may have run the caller's code, which may have detached an earlier
    // member's buffer after its address was written.
    if (failure === undefined && slots.some(hasDetachedBuffer)) {
      failure = new TypeError("chain: a buffer was detached while the chain was being queued");
    }
    if (failure !== undefined) {
      for (const taken of sqes) {
        taken.clear();
        this.#putInternal(taken, I_VOID, 0, 0);
      }
      sqes.length = 0;
      this.#rejectQueued(slots[0], failure);
      return;
    }
    sqes.length = 0;
    for (const slot of slots) this.#inSq(slot);
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
      case I_VOID:
      case I_BARRIER:
        prepNop(sqe);
        break;
    }
    sqe.u32[sqe.base + W.userLo] = kind;
    sqe.u32[sqe.base + W.userHi] = INTERNAL;
    this.#inRing++;
    this.#internalInRing++;
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
      // Cancels, wake-ups and closes may go past the in-flight limit (up to twice it): held back
      // behind operations that may never complete (reads of an empty pipe), a cancel would wait
      // for them forever. Their extra CQEs cannot be lost: past the CQ's size the kernel keeps
      // them (IORING_FEAT_NODROP, 5.5; Uring needs 5.11) until the CQ has room.
      if (this.#inRing >= 2 * this.#limit) return;
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
      if (chain === null && this.#inRing >= this.#limitFor(head)) return this.#heldByLimit();
      if (chain === null ? hasDetachedBuffer(head) : chain.slots.some(hasDetachedBuffer)) {
        // A buffer was transferred away or shrunk while the operation waited here: it cannot run.
        this.#backlog.shift();
        this.#rejectQueued(
          head,
          new TypeError(
            `${OP_NAMES[head.kind]}: a buffer was detached or shrunk before the operation started`,
          ),
        );
        continue;
      }
      if (chain === null) {
        const sqe = this.#ring.getSqe();
        if (sqe === null) return;
        this.#backlog.shift();
        this.#put(head, sqe);
      } else {
        const n = chain.slots.length;
        if (n > SQ_THREAD_SHARED_BATCH && this.#ring.sharesSqThread) {
          // Its ring began to share its SQ thread (a Uring attached to it) while the chain waited:
          // it will never fit in one of that thread's passes.
          this.#backlog.shift();
          this.#rejectQueued(head, chainTooLongForSharedThread(n));
          continue;
        }
        if (this.#inRing + n > this.#limit || this.#ring.sqSpaceLeft() < n || !this.#chainFits(n)) return;
        this.#backlog.shift();
        this.#putChain(chain);
      }
    }
  }

  /**
   * The in-flight limit for a queued unit: the Uring's, or twice it for a close (see #enqueue),
   * as for the internal operations.
   */
  #limitFor(head: Slot): number {
    return head.chain === null && head.kind === K_CLOSE ? 2 * this.#limit : this.#limit;
  }

  /** The backlog's head is held back by the limit: the closes queued behind it may go past it. */
  #heldByLimit(): void {
    if (this.#queuedCloses.length !== 0) this.#fillCloses();
  }

  /** Submits the SQEs written since the last submit, if any. */
  #submitQueued(): void {
    if (this.#toSubmit === 0) return;
    this.#toSubmit = 0;
    try {
      this.#ring.submit();
    } catch (e) {
      if (!isRetryable(e)) throw e;
      this.#toSubmit = 1; // the SQEs stay queued: try again on the next turn
    }
  }

  /**
   * Lets the numbers of the held closes go (see #closesHeld), publishing them under SQPOLL: an
   * operation on one issued from here on goes to the kernel, as after `close(2)`. Until here it
   * was refused: queued behind the close, or issued by the same code, it would have run on
   * whatever file the kernel gives the number next (a file `open()` queued meanwhile, say).
   * Without SQPOLL they go once submitted (by the pump).
   */
  #letNumbersGo(): void {
    if (this.#sqpollRing) this.#ring.flushSq();
    else if (this.#toSubmit !== 0) return;
    for (const fd of this.#closesHeld) {
      this.#closingFiles.delete(fd);
      this.#closingFds.delete(fd);
    }
    this.#closesHeld.length = 0;
  }

  /**
   * Puts the closes waiting in the backlog behind a unit the limit holds back, up to twice the
   * limit (see #enqueue); their backlog entries go stale. Forgets those no longer waiting.
   */
  #fillCloses(): void {
    const closes = this.#queuedCloses, gens = this.#queuedCloseGens;
    let kept = 0;
    for (let i = 0; i < closes.length; i++) {
      const slot = closes[i];
      if (slot.state !== QUEUED || slot.gen !== gens[i]) continue; // put, settled or aborted since
      if (this.#inRing < this.#limitFor(slot)) {
        const sqe = this.#ring.getSqe();
        if (sqe !== null) {
          this.#put(slot, sqe);
          continue;
        }
      }
      closes[kept] = slot;
      gens[kept++] = gens[i];
    }
    closes.length = gens.length = kept;
  }

  #schedule(): void {
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flushTask);
    }
  }

  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    // (Closes held back go at the end of the code that called them, even when the pump is put
    // off to a turn: see #closesHeld.)
    if (this.#closesHeld.length !== 0) this.#letNumbersGo();
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
   * Runs the pump from a later turn of the event loop instead of this microtask: the loop polls
   * for I/O first (sockets, timers, signal handlers; see `turn.ts`). A call on the thread pool
   * that does nothing, tens of µs against ~2 ms for `setTimeout(0)`; at most once per
   * `TURN_BUDGET_MS`.
   */
  #deferToTurn(): void {
    this.#deferred = true;
    this.stats.yields++;
    onNextTurn(this.#sys, () => {
      this.#deferred = false;
      this.#turnAt = performance.now();
      this.#guardedPump();
    });
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
      this.#submitQueued();
      if (this.#queuedCloses.length !== 0) {
        // A close the full SQ held back goes now that the submit made room (else it would wait
        // for a completion, which the operations that fill the limit may never post).
        this.#fillCloses();
        this.#submitQueued();
      }
      if (this.#closesHeld.length !== 0) this.#letNumbersGo();
      let n = this.#reap();
      if (
        n === 0 && this.#spinUs > 0 && this.#active() > this.#slowInRing && this.#shouldSpin()
      ) {
        n = this.#spin();
      }
      if (n === 0) {
        const held = this.#chainHeldBack();
        if (held > 0) {
          // A chain waits for the shared SQ thread to take what is before it (see #chainFits),
          // which it does in moments; the operations in flight may complete much later (a read
          // of an empty pipe): watch the SQ briefly, else retry on a timer, not after a parked wait.
          if (this.#watchSq(() => this.#chainFits(held))) continue;
          this.#yield();
          return;
        }
        const room = this.#sqRoomAwaited();
        if (room > 0) {
          // Queued work that only SQ room held back, the in-flight limit having room for it. It
          // must not wait for a completion alone, which the operations in flight may never post
          // (reads of an empty pipe): it waited for the parked wait's timeout, a second. Without
          // SQPOLL the submit just made the room; under SQPOLL the SQ thread takes what it was
          // given in moments: look again on a timer, beside the parked wait.
          if (this.#ring.sqSpaceLeft() >= room) continue;
          this.#yield();
        }
        const need = this.#roomNeeded();
        if (need > 0 && this.#inRing === (this.#wakeOutstanding ? 1 : 0)) {
          if (this.#ring.sqSpaceLeft() < need) {
            // Every CQE is in, yet queued work found no SQ room: the kernel posts a batch's
            // completions before it advances the SQ head past the batch, so the room is a moment
            // away. Watch for it briefly, else retry on a timer (nothing else would wake us).
            if (this.#watchSq(() => this.#ring.sqSpaceLeft() >= need)) continue;
            this.#yield();
            return;
          }
          // The SQ has room: the in-flight limit holds the work back, taken by the wake-up no-op
          // alone (a CQ of one entry, or a chain as long as the CQ). Its CQE ends the parked
          // wait, which pumps again; without a parked wait, retry on a timer. (Looping here
          // spun forever: a parked wait's no-op may not be reaped.)
          if (this.#waiting) break;
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

  /**
   * The length of the backlog's first unit when it is a chain that only #chainFits holds back (a
   * ring whose SQ thread serves other rings too, with SQEs of this ring not yet taken), else 0.
   */
  #chainHeldBack(): number {
    if (!this.#ring.sharesSqThread || this.#internalHead < this.#internal.length) return 0;
    const chain = this.#backlog.peek()?.chain;
    if (chain == null) return 0;
    const n = chain.slots.length;
    return this.#inRing + n <= this.#limit && this.#ring.sqSpaceLeft() >= n && !this.#chainFits(n) ? n : 0;
  }

  /**
   * SQ entries that queued work held back by SQ room alone needs, the in-flight limit (and a
   * shared SQ thread) letting it go: the first internal SQE, else the backlog's first unit, else
   * a close waiting behind it (see #fillCloses); 0 if there is no such work.
   */
  #sqRoomAwaited(): number {
    if (this.#internalHead < this.#internal.length) return this.#inRing < 2 * this.#limit ? 1 : 0;
    const head = this.#backlog.peek();
    if (head !== null) {
      const chain = head.chain;
      if (chain === null) {
        if (this.#inRing < this.#limitFor(head)) return 1;
      } else {
        const n = chain.slots.length;
        if (this.#inRing + n <= this.#limit && this.#chainFits(n)) return n;
      }
    }
    // (The pump's #fillCloses has just dropped the closes no longer queued.)
    return this.#queuedCloses.length !== 0 && this.#inRing < 2 * this.#limit ? 1 : 0;
  }

  /** SQ entries the first queued unit (internal SQE, operation or chain) needs; 0 if none. */
  #roomNeeded(): number {
    if (this.#internalHead < this.#internal.length) return 1;
    const head = this.#backlog.peek();
    if (head === null) return 0;
    return head.chain === null ? 1 : head.chain.slots.length;
  }

  /**
   * Watches the SQ head for up to `SQ_ROOM_WAIT_MS` until `ready()` (room for the next unit, or a
   * held-back chain that fits): the kernel's side moves it in moments. Off the hot path (a pump
   * that found nothing to reap and work held back).
   */
  #watchSq(ready: () => boolean): boolean {
    const deadline = performance.now() + SQ_ROOM_WAIT_MS;
    for (;;) {
      for (let i = 0; i < 64; i++) if (ready()) return true;
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
    if (this.#slowInRing > 0) this.#slowInRing = Math.min(this.#slowInRing, this.#active());
    const ready = this.#ready;
    for (let i = 0; i < this.#readyCount; i++) {
      const slot = ready[i]!;
      ready[i] = null;
      this.#complete(slot);
    }
    this.#readyCount = 0;
    if (this.#barriersDone > 0) this.#settleBarriers();
    const raw = this.#rawReady;
    if (raw.length > 0) {
      this.#rawOutstanding -= raw.length / 3;
      for (let i = 0; i < raw.length; i += 3) this.#rawClients.get(raw[i])?.complete(raw[i + 1], raw[i + 2]);
      raw.length = 0;
    }
    return n;
  }

  /** The {@link RawRing} over this Uring's ring and pump. */
  #makeRawRing(): RawRing {
    return {
      attach: (client) => {
        if (this.#closing) throw this.#closedError();
        if (this.#rawNextId >= RAW_CLIENTS) throw new RangeError("too many raw clients");
        const id = this.#rawNextId++;
        this.#rawClients.set(id, client);
        return id;
      },
      detach: (id) => {
        this.#rawClients.delete(id);
      },
      room: (sqes, cqes) =>
        !this.#closing && this.#backlog.size === 0 && this.#internalHead === this.#internal.length &&
        this.#inRing + cqes <= this.#limit && this.#ring.sqSpaceLeft() >= sqes && this.#chainFits(sqes),
      fits: (sqes, cqes) => sqes <= this.#ring.sqEntries && cqes <= this.#limit,
      sqe: (id, tag) => {
        const sqe = this.#ring.getSqe()!;
        const u32 = sqe.u32, b = sqe.base;
        u32[b + W.userLo] = tag;
        u32[b + W.userHi] = RAW_BASE + id;
        return sqe;
      },
      commit: (sqes, cqes, fixedFiles) => {
        this.#inRing += cqes;
        this.#rawOutstanding += cqes;
        this.#toSubmit += sqes;
        this.stats.sqes += sqes;
        this.stats.fixedFiles += fixedFiles;
        if (this.#sqpollRing && this.#closesHeld.length === 0) this.#ring.flushSq(); // as #enqueue does
        this.#schedule();
      },
      cancel: (id, tag) => {
        if (!this.#closing) this.#queueInternal(I_CANCEL, tag, RAW_BASE + id); // (closing cancels all)
      },
      barrier: (then) => {
        if (this.#sqpollRing && !this.#closed) this.#barrier(then);
        else then();
      },
    };
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
          this.#gather(ring);
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
          this.#slowInRing = this.#active();
          return 0;
        }
      }
    }
  }

  /**
   * After the first completion of a spin: under SQPOLL, waits a few microseconds more while the
   * kernel thread is still posting, so one reap (and the submissions it triggers) covers a batch
   * instead of one completion (the kernel thread pays per batch it picks up).
   */
  #gather(ring: IoUring): void {
    if (!ring.sqpoll) return;
    const want = Math.min(this.#active() - this.#slowInRing, GATHER_MAX);
    let ready = ring.cqReady();
    if (ready >= want) return;
    const until = performance.now() + GATHER_MS;
    for (let i = 0;; i++) {
      const now = ring.cqReady();
      if (now >= want) return;
      if ((i & 63) === 63) {
        if (now === ready || performance.now() >= until) return; // nothing more is coming soon
        ready = now;
      }
    }
  }

  readonly #onCqe = (cqe: Cqe): void => {
    this.#inRing--;
    const hi = cqe.userDataHi;
    if (hi >= RAW_BASE) {
      if (hi === INTERNAL) {
        const kind = cqe.userDataLo;
        // (What none of ours can be: a kind we do not use, none in the ring, a wake-up not asked for.)
        if (kind > I_BARRIER || this.#internalInRing === 0 || (kind === I_WAKE && !this.#wakeOutstanding)) {
          return this.#foreignCqe();
        }
        this.#internalInRing--;
        if (kind === I_WAKE) this.#wakeOutstanding = false;
        else if (kind === I_BARRIER) this.#barriersDone++; // settled after the loop
        else if (kind === I_CANCEL_ALL && cqe.res === -EINVAL) this.#cancelEachInRing(); // before 5.19
      } else {
        const id = hi - RAW_BASE;
        if (id >= this.#rawNextId || this.#rawOutstanding <= this.#rawReady.length / 3) {
          return this.#foreignCqe();
        }
        this.#rawReady.push(id, cqe.userDataLo, cqe.res); // handed over after the loop
      }
      return;
    }
    const slot = this.#slots.at(cqe.userDataLo);
    if (slot === undefined || slot.gen !== cqe.userDataHi || slot.state !== IN_RING) {
      return this.#foreignCqe();
    }
    slot.res = cqe.res;
    slot.state = DONE;
    this.#ready[this.#readyCount++] = slot;
  };

  /**
   * A CQE that is not one of ours: a message posted on this ring from outside (see
   * `UringStats.foreignCqes`). It was counted as ours arriving: not any more.
   */
  #foreignCqe(): void {
    this.#inRing++;
    this.stats.foreignCqes++;
  }

  /** Operations of ours in the ring: all but a wake-up no-op. */
  #active(): number {
    return this.#inRing - (this.#wakeOutstanding ? 1 : 0);
  }

  #afterPump(): void {
    const active = this.#active();
    if (active > 0) {
      if (!this.#waiting) this.#park();
      if (this.#closing && !this.#ring.iopoll && performance.now() - this.#lastCancelAll > WAIT_MS) {
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
    if (this.#closing && this.#roomNeeded() === 0) {
      // Under SQPOLL, a no-op first: the files the Uring closes next, and the ring, are then no
      // longer held by requests the SQ thread completed (see #barrier).
      if (this.#sqpollRing && !this.#closingBarrierDone) {
        if (this.#barriers.length === 0) this.#barrier(CLOSING_BARRIER); // (else one is out)
        return;
      }
      this.#finishClose();
    }
  }

  #postWake(): void {
    let sqe = this.#ring.getSqe();
    // Under SQPOLL the SQ head can lag the CQEs for a moment (see #pump): wait for the room.
    if (sqe === null && this.#watchSq(() => this.#ring.sqSpaceLeft() >= 1)) sqe = this.#ring.getSqe();
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
    if (slot.res === -ECANCELED && !this.#cancelledByUs(slot) && slot.reissues < MAX_REISSUES) {
      // Cancelled, but not by us (no abort, no close): the kernel dropped it before it ran. io-wq
      // cancels the work queued for it when it cannot start its first worker thread, which
      // happens when a signal is pending at each attempt (a sampling profiler's SIGPROF every
      // few microseconds does it). Nothing of the operation ran, so issue it again.
      slot.reissues++;
      this.stats.reissued++;
      this.#enqueue(slot);
      return;
    }
    if (
      slot.res === -EFAULT && slot.bufIndex >= 0 && this.#ring.registeredBuffers !== this.#poolRegistration &&
      slot.reissues < MAX_REISSUES
    ) {
      // A pool operation whose SQE was written before the buffer table was changed through
      // `ring`: the kernel looked its index up in the new table, and refused the memory (EFAULT,
      // having moved nothing). Issued again, plain (#put drops the index now).
      slot.reissues++;
      this.stats.reissued++;
      this.#enqueue(slot);
      return;
    }
    if (
      slot.res < 0 && isInterruption(-slot.res) && restartsWhenInterrupted(slot.kind) &&
      !this.#cancelledByUs(slot) && slot.interrupts < MAX_INTERRUPTS
    ) {
      // Interrupted in an io-wq worker, not by a cancel of ours: the process was stopped (Ctrl-Z,
      // SIGSTOP, a cgroup freeze) while the operation waited there (a splice or an open of a
      // FIFO). It moved nothing; the kernel would restart the system call (SA_RESTART), so it is
      // issued again (it rejected with EINTR: a FIFO open then never saw its writer come).
      slot.interrupts++;
      this.stats.reissued++;
      this.#enqueue(slot);
      return;
    }
    if (slot.barrier) {
      slot.barrier = false; // its barrier completed (below): the close settles now
    } else if (closesFile(slot.kind) && slot.res >= 0 && this.#sqpollRing) {
      slot.barrier = true;
      this.#barrier(slot);
      return;
    }
    // A FIFO opened for writing with no reader is opened again, the waiting way; one opened for
    // reading with no writer waits for one (see #fifoOpen).
    let fifoWait: Promise<unknown> | null = null;
    if (slot.fifoWorker) {
      slot.fifoWorker = false;
      this.#fifoWorker(-1);
    }
    if (slot.kind === K_OPEN || slot.kind === K_OPENFD) {
      if (this.#opensFifoWriterAgain(slot)) return;
      fifoWait = this.#fifoReaderWait(slot);
    }
    const { resolve, reject, signal } = slot;
    if (signal !== null) unlistenAbort(signal, slot.onAbort);
    const res = slot.res;
    // `failed` rather than a null error: an abort's reason may be anything, null included.
    let failed = true;
    let error: unknown;
    let value: unknown = undefined;
    if ((hasDetachedBuffer(slot) || resizedInFlight(slot)) && !wroteFromPinnedMemory(slot)) {
      error = detachedInFlight(slot);
    } else if (res >= 0 || (slot.kind === K_TIMEOUT && res === -ETIME)) {
      value = fifoWait ?? this.#value(slot);
      failed = false;
      if (this.#closing && (slot.kind === K_OPEN || slot.kind === K_OPENFD) && fifoWait === null) {
        // The Uring is closing: the file would outlive it (an fd from openFd, with nothing left
        // to close it: Deno has no close for a raw fd). Close the fd and report the close.
        if (slot.kind === K_OPEN) {
          (value as UringFile).detach();
          this.#files.delete(res);
        }
        this.#queueInternal(I_CLOSE, res);
        // A file it created exclusively (O_CREAT | O_EXCL: its own) is removed again: the open
        // rejects as one that never ran (a copy's temporary file was left behind, its create
        // taken for one that failed).
        if ((slot.flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL)) removeCreated(slot.cpath!);
        error = this.#error(slot, ECANCELED);
        failed = true;
      }
    } else if (slot.aborted && signal !== null) {
      error = signalReason(signal);
    } else {
      error = this.#error(slot, -res);
    }
    if (slot.statx !== null) this.#statxPool.push(slot.statx);
    this.#slots.release(slot);
    this.stats.settled++;
    if (failed) reject!(error);
    else (resolve as (v: unknown) => void)(value);
  }

  /**
   * Makes an `openat` of a FIFO wait for the other end, as `open(2)` (and `Deno.open`) does.
   * io_uring first tries an open without blocking (`O_NONBLOCK` added for the try, then cleared)
   * and hands it to a worker that may wait only when that answers `EAGAIN`, which a FIFO never
   * does. Opened for writing with no reader it fails with `ENXIO`: it is issued again here with
   * `IOSQE_ASYNC`, which opens in an io-wq worker as `open(2)` does (the worker waits there for
   * a reader: it is one of the ring's bounded workers meanwhile). Opens with `O_CREAT` or
   * `O_TRUNC` go to a worker anyway; `O_NONBLOCK` asks for the kernel's answer. True when the
   * open was issued again.
   */
  #opensFifoWriterAgain(slot: Slot): boolean {
    const flags = slot.flags;
    if (
      slot.res !== -ENXIO || (flags & 3) !== O_WRONLY || (slot.sqeFlags & IOSQE_ASYNC) !== 0 ||
      (flags & (O_NONBLOCK | O_CREAT | O_TRUNC)) !== 0 || slot.aborted
    ) return false;
    if (this.#closing) {
      slot.res = -ECANCELED; // it would wait for a reader: the close ends that (not "no reader")
      return false;
    }
    slot.sqeFlags |= IOSQE_ASYNC;
    slot.fifoWorker = true;
    this.#fifoWorker(1);
    this.#enqueue(slot);
    return true;
  }

  /**
   * Counts a FIFO open that waits in an io-wq worker (`delta` 1) or no longer does (-1), and
   * raises the ring's limit of bounded workers by as many: each such open holds one while it
   * waits, and at the default limit (`min(SQ entries, 4 × CPUs)`) a handful of them would hold up
   * every other operation that needs a worker (a `statx`, an open that creates) until a partner
   * came. (The limit is the thread's io-wq's: rings of the same thread share it.)
   */
  #fifoWorker(delta: number): void {
    // Counted per io-wq: the thread's for rings without SQPOLL, the SQ thread's for the rest (one
    // for Urings attached to each other), so two Urings never restore each other's limits. Every
    // call goes through one ring (the first open Uring on the io-wq): the kernel keeps the last
    // limits set through a ring, and pushes them on the io-wq again at any later call through it,
    // a read included (without SQPOLL), so limits raised through one ring and put back through
    // another came back up.
    const state = this.#iowq;
    state.waiting += delta;
    if (state === THREAD_IOWQ) {
      // No SQ thread to park: a quick call, made now.
      const ring = Uring.#openRingOf(state) ?? (this.#closed ? null : this.#ring);
      if (ring === null) return;
      try {
        if (state.bounded === 0) state.bounded = ring.registerIowqMaxWorkers(0, 0)[0];
        ring.registerIowqMaxWorkers(state.bounded + state.waiting, 0);
        if (state.waiting === 0) state.bounded = 0; // restored: read afresh next time
      } catch {
        // best effort: before 5.15 there is no such call
      }
      return;
    }
    // On an SQPOLL ring the call parks the SQ thread first, which took as long as its idle time
    // (~55 ms) and stalled the event loop: made on Deno's thread pool, one after another, while
    // a Uring on it is open (the SQ thread goes with the last of them).
    const sys = this.#sys;
    state.calls = state.calls.then(async () => {
      const counts = new Uint32Array(2); // 0, 0: reads the limits
      const arg = new Uint8Array(counts.buffer);
      const ring = Uring.#openRingOf(state);
      if (ring === null) return;
      if (state.bounded === 0) { // read once: the limit it had before any FIFO open raised it
        if (await sys.registerAsync(ring.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, arg, 2) < 0) return;
        state.bounded = counts[0];
      }
      const now = Uring.#openRingOf(state);
      if (now === null) return;
      counts[0] = state.bounded + state.waiting;
      counts[1] = 0;
      await sys.registerAsync(now.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, arg, 2);
    }).catch(() => {}); // best effort: before 5.15 there is no such call
  }

  /** The ring of the first open Uring on `state`'s io-wq, or null (forgets collected ones). */
  static #openRingOf(state: IowqState): IoUring | null {
    for (const member of state.rings) {
      const uring = member.deref();
      if (uring === undefined) state.rings.delete(member);
      else if (!(uring.#closed || uring.#closing)) return uring.#ring;
    }
    return null;
  }

  /**
   * For an `openat` for reading that got a FIFO without waiting (see
   * {@link Uring.#opensFifoWriterAgain}): the open's value once a writer is there, or has been
   * (see fifo_wait.ts), else null: not a FIFO, `O_NONBLOCK` (the caller asked not to wait), or
   * the Uring closing. Costs every read-only open one `statx` of its type (~0.36 µs).
   */
  #fifoReaderWait(slot: Slot): Promise<unknown> | null {
    const flags = slot.flags;
    if (
      slot.res < 0 || (flags & 3) !== O_RDONLY || (flags & (O_NONBLOCK | O_CREAT | O_TRUNC | O_PATH)) !== 0 ||
      !this.#isFifo(slot.res)
    ) return null;
    const { kind, path, signal } = slot;
    if (this.#closing || slot.aborted || signal?.aborted) {
      // Given up before the wait began: not a file without its writer.
      this.#sys.close(slot.res);
      return Promise.reject(this.#closing ? closedOpenError(path) : signalReason(signal!));
    }
    const wait: FifoWriterWait = new FifoWriterWait(this.#rawRing ??= this.#makeRawRing(), this.#sys, {
      heldFd: slot.res,
      flags: flags & ~O_NOFOLLOW, // (the second open follows /proc's link to the FIFO)
      signal,
      // (As it settles, so the limit comes down while the ring is still open.)
      onSettled: () => {
        this.#fifoWaits.delete(wait);
        this.#fifoWorker(-1);
      },
    });
    this.#fifoWaits.add(wait);
    this.#fifoWorker(1);
    queueMicrotask(() => wait.start()); // (not from inside the reap that completes this open)
    const opened = wait.done.then(
      (fd) => {
        if (this.#closing) {
          this.#sys.close(fd);
          throw closedOpenError(path);
        }
        return kind === K_OPENFD ? fd : this.#fileOf(fd, path!, flags);
      },
      (reason) => {
        if (reason === FIFO_WAIT_CLOSED) throw closedOpenError(path); // (with the path: see #closeUring)
        if (!(reason instanceof FifoOpenFailed)) throw reason;
        if (this.#closing) throw closedOpenError(path);
        throw operationError("open", reason.errno === EINTR ? ECANCELED : reason.errno, path);
      },
    );
    // (The Uring's close settles after these: see #finishClose.)
    this.#fifoOpens.add(opened);
    const settled = () => {
      this.#fifoOpens.delete(opened);
    };
    opened.then(settled, settled);
    return opened;
  }

  /** Whether open fd `fd` is a FIFO (a `statx` of its type on this thread, ~0.36 µs). */
  #isFifo(fd: number): boolean {
    const out = this.#typeScratch ??= new Uint8Array(STATX_SIZE);
    if (this.#sys.statx(EMPTY_PATH, AT_EMPTY_PATH, STATX_TYPE, out, fd) !== 0) return false;
    return ((out[STATX.mode] | (out[STATX.mode + 1] << 8)) & S_IFMT) === S_IFIFO;
  }

  #value(slot: Slot): unknown {
    const kind = slot.kind;
    if (returnsCount(kind)) return slot.res;
    if (kind === K_STATX || kind === K_FSTAT) return parseStatx(slot.statx!);
    if (kind === K_OPEN) return this.#fileOf(slot.res, slot.path!, slot.flags);
    return undefined;
  }

  /** The {@link UringFile} of fd `fd`, which an open of `path` with `flags` returned. */
  #fileOf(fd: number, path: string, flags: number): UringFile {
    // open()'s flags never create or truncate without write: the access its permission check
    // asked for is what the file was opened for.
    const file = new UringFile(this.#fileOps, fd, path, accessOfFlags(flags));
    this.#files.set(fd, file);
    return file;
  }

  /** Whether the Uring itself cancelled `slot`: its abort, its file's close, or the Uring's. */
  #cancelledByUs(slot: Slot): boolean {
    return slot.aborted || slot.fileClosed || slot.chainFileClosed || this.#closing;
  }

  #error(slot: Slot, errnum: number, dropped: boolean | "unsure" = false): Error {
    if (isInterruption(errnum)) {
      // Interrupted in an io-wq worker, as a cancel does to an operation waiting there (a read
      // posts EINTR, a splice the kernel-internal ERESTARTSYS). Cancelled by us: ECANCELED.
      errnum = this.#cancelledByUs(slot) ? ECANCELED : EINTR;
    }
    if (errnum === EOPNOTSUPP && this.#ring.iopoll) return this.#iopollError(slot);
    let detail = errnum !== ECANCELED
      ? undefined
      : slot.fileClosed
      ? (slot.outputClosed ? `its output, fd ${slot.fd2}, was closed` : "the file was closed")
      : slot.chainFileClosed
      ? "a file another member of its chain works on was closed"
      : this.#closing
      ? "the Uring was closed"
      : slot.reissues >= MAX_REISSUES && !slot.aborted
      ? `the kernel dropped it ${slot.reissues + 1} times before it ran: ${DROPPED_WHY}`
      : dropped === "unsure"
      ? "cancelled before it ran: a later member of its chain was refused as the chain was submitted, or " +
        `the kernel dropped it (a chain's member is not issued again: ${DROPPED_WHY})`
      : dropped
      ? `the kernel dropped it before it ran (a chain's member is not issued again): ${DROPPED_WHY}`
      : undefined;
    let fd: number | undefined = slot.fd;
    // A chain's direct-descriptor member: name the table index, not an fd (an operation with a
    // path, an openDirect's or a fixed UringFile's, names that).
    const index = slot.path === null ? directIndexOf(slot) : -1;
    if (index >= 0) {
      fd = undefined;
      detail = detail === undefined ? `direct descriptor ${index}` : `${detail} (direct descriptor ${index})`;
    }
    if (
      errnum === EINVAL && detail === undefined && (slot.flags & O_DIRECT) !== 0 &&
      (slot.kind === K_OPEN || slot.kind === K_OPENFD || slot.kind === K_OPEN_DIRECT)
    ) {
      detail = "opened with O_DIRECT (direct: true), which this file or its file system refuses";
    }
    return operationError(OP_NAMES[slot.kind], errnum, slot.path, slot.path2, fd, detail);
  }

  /**
   * `EOPNOTSUPP` from a polled ring: the device has no poll queues (a file `open()` returned is
   * always O_DIRECT here), or for a bare fd, maybe the file is not O_DIRECT. A
   * `Deno.errors.NotSupported` that says so, with `iopollError`'s `IoUringError` as its cause.
   */
  #iopollError(slot: Slot): Error {
    const op = slot.kind === K_WRITE || slot.kind === K_WRITEV ? "write" : "read";
    const direct = slot.path !== null ? true : undefined;
    const cause = iopollError(-EOPNOTSUPP, { op, direct });
    const why = direct
      ? "the file is open with O_DIRECT, so its device has no poll queues"
      : "the device has no poll queues, or the file is not open with O_DIRECT";
    const error = operationError(
      OP_NAMES[slot.kind],
      EOPNOTSUPP,
      slot.path,
      null,
      (slot.sqeFlags & IOSQE_FIXED_FILE) !== 0 ? undefined : slot.fd,
      `${why}: a polled Uring (iopoll: true) works only for O_DIRECT files on devices with poll queues ` +
        `(e.g. NVMe with nvme.poll_queues=N); use a Uring without iopoll`,
    );
    error.cause = cause;
    return error;
  }

  #completeMember(chain: ChainState, slot: Slot): void {
    // The first member to fail, with ECANCELED that nobody asked for: the kernel dropped it before
    // it ran (io-wq could not start a worker). A member cancelled because one before it failed
    // comes after that failure. (A close's cancels are told apart by `#error`, which names them
    // first.)
    // (In a chain whose members post no CQE on success, the one CQE cannot tell: a later member
    // the kernel refused as the chain was submitted fails the head so, and posts nothing itself.)
    const dropped = slot.res !== -ECANCELED || chain.aborted
      ? false
      : chain.skip
      ? "unsure"
      : chain.results.slice(0, slot.chainIndex).every((r) => (r as ChainResult | undefined)?.ok === true);
    chain.results[slot.chainIndex] = this.#memberResult(slot, dropped);
    // (Cancelled by the Uring's close: not aborted by its signal, nor behind a member that failed
    // by itself, in which cases the close was not ours to do.)
    const closeCancelled = this.#closing && slot.res === -ECANCELED && !chain.aborted &&
      (chain.skip || !this.#brokenBefore(chain, slot.chainIndex));
    if (closeCancelled) this.#closeMemberAtEnd(chain, slot);
    if (chain.skip) {
      // The chain's only CQE: the members before this one succeeded as asked, those after it
      // never ran (the kernel posts nothing for them).
      const slots = chain.slots;
      for (let i = 0; i < slots.length; i++) {
        const member = slots[i];
        if (i < slot.chainIndex) {
          chain.results[i] = hasDetachedBuffer(member) || resizedInFlight(member)
            ? { ok: false, error: detachedInFlight(member) }
            : askedResult(member);
        } else if (i > slot.chainIndex) {
          chain.results[i] = { ok: false, error: this.#error(member, ECANCELED) };
          if (closeCancelled) this.#closeMemberAtEnd(chain, member);
        }
        if (member !== slot) this.#slots.release(member);
      }
    }
    this.#slots.release(slot);
    if (--chain.remaining > 0 || chain.endCloses > 0) return;
    if (chain.closes && this.#sqpollRing) {
      this.#barrier(chain); // a chain that closed a file settles as a close does (see #barrier)
      return;
    }
    this.#settleChain(chain);
  }

  /** Whether a member of `chain` before `index` failed with something else than `ECANCELED`. */
  #brokenBefore(chain: ChainState, index: number): boolean {
    for (let i = 0; i < index; i++) {
      const r = chain.results[i] as ChainResult | undefined;
      if (r !== undefined && !r.ok && (r.error as { code?: string }).code !== "ECANCELED") return true;
    }
    return false;
  }

  /**
   * A chain's member that closes a plain fd, which the Uring's close cancelled (or which never
   * ran behind a member it cancelled): its fd is closed as the Uring ends, as a plain close
   * waiting in the backlog is (else it would outlive the Uring, with nothing left to close it),
   * and its result then says how that went; the chain settles after it.
   */
  #closeMemberAtEnd(chain: ChainState, member: Slot): void {
    if (!closesPlainFd(member)) return;
    const index = member.chainIndex;
    chain.endCloses++;
    this.#fdsAtEnd.push({
      fd: member.fd,
      path: member.path,
      settle: (error) => {
        chain.results[index] = error === null ? OK_ZERO : { ok: false, error };
        if (--chain.endCloses === 0 && chain.remaining === 0) this.#settleChain(chain);
      },
    });
  }

  /** A chain member's result from its CQE. */
  #memberResult(slot: Slot, dropped: boolean | "unsure" = false): ChainResult {
    const res = slot.res;
    if (hasDetachedBuffer(slot) || resizedInFlight(slot)) return { ok: false, error: detachedInFlight(slot) };
    if (res === 0) return OK_ZERO;
    if (res > 0) return { ok: true, value: res };
    if (slot.kind === K_TIMEOUT && res === -ETIME) return OK_ZERO;
    return { ok: false, error: this.#error(slot, -res, dropped) };
  }

  /**
   * Settles `target` (a close, a chain with a close, a raw client's callback, or the Uring's own
   * close) only once two no-ops, one queued after the other completed, have completed. Under
   * SQPOLL a CQE can be read before the kernel has dropped the request's file reference: the SQ
   * thread drops it as task work just after it posts a CQE itself, and a request an io-wq worker
   * completed is freed by task work the worker hands the SQ thread after posting its CQE. So a
   * close settling at its CQE could leave the file open in the kernel a while, longer when the
   * thread is short of CPU: a FIFO read through the ring and closed kept its reader (a writer
   * wrote into it, and the data was lost), a copied script run at once failed with `ETXTBSY`.
   * The SQ thread runs its task work between taking in SQEs: the first no-op's completion means
   * the work queued before it was taken in has run, or runs before the second is taken in.
   */
  #barrier(target: Slot | ChainState | typeof CLOSING_BARRIER | (() => void), second = false): void {
    this.#barriers.push(target);
    this.#barrierSecond.push(second);
    if (!second && target !== CLOSING_BARRIER) this.stats.closeBarriers++;
    this.#queueInternal(I_BARRIER);
  }

  /** Settles the targets of the second barrier no-ops reaped in this pass (or queues the second). */
  #settleBarriers(): void {
    const targets = this.#barriers;
    for (let n = this.#barriersDone; n > 0; n--) {
      const at = this.#barrierHead++;
      const target = targets[at];
      if (!this.#barrierSecond[at]) this.#barrier(target, true);
      else if (target === CLOSING_BARRIER) this.#closingBarrierDone = true;
      else if (typeof target === "function") target(); // a raw client's
      else if ("slots" in target) this.#settleChain(target);
      else this.#complete(target);
    }
    this.#barriersDone = 0;
    if (this.#barrierHead === targets.length) {
      targets.length = 0;
      this.#barrierSecond.length = 0;
      this.#barrierHead = 0;
    }
  }

  #settleChain(chain: ChainState): void {
    if (this.#chainsCancelling.delete(chain) && this.#chainsCancelling.size === 0) {
      clearTimeout(this.#chainCancelTimer); // (no timer left keeping the event loop alive)
      this.#chainCancelTimer = undefined;
    }
    const signal = chain.signal;
    if (signal !== null) unlistenAbort(signal, chain.onAbort);
    this.stats.settled++;
    const results = chain.results as ChainResult[];
    if (chain.aborted && signal !== null && results.some((r) => !r.ok)) chain.reject(signalReason(signal));
    else chain.resolve(results);
  }

  // -------------------------------------------------------------------------------------------
  // Cancellation

  /** A single operation's signal fired (a chain's own listener calls #abortChain). */
  readonly #onAbort = (slot: Slot): void => {
    if (slot.reject === null) return; // settled already (the Uring failed: see #fail)
    // A listener an exotic signal refused to remove may fire for a later operation in this slot.
    if (slot.signal === null || !signalAborted(slot.signal)) return;
    if (slot.state === QUEUED) {
      // It never reached the kernel: take it out of the FIFO (the entry goes stale) and reject.
      this.#rejectQueued(slot, signalReason(slot.signal));
    } else if (slot.state === IN_RING && !slot.aborted) {
      slot.aborted = true;
      // A polled ring cannot cancel (the kernel refuses ASYNC_CANCEL there), but polled I/O
      // completes by itself: the promise settles with its outcome.
      if (!this.#ring.iopoll) this.#queueInternal(I_CANCEL, slot.index, slot.gen);
    }
  };

  #abortChain(chain: ChainState): void {
    if (chain.aborted || chain.signal === null || !signalAborted(chain.signal)) return;
    const head = chain.slots[0];
    // Still all in the backlog? A head that completed was freed and may carry another operation
    // now (queued, even): then the chain is in the ring.
    if (head.chain === chain && head.state === QUEUED) {
      const signal = chain.signal!;
      unlistenAbort(signal, chain.onAbort);
      for (const slot of chain.slots) this.#slots.release(slot);
      this.stats.settled++;
      chain.reject(signalReason(signal));
      return;
    }
    chain.aborted = true;
    this.#cancelChainUntilSettled(chain);
  }

  /**
   * Queues a cancel for each of `chain`'s members still in the ring (a member that completed was
   * freed, and its slot may carry another operation now); returns whether there was any.
   */
  #cancelChainInRing(chain: ChainState): boolean {
    let any = false;
    for (const member of chain.slots) {
      if (member.chain !== chain || member.state !== IN_RING) continue;
      any = true;
      this.#queueInternal(I_CANCEL, member.index, member.gen);
    }
    return any;
  }

  /**
   * Cancels the operations on `file` that the kernel holds, as Deno's `FsFile.close()` cancels
   * its own: a read of an empty pipe would otherwise outlive the file, and read into its buffer
   * whenever data came. They reject with `ECANCELED` ("the file was closed") unless they
   * completed first. An operation is on the file when it names it as its fd, its registered
   * index, or a splice's output. A chain with a member on the file is cancelled as a whole: a
   * linked member waiting for the one before it cannot be cancelled by itself, and left alone it
   * would run after the close, on whatever file then has the fd's number. Returns a watch on the
   * operations cancelled in the kernel (the close waits for them, and for those an earlier close
   * cancelled), or null when there were none.
   */
  #cancelOnFile(fd: number, index: number): SettleWatch | null {
    const onFile = (slot: Slot): boolean =>
      (slot.sqeFlags & IOSQE_FIXED_FILE) !== 0
        ? index >= 0 && slot.fd === index
        : slot.fd === fd || (slot.kind === K_SPLICE && slot.fd2 === fd);
    let watch: SettleWatch | null = null;
    const watchSlot = (slot: Slot): void => {
      watch ??= new SettleWatch();
      if (slot.watch === null) watch.add(slot);
      else if (slot.watch !== watch) watch.follow(slot.watch); // an earlier close cancelled it
    };
    const chains = new Set<ChainState>();
    this.#slots.forEachUsed((slot) => {
      if (!onFile(slot)) return;
      if (
        slot.kind === K_SPLICE && slot.fd !== fd && !slot.fileClosed &&
        (slot.sqeFlags & IOSQE_FIXED_FILE) === 0
      ) {
        slot.outputClosed = true; // (its error names the fd that was closed)
      }
      if (slot.chain !== null) {
        slot.fileClosed = true; // (its ECANCELED then says why)
        chains.add(slot.chain);
        return;
      }
      // (reject null: settled already, by a Uring that failed: nothing will complete it again.)
      if (slot.reject === null) return;
      if (slot.state === QUEUED) {
        // Still in the backlog: it would reach the kernel after the close. Rejected now (its
        // backlog entry goes stale, as for an abort) with ECANCELED, "the file was closed".
        slot.fileClosed = true;
        this.#rejectQueued(slot);
      } else if (slot.state === IN_RING && !this.#ring.iopoll) { // polled I/O completes by itself
        if (!slot.fileClosed) {
          slot.fileClosed = true;
          this.#queueInternal(I_CANCEL, slot.index, slot.gen);
        }
        watchSlot(slot);
      }
    });
    for (const chain of chains) {
      for (const member of chain.slots) if (!member.fileClosed) member.chainFileClosed = true;
      const head = chain.slots[0];
      if (head.chain === chain && head.state === QUEUED) {
        // All of it still in the backlog (a chain enters the SQ whole): it never runs. It settles
        // as one cancelled in the ring does: every member ECANCELED.
        this.#settleQueuedChain(chain);
        continue;
      }
      if (this.#ring.iopoll) continue;
      for (const member of chain.slots) {
        if (member.chain === chain && member.state === IN_RING) watchSlot(member); // (else: freed)
      }
      this.#cancelChainUntilSettled(chain);
    }
    return watch;
  }

  /**
   * Cancels `chain`'s members in the ring, and asks again until the chain has settled: a member
   * not issued yet (waiting behind one that ignores the cancel, such as a write to a regular
   * file) is not found by the first cancel, and once issued it may block for good (a splice
   * from an empty pipe). An abort and a file close both need it.
   */
  #cancelChainUntilSettled(chain: ChainState): void {
    this.#cancelChainInRing(chain);
    this.#chainsCancelling.add(chain);
    this.#chainCancelDelay = CHAIN_CANCEL_RETRY_MS;
    clearTimeout(this.#chainCancelTimer);
    this.#chainCancelTimer = setTimeout(this.#retryChainCancels, CHAIN_CANCEL_RETRY_MS);
  }

  /**
   * Asks the kernel again to cancel the members still in it of the chains an abort or a file
   * close cancels (their next member may have been issued since), on a timer of its own that
   * backs off from 2 ms to `WAIT_MS` (a wait parked meanwhile may last `WAIT_MS`), until those
   * chains settle.
   */
  readonly #retryChainCancels = (): void => {
    this.#chainCancelTimer = undefined;
    if (this.#closed) return this.#chainsCancelling.clear();
    for (const chain of this.#chainsCancelling) {
      if (!this.#cancelChainInRing(chain)) this.#chainsCancelling.delete(chain);
    }
    if (this.#chainsCancelling.size === 0) return;
    this.#chainCancelDelay = Math.min(this.#chainCancelDelay * 2, WAIT_MS);
    this.#chainCancelTimer = setTimeout(this.#retryChainCancels, this.#chainCancelDelay);
  };

  /** Resolves a chain still all in the backlog with every member `ECANCELED`, and frees it. */
  #settleQueuedChain(chain: ChainState): void {
    if (chain.signal !== null) unlistenAbort(chain.signal, chain.onAbort);
    const results = chain.slots.map((member): ChainResult => ({
      ok: false,
      error: this.#error(member, ECANCELED),
    }));
    for (const slot of chain.slots) this.#slots.release(slot);
    this.stats.settled++;
    chain.resolve(results);
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
    // 1. What never reached the kernel is rejected now, but a close still closes its descriptor
    // (a UringFile's is no longer among the files step 3 closes), at the end: operations on it
    // may be in the SQ still, not yet issued.
    for (let head = this.#backlog.peek(); head !== null; head = this.#backlog.peek()) {
      this.#backlog.shift();
      if (head.chain === null && head.kind === K_CLOSE) {
        this.#closeQueuedAtEnd(head);
        continue;
      }
      // (A chain's close members close their fds at the end too; the chain rejects now.)
      for (const member of head.chain?.slots ?? []) {
        if (closesPlainFd(member)) {
          this.#fdsAtEnd.push({ fd: member.fd, path: member.path, settle: null });
        }
      }
      this.#rejectQueued(head);
    }
    if (this.#iowqMember !== null) this.#iowq.rings.delete(this.#iowqMember);
    for (const wait of this.#fifoWaits) {
      wait.stop(FIFO_WAIT_CLOSED);
    }
    // 2. Cancel everything in the ring (a polled ring cannot cancel; its I/O ends by itself);
    // 3. close the files open() returned (a polled Uring's plain ring closes its own, later).
    if (this.#inRing - (this.#wakeOutstanding ? 1 : 0) > 0 && !this.#ring.iopoll) {
      this.#lastCancelAll = performance.now();
      this.#queueInternal(I_CANCEL_ALL);
    }
    for (const file of this.#files.values()) {
      file.detach(promise); // (the Uring's close settles once the fds are closed)
      // At the end, as in 1: a chain's member still waiting in the kernel for the one before it
      // would otherwise be issued after the close.
      if (this.#aux === null) this.#fdsAtEnd.push({ fd: file.fd, path: file.path, settle: null });
    }
    this.#files.clear();
    this.#auxFiles.clear();
    // 4. The pump waits for every CQE, then #finishClose closes the ring.
    this.#schedule();
    return promise;
  }

  /**
   * A close still in the backlog when the Uring closes: its slot is freed now, and its fd closed
   * (and its promise settled) as the Uring's last completion is in.
   */
  #closeQueuedAtEnd(slot: Slot): void {
    const { resolve, reject, signal, fd, path } = slot;
    if (signal !== null) unlistenAbort(signal, slot.onAbort);
    this.#slots.release(slot);
    this.stats.settled++;
    this.#fdsAtEnd.push({
      fd,
      path,
      settle: (error) => error === null ? (resolve as (v: unknown) => void)(undefined) : reject!(error),
    });
  }

  /**
   * Settles an operation (or chain) that never reached the kernel with `error` (default:
   * `ECANCELED`) and frees its slots; a backlog entry left for it goes stale.
   */
  #rejectQueued(head: Slot, error: unknown = this.#error(head, ECANCELED)): void {
    const chain = head.chain;
    if (chain !== null) {
      if (chain.signal !== null) unlistenAbort(chain.signal, chain.onAbort);
      for (const slot of chain.slots) this.#slots.release(slot);
      this.stats.settled++;
      chain.reject(error);
      return;
    }
    const { reject, signal } = head;
    if (signal !== null) unlistenAbort(signal, head.onAbort);
    if (head.statx !== null) this.#statxPool.push(head.statx);
    if (head.fifoWorker) this.#fifoWorker(-1);
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
    this.#failed = true;
    this.#failure = error;
    openUrings.delete(this.#openEntry);
    if (this.#yieldTimer !== undefined) clearTimeout(this.#yieldTimer);
    const chains = new Set<ChainState>();
    this.#slots.forEachUsed((slot) => {
      if (slot.chain !== null) {
        chains.add(slot.chain);
        if (slot.watch !== null) slot.settleWatched(); // a file close waits for it: it is settled
      } else if (slot.reject !== null) {
        const { resolve, reject } = slot;
        slot.resolve = slot.reject = null;
        // Its signal may still fire: nothing is left to cancel or reject then.
        if (slot.signal !== null) unlistenAbort(slot.signal, slot.onAbort);
        if (slot.barrier) (resolve as (v: unknown) => void)(undefined); // a close that succeeded
        else reject(error);
        if (slot.watch !== null) slot.settleWatched(); // (its slot is never freed)
      }
    });
    for (let i = this.#barrierHead; i < this.#barriers.length; i++) {
      const target = this.#barriers[i];
      if (typeof target === "function") void Promise.resolve().then(target); // (after the fails)
      else if (target !== CLOSING_BARRIER && "slots" in target) {
        // Every member completed (its close too; none holds a slot, so the chain is not among
        // those rejected below): it has its results.
        if (target.signal !== null) unlistenAbort(target.signal, target.onAbort);
        target.resolve(target.results);
      }
    }
    for (const chain of chains) {
      if (chain.signal !== null) unlistenAbort(chain.signal, chain.onAbort);
      chain.reject(error);
    }
    this.#chainsCancelling.clear();
    clearTimeout(this.#chainCancelTimer);
    for (const client of this.#rawClients.values()) client.fail(error);
    // Closes that were to run at the end: the kernel may still use their fds (left open).
    for (const { settle } of this.#fdsAtEnd.splice(0)) settle?.(error);
    void this.#aux?.close();
    this.#closeResolve?.();
  }

  /**
   * See {@link quiesceOnFatal}: waits until every operation in the kernel has posted its
   * completion (they stay in the CQ for the pump), until `deadline`, or until a wait of
   * {@link QUIESCE_STALL_MS} brought none.
   */
  #quiesce(deadline: number): void {
    if (this.#closed) return;
    const ring = this.#ring;
    try {
      let seen = ring.cqReady();
      for (let ms = deadline - performance.now(); ms > 0; ms = deadline - performance.now()) {
        // SQEs written but not submitted (no SQPOLL: only an enter submits them; SQPOLL: its
        // thread sleeps, and only a submit wakes it) are not the kernel's: they are left as
        // they are. (Nothing is reaped meanwhile.)
        const unsubmitted = !ring.sqpoll || ring.sqThreadAsleep ? ring.sqReady() : 0;
        const want = Math.min(this.#inRing - unsubmitted, ring.cqEntries);
        if (want === 0 || ring.cqReady() >= want) return;
        if (ring.waitCqe({ count: want, timeoutMs: Math.min(ms, QUIESCE_STALL_MS) }) !== null) return;
        const ready = ring.cqReady();
        if (ready === seen) return; // stalled: the rest waits on something that is not coming
        seen = ready;
      }
    } catch {
      // best effort: the program is most likely ending
    }
  }

  /** See {@link drainForExit}. */
  #drainForExit(deadline: number): void {
    if (this.#aux !== null) this.#aux.#drainForExit(deadline);
    if (this.#closed) return;
    this.#closed = true; // nothing else may use the ring: its completions are consumed unread
    openUrings.delete(this.#openEntry);
    const ring = this.#ring;
    // One cancel for all (5.19; through the ring, so that under SQPOLL the kernel thread that
    // submitted the operations looks in its own workers), sent with whatever SQEs are queued.
    const sqe = ring.getSqe();
    if (sqe !== null) this.#putInternal(sqe, I_CANCEL_ALL, 0, 0);
    ring.submit();
    // Each operation in the ring posts one completion, cancelled or not: consume them until all
    // came (consuming makes room for those the kernel holds back when the CQ was full; waitCqe
    // has it flush them).
    let left = this.#inRing;
    for (;;) {
      const ready = ring.cqReady();
      if (ready > 0) {
        ring.cqAdvance(ready);
        left -= ready;
      }
      const ms = deadline - performance.now();
      if (left <= 0 || ms <= 0) return;
      if (ring.sqpoll && ring.sqReady() > 0) ring.submit(); // wakes a sleeping SQ thread
      ring.waitCqe({ timeoutMs: Math.min(ms, 10) });
    }
  }

  #finishClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    openUrings.delete(this.#openEntry);
    if (this.#yieldTimer !== undefined) clearTimeout(this.#yieldTimer);
    // Every CQE is in: no request uses the pool's memory any more. The pool first: unregistered
    // from the open ring, its pages' RLIMIT_MEMLOCK charge comes back now (left to the ring's
    // teardown, it comes back tens of ms later, and a new registration meanwhile fails: ENOMEM).
    this.#pool?.close();
    for (const buf of this.#statxPool.splice(0)) giveBackKernelBytes(buf);
    // Every operation has completed: no request can still be about to use one of these fds.
    for (const { fd, path, settle } of this.#fdsAtEnd.splice(0)) {
      const error = this.#closeFdNow(fd, path);
      settle?.(error);
    }
    this.#ring.close();
    const resolve = this.#closeResolve!;
    // Opens waiting for a FIFO's writer settle a few steps after their wait was stopped: the
    // close settles after them ("every promise settles" first; it could come before).
    const after = this.#fifoOpens.size === 0 ? null : Promise.allSettled(this.#fifoOpens);
    if (this.#aux === null) {
      if (after === null) resolve();
      else after.then(resolve);
    } else {
      const aux = this.#aux.close(); // closes the files it opened for us
      (after === null ? aux : Promise.allSettled([aux, after])).then(resolve, resolve);
    }
  }

  /**
   * The error for a call on a closed Uring: when it closed because it failed (a system call of
   * the ring itself), that failure is its `cause` and its message says so.
   */
  #closedError(): ClosedError {
    return this.#failed ? new ClosedError("Uring", this.#failure) : new ClosedError("Uring");
  }

  /** A promise rejected with {@link Uring.#closedError}'s error. */
  #rejectClosed(): Promise<never> {
    return Promise.reject(this.#closedError());
  }

  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#closeUring();
  }
}

/** Names `file` by its registered index (`IOSQE_FIXED_FILE`) when it has one. */
function useFixedFile(slot: Slot, file: UringFile): void {
  const index = file.fixedIndex;
  if (index < 0) return;
  slot.fd = index;
  slot.sqeFlags |= IOSQE_FIXED_FILE;
}

/** The Deno permission(s) an `openat` with raw `O_*` flags needs. */
function accessOfFlags(flags: number): Access | "both" {
  const accmode = flags & 3;
  // O_RDONLY | O_CREAT of an existing file returns a readable fd: it needs both, as in Deno.
  const reads = accmode === O_RDONLY || accmode === O_RDWR;
  const writes = accmode !== O_RDONLY || (flags & (O_CREAT | O_TRUNC)) !== 0;
  return reads && writes ? "both" : writes ? "write" : "read";
}

/** Whether an operation of `kind` closes a file (under SQPOLL it settles behind a barrier). */
function closesFile(kind: number): boolean {
  return kind === K_CLOSE || kind === K_CLOSE_DIRECT;
}

/** The result of a chain member that succeeded without a CQE of its own: what it asked for. */
const OK_ZERO: ChainResult = Object.freeze({ ok: true, value: 0 });

/**
 * Whether a member's success has a result known in advance, so a chain may skip its CQE: 0, or
 * for a read, write or splice its full length (a short one fails the link and posts its CQE).
 * Only operations older than `IOSQE_CQE_SKIP_SUCCESS` (5.17) itself.
 */
function succeedsAsAsked(kind: number): boolean {
  switch (kind) {
    case K_NOP:
    case K_READ:
    case K_WRITE:
    case K_FSYNC:
    case K_FALLOCATE:
    case K_CLOSE:
    case K_OPEN_DIRECT:
    case K_CLOSE_DIRECT:
    case K_SPLICE:
      return true;
    default:
      return false;
  }
}

/** The result of a member that succeeded without posting a CQE (see {@link succeedsAsAsked}). */
function askedResult(slot: Slot): ChainResult {
  // The length when the chain was called (a length-tracking view may have grown since).
  if (slot.kind === K_READ || slot.kind === K_WRITE) return { ok: true, value: slot.bufLength };
  if (slot.kind === K_SPLICE && slot.len > 0) return { ok: true, value: slot.len };
  return OK_ZERO;
}

/** Whether `slot` (a chain's member) closes a plain fd, not a registered file's index. */
function closesPlainFd(slot: Slot): boolean {
  return slot.kind === K_CLOSE && (slot.sqeFlags & IOSQE_FIXED_FILE) === 0;
}

/**
 * Removes the file an exclusive create made at `cpath` (the NUL-terminated path the kernel got),
 * quietly: the open that made it rejects (see `Uring.#complete`), and the caller had write access
 * to the path, which the removal needs too.
 */
function removeCreated(cpath: Uint8Array): void {
  try {
    Deno.removeSync(new TextDecoder().decode(cpath.subarray(0, cpath.indexOf(0))));
  } catch {
    // gone already, or not removable: the file stays, as before
  }
}

/** `access` to `path` as {@link checkAccess} asks it; "both" needs read and write. */
function checkPathAccess(op: string, access: Access | "both", path: string, shownAs = path): Error | null {
  if (access === "both") {
    return checkAccess(op, "read", path, shownAs) ?? checkAccess(op, "write", path, shownAs);
  }
  return checkAccess(op, access, path, shownAs);
}

/**
 * {@link kernelPath}, with a working directory that is gone named as the reason: a relative
 * path cannot be resolved then (Deno: "failed resolving cwd").
 */
function resolvedFor(op: string, given: string): string {
  try {
    return kernelPath(given);
  } catch (e) {
    if (e instanceof Deno.errors.InvalidData) {
      // (Deno.cwd() cannot return a name that is not UTF-8.)
      throw new Deno.errors.InvalidData(
        `${op} '${given}': the working directory's name is not UTF-8, so a relative path cannot be ` +
          "resolved: give an absolute path",
        { cause: e },
      );
    }
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw new Deno.errors.NotFound(
      `${op} '${given}': the working directory no longer exists, so a relative path cannot be resolved`,
      { cause: e },
    );
  }
}

/** The refusal of a chain of `n` members on a ring whose SQ thread serves other rings too. */
function chainTooLongForSharedThread(n: number): RangeError {
  return new RangeError(
    `chain: ${n} members on a Uring whose SQ thread serves other rings too (attachTo): ` +
      `at most ${SQ_THREAD_SHARED_BATCH}, the SQEs of a ring that thread takes at a time (it would cut a ` +
      "longer chain in two)",
  );
}

/**
 * A rejection for an operation whose `signal` option is not an `AbortSignal` (see
 * `abortSignalOption`) or has fired already; else null (`undefined` and `null` mean none).
 */
function refusedBySignal(signal: unknown, op: string): Promise<never> | null {
  let checked: AbortSignal | undefined;
  try {
    checked = abortSignalOption(signal);
  } catch (e) {
    // Options that are no object, or a signal that is no AbortSignal: refused as arguments are
    // (what a getter threw goes out as it was: see refusedArgument).
    return Promise.reject(refusedArgument(op, e));
  }
  return checked !== undefined && signalAborted(checked) ? Promise.reject(signalReason(checked)) : null;
}

/**
 * `options` if it is an object (or `undefined`/`null`, returned as they are: the defaults);
 * else a `TypeError` saying that `what` takes an options object (`new Uring(64)`, `open(p, "r")`).
 */
function optionsObject<T>(options: T, what: string): T {
  const notObject = notAnOptionsObject(options);
  if (notObject === null) return options;
  const example = what === "Uring" ? "new Uring({ entries: 64 })" : "open(path, { write: true })";
  throw new TypeError(`${what} takes an options object (e.g. ${example}), got ${notObject}`);
}

/** `options` as a plain object, each field read once (in this order). */
function openOptionsOnce(options: OpenOptions): OpenOptions {
  const { read, write, create, truncate, append, exclusive, createNew, mode, direct, fixed, signal } =
    options;
  return { read, write, create, truncate, append, exclusive, createNew, mode, direct, fixed, signal };
}

/** The `O_*` flags and the permission `open` options imply. */
export function openFlags(options: OpenOptions): { flags: number; access: Access | "both" } {
  const append = options.append === true;
  const write = options.write === true || append;
  const read = options.read === true || (!write && options.read !== false);
  if (!read && !write) throw new TypeError("open needs read, write or append");
  const exclusive = options.exclusive || options.createNew;
  if ((options.create || options.truncate || exclusive) && !write) {
    throw new TypeError("create, truncate, exclusive and createNew need write or append");
  }
  if (options.truncate && append && !exclusive) {
    // O_TRUNC | O_APPEND would empty the file; Deno.open refuses the pair (as Rust's std does).
    throw new TypeError("truncate cannot be combined with append (Deno.open refuses it too)");
  }
  if (options.direct && append) {
    // O_APPEND writes at the file's end, whatever position a write names: O_DIRECT needs that end
    // aligned, which no check before the kernel can know (it answered a bare EINVAL).
    throw new TypeError(
      "direct cannot be combined with append: O_APPEND writes at the end of the file, which O_DIRECT needs " +
        "aligned; write at an aligned position instead",
    );
  }
  let flags = O_CLOEXEC | (read && write ? O_RDWR : write ? O_WRONLY : O_RDONLY);
  if (options.create) flags |= O_CREAT;
  if (exclusive) flags |= O_CREAT | O_EXCL;
  if (options.truncate) flags |= O_TRUNC;
  if (append) flags |= O_APPEND;
  if (options.direct) flags |= O_DIRECT;
  return { flags, access: read && write ? "both" : write ? "write" : "read" };
}

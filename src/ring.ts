/**
 * `IoUring`: one io_uring instance, its mapped rings, and the raw protocol of submission and
 * completion. It knows nothing of promises or files; the `Uring` layer builds on it.
 *
 * @module
 */

import * as abi from "./abi.ts";
import { ClosedError, IoUringError } from "./errors.ts";
import { errno } from "./errno.ts";
import {
  ADDRESSED,
  addressOf,
  badNumber,
  bufferAddressed,
  bufferOf,
  byteLengthOf,
  checkFd,
  checkFlags,
  checkLength,
  checkOptionsObject,
  checkU32,
  isResizable,
  notAnOptionsObject,
  shown,
} from "./memory.ts";
import { type Offset, prepMsgRing } from "./prep.ts";
import { checkOffsetOrPosition } from "./prep_base.ts";
import { Probe } from "./probe.ts";
import { checkUserData, Cqe, Sqe, W, writeU64, zeroSqe } from "./sqe.ts";
import {
  closedByOwner,
  releaseRing,
  releaseWhenDropped,
  type RingHold,
  ringHold,
  unpinAll,
  unregisterBufferRing,
  unregisterRingIndex,
} from "./ring_hold.ts";
import { bufReg, Iovecs, rsrcUpdate, rsrcUpdate2 } from "./structs.ts";
import {
  allowsRegisterOp,
  bufStatus,
  clockRegister,
  cloneBuffersArg,
  type CloneBuffersOptions,
  cpuSet,
  fileIndexRange,
  napiArg,
  napiOut,
  type NapiSettings,
  napiSettings,
  type Restriction,
  RESTRICTION_SIZE,
  restrictionArray,
  sparseTable,
  syncCancelReg,
  type SyncCancelTarget,
} from "./register_args.ts";
import { type AlignedBuffer, alignedBuffer, type AlignedMapping, pinAlignedMemory } from "./aligned.ts";
import { BufferRing, type BufferRingOptions, groupOn, noteRegistered } from "./buf_ring.ts";
import { type Backend, getSys, type Sys } from "./sys.ts";

/**
 * `BufferRing.close()`'s work: unregisters the group and frees its memory, unless the ring was
 * released already (its release freed the memory, once the kernel's fd was closed). When the
 * kernel refuses the unregister (a restricted ring: `EACCES`), it throws and frees nothing: the
 * kernel may still pick buffers from that memory (the ring's release keeps it for good then).
 */
function releaseBufferRing(hold: RingHold, ring: BufferRing): void {
  if (hold.released) return;
  const r = unregisterBufferRing(hold, ring.group);
  if (r < 0) {
    throw new IoUringError("io_uring_register", -r, `IORING_UNREGISTER_PBUF_RING (group ${ring.group})`);
  }
  hold.bufferRings.delete(ring);
  // The memory stays until the ring's fd closes: a receive that picked a buffer before the
  // unregister (waiting in an io-wq worker) still writes into it; freed now, the kernel wrote the
  // data into whatever memory was mapped there next.
  ring.parkMemory(hold.sys);
  hold.parkedBufferRings.add(ring);
}

/**
 * An empty slot of the buffer table, as `registeredBuffers` shows it: a view of no memory, which
 * is what the kernel registers for one (a buffer of 0 bytes registers as an empty slot too).
 */
const NO_BUFFER = Object.freeze(new Uint8Array(0));

/** Largest registered file table the kernel allows (`IORING_MAX_FIXED_FILES`), whatever `ulimit -n` says. */
const MAX_FIXED_FILES = 1 << 20;

/**
 * Hint for `EBADF` from a registration of fds in the file table: the kernel refuses an fd that is
 * not open, and an io_uring ring's fd (`io_is_uring_fops`).
 */
const FILE_TABLE_EBADF =
  "an fd that is not open, or an io_uring ring's fd: the kernel refuses rings in a file table";

/**
 * Throws a `RangeError` for a buffer the kernel must not pin: over 1 GiB (`EFAULT` from it), or a
 * view of a resizable `ArrayBuffer` (a resize may give it other pages).
 */
function checkRegistrable(list: readonly ArrayBufferView[]): void {
  for (let i = 0; i < list.length; i++) {
    const length = byteLengthOf(list[i]);
    if (length > abi.IORING_MAX_REG_BUFFER_SIZE) {
      throw new RangeError(`buffers[${i}] holds ${length} bytes: at most 1 GiB each`);
    }
    if (isResizable(bufferOf(list[i]))) {
      throw new RangeError(
        `buffers[${i}] is a view of a resizable ArrayBuffer: the kernel pins the pages it has now, ` +
          "and a resize may give it others; register fixed-length memory",
      );
    }
  }
}

/** A hold on the memory of each buffer that is an `alignedBuffer`'s (else `null`), by index. */
function pinAll(list: readonly ArrayBufferView[]): (AlignedMapping | null)[] {
  return list.map((view) => pinAlignedMemory(bufferOf(view)));
}

/**
 * `io_uring_register(fd, opcode, arg, nrArgs)`, again after `EINTR`; its result, or an
 * `IoUringError` naming `what` (with `hints` by errno name before the usual ones).
 */
function registerChecked(
  sys: Sys,
  fd: number,
  opcode: number,
  arg: Uint8Array | null,
  nrArgs: number,
  what: string,
  hints?: Readonly<Record<string, string>>,
): number {
  for (;;) {
    const r = sys.register(fd, opcode, arg, nrArgs);
    if (r === -EINTR) continue;
    if (r < 0) throw new IoUringError("io_uring_register", -r, what, hints);
    return r;
  }
}

/** Largest SQ size the kernel accepts (`IORING_MAX_ENTRIES`). */
export const MAX_ENTRIES = 32768;
/** Largest CQ size the kernel accepts (`IORING_MAX_CQ_ENTRIES`, twice {@link MAX_ENTRIES}). */
const MAX_CQ_ENTRIES = 2 * MAX_ENTRIES;
/** Whether a plain store is a release store here (x86-64: total store order). */
const PLAIN_STORE_RELEASES = Deno.build.arch === "x86_64";
/** Default SQ poll thread idle time before it sleeps, in milliseconds. */
export const DEFAULT_SQPOLL_IDLE_MS = 50;

/**
 * Set by {@link makeRingDyingWithThread} for the next `IoUring` made (which takes it at once): a
 * module variable, not an option, so that no caller's options object (a proxy answers any key)
 * can ask for it.
 */
let nextDiesWithThread = false;

/**
 * Runs `make`, whose first `IoUring` (a `Uring`'s own) maps its memory so that it is also
 * unmapped when the thread that made it exits (`Sys.mmapHeld`; where the backend cannot, as
 * usual): for a ring whose memory views never leave that thread, such as the copies' own ring
 * (see `copy_shared_ring.ts`). Internal.
 */
export function makeRingDyingWithThread<T>(make: () => T): T {
  nextDiesWithThread = true;
  try {
    return make();
  } finally {
    nextDiesWithThread = false;
  }
}

/** Rings whose memory is unmapped when their thread exits (see {@link makeRingDyingWithThread}). */
const threadBoundRings = new WeakSet<IoUring>();

/** Whether `ring`'s memory is unmapped when the thread that made it exits. */
export function memoryDiesWithThread(ring: IoUring): boolean {
  return threadBoundRings.has(ring);
}

/** SQPOLL settings: how long the kernel thread spins idle, and which CPU it is pinned to. */
export interface SqpollOptions {
  /** Idle time in ms before the SQ thread sleeps, at least 1 (default {@link DEFAULT_SQPOLL_IDLE_MS}). */
  idleMs?: number;
  /** Pin the SQ thread to this CPU (`IORING_SETUP_SQ_AFF`): 0 to 4095. */
  cpu?: number;
}

/** `waitCqe()`'s options when none are given. */
const NO_WAIT_OPTIONS: WaitOptions = Object.freeze({});

/** Options of {@link IoUring}. */
export interface IoUringOptions {
  /**
   * Kernel-side submission polling (`IORING_SETUP_SQPOLL`). Default: on, falling back to a plain
   * ring (reported by `ring.sqpoll === false`) if the kernel refuses it (`EPERM`, `EACCES`, `EINVAL`) or
   * cannot start its thread (`EAGAIN`: the user's process limit, or a cgroup's). `true` or an object
   * insists: a refusal then throws. `false` turns it off.
   */
  sqpoll?: boolean | SqpollOptions;
  /** CQ size (`IORING_SETUP_CQSIZE`); default twice the SQ size. Must be ≥ the SQ size. */
  cqEntries?: number;
  /** Busy-poll completions (`IORING_SETUP_IOPOLL`, O_DIRECT on devices with poll queues only). */
  iopoll?: boolean;
  /**
   * Keep the SQ index array (the ring layout before Linux 6.6). Default `false`: the ring asks
   * for `IORING_SETUP_NO_SQARRAY`, so the kernel reads each SQE at its ring position without
   * first loading its index from the array (as liburing 2.6 and later do), and a kernel before
   * 6.6, which refuses the flag with `EINVAL`, gets a ring with the array. Naming the flag in
   * `flags` insists on it (no retry).
   */
  sqArray?: boolean;
  /**
   * Register the ring's fd in the creating thread's table of rings
   * (`IORING_REGISTER_RING_FDS`), so that this thread's `io_uring_enter` calls name the ring by
   * its index (`IORING_ENTER_REGISTERED_RING`) and the kernel skips looking the fd up (~15% more
   * batch-1 NOP round trips here). Default `true`; a kernel before 5.18, or a thread that has 16
   * rings registered already, keeps the fd. See {@link IoUring.ringIndex}.
   */
  registerRing?: boolean;
  /**
   * Without SQPOLL: ask the kernel not to interrupt the submitting thread when another thread (an
   * io-wq worker, a poll wake-up) finishes one of its operations (`IORING_SETUP_COOP_TASKRUN` and
   * `IORING_SETUP_TASKRUN_FLAG`, 5.19). Such completions are posted when the thread next enters
   * the kernel, and the kernel flags them (`IORING_SQ_TASKRUN`): `peekCqe`, `peekBatch`,
   * `forEachCqe`, `forEachCompletion`, `waitCqe` and `waitAsync` then enter once to collect them,
   * as they do for overflowed completions, so none is missed. A loop that only watches
   * `cqReady()` sees them late (at the thread's next system call or timer tick). On a busy thread
   * the interruptions cost ~8% of a tree copy's CPU here (`Uring` sets this). Default `false`.
   * Ignored under SQPOLL (the kernel refuses the flags there; its own thread runs that work), and
   * a kernel before 5.19 gets a ring without them (`params.flags` tells).
   */
  coopTaskrun?: boolean;
  /**
   * 128-byte SQEs (`IORING_SETUP_SQE128`, 5.19): each SQE's command area grows from 16 to 80
   * bytes, as `IORING_OP_URING_CMD` needs for NVMe passthrough and ublk (see `prepUringCmd`,
   * `Sqe.cmdOffset`). Every other opcode works as on a ring of 64-byte SQEs; the SQE memory
   * doubles. Default `false`.
   */
  sqe128?: boolean;
  /**
   * 32-byte CQEs (`IORING_SETUP_CQE32`, 5.19): each completion carries two more 64-bit words,
   * read as `Cqe.extra1`/`extra2` (`forEachCompletion` does not pass them), which NVMe
   * passthrough fills and a NOP can (`prepNopCqe32`). Default `false`.
   */
  cqe32?: boolean;
  /**
   * Raw `IORING_SETUP_*` flags added to those the options imply (`SQE128` and `CQE32` here do
   * what `sqe128` and `cqe32` do). Flags that change the ring's memory layout in ways this ring
   * does not read (`NO_MMAP`, `REGISTERED_FD_ONLY`, `CQE_MIXED`, `SQE_MIXED`, `SQ_REWIND`) are
   * refused with a `RangeError`, as are bits this ring does not know (past `SQ_REWIND`: one may
   * change the layout too) and combinations the kernel always refuses:
   * `TASKRUN_FLAG` without `COOP_TASKRUN` or `DEFER_TASKRUN`, `DEFER_TASKRUN` without
   * `SINGLE_ISSUER`, and any of those three with an insisted `sqpoll` (with the default `sqpoll`
   * the kernel refuses SQPOLL for them, and `sqpollFallbackReason` says why). Flags that
   * contradict an option are refused too (`SQPOLL` with `sqpoll: false`, `IOPOLL` with
   * `iopoll: false`, `NO_SQARRAY` with `sqArray: true`, `CQSIZE` without `cqEntries`; `SQPOLL`
   * named here insists on it, as `sqpoll: true` does), and `SQ_AFF` and `ATTACH_WQ`, which
   * `sqpoll.cpu` and `attachTo` set. `DEFER_TASKRUN` brings `TASKRUN_FLAG` with it, so the
   * reapers that peek see completions whose task work waits for this thread.
   */
  flags?: number;
  /** Force a system-layer backend (default: `URING_BACKEND`, else the helper when built). */
  backend?: Backend;
  /**
   * Share the SQ poll thread of another SQPOLL ring of this process instead of starting one
   * (`IORING_SETUP_ATTACH_WQ`, 5.11): one thread then polls both rings, so several rings cost one
   * core rather than one each. Both rings must use SQPOLL (this one must not be `sqpoll: false`,
   * and a refusal of SQPOLL is then an error, not a fallback). The thread keeps the first ring's
   * CPU (`sqpoll.cpu` is refused here) and idles for the longest `idleMs` of the rings sharing it
   * (by default this ring asks for the other's); it runs until the last of them closes. Such a
   * thread takes 8 SQEs of a ring per pass and cuts a chain that crosses a pass's end: see
   * {@link IoUring.sharesSqThread}.
   */
  attachTo?: IoUring;
}

/** What `io_uring_setup` reported, decoded from `struct io_uring_params`. */
export interface RingParams {
  /** SQ entries (the requested size rounded up to a power of two). */
  readonly sqEntries: number;
  /** CQ entries. */
  readonly cqEntries: number;
  /** The `IORING_SETUP_*` flags the ring was created with. */
  readonly flags: number;
  /** `IORING_FEAT_*` bits the kernel supports. */
  readonly features: number;
  /** SQ thread idle time in ms (SQPOLL only). */
  readonly sqThreadIdle: number;
  /** SQ thread CPU (with `IORING_SETUP_SQ_AFF`). */
  readonly sqThreadCpu: number;
}

/** Counts of `io_uring_enter` calls, split by why they were made. */
export interface EnterStats {
  /**
   * Calls that submitted SQEs (no SQPOLL), or had the kernel post completions it held (overflowed,
   * or cooperative task work: `IoUringOptions.coopTaskrun`).
   */
  submit: number;
  /** Calls that only woke a sleeping SQ poll thread (`IORING_ENTER_SQ_WAKEUP`). */
  wakeup: number;
  /** Calls that waited for (or, with IOPOLL, polled for) completions. */
  wait: number;
}

/** Options of {@link IoUring.waitCqe}. */
export interface WaitOptions {
  /**
   * Give up after this many milliseconds (a finite number ≥ 0; left out, the wait has no limit)
   * and return `null` (needs 5.11's EXT_ARG).
   */
  timeoutMs?: number;
  /**
   * `waitCqe` only: wait until at least this many completions are ready (1 to `cqEntries`;
   * default 1), as liburing's `io_uring_wait_cqes` does, and return the oldest.
   */
  count?: number;
}

const EINTR = errno("EINTR");
const ETIME = errno("ETIME");
const EAGAIN = errno("EAGAIN");
const EBUSY = errno("EBUSY");
const EPERM = errno("EPERM");
const EACCES = errno("EACCES");
const EINVAL = errno("EINVAL");
/**
 * A polled ring without SQPOLL: its kernel wait polls and returns at once when nothing is on
 * the poll list (nothing in flight, or all of it punted to io-wq). The waits then back off, from
 * `POLL_BACKOFF_MIN_MS` doubling to `POLL_BACKOFF_MAX_MS`, instead of spinning a core.
 */
const POLL_BACKOFF_MIN_MS = 0.02, POLL_BACKOFF_MAX_MS = 1;

/** A polled wait's next sleep after one of `ms` (0: none yet): see `POLL_BACKOFF_MIN_MS`. */
function nextPollBackoff(ms: number): number {
  return ms === 0 ? POLL_BACKOFF_MIN_MS : Math.min(ms * 2, POLL_BACKOFF_MAX_MS);
}
/**
 * The error for a wait on a polled ring without SQPOLL for `wanted` completions while `ready`
 * (fewer) are ready: the kernel does not poll the device while any completion waits in the CQ
 * (`io_iopoll_check`), so the rest could never come before the program reaps.
 */
function stalledPolledWait(what: string, ready: number, wanted: number): Error {
  return new Deno.errors.Busy(
    `${what}: ${ready} of the ${wanted} completions waited for are ready, and a polled ring ` +
      "(IOPOLL without SQPOLL) does not poll the device while any completion waits in the CQ: " +
      "the rest could never come. Reap the ready ones first (cqAdvance), then wait for the rest",
  );
}
/** What a polled ring's `waitCqe` sleeps on (`Atomics.wait` with a timeout; nothing wakes it). */
const BACKOFF_WORD = new Int32Array(new SharedArrayBuffer(4));
/** The longest single thread-pool call of `waitAsync` (a closed ring's waits end within it). */
const ASYNC_WAIT_MAX_MS = 1000;
/** The flags `IoUringOptions.coopTaskrun` asks for. */
const COOP_FLAGS = abi.IORING_SETUP_COOP_TASKRUN | abi.IORING_SETUP_TASKRUN_FLAG;
/** SQ flags that mean the kernel holds completions an `io_uring_enter(GETEVENTS)` would post. */
const HELD_COMPLETIONS = abi.IORING_SQ_CQ_OVERFLOW | abi.IORING_SQ_TASKRUN;

// SQE word indexes the one-call preps write, as module constants (V8 folds them; `W.x` is a load).
const SQE_WORDS = abi.SQE_SIZE / 4;
const HEAD = W.head, FD = W.fd, OFF_LO = W.offLo, ADDR_LO = W.addrLo;
const ADDR_HI = W.addrHi, LEN = W.len, OP_FLAGS = W.opFlags, USER_LO = W.userLo;
const TWO_32 = 0x1_0000_0000;
const INV_TWO_32 = 1 / TWO_32;
const CQE_WORDS = abi.CQE_SIZE / 4, CQE_USER_LO = abi.CQE.userData / 4, CQE_USER_HI = CQE_USER_LO + 1;
const CQE_RES = abi.CQE.res / 4, CQE_FLAGS = abi.CQE.flags / 4;
const OP_READ = abi.IORING_OP_READ, OP_WRITE = abi.IORING_OP_WRITE;

/**
 * Whether a setup with SQPOLL failed for SQPOLL's sake, so that a plain ring may work: `EPERM`
 * (unprivileged before 5.13), `EACCES` (SELinux's `io_uring { sqpoll }` permission), `EINVAL` (a
 * flag or CPU refused) or `EAGAIN` (its kernel thread could not be started: `RLIMIT_NPROC` or a
 * cgroup's pids limit).
 */
function isSqpollRefusal(e: unknown): boolean {
  return e instanceof IoUringError &&
    (e.errno === EPERM || e.errno === EACCES || e.errno === EINVAL || e.errno === EAGAIN);
}

/**
 * Setup flags this ring refuses (`IoUringOptions.flags`): they change the memory layout in ways
 * it does not read (SQEs of one size, CQEs of one size, rings it maps itself from its fd):
 * `IORING_SETUP_NO_MMAP`, `REGISTERED_FD_ONLY`, `CQE_MIXED` (6.18), `SQE_MIXED` and `SQ_REWIND`
 * (the kernel would take SQEs from slot 0 on each submit, ignoring the head and tail this ring
 * keeps). Bits past the last flag this ring knows ({@link KNOWN_SETUP_FLAGS}) are refused too:
 * a flag it does not know may change the layout as well.
 */
const LAYOUT_FLAGS = abi.IORING_SETUP_NO_MMAP | abi.IORING_SETUP_REGISTERED_FD_ONLY |
  abi.IORING_SETUP_CQE_MIXED |
  abi.IORING_SETUP_SQE_MIXED | abi.IORING_SETUP_SQ_REWIND;

/** The `IORING_SETUP_*` flags this ring knows: bits 0 (`IOPOLL`) to 20 (`SQ_REWIND`). */
const KNOWN_SETUP_FLAGS = abi.IORING_SETUP_SQ_REWIND * 2 - 1;

/**
 * Why raw setup `flags` contradict an option, or undefined: `CQSIZE` without `cqEntries` (the
 * kernel would read a CQ size of 0), `SQPOLL` with `sqpoll: false` (a thread idling for the
 * kernel's default second), `SQ_AFF` and `ATTACH_WQ` (their CPU and ring come from `sqpoll.cpu`
 * and `attachTo`; in `flags` alone the kernel would read 0 for them), `IOPOLL` with
 * `iopoll: false`, `NO_SQARRAY` with `sqArray: true`.
 */
function contradictedOption(
  flags: number,
  options: { iopoll?: boolean; sqArray?: boolean; cqEntries?: number },
  sqpollOff: boolean,
): string | undefined {
  if ((flags & abi.IORING_SETUP_CQSIZE) && options.cqEntries === undefined) {
    return "IORING_SETUP_CQSIZE: give the CQ size as cqEntries";
  }
  if ((flags & abi.IORING_SETUP_SQPOLL) && sqpollOff) return "IORING_SETUP_SQPOLL contradicts sqpoll: false";
  if (flags & abi.IORING_SETUP_SQ_AFF) return "IORING_SETUP_SQ_AFF: pin the SQ thread with sqpoll: { cpu }";
  if (flags & abi.IORING_SETUP_ATTACH_WQ) {
    return "IORING_SETUP_ATTACH_WQ: share a ring's SQ thread with attachTo";
  }
  if ((flags & abi.IORING_SETUP_IOPOLL) && options.iopoll === false) {
    return "IORING_SETUP_IOPOLL contradicts iopoll: false";
  }
  if ((flags & abi.IORING_SETUP_NO_SQARRAY) && options.sqArray === true) {
    return "IORING_SETUP_NO_SQARRAY contradicts sqArray: true";
  }
  return undefined;
}

/** Task-work flags the kernel refuses together with `IORING_SETUP_SQPOLL` (`EINVAL`). */
const NOT_WITH_SQPOLL = abi.IORING_SETUP_COOP_TASKRUN | abi.IORING_SETUP_TASKRUN_FLAG |
  abi.IORING_SETUP_DEFER_TASKRUN;

/**
 * Why the kernel would refuse raw setup `flags` with `EINVAL` whatever else is asked: one of them
 * needs another that is missing. `coop`: `coopTaskrun` asks for `COOP_TASKRUN` (added whenever
 * `TASKRUN_FLAG` is named: that rules SQPOLL out); `iopoll`: `iopoll: true` asks for `IOPOLL`.
 * Undefined if none.
 */
function missingCompanion(flags: number, coop: boolean, iopoll: boolean): string | undefined {
  if (
    (flags & abi.IORING_SETUP_TASKRUN_FLAG) && !coop &&
    !(flags & (abi.IORING_SETUP_COOP_TASKRUN | abi.IORING_SETUP_DEFER_TASKRUN))
  ) {
    return "IORING_SETUP_TASKRUN_FLAG needs IORING_SETUP_COOP_TASKRUN or IORING_SETUP_DEFER_TASKRUN";
  }
  if ((flags & abi.IORING_SETUP_DEFER_TASKRUN) && !(flags & abi.IORING_SETUP_SINGLE_ISSUER)) {
    return "IORING_SETUP_DEFER_TASKRUN needs IORING_SETUP_SINGLE_ISSUER";
  }
  if ((flags & abi.IORING_SETUP_HYBRID_IOPOLL) && !iopoll && !(flags & abi.IORING_SETUP_IOPOLL)) {
    return "IORING_SETUP_HYBRID_IOPOLL needs a polled ring (iopoll: true)";
  }
  return undefined;
}

/**
 * One io_uring instance: `new IoUring(entries, options)` sets it up and maps its rings;
 * `getSqe`, a `prep*` helper and `submit` queue work; `peekCqe`/`waitCqe` and `cqAdvance` reap
 * it. SQPOLL is on by default, so a submit is usually a store to the SQ tail and no system call.
 * Since 5.1 (SQPOLL without fixed files: 5.11).
 */
export class IoUring implements Disposable {
  /** The ring's file descriptor. */
  readonly fd: number;
  /** What the kernel reported at setup. */
  readonly params: RingParams;
  /** `IORING_FEAT_*` bits (same as `params.features`). */
  readonly features: number;
  /** Whether the kernel polls the SQ (`IORING_SETUP_SQPOLL`) for this ring. */
  readonly sqpoll: boolean;
  /** Whether the ring was set up with `IORING_SETUP_IOPOLL`. */
  readonly iopoll: boolean;
  /** Why SQPOLL is off although it was the default, or `undefined`. */
  readonly sqpollFallbackReason: string | undefined;
  /** `io_uring_enter` calls made, by reason. */
  readonly stats: EnterStats = { submit: 0, wakeup: 0, wait: 0 };
  /** The system-layer backend in use. */
  readonly backend: Backend;

  readonly #sys: Sys;
  #closed = false;
  /** Inside `forEachCqe`/`forEachCompletion` (they may not be nested: see {@link IoUring.#startReap}). */
  #reaping = false;
  /** `close()` was called from a reaping callback: the ring is released when the reap ends. */
  #closeWhenReaped = false;
  /** Whether an SQ thread serves this ring and another (see {@link IoUring.sharesSqThread}). */
  #sharesSqThread = false;
  /** `waitAsync` calls in progress on the thread pool. */
  #asyncWaits = 0;
  /**
   * What this thread's `io_uring_enter` calls name the ring by: its registered index with
   * `IORING_ENTER_REGISTERED_RING`, else the fd and no flag. Waits run on Deno's thread pool
   * (`waitAsync`), where the index means nothing, name the fd.
   */
  #enterFd: number;
  #enterFlag = 0;
  /** The fd, mappings and registration: released by close(), or by the GC (see ring_hold.ts). */
  #hold: RingHold;

  // SQ ring
  #sq: Uint32Array; // the SQ ring as u32 words
  readonly #sqHead: number; // word indexes into #sq
  readonly #sqTail: number;
  readonly #sqFlags: number;
  readonly #sqDropped: number;
  readonly #sqMask: number;
  readonly #sqEntries: number;
  #sqes: Sqe[];
  /** 1 when SQEs are 128 bytes (`sqe128`), else 0: an SQE's first 64-byte unit is its slot << this. */
  readonly #sqeShift: number;
  /** All SQEs as 8-byte words (getSqe zeroes through it). */
  #sqeF64: Float64Array = new Float64Array(0);
  /** All SQEs as u32 words (the one-call preps write through it). */
  #sqeU32: Uint32Array = new Uint32Array(0);
  #sqeTail = 0; // next SQE to hand out (private tail)
  #sqePublished = 0; // last tail stored to the kernel
  #sqHeadCache = 0; // last kernel head seen

  // CQ ring
  #cq: Uint32Array;
  #cqesU32: Uint32Array;
  #cqesI32: Int32Array;
  readonly #cqHead: number;
  readonly #cqTail: number;
  readonly #cqOverflow: number;
  readonly #cqMask: number;
  readonly #cqEntries: number;
  #cqes: Cqe[];
  /** 1 when CQEs are 32 bytes (`cqe32`), else 0: a CQE's first 16-byte unit is its slot << this. */
  readonly #cqeShift: number;
  #cqHeadLocal = 0;

  /** The registered buffer table by slot, or `undefined`: none. */
  #bufferTable: readonly ArrayBufferView[] | undefined;
  /**
   * Buffers taken out of the table (`registerBuffersUpdate`, `cloneBuffersFrom` with `replace`,
   * `unregisterBuffers`): requests in flight may still use them, and nothing tells the ring when
   * they stop (since 6.13 the kernel's unregister does not wait for them either), so they stay
   * referenced until the ring closes.
   */
  #retiredBuffers = new Set<ArrayBufferLike>(); // (their memory: the views need not be kept)
  #registeredFiles = 0;

  /**
   * Sets up a ring of `entries` SQEs (1..32768; the kernel rounds up to a power of two, see
   * `params.sqEntries`) and maps it.
   */
  constructor(entries: number, options: IoUringOptions = {}) {
    const diesWithThread = nextDiesWithThread; // (first: taken before any caller's code can run)
    nextDiesWithThread = false;
    options ??= {}; // null: the defaults
    checkOptionsObject(options);
    const flagsGiven = options?.flags;
    // IORING_SETUP_CLAMP: sizes past the kernel's largest become the largest, as the kernel does.
    const clamp = typeof flagsGiven === "number" && (flagsGiven & abi.IORING_SETUP_CLAMP) !== 0;
    if (clamp && Number.isInteger(entries) && entries > MAX_ENTRIES) entries = MAX_ENTRIES;
    if (!Number.isInteger(entries) || entries < 1 || entries > MAX_ENTRIES) {
      throw badNumber(
        entries,
        `entries must be an integer from 1 to ${MAX_ENTRIES} (any larger with IORING_SETUP_CLAMP), got ${
          shown(entries)
        }`,
      );
    }
    // Each option read once, here: a getter must not answer one thing to the checks and another
    // to the kernel (`flags` answering 0, then IORING_SETUP_CQE32, got a ring whose 32-byte
    // completions were read as 16-byte ones).
    options = {
      sqpoll: options.sqpoll,
      cqEntries: clamp && Number.isInteger(options.cqEntries) && options.cqEntries! > MAX_CQ_ENTRIES
        ? MAX_CQ_ENTRIES
        : options.cqEntries,
      iopoll: options.iopoll,
      sqArray: options.sqArray,
      registerRing: options.registerRing,
      coopTaskrun: options.coopTaskrun,
      sqe128: options.sqe128,
      cqe32: options.cqe32,
      flags: flagsGiven,
      backend: options.backend,
      attachTo: options.attachTo,
    };
    for (const name of ["iopoll", "sqArray", "registerRing", "coopTaskrun", "sqe128", "cqe32"] as const) {
      const value = options[name];
      if (value !== undefined && typeof value !== "boolean") {
        throw new TypeError(`${name} must be true or false, got ${shown(value)}`);
      }
    }
    const sqpollOption = options.sqpoll ?? undefined;
    const sqpollNotObject = typeof sqpollOption === "boolean" ? null : notAnOptionsObject(sqpollOption);
    if (sqpollNotObject !== null) {
      throw new TypeError(`sqpoll must be true, false or { idleMs, cpu }, got ${sqpollNotObject}`);
    }
    const attachTo = options.attachTo;
    if (attachTo !== undefined) {
      if (!(attachTo instanceof IoUring)) {
        throw new TypeError(`attachTo must be an IoUring, got ${shown(attachTo)}`);
      }
      attachTo.#assertOpen();
      if (!attachTo.sqpoll) {
        throw new RangeError(
          "attachTo shares an SQ poll thread, and that ring has none (it runs without SQPOLL)",
        );
      }
      if (sqpollOption === false) throw new RangeError("attachTo shares an SQ poll thread: it needs SQPOLL");
      if (typeof sqpollOption === "object" && sqpollOption !== null && sqpollOption.cpu !== undefined) {
        throw new RangeError(
          "attachTo shares the other ring's SQ poll thread, on its CPU: sqpoll.cpu cannot apply",
        );
      }
    }
    const wantSqpoll = sqpollOption !== false;
    // Attached, the thread is the other ring's: without it the option means nothing, so no fallback.
    // (SQPOLL named in raw `flags` insists too: a fallback would name it again.)
    const rawSqpoll = typeof options.flags === "number" && (options.flags & abi.IORING_SETUP_SQPOLL) !== 0;
    const insist = sqpollOption === true || typeof sqpollOption === "object" || attachTo !== undefined ||
      rawSqpoll;
    const sqpollSettings: SqpollOptions = typeof sqpollOption === "object"
      ? { idleMs: sqpollOption.idleMs, cpu: sqpollOption.cpu } // read once, as above
      : {};
    if (sqpollSettings.idleMs !== undefined) {
      const idleMs: unknown = sqpollSettings.idleMs;
      if (typeof idleMs !== "number" || !Number.isInteger(idleMs) || idleMs < 1 || idleMs > 0xffffffff) {
        // (Not 0: the kernel takes 0 as "its default": the thread would spin for a second.)
        const zero = idleMs === 0 ? " (the kernel takes 0 as its default, 1000 ms)" : "";
        throw badNumber(
          idleMs,
          `sqpoll.idleMs must be an integer from 1 to 4294967295${zero}, got ${shown(idleMs)}`,
        );
      }
    }
    if (sqpollSettings.cpu !== undefined) checkU32(sqpollSettings.cpu, "sqpoll.cpu", 4095);
    const cq = options.cqEntries;
    if (cq !== undefined && !(Number.isInteger(cq) && cq >= entries && cq <= MAX_CQ_ENTRIES)) {
      throw badNumber(
        cq,
        `cqEntries must be an integer from ${entries} (at least entries) to ${MAX_CQ_ENTRIES}, got ${
          shown(cq)
        }`,
      );
    }
    if (options.flags !== undefined) {
      checkU32(options.flags, "flags");
      const unknown = options.flags & ~KNOWN_SETUP_FLAGS;
      if (unknown !== 0) {
        throw new RangeError(
          `flags 0x${(unknown >>> 0).toString(16)} are no IORING_SETUP_* flags this ring knows ` +
            `(bits 0 to 20, IORING_SETUP_IOPOLL to IORING_SETUP_SQ_REWIND): one it does not know may ` +
            "change the ring's layout",
        );
      }
      const layout = options.flags & LAYOUT_FLAGS;
      if (layout !== 0) {
        throw new RangeError(
          `flags 0x${layout.toString(16)} are not supported: this ring has SQEs of one size and CQEs of ` +
            "one size in memory it maps itself, at positions its head and tail say (NO_MMAP, " +
            "REGISTERED_FD_ONLY, CQE_MIXED, SQE_MIXED and SQ_REWIND change that; for 128-byte SQEs or " +
            "32-byte CQEs pass sqe128 or cqe32)",
        );
      }
      const contradiction = contradictedOption(options.flags, options, sqpollOption === false);
      if (contradiction !== undefined) throw new RangeError(`flags: ${contradiction}`);
    }
    const rawFlags = options.flags ?? 0;
    const companion = missingCompanion(rawFlags, options.coopTaskrun === true, options.iopoll === true);
    if (companion !== undefined) throw new RangeError(`flags: ${companion}`);
    // Task-work flags rule SQPOLL out: an insisted SQPOLL is a contradiction; a default one is
    // refused by the kernel, and the fallback reason says why.
    const noSqpoll = (rawFlags & NOT_WITH_SQPOLL) !== 0
      ? `flags 0x${(rawFlags & NOT_WITH_SQPOLL).toString(16)} (COOP_TASKRUN, TASKRUN_FLAG or ` +
        "DEFER_TASKRUN), which the kernel refuses together with SQPOLL"
      : undefined;
    if (noSqpoll !== undefined && insist) {
      throw new RangeError(
        attachTo !== undefined
          ? `attachTo shares an SQ poll thread, so it cannot be combined with ${noSqpoll}`
          : `sqpoll cannot be combined with ${noSqpoll}: pass sqpoll: false`,
      );
    }
    this.#sys = getSys(options.backend);
    this.backend = this.#sys.backend;

    let baseFlags = options.flags ?? 0;
    // With DEFER_TASKRUN the kernel runs completions' task work only inside this thread's waits:
    // TASKRUN_FLAG makes it say when some is pending, so a reaper that only peeks enters for it
    // (see #refill) instead of never seeing those completions.
    if (baseFlags & abi.IORING_SETUP_DEFER_TASKRUN) baseFlags |= abi.IORING_SETUP_TASKRUN_FLAG;
    if (options.iopoll) baseFlags |= abi.IORING_SETUP_IOPOLL;
    if (options.sqe128) baseFlags |= abi.IORING_SETUP_SQE128;
    if (options.cqe32) baseFlags |= abi.IORING_SETUP_CQE32;
    if (options.cqEntries !== undefined) baseFlags |= abi.IORING_SETUP_CQSIZE;
    const params = new Uint8Array(abi.PARAMS_SIZE);
    const pv = new DataView(params.buffer);
    // Without the SQ index array unless asked to keep it; EINVAL (a kernel before 6.6) retries with
    // it, unless the caller named the flag.
    const dropSqArray = options.sqArray !== true && (baseFlags & abi.IORING_SETUP_NO_SQARRAY) === 0;
    const setupOnce = (sqpoll: boolean, flags: number, pin = true): number => {
      params.fill(0);
      if (sqpoll) {
        flags |= abi.IORING_SETUP_SQPOLL;
        if (attachTo !== undefined) {
          flags |= abi.IORING_SETUP_ATTACH_WQ;
          pv.setUint32(abi.PARAMS.wqFd, attachTo.fd, true);
        }
        // Attached, the thread idles for the longest idle of its rings: by default this one asks
        // for the other ring's, so attaching changes nothing.
        const idleMs = sqpollSettings.idleMs ?? attachTo?.params.sqThreadIdle ?? DEFAULT_SQPOLL_IDLE_MS;
        pv.setUint32(abi.PARAMS.sqThreadIdle, idleMs, true);
        if (sqpollSettings.cpu !== undefined && pin) {
          flags |= abi.IORING_SETUP_SQ_AFF;
          pv.setUint32(abi.PARAMS.sqThreadCpu, sqpollSettings.cpu, true);
        }
      }
      pv.setUint32(abi.PARAMS.flags, flags >>> 0, true);
      if (options.cqEntries !== undefined) pv.setUint32(abi.PARAMS.cqEntries, options.cqEntries, true);
      return this.#sys.setup(entries, params);
    };
    // Cooperative task work, unless the kernel (before 5.19) refuses it: tried after the SQ array.
    const coop = options.coopTaskrun === true ? COOP_FLAGS : 0;
    const setup = (sqpoll: boolean): number => {
      const extra = sqpoll ? 0 : coop;
      let flags = (dropSqArray ? baseFlags | abi.IORING_SETUP_NO_SQARRAY : baseFlags) | extra;
      let fd = setupOnce(sqpoll, flags);
      if (fd === -EINVAL && dropSqArray) fd = setupOnce(sqpoll, flags = baseFlags | extra);
      if (fd === -EINVAL && extra !== 0) fd = setupOnce(sqpoll, flags = baseFlags);
      if (fd < 0) {
        const cpu = sqpollSettings.cpu;
        const pinned = `with IORING_SETUP_SQPOLL pinned to CPU ${cpu} (sqpoll.cpu)`;
        const detail = !sqpoll
          ? undefined
          : cpu === undefined
          ? "with IORING_SETUP_SQPOLL"
          : fd === -EINVAL && cpuRefused(flags)
          ? `${pinned}: the kernel refuses that CPU: it is not online, or not in this process's cpuset ` +
            `(this machine shows ${navigator.hardwareConcurrency} CPUs)`
          : pinned;
        throw new IoUringError("io_uring_setup", -fd, detail);
      }
      return fd;
    };
    // EINVAL has many causes: the CPU was the one when the same setup unpinned works (that ring
    // is closed at once; this runs only on the way to an error).
    const cpuRefused = (flags: number): boolean => {
      const fd = setupOnce(true, flags, false);
      if (fd < 0) return false;
      this.#sys.close(fd);
      return true;
    };

    let fd: number;
    let fallback: string | undefined;
    if (wantSqpoll) {
      try {
        fd = setup(true);
        const features = pv.getUint32(abi.PARAMS.features, true);
        if (!(features & abi.IORING_FEAT_SQPOLL_NONFIXED)) {
          // Before 5.11 SQPOLL works with fixed files only: not a general-purpose ring.
          this.#sys.close(fd);
          throw new IoUringError("io_uring_setup", EINVAL, "SQPOLL needs fixed files before Linux 5.11");
        }
      } catch (e) {
        if (insist || !isSqpollRefusal(e)) throw e;
        fallback = (e as Error).message + (noSqpoll === undefined ? "" : ` (asked for ${noSqpoll})`);
        fd = setup(false);
      }
    } else {
      fd = setup(false);
    }
    this.fd = fd;
    this.#hold = ringHold(this.#sys, fd);
    if (diesWithThread && this.#sys.mmapHeld !== undefined) threadBoundRings.add(this);
    this.#enterFd = fd;
    this.sqpollFallbackReason = fallback;
    if (attachTo !== undefined) this.#sharesSqThread = attachTo.#sharesSqThread = true;

    const p: RingParams = {
      sqEntries: pv.getUint32(abi.PARAMS.sqEntries, true),
      cqEntries: pv.getUint32(abi.PARAMS.cqEntries, true),
      flags: pv.getUint32(abi.PARAMS.flags, true),
      features: pv.getUint32(abi.PARAMS.features, true),
      sqThreadIdle: pv.getUint32(abi.PARAMS.sqThreadIdle, true),
      sqThreadCpu: pv.getUint32(abi.PARAMS.sqThreadCpu, true),
    };
    this.params = Object.freeze(p);
    this.features = p.features;
    this.sqpoll = (p.flags & abi.IORING_SETUP_SQPOLL) !== 0;
    this.iopoll = (p.flags & abi.IORING_SETUP_IOPOLL) !== 0;
    // From what the kernel answered (the flags went in, so the layout is theirs).
    this.#sqeShift = (p.flags & abi.IORING_SETUP_SQE128) !== 0 ? 1 : 0;
    this.#cqeShift = (p.flags & abi.IORING_SETUP_CQE32) !== 0 ? 1 : 0;
    const sqeSize = abi.SQE_SIZE << this.#sqeShift, cqeSize = abi.CQE_SIZE << this.#cqeShift;

    const sqOff = (field: number) => pv.getUint32(abi.PARAMS.sqOff + field, true);
    const cqOff = (field: number) => pv.getUint32(abi.PARAMS.cqOff + field, true);
    try {
      const sqArray = (p.flags & abi.IORING_SETUP_NO_SQARRAY) === 0;
      // Without the array the SQ ring ends at its last field (the kernel leaves `array` at 0).
      const sqRingSize = sqArray
        ? sqOff(abi.SQ_OFF.array) + p.sqEntries * 4
        : Math.max(sqOff(abi.SQ_OFF.flags), sqOff(abi.SQ_OFF.dropped), sqOff(abi.SQ_OFF.ringEntries)) + 4;
      const cqRingSize = cqOff(abi.CQ_OFF.cqes) + p.cqEntries * cqeSize;
      let sqRing: ArrayBuffer;
      let cqRing: ArrayBuffer;
      if (p.features & abi.IORING_FEAT_SINGLE_MMAP) {
        sqRing = cqRing = this.#map(Math.max(sqRingSize, cqRingSize), abi.IORING_OFF_SQ_RING);
      } else {
        sqRing = this.#map(sqRingSize, abi.IORING_OFF_SQ_RING);
        cqRing = this.#map(cqRingSize, abi.IORING_OFF_CQ_RING);
      }
      const sqesMem = this.#map(p.sqEntries * sqeSize, abi.IORING_OFF_SQES);

      this.#sq = new Uint32Array(sqRing);
      this.#sqHead = sqOff(abi.SQ_OFF.head) / 4;
      this.#sqTail = sqOff(abi.SQ_OFF.tail) / 4;
      this.#sqFlags = sqOff(abi.SQ_OFF.flags) / 4;
      this.#sqDropped = sqOff(abi.SQ_OFF.dropped) / 4;
      this.#sqMask = this.#sq[sqOff(abi.SQ_OFF.ringMask) / 4];
      this.#sqEntries = this.#sq[sqOff(abi.SQ_OFF.ringEntries) / 4];
      if (sqArray) {
        // The SQ index array maps ring position i to SQE slot i, once: the hot path never touches it.
        const array = sqOff(abi.SQ_OFF.array) / 4;
        for (let i = 0; i < this.#sqEntries; i++) this.#sq[array + i] = i;
      }
      this.#sqeTail = this.#sqePublished = this.#sqHeadCache = Atomics.load(this.#sq, this.#sqTail);

      const sqeU32 = new Uint32Array(sqesMem);
      const sqeU8 = new Uint8Array(sqesMem);
      const sqeF64 = new Float64Array(sqesMem);
      this.#sqeF64 = sqeF64;
      this.#sqeU32 = sqeU32;
      // (Plain loops: `Array.from` with a callback took twice as long, ~25 µs of a ring's ~150.)
      const sqes: Sqe[] = [];
      for (let i = 0; i < this.#sqEntries; i++) {
        sqes.push(new Sqe(sqeU32, sqeU8, i, sqeF64, sqeSize as 64 | 128));
      }
      this.#sqes = sqes;
      this.#hold.sqes = this.#sqes;

      this.#cq = new Uint32Array(cqRing);
      this.#cqHead = cqOff(abi.CQ_OFF.head) / 4;
      this.#cqTail = cqOff(abi.CQ_OFF.tail) / 4;
      this.#cqOverflow = cqOff(abi.CQ_OFF.overflow) / 4;
      this.#cqMask = this.#cq[cqOff(abi.CQ_OFF.ringMask) / 4];
      this.#cqEntries = this.#cq[cqOff(abi.CQ_OFF.ringEntries) / 4];
      const cqesOffset = cqOff(abi.CQ_OFF.cqes);
      this.#cqesU32 = new Uint32Array(cqRing, cqesOffset, this.#cqEntries * (cqeSize / 4));
      this.#cqesI32 = new Int32Array(cqRing, cqesOffset, this.#cqEntries * (cqeSize / 4));
      const cqes: Cqe[] = [];
      for (let i = 0; i < this.#cqEntries; i++) cqes.push(new Cqe());
      this.#cqes = cqes;
      this.#cqHeadLocal = Atomics.load(this.#cq, this.#cqHead);
    } catch (e) {
      releaseRing(this.#hold);
      throw e;
    }
    if (options.registerRing !== false) this.#registerRing();
    releaseWhenDropped(this, this.#hold);
  }

  /**
   * Registers the ring in this thread's ring table (5.18), the kernel picking the index; on any
   * refusal (an older kernel: EINVAL; 16 rings registered by this thread: EBUSY) the ring keeps
   * naming itself by its fd.
   */
  #registerRing(): void {
    const update = rsrcUpdate(0xffffffff, BigInt(this.fd)); // offset: any free index; data: the fd
    if (this.#sys.register(this.fd, abi.IORING_REGISTER_RING_FDS, update, 1) !== 1) return;
    this.#enterFd = new DataView(update.buffer).getUint32(0, true); // the index the kernel chose
    this.#enterFlag = abi.IORING_ENTER_REGISTERED_RING;
    this.#hold.enterIndex = this.#enterFd;
  }

  /**
   * Whether this ring's SQ thread serves another ring too: it was made with `attachTo`, or another
   * ring was attached to it (for the rest of its life, even once that one is closed). Such a
   * thread takes at most {@link SQ_THREAD_SHARED_BATCH} (8) SQEs of a ring per pass, and a chain
   * that pass cuts (a member with `IOSQE_IO_LINK` as the pass's last SQE) runs as two chains: the
   * members after the cut no longer wait for, nor fail with, those before it. Publish a chain only
   * when it fits in the thread's next pass: `sqReady() + members <= SQ_THREAD_SHARED_BATCH`
   * (`Uring` does). Since 5.11.
   */
  get sharesSqThread(): boolean {
    return this.#sharesSqThread;
  }

  /**
   * The ring's index in the creating thread's table of rings (`IORING_REGISTER_RING_FDS`, 5.18),
   * which that thread's `io_uring_enter` calls use in place of the fd; -1 when the ring is not
   * registered (`registerRing: false`, a kernel before 5.18, or 16 rings registered already).
   * The index means something only to `io_uring_enter` on that thread, with
   * `IORING_ENTER_REGISTERED_RING`.
   */
  get ringIndex(): number {
    return this.#enterFlag === 0 ? -1 : this.#enterFd;
  }

  #map(length: number, offset: number): ArrayBuffer {
    const held = threadBoundRings.has(this) ? this.#sys.mmapHeld : undefined;
    const address = held ? held(this.fd, length, offset) : this.#sys.mmap(this.fd, length, offset);
    if (address < 0) {
      throw new IoUringError("mmap", -address, `ring region at offset 0x${offset.toString(16)}`);
    }
    const pointer = Deno.UnsafePointer.create(BigInt(address))!;
    const memory = Deno.UnsafePointerView.getArrayBuffer(pointer, length);
    this.#hold.maps.push([address, length, memory]);
    return memory;
  }

  /**
   * Throws `BadResource` when the SQE memory was detached while the ring is open (a caller
   * transferred `sqe.u8.buffer`): SQEs written since went nowhere, and a submit would hand the
   * kernel the stale ones of an earlier lap.
   */
  #assertSqesAttached(): void {
    if (this.#sqeU32.length === 0) {
      throw new Deno.errors.BadResource(
        "the SQE memory of this ring was detached (sqe.u8.buffer or sqe.u32.buffer was transferred): " +
          "it cannot submit anymore; close it",
      );
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new ClosedError("IoUring");
  }

  /** Whether {@link IoUring.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of SQ entries (a power of two). */
  get sqEntries(): number {
    return this.#sqEntries;
  }

  /** Number of CQ entries (a power of two). */
  get cqEntries(): number {
    return this.#cqEntries;
  }

  /** True when the kernel supports every bit of `feature` (`IORING_FEAT_*`). */
  hasFeature(feature: number): boolean {
    return (this.features & feature) === feature;
  }

  // -------------------------------------------------------------------------------------------
  // Submission

  /**
   * A zeroed SQE to fill, or `null` when the SQ is full (every slot is queued or not yet consumed
   * by the kernel): submit, and with SQPOLL let the kernel thread catch up, then try again.
   * Never hands out a slot the kernel has not consumed. Allocates nothing. The slot is taken: if
   * the prep that fills it throws, it stays a zeroed SQE, which the next submit sends as a no-op
   * with `user_data` 0 (as liburing does); the `queue*` methods check first and take no slot.
   */
  getSqe(): Sqe | null {
    if (this.#closed) this.#assertOpen();
    const index = this.#take();
    return index < 0 ? null : this.#sqes[index];
  }

  /**
   * Takes the next SQE slot (never one the kernel has not consumed) and zeroes it, as
   * `Sqe.clear` does but without loading a handle's fields first; returns its index, or -1 when
   * the SQ is full.
   */
  #take(): number {
    const tail = this.#sqeTail;
    if (((tail - this.#sqHeadCache) >>> 0) >= this.#sqEntries) {
      this.#sqHeadCache = Atomics.load(this.#sq, this.#sqHead); // acquire: the kernel's progress
      if (((tail - this.#sqHeadCache) >>> 0) >= this.#sqEntries) return -1;
    }
    const index = tail & this.#sqMask;
    this.#sqeTail = (tail + 1) >>> 0;
    const shift = this.#sqeShift;
    zeroSqe(this.#sqeF64, index << shift);
    if (shift !== 0) zeroSqe(this.#sqeF64, (index << 1) + 1); // a 128-byte SQE's second half
    return index;
  }

  /**
   * Queues a NOP with `userData` in one call: the same SQE as
   * `prepNop(ring.getSqe()).setUserData(userData)`, without the per-call work of the handle.
   * Returns the SQE's handle (to add `IOSQE_*` flags) or `null` when the SQ is full, exactly as
   * `getSqe` does; a bad `userData` throws before a slot is taken. Allocates nothing. Since 5.1.
   */
  queueNop(userData: number | bigint): Sqe | null {
    if (this.#closed) this.#assertOpen();
    const small = typeof userData === "number" && userData >>> 0 === userData;
    if (!small) checkUserData(userData);
    const index = this.#take();
    if (index < 0) return null;
    const u32 = this.#sqeU32, b = (index << this.#sqeShift) * SQE_WORDS;
    u32[b + FD] = 0xffffffff; // fd -1, as prepNop writes; opcode NOP is 0: the zeroing wrote it
    if (small) u32[b + USER_LO] = userData as number; // the high word is already 0
    else writeU64(u32, b + USER_LO, userData);
    return this.#sqes[index];
  }

  /**
   * Queues `pread(fd, buf, buf.byteLength, offset)` with `userData` in one call: the same SQE as
   * `prepRead(ring.getSqe(), fd, buf, offset, rwFlags).setUserData(userData)`. Checks every
   * argument as `prepRead` does, before a slot is taken; returns the SQE's handle or `null` when
   * the SQ is full. `buf` must stay referenced until the completion. Allocates nothing (but for
   * a bigint `userData` or `offset` other than `-1n`).
   * Since 5.6.
   */
  queueRead(
    userData: number | bigint,
    fd: number,
    buf: ArrayBufferView,
    offset: Offset | -1,
    rwFlags = 0,
  ): Sqe | null {
    return this.#queueRw(OP_READ, userData, fd, buf, offset, rwFlags);
  }

  /**
   * Queues `pwrite(fd, buf, buf.byteLength, offset)` with `userData` in one call: the same SQE
   * as `prepWrite(ring.getSqe(), fd, buf, offset, rwFlags).setUserData(userData)`. Checks every
   * argument as `prepWrite` does, before a slot is taken; returns the SQE's handle or `null`
   * when the SQ is full. `buf` must stay referenced until the completion. Allocates nothing (but
   * for a bigint `userData` or `offset` other than `-1n`).
   * Since 5.6.
   */
  queueWrite(
    userData: number | bigint,
    fd: number,
    buf: ArrayBufferView,
    offset: Offset | -1,
    rwFlags = 0,
  ): Sqe | null {
    return this.#queueRw(OP_WRITE, userData, fd, buf, offset, rwFlags);
  }

  #queueRw(
    opcode: number,
    userData: number | bigint,
    fd: number,
    buf: ArrayBufferView,
    offset: Offset | -1,
    rwFlags: number,
  ): Sqe | null {
    if (this.#closed) this.#assertOpen();
    const small = typeof userData === "number" && userData >>> 0 === userData;
    if (!small) checkUserData(userData);
    if (!(typeof fd === "number" && (fd | 0) === fd && fd >= 0)) checkFd(fd);
    const length = bufferAddressed(buf);
    checkLength(length);
    const smallOffset = typeof offset === "number" && offset >>> 0 === offset;
    if (!smallOffset) checkOffsetOrPosition(offset, "offset");
    checkFlags(rwFlags, "rwFlags");
    const index = this.#take();
    if (index < 0) return null;
    const u32 = this.#sqeU32, b = (index << this.#sqeShift) * SQE_WORDS;
    u32[b + HEAD] = opcode;
    u32[b + FD] = fd;
    if (smallOffset) u32[b + OFF_LO] = offset as number;
    else writeU64(u32, b + OFF_LO, offset);
    const addr = ADDRESSED[0];
    const addrLo = addr >>> 0;
    u32[b + ADDR_LO] = addrLo;
    u32[b + ADDR_HI] = (addr - addrLo) * INV_TWO_32;
    u32[b + LEN] = length;
    u32[b + OP_FLAGS] = rwFlags;
    if (small) u32[b + USER_LO] = userData as number;
    else writeU64(u32, b + USER_LO, userData);
    return this.#sqes[index];
  }

  /**
   * SQEs handed out by `getSqe` and not yet consumed by the kernel. Under SQPOLL the kernel thread
   * moves the SQ head at the end of a batch, after posting the batch's completions: with every
   * completion reaped, the SQ may still read as full for a moment (`getSqe` then returns `null`).
   */
  sqReady(): number {
    this.#assertOpen();
    return (this.#sqeTail - Atomics.load(this.#sq, this.#sqHead)) >>> 0;
  }

  /**
   * Whether the SQ poll thread sleeps (`IORING_SQ_NEED_WAKEUP`): SQEs it has not taken stay in
   * the SQ until a `submit()` wakes it. Always false without SQPOLL. Since 5.1.
   */
  get sqThreadAsleep(): boolean {
    this.#assertOpen();
    return this.sqpoll && (Atomics.load(this.#sq, this.#sqFlags) & abi.IORING_SQ_NEED_WAKEUP) !== 0;
  }

  /** Free SQ slots: how many more `getSqe()` calls can succeed now. */
  sqSpaceLeft(): number {
    return this.#sqEntries - this.sqReady();
  }

  /** SQEs the kernel could not use (bad index): `sq_dropped`. */
  get sqDropped(): number {
    this.#assertOpen();
    return Atomics.load(this.#sq, this.#sqDropped);
  }

  /** Completions lost by a kernel without `IORING_FEAT_NODROP`: `cq_overflow`. */
  get cqOverflow(): number {
    this.#assertOpen();
    return Atomics.load(this.#cq, this.#cqOverflow);
  }

  /** The SQ ring flags (`IORING_SQ_*`) as the kernel last set them. */
  get sqFlags(): number {
    this.#assertOpen();
    return Atomics.load(this.#sq, this.#sqFlags);
  }

  /**
   * Publishes queued SQEs to the kernel with one tail store. Returns the number published.
   * The store is `Atomics.store`: sequentially consistent, so the SQE writes before it are
   * visible to the kernel (release) and loads after it cannot move before it.
   */
  #flush(): number {
    const tail = this.#sqeTail;
    const published = (tail - this.#sqePublished) >>> 0;
    if (published !== 0) {
      Atomics.store(this.#sq, this.#sqTail, tail);
      this.#sqePublished = tail;
    }
    return published;
  }

  /**
   * `#flush` for a ring without SQPOLL: there the kernel reads the SQ tail only inside our own
   * `io_uring_enter`, after this thread's earlier stores, so a plain store suffices (no `xchg`).
   */
  #flushLocal(): number {
    const tail = this.#sqeTail;
    const published = (tail - this.#sqePublished) >>> 0;
    if (published !== 0) {
      this.#sq[this.#sqTail] = tail;
      this.#sqePublished = tail;
    }
    return published;
  }

  /**
   * Publishes the SQEs handed out so far with one store of the SQ tail, and no system call.
   * Under SQPOLL a running kernel thread may start on them at once instead of waiting for the
   * rest of a burst; a sleeping one is woken only by {@link IoUring.submit}, so call that after
   * the burst. Without SQPOLL the kernel reads the tail only inside `io_uring_enter`, so this is
   * of no use there. A chain still being built (its last SQE so far carries `IOSQE_IO_LINK` or
   * `IOSQE_IO_HARDLINK`) is held back: the kernel thread would take its first members alone and
   * run them as a chain of their own, the rest separately. `submit()` publishes everything.
   * Returns the number published. Since 5.1.
   */
  flushSq(): number {
    if (this.#closed) this.#assertOpen();
    this.#assertSqesAttached();
    let tail = this.#sqeTail;
    const u32 = this.#sqeU32, mask = this.#sqMask, shift = this.#sqeShift;
    while (tail !== this.#sqePublished) {
      const head = u32[(((tail - 1) & mask) << shift) * SQE_WORDS + HEAD]; // opcode, flags, ioprio
      if (((head >>> 8) & (abi.IOSQE_IO_LINK | abi.IOSQE_IO_HARDLINK)) === 0) break;
      tail = (tail - 1) >>> 0;
    }
    const published = (tail - this.#sqePublished) >>> 0;
    if (published !== 0) {
      Atomics.store(this.#sq, this.#sqTail, tail);
      this.#sqePublished = tail;
    }
    return published;
  }

  /** One `io_uring_enter`, retried on EINTR; returns the result or a negative errno. */
  #enter(toSubmit: number, minComplete: number, flags: number): number {
    for (;;) {
      const r = this.#sys.enter(this.#enterFd, toSubmit, minComplete, flags | this.#enterFlag);
      if (r !== -EINTR) return r;
    }
  }

  /**
   * Publishes the queued SQEs and returns how many were published.
   *
   * Without SQPOLL this is one `io_uring_enter` (only when there is something to submit).
   * With SQPOLL it follows the kernel's protocol: store the tail, full fence, load the SQ flags;
   * only when the SQ thread sleeps (`IORING_SQ_NEED_WAKEUP`) call
   * `io_uring_enter(IORING_ENTER_SQ_WAKEUP)`. In both modes, when the kernel holds completions
   * (`IORING_SQ_CQ_OVERFLOW`, or `IORING_SQ_TASKRUN`: task work a `coopTaskrun` or
   * `DEFER_TASKRUN` ring runs only when asked), it also enters with `GETEVENTS` so they post.
   * Throws `IoUringError` `EBUSY` when an older kernel refuses to submit until the CQ is reaped;
   * the SQEs stay queued and the next submit sends them.
   */
  submit(): number {
    this.#assertOpen();
    this.#assertSqesAttached();
    const published = this.sqpoll ? this.#flush() : this.#flushLocal();
    if (this.sqpoll) {
      // The kernel sets NEED_WAKEUP, fences, then re-reads the tail before sleeping. We store the
      // tail, fence, then read the flag: one of the two sides must see the other's store.
      this.#sys.fence();
      const sqFlags = Atomics.load(this.#sq, this.#sqFlags);
      let enterFlags = 0;
      // Wake a sleeping thread only when it has work: SQEs it has not consumed yet.
      if (
        (sqFlags & abi.IORING_SQ_NEED_WAKEUP) && this.#sqeTail !== Atomics.load(this.#sq, this.#sqHead)
      ) {
        enterFlags |= abi.IORING_ENTER_SQ_WAKEUP;
      }
      if (sqFlags & HELD_COMPLETIONS) enterFlags |= abi.IORING_ENTER_GETEVENTS;
      if (enterFlags !== 0) {
        if (enterFlags & abi.IORING_ENTER_SQ_WAKEUP) this.stats.wakeup++;
        else this.stats.submit++;
        const r = this.#enter(0, 0, enterFlags);
        if (r < 0 && r !== -EBUSY && r !== -EAGAIN) throw new IoUringError("io_uring_enter", -r);
      }
      return published;
    }
    const pending = (this.#sqeTail - this.#sq[this.#sqHead]) >>> 0; // only our enter moves it
    let enterFlags = 0;
    // Completions the kernel holds (overflowed, or task work: a DEFER_TASKRUN ring runs it only
    // in an enter with GETEVENTS) come with every submit, as liburing's do: the reapers ask for
    // them only when the CQ is empty, which a loop whose CQ always holds something never sees.
    if (Atomics.load(this.#sq, this.#sqFlags) & HELD_COMPLETIONS) enterFlags = abi.IORING_ENTER_GETEVENTS;
    if (pending === 0 && enterFlags === 0) return published;
    this.stats.submit++;
    const r = this.#enter(pending, 0, enterFlags);
    if (r < 0) throw new IoUringError("io_uring_enter", -r, `submitting ${pending} SQEs`);
    if (r !== pending) this.#submitRest();
    return published;
  }

  /**
   * Submits the SQEs an `io_uring_enter` left in the SQ (no SQPOLL). The kernel stops a batch at
   * an SQE it refuses before running it (an unknown opcode or `IOSQE_*` bit, a personality it
   * does not know, an opcode a restricted ring forbids): it posts that SQE's failure and returns
   * the count so far, leaving the rest unsubmitted (and skipping the wait asked for). Without
   * this, nothing would submit them until the next submit, and a wait for their completions
   * would block for ever.
   */
  #submitRest(): void {
    for (;;) {
      const pending = (this.#sqeTail - this.#sq[this.#sqHead]) >>> 0; // only our enter moves it
      if (pending === 0) return;
      this.stats.submit++;
      const r = this.#enter(pending, 0, 0);
      if (r < 0) throw new IoUringError("io_uring_enter", -r, `submitting ${pending} SQEs`);
      if (r === 0) return; // (no progress: left for the next submit rather than spin)
    }
  }

  /**
   * Publishes the queued SQEs and waits until at least `waitNr` completions are ready (blocking
   * the thread). Without SQPOLL submit and wait are one system call. Returns the number
   * published. On a polled ring without SQPOLL the kernel does not poll while any completion is
   * in the CQ: a wait for more than are ready, with some ready, throws `Deno.errors.Busy`
   * (reap first); with none ready it polls, sleeping a little between polls as `waitCqe` does.
   */
  submitAndWait(waitNr: number): number {
    if (this.#closed) this.#assertOpen();
    this.#assertSqesAttached();
    if (!(waitNr >>> 0 === waitNr && waitNr <= this.#cqEntries)) checkU32(waitNr, "waitNr", this.#cqEntries);
    if (this.sqpoll || this.iopoll) {
      const published = this.submit();
      this.#waitFor(waitNr);
      return published;
    }
    const published = this.#flushLocal();
    // Without SQPOLL only our own io_uring_enter moves the SQ head: a plain load is exact.
    const pending = (this.#sqeTail - this.#sq[this.#sqHead]) >>> 0;
    if (pending === 0 && ((Atomics.load(this.#cq, this.#cqTail) - this.#cqHeadLocal) >>> 0) >= waitNr) {
      return published;
    }
    if (pending > 0) this.stats.submit++;
    else this.stats.wait++;
    const r = this.#enter(pending, waitNr, abi.IORING_ENTER_GETEVENTS);
    if (r < 0) {
      throw new IoUringError("io_uring_enter", -r, `submitting ${pending} and waiting for ${waitNr}`);
    }
    // The kernel returns without waiting when it stopped the batch at a refused SQE (see
    // #submitRest), and returns the count submitted, not EINTR, when a signal ends the wait
    // after a submission: then wait again, until the completions are there.
    if (r !== pending) this.#submitRest();
    // (A plain load: the kernel's stores before the system call returned are visible after it.)
    if (((this.#cq[this.#cqTail] - this.#cqHeadLocal) >>> 0) < waitNr) this.#waitFor(waitNr);
    return published;
  }

  /** Waits (blocking) until `n` completions are ready. */
  #waitFor(n: number): void {
    const polled = this.iopoll && !this.sqpoll;
    let backoff = 0; // (a polled ring's: see POLL_BACKOFF_MIN_MS)
    // The kernel counts `min_complete` from the CQ head, the completions ready already included:
    // asking for the `n - ready` still missing returned at once while half were there, and the
    // loop spun (810,000 enters in 100 ms under SQPOLL, with 2 of 3 ready).
    for (let ready = this.cqReady(); ready < n; ready = this.cqReady()) {
      if (polled) {
        if (ready > 0) throw stalledPolledWait("submitAndWait", ready, n);
        if (backoff !== 0) Atomics.wait(BACKOFF_WORD, 0, 0, backoff);
        backoff = nextPollBackoff(backoff);
      }
      this.stats.wait++;
      const r = this.#enter(0, n, abi.IORING_ENTER_GETEVENTS);
      if (r < 0) throw new IoUringError("io_uring_enter", -r, `waiting for ${n} completions`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Completion

  /** Completions ready to reap. */
  cqReady(): number {
    this.#assertOpen();
    return (Atomics.load(this.#cq, this.#cqTail) - this.#cqHeadLocal) >>> 0;
  }

  /**
   * The oldest unreaped completion, or `null` when none is ready. Does not consume it: call
   * `cqAdvance(1)` after use. When the CQ is empty but the kernel holds overflowed completions,
   * it has the kernel flush them first (one `io_uring_enter`), so none is ever lost. With IOPOLL
   * (and no SQPOLL, whose kernel thread polls) an empty CQ makes it poll the device once.
   */
  peekCqe(): Cqe | null {
    if (this.#closed || this.#reaping) this.#refuseReap("peekCqe");
    const head = this.#cqHeadLocal;
    if (Atomics.load(this.#cq, this.#cqTail) === head) {
      if (!this.#refill()) return null;
    }
    const index = head & this.#cqMask;
    const shift = this.#cqeShift;
    const cqe = this.#cqes[index].load(this.#cqesU32, this.#cqesI32, index << shift);
    return shift === 0 ? cqe : cqe.loadExtra(this.#cqesU32, index << 1);
  }

  /**
   * Brings in completions the kernel still holds (overflow list, cooperative task work, IOPOLL);
   * true if any arrived.
   */
  #refill(): boolean {
    const held = (Atomics.load(this.#sq, this.#sqFlags) & HELD_COMPLETIONS) !== 0;
    // IOPOLL without SQPOLL has no interrupts: only an enter(GETEVENTS) polls the device. With
    // SQPOLL the kernel thread polls and posts to the CQ itself (the kernel's GETEVENTS would
    // only wait), so an empty CQ there needs no system call.
    if (!held && (!this.iopoll || this.sqpoll)) return false;
    if (held) this.stats.submit++;
    else this.stats.wait++;
    const r = this.#enter(0, 0, abi.IORING_ENTER_GETEVENTS);
    if (r < 0 && r !== -EBUSY && r !== -EAGAIN) {
      throw new IoUringError("io_uring_enter", -r, "flushing completions");
    }
    return Atomics.load(this.#cq, this.#cqTail) !== this.#cqHeadLocal;
  }

  /**
   * Waits (blocking this thread) for a completion and returns it without consuming it, or
   * returns `null` when `timeoutMs` passed first; with `count`, waits until that many are ready.
   * Waits with a timeout need Linux 5.11 (`IORING_FEAT_EXT_ARG`). On a polled ring without
   * SQPOLL the kernel polls instead of sleeping, and returns at once when nothing is on its poll
   * list: the wait then sleeps a little between polls (20 µs, doubling to 1 ms), so a completion
   * may be seen up to a millisecond late. Nor does it poll while any completion is in the CQ: a
   * `count` wait with fewer (but some) ready throws `Deno.errors.Busy` (reap them first).
   */
  waitCqe(options: WaitOptions = NO_WAIT_OPTIONS): Cqe | null {
    options ??= NO_WAIT_OPTIONS; // null: the defaults (one object for every call: nothing allocated)
    const notObject = notAnOptionsObject(options);
    if (notObject !== null) {
      throw new TypeError(`waitCqe takes an options object ({ timeoutMs }), got ${notObject}`);
    }
    this.#refuseReap("waitCqe");
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined) {
      if (typeof timeoutMs !== "number" || !(timeoutMs >= 0) || timeoutMs === Infinity) {
        throw badNumber(
          timeoutMs,
          `timeoutMs must be a finite number of milliseconds ≥ 0 (leave it out to wait without a limit), got ${
            shown(timeoutMs)
          }`,
        );
      }
      if (!(this.features & abi.IORING_FEAT_EXT_ARG)) {
        throw new IoUringError("io_uring_enter", EINVAL, "timeouts need Linux 5.11 (IORING_FEAT_EXT_ARG)");
      }
    }
    const count = options.count ?? 1;
    if (count !== 1 && !(count >>> 0 === count && count >= 1 && count <= this.#cqEntries)) {
      checkU32(count, "count", this.#cqEntries, 1);
    }
    const deadline = timeoutMs === undefined ? 0 : performance.now() + timeoutMs;
    const polled = this.iopoll && !this.sqpoll;
    let backoff = 0; // (a polled ring's: see POLL_BACKOFF_MIN_MS)
    for (;;) {
      const cqe = this.#readyCqe(count);
      if (cqe) return cqe;
      if (polled && count > 1) {
        const ready = this.cqReady();
        if (ready > 0) throw stalledPolledWait("waitCqe", ready, count);
      }
      if (backoff !== 0) {
        const left = timeoutMs === undefined ? backoff : Math.min(backoff, deadline - performance.now());
        if (left > 0) Atomics.wait(BACKOFF_WORD, 0, 0, left);
        const again = this.#readyCqe(count);
        if (again) return again;
        if (timeoutMs !== undefined && performance.now() >= deadline) return null;
      }
      this.stats.wait++;
      let r: number;
      // (The kernel counts `count` from the CQ head: the completions ready now count too.)
      if (timeoutMs === undefined) {
        r = this.#sys.enter(this.#enterFd, 0, count, abi.IORING_ENTER_GETEVENTS | this.#enterFlag);
      } else {
        const left = deadline - performance.now();
        if (left <= 0) return this.#readyCqe(count);
        r = this.#sys.enterTimeout(
          this.#enterFd,
          0,
          count,
          abi.IORING_ENTER_GETEVENTS | this.#enterFlag,
          Math.min(Math.ceil(left * 1000), 0x7fffffff),
        );
      }
      // (A wait is capped at 2^31 - 1 µs, 35.8 minutes: its ETIME ends a longer one only at the
      // deadline, which the loop's top checks.)
      if (r === -ETIME) continue;
      if (r < 0 && r !== -EINTR && r !== -EBUSY && r !== -EAGAIN) {
        throw new IoUringError("io_uring_enter", -r, "waiting for a completion");
      }
      if (polled && r >= 0) {
        backoff = nextPollBackoff(backoff);
      }
    }
  }

  /**
   * The oldest completion once `count` are ready (after having the kernel flush any it holds),
   * else `null`; `peekCqe` for a count of 1.
   */
  #readyCqe(count: number): Cqe | null {
    if (count === 1) return this.peekCqe();
    if (this.cqReady() < count) this.#refill();
    return this.cqReady() >= count ? this.peekCqe() : null;
  }

  /**
   * Waits on Deno's thread pool (the event loop keeps running) until a completion may be ready
   * or `timeoutMs` passed (-1: no limit). Resolves with nothing; look with `peekCqe()` after.
   * `close()` ends it: it posts a no-op the wait returns for when nothing the caller queued is
   * still unsubmitted, and the thread-pool call never lasts more than a second either way (a
   * longer wait is several). Needs Linux 5.11 (`IORING_FEAT_EXT_ARG`). On a polled ring without
   * SQPOLL, whose kernel wait returns at once when nothing is on its poll list, it waits on a
   * timer between polls (1 ms) until a completion is ready or `timeoutMs` passed.
   */
  async waitAsync(timeoutMs: number): Promise<void> {
    this.#assertOpen();
    if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs)) {
      throw badNumber(
        timeoutMs,
        `timeoutMs must be a number of milliseconds (negative: no limit), got ${shown(timeoutMs)}`,
      );
    }
    if (!(this.features & abi.IORING_FEAT_EXT_ARG)) {
      throw new IoUringError(
        "io_uring_enter",
        EINVAL,
        "asynchronous waits need Linux 5.11 (IORING_FEAT_EXT_ARG)",
      );
    }
    if (this.params.flags & abi.IORING_SETUP_DEFER_TASKRUN) {
      throw new IoUringError(
        "io_uring_enter",
        errno("EEXIST"),
        "waitAsync waits on another thread, and a ring with IORING_SETUP_DEFER_TASKRUN lets only the " +
          "thread that submits wait: use waitCqe or submitAndWait",
      );
    }
    if (this.cqReady() > 0 || this.#refill()) return;
    const deadline = timeoutMs < 0 ? Infinity : performance.now() + timeoutMs;
    for (;;) {
      this.stats.wait++;
      const ms = Math.min(deadline - performance.now(), ASYNC_WAIT_MAX_MS);
      const us = Math.max(0, Math.ceil(ms * 1000));
      const started = performance.now();
      let r: number;
      this.#asyncWaits++;
      try {
        // On a thread-pool thread: by fd (the registered index belongs to the creating thread).
        r = await this.#sys.enterTimeoutAsync(this.fd, 0, 1, abi.IORING_ENTER_GETEVENTS, us);
      } finally {
        this.#asyncWaits--;
      }
      if (this.#closed) return;
      if (r < 0 && r !== -ETIME && r !== -EINTR && r !== -EBUSY && r !== -EAGAIN) {
        throw new IoUringError("io_uring_enter", -r, "waiting for a completion");
      }
      // A timeout before the deadline: wait on. The libc backend reports every failure as EINTR
      // (errno is the pool thread's): there, only one that came when the timeout was due is one.
      const timedOut = r === -ETIME || (r === -EINTR && performance.now() - started >= ms * 0.9);
      if (performance.now() >= deadline || this.cqReady() > 0) return;
      if (this.iopoll && !this.sqpoll && r >= 0) {
        // The polled wait came back with nothing ready: poll again after a timer, not at once.
        await new Promise((resolve) =>
          setTimeout(resolve, Math.min(POLL_BACKOFF_MAX_MS, deadline - performance.now()))
        );
        if (this.#closed || this.cqReady() > 0 || this.#refill()) return;
        continue;
      }
      if (!timedOut && r === -EINTR && this.cqReady() === 0) {
        // An early EINTR with nothing ready may be a failure the libc backend could not name (a
        // ring not enabled yet: EBADFD): a wait that takes no time, here where errno is ours,
        // names it. (A caller that waits again in a loop would otherwise spin on it.)
        const check = this.#sys.enterTimeout(
          this.#enterFd,
          0,
          0,
          abi.IORING_ENTER_GETEVENTS | this.#enterFlag,
          0,
        );
        if (check < 0 && check !== -ETIME && check !== -EINTR && check !== -EBUSY && check !== -EAGAIN) {
          throw new IoUringError("io_uring_enter", -check, "waiting for a completion");
        }
      }
      if (!timedOut) return;
    }
  }

  /** Marks `n` completions as consumed (one store of the CQ head). */
  cqAdvance(n = 1): void {
    if (this.#closed || this.#reaping) this.#refuseReap("cqAdvance");
    if (n === 0) return;
    const ready = (Atomics.load(this.#cq, this.#cqTail) - this.#cqHeadLocal) >>> 0;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
      throw badNumber(n, `cqAdvance(n): n must be an integer ≥ 0, got ${shown(n)}`);
    }
    if (n > ready) throw new RangeError(`cqAdvance(${n}): only ${ready} completions are ready`);
    this.#consumeTo((this.#cqHeadLocal + n) >>> 0);
  }

  /**
   * Copies up to `out.length` ready completions into `out` (handles owned by the ring, valid until
   * their CQ slot comes round again) and returns how many; consume them with `cqAdvance(n)`.
   */
  peekBatch(out: Cqe[]): number {
    if (this.#closed || this.#reaping) this.#refuseReap("peekBatch");
    if (!Array.isArray(out)) throw new TypeError(`peekBatch needs an array to fill, got ${shown(out)}`);
    const tail = this.#readyTail();
    if (tail < 0) return 0;
    const head = this.#cqHeadLocal;
    // As a reap from here: `out` may run the caller's code (its `length`, an index setter, a
    // proxy), which must not advance or close the ring under the loop (a close waits for it).
    const cqes = this.#cqes, u32 = this.#cqesU32, i32 = this.#cqesI32, mask = this.#cqMask;
    const shift = this.#cqeShift;
    this.#reaping = true;
    try {
      const n = Math.min((tail - head) >>> 0, out.length);
      for (let i = 0; i < n; i++) {
        const index = (head + i) & mask;
        const cqe = cqes[index].load(u32, i32, index << shift);
        out[i] = shift === 0 ? cqe : cqe.loadExtra(u32, index << 1);
      }
      return n;
    } finally {
      this.#endReap(head); // nothing consumed
    }
  }

  /**
   * The CQ tail when completions are ready (after having the kernel flush any it still holds),
   * else -1 (internal: the batch reapers).
   */
  #readyTail(): number {
    const tail = Atomics.load(this.#cq, this.#cqTail);
    if (tail !== this.#cqHeadLocal) return tail;
    if (!this.#refill()) return -1;
    return Atomics.load(this.#cq, this.#cqTail);
  }

  /**
   * Consumes the completions before `head`: moves the local head and publishes it with a release
   * store, so our reads of the CQEs before it cannot move after it (the kernel may reuse those
   * slots once it sees the new head). On x86-64 every store is a release store and V8 keeps
   * typed-array stores in program order, so a plain store does it; `Atomics.store` is a builtin
   * call there (~10 ns, once per reap). Elsewhere (arm64) it is `Atomics.store`.
   */
  #consumeTo(head: number): void {
    if (this.#cqeShift !== 0) this.#clearExtras(head);
    this.#cqHeadLocal = head;
    if (PLAIN_STORE_RELEASES) this.#cq[this.#cqHead] = head;
    else Atomics.store(this.#cq, this.#cqHead, head);
  }

  /**
   * Zeroes the extra words of the 32-byte CQEs consumed up to `head`, before the kernel may reuse
   * their slots: it fills them only for a request's own completion (6.18 leaves them as they were
   * for the CQEs it posts itself: a message from another ring, a multishot timeout's), which would
   * otherwise show an earlier lap's words.
   */
  #clearExtras(head: number): void {
    const u32 = this.#cqesU32, mask = this.#cqMask;
    for (let h = this.#cqHeadLocal; h !== head; h = (h + 1) >>> 0) {
      const w = ((h & mask) << 1) * CQE_WORDS + CQE_WORDS; // the second 16 bytes of the slot
      u32[w] = 0;
      u32[w + 1] = 0;
      u32[w + 2] = 0;
      u32[w + 3] = 0;
    }
  }

  /**
   * Calls `fn` for every ready completion, then advances the CQ head once. Returns the count.
   * If `fn` throws, the completions already handed to it stay consumed. Allocates nothing.
   */
  forEachCqe(fn: (cqe: Cqe) => void): number {
    if (this.#closed || this.#reaping || typeof fn !== "function") this.#startReap("forEachCqe", fn);
    const tail = this.#readyTail();
    if (tail < 0) return 0;
    const start = this.#cqHeadLocal;
    let head = start;
    // In locals: `fn` may run any code, so V8 would otherwise reload each field per completion.
    const cqes = this.#cqes, u32 = this.#cqesU32, i32 = this.#cqesI32, mask = this.#cqMask;
    const shift = this.#cqeShift;
    this.#reaping = true;
    try {
      while (head !== tail) {
        const index = head & mask;
        head = (head + 1) >>> 0;
        const cqe = cqes[index].load(u32, i32, index << shift);
        fn(shift === 0 ? cqe : cqe.loadExtra(u32, index << 1));
      }
    } finally {
      this.#endReap(head);
    }
    return (head - start) >>> 0;
  }

  /** Throws why `what` (forEachCqe or forEachCompletion) cannot start: see `#refuseReap`. */
  #startReap(what: string, fn: unknown): void {
    this.#assertOpen();
    if (typeof fn !== "function") throw new TypeError("fn must be a function");
    this.#refuseReap(what);
  }

  /**
   * Throws why `what` cannot reap now: the ring is closed (`ClosedError`), or a
   * `forEachCqe`/`forEachCompletion` callback is running (`Busy`): peeking, advancing, waiting or
   * a nested loop there would hand its completions out again, and the outer loop would then move
   * the head back over what was consumed; reap after the callback returns instead. Returns when
   * neither holds.
   */
  #refuseReap(what: string): void {
    this.#assertOpen();
    if (this.#reaping) {
      throw new Deno.errors.Busy(
        `${what} cannot be called from inside a forEachCqe/forEachCompletion callback (or from the array ` +
          "peekBatch is filling): reap after it returns",
      );
    }
  }

  /** Ends a reap at `head`: consumes up to it, then finishes a `close()` the callback asked for. */
  #endReap(head: number): void {
    this.#consumeTo(head);
    this.#reaping = false;
    if (this.#closeWhenReaped) this.#release();
  }

  /**
   * Calls `fn(userData, res, flags)` for every ready completion, then advances the CQ head once;
   * returns the count. The handle-free form of {@link IoUring.forEachCqe}: no `Cqe` is filled,
   * the three fields come straight from the CQ. `userData` is a number, exact below 2^53 (use
   * `forEachCqe` and `Cqe.userData` for wider values). If `fn` throws, the completions already
   * handed to it stay consumed. Allocates nothing. Since 5.1.
   */
  forEachCompletion(fn: (userData: number, res: number, flags: number) => void): number {
    if (this.#closed || this.#reaping || typeof fn !== "function") this.#startReap("forEachCompletion", fn);
    const tail = this.#readyTail();
    if (tail < 0) return 0;
    const start = this.#cqHeadLocal;
    let head = start;
    const u32 = this.#cqesU32, i32 = this.#cqesI32, mask = this.#cqMask, shift = this.#cqeShift;
    this.#reaping = true;
    try {
      while (head !== tail) {
        const w = ((head & mask) << shift) * CQE_WORDS;
        head = (head + 1) >>> 0;
        const hi = u32[w + CQE_USER_HI];
        const lo = u32[w + CQE_USER_LO];
        fn(hi === 0 ? lo : hi * TWO_32 + lo, i32[w + CQE_RES], u32[w + CQE_FLAGS]);
      }
    } finally {
      this.#endReap(head);
    }
    return (head - start) >>> 0;
  }

  /**
   * Iterates over ready completions, consuming each as the loop moves past it. Each `Cqe` is the
   * ring's handle for its CQ slot, refilled when that slot is peeked again (one lap later): copy
   * out the fields to keep. A `close()` in the loop's body ends the loop (the completions after it
   * went with the ring).
   */
  *completions(): Generator<Cqe, void, undefined> {
    for (let cqe = this.peekCqe(); cqe !== null; cqe = this.#closed ? null : this.peekCqe()) {
      this.cqAdvance(1);
      yield cqe;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Registration

  #register(
    opcode: number,
    arg: Uint8Array | null,
    nrArgs: number,
    what: string,
    hints?: Readonly<Record<string, string>>,
  ): number {
    this.#assertOpen();
    return registerChecked(this.#sys, this.fd, opcode, arg, nrArgs, what, hints);
  }

  /**
   * Sets the most io-wq worker threads the kernel runs for this ring (and the rings sharing its
   * io-wq; per NUMA node on older kernels): `bounded` serve work of bounded duration (regular file and block I/O),
   * `unbounded` the rest (opens, sockets, pipes); 0 leaves a limit as it is. Returns the limits
   * that were in force, as `[bounded, unbounded]`. The io-wq belongs to the task that submits:
   * - without SQPOLL, the calling thread, so every plain ring of that thread shares these limits
   *   (its first ring sets the defaults, `min(SQ entries, 4 × CPUs)` bounded workers and
   *   `RLIMIT_NPROC` unbounded ones), and a change through one is what the others read; the
   *   kernel also applies the change to the other threads that have submitted to this ring;
   * - with SQPOLL, the ring's SQ thread, so the limits are those of the rings sharing that thread
   *   (`attachTo`) only: neither the calling thread's plain rings nor another SQPOLL ring sees
   *   them.
   *
   * A burst of blocking work (say, dozens of linked `openat` chains) can start as many threads as
   * requests. Since 5.15.
   */
  registerIowqMaxWorkers(bounded: number, unbounded: number): [number, number] {
    // The kernel takes them as ints: above 2^31 - 1 it refuses with EINVAL.
    checkU32(bounded, "bounded", 0x7fffffff);
    checkU32(unbounded, "unbounded", 0x7fffffff);
    const counts = new Uint32Array([bounded, unbounded]);
    this.#register(
      abi.IORING_REGISTER_IOWQ_MAX_WORKERS,
      new Uint8Array(counts.buffer),
      2,
      `IORING_REGISTER_IOWQ_MAX_WORKERS (${bounded}, ${unbounded})`,
    );
    return [counts[0], counts[1]];
  }

  /** Which opcodes this kernel supports (`IORING_REGISTER_PROBE`). Since 5.6. */
  probe(): Probe {
    const buf = new Uint8Array(abi.PROBE_HEADER_SIZE + 256 * abi.PROBE_OP_SIZE);
    this.#register(abi.IORING_REGISTER_PROBE, buf, 256, "IORING_REGISTER_PROBE");
    return new Probe(buf);
  }

  /**
   * Registers `buffers` as fixed buffers for `prepReadFixed`/`prepWriteFixed` (index = position
   * in the array): at most 16384 (`IORING_MAX_REG_BUFFERS`; 1024 before 5.13) of at most 1 GiB
   * each. The kernel pins their pages: a view of a resizable `ArrayBuffer` is refused (shrunk and
   * grown again, it may get other pages, and fixed I/O would move the old ones' bytes). The ring
   * keeps the memory of an {@link alignedBuffer} mapped (its `free()` waits) until
   * `unregisterBuffers()` or `close()`, and the buffers referenced until `close()` (see
   * `unregisterBuffers`). It cannot keep a plain `ArrayBuffer` from being
   * transferred away (`transfer()`, `postMessage`): the registration then still names the old
   * pages, which the new owner may free; `checkFixedBuffer` refuses such a buffer. Since 5.1.
   */
  registerBuffers(buffers: readonly ArrayBufferView[]): void {
    const iovecs = new Iovecs(buffers, abi.IORING_MAX_REG_BUFFERS);
    const list = iovecs.buffers; // the Iovecs' own copy: what it registers
    checkRegistrable(list);
    const pins = pinAll(list);
    try {
      this.#register(
        abi.IORING_REGISTER_BUFFERS,
        iovecs.bytes,
        iovecs.length,
        `IORING_REGISTER_BUFFERS (${iovecs.length})`,
      );
    } catch (e) {
      for (const pin of pins) pin?.unpin();
      throw e;
    }
    this.#bufferTable = list;
    this.#keepPins(pins);
  }

  /** Keeps one hold per mapping among `pins` (taken by `pinAll` for the table) until unpinAll. */
  #keepPins(pins: readonly (AlignedMapping | null)[]): void {
    const held = this.#hold.pins;
    for (const pin of pins) {
      if (pin === null) continue;
      if (held.has(pin)) pin.unpin(); // held already: one hold per mapping
      else held.add(pin);
    }
  }

  /**
   * Registers a table of `count` empty fixed-buffer slots (1 to 16384), to fill with
   * {@link IoUring.registerBuffersUpdate}; `registeredBuffers` shows each as a view of 0 bytes.
   * A request naming an empty slot fails (`EFAULT`; `checkFixedBuffer` says so first). Since 5.19.
   */
  registerBuffersSparse(count: number): void {
    checkU32(count, "count", abi.IORING_MAX_REG_BUFFERS, 1);
    this.#register(
      abi.IORING_REGISTER_BUFFERS2,
      sparseTable(count),
      32,
      `IORING_REGISTER_BUFFERS2 (${count} sparse)`,
    );
    this.#bufferTable = Object.freeze(new Array<ArrayBufferView>(count).fill(NO_BUFFER));
  }

  /**
   * Replaces registered buffers from slot `offset` with `buffers` (`null`, or a view of 0 bytes,
   * empties a slot), in a table made by `registerBuffers` or `registerBuffersSparse`, under the
   * same rules as `registerBuffers`. Requests already in flight keep the buffers they named; the
   * ring keeps the buffers it takes out referenced until it closes (an `alignedBuffer`'s memory
   * mapped until `unregisterBuffers()`), since nothing tells it when those requests are done.
   * Returns how many slots were replaced (all of them: if the kernel refuses one, the slots before
   * it stay replaced and the error names the slot). `registeredBuffers` is a new array after it.
   * Since 5.13.
   */
  registerBuffersUpdate(offset: number, buffers: readonly (ArrayBufferView | null)[]): number {
    this.#assertOpen();
    checkU32(offset, "offset");
    if (!Array.isArray(buffers) || buffers.length === 0) {
      throw new TypeError("registerBuffersUpdate needs a non-empty array of buffers (null empties a slot)");
    }
    const table = this.#bufferTable;
    if (table === undefined) {
      throw new RangeError(
        "no buffers are registered with this ring: registerBuffers or registerBuffersSparse first",
      );
    }
    const count = buffers.length;
    if (offset + count > table.length) {
      throw new RangeError(
        `slots ${offset}..${offset + count - 1} are outside the table of ${table.length} buffers`,
      );
    }
    // (Only null empties a slot: an undefined, or a hole, is refused as no buffer.)
    const iovecs = new Iovecs(
      Array.from({ length: count }, (_, i) => buffers[i] === null ? NO_BUFFER : buffers[i]!),
      abi.IORING_MAX_REG_BUFFERS,
    );
    const list = iovecs.buffers;
    checkRegistrable(list);
    const pins = pinAll(list);
    let done = 0;
    try {
      // The kernel stops at a slot it refuses and returns how many it replaced before it; asked
      // again from there, it says why.
      while (done < count) {
        const replaced = this.#register(
          abi.IORING_REGISTER_BUFFERS_UPDATE,
          rsrcUpdate2(offset + done, addressOf(iovecs.bytes) + done * abi.IOVEC_SIZE, count - done),
          abi.RSRC_UPDATE2_SIZE,
          `IORING_REGISTER_BUFFERS_UPDATE (slot ${offset + done}${
            done > 0 ? `; ${done} replaced before it` : ""
          })`,
        );
        if (replaced === 0) break; // (never seen: the kernel replaces one or says why not)
        done += replaced;
      }
    } finally {
      const next = table.slice();
      for (let i = 0; i < done; i++) {
        const old = next[offset + i];
        if (old !== NO_BUFFER && old !== list[i]) this.#retiredBuffers.add(bufferOf(old));
        next[offset + i] = list[i];
      }
      if (done > 0) this.#bufferTable = Object.freeze(next);
      this.#keepPins(pins.slice(0, done));
      for (let i = done; i < count; i++) pins[i]?.unpin(); // (slots the kernel did not take)
    }
    return done;
  }

  /**
   * Gives this ring the registered buffers of ring `source` (`IORING_REGISTER_CLONE_BUFFERS`):
   * the same memory, without pinning it again. By default all of them, into a ring with no
   * buffer table; `options` clone a range (`srcOffset`, `dstOffset`, `count`: 6.13) and may
   * `replace` this ring's table (6.13), keeping its slots outside the range (a table too short
   * for the range grows, with empty slots). Each ring keeps its table until it unregisters it or
   * closes: the source may unregister its own meanwhile. Since 6.12.
   */
  cloneBuffersFrom(source: IoUring, options?: CloneBuffersOptions): void {
    this.#assertOpen();
    checkOptionsObject(options);
    options ??= {};
    if (!(source instanceof IoUring)) throw new TypeError(`source must be an IoUring, got ${shown(source)}`);
    if (source.#closed) throw new ClosedError("IoUring (the source)");
    const from = source.#bufferTable;
    if (from === undefined) throw new RangeError("the source ring has no registered buffers");
    const srcOffset = options.srcOffset ?? 0, dstOffset = options.dstOffset ?? 0;
    checkU32(srcOffset, "srcOffset", from.length - 1);
    checkU32(dstOffset, "dstOffset", abi.IORING_MAX_REG_BUFFERS - 1);
    const count = options.count ?? from.length - srcOffset;
    checkU32(count, "count", Math.min(from.length - srcOffset, abi.IORING_MAX_REG_BUFFERS - dstOffset), 1);
    const replace = options.replace ?? false;
    if (typeof replace !== "boolean") throw new TypeError(`replace must be a boolean, got ${shown(replace)}`);
    const table = this.#bufferTable;
    if (table !== undefined && !replace) {
      throw new RangeError(
        "this ring has registered buffers already: unregister them first, or pass replace: true",
      );
    }
    const cloned = from.slice(srcOffset, srcOffset + count);
    const pins = pinAll(cloned);
    try {
      this.#register(
        abi.IORING_REGISTER_CLONE_BUFFERS,
        cloneBuffersArg(
          source.fd,
          replace ? abi.IORING_REGISTER_DST_REPLACE : 0,
          srcOffset,
          dstOffset,
          // (All of them, from 0 to 0, as nr 0: 6.12 has no offsets and refuses anything there.)
          srcOffset === 0 && dstOffset === 0 && count === from.length ? 0 : count,
        ),
        1,
        `IORING_REGISTER_CLONE_BUFFERS (${count} from slot ${srcOffset} to slot ${dstOffset})`,
      );
    } catch (e) {
      for (const pin of pins) pin?.unpin();
      throw e;
    }
    // As the kernel builds it: this ring's table (grown with empty slots if short), the clones
    // over the range.
    const next = new Array<ArrayBufferView>(Math.max(dstOffset + count, table?.length ?? 0)).fill(NO_BUFFER);
    for (let i = 0; i < (table?.length ?? 0); i++) next[i] = table![i];
    for (let i = 0; i < count; i++) {
      const old = next[dstOffset + i];
      if (old !== NO_BUFFER && old !== cloned[i]) this.#retiredBuffers.add(bufferOf(old));
      next[dstOffset + i] = cloned[i];
    }
    this.#bufferTable = Object.freeze(next);
    this.#keepPins(pins);
  }

  /**
   * The registered buffer table by slot, or `undefined` when none is registered. An empty slot
   * (of a sparse table, emptied by an update, or registered as 0 bytes) is a view of 0 bytes. A
   * new (frozen) array after every change.
   */
  get registeredBuffers(): readonly ArrayBufferView[] | undefined {
    return this.#bufferTable;
  }

  /**
   * Unregisters the fixed buffers. The ring keeps them referenced until it closes: since 6.13
   * the kernel no longer waits for the requests in flight that use them, and a buffer the garbage
   * collector freed under such a request would take the kernel's write (an `alignedBuffer`'s
   * memory may be freed: the kernel holds its own pages). Since 5.1.
   */
  unregisterBuffers(): void {
    this.#register(abi.IORING_UNREGISTER_BUFFERS, null, 0, "IORING_UNREGISTER_BUFFERS");
    for (const view of this.#bufferTable ?? []) {
      if (view !== NO_BUFFER) this.#retiredBuffers.add(bufferOf(view));
    }
    this.#bufferTable = undefined;
    unpinAll(this.#hold);
  }

  /**
   * Registers a fixed file table: SQEs with `IOSQE_FIXED_FILE` then name a file by its index.
   * `-1` leaves a slot empty (fill it later with `registerFilesUpdate`). Since 5.1.
   */
  registerFiles(fds: readonly number[]): void {
    if (!Array.isArray(fds) || fds.length === 0) {
      throw new TypeError("registerFiles needs a non-empty array of fds");
    }
    const table = Int32Array.from(fds, (fd, i) => {
      if (fd === -1) return -1;
      checkFd(fd, `fds[${i}]`);
      return fd;
    });
    this.#registerFileTable(
      abi.IORING_REGISTER_FILES,
      new Uint8Array(table.buffer),
      table.length,
      table.length,
      `IORING_REGISTER_FILES (${table.length})`,
    );
    this.#registeredFiles = table.length;
  }

  /**
   * Registers a file table of `count` slots, saying why when the kernel refuses it: `EMFILE`, a
   * table larger than `RLIMIT_NOFILE` or than {@link MAX_FIXED_FILES}; `EBADF`, an fd it refuses.
   */
  #registerFileTable(opcode: number, arg: Uint8Array, nrArgs: number, count: number, what: string): void {
    try {
      this.#register(opcode, arg, nrArgs, what, { EBADF: FILE_TABLE_EBADF });
    } catch (e) {
      if (!(e instanceof IoUringError && e.code === "EMFILE")) throw e;
      const limit = this.#sys.fileLimit(); // (read when it matters: a registration that fits costs nothing)
      const hint = count > MAX_FIXED_FILES
        ? `a file table holds at most ${MAX_FIXED_FILES} entries (IORING_MAX_FIXED_FILES)`
        : `a file table holds at most RLIMIT_NOFILE entries (\`ulimit -n\`${
          limit > 0 ? `, ${limit} here` : ""
        }), and ${count} were asked for: register fewer or raise the limit`;
      throw new IoUringError(e.call, e.errno, what, { EMFILE: hint });
    }
  }

  /** Size of the registered file table (0 when none). */
  get registeredFileCount(): number {
    return this.#registeredFiles;
  }

  /**
   * Replaces registered files from index `offset` with `fds` (`-1` clears a slot,
   * `IORING_REGISTER_FILES_SKIP` keeps it: 5.12). Returns how many were updated: all of them. If
   * the kernel refuses one (an fd that is not open: `EBADF`), the slots before it stay updated and
   * the error names it. Since 5.5.
   */
  registerFilesUpdate(offset: number, fds: readonly number[]): number {
    this.#assertOpen();
    checkU32(offset, "offset");
    if (!Array.isArray(fds) || fds.length === 0) {
      throw new TypeError("registerFilesUpdate needs a non-empty array of fds");
    }
    if (offset + fds.length > this.#registeredFiles) {
      throw new RangeError(
        `files ${offset}..${offset + fds.length - 1} are outside the table of ${this.#registeredFiles}`,
      );
    }
    const table = Int32Array.from(fds, (fd, i) => {
      if (fd === -1 || fd === abi.IORING_REGISTER_FILES_SKIP) return fd;
      checkFd(fd, `fds[${i}]`);
      return fd;
    });
    // The kernel stops at an fd it refuses and returns how many it updated before it (the error
    // was lost); asked again from there, it says why.
    let done = 0;
    while (done < table.length) {
      const updated = this.#register(
        abi.IORING_REGISTER_FILES_UPDATE,
        rsrcUpdate(offset + done, BigInt(addressOf(table) + done * 4)),
        table.length - done,
        `IORING_REGISTER_FILES_UPDATE (fds[${done}] for slot ${offset + done}${
          done > 0 ? `; ${done} updated before it` : ""
        })`,
        { EBADF: FILE_TABLE_EBADF },
      );
      if (updated === 0) break; // (never seen: the kernel updates one or says why not)
      done += updated;
    }
    void table; // referenced until the calls returned
    return done;
  }

  /** Unregisters the fixed file table. Since 5.1. */
  unregisterFiles(): void {
    this.#register(abi.IORING_UNREGISTER_FILES, null, 0, "IORING_UNREGISTER_FILES");
    this.#registeredFiles = 0;
  }

  /**
   * Registers an eventfd the kernel signals when it posts completions (`async`: only completions
   * that did not finish inline). It signals once per batch it posts, not per CQE: the counter
   * says that there are completions, not how many. `EINVAL` when the fd is not an eventfd,
   * `EBUSY` when one is registered already. Since 5.2 (`async` 5.6).
   */
  registerEventfd(eventfd: number, options: { async?: boolean } = {}): void {
    checkOptionsObject(options);
    checkFd(eventfd, "eventfd");
    const async: unknown = options?.async; // read once
    if (async !== undefined && typeof async !== "boolean") {
      throw new TypeError(`async must be true or false, got ${shown(async)}`);
    }
    const arg = new Int32Array([eventfd]);
    const op = async ? abi.IORING_REGISTER_EVENTFD_ASYNC : abi.IORING_REGISTER_EVENTFD;
    this.#register(op, new Uint8Array(arg.buffer), 1, "IORING_REGISTER_EVENTFD", {
      EINVAL: "the fd is not an eventfd (the kernel signals only an eventfd(2) descriptor)",
      EBUSY: "an eventfd is registered already: unregisterEventfd() first",
    });
  }

  /** Unregisters the eventfd. Since 5.2. */
  unregisterEventfd(): void {
    this.#register(abi.IORING_UNREGISTER_EVENTFD, null, 0, "IORING_UNREGISTER_EVENTFD");
  }

  /**
   * Registers the calling thread's credentials as a personality and returns its id (1 to 65535):
   * an SQE given that id (`sqe.setPersonality(id)`) runs with those credentials, whatever the
   * submitting thread's are by then; an unknown id fails the SQE with `-EINVAL`. (Under SQPOLL
   * every SQE without one runs with the credentials of the thread that created the ring: the
   * SQ thread's, not the submitter's current ones.) Since 5.6.
   */
  registerPersonality(): number {
    return this.#register(abi.IORING_REGISTER_PERSONALITY, null, 0, "IORING_REGISTER_PERSONALITY");
  }

  /**
   * Unregisters personality `id` (1 to 65535, as `registerPersonality` returns; `EINVAL` if there
   * is none). Since 5.6.
   */
  unregisterPersonality(id: number): void {
    checkU32(id, "id", 0xffff, 1); // (the kernel's ids start at 1: 0 in an SQE means none)
    this.#register(abi.IORING_UNREGISTER_PERSONALITY, null, id, `IORING_UNREGISTER_PERSONALITY (${id})`);
  }

  /**
   * Limits what the ring accepts from then on, for a ring created disabled (`flags:
   * IORING_SETUP_R_DISABLED`; `EBADFD` otherwise), once (`EBUSY` a second time): only the SQE
   * opcodes named by `{ sqeOp }`, the `io_uring_register` calls named by `{ registerOp }`, SQE
   * flags within `{ sqeFlagsAllowed }` and always carrying `{ sqeFlagsRequired }`. An SQE outside
   * them completes with `-EACCES`; a register call outside them fails with `EACCES`. Then
   * {@link IoUring.enableRings}. Unless the rules allow `IORING_UNREGISTER_RING_FDS`, the ring
   * leaves the thread's table of rings here (its `ringIndex` becomes -1), so that `close()` can
   * still release it; a buffer ring whose unregister the rules refuse keeps its memory mapped
   * after `close()`. Since 5.10.
   */
  registerRestrictions(restrictions: readonly Restriction[]): void {
    const array = restrictionArray(restrictions);
    const count = array.byteLength / RESTRICTION_SIZE; // (what was built: not a second read of the list)
    this.#register(
      abi.IORING_REGISTER_RESTRICTIONS,
      array,
      count,
      `IORING_REGISTER_RESTRICTIONS (${count})`,
      {
        EBUSY: "a ring takes restrictions once, for its whole life: they cannot be unregistered or " +
          "replaced (create another ring with IORING_SETUP_R_DISABLED for other rules)",
      },
    );
    // Enabled, the ring would refuse IORING_UNREGISTER_RING_FDS unless it is listed, and the
    // thread's table of rings would keep it alive after close(): leave the table now.
    if (this.#enterFlag !== 0 && !allowsRegisterOp(array, abi.IORING_UNREGISTER_RING_FDS)) {
      this.#unregisterRing();
    }
  }

  /** Takes the ring out of the creating thread's table of rings (see {@link IoUring.ringIndex}). */
  #unregisterRing(): void {
    this.#assertOpen();
    const r = unregisterRingIndex(this.#hold);
    if (r < 0) throw new IoUringError("io_uring_register", -r, "IORING_UNREGISTER_RING_FDS");
    this.#enterFd = this.fd;
    this.#enterFlag = 0;
  }

  /**
   * Enables a ring created with `IORING_SETUP_R_DISABLED` (`EBADFD` if it is not disabled): until
   * then `io_uring_enter` fails with `EBADFD` and an SQ poll thread leaves the ring alone. Since
   * 5.10.
   */
  enableRings(): void {
    this.#register(abi.IORING_REGISTER_ENABLE_RINGS, null, 0, "IORING_REGISTER_ENABLE_RINGS");
  }

  /**
   * Registers a fixed file table of `count` empty slots (`IORING_RSRC_REGISTER_SPARSE`): direct
   * opens, accepts and sockets fill them; no fd array is built. Since 5.19.
   */
  registerFilesSparse(count: number): void {
    checkU32(count, "count", 0xffffffff, 1);
    this.#registerFileTable(
      abi.IORING_REGISTER_FILES2,
      sparseTable(count),
      32,
      count,
      `IORING_REGISTER_FILES2 (${count} sparse)`,
    );
    this.#registeredFiles = count;
  }

  /**
   * Sets the fixed-file slots the kernel picks from when an SQE asks for any free one
   * (`IORING_FILE_INDEX_ALLOC`): `offset` to `offset + length - 1`, inside the registered table
   * (`registeredFileCount`; a `RangeError` otherwise, where the kernel would fail with `EINVAL`,
   * or `EOVERFLOW` past 2^32). Since 6.0.
   */
  registerFileAllocRange(offset: number, length: number): void {
    this.#assertOpen();
    const range = fileIndexRange(offset, length); // (checks both)
    const table = this.#registeredFiles;
    if (offset + length > table) {
      const slots = length === 0 ? `offset ${offset} is` : `slots ${offset}..${offset + length - 1} are`;
      throw new RangeError(
        `${slots} outside the table of ${table} registered files` +
          (table === 0 ? " (register files first: registerFiles or registerFilesSparse)" : ""),
      );
    }
    this.#register(
      abi.IORING_REGISTER_FILE_ALLOC_RANGE,
      range,
      0,
      `IORING_REGISTER_FILE_ALLOC_RANGE (${offset}, ${length})`,
    );
  }

  /**
   * Cancels requests and waits until they are gone (`IORING_REGISTER_SYNC_CANCEL`): one with
   * `userData`, on `fd`, of `opcode` (6.6), or `any`; `all` cancels every match. Requests that
   * are running (in an io-wq worker) are waited for, up to `timeoutMs` (`ETIME` then), so this
   * blocks the calling thread. Without SQPOLL the cancelled requests' CQEs are posted when it
   * returns; under SQPOLL the SQ thread, which owns them, posts them just after. Returns 0 for a
   * single match; with `all` or `any`, how many were cancelled (0 when none matched). A
   * single-match cancel that finds nothing throws an {@link IoUringError} with `ENOENT`. Under
   * SQPOLL a request cancelled but not yet completed by the SQ thread can still be found, so a
   * second call made at once may count it again. Since 6.0.
   */
  cancelSync(target: SyncCancelTarget): number {
    const reg = syncCancelReg(target);
    return this.#register(abi.IORING_REGISTER_SYNC_CANCEL, reg, 1, "IORING_REGISTER_SYNC_CANCEL");
  }

  /**
   * The kernel's head of the ring of provided buffers of `group` (`IORING_REGISTER_PBUF_STATUS`):
   * how many buffers it has taken from the ring, modulo 2^16. `ENOENT` if the group has no
   * buffers, `EINVAL` if they are classic provided buffers (`prepProvideBuffers`), not a ring.
   * A `BufferRing` must be open and this ring's. Since 6.8.
   */
  bufferRingHead(group: number | BufferRing): number {
    this.#assertOpen(); // (before the BufferRing's check, which would blame another ring)
    const id = group instanceof BufferRing ? groupOn(group, this.#sqeU32) : group;
    checkU32(id, "group", 0xffff);
    const status = bufStatus(id);
    this.#register(abi.IORING_REGISTER_PBUF_STATUS, status, 1, `IORING_REGISTER_PBUF_STATUS (group ${id})`);
    return new DataView(status.buffer).getUint32(4, true);
  }

  /**
   * Lets the io-wq workers of this ring's submitting thread (under SQPOLL: of its SQ thread) run
   * only on `cpus` (CPU numbers, 0 to 1023): those started after the call (6.18 leaves running
   * ones where they are). The kernel ignores CPUs past the last it could have (a set of only such
   * CPUs pins nothing), and fails with `EINVAL` when a CPU is outside the thread's cpuset.
   * Since 5.14.
   */
  registerIowqAffinity(cpus: readonly number[]): void {
    const set = cpuSet(cpus);
    this.#register(
      abi.IORING_REGISTER_IOWQ_AFF,
      set,
      set.byteLength,
      `IORING_REGISTER_IOWQ_AFF (${cpus.join(",")})`,
    );
  }

  /**
   * Lets io-wq workers started after the call run on any CPU again (a worker started while the
   * affinity held keeps it, and an idle one takes new work until it exits). Since 5.14.
   */
  unregisterIowqAffinity(): void {
    this.#register(abi.IORING_UNREGISTER_IOWQ_AFF, null, 0, "IORING_UNREGISTER_IOWQ_AFF");
  }

  /**
   * Busy-polls the network (NAPI) for the ring's sockets while it waits for completions, for up
   * to `busyPollUs` µs each time, instead of sleeping until an interrupt: lower latency for more
   * CPU. Returns the settings that were in force. A polled ring (`iopoll`) is refused with a
   * `RangeError`: the kernel refuses NAPI on any `IORING_SETUP_IOPOLL` ring (`EINVAL`). Since 6.9.
   */
  registerNapi(settings: NapiSettings): NapiSettings {
    this.#assertOpen();
    const arg = napiArg(settings);
    if (this.iopoll) {
      throw new RangeError(
        "registerNapi: the kernel refuses network busy-polling (NAPI) on a polled ring (iopoll: " +
          "true, IORING_SETUP_IOPOLL; EINVAL): use a ring without iopoll for the sockets",
      );
    }
    this.#register(abi.IORING_REGISTER_NAPI, arg, 1, "IORING_REGISTER_NAPI");
    return napiSettings(arg);
  }

  /** Stops busy-polling; returns the settings that were in force. Since 6.9. */
  unregisterNapi(): NapiSettings {
    const arg = napiOut();
    this.#register(abi.IORING_UNREGISTER_NAPI, arg, 1, "IORING_UNREGISTER_NAPI");
    return napiSettings(arg);
  }

  /**
   * Sets the clock by which waits with a timeout (`waitCqe({ timeoutMs })`) are timed:
   * `CLOCK_MONOTONIC` (1, the default) or `CLOCK_BOOTTIME` (7, which counts time suspended).
   * Since 6.12.
   */
  registerClock(clockId: number): void {
    if (clockId !== abi.CLOCK_MONOTONIC && clockId !== abi.CLOCK_BOOTTIME) {
      throw new RangeError(
        `clockId must be CLOCK_MONOTONIC (1) or CLOCK_BOOTTIME (7), got ${shown(clockId)}`,
      );
    }
    this.#register(
      abi.IORING_REGISTER_CLOCK,
      clockRegister(clockId),
      0,
      `IORING_REGISTER_CLOCK (${clockId})`,
    );
  }

  /**
   * Registers a ring of provided buffers for buffer group `group`: `entries` buffers (a power of
   * two up to 32768) of `bufferSize` bytes each, in memory the module maps, all handed to the
   * kernel at once. SQEs that select a buffer of the group (`prepRecvMultishot`, ...) then name
   * no buffer: the kernel picks one when data arrives and says which in the CQE (see
   * {@link BufferRing}). The ring keeps the memory until `bufferRing.close()` or its own
   * `close()`. Fails with `EEXIST` when the group has a ring already. Since 5.19 (`incremental`:
   * 6.12, `EINVAL` before).
   */
  setupBufferRing(options: BufferRingOptions): BufferRing {
    this.#assertOpen();
    checkOptionsObject(options);
    if (options === null || options === undefined) {
      throw new TypeError("setupBufferRing needs { group, entries, bufferSize }");
    }
    const { group, entries, bufferSize, incremental = false, empty = false } = options;
    checkU32(group, "group", 0xffff);
    if (
      typeof entries !== "number" || !Number.isInteger(entries) || entries < 1 ||
      entries > abi.MAX_BUF_RING_ENTRIES || (entries & (entries - 1)) !== 0
    ) {
      throw badNumber(
        entries,
        `entries must be a power of two from 1 to ${abi.MAX_BUF_RING_ENTRIES}, got ${shown(entries)}`,
      );
    }
    checkU32(bufferSize, "bufferSize", 0xffffffff, 1);
    if (typeof incremental !== "boolean") {
      throw new TypeError(`incremental must be a boolean, got ${typeof incremental}`);
    }
    if (typeof empty !== "boolean") throw new TypeError(`empty must be a boolean, got ${typeof empty}`);
    const backend = this.backend;
    // The kernel wants the ring itself page-aligned; a mapping is.
    const ringMemory = alignedBuffer(Math.max(entries * abi.BUF_SIZE, 4096), 4096, { backend });
    let data: AlignedBuffer;
    try {
      data = alignedBuffer(entries * bufferSize, 4096, { backend });
    } catch (e) {
      ringMemory.free();
      throw e;
    }
    const hold = this.#hold;
    // (The release names the hold, not this ring: a BufferRing kept by the hold must not keep
    // the ring from being collected, and released.)
    const bufferRing = new BufferRing(
      { group, entries, bufferSize, incremental, empty },
      ringMemory,
      data,
      this.#sqeU32,
      (ring) => releaseBufferRing(hold, ring),
    );
    try {
      this.#register(
        abi.IORING_REGISTER_PBUF_RING,
        bufReg(bufferRing.ringAddress, entries, group, incremental ? abi.IOU_PBUF_RING_INC : 0),
        1,
        `IORING_REGISTER_PBUF_RING (group ${group}, ${entries} entries${
          incremental ? ", incremental: since Linux 6.12" : ""
        })`,
      );
    } catch (e) {
      bufferRing.freeMemory();
      throw e;
    }
    hold.bufferRings.add(bufferRing);
    noteRegistered(bufferRing, this.#sqeU32);
    return bufferRing;
  }

  // -------------------------------------------------------------------------------------------
  // Teardown

  /**
   * Unmaps the rings and closes the ring fd (which stops an SQ thread and cancels what is still
   * in flight). Idempotent; every later operation on the ring throws `ClosedError` (what describes
   * it stays readable: `sqEntries`, `cqEntries`, `params`, `features`, `hasFeature()`, `sqpoll`,
   * `stats`, and `fd`, a number the process may reuse at once). Buffers that
   * in-flight SQEs point at must stay alive until the kernel has finished with them: reap
   * everything first. Called from a `forEachCqe`/`forEachCompletion` callback, the ring is
   * released when that call returns (the completions it had already taken are still handed out).
   * A ring that becomes unreachable without `close()` is released by the garbage collector, some
   * time later (its `fd` with it: keep the ring while anything uses that number).
   */
  close(): void {
    if (this.#closed) return;
    if (this.#asyncWaits > 0) this.#wakeAsyncWaits();
    this.#closed = true;
    // From a reaping callback: the loop still reads the CQ, so the memory goes when it returns.
    if (this.#reaping) this.#closeWhenReaped = true;
    else this.#release();
  }

  /**
   * Posts a no-op so that `waitAsync` calls on the thread pool return: each holds the ring open
   * until it does. Not when the caller queued SQEs it has not submitted: submitting now would run
   * them (the waits then end at their next second, see `waitAsync`).
   */
  #wakeAsyncWaits(): void {
    if (this.#sqeTail !== this.#sqePublished || (!this.sqpoll && this.sqReady() > 0)) return;
    try {
      if (this.queueNop(0) !== null) this.submit();
    } catch {
      // best effort: the waits still end within a second
    }
  }

  /** Unmaps the rings and closes the fd (`close()`'s work once no reap is reading them). */
  #release(): void {
    this.#closeWhenReaped = false;
    closedByOwner(this);
    const empty = new Uint32Array(0);
    this.#sq = this.#cq = this.#cqesU32 = empty;
    this.#cqesI32 = new Int32Array(0);
    for (const sqe of this.#sqes) sqe.invalidate(); // handles the caller kept: ClosedError from now on
    this.#sqes = [];
    this.#sqeF64 = new Float64Array(0);
    this.#sqeU32 = new Uint32Array(0);
    this.#cqes = [];
    this.#bufferTable = undefined;
    this.#retiredBuffers = new Set();
    this.#registeredFiles = 0;
    this.#enterFd = this.fd;
    this.#enterFlag = 0;
    releaseRing(this.#hold); // unmaps (detaching every view first), unregisters, closes the fd, unpins
  }

  /**
   * Posts a CQE with `res` and `userData` on the ring whose fd is `ringFd`, from a program or
   * Worker that has no ring of its own (`IORING_REGISTER_SEND_MSG_RING`: the kernel runs an
   * `IORING_OP_MSG_RING` data message at once). `flags` and `cqeFlags` as in `prepMsgRing`
   * (`IORING_MSG_RING_FLAGS_PASS`); `backend` picks the system layer. Throws `IoUringError`
   * naming the errno: `EBADFD` when the fd is not a ring (or one not enabled yet), `EBADF` when it
   * is no fd. Since 6.13.
   */
  static sendMsgRing(
    ringFd: number,
    res: number,
    userData: number | bigint,
    flags = 0,
    cqeFlags = 0,
    backend?: Backend,
  ): void {
    const bytes = new Uint8Array(abi.SQE_SIZE);
    prepMsgRing(new Sqe(new Uint32Array(bytes.buffer), bytes, 0), ringFd, res, userData, flags, cqeFlags);
    registerChecked(
      getSys(backend),
      -1, // (no ring: the kernel's "blind" registration)
      abi.IORING_REGISTER_SEND_MSG_RING,
      bytes,
      1,
      `IORING_REGISTER_SEND_MSG_RING (to fd ${ringFd})`,
      {
        EBADFD: "the fd is not an io_uring ring, or its ring is still disabled (IORING_SETUP_R_DISABLED)",
        EBADF:
          "the fd is not open (or the kernel is older than 6.13: it has no IORING_REGISTER_SEND_MSG_RING)",
        EINVAL: "the kernel is older than 6.13 (no IORING_REGISTER_SEND_MSG_RING), or the message's flags",
      },
    );
  }

  /** Same as {@link IoUring.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

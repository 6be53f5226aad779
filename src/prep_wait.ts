/**
 * `prep*` helpers for the waiting opcodes: futex wait and wake (one futex, or a vector of them),
 * `waitid` for a child process, and `epoll_ctl`/`epoll_wait`, filled as liburing's
 * `io_uring_prep_*` do; and the structs they point at: {@link FutexWaitv} (`struct futex_waitv`),
 * {@link Siginfo} (what `waitid` fills) and {@link EpollEvents} (`struct epoll_event`s).
 *
 * Arguments are checked before anything is written. The futex words, structs and buffers an SQE
 * points at must stay referenced until its CQE: a waiting request may stay queued for a long time,
 * and the kernel writes into some of them when it completes.
 *
 * A futex word is given as a view whose first 4 bytes are the word (a `Uint32Array` or
 * `Int32Array` over it: `words.subarray(i, i + 1)` for element `i`), 4-byte aligned as the kernel
 * requires. A `SharedArrayBuffer` works (its memory never moves), as do an `AlignedBuffer`'s
 * memory and a plain `ArrayBuffer`. V8's `Atomics.wait`/`Atomics.notify` do not use futex(2):
 * they neither wake nor are woken by these requests.
 *
 * @module
 */

import * as abi from "./abi.ts";
import {
  ADDRESSED,
  bufferAddressed,
  byteLengthOf,
  byteOffsetOf,
  checkBits32,
  checkBuffer,
  checkFd,
  checkFlags,
  checkU32,
  shown,
} from "./memory.ts";
import { storeAddressed, storeAddressOf, writeRw } from "./prep_base.ts";
import { type Sqe, W } from "./sqe.ts";

const OP_FLAGS = W.opFlags, FILE_INDEX = W.spliceFdIn, ADDR3_LO = W.addr3Lo;

/** The futex2 flags these helpers know: the size (which must be `FUTEX2_SIZE_U32`) and the rest. */
const FUTEX2_KNOWN = abi.FUTEX2_SIZE_MASK | abi.FUTEX2_NUMA | abi.FUTEX2_MPOL | abi.FUTEX2_PRIVATE;
/** Every `waitid` option the kernel takes. */
const WAITID_OPTIONS = abi.WNOHANG | abi.WSTOPPED | abi.WEXITED | abi.WCONTINUED | abi.WNOWAIT |
  abi.__WNOTHREAD | abi.__WALL | abi.__WCLONE;
/** The `waitid` options of which at least one must be given: what to report. */
const WAITID_STATES = abi.WEXITED | abi.WSTOPPED | abi.WCONTINUED;
const TWO_32 = 0x1_0000_0000;
const INT_MAX = 0x7fff_ffff;

// ---------------------------------------------------------------------------------------------
// Argument checks.

/** Throws unless `flags` is 0: a field the kernel reserves (`EINVAL` for anything else). */
function checkReserved(flags: unknown, what: string): void {
  if (flags !== 0) {
    throw new RangeError(
      `${what} must be 0 (reserved: the kernel fails anything else with EINVAL), got ${shown(flags)}`,
    );
  }
}

/** Throws unless `futexFlags` are futex2 flags for a 32-bit futex (`FUTEX2_SIZE_U32` | ...). */
function checkFutexFlags(futexFlags: unknown, what = "futexFlags"): asserts futexFlags is number {
  checkU32(futexFlags, what);
  if ((futexFlags & abi.FUTEX2_SIZE_MASK) !== abi.FUTEX2_SIZE_U32) {
    throw new RangeError(
      `${what} must include FUTEX2_SIZE_U32 (the kernel implements 32-bit futexes only), got 0x${
        futexFlags.toString(16)
      }`,
    );
  }
  if ((futexFlags & ~FUTEX2_KNOWN) !== 0) {
    throw new RangeError(
      `${what} has bits other than FUTEX2_SIZE_U32, FUTEX2_PRIVATE, FUTEX2_NUMA and FUTEX2_MPOL: 0x${
        futexFlags.toString(16)
      }`,
    );
  }
}

/**
 * `value` (a futex word's value or a mask) as a u32: a number from -2^31 to 2^32 - 1 (a negative
 * one, as an `Int32Array` holds the word, stands for its 32 bits) or a bigint from 0 to 2^32 - 1.
 * The SQE field is 64-bit, but the kernel refuses (`EINVAL`) anything wider than the futex.
 */
function futexU32(value: unknown, what: string): number {
  if (typeof value === "number") {
    if (value >>> 0 === value) return value;
    if ((value | 0) === value) return value >>> 0;
  } else if (typeof value === "bigint") {
    if (value >= 0n && value <= 0xffff_ffffn) return Number(value);
  }
  throw new RangeError(
    `${what} must fit the 32-bit futex word (a number from -2147483648 to 4294967295, or a bigint ` +
      `from 0n to 4294967295n), got ${shown(value)}`,
  );
}

/** {@link futexU32} for a wait/wake mask, which must not be 0 (it would match no one: `EINVAL`). */
function futexMask(mask: unknown): number {
  const bits = futexU32(mask, "mask");
  if (bits === 0) {
    throw new RangeError("mask must not be 0 (it matches no waiter): FUTEX_BITSET_MATCH_ANY matches all");
  }
  return bits;
}

/**
 * Checks the futex word's view and leaves its address in `ADDRESSED[0]` (for `storeAddressed`):
 * it must hold the 4-byte word (8 bytes, 8-byte aligned, with `FUTEX2_NUMA`: the word and its
 * node id, which the kernel may write), at an address aligned to that size (`EINVAL` otherwise).
 */
function futexAddressed(futex: unknown, futexFlags: number, what: string): void {
  if (!ArrayBuffer.isView(futex)) checkBuffer(futex, what);
  const length = bufferAddressed(futex as ArrayBufferView);
  const size = (futexFlags & abi.FUTEX2_NUMA) !== 0 ? 8 : 4;
  if (length < size) {
    throw new RangeError(
      size === 4
        ? `${what} must hold the 4-byte futex word, got ${length} bytes`
        : `${what} must hold 8 bytes with FUTEX2_NUMA (the word, then its node id), got ${length} bytes`,
    );
  }
  if (ADDRESSED[0] % size !== 0) {
    throw new RangeError(
      `${what} must be ${size}-byte aligned (the kernel refuses an unaligned futex with EINVAL), ` +
        `its address is ${ADDRESSED[0]} (its byteOffset: ${byteOffsetOf(futex)})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Futexes.

/**
 * Waits on a futex: the request stays queued while the 32-bit word at `futex` holds `value`, and
 * completes with 0 once a wake whose mask shares a bit with `mask` reaches it (a
 * {@link prepFutexWake}, or `futex(2)` from any thread or process sharing the word). When the word
 * no longer holds `value` as the request starts, it completes at once with `-EAGAIN`. `mask` is
 * usually `FUTEX_BITSET_MATCH_ANY`; `futexFlags` are futex2 flags: `FUTEX2_SIZE_U32`, plus
 * `FUTEX2_PRIVATE` for a futex of this process only (its wakes must say so too), or `FUTEX2_NUMA`
 * (6.16). Cancel it with `prepCancel` or a linked timeout (`-ECANCELED`). `flags` must be 0.
 * Since 6.7.
 */
export function prepFutexWait(
  sqe: Sqe,
  futex: ArrayBufferView,
  value: number | bigint,
  mask: number | bigint,
  futexFlags: number,
  flags = 0,
): Sqe {
  return writeFutex(sqe, abi.IORING_OP_FUTEX_WAIT, futex, futexU32(value, "value"), mask, futexFlags, flags);
}

/**
 * Wakes at most `count` waiters of the futex at `futex` whose mask shares a bit with `mask`
 * (`FUTEX_BITSET_MATCH_ANY`: any): completes with the number woken (0 when none waited).
 * `futexFlags` must match the waiters' (`FUTEX2_PRIVATE` on both sides, or on neither). `count`
 * is from 0 to 2^31 - 1 (the kernel's `int`; `0x7fffffff`: all). `flags` must be 0. Since 6.7.
 */
export function prepFutexWake(
  sqe: Sqe,
  futex: ArrayBufferView,
  count: number,
  mask: number | bigint,
  futexFlags: number,
  flags = 0,
): Sqe {
  checkU32(count, "count", INT_MAX);
  return writeFutex(sqe, abi.IORING_OP_FUTEX_WAKE, futex, count, mask, futexFlags, flags);
}

/** The futex word's address in `addr`, futex2 flags in `fd`, `val` in `addr2`, the mask in `addr3`. */
function writeFutex(
  sqe: Sqe,
  opcode: number,
  futex: ArrayBufferView,
  val: number,
  mask: number | bigint,
  futexFlags: number,
  flags: number,
): Sqe {
  const bits = futexMask(mask);
  checkFutexFlags(futexFlags);
  checkReserved(flags, "flags");
  futexAddressed(futex, futexFlags, "futex");
  writeRw(sqe, opcode, futexFlags, 0, 0, val);
  storeAddressed(sqe);
  const u32 = sqe.u32, b = sqe.base;
  u32[b + OP_FLAGS] = 0; // futex_flags
  u32[b + ADDR3_LO] = bits; // (addr3's high word: zeroed by writeRw's clearing or getSqe)
  return sqe;
}

/**
 * An array of `struct futex_waitv` (24 bytes each: `val` u64, `uaddr` u64, `flags` u32,
 * `__reserved` u32) for {@link prepFutexWaitv}: which futexes to wait on, and the value each must
 * hold. It keeps every futex word's view referenced, so holding the `FutexWaitv` keeps their
 * memory alive. Since 5.16 (for io_uring: 6.7).
 */
export class FutexWaitv {
  // Private, so the array the kernel reads cannot be swapped for a smaller one.
  readonly #bytes: Uint8Array<ArrayBuffer>;
  readonly #words: Uint32Array;
  /** The futex views, by entry (undefined: not set yet), and the bytes each must still hold. */
  readonly #futexes: (ArrayBufferView | undefined)[];
  readonly #sizes: Uint8Array;

  /** An array of `count` entries (1 to `FUTEX_WAITV_MAX`, 128), each to be filled with `set`. */
  constructor(count: number) {
    checkU32(count, "count", abi.FUTEX_WAITV_MAX);
    if (count === 0) throw new RangeError("count must be from 1 to 128 (FUTEX_WAITV_MAX), got 0");
    this.#bytes = new Uint8Array(count * abi.FUTEX_WAITV_SIZE);
    this.#words = new Uint32Array(this.#bytes.buffer);
    this.#futexes = new Array(count).fill(undefined);
    this.#sizes = new Uint8Array(count);
  }

  /** Number of entries. */
  get length(): number {
    return this.#futexes.length;
  }

  /** The array handed to the kernel (24 bytes per entry). */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /**
   * Fills entry `index`: wait on the futex word at `futex` (checked as `prepFutexWait` checks it)
   * while it holds `value`, with futex2 flags `futexFlags` (`FUTEX2_SIZE_U32` | ...). A wake of
   * this entry completes the waitv with `index`.
   */
  set(index: number, futex: ArrayBufferView, value: number | bigint, futexFlags: number): this {
    checkU32(index, "index", this.#futexes.length - 1);
    const val = futexU32(value, "value");
    checkFutexFlags(futexFlags);
    futexAddressed(futex, futexFlags, "futex");
    const addr = ADDRESSED[0];
    const w = this.#words, at = index * (abi.FUTEX_WAITV_SIZE / 4);
    w[at + abi.FUTEX_WAITV.val / 4] = val; // (u64: the high word stays 0)
    w[at + abi.FUTEX_WAITV.uaddr / 4] = addr >>> 0;
    w[at + abi.FUTEX_WAITV.uaddr / 4 + 1] = Math.floor(addr / TWO_32);
    w[at + abi.FUTEX_WAITV.flags / 4] = futexFlags; // (__reserved stays 0)
    this.#futexes[index] = futex;
    this.#sizes[index] = (futexFlags & abi.FUTEX2_NUMA) !== 0 ? 8 : 4;
    return this;
  }

  /** The futex view of entry `index`, or undefined before it is set. */
  futex(index: number): ArrayBufferView | undefined {
    checkU32(index, "index", this.#futexes.length - 1);
    return this.#futexes[index];
  }

  /**
   * The index of the first of the first `count` entries that is not set, or whose futex memory is
   * gone (its buffer detached, an `AlignedBuffer` freed) or shrunk below the word since, or -1:
   * the kernel would use the address recorded, which may belong to other memory by now.
   */
  unusable(count: number = this.#futexes.length): number {
    checkU32(count, "count", this.#futexes.length);
    const futexes = this.#futexes, sizes = this.#sizes;
    for (let i = 0; i < count; i++) {
      const futex = futexes[i];
      if (futex === undefined || byteLengthOf(futex) < sizes[i]) return i;
    }
    return -1;
  }
}

/**
 * Waits on the first `count` futexes of `waitv` (by default all): completes with the index of
 * the entry woken, or at once with `-EAGAIN` if one of the words no longer holds its value as the
 * request starts. `flags` must be 0. Since 6.7.
 */
export function prepFutexWaitv(sqe: Sqe, waitv: FutexWaitv, count?: number, flags = 0): Sqe {
  if (!(waitv instanceof FutexWaitv)) {
    throw new TypeError(`waitv must be a FutexWaitv (new FutexWaitv(n).set(...)), got ${shown(waitv)}`);
  }
  const n = count === undefined ? waitv.length : count;
  checkU32(n, "count", waitv.length);
  if (n === 0) throw new RangeError("count must be at least 1");
  checkReserved(flags, "flags");
  const bad = waitv.unusable(n);
  if (bad >= 0) {
    throw new TypeError(
      waitv.futex(bad) === undefined
        ? `waitv entry ${bad} is not set (FutexWaitv.set)`
        : `waitv entry ${bad}: its futex buffer was detached or shrunk since it was set: set it again`,
    );
  }
  writeRw(sqe, abi.IORING_OP_FUTEX_WAITV, 0, 0, n, 0);
  storeAddressOf(sqe, waitv.bytes, W.addrLo);
  sqe.u32[sqe.base + OP_FLAGS] = 0; // futex_flags
  return sqe;
}

// ---------------------------------------------------------------------------------------------
// waitid.

/**
 * The `siginfo_t` (128 bytes) a `waitid` fills, with getters for the fields it writes. After a
 * completion with 0: `signo` is `SIGCHLD` (0 when `WNOHANG` found no child ready), `pid` the
 * child, `code` a `CLD_*` value, `status` the exit status (`CLD_EXITED`) or the signal
 * (`CLD_KILLED`, `CLD_DUMPED`, `CLD_STOPPED`, ...). Since 2.6.9 (for io_uring: 6.7).
 */
export class Siginfo {
  // Private, so the 128 bytes the kernel writes cannot be swapped for a smaller array.
  readonly #bytes: Uint8Array<ArrayBuffer> = new Uint8Array(abi.SIGINFO_SIZE);
  readonly #words: Int32Array = new Int32Array(this.#bytes.buffer);

  /** The 128 bytes handed to the kernel. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /** `si_signo`: `SIGCHLD`, or 0 when nothing was reported. */
  get signo(): number {
    return this.#words[abi.SIGINFO.signo / 4];
  }

  /** `si_errno` (0). */
  get errno(): number {
    return this.#words[abi.SIGINFO.errno / 4];
  }

  /** `si_code`: `CLD_EXITED`, `CLD_KILLED`, `CLD_DUMPED`, `CLD_TRAPPED`, `CLD_STOPPED` or `CLD_CONTINUED`. */
  get code(): number {
    return this.#words[abi.SIGINFO.code / 4];
  }

  /** `si_pid`: the child's process id. */
  get pid(): number {
    return this.#words[abi.SIGINFO.pid / 4];
  }

  /** `si_uid`: the child's real user id. */
  get uid(): number {
    return this.#words[abi.SIGINFO.uid / 4] >>> 0;
  }

  /** `si_status`: the exit status for `CLD_EXITED`, else the signal number. */
  get status(): number {
    return this.#words[abi.SIGINFO.status / 4];
  }

  /** Zeroes all 128 bytes (before reusing it, to tell a new report from an old one). */
  clear(): this {
    this.#bytes.fill(0);
    return this;
  }
}

/**
 * `waitid(idtype, id, infop, options)`: waits for a child of this process to change state, and
 * completes with 0 (after writing its report to `infop`, when given), or `-ECHILD` when there is
 * no such child. `idtype`: `P_ALL` (`id` 0), `P_PID` (`id` a pid), `P_PGID` (`id` a process group;
 * 0: the caller's) or `P_PIDFD` (`id` a pidfd). `options` must ask for at least one of `WEXITED`,
 * `WSTOPPED` and `WCONTINUED`, plus `WNOHANG`, `WNOWAIT`, `__WALL`, ... `infop` is a
 * {@link Siginfo}, a buffer of at least 128 bytes, or null. `flags` must be 0.
 *
 * The child must not be reaped by anyone else first: Deno reaps the children it spawns itself
 * (`Deno.Command`), so this is for children started otherwise. Since 6.7.
 */
export function prepWaitid(
  sqe: Sqe,
  idtype: number,
  id: number,
  infop: Siginfo | ArrayBufferView | null,
  options: number,
  flags = 0,
): Sqe {
  checkU32(idtype, "idtype", abi.P_PIDFD);
  if (idtype === abi.P_PIDFD) {
    checkFd(id, "id");
  } else {
    checkU32(id, "id", INT_MAX);
    if (idtype === abi.P_ALL && id !== 0) throw new RangeError(`id must be 0 with P_ALL, got ${id}`);
    if (idtype === abi.P_PID && id === 0) throw new RangeError("id must be a pid (> 0) with P_PID, got 0");
  }
  checkFlags(options, "options");
  if ((options & ~WAITID_OPTIONS) !== 0) {
    throw new RangeError(
      `options has bits waitid does not know: 0x${(options & ~WAITID_OPTIONS).toString(16)}`,
    );
  }
  if ((options & WAITID_STATES) === 0) {
    throw new RangeError("options must include WEXITED, WSTOPPED or WCONTINUED (what to wait for)");
  }
  checkReserved(flags, "flags");
  let info = 0;
  if (infop !== null) {
    const bytes = infop instanceof Siginfo ? infop.bytes : infop;
    if (!ArrayBuffer.isView(bytes)) checkBuffer(bytes, "infop");
    const length = bufferAddressed(bytes);
    if (length < abi.SIGINFO_SIZE) {
      throw new RangeError(`infop must hold a 128-byte siginfo_t, got ${length} bytes`);
    }
    info = ADDRESSED[0];
  }
  writeRw(sqe, abi.IORING_OP_WAITID, id, 0, idtype, info); // infop in addr2
  const u32 = sqe.u32, b = sqe.base;
  u32[b + OP_FLAGS] = 0; // waitid_flags
  u32[b + FILE_INDEX] = options >>> 0;
  return sqe;
}

// ---------------------------------------------------------------------------------------------
// epoll.

/**
 * An array of `struct epoll_event` (`events` u32, `data` u64): one entry to hand to
 * {@link prepEpollCtl}, or room for the events {@link prepEpollWait} returns. The layout follows
 * the architecture: packed (12 bytes, `data` at 4) on x86-64, as the kernel declares it there;
 * 16 bytes (`data` at 8) on aarch64 and everywhere else. Since 2.6.
 */
export class EpollEvents {
  // Private, so the array the kernel reads and writes cannot be swapped for a smaller one.
  readonly #bytes: Uint8Array<ArrayBuffer>;
  readonly #view: DataView<ArrayBuffer>;
  readonly #count: number;

  /** An array of `count` zeroed entries (from 1; default 1). */
  constructor(count = 1) {
    checkU32(count, "count", abi.EPOLL_MAX_EVENTS);
    if (count === 0) throw new RangeError("count must be at least 1");
    this.#count = count;
    this.#bytes = new Uint8Array(count * abi.EPOLL_EVENT_SIZE);
    this.#view = new DataView(this.#bytes.buffer);
  }

  /** Number of entries. */
  get length(): number {
    return this.#count;
  }

  /** The packed array handed to the kernel (`EPOLL_EVENT_SIZE` bytes per entry). */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /**
   * Sets entry `index`: `events`, a 32-bit mask (`EPOLLIN | EPOLLET`, ...), and `data`, 64 bits
   * the kernel hands back with each event (a safe integer from 0, or a bigint below 2^64).
   */
  set(index: number, events: number, data: number | bigint): this {
    checkU32(index, "index", this.#count - 1);
    checkBits32(events, "events");
    const at = index * abi.EPOLL_EVENT_SIZE, v = this.#view;
    if (typeof data === "number" && Number.isSafeInteger(data) && data >= 0) {
      v.setUint32(at + abi.EPOLL_EVENT.data, data >>> 0, true);
      v.setUint32(at + abi.EPOLL_EVENT.data + 4, Math.floor(data / TWO_32), true);
    } else if (typeof data === "bigint" && data >= 0n && data <= 0xffff_ffff_ffff_ffffn) {
      v.setBigUint64(at + abi.EPOLL_EVENT.data, data, true);
    } else {
      throw new RangeError(
        `data must be a safe integer from 0 or a bigint from 0n to 2^64 - 1, got ${shown(data)}`,
      );
    }
    v.setUint32(at + abi.EPOLL_EVENT.events, events >>> 0, true);
    return this;
  }

  /** The `events` mask of entry `index` (what is ready, after a wait). */
  events(index: number): number {
    checkU32(index, "index", this.#count - 1);
    return this.#view.getUint32(index * abi.EPOLL_EVENT_SIZE + abi.EPOLL_EVENT.events, true);
  }

  /** The `data` of entry `index`, as a bigint (exact for every 64-bit value). */
  data(index: number): bigint {
    checkU32(index, "index", this.#count - 1);
    return this.#view.getBigUint64(index * abi.EPOLL_EVENT_SIZE + abi.EPOLL_EVENT.data, true);
  }

  /** The `data` of entry `index`, as a number: exact below 2^53 (no BigInt made). */
  dataNumber(index: number): number {
    checkU32(index, "index", this.#count - 1);
    const at = index * abi.EPOLL_EVENT_SIZE + abi.EPOLL_EVENT.data, v = this.#view;
    return v.getUint32(at, true) + v.getUint32(at + 4, true) * TWO_32;
  }
}

/**
 * `epoll_ctl(epfd, op, fd, event)`: `EPOLL_CTL_ADD` or `EPOLL_CTL_MOD` `fd` with the events and
 * data of `event`'s first entry, or `EPOLL_CTL_DEL` it (`event` may then be null). Completes with
 * 0 or `-errno` (`-EEXIST`, `-ENOENT`, `-EPERM` for a file epoll cannot watch, ...). The kernel
 * reads `event` when it takes the SQE: keep it until the CQE. Since 5.6.
 */
export function prepEpollCtl(sqe: Sqe, epfd: number, op: number, fd: number, event: EpollEvents | null): Sqe {
  checkFd(epfd, "epfd");
  checkU32(op, "op", abi.EPOLL_CTL_MOD);
  if (op === 0) throw new RangeError("op must be EPOLL_CTL_ADD, EPOLL_CTL_DEL or EPOLL_CTL_MOD, got 0");
  checkFd(fd);
  if (event !== null && !(event instanceof EpollEvents)) {
    throw new TypeError(
      `event must be an EpollEvents (new EpollEvents().set(0, events, data)), got ${shown(event)}`,
    );
  }
  if (event === null && op !== abi.EPOLL_CTL_DEL) {
    throw new TypeError("event is needed for EPOLL_CTL_ADD and EPOLL_CTL_MOD (null only with EPOLL_CTL_DEL)");
  }
  writeRw(sqe, abi.IORING_OP_EPOLL_CTL, epfd, 0, op, fd);
  if (event !== null) storeAddressOf(sqe, event.bytes, W.addrLo);
  return sqe;
}

/**
 * `epoll_wait(epfd, events, maxEvents)` without a timeout: completes with the number of events
 * written to `events` (from 1 to `maxEvents`, by default all its entries) once at least one is
 * ready, or stays queued until then (bound it with a linked timeout, or cancel it). `flags` must
 * be 0 (6.18 refuses any with `EINVAL`). Since 6.15.
 */
export function prepEpollWait(
  sqe: Sqe,
  epfd: number,
  events: EpollEvents,
  maxEvents?: number,
  flags = 0,
): Sqe {
  checkFd(epfd, "epfd");
  if (!(events instanceof EpollEvents)) {
    throw new TypeError(`events must be an EpollEvents (new EpollEvents(n)), got ${shown(events)}`);
  }
  const n = maxEvents === undefined ? events.length : maxEvents;
  checkU32(n, "maxEvents", events.length);
  if (n === 0) throw new RangeError("maxEvents must be at least 1");
  checkReserved(flags, "flags");
  writeRw(sqe, abi.IORING_OP_EPOLL_WAIT, epfd, 0, n, 0);
  storeAddressOf(sqe, events.bytes, W.addrLo);
  sqe.u32[sqe.base + OP_FLAGS] = 0; // rw_flags
  return sqe;
}

/**
 * Submission and completion queue entries as reusable handles over the mapped ring memory.
 *
 * A ring preallocates one {@link Sqe} per SQ slot and one {@link Cqe} per CQ slot at setup, so
 * handing them out allocates nothing.
 *
 * @module
 */

import { CQE, CQE_SIZE, SQE, SQE_SIZE } from "./abi.ts";
import { ClosedError } from "./errors.ts";
import { badNumber, checkU32, shown } from "./memory.ts";

const TWO_32 = 0x1_0000_0000;
const WORDS_PER_SQE = SQE_SIZE / 4;
/** The `IOSQE_*` bits a kernel knows (6.18): `FIXED_FILE` (bit 0) to `CQE_SKIP_SUCCESS` (bit 6). */
const IOSQE_BITS = 0x7f;

/** Word (u32) indexes of the SQE fields, relative to an SQE's first word. */
export const W = {
  head: SQE.opcode / 4, // opcode u8, flags u8, ioprio u16
  fd: SQE.fd / 4,
  offLo: SQE.off / 4,
  offHi: SQE.off / 4 + 1,
  addrLo: SQE.addr / 4,
  addrHi: SQE.addr / 4 + 1,
  len: SQE.len / 4,
  opFlags: SQE.opFlags / 4,
  userLo: SQE.userData / 4,
  userHi: SQE.userData / 4 + 1,
  bufIndex: SQE.bufIndex / 4, // buf_index u16, personality u16
  spliceFdIn: SQE.spliceFdIn / 4,
  addr3Lo: SQE.addr3 / 4,
  addr3Hi: SQE.addr3 / 4 + 1,
  pad2Lo: SQE.pad2 / 4,
  pad2Hi: SQE.pad2 / 4 + 1,
} as const;

// As plain constants V8 folds them into the code; `W.userLo` would be a load on every call.
const USER_LO = W.userLo, USER_HI = W.userHi;
const INV_TWO_32 = 1 / TWO_32;

/** Throws a `RangeError` unless `v` can be a 64-bit user_data (a safe integer or a bigint). */
export function checkUserData(v: unknown): asserts v is number | bigint {
  checkU64(v, "user_data");
}

/**
 * Throws a `RangeError` (a `TypeError` for neither a number nor a bigint) naming `what` unless
 * `v` is a u64: a non-negative safe integer, or a
 * bigint below 2^64 (internal: user_data, and other 64-bit SQE fields).
 */
export function checkU64(v: unknown, what: string): asserts v is number | bigint {
  if (typeof v === "number") {
    if (v >= 0 && v <= Number.MAX_SAFE_INTEGER && Number.isInteger(v)) return;
  } else if (typeof v === "bigint") {
    if (v >= 0n && v <= 0xffff_ffff_ffff_ffffn) return;
  }
  if (typeof v === "number" && Number.isInteger(v) && v > Number.MAX_SAFE_INTEGER && v < 2 ** 64) {
    throw new RangeError(
      `${what} as a number must be at most 2^53-1 (Number.MAX_SAFE_INTEGER), got ${v}: pass a bigint`,
    );
  }
  throw badNumber(v, `${what} must be an integer from 0 to 2^64-1, got ${shown(v)}`, true);
}

/**
 * -1 as a bigint, made once: `-1n` in an expression is a negation run (and a BigInt made) each
 * time. An offset of `-1n` is "the file's position", as -1 (internal).
 */
export const MINUS_ONE_N = -1n;

/**
 * Writes a checked 64-bit value (a safe integer or a bigint) as two u32 words at `u32[at]`
 * (internal: the preps and the ring's one-call forms).
 */
export function writeU64(u32: Uint32Array, at: number, value: number | bigint): void {
  if (value === MINUS_ONE_N) { // (-1n, "the file's position": all ones, without bigint arithmetic)
    u32[at] = u32[at + 1] = 0xffffffff;
    return;
  }
  if (typeof value === "number") {
    const lo = value >>> 0;
    u32[at] = lo;
    u32[at + 1] = (value - lo) * INV_TWO_32; // exact, and cheaper than a division
  } else {
    u32[at] = Number(value & 0xffff_ffffn);
    u32[at + 1] = Number((value >> 32n) & 0xffff_ffffn);
  }
}

/**
 * The error for an {@link Sqe} whose memory is gone: its ring was closed (or the SQE memory
 * transferred away). Internal: the preps throw it too.
 */
export function staleSqe(): ClosedError {
  return new ClosedError("the ring of this Sqe (or its SQE memory, if that was transferred)");
}

/**
 * Zeroes SQE `slot` of an SQE array seen as 8-byte words (internal: `getSqe` and `Sqe.clear`).
 * Eight stores of +0.0 (all bits zero): about twice as fast as sixteen u32 stores and several
 * times faster than a ranged `fill` (a builtin call).
 */
export function zeroSqe(f: Float64Array, slot: number): void {
  const b = slot * 8;
  f[b] = 0;
  f[b + 1] = 0;
  f[b + 2] = 0;
  f[b + 3] = 0;
  f[b + 4] = 0;
  f[b + 5] = 0;
  f[b + 6] = 0;
  f[b + 7] = 0;
}

/**
 * One submission queue entry: a handle to slot `slot` of the SQE array. Obtain it from
 * `IoUring.getSqe()`, fill it with a `prep*` function, then set `userData` and flags. It is only
 * valid until the next `submit()`. An SQE is 64 bytes, or 128 on a ring made with
 * `IoUringOptions.sqe128` (5.19), whose second half extends the command area of
 * `IORING_OP_URING_CMD` (see {@link Sqe.cmdOffset}). Since 5.1.
 */
export class Sqe {
  /** The SQE array as 32-bit words (shared by all handles of a ring). */
  readonly u32: Uint32Array;
  /** The SQE array as bytes. */
  readonly u8: Uint8Array;
  /** Index of this SQE's first word in {@link Sqe.u32}. */
  readonly base: number;
  /** This SQE's slot in the SQE array. */
  readonly slot: number;
  /** This SQE's size in bytes: 64, or 128 on a ring made with `IoUringOptions.sqe128` (5.19). */
  readonly size: 64 | 128;
  readonly #f64: Float64Array; // the same memory as 8-byte words, for clear()
  /**
   * Set when the ring closed (see {@link Sqe.invalidate}): one field load for the setters, where
   * asking the detached array its length measured 3–4% of a batched NOP round trip.
   */
  #stale = false;

  /**
   * Wraps slot `slot` of an SQE array of `size`-byte SQEs (internal: rings create these). `f64` is
   * the same memory as a Float64Array (shared by a ring's handles; made here when not given, so
   * `u32` must start on an 8-byte boundary, as SQE arrays do).
   */
  constructor(u32: Uint32Array, u8: Uint8Array, slot: number, f64?: Float64Array, size: 64 | 128 = 64) {
    this.u32 = u32;
    this.u8 = u8;
    this.slot = slot;
    this.size = size;
    this.base = slot * (size >>> 2);
    this.#f64 = f64 ?? new Float64Array(u32.buffer, u32.byteOffset, u32.length >>> 1);
    // Frozen: a caller cannot put a getter in place of `u32` or `base`, whose code would run in the
    // middle of a prep (between the buffer's address being taken and stored).
    Object.freeze(this);
  }

  /**
   * Whether `value` is an `Sqe` made by a ring (internal: the preps' first check). Asked of the
   * object's own private field, not its prototype: a proxy of an Sqe, or an object that copies one's
   * fields, is not one (its getters would run the caller's code in the middle of a prep).
   */
  static is(value: unknown): value is Sqe {
    return typeof value === "object" && value !== null && #f64 in value;
  }

  /**
   * Marks the handle as belonging to a closed ring (internal: rings call this as they unmap the
   * SQE memory): every member then throws `ClosedError`.
   */
  invalidate(): void {
    this.#stale = true;
  }

  /**
   * Zeroes all of the SQE's {@link Sqe.size} bytes (`getSqe()` already did). Like every member,
   * throws `ClosedError` once the ring is closed (the memory is gone).
   */
  clear(): this {
    if (this.#stale || this.u8.length === 0) throw staleSqe();
    const unit = this.base / WORDS_PER_SQE; // in 64-byte units
    zeroSqe(this.#f64, unit);
    if (this.size === 128) zeroSqe(this.#f64, unit + 1);
    return this;
  }

  /**
   * The byte offset in {@link Sqe.u8} of this SQE's command area (`sqe->cmd`, at byte 48):
   * `IORING_OP_URING_CMD` passes the driver {@link Sqe.cmdSize} bytes from there. Write a
   * command in place with `sqe.u8.set(bytes, sqe.cmdOffset)` (nothing is allocated), or pass it
   * to `prepUringCmd`. Since 5.19.
   */
  get cmdOffset(): number {
    return this.base * 4 + SQE.addr3;
  }

  /** Bytes in this SQE's command area: 16 in a 64-byte SQE, 80 in a 128-byte one. Since 5.19. */
  get cmdSize(): number {
    return this.size - SQE.addr3;
  }

  /** The opcode byte. */
  get opcode(): number {
    const v = this.u8[this.base * 4 + SQE.opcode];
    if (v === undefined) throw staleSqe();
    return v;
  }

  /** The `IOSQE_*` flags byte. */
  get flags(): number {
    const v = this.u8[this.base * 4 + SQE.flags];
    if (v === undefined) throw staleSqe();
    return v;
  }

  /**
   * Replaces the `IOSQE_*` flags (e.g. `IOSQE_IO_LINK`): bits 0 to 6, up to
   * `IOSQE_CQE_SKIP_SUCCESS` (the kernel refuses any other, failing the SQE at submission).
   */
  setFlags(flags: number): this {
    if (typeof flags !== "number" || (flags & IOSQE_BITS) !== flags) checkU32(flags, "flags", IOSQE_BITS);
    if (this.#stale) throw staleSqe();
    this.u8[this.base * 4 + SQE.flags] = flags;
    return this;
  }

  /** Adds `IOSQE_*` flags (bits 0 to 6, as {@link Sqe.setFlags}) to those already set. */
  addFlags(flags: number): this {
    if (typeof flags !== "number" || (flags & IOSQE_BITS) !== flags) checkU32(flags, "flags", IOSQE_BITS);
    if (this.#stale) throw staleSqe();
    this.u8[this.base * 4 + SQE.flags] |= flags;
    return this;
  }

  /**
   * Sets the 64-bit `user_data` echoed in the CQE. A number must be a safe non-negative integer
   * (the cheap path: no BigInt is created); a bigint may be any value in [0, 2^64).
   */
  setUserData(value: number | bigint): this {
    if (this.#stale) throw staleSqe();
    const u32 = this.u32, b = this.base;
    if (typeof value === "number" && value >>> 0 === value) { // the common case: a u32 (one compare)
      u32[b + USER_LO] = value;
      u32[b + USER_HI] = 0;
      return this;
    }
    checkUserData(value);
    writeU64(u32, b + USER_LO, value);
    return this;
  }

  /** The `user_data` as a bigint. */
  get userData(): bigint {
    const hi = this.u32[this.base + W.userHi];
    if (hi === undefined) throw staleSqe();
    return (BigInt(hi) << 32n) | BigInt(this.u32[this.base + W.userLo]);
  }

  /** Sets `ioprio` (I/O priority, or per-opcode flags for some opcodes). */
  setIoprio(ioprio: number): this {
    if (typeof ioprio !== "number" || (ioprio & 0xffff) !== ioprio) checkU32(ioprio, "ioprio", 0xffff);
    const w = this.u32[this.base + W.head];
    if (w === undefined) throw staleSqe();
    this.u32[this.base + W.head] = ((w & 0xffff) | ((ioprio & 0xffff) << 16)) >>> 0;
    return this;
  }

  /** Sets the `personality` registered with `IORING_REGISTER_PERSONALITY` (5.6). */
  setPersonality(id: number): this {
    if (typeof id !== "number" || (id & 0xffff) !== id) checkU32(id, "personality", 0xffff);
    const w = this.u32[this.base + W.bufIndex];
    if (w === undefined) throw staleSqe();
    this.u32[this.base + W.bufIndex] = ((w & 0xffff) | ((id & 0xffff) << 16)) >>> 0;
    return this;
  }

  /** Reads the SQE as a little-endian copy of its {@link Sqe.size} bytes (for tests and debugging). */
  bytes(): Uint8Array {
    if (this.u8.length === 0) throw staleSqe();
    return this.u8.slice(this.base * 4, this.base * 4 + this.size);
  }
}

// CQE word indexes as module constants: V8 folds these, while `CQE.x` of the imported object
// is a load on every call (the reap loop runs this once per completion).
const CQE_WORDS = CQE_SIZE / 4, CQE_USER_LO = CQE.userData / 4, CQE_USER_HI = CQE_USER_LO + 1;
const CQE_RES = CQE.res / 4, CQE_FLAGS = CQE.flags / 4;

/**
 * One completion: `userData`, `res` (a result, or `-errno` when negative) and `flags`, and on a
 * ring of 32-byte CQEs (`IoUringOptions.cqe32`, 5.19) the two extra words `extra1`/`extra2`.
 * Copied out of the CQ when peeked, so it stays readable after `cqAdvance()`, until the same CQ
 * slot is peeked again (one ring lap later). Since 5.1.
 */
export class Cqe {
  /** Low 32 bits of `user_data`. */
  userDataLo = 0;
  /** High 32 bits of `user_data`. */
  userDataHi = 0;
  /** The result: bytes transferred, an fd, 0, or `-errno`. */
  res = 0;
  /** `IORING_CQE_F_*` flags. */
  flags = 0;
  /** Low 32 bits of `big_cqe[0]` ({@link Cqe.extra1}); 0 on a ring of 16-byte CQEs. */
  extra1Lo = 0;
  /** High 32 bits of `big_cqe[0]`. */
  extra1Hi = 0;
  /** Low 32 bits of `big_cqe[1]` ({@link Cqe.extra2}); 0 on a ring of 16-byte CQEs. */
  extra2Lo = 0;
  /** High 32 bits of `big_cqe[1]`. */
  extra2Hi = 0;

  /**
   * Fills this handle from the 16 bytes at `index` × 16 of the CQE array (internal: rings call
   * this; a ring of 32-byte CQEs passes twice the slot, then calls {@link Cqe.loadExtra}).
   */
  load(u32: Uint32Array, i32: Int32Array, index: number): this {
    const w = index * CQE_WORDS;
    this.userDataLo = u32[w + CQE_USER_LO];
    this.userDataHi = u32[w + CQE_USER_HI];
    this.res = i32[w + CQE_RES];
    this.flags = u32[w + CQE_FLAGS];
    return this;
  }

  /**
   * Fills the extra words from the 16 bytes after those `load` read at `index` (internal: rings
   * of 32-byte CQEs call this).
   */
  loadExtra(u32: Uint32Array, index: number): this {
    const w = (index + 1) * CQE_WORDS;
    this.extra1Lo = u32[w];
    this.extra1Hi = u32[w + 1];
    this.extra2Lo = u32[w + 2];
    this.extra2Hi = u32[w + 3];
    return this;
  }

  /**
   * The first extra word of a 32-byte CQE (`big_cqe[0]`, `IoUringOptions.cqe32`) as a bigint: what
   * the request put there (a NOP with `prepNopCqe32`, a driver's `IORING_OP_URING_CMD`). Since 5.19.
   */
  get extra1(): bigint {
    return (BigInt(this.extra1Hi) << 32n) | BigInt(this.extra1Lo);
  }

  /** The second extra word of a 32-byte CQE (`big_cqe[1]`) as a bigint. Since 5.19. */
  get extra2(): bigint {
    return (BigInt(this.extra2Hi) << 32n) | BigInt(this.extra2Lo);
  }

  /** `user_data` as a bigint (exact for every 64-bit value). */
  get userData(): bigint {
    return (BigInt(this.userDataHi) << 32n) | BigInt(this.userDataLo);
  }

  /** `user_data` as a number: exact below 2^53 (the cheap path, no BigInt). */
  get userDataNumber(): number {
    return this.userDataHi * TWO_32 + this.userDataLo;
  }
}

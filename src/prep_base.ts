/**
 * The base every `prep*` helper builds on (internal): writing an SQE's common fields, and the
 * checks that an SQE handle is real and open.
 *
 * @module
 */

import * as abi from "./abi.ts";
import { ADDRESSED, addressInto, byteLengthOf, checkBuffer, checkOffset, checkU32, shown } from "./memory.ts";
import { MINUS_ONE_N, Sqe, staleSqe, W, writeU64 } from "./sqe.ts";

/** A file offset: a non-negative safe integer, or a bigint for the full 63-bit range. */
export type Offset = number | bigint;

/**
 * An offset checked where -1 (also given as `-1n`) means the fd's own position (a read's or
 * write's, `IORING_FEAT_RW_CUR_POS`, 5.6; a splice's): -1, else a file offset (`what` names it
 * in the error).
 */
export function offsetOrPosition(offset: Offset | -1, what: string): Offset | -1 {
  if (offset === -1 || offset === MINUS_ONE_N) return -1;
  checkOffsetOrPosition(offset, what);
  return offset;
}

/**
 * Throws unless `offset` is -1 or `-1n` (the fd's position) or a file offset; returns nothing,
 * so a hot path that stores `offset` as it is allocates nothing (all ones either way).
 */
export function checkOffsetOrPosition(offset: Offset | -1, what: string): void {
  if (offset === -1 || offset === MINUS_ONE_N) return;
  if (
    typeof offset === "number"
      ? Number.isSafeInteger(offset) && offset < 0
      : typeof offset === "bigint" && offset < 0n
  ) {
    throw new RangeError(`${what} must be -1 (the fd's position) or a file offset from 0, got ${offset}`);
  }
  checkOffset(offset, what);
}

const TWO_32 = 0x1_0000_0000;
/** 2^-32: multiplying by it is exact and several times cheaper than dividing by 2^32. */
const INV_TWO_32 = 1 / TWO_32;
// The SQE word indexes prepRw writes, as module constants: V8 folds these into the code, while
// each `W.x` of the imported object is a real load (~3 ns per prep).
const HEAD = W.head, FD = W.fd, OFF_LO = W.offLo, OFF_HI = W.offHi, ADDR_LO = W.addrLo;
const ADDR_HI = W.addrHi, LEN = W.len, OP_FLAGS = W.opFlags, BUF_INDEX = W.bufIndex;
const SPLICE_FD_IN = W.spliceFdIn, ADDR3_LO = W.addr3Lo, ADDR3_HI = W.addr3Hi;
const PAD2_LO = W.pad2Lo, PAD2_HI = W.pad2Hi;

/** 1 for each opcode whose `ioprio` holds its own flags (`IORING_RECVSEND_*`, `IORING_ACCEPT_*`). */
const IOPRIO_AS_FLAGS = new Uint8Array(256);
for (
  const op of [
    abi.IORING_OP_SENDMSG,
    abi.IORING_OP_RECVMSG,
    abi.IORING_OP_ACCEPT,
    abi.IORING_OP_SEND,
    abi.IORING_OP_RECV,
    abi.IORING_OP_SEND_ZC,
    abi.IORING_OP_SENDMSG_ZC,
    abi.IORING_OP_RECV_ZC,
  ]
) IOPRIO_AS_FLAGS[op] = 1;

/**
 * The `IOSQE_*` flags that say how an op names its file or buffer (`IOSQE_FIXED_FILE`,
 * `IOSQE_BUFFER_SELECT`: the preps that need them set them), where they sit in the SQE's first
 * word: they belong to the op, and a second prep over the same SQE drops them.
 */
const OPERAND_FLAGS = (abi.IOSQE_FIXED_FILE | abi.IOSQE_BUFFER_SELECT) << 8;

/**
 * Zeroes what an earlier prep of the same SQE may have left in the fields `prepRw` does not
 * write: the per-opcode flags, buf_index (personality kept), splice_fd_in/file_index, addr3 and
 * the last 8 bytes (which 6.14+ reads as `attr_type_mask` for reads and writes: a stale value
 * there fails them), the flags that named the earlier op's file or buffer ({@link OPERAND_FLAGS}:
 * a read left with `IOSQE_BUFFER_SELECT` would take a provided buffer instead of the caller's, a
 * close left with `IOSQE_FIXED_FILE` would close a registered slot instead of the fd), and the
 * `ioprio` of an opcode that reads it as its own flags (the socket opcodes: a read would take
 * such flags as an I/O priority, and fail with `EINVAL`); the `ioprio` of any other opcode is the
 * caller's I/O priority, and stays, as do the other flags (links, drain, async, skip success).
 */
function dropEarlierPrep(u32: Uint32Array, b: number): void {
  let head = u32[b + HEAD] & ~OPERAND_FLAGS;
  if (IOPRIO_AS_FLAGS[head & 0xff] === 1) head &= 0xffff;
  u32[b + HEAD] = head >>> 0;
  u32[b + OP_FLAGS] = 0;
  u32[b + BUF_INDEX] = u32[b + BUF_INDEX] & 0xffff0000; // keep personality
  u32[b + SPLICE_FD_IN] = 0;
  u32[b + ADDR3_LO] = 0;
  u32[b + ADDR3_HI] = 0;
  u32[b + PAD2_LO] = 0;
  u32[b + PAD2_HI] = 0;
}

/**
 * The base of every prep helper: sets opcode, fd, address, length and offset, as `prepRw`
 * does, without its checks (each helper checks its own arguments). Every other op field ends up
 * zero: `getSqe()` hands out zeroed SQEs, so on the usual path (one prep per SQE) there is
 * nothing more to write (~4 ns saved per SQE); when the SQE already holds an opcode (a second
 * prep over the same handle, or a slot with stale bytes) the earlier op's fields are cleared
 * first (with the `ioprio` the socket preps set as their flags, and `IOSQE_FIXED_FILE` and
 * `IOSQE_BUFFER_SELECT`). Otherwise leaves `flags`, `ioprio`, `personality` and `user_data`
 * alone.
 */
export function writeRw(
  sqe: Sqe,
  opcode: number,
  fd: number,
  addr: number,
  len: number,
  offset: Offset,
): Sqe {
  if (!Sqe.is(sqe)) throw notAnSqe(sqe); // (a proxy or a look-alike: its getters could run here)
  const u32 = sqe.u32, b = sqe.base;
  let head = u32[b + HEAD];
  if (head === undefined) throw staleSqe(); // its memory is gone
  // Opcode 0 is NOP, which leaves nothing behind unless it carried nop_flags (prepNopResult,
  // prepNopCqe32): those, and the fields they name, must not stay for the next opcode.
  if ((head & 0xff) !== 0 || u32[b + OP_FLAGS] !== 0) {
    dropEarlierPrep(u32, b);
    head = u32[b + HEAD];
  }
  // opcode is byte 0; keep flags (byte 1) and ioprio (bytes 2-3).
  u32[b + HEAD] = ((head & 0xffffff00) | opcode) >>> 0;
  u32[b + FD] = fd;
  if (typeof offset === "number") { // writeU64, inlined: the common case of every prep
    const lo = offset >>> 0;
    u32[b + OFF_LO] = lo;
    u32[b + OFF_HI] = (offset - lo) * INV_TWO_32;
  } else {
    writeU64(u32, b + OFF_LO, offset);
  }
  const addrLo = addr >>> 0;
  u32[b + ADDR_LO] = addrLo;
  u32[b + ADDR_HI] = (addr - addrLo) * INV_TWO_32;
  u32[b + LEN] = len;
  return sqe;
}

/**
 * Sets the SQE's `ioprio` (bytes 2-3), which the socket opcodes read as their own flags: written
 * whole, so flags from an earlier prep of the same SQE do not linger.
 */
export function setIoprio(sqe: Sqe, ioprio: number): void {
  const u32 = sqe.u32, b = sqe.base;
  u32[b + HEAD] = ((u32[b + HEAD] & 0xffff) | (ioprio << 16)) >>> 0;
}

/**
 * Writes the address {@link bufferAddressed} left in `ADDRESSED[0]` into `sqe`'s `addr` field
 * (after `writeRw`, which wrote 0 there): the address never travels as a number, which would be
 * a heap allocation per call.
 */
export function storeAddressed(sqe: Sqe): void {
  storeAddressedAt(sqe, ADDR_LO);
}

/**
 * Writes `view`'s address into `sqe`'s 64-bit field at word `word` (`W.addrLo`, `W.offLo`,
 * `W.addr3Lo`): the address never travels as a number, which would be a heap allocation per
 * call (a double above the small-integer range, passed to a function not inlined).
 */
export function storeAddressOf(sqe: Sqe, view: ArrayBufferView, word: number): void {
  addressInto(view);
  storeAddressedAt(sqe, word);
}

/** Writes the address in `ADDRESSED[0]` into `sqe`'s 64-bit field at word `word`. */
function storeAddressedAt(sqe: Sqe, word: number): void {
  const u32 = sqe.u32, at = sqe.base + word;
  const addr = ADDRESSED[0];
  const lo = addr >>> 0;
  u32[at] = lo;
  u32[at + 1] = (addr - lo) * INV_TWO_32;
}

/**
 * The `file_index` of an opcode that makes or places a direct descriptor: the slot + 1, or
 * `IORING_FILE_INDEX_ALLOC` ("any free slot") as it is. Checks the slot first (at most `max`).
 */
export function targetSlot(fileIndex: number, what = "fileIndex", max: number = abi.MAX_FILE_INDEX): number {
  if (fileIndex === abi.IORING_FILE_INDEX_ALLOC) return fileIndex;
  checkU32(fileIndex, what, max);
  return fileIndex + 1;
}

/**
 * The byte count an SQE passes for the optional buffer `view`: `len` when given (at most the
 * view's length; with no view, only 0), else the view's whole length (below 4 GiB). `what` and
 * `lenWhat` name the two in errors.
 */
export function optionalLength(
  view: ArrayBufferView | null,
  len: number | undefined,
  what: string,
  lenWhat: string,
): number {
  let length = 0;
  if (view !== null) {
    checkBuffer(view, what);
    length = byteLengthOf(view);
  }
  if (len !== undefined) {
    checkU32(len, lenWhat);
    if (len > length) {
      const holds = view === null ? `nothing (there is no ${what})` : `${length} bytes`;
      throw new RangeError(`${lenWhat} is ${len}, but ${what} holds ${holds}`);
    }
    return len;
  }
  if (length > 0xffffffff) {
    throw new RangeError(`${what} is larger than 4 GiB - 1 bytes: pass a smaller ${lenWhat}`);
  }
  return length;
}

/** Throws unless `sqe` is an {@link Sqe} (of a ring that is open: see `staleSqe`). */
export function checkSqe(sqe: unknown): asserts sqe is Sqe {
  if (!Sqe.is(sqe)) throw notAnSqe(sqe);
  if (sqe.u32[sqe.base + HEAD] === undefined) throw staleSqe();
}

/**
 * The error for a prep handed something that is not an {@link Sqe}: `null` is what `getSqe()`
 * returns when the SQ is full.
 */
export function notAnSqe(sqe: unknown): TypeError {
  if (sqe === null) {
    return new TypeError(
      "sqe is null: getSqe() returns null when the SQ is full (submit, then get one again)",
    );
  }
  return new TypeError(`sqe must be an Sqe from ring.getSqe(), got ${shown(sqe)}`);
}

/**
 * `prep*` helpers: each fills one SQE for one opcode, the way liburing's `io_uring_prep_*` do,
 * through a single base, {@link prepRw}. Arguments are checked before anything reaches the
 * kernel. Buffers, paths and structs an SQE points at must stay referenced until its CQE.
 *
 * A prep helper writes the opcode's fields only; set `userData` and `IOSQE_*` flags on the SQE
 * before or after it. `getSqe()` hands out zeroed SQEs.
 *
 * @module
 */

import * as abi from "./abi.ts";
import {
  badNumber,
  bufferAddressed,
  byteLengthOf,
  checkBits32,
  checkBuffer,
  checkCString,
  checkDirFd,
  checkFd,
  checkFlagBits,
  checkFlags,
  checkLength,
  checkOffset,
  checkU32,
  shown,
} from "./memory.ts";
import { checkUserData, Sqe, staleSqe, W, writeU64 } from "./sqe.ts";
import { checkIovecsUnchanged, Iovecs, Timespec } from "./structs.ts";

import {
  checkOffsetOrPosition,
  checkSqe,
  notAnSqe,
  type Offset,
  storeAddressed,
  storeAddressOf,
  targetSlot as fixedTarget,
  writeRw,
} from "./prep_base.ts";

export type { Offset } from "./prep_base.ts";

const OP_NOP = abi.IORING_OP_NOP;
const HEAD = W.head, FD = W.fd, OP_FLAGS = W.opFlags;

/**
 * Writes a user_data-style 64-bit key (number or bigint) into the `addr` field; check it with
 * `checkUserData` before the opcode is written, so a refused key leaves no cancel behind.
 */
function writeKey(sqe: Sqe, key: number | bigint): void {
  writeU64(sqe.u32, sqe.base + W.addrLo, key);
}

/**
 * `prepRw(sqe, opcode, fd, addr, len, offset)`: writes an SQE's opcode, fd, address, length and
 * offset for an opcode no helper covers, as liburing's `io_uring_prep_rw` does, after checking
 * that each fits its field: `opcode` 0 to 255, `fd` a 32-bit integer (-1 and `AT_FDCWD` included,
 * or a fixed file's index), `addr` an address (a safe integer ≥ 0), `len` 0 to 2^32 - 1, `offset`
 * a safe integer or bigint from 0 to 2^63 - 1 (-1 or `-1n`: "the file's own position", all ones). Every
 * other op field is left zero (see the prep helpers); `flags`, `ioprio`, `personality` and
 * `user_data` are left alone. Since 5.1.
 */
export function prepRw(sqe: Sqe, opcode: number, fd: number, addr: number, len: number, offset: Offset): Sqe {
  checkSqe(sqe);
  checkU32(opcode, "opcode", 0xff);
  if (typeof fd !== "number" || !Number.isInteger(fd) || fd < -0x8000_0000 || fd > 0x7fff_ffff) {
    throw badNumber(fd, `fd must be a 32-bit integer, got ${shown(fd)}`);
  }
  if (typeof addr !== "number" || !Number.isSafeInteger(addr) || addr < 0) {
    throw badNumber(addr, `addr must be an address (a safe integer from 0), got ${shown(addr)}`);
  }
  checkU32(len, "len");
  checkOffsetOrPosition(offset, "offset");
  return writeRw(sqe, opcode, fd, addr, len, offset);
}

/** Throws unless `ts` is a {@link Timespec} (the kernel reads 16 bytes at its address). */
function checkTimespec(ts: unknown): void {
  if (!(ts instanceof Timespec)) throw new TypeError("ts must be a Timespec (new Timespec(ms))");
}

/**
 * Throws unless `iovecs` is an {@link Iovecs} (an array of buffers must be wrapped first) whose
 * buffers are as they were when it was built (see `checkIovecsUnchanged`); `what` names the prep.
 */
function checkIovecs(iovecs: unknown, what: string): void {
  if (!(iovecs instanceof Iovecs)) throw new TypeError("iovecs must be an Iovecs (new Iovecs([buf, ...]))");
  checkIovecsUnchanged(iovecs, what);
}

/**
 * A no-op that completes with 0: measures the ring itself. Since 5.1.
 *
 * On an SQE that holds no opcode yet (as `getSqe()` hands them out) or already a plain NOP (no
 * `nop_flags`), every field but `fd` is already what a NOP needs (see {@link prepRw}), so only
 * `fd` is written (-1): one store instead of seven, ~1.5 ns of a ~80 ns batched NOP round trip.
 */
export function prepNop(sqe: Sqe): Sqe {
  // (No brand check on this path, the NOP bench's: a NOP takes no address, so a look-alike's
  // getters have nothing to disturb, and one with the fields of an Sqe fills its own array.)
  if (sqe == null) throw notAnSqe(sqe);
  const u32 = sqe.u32, b = sqe.base;
  const head = u32?.[b + HEAD];
  if (head === undefined) throw Sqe.is(sqe) ? staleSqe() : notAnSqe(sqe);
  if ((head & 0xff) === OP_NOP && u32[b + OP_FLAGS] === 0) { // (a NOP with nop_flags is rewritten whole)
    u32[b + FD] = 0xffffffff; // fd -1
    return sqe;
  }
  return writeRw(sqe, abi.IORING_OP_NOP, -1, 0, 0, 0);
}

/**
 * `pread(fd, buf, buf.byteLength, offset)`; `offset` -1 (or `-1n`) reads at the file's position
 * and moves it, as `read(2)` does. Since 5.6.
 */
export function prepRead(sqe: Sqe, fd: number, buf: ArrayBufferView, offset: Offset | -1, rwFlags = 0): Sqe {
  checkFd(fd);
  const length = bufferAddressed(buf);
  checkOffsetOrPosition(offset, "offset");
  checkFlags(rwFlags, "rwFlags");
  checkLength(length);
  writeRw(sqe, abi.IORING_OP_READ, fd, 0, length, offset);
  storeAddressed(sqe);
  sqe.u32[sqe.base + OP_FLAGS] = rwFlags;
  return sqe;
}

/**
 * `pwrite(fd, buf, buf.byteLength, offset)`; `offset` -1 (or `-1n`) writes at the file's position
 * and moves it, as `write(2)` does. Since 5.6.
 */
export function prepWrite(sqe: Sqe, fd: number, buf: ArrayBufferView, offset: Offset | -1, rwFlags = 0): Sqe {
  checkFd(fd);
  const length = bufferAddressed(buf);
  checkOffsetOrPosition(offset, "offset");
  checkFlags(rwFlags, "rwFlags");
  checkLength(length);
  writeRw(sqe, abi.IORING_OP_WRITE, fd, 0, length, offset);
  storeAddressed(sqe);
  sqe.u32[sqe.base + OP_FLAGS] = rwFlags;
  return sqe;
}

/**
 * `preadv2(fd, iovecs, offset, rwFlags)`; `offset` -1 (or `-1n`) reads at the file's position and
 * moves it, as `read(2)` does (5.6). Since 5.1.
 */
export function prepReadv(sqe: Sqe, fd: number, iovecs: Iovecs, offset: Offset | -1, rwFlags = 0): Sqe {
  checkFd(fd);
  checkOffsetOrPosition(offset, "offset");
  checkFlags(rwFlags, "rwFlags");
  checkIovecs(iovecs, "prepReadv");
  writeRw(sqe, abi.IORING_OP_READV, fd, 0, iovecs.length, offset);
  storeAddressOf(sqe, iovecs.bytes, W.addrLo);
  sqe.u32[sqe.base + W.opFlags] = rwFlags;
  return sqe;
}

/**
 * `pwritev2(fd, iovecs, offset, rwFlags)`; `offset` -1 (or `-1n`) writes at the file's position
 * and moves it, as `write(2)` does (5.6). Since 5.1.
 */
export function prepWritev(sqe: Sqe, fd: number, iovecs: Iovecs, offset: Offset | -1, rwFlags = 0): Sqe {
  checkFd(fd);
  checkOffsetOrPosition(offset, "offset");
  checkFlags(rwFlags, "rwFlags");
  checkIovecs(iovecs, "prepWritev");
  writeRw(sqe, abi.IORING_OP_WRITEV, fd, 0, iovecs.length, offset);
  storeAddressOf(sqe, iovecs.bytes, W.addrLo);
  sqe.u32[sqe.base + W.opFlags] = rwFlags;
  return sqe;
}

/**
 * `preadv2(fd, iovecs, offset, rwFlags)` into registered buffer `bufIndex`: every buffer of
 * `iovecs` must lie inside that one registered buffer (the kernel reads each iovec's address as
 * a place in it). The kernel copies the iovec array when it takes the SQE and checks it when the
 * read is issued: an iovec that reaches outside the registered buffer, an empty one (refused
 * here), or a `bufIndex` with no buffer registered fails the read with `EFAULT`. `offset` -1: the
 * file's position, as for {@link prepReadv}. Since 6.15.
 */
export function prepReadvFixed(
  sqe: Sqe,
  fd: number,
  iovecs: Iovecs,
  offset: Offset | -1,
  bufIndex: number,
  rwFlags = 0,
): Sqe {
  return writeVecFixed(
    sqe,
    abi.IORING_OP_READV_FIXED,
    fd,
    iovecs,
    offset,
    bufIndex,
    rwFlags,
    "prepReadvFixed",
  );
}

/**
 * `pwritev2(fd, iovecs, offset, rwFlags)` from registered buffer `bufIndex`: every buffer of
 * `iovecs` must lie inside it, as for {@link prepReadvFixed} (`EFAULT` otherwise); `offset` -1: the
 * file's position, as for {@link prepWritev}. Since 6.15.
 */
export function prepWritevFixed(
  sqe: Sqe,
  fd: number,
  iovecs: Iovecs,
  offset: Offset | -1,
  bufIndex: number,
  rwFlags = 0,
): Sqe {
  return writeVecFixed(
    sqe,
    abi.IORING_OP_WRITEV_FIXED,
    fd,
    iovecs,
    offset,
    bufIndex,
    rwFlags,
    "prepWritevFixed",
  );
}

function writeVecFixed(
  sqe: Sqe,
  opcode: number,
  fd: number,
  iovecs: Iovecs,
  offset: Offset | -1,
  bufIndex: number,
  rwFlags: number,
  what: string,
): Sqe {
  checkFd(fd);
  checkOffsetOrPosition(offset, "offset");
  checkU32(bufIndex, "bufIndex", 0xffff);
  checkFlags(rwFlags, "rwFlags");
  checkIovecs(iovecs, what);
  const buffers = iovecs.buffers;
  for (let i = 0; i < buffers.length; i++) {
    // (An Iovecs gives an empty buffer address 0, in no registered buffer; and the kernel refuses
    // an empty iovec anywhere.)
    if (byteLengthOf(buffers[i]) === 0) {
      throw new RangeError(`${what}: iovecs buffer ${i} is empty (the kernel fails it with EFAULT)`);
    }
  }
  writeRw(sqe, opcode, fd, 0, iovecs.length, offset);
  storeAddressOf(sqe, iovecs.bytes, W.addrLo);
  const u32 = sqe.u32, b = sqe.base;
  u32[b + W.opFlags] = rwFlags;
  u32[b + W.bufIndex] = (u32[b + W.bufIndex] & 0xffff0000) | bufIndex;
  return sqe;
}

/**
 * Read into registered buffer `bufIndex`; `buf` must lie inside that registered buffer.
 * `offset` -1 (or `-1n`) reads at the file's position and moves it, as `read(2)` does (5.6).
 * Since 5.1.
 */
export function prepReadFixed(
  sqe: Sqe,
  fd: number,
  buf: ArrayBufferView,
  offset: Offset | -1,
  bufIndex: number,
): Sqe {
  checkFd(fd);
  const length = bufferAddressed(buf);
  checkOffsetOrPosition(offset, "offset");
  checkU32(bufIndex, "bufIndex", 0xffff);
  checkLength(length);
  writeRw(sqe, abi.IORING_OP_READ_FIXED, fd, 0, length, offset);
  storeAddressed(sqe);
  sqe.u32[sqe.base + W.bufIndex] = (sqe.u32[sqe.base + W.bufIndex] & 0xffff0000) | bufIndex;
  return sqe;
}

/**
 * Write from registered buffer `bufIndex`; `buf` must lie inside it. `offset` -1 (or `-1n`) writes
 * at the file's position and moves it, as `write(2)` does (5.6). Since 5.1.
 */
export function prepWriteFixed(
  sqe: Sqe,
  fd: number,
  buf: ArrayBufferView,
  offset: Offset | -1,
  bufIndex: number,
): Sqe {
  checkFd(fd);
  const length = bufferAddressed(buf);
  checkOffsetOrPosition(offset, "offset");
  checkU32(bufIndex, "bufIndex", 0xffff);
  checkLength(length);
  writeRw(sqe, abi.IORING_OP_WRITE_FIXED, fd, 0, length, offset);
  storeAddressed(sqe);
  sqe.u32[sqe.base + W.bufIndex] = (sqe.u32[sqe.base + W.bufIndex] & 0xffff0000) | bufIndex;
  return sqe;
}

/** `fsync(fd)`, or `fdatasync(fd)` with `IORING_FSYNC_DATASYNC`. Since 5.1. */
export function prepFsync(sqe: Sqe, fd: number, fsyncFlags = 0): Sqe {
  checkFlagBits(fsyncFlags, abi.IORING_FSYNC_DATASYNC, "fsyncFlags", "IORING_FSYNC_DATASYNC");
  checkFd(fd);
  writeRw(sqe, abi.IORING_OP_FSYNC, fd, 0, 0, 0);
  sqe.u32[sqe.base + W.opFlags] = fsyncFlags;
  return sqe;
}

/** `fdatasync(fd)`: {@link prepFsync} with `IORING_FSYNC_DATASYNC`. Since 5.1. */
export function prepFdatasync(sqe: Sqe, fd: number): Sqe {
  return prepFsync(sqe, fd, abi.IORING_FSYNC_DATASYNC);
}

// The flag words the kernel checks whatever the file: a bit outside them fails the SQE (EINVAL).
/** `SYNC_FILE_RANGE_WAIT_BEFORE | _WRITE | _WAIT_AFTER`. */
const SYNC_FILE_RANGE_ALL = 0x7;
/** `SPLICE_F_MOVE | _NONBLOCK | _MORE | _GIFT`, and `SPLICE_F_FD_IN_FIXED` (io_uring's own). */
const SPLICE_FLAGS = 0xf | abi.SPLICE_F_FD_IN_FIXED;
/** `RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT`. */
const RENAME_FLAGS = 0x7;
/** `AT_SYMLINK_FOLLOW | AT_EMPTY_PATH`. */
const LINKAT_FLAGS = 0x400 | abi.AT_EMPTY_PATH;
/** `AT_STATX_FORCE_SYNC | AT_STATX_DONT_SYNC` (both at once is refused too). */
const AT_STATX_SYNC_TYPE = 0x6000;
/** `AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_EMPTY_PATH | AT_STATX_SYNC_TYPE`. */
const STATX_FLAGS = abi.AT_SYMLINK_NOFOLLOW | 0x800 | abi.AT_EMPTY_PATH | AT_STATX_SYNC_TYPE;
/** `STATX__RESERVED`: a mask bit the kernel refuses. */
const STATX_RESERVED = 0x80000000;

/** Throws unless `flags` is a 32-bit mask of {@link SPLICE_FLAGS} (bit 31 may come as a negative int32). */
function checkSpliceFlags(flags: number): void {
  checkBits32(flags, "flags");
  const stray = (flags & ~SPLICE_FLAGS) >>> 0;
  if (stray !== 0) {
    throw new RangeError(
      `flags must be 0 or a combination of SPLICE_F_MOVE, _NONBLOCK, _MORE, _GIFT and SPLICE_F_FD_IN_FIXED, ` +
        `got 0x${(flags >>> 0).toString(16)} (0x${stray.toString(16)} refused)`,
    );
  }
}

/**
 * `sync_file_range(fd, offset, length, flags)`, with `length` before `offset` in the arguments (as
 * liburing's `io_uring_prep_sync_file_range` takes them). Since 5.2.
 */
export function prepSyncFileRange(sqe: Sqe, fd: number, length: number, offset: Offset, flags = 0): Sqe {
  checkFlagBits(flags, SYNC_FILE_RANGE_ALL, "flags", "SYNC_FILE_RANGE_WAIT_BEFORE, _WRITE and _WAIT_AFTER");
  checkFd(fd);
  checkOffset(offset);
  checkU32(length, "length");
  writeRw(sqe, abi.IORING_OP_SYNC_FILE_RANGE, fd, 0, length, offset);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/** `fallocate(fd, mode, offset, length)` (the arguments in that order, as liburing takes them). Since 5.6. */
export function prepFallocate(sqe: Sqe, fd: number, mode: number, offset: Offset, length: Offset): Sqe {
  checkFlags(mode, "mode");
  checkFd(fd);
  checkOffset(offset);
  checkOffset(length, "length");
  writeRw(sqe, abi.IORING_OP_FALLOCATE, fd, 0, mode, offset);
  writeU64(sqe.u32, sqe.base + W.addrLo, length); // the length travels in `addr`
  return sqe;
}

/** `posix_fadvise(fd, offset, length, advice)`; `length` up to 4 GiB - 1. Since 5.6. */
export function prepFadvise(sqe: Sqe, fd: number, offset: Offset, length: number, advice: number): Sqe {
  checkU32(advice, "advice", 5); // POSIX_FADV_NORMAL to POSIX_FADV_NOREUSE (others: EINVAL)
  checkFd(fd);
  checkOffset(offset);
  checkU32(length, "length");
  writeRw(sqe, abi.IORING_OP_FADVISE, fd, 0, length, offset);
  sqe.u32[sqe.base + W.opFlags] = advice;
  return sqe;
}

/**
 * `madvise(buf, buf.byteLength, advice)`. As with `madvise(2)`, `buf` must start on a page
 * boundary (an `AlignedBuffer`), else the result is `-EINVAL`; so is an `advice` the kernel does
 * not know (which ones it knows depends on its version and configuration: not checked here).
 * Since 5.6.
 */
export function prepMadvise(sqe: Sqe, buf: ArrayBufferView, advice: number): Sqe {
  checkFlags(advice, "advice");
  const length = bufferAddressed(buf);
  checkLength(length);
  writeRw(sqe, abi.IORING_OP_MADVISE, -1, 0, length, 0);
  storeAddressed(sqe);
  sqe.u32[sqe.base + W.opFlags] = advice;
  return sqe;
}

/** `ftruncate(fd, length)`. Since 6.9. */
export function prepFtruncate(sqe: Sqe, fd: number, length: Offset): Sqe {
  checkFd(fd);
  checkOffset(length, "length");
  return writeRw(sqe, abi.IORING_OP_FTRUNCATE, fd, 0, 0, length);
}

/** `openat(dfd, path, flags, mode)`; `path` is NUL-terminated (see `cstring`). Since 5.6. */
export function prepOpenat(sqe: Sqe, dfd: number, path: Uint8Array, flags: number, mode = 0): Sqe {
  checkFlags(flags, "flags");
  checkFlags(mode, "mode");
  checkDirFd(dfd, "dfd");
  checkCString(path);
  writeRw(sqe, abi.IORING_OP_OPENAT, dfd, 0, mode, 0);
  storeAddressOf(sqe, path, W.addrLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/**
 * `openat(dfd, path, flags, mode)` that installs the file in registered file slot `fileIndex`
 * (a direct descriptor: later SQEs name it with `IOSQE_FIXED_FILE`) instead of returning an fd;
 * the CQE's result is 0. With `IORING_FILE_INDEX_ALLOC` the kernel picks a free slot (see
 * `registerFileAllocRange`) and the result is that slot (5.19). Since 5.15.
 */
export function prepOpenatDirect(
  sqe: Sqe,
  dfd: number,
  path: Uint8Array,
  flags: number,
  mode: number,
  fileIndex: number,
): Sqe {
  const slot = fixedTarget(fileIndex);
  prepOpenat(sqe, dfd, path, flags, mode);
  sqe.u32[sqe.base + W.spliceFdIn] = slot; // file_index: the slot + 1, or ALLOC
  return sqe;
}

/**
 * `openat2(dfd, path, how)`; `how` is a 24-byte `open_how` (see `openHow`). Since 5.6.
 */
export function prepOpenat2(sqe: Sqe, dfd: number, path: Uint8Array, how: Uint8Array): Sqe {
  checkDirFd(dfd, "dfd");
  checkCString(path);
  checkBuffer(how, "how");
  if (byteLengthOf(how) !== abi.OPEN_HOW_SIZE) throw new RangeError(`how must be ${abi.OPEN_HOW_SIZE} bytes`);
  writeRw(sqe, abi.IORING_OP_OPENAT2, dfd, 0, abi.OPEN_HOW_SIZE, 0);
  storeAddressOf(sqe, path, W.addrLo);
  storeAddressOf(sqe, how, W.offLo);
  return sqe;
}

/** `close(fd)`. Since 5.6. */
export function prepClose(sqe: Sqe, fd: number): Sqe {
  checkFd(fd);
  return writeRw(sqe, abi.IORING_OP_CLOSE, fd, 0, 0, 0);
}

/** Close registered file slot `fileIndex` (5.15). */
export function prepCloseDirect(sqe: Sqe, fileIndex: number): Sqe {
  checkU32(fileIndex, "fileIndex", abi.MAX_FILE_INDEX);
  writeRw(sqe, abi.IORING_OP_CLOSE, 0, 0, 0, 0);
  sqe.u32[sqe.base + W.spliceFdIn] = fileIndex + 1;
  return sqe;
}

/**
 * `statx(dfd, path, flags, mask, statxbuf)`; `statxbuf` holds 256 bytes (see `statxBuffer`).
 * Since 5.6.
 */
export function prepStatx(
  sqe: Sqe,
  dfd: number,
  path: Uint8Array,
  flags: number,
  mask: number,
  statxbuf: Uint8Array,
): Sqe {
  checkFlagBits(
    flags,
    STATX_FLAGS,
    "flags",
    "AT_SYMLINK_NOFOLLOW, AT_NO_AUTOMOUNT, AT_EMPTY_PATH, AT_STATX_*",
  );
  if ((flags & AT_STATX_SYNC_TYPE) === AT_STATX_SYNC_TYPE) {
    throw new RangeError(
      "flags must not hold both AT_STATX_FORCE_SYNC and AT_STATX_DONT_SYNC (the kernel refuses it)",
    );
  }
  checkFlags(mask, "mask");
  if ((mask & STATX_RESERVED) !== 0) {
    throw new RangeError(
      "mask must be a STATX_* mask without STATX__RESERVED (0x80000000: the kernel refuses it)",
    );
  }
  checkDirFd(dfd, "dfd");
  checkCString(path);
  checkBuffer(statxbuf, "statxbuf");
  const length = byteLengthOf(statxbuf);
  if (length < abi.STATX_SIZE) {
    throw new RangeError(`statxbuf is too small: ${length} bytes, need ${abi.STATX_SIZE}`);
  }
  writeRw(sqe, abi.IORING_OP_STATX, dfd, 0, mask, 0);
  storeAddressOf(sqe, path, W.addrLo);
  storeAddressOf(sqe, statxbuf, W.offLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/**
 * `splice(fdIn, offIn, fdOut, offOut, nbytes, flags)`; an offset of `-1` means "no offset" (a
 * pipe's side). Since 5.7.
 */
export function prepSplice(
  sqe: Sqe,
  fdIn: number,
  offIn: Offset | -1,
  fdOut: number,
  offOut: Offset | -1,
  nbytes: number,
  flags = 0,
): Sqe {
  checkSpliceFlags(flags);
  checkFd(fdIn, "fdIn");
  checkFd(fdOut, "fdOut");
  checkOffsetOrPosition(offIn, "offIn");
  checkOffsetOrPosition(offOut, "offOut");
  checkU32(nbytes, "nbytes");
  // (-1 and -1n, "no offset", go in as all ones, as writeRw and writeU64 write them.)
  writeRw(sqe, abi.IORING_OP_SPLICE, fdOut, 0, nbytes, offOut);
  writeU64(sqe.u32, sqe.base + W.addrLo, offIn); // splice_off_in shares `addr`
  sqe.u32[sqe.base + W.spliceFdIn] = fdIn;
  sqe.u32[sqe.base + W.opFlags] = flags >>> 0;
  return sqe;
}

/** `tee(fdIn, fdOut, nbytes, flags)` between two pipes. Since 5.8. */
export function prepTee(sqe: Sqe, fdIn: number, fdOut: number, nbytes: number, flags = 0): Sqe {
  checkSpliceFlags(flags);
  checkFd(fdIn, "fdIn");
  checkFd(fdOut, "fdOut");
  checkU32(nbytes, "nbytes");
  writeRw(sqe, abi.IORING_OP_TEE, fdOut, 0, nbytes, 0);
  sqe.u32[sqe.base + W.spliceFdIn] = fdIn;
  sqe.u32[sqe.base + W.opFlags] = flags >>> 0;
  return sqe;
}

/** `unlinkat(dfd, path, flags)` (`AT_REMOVEDIR` removes a directory). Since 5.11. */
export function prepUnlinkat(sqe: Sqe, dfd: number, path: Uint8Array, flags = 0): Sqe {
  checkFlagBits(flags, abi.AT_REMOVEDIR, "flags", "AT_REMOVEDIR");
  checkDirFd(dfd, "dfd");
  checkCString(path);
  writeRw(sqe, abi.IORING_OP_UNLINKAT, dfd, 0, 0, 0);
  storeAddressOf(sqe, path, W.addrLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/** `renameat2(oldDfd, oldPath, newDfd, newPath, flags)`. Since 5.11. */
export function prepRenameat(
  sqe: Sqe,
  oldDfd: number,
  oldPath: Uint8Array,
  newDfd: number,
  newPath: Uint8Array,
  flags = 0,
): Sqe {
  checkFlagBits(flags, RENAME_FLAGS, "flags", "RENAME_NOREPLACE, RENAME_EXCHANGE and RENAME_WHITEOUT");
  checkDirFd(oldDfd, "oldDfd");
  checkDirFd(newDfd, "newDfd");
  checkCString(oldPath, "oldPath");
  checkCString(newPath, "newPath");
  writeRw(sqe, abi.IORING_OP_RENAMEAT, oldDfd, 0, 0, 0);
  sqe.u32[sqe.base + W.len] = newDfd; // (stored as its u32; passed, AT_FDCWD's would be boxed)
  storeAddressOf(sqe, oldPath, W.addrLo);
  storeAddressOf(sqe, newPath, W.offLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/** `mkdirat(dfd, path, mode)`. Since 5.15. */
export function prepMkdirat(sqe: Sqe, dfd: number, path: Uint8Array, mode = 0o777): Sqe {
  checkFlags(mode, "mode");
  checkDirFd(dfd, "dfd");
  checkCString(path);
  writeRw(sqe, abi.IORING_OP_MKDIRAT, dfd, 0, mode, 0);
  storeAddressOf(sqe, path, W.addrLo);
  return sqe;
}

/** `symlinkat(target, newDfd, linkPath)`. Since 5.15. */
export function prepSymlinkat(sqe: Sqe, target: Uint8Array, newDfd: number, linkPath: Uint8Array): Sqe {
  checkDirFd(newDfd, "newDfd");
  checkCString(target, "target");
  checkCString(linkPath, "linkPath");
  writeRw(sqe, abi.IORING_OP_SYMLINKAT, newDfd, 0, 0, 0);
  storeAddressOf(sqe, target, W.addrLo);
  storeAddressOf(sqe, linkPath, W.offLo);
  return sqe;
}

/** `linkat(oldDfd, oldPath, newDfd, newPath, flags)`. Since 5.15. */
export function prepLinkat(
  sqe: Sqe,
  oldDfd: number,
  oldPath: Uint8Array,
  newDfd: number,
  newPath: Uint8Array,
  flags = 0,
): Sqe {
  checkFlagBits(flags, LINKAT_FLAGS, "flags", "AT_SYMLINK_FOLLOW and AT_EMPTY_PATH");
  checkDirFd(oldDfd, "oldDfd");
  checkDirFd(newDfd, "newDfd");
  checkCString(oldPath, "oldPath");
  checkCString(newPath, "newPath");
  writeRw(sqe, abi.IORING_OP_LINKAT, oldDfd, 0, 0, 0);
  sqe.u32[sqe.base + W.len] = newDfd; // (stored as its u32; passed, AT_FDCWD's would be boxed)
  storeAddressOf(sqe, oldPath, W.addrLo);
  storeAddressOf(sqe, newPath, W.offLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/** The flags a timeout takes: `ABS`, one clock (`BOOTTIME` or `REALTIME`), `ETIME_SUCCESS`. */
const TIMEOUT_FLAGS = abi.IORING_TIMEOUT_ABS | abi.IORING_TIMEOUT_BOOTTIME | abi.IORING_TIMEOUT_REALTIME |
  abi.IORING_TIMEOUT_ETIME_SUCCESS;

/**
 * Throws a `RangeError` for `flags` the kernel refuses on a timeout (`what` names the prep): a bit
 * outside `allowed`, both clocks, or `MULTISHOT` with `ABS`.
 */
function checkTimeoutFlags(flags: number, allowed: number, what: string): void {
  const multishot = (allowed & abi.IORING_TIMEOUT_MULTISHOT) !== 0;
  checkFlagBits(
    flags,
    allowed,
    "flags",
    `IORING_TIMEOUT_ABS, IORING_TIMEOUT_BOOTTIME or _REALTIME, IORING_TIMEOUT_ETIME_SUCCESS${
      multishot ? ", IORING_TIMEOUT_MULTISHOT" : ""
    } for ${what} (to change a timeout: prepTimeoutUpdate)`,
  );
  if ((flags & abi.IORING_TIMEOUT_BOOTTIME) && (flags & abi.IORING_TIMEOUT_REALTIME)) {
    throw new RangeError(`${what}: flags may name one clock, BOOTTIME or REALTIME, not both`);
  }
  if ((flags & abi.IORING_TIMEOUT_MULTISHOT) && (flags & abi.IORING_TIMEOUT_ABS)) {
    throw new RangeError(`${what}: a multishot timeout repeats a relative time: not with IORING_TIMEOUT_ABS`);
  }
}

/**
 * A timeout: completes with `-ETIME` after `ts`, or with 0 once `count` other completions have
 * been posted (0: time only). With `IORING_TIMEOUT_MULTISHOT` (6.4) it fires every `ts`, each
 * time with `-ETIME` and `IORING_CQE_F_MORE`, `count` times (0: until removed). Since 5.4.
 */
export function prepTimeout(sqe: Sqe, ts: Timespec, count = 0, flags = 0): Sqe {
  checkTimeoutFlags(flags, TIMEOUT_FLAGS | abi.IORING_TIMEOUT_MULTISHOT, "prepTimeout");
  checkU32(count, "count");
  checkTimespec(ts);
  writeRw(sqe, abi.IORING_OP_TIMEOUT, -1, 0, 1, count);
  storeAddressOf(sqe, ts.bytes, W.addrLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/**
 * Removes the timeout whose user_data is `userData` (`-ENOENT` when none). `flags` must be 0 (the
 * kernel refuses others here; `prepTimeoutUpdate` and `prepLinkTimeoutUpdate` take theirs).
 * Since 5.5.
 */
export function prepTimeoutRemove(sqe: Sqe, userData: number | bigint, flags = 0): Sqe {
  checkFlags(flags, "flags");
  if (flags !== 0) {
    throw new RangeError(
      `flags must be 0 for a removal (to change a timeout: prepTimeoutUpdate, prepLinkTimeoutUpdate), got 0x${
        (flags >>> 0).toString(16)
      }`,
    );
  }
  checkUserData(userData);
  writeRw(sqe, abi.IORING_OP_TIMEOUT_REMOVE, -1, 0, 0, 0);
  writeKey(sqe, userData);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/**
 * A timeout for the SQE linked before it (which must carry `IOSQE_IO_LINK`): cancels that
 * request with `-ECANCELED` if it has not completed within `ts`. Since 5.5.
 */
export function prepLinkTimeout(sqe: Sqe, ts: Timespec, flags = 0): Sqe {
  // (IORING_TIMEOUT_MULTISHOT, which the kernel ignores on a link timeout, is refused too.)
  checkTimeoutFlags(flags, TIMEOUT_FLAGS, "prepLinkTimeout");
  checkTimespec(ts);
  writeRw(sqe, abi.IORING_OP_LINK_TIMEOUT, -1, 0, 1, 0);
  storeAddressOf(sqe, ts.bytes, W.addrLo);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/**
 * Gives the timeout whose user_data is `userData` (one from {@link prepTimeout}) a new expiry `ts`,
 * counted from now (or absolute with `IORING_TIMEOUT_ABS` in `flags`, on the timeout's own clock);
 * completes with 0, `-ENOENT` when no such timeout is armed, or `-EALREADY` when it is firing.
 * Since 5.11.
 */
export function prepTimeoutUpdate(sqe: Sqe, userData: number | bigint, ts: Timespec, flags = 0): Sqe {
  return writeTimeoutUpdate(sqe, userData, ts, flags, abi.IORING_TIMEOUT_UPDATE);
}

/**
 * {@link prepTimeoutUpdate} for a link timeout ({@link prepLinkTimeout}): a new expiry for the
 * request it guards, `-ENOENT` when it has fired or is not armed yet. Since 5.15.
 */
export function prepLinkTimeoutUpdate(sqe: Sqe, userData: number | bigint, ts: Timespec, flags = 0): Sqe {
  // Both bits: without IORING_TIMEOUT_UPDATE the kernel takes the SQE as a removal.
  return writeTimeoutUpdate(
    sqe,
    userData,
    ts,
    flags,
    abi.IORING_TIMEOUT_UPDATE | abi.IORING_LINK_TIMEOUT_UPDATE,
  );
}

/** A `TIMEOUT_REMOVE` that updates: the key in `addr`, the new timespec in `addr2`. */
function writeTimeoutUpdate(
  sqe: Sqe,
  userData: number | bigint,
  ts: Timespec,
  flags: number,
  update: number,
): Sqe {
  checkFlags(flags, "flags");
  if ((flags & ~abi.IORING_TIMEOUT_ABS) !== 0) {
    // The kernel refuses every other flag here (EINVAL): an update keeps the timeout's clock.
    throw new RangeError(
      `flags may be 0 or IORING_TIMEOUT_ABS for an update (it keeps the timeout's clock), got 0x${
        flags.toString(16)
      }`,
    );
  }
  checkUserData(userData);
  checkTimespec(ts);
  writeRw(sqe, abi.IORING_OP_TIMEOUT_REMOVE, -1, 0, 0, 0);
  storeAddressOf(sqe, ts.bytes, W.offLo);
  writeKey(sqe, userData);
  sqe.u32[sqe.base + W.opFlags] = flags | update;
  return sqe;
}

/** The `cancel_flags` bits the kernel knows (6.6). */
const CANCEL_FLAGS = abi.IORING_ASYNC_CANCEL_ALL | abi.IORING_ASYNC_CANCEL_FD | abi.IORING_ASYNC_CANCEL_ANY |
  abi.IORING_ASYNC_CANCEL_FD_FIXED | abi.IORING_ASYNC_CANCEL_USERDATA | abi.IORING_ASYNC_CANCEL_OP;

/**
 * Throws unless `flags` holds only `allowed` of the cancel flags (`what` says what the prep
 * writes for the others).
 */
function checkCancelFlags(flags: number, allowed: number, what: string): void {
  checkFlags(flags, "flags");
  const stray = (flags >>> 0) & ~allowed;
  if (stray === 0) return;
  throw new RangeError(
    `flags must be made of ${what}, got 0x${(flags >>> 0).toString(16)}` +
      ((stray & ~CANCEL_FLAGS) !== 0 ? " (bits the kernel does not know)" : ""),
  );
}

/**
 * Cancels the request whose user_data is `userData`: completes with 0, `-ENOENT` (not found) or
 * `-EALREADY` (already running); with `IORING_ASYNC_CANCEL_ALL` (every match) or
 * `IORING_ASYNC_CANCEL_ANY` (any request, `userData` aside), with how many it cancelled (5.19).
 * To cancel by fd or by opcode: `prepCancelFd`, `prepCancelOp`. Since 5.5.
 */
export function prepCancel(sqe: Sqe, userData: number | bigint, flags = 0): Sqe {
  checkCancelFlags(
    flags,
    abi.IORING_ASYNC_CANCEL_ALL | abi.IORING_ASYNC_CANCEL_ANY | abi.IORING_ASYNC_CANCEL_USERDATA,
    "IORING_ASYNC_CANCEL_ALL, _ANY and _USERDATA (by fd: prepCancelFd; by opcode: prepCancelOp)",
  );
  checkUserData(userData);
  writeRw(sqe, abi.IORING_OP_ASYNC_CANCEL, -1, 0, 0, 0);
  writeKey(sqe, userData);
  sqe.u32[sqe.base + W.opFlags] = flags;
  return sqe;
}

/**
 * Cancels requests on `fd` (`IORING_ASYNC_CANCEL_FD`, plus `flags`: `_ALL` for every one,
 * `_FD_FIXED` when `fd` is a registered file's slot, 6.0); completes as `prepCancel`. Since 5.19.
 */
export function prepCancelFd(sqe: Sqe, fd: number, flags = 0): Sqe {
  checkCancelFlags(
    flags,
    abi.IORING_ASYNC_CANCEL_ALL | abi.IORING_ASYNC_CANCEL_FD | abi.IORING_ASYNC_CANCEL_FD_FIXED,
    "IORING_ASYNC_CANCEL_ALL and _FD_FIXED (_ANY ignores the fd: the kernel refuses both)",
  );
  checkFd(fd);
  writeRw(sqe, abi.IORING_OP_ASYNC_CANCEL, fd, 0, 0, 0);
  sqe.u32[sqe.base + W.opFlags] = abi.IORING_ASYNC_CANCEL_FD | flags;
  return sqe;
}

/**
 * Cancels requests of `opcode` (`IORING_ASYNC_CANCEL_OP`, plus `flags`: `_ALL` for every one);
 * completes as `prepCancel`, with how many with `_ALL`. Since 6.6.
 */
export function prepCancelOp(sqe: Sqe, opcode: number, flags = 0): Sqe {
  checkCancelFlags(
    flags,
    abi.IORING_ASYNC_CANCEL_ALL | abi.IORING_ASYNC_CANCEL_OP,
    "IORING_ASYNC_CANCEL_ALL (_ANY ignores the opcode: the kernel refuses both)",
  );
  checkU32(opcode, "opcode", 0xff);
  writeRw(sqe, abi.IORING_OP_ASYNC_CANCEL, -1, 0, opcode, 0);
  sqe.u32[sqe.base + W.opFlags] = abi.IORING_ASYNC_CANCEL_OP | flags;
  return sqe;
}

/** Polls `fd` for `mask` (`POLLIN`, ...); completes with the ready events. Since 5.1. */
export function prepPollAdd(sqe: Sqe, fd: number, mask: number): Sqe {
  checkBits32(mask, "mask");
  checkFd(fd);
  writeRw(sqe, abi.IORING_OP_POLL_ADD, fd, 0, 0, 0);
  sqe.u32[sqe.base + W.opFlags] = mask >>> 0; // poll32_events, little-endian
  return sqe;
}

/**
 * Multishot poll: one CQE per readiness event, with `IORING_CQE_F_MORE`; a CQE without it ends
 * the poll (an error, a cancel, or an event when the kernel found the CQ full: poll again).
 * Since 5.13.
 */
export function prepPollMultishot(sqe: Sqe, fd: number, mask: number): Sqe {
  prepPollAdd(sqe, fd, mask);
  sqe.u32[sqe.base + W.len] = abi.IORING_POLL_ADD_MULTI;
  return sqe;
}

/** Removes the poll request whose user_data is `userData`. Since 5.1. */
export function prepPollRemove(sqe: Sqe, userData: number | bigint): Sqe {
  checkUserData(userData);
  writeRw(sqe, abi.IORING_OP_POLL_REMOVE, -1, 0, 0, 0);
  writeKey(sqe, userData);
  return sqe;
}

/**
 * Changes a poll request armed by {@link prepPollAdd} or {@link prepPollMultishot}, found by its
 * `oldUserData`: with `IORING_POLL_UPDATE_EVENTS` in `flags` its mask becomes `mask`, with
 * `IORING_POLL_UPDATE_USER_DATA` its user_data becomes `newUserData` (each must be 0 without its
 * flag). The kernel takes `IORING_POLL_ADD_MULTI` too, but on 6.18 an update keeps the poll
 * one-shot or multishot as it was armed. Completes with 0, `-ENOENT` (no such poll) or
 * `-EALREADY` (it is completing); the poll itself stays armed with its new settings. Since 5.13.
 */
export function prepPollUpdate(
  sqe: Sqe,
  oldUserData: number | bigint,
  newUserData: number | bigint,
  mask: number,
  flags: number,
): Sqe {
  checkFlags(flags, "flags");
  const updates = abi.IORING_POLL_UPDATE_EVENTS | abi.IORING_POLL_UPDATE_USER_DATA;
  if ((flags & ~(updates | abi.IORING_POLL_ADD_MULTI)) !== 0 || (flags & updates) === 0) {
    throw new RangeError(
      "flags must hold IORING_POLL_UPDATE_EVENTS and/or IORING_POLL_UPDATE_USER_DATA (and may add " +
        `IORING_POLL_ADD_MULTI), got 0x${flags.toString(16)}`,
    );
  }
  checkUserData(oldUserData);
  checkUserData(newUserData);
  checkBits32(mask, "mask");
  if (!(flags & abi.IORING_POLL_UPDATE_USER_DATA) && newUserData !== 0 && newUserData !== 0n) {
    throw new RangeError("newUserData must be 0 without IORING_POLL_UPDATE_USER_DATA in flags");
  }
  if (!(flags & abi.IORING_POLL_UPDATE_EVENTS) && mask !== 0) {
    throw new RangeError("mask must be 0 without IORING_POLL_UPDATE_EVENTS in flags");
  }
  writeRw(sqe, abi.IORING_OP_POLL_REMOVE, -1, 0, flags, newUserData);
  writeKey(sqe, oldUserData);
  sqe.u32[sqe.base + OP_FLAGS] = mask >>> 0; // poll32_events
  return sqe;
}

/**
 * Posts a CQE on another ring (`ringFd`: its `IoUring.fd`) with `res` and `userData`, as a
 * message between rings (`IORING_MSG_DATA`); this SQE completes with 0 (a target whose CQ is full
 * keeps the CQE on its overflow list, as any). `res` is a 32-bit value (the target sees it as signed). With
 * `IORING_MSG_RING_FLAGS_PASS` in `flags`, the target CQE's flags are `cqeFlags` (6.3). Since 5.18.
 */
export function prepMsgRing(
  sqe: Sqe,
  ringFd: number,
  res: number,
  userData: number | bigint,
  flags = 0,
  cqeFlags = 0,
): Sqe {
  checkFd(ringFd, "ringFd");
  checkBits32(res, "res");
  checkUserData(userData);
  checkFlags(flags, "flags");
  checkFlags(cqeFlags, "cqeFlags");
  if ((flags & ~abi.IORING_MSG_RING_FLAGS_PASS) !== 0) {
    // (IORING_MSG_RING_CQE_SKIP is for passing a file: the kernel fails a data message with it.)
    throw new RangeError(
      `flags of a data message may be 0 or IORING_MSG_RING_FLAGS_PASS, got 0x${(flags >>> 0).toString(16)}`,
    );
  }
  if (cqeFlags !== 0 && !(flags & abi.IORING_MSG_RING_FLAGS_PASS)) {
    throw new RangeError("cqeFlags are passed only with IORING_MSG_RING_FLAGS_PASS in flags");
  }
  writeRw(sqe, abi.IORING_OP_MSG_RING, ringFd, abi.IORING_MSG_DATA, res >>> 0, userData);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  sqe.u32[sqe.base + W.spliceFdIn] = cqeFlags;
  return sqe;
}

/**
 * Passes a file to another ring (`IORING_MSG_SEND_FD`): the file in this ring's fixed-file slot
 * `sourceSlot` is installed in the target ring's (`ringFd`) slot `targetSlot` (a file already
 * there is replaced), or in a free one with `IORING_FILE_INDEX_ALLOC` (see
 * `registerFileAllocRange`). This SQE completes with 0, or the slot picked, or an error
 * (`-EBADF`: no file in the source slot); the target gets a CQE with `userData` and the same
 * `res`, unless `flags` holds `IORING_MSG_RING_CQE_SKIP`. Since 6.0.
 */
export function prepMsgRingFd(
  sqe: Sqe,
  ringFd: number,
  sourceSlot: number,
  targetSlot: number,
  userData: number | bigint,
  flags = 0,
): Sqe {
  checkFd(ringFd, "ringFd");
  checkU32(sourceSlot, "sourceSlot", abi.MAX_FILE_INDEX);
  const fileIndex = fixedTarget(targetSlot, "targetSlot");
  checkUserData(userData);
  checkFlags(flags, "flags");
  if ((flags & ~abi.IORING_MSG_RING_CQE_SKIP) !== 0) {
    throw new RangeError(`flags may be 0 or IORING_MSG_RING_CQE_SKIP, got 0x${flags.toString(16)}`);
  }
  writeRw(sqe, abi.IORING_OP_MSG_RING, ringFd, abi.IORING_MSG_SEND_FD, 0, userData);
  const u32 = sqe.u32, b = sqe.base;
  u32[b + OP_FLAGS] = flags;
  u32[b + W.spliceFdIn] = fileIndex;
  u32[b + W.addr3Lo] = sourceSlot;
  return sqe;
}

/**
 * Updates registered files from `offset` with `fds` (an Int32Array kept alive until the CQE).
 * Since 5.6.
 */
export function prepFilesUpdate(sqe: Sqe, fds: Int32Array, offset: number): Sqe {
  if (!(fds instanceof Int32Array)) throw new TypeError(`fds must be an Int32Array, got ${shown(fds)}`);
  checkBuffer(fds, "fds");
  checkU32(offset, "offset");
  // The kernel reads one 4-byte fd per count: the count comes from the memory itself.
  writeRw(sqe, abi.IORING_OP_FILES_UPDATE, -1, 0, byteLengthOf(fds) >>> 2, offset);
  storeAddressOf(sqe, fds, W.addrLo);
  return sqe;
}

/**
 * The operation kinds of the promise layer: how each one's arguments are checked and stored in a
 * {@link Slot}, and how its SQE is filled from the slot. The checks run when the operation is
 * called, so bad input is refused before anything is queued; the SQE is filled later, when SQ
 * space is free, from what the slot holds.
 *
 * @module
 */

import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  IORING_FSYNC_DATASYNC,
  IOSQE_FIXED_FILE,
  MAX_FILE_INDEX,
  O_CLOEXEC,
  PATH_MAX,
  STATX_BASIC_STATS,
  STATX_BTIME,
  STATX_DIOALIGN,
} from "./abi.ts";
import {
  badNumber,
  bufferOf,
  byteLengthOf,
  byteOffsetOf,
  checkBuffer,
  checkFd,
  checkOffset,
  checkU32,
  isResizable,
  shown,
} from "./memory.ts";
import {
  prepClose,
  prepCloseDirect,
  prepFallocate,
  prepFsync,
  prepFtruncate,
  prepLinkat,
  prepMkdirat,
  prepNop,
  prepOpenat,
  prepOpenatDirect,
  prepRead,
  prepReadFixed,
  prepReadv,
  prepRenameat,
  prepSplice,
  prepStatx,
  prepSymlinkat,
  prepTimeout,
  prepUnlinkat,
  prepWrite,
  prepWriteFixed,
  prepWritev,
} from "./prep.ts";
import { offsetOrPosition } from "./prep_base.ts";
import { type Sqe, W } from "./sqe.ts";
import { Iovecs, Timespec } from "./structs.ts";
import type { Slot } from "./slots.ts";
import { operationError } from "./deno_errors.ts";
import { errno } from "./errno.ts";

const ENAMETOOLONG = errno("ENAMETOOLONG");

/**
 * Throws `ENAMETOOLONG` (naming the operation) for a path of `PATH_MAX` bytes or more: the kernel
 * refuses it while it prepares the SQE, and in a chain that fails its head with a bare
 * `ECANCELED` and the path's own member posts nothing (`IOSQE_CQE_SKIP_SUCCESS`).
 */
function checkPathLength(kind: number, path: string, encoded: Uint8Array): void {
  if (encoded.byteLength <= PATH_MAX) return;
  const shown = path.length > 64 ? `${path.slice(0, 60)}...` : path;
  throw operationError(
    OP_NAMES[kind],
    ENAMETOOLONG,
    shown,
    null,
    undefined,
    `the path is ${encoded.byteLength - 1} bytes: at most ${PATH_MAX - 1}`,
  );
}

/** `io_uring_enter` no-op. */
export const K_NOP = 0;
/** `pread`. */
export const K_READ = 1;
/** `pwrite`. */
export const K_WRITE = 2;
/** `preadv`. */
export const K_READV = 3;
/** `pwritev`. */
export const K_WRITEV = 4;
/** `fsync` / `fdatasync`. */
export const K_FSYNC = 5;
/** `fallocate`. */
export const K_FALLOCATE = 6;
/** `ftruncate`. */
export const K_FTRUNCATE = 7;
/** `statx` on a path. */
export const K_STATX = 8;
/** `openat` resolving to a `UringFile`. */
export const K_OPEN = 9;
/** `openat` resolving to a raw fd. */
export const K_OPENFD = 10;
/** `close`. */
export const K_CLOSE = 11;
/** `unlinkat`. */
export const K_UNLINK = 12;
/** `renameat`. */
export const K_RENAME = 13;
/** `mkdirat`. */
export const K_MKDIR = 14;
/** `symlinkat`. */
export const K_SYMLINK = 15;
/** `linkat`. */
export const K_LINK = 16;
/** A timeout. */
export const K_TIMEOUT = 17;
/** `splice`. */
export const K_SPLICE = 18;
/** `statx` on an fd (`AT_EMPTY_PATH`). */
export const K_FSTAT = 19;
/** `openat` into a direct descriptor (an index of the registered file table). */
export const K_OPEN_DIRECT = 20;
/** `close` of a direct descriptor. */
export const K_CLOSE_DIRECT = 21;

/** Operation names used in error messages, by kind. */
export const OP_NAMES: readonly string[] = [
  "nop",
  "read",
  "write",
  "readv",
  "writev",
  "fsync",
  "fallocate",
  "ftruncate",
  "statx",
  "open",
  "open",
  "close",
  "unlink",
  "rename",
  "mkdir",
  "symlink",
  "link",
  "timeout",
  "splice",
  "stat",
  "open",
  "close",
];

/** Kinds whose result is the CQE's `res` (bytes, or an fd). */
export function returnsCount(kind: number): boolean {
  return kind === K_READ || kind === K_WRITE || kind === K_READV || kind === K_WRITEV ||
    kind === K_SPLICE || kind === K_OPENFD;
}

/** The statx fields asked for. */
export const STATX_MASK = STATX_BASIC_STATS | STATX_BTIME;
/** The statx fields asked for on an open file: also its O_DIRECT alignment (6.1+; ignored before). */
export const FSTAT_MASK = STATX_MASK | STATX_DIOALIGN;
/** `""`, NUL-terminated: the path of a `statx` of an fd (`AT_EMPTY_PATH`). */
export const EMPTY_PATH: Uint8Array<ArrayBuffer> = new Uint8Array(1);

/** Largest single transfer (the SQE's `len` is 32 bits). */
const MAX_LEN = 0xffffffff;

/** Checks and stores a `read`/`write` (kind `K_READ` or `K_WRITE`). */
export function fillRw(
  slot: Slot,
  kind: number,
  fd: number,
  buf: ArrayBufferView,
  position: number | bigint,
) {
  checkFd(fd);
  checkBuffer(buf);
  checkOffset(position, "position");
  const length = byteLengthOf(buf);
  if (length > MAX_LEN) throw new RangeError("buffer is larger than 4 GiB - 1 bytes");
  if (typeof position === "bigint") checkEnd(position, length);
  slot.kind = kind;
  slot.fd = fd;
  slot.buf = buf;
  slot.bufLength = length;
  slot.pos = position;
}

/**
 * Throws unless a transfer of `length` bytes at `position` ends within a file offset (2^63 - 1:
 * the kernel answers a bare `EINVAL`). Only a bigint position can get there.
 */
function checkEnd(position: bigint, length: number): void {
  if (position + BigInt(length) > 0x7fff_ffff_ffff_ffffn) {
    throw new RangeError(
      `position + length must be at most 2^63 - 1 (the largest file offset), got ${position} + ${length}`,
    );
  }
}

/** Checks and stores a `readv`/`writev` (kind `K_READV` or `K_WRITEV`). */
export function fillRwv(
  slot: Slot,
  kind: number,
  fd: number,
  bufs: readonly ArrayBufferView[],
  position: number | bigint,
) {
  checkFd(fd);
  checkOffset(position, "position");
  slot.iovecs = new Iovecs(bufs); // checks every buffer and keeps each one referenced
  if (typeof position === "bigint") checkEnd(position, slot.iovecs.totalLength);
  slot.kind = kind;
  slot.fd = fd;
  slot.pos = position;
}

/** Checks and stores a no-op. */
export function fillNop(slot: Slot) {
  slot.kind = K_NOP;
}

/** Checks and stores an `fsync` (`datasync`: `fdatasync`). */
export function fillFsync(slot: Slot, fd: number, datasync: boolean) {
  checkFd(fd);
  slot.kind = K_FSYNC;
  slot.fd = fd;
  slot.flags = datasync ? IORING_FSYNC_DATASYNC : 0;
}

/** Checks and stores a `fallocate(fd, mode, offset, length)`. */
export function fillFallocate(
  slot: Slot,
  fd: number,
  offset: number | bigint,
  length: number | bigint,
  mode: number,
) {
  checkFd(fd);
  checkOffset(offset, "offset");
  checkOffset(length, "length");
  checkU32(mode, "mode");
  // (What fallocate(2) refuses whatever the file: EINVAL for an empty range, EFBIG past the
  // largest offset.)
  const end = BigInt(offset) + BigInt(length);
  if (BigInt(length) === 0n) {
    throw new RangeError("length must be at least 1 (fallocate(2) refuses an empty range)");
  }
  if (end > 0x7fff_ffff_ffff_ffffn) {
    throw new RangeError(
      `offset + length must be at most 2^63 - 1 (the largest file offset), got ${offset} + ${length}`,
    );
  }
  slot.kind = K_FALLOCATE;
  slot.fd = fd;
  slot.pos = offset;
  slot.pos2 = length;
  slot.mode = mode;
}

/** Checks and stores an `ftruncate(fd, length)` (Linux 6.9). */
export function fillFtruncate(slot: Slot, fd: number, length: number | bigint) {
  checkFd(fd);
  checkOffset(length, "length");
  slot.kind = K_FTRUNCATE;
  slot.fd = fd;
  slot.pos = length;
}

/** Checks and stores a `close(fd)`. */
export function fillClose(slot: Slot, fd: number) {
  checkFd(fd);
  if (fd < 0) throw new RangeError(`fd must not be negative, got ${fd}`);
  slot.kind = K_CLOSE;
  slot.fd = fd;
}

/** Checks and stores a `splice`; an offset of -1 means "the fd's own position" (pipes). */
export function fillSplice(
  slot: Slot,
  fdIn: number,
  offIn: number | bigint,
  fdOut: number,
  offOut: number | bigint,
  nbytes: number,
) {
  checkFd(fdIn, "fdIn");
  checkFd(fdOut, "fdOut");
  offIn = offsetOrPosition(offIn, "offIn");
  offOut = offsetOrPosition(offOut, "offOut");
  checkU32(nbytes, "nbytes");
  if (typeof offIn === "bigint") checkEnd(offIn, nbytes);
  if (typeof offOut === "bigint") checkEnd(offOut, nbytes);
  slot.kind = K_SPLICE;
  slot.fd = fdIn;
  slot.pos = offIn;
  slot.fd2 = fdOut;
  slot.pos2 = offOut;
  slot.len = nbytes;
}

/** Checks and stores a timeout of `ms` (with `IORING_TIMEOUT_*` `flags`). */
export function fillTimeout(slot: Slot, ms: number, flags = 0) {
  if (typeof ms !== "number" || !(ms >= 0) || !Number.isFinite(ms)) {
    throw badNumber(ms, `timeout must be a finite number of milliseconds ≥ 0, got ${shown(ms)}`);
  }
  slot.ts ??= new Timespec();
  slot.ts.setMs(ms);
  slot.kind = K_TIMEOUT;
  slot.flags = flags;
}

/** Stores a path operation (`K_STATX`, `K_OPEN`, `K_UNLINK`, ...); `path` is already checked. */
export function fillPath(slot: Slot, kind: number, path: string, flags = 0, mode = 0) {
  slot.setPaths(path);
  checkPathLength(kind, path, slot.cpath!);
  slot.path = path;
  slot.kind = kind;
  slot.flags = flags;
  slot.mode = mode;
}

/** Stores a two-path operation (`K_RENAME`, `K_LINK`, `K_SYMLINK`). */
export function fillPath2(
  slot: Slot,
  kind: number,
  path: string,
  path2: string,
  flags = 0,
  what = "oldPath",
  what2 = "newPath",
) {
  slot.setPaths(path, path2, what, what2);
  checkPathLength(kind, path, slot.cpath!);
  checkPathLength(kind, path2, slot.cpath2!);
  slot.path = path;
  slot.path2 = path2;
  slot.kind = kind;
  slot.flags = flags;
}

/** Stores a `statx` on an open fd. */
export function fillFstat(slot: Slot, fd: number) {
  checkFd(fd);
  slot.kind = K_FSTAT;
  slot.fd = fd;
}

/**
 * Stores an `openat` of `path` (already checked) into direct descriptor `index` of the registered
 * file table. `O_CLOEXEC` is dropped: the kernel refuses it for direct descriptors, which are not
 * file descriptors and are never inherited.
 */
export function fillOpenDirect(slot: Slot, path: string, index: number, flags: number, mode: number) {
  checkU32(index, "index", MAX_FILE_INDEX);
  fillPath(slot, K_OPEN_DIRECT, path, flags & ~O_CLOEXEC, mode);
  slot.fd2 = index;
}

/**
 * The direct descriptor (an index of the ring's registered file table) `slot` names, or -1: the
 * target of an `openDirect` or `closeDirect`, or the file of an operation with `IOSQE_FIXED_FILE`.
 */
export function directIndexOf(slot: Slot): number {
  if (slot.kind === K_OPEN_DIRECT || slot.kind === K_CLOSE_DIRECT) return slot.fd2;
  return (slot.sqeFlags & IOSQE_FIXED_FILE) !== 0 ? slot.fd : -1;
}

/** Stores a `close` of direct descriptor `index`. */
export function fillCloseDirect(slot: Slot, index: number) {
  checkU32(index, "index", MAX_FILE_INDEX);
  slot.kind = K_CLOSE_DIRECT;
  slot.fd2 = index;
}

/**
 * Whether a buffer `slot` holds was detached (transferred, or an `AlignedBuffer` freed) or
 * shrunk since the operation was called: an operation waiting in the backlog must then not run,
 * and one the kernel ran used memory that is no longer the buffer's.
 */
export function hasDetachedBuffer(slot: Slot): boolean {
  const buf = slot.buf;
  if (buf !== null) {
    // Detached (a view's length then reads 0), shrunk, or out of the bounds of a shrunk
    // resizable buffer (0): shorter than when the operation was called.
    let length: number;
    try {
      length = byteLengthOf(buf);
    } catch {
      return true; // a DataView over a detached buffer throws instead
    }
    if (length < slot.bufLength) return true;
  }
  return slot.iovecs !== null && slot.iovecs.changedBuffer() >= 0;
}

const EFAULT_RES = -14;

/**
 * Whether `slot` failed with `EFAULT` on a buffer of a resizable `ArrayBuffer`: one shrunk and
 * grown again while the operation ran (its length then says nothing) lost its pages for a moment,
 * and the kernel found them gone. Reported as {@link hasDetachedBuffer} is.
 */
export function resizedInFlight(slot: Slot): boolean {
  if (slot.res !== EFAULT_RES) return false;
  if (slot.buf !== null && isResizable(bufferOf(slot.buf))) return true;
  return slot.iovecs !== null && slot.iovecs.buffers.some((b) => isResizable(bufferOf(b)));
}

/**
 * The buffer of `slot`'s read or write as long as it was when the operation was called: a view
 * that tracks the length of a resizable buffer grows with it, and an operation that waited in
 * the backlog meanwhile must still move only the bytes it was given (a new view, made only
 * then; a view that shrank never gets here: see {@link hasDetachedBuffer}).
 */
function calledBuffer(slot: Slot): ArrayBufferView {
  const buf = slot.buf!;
  return byteLengthOf(buf) === slot.bufLength
    ? buf
    : new Uint8Array(bufferOf(buf), byteOffsetOf(buf), slot.bufLength);
}

/**
 * Fills `sqe` for the operation `slot` holds and tags it with the slot's `user_data`
 * (index, generation). Allocates nothing.
 */
export function prepSlot(slot: Slot, sqe: Sqe): void {
  switch (slot.kind) {
    case K_NOP:
      prepNop(sqe);
      break;
    case K_READ: {
      const buf = calledBuffer(slot);
      if (slot.bufIndex < 0) prepRead(sqe, slot.fd, buf, slot.pos);
      else prepReadFixed(sqe, slot.fd, buf, slot.pos, slot.bufIndex);
      break;
    }
    case K_WRITE: {
      const buf = calledBuffer(slot);
      if (slot.bufIndex < 0) prepWrite(sqe, slot.fd, buf, slot.pos);
      else prepWriteFixed(sqe, slot.fd, buf, slot.pos, slot.bufIndex);
      break;
    }
    case K_READV:
      prepReadv(sqe, slot.fd, slot.iovecs!, slot.pos);
      break;
    case K_WRITEV:
      prepWritev(sqe, slot.fd, slot.iovecs!, slot.pos);
      break;
    case K_FSYNC:
      prepFsync(sqe, slot.fd, slot.flags);
      break;
    case K_FALLOCATE:
      prepFallocate(sqe, slot.fd, slot.mode, slot.pos, slot.pos2);
      break;
    case K_FTRUNCATE:
      prepFtruncate(sqe, slot.fd, slot.pos);
      break;
    case K_STATX:
      prepStatx(sqe, AT_FDCWD, slot.cpath!, slot.flags, STATX_MASK, slot.statx!);
      break;
    case K_FSTAT:
      prepStatx(sqe, slot.fd, EMPTY_PATH, AT_EMPTY_PATH, FSTAT_MASK, slot.statx!);
      break;
    case K_OPEN:
    case K_OPENFD:
      prepOpenat(sqe, AT_FDCWD, slot.cpath!, slot.flags, slot.mode);
      break;
    case K_CLOSE:
      prepClose(sqe, slot.fd);
      break;
    case K_OPEN_DIRECT:
      prepOpenatDirect(sqe, AT_FDCWD, slot.cpath!, slot.flags, slot.mode, slot.fd2);
      break;
    case K_CLOSE_DIRECT:
      prepCloseDirect(sqe, slot.fd2);
      break;
    case K_UNLINK:
      prepUnlinkat(sqe, AT_FDCWD, slot.cpath!, slot.flags);
      break;
    case K_RENAME:
      prepRenameat(sqe, AT_FDCWD, slot.cpath!, AT_FDCWD, slot.cpath2!, slot.flags);
      break;
    case K_MKDIR:
      prepMkdirat(sqe, AT_FDCWD, slot.cpath!, slot.mode);
      break;
    case K_SYMLINK:
      prepSymlinkat(sqe, slot.cpath!, AT_FDCWD, slot.cpath2!);
      break;
    case K_LINK:
      prepLinkat(sqe, AT_FDCWD, slot.cpath!, AT_FDCWD, slot.cpath2!, slot.flags);
      break;
    case K_TIMEOUT:
      prepTimeout(sqe, slot.ts!, 0, slot.flags);
      break;
    case K_SPLICE:
      prepSplice(sqe, slot.fd, slot.pos, slot.fd2, slot.pos2, slot.len);
      break;
    default:
      throw new Error(`internal error: unknown operation kind ${slot.kind}`);
  }
  if (slot.sqeFlags !== 0) sqe.setFlags(slot.sqeFlags);
  sqe.u32[sqe.base + W.userLo] = slot.index;
  sqe.u32[sqe.base + W.userHi] = slot.gen;
}

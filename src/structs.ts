/**
 * The small kernel structs some operations and registrations point at: `__kernel_timespec`,
 * `iovec` arrays, `open_how`, `io_uring_rsrc_update` and `statx`. Each is a plain byte buffer the
 * caller keeps alive until the CQE (or the registration call returns).
 *
 * @module
 */

import {
  BUF_REG,
  BUF_REG_SIZE,
  FILES_UPDATE_SIZE,
  IOVEC_SIZE,
  O_CREAT,
  OPEN_HOW_SIZE,
  RSRC_UPDATE2_SIZE,
  STATX,
  STATX_SIZE,
  TIMESPEC_SIZE,
} from "./abi.ts";
import { addressOf, badNumber, byteLengthOf, checkBuffer, shown } from "./memory.ts";

/** Most buffers one `readv`/`writev` takes (`IOV_MAX`). */
const IOV_MAX = 1024;
/** A `struct __kernel_timespec` (16 bytes) for timeouts. Since 5.4. */
export class Timespec {
  // Private, so the 16 bytes the kernel reads cannot be swapped for a smaller array.
  readonly #bytes: Uint8Array<ArrayBuffer> = new Uint8Array(TIMESPEC_SIZE);
  readonly #view = new DataView(this.#bytes.buffer);

  /** A timespec of `ms` milliseconds (fractions allowed, down to nanoseconds). */
  constructor(ms = 0) {
    this.setMs(ms);
  }

  /** The 16 bytes handed to the kernel. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /** Sets the duration in milliseconds. */
  setMs(ms: number): this {
    if (typeof ms !== "number" || !(ms >= 0) || !(ms <= Number.MAX_SAFE_INTEGER)) {
      throw badNumber(ms, `timeout must be from 0 to 2^53 - 1 ms, got ${shown(ms)}`);
    }
    let sec = Math.floor(ms / 1000);
    let nsec = Math.round((ms - sec * 1000) * 1e6);
    if (nsec >= 1e9) { // rounded up to a whole second
      sec++;
      nsec -= 1e9;
    }
    this.#view.setUint32(0, sec >>> 0, true);
    this.#view.setUint32(4, Math.floor(sec / 0x1_0000_0000), true);
    this.#view.setUint32(8, nsec, true);
    this.#view.setUint32(12, 0, true);
    return this;
  }

  /** Seconds field. */
  get sec(): number {
    return this.#view.getUint32(0, true) + this.#view.getUint32(4, true) * 0x1_0000_0000;
  }

  /** Nanoseconds field. */
  get nsec(): number {
    return this.#view.getUint32(8, true);
  }
}

/**
 * A packed `struct iovec` array over a list of buffers, for `readv`/`writev`. It keeps the
 * buffers referenced, so holding the `Iovecs` keeps all of them alive. Since 5.1.
 */
export class Iovecs {
  // Private, so neither the array the kernel reads nor the buffers checked against it can be
  // swapped or edited after the fact.
  readonly #bytes: Uint8Array<ArrayBuffer>;
  readonly #buffers: readonly ArrayBufferView[];
  /** Sum of the buffers' lengths. */
  readonly totalLength: number;
  /** {@link Iovecs.bytes} as 32-bit words. */
  readonly #words: Uint32Array;

  /**
   * Builds the array; every buffer must be a live typed array or DataView. `max` is the most
   * buffers it may hold: by default 1024 (`IOV_MAX`, what `readv`/`writev` take);
   * `IoUring.registerBuffers` passes `IORING_MAX_REG_BUFFERS`.
   */
  constructor(buffers: readonly ArrayBufferView[], max: number = IOV_MAX) {
    if (!Array.isArray(buffers)) throw new TypeError("iovecs need a non-empty array of buffers");
    // Copied first (its length read once, no iterator run), then checked: the copy is what the
    // kernel gets.
    const count: unknown = buffers.length;
    if (typeof count !== "number" || count === 0) {
      throw new TypeError("iovecs need a non-empty array of buffers");
    }
    if (!(count <= max)) {
      throw new RangeError(`at most ${max} iovecs${max === IOV_MAX ? " (IOV_MAX)" : ""}, got ${count}`);
    }
    const copy: ArrayBufferView[] = new Array(count);
    for (let i = 0; i < count; i++) copy[i] = buffers[i];
    const list = this.#buffers = Object.freeze(copy);
    this.#bytes = new Uint8Array(list.length * IOVEC_SIZE);
    const w = this.#words = new Uint32Array(this.#bytes.buffer);
    let total = 0;
    for (let i = 0; i < list.length; i++) {
      const b = list[i];
      checkBuffer(b, `buffers[${i}]`);
      // iov_len is 64-bit: a buffer of 4 GiB or more keeps its size.
      const length = byteLengthOf(b);
      const addr = length === 0 ? 0 : addressOf(b);
      w[i * 4] = addr >>> 0;
      w[i * 4 + 1] = Math.floor(addr / 0x1_0000_0000);
      w[i * 4 + 2] = length >>> 0;
      w[i * 4 + 3] = Math.floor(length / 0x1_0000_0000);
      total += length;
    }
    this.totalLength = total;
  }

  /** The packed iovec array handed to the kernel (16 bytes per buffer). */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /** The buffers, in order (a frozen copy of the list given). */
  get buffers(): readonly ArrayBufferView[] {
    return this.#buffers;
  }

  /** Number of buffers. */
  get length(): number {
    return this.#buffers.length;
  }

  /**
   * The index of the first buffer that was detached (transferred, or an `AlignedBuffer` freed)
   * or shrunk since this array was built, or -1. The kernel would still use the address and
   * length recorded then, which may now belong to other memory: `prepReadv`/`prepWritev` and
   * `Uring` refuse an array with such a buffer. (A buffer that grew keeps its recorded part.)
   */
  changedBuffer(): number {
    const buffers = this.#buffers, w = this.#words;
    for (let i = 0; i < buffers.length; i++) {
      let length: number;
      try {
        length = byteLengthOf(buffers[i]);
      } catch {
        return i; // a DataView over a detached buffer, or out of a shrunk one's bounds, throws
      }
      if (length < w[i * 4 + 2] + w[i * 4 + 3] * 0x1_0000_0000) return i;
    }
    return -1;
  }
}

/**
 * Throws a `TypeError` if a buffer of `iovecs` was detached or shrunk after it was built (see
 * {@link Iovecs.changedBuffer}). `what` names the operation.
 */
export function checkIovecsUnchanged(iovecs: Iovecs, what: string): void {
  const i = iovecs.changedBuffer();
  if (i >= 0) {
    throw new TypeError(
      `${what}: iovecs buffer ${i} was detached or shrunk after the Iovecs was built ` +
        `(the kernel would use its old address and length): build a new Iovecs`,
    );
  }
}

/** `RESOLVE_*` flags of `openat2` (5.6; `CACHED` 5.12). */
export const RESOLVE = {
  NO_XDEV: 0x01,
  NO_MAGICLINKS: 0x02,
  NO_SYMLINKS: 0x04,
  BENEATH: 0x08,
  IN_ROOT: 0x10,
  CACHED: 0x20,
} as const;

/** Builds a `struct open_how` (24 bytes) for `openat2`. Since 5.6. */
export function openHow(how: { flags: number; mode?: number; resolve?: number }): Uint8Array<ArrayBuffer> {
  if (typeof how !== "object" || how === null) {
    throw new TypeError(`how must be an object, got ${shown(how)}`);
  }
  const field = (name: "flags" | "mode" | "resolve", value: unknown, max: number): bigint => {
    // `O_*` flags and `RESOLVE_*` bits are 32-bit today; a mode has 12 permission bits.
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
      throw badNumber(value, `how.${name} must be an integer from 0 to ${max}, got ${shown(value)}`);
    }
    return BigInt(value);
  };
  const flags = field("flags", how.flags, 0xffffffff);
  const mode = field("mode", how.mode ?? 0, 0o7777);
  const resolve = field("resolve", how.resolve ?? 0, 0xffffffff);
  // openat2 takes a mode only for what it may create (O_CREAT, or __O_TMPFILE: 0o20000000):
  // any other open with one fails with EINVAL.
  if (mode !== 0n && (flags & BigInt(O_CREAT | 0o20000000)) === 0n) {
    throw new RangeError(
      `how.mode must be 0 unless how.flags has O_CREAT or O_TMPFILE, got 0o${mode.toString(8)}`,
    );
  }
  const bytes = new Uint8Array(OPEN_HOW_SIZE);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, flags, true);
  v.setBigUint64(8, mode, true);
  v.setBigUint64(16, resolve, true);
  return bytes;
}

/**
 * A `struct io_uring_buf_reg` (40 bytes) for `IORING_REGISTER_PBUF_RING`: ring memory at
 * `address` of `entries` entries, for buffer group `group` (0, 0, group: to unregister it), with `IOU_PBUF_RING_*`
 * `flags`.
 */
export function bufReg(address: number, entries: number, group: number, flags = 0): Uint8Array<ArrayBuffer> {
  const reg = new Uint8Array(BUF_REG_SIZE);
  const view = new DataView(reg.buffer);
  view.setBigUint64(BUF_REG.ringAddr, BigInt(address), true);
  view.setUint32(BUF_REG.ringEntries, entries, true);
  view.setUint16(BUF_REG.bgid, group, true);
  view.setUint16(BUF_REG.flags, flags, true);
  return reg;
}

/** A `struct io_uring_rsrc_update` (16 bytes): `offset` (u32), then `data` (u64) at byte 8. */
export function rsrcUpdate(offset: number, data: bigint): Uint8Array<ArrayBuffer> {
  const update = new Uint8Array(FILES_UPDATE_SIZE);
  const view = new DataView(update.buffer);
  view.setUint32(0, offset, true);
  view.setBigUint64(8, data, true);
  return update;
}

/**
 * A `struct io_uring_rsrc_update2` (32 bytes, no tags): `nr` entries from slot `offset`, the
 * array at address `data`.
 */
export function rsrcUpdate2(offset: number, data: number, nr: number): Uint8Array<ArrayBuffer> {
  const update = new Uint8Array(RSRC_UPDATE2_SIZE);
  const view = new DataView(update.buffer);
  view.setUint32(0, offset, true);
  view.setBigUint64(8, BigInt(data), true);
  view.setUint32(24, nr, true);
  return update;
}

/** A timestamp from `statx`: seconds and nanoseconds. */
export interface StatxTimestamp {
  /** Seconds since the epoch. */
  sec: number;
  /** Nanoseconds. */
  nsec: number;
}

/** The decoded fields of a `struct statx`. */
export interface Statx {
  /** Which fields the kernel filled (`STATX_*`). */
  mask: number;
  /** Preferred I/O block size. */
  blksize: number;
  /** Number of hard links. */
  nlink: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** File type and permission bits (`st_mode`). */
  mode: number;
  /** Inode number. */
  ino: bigint;
  /** Size in bytes (above 2^53, 8 PiB, which a sparse file can claim, the number is rounded). */
  size: number;
  /** 512-byte blocks allocated. */
  blocks: number;
  /** Last access. */
  atime: StatxTimestamp;
  /**
   * Creation, when the file system records it: only if `mask` has `STATX_BTIME`, else
   * `{ sec: 0, nsec: 0 }` (procfs, sysfs and others keep none).
   */
  btime: StatxTimestamp;
  /** Last status change. */
  ctime: StatxTimestamp;
  /** Last modification. */
  mtime: StatxTimestamp;
  /** Device major/minor of the file system. */
  devMajor: number;
  /** Device minor of the file system. */
  devMinor: number;
  /** O_DIRECT memory alignment (6.1, `STATX_DIOALIGN`), 0 when unknown. */
  dioMemAlign: number;
  /** O_DIRECT offset alignment (6.1, `STATX_DIOALIGN`), 0 when unknown. */
  dioOffsetAlign: number;
  /** True for a regular file. */
  isFile: boolean;
  /** True for a directory. */
  isDirectory: boolean;
  /** True for a symbolic link. */
  isSymlink: boolean;
}

/** A new zeroed 256-byte buffer for `statx` to fill. */
export function statxBuffer(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(STATX_SIZE);
}

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

function timestamp(v: DataView, at: number): StatxTimestamp {
  return { sec: Number(v.getBigInt64(at, true)), nsec: v.getUint32(at + 8, true) };
}

/** Decodes a `struct statx` the kernel filled. */
export function parseStatx(buf: Uint8Array): Statx {
  if (buf.byteLength < STATX_SIZE) throw new RangeError(`statx buffer must hold ${STATX_SIZE} bytes`);
  const v = new DataView(buf.buffer, buf.byteOffset, STATX_SIZE);
  const mode = v.getUint16(STATX.mode, true);
  return {
    mask: v.getUint32(STATX.mask, true),
    blksize: v.getUint32(STATX.blksize, true),
    nlink: v.getUint32(STATX.nlink, true),
    uid: v.getUint32(STATX.uid, true),
    gid: v.getUint32(STATX.gid, true),
    mode,
    ino: v.getBigUint64(STATX.ino, true),
    size: Number(v.getBigUint64(STATX.size, true)),
    blocks: Number(v.getBigUint64(STATX.blocks, true)),
    atime: timestamp(v, STATX.atime),
    btime: timestamp(v, STATX.btime),
    ctime: timestamp(v, STATX.ctime),
    mtime: timestamp(v, STATX.mtime),
    devMajor: v.getUint32(STATX.devMajor, true),
    devMinor: v.getUint32(STATX.devMinor, true),
    dioMemAlign: v.getUint32(STATX.dioMemAlign, true),
    dioOffsetAlign: v.getUint32(STATX.dioOffsetAlign, true),
    isFile: (mode & S_IFMT) === S_IFREG,
    isDirectory: (mode & S_IFMT) === S_IFDIR,
    isSymlink: (mode & S_IFMT) === S_IFLNK,
  };
}

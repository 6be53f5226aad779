/**
 * The argument structs of the `io_uring_register` calls that take one (internal): each built
 * fresh for one call, little-endian, at the offsets of include/uapi/linux/io_uring.h.
 *
 * @module
 */

import * as abi from "./abi.ts";
import { badNumber, checkU32, shown } from "./memory.ts";
import { checkUserData } from "./sqe.ts";
import { Timespec } from "./structs.ts";

/** One rule of `IoUring.registerRestrictions` (`struct io_uring_restriction`). Since 5.10. */
export type Restriction =
  /** Allow this SQE opcode (`IORING_OP_*`). */
  | { sqeOp: number }
  /** Allow this `io_uring_register` opcode (`IORING_REGISTER_*`). */
  | { registerOp: number }
  /** The SQE flags (`IOSQE_*`) an SQE may carry (none but these). */
  | { sqeFlagsAllowed: number }
  /** The SQE flags every SQE must carry. */
  | { sqeFlagsRequired: number };

/** Size of `struct io_uring_restriction`. */
export const RESTRICTION_SIZE = 16;

/** The `struct io_uring_restriction` array for `restrictions`, checked. */
export function restrictionArray(restrictions: readonly Restriction[]): Uint8Array<ArrayBuffer> {
  if (!Array.isArray(restrictions) || restrictions.length === 0) {
    throw new TypeError("registerRestrictions needs a non-empty array of restrictions");
  }
  // By index, not forEach: a hole (`[, rule]`, `new Array(2)`) must be refused as `undefined`
  // is. Skipped, it stayed 16 zero bytes, which the kernel reads as "allow
  // IORING_REGISTER_BUFFERS": a restricted ring allowed a call no rule named.
  const n = restrictions.length;
  const bytes = new Uint8Array(n * RESTRICTION_SIZE);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) {
    const [opcode, value] = restrictionOf(restrictions[i], i);
    view.setUint16(i * RESTRICTION_SIZE, opcode, true); // opcode
    view.setUint8(i * RESTRICTION_SIZE + 2, value); // register_op / sqe_op / sqe_flags
  }
  return bytes;
}

/** Whether the restriction array `array` allows register opcode `op`. */
export function allowsRegisterOp(array: Uint8Array, op: number): boolean {
  for (let at = 0; at < array.byteLength; at += RESTRICTION_SIZE) {
    if (array[at] === abi.IORING_RESTRICTION_REGISTER_OP && array[at + 1] === 0 && array[at + 2] === op) {
      return true;
    }
  }
  return false;
}

/** `[restriction opcode, its byte]` of one rule. */
function restrictionOf(rule: unknown, i: number): [number, number] {
  const what = `restrictions[${i}]`;
  if (typeof rule !== "object" || rule === null) {
    throw new TypeError(
      `${what} must be { sqeOp }, { registerOp }, { sqeFlagsAllowed } or { sqeFlagsRequired }`,
    );
  }
  const keys = Object.keys(rule);
  if (keys.length !== 1) {
    throw new TypeError(
      `${what} must name exactly one of sqeOp, registerOp, sqeFlagsAllowed, sqeFlagsRequired`,
    );
  }
  const key = keys[0];
  const value = (rule as Record<string, unknown>)[key];
  checkU32(value, `${what}.${key}`, 0xff);
  switch (key) {
    case "sqeOp":
      return [abi.IORING_RESTRICTION_SQE_OP, value];
    case "registerOp":
      return [abi.IORING_RESTRICTION_REGISTER_OP, value];
    case "sqeFlagsAllowed":
      return [abi.IORING_RESTRICTION_SQE_FLAGS_ALLOWED, value];
    case "sqeFlagsRequired":
      return [abi.IORING_RESTRICTION_SQE_FLAGS_REQUIRED, value];
  }
  throw new TypeError(
    `${what} names ${shown(key)}: use sqeOp, registerOp, sqeFlagsAllowed or sqeFlagsRequired`,
  );
}

/** What `IoUring.cancelSync` cancels: by user_data, by fd, by opcode, or any request. */
export interface SyncCancelTarget {
  /** Match requests with this user_data. */
  userData?: number | bigint;
  /** Match requests on this fd (a fixed-file slot with `fixedFile`). */
  fd?: number;
  /** With `fd`: it names a fixed-file slot (`IORING_ASYNC_CANCEL_FD_FIXED`). */
  fixedFile?: boolean;
  /** Match requests of this opcode (`IORING_OP_*`, 6.6). */
  opcode?: number;
  /** Match every request (`IORING_ASYNC_CANCEL_ANY`). */
  any?: boolean;
  /** Cancel every match, not only the first (`IORING_ASYNC_CANCEL_ALL`). */
  all?: boolean;
  /** Give up waiting for requests already running after this many ms (default: wait). */
  timeoutMs?: number;
}

/** Size of `struct io_uring_sync_cancel_reg`. */
const SYNC_CANCEL_SIZE = 64;

/** The `struct io_uring_sync_cancel_reg` for `target`, checked. */
export function syncCancelReg(target: SyncCancelTarget): Uint8Array<ArrayBuffer> {
  if (typeof target !== "object" || target === null) {
    throw new TypeError(
      `cancelSync needs { userData }, { fd }, { opcode } or { any: true }, got ${shown(target)}`,
    );
  }
  const { userData, fd, fixedFile, opcode, any, all, timeoutMs } = target; // each read once
  // (A truthy 1 for `all` cancelled one match of two without a word.)
  for (const [name, value] of [["fixedFile", fixedFile], ["any", any], ["all", all]] as const) {
    if (value !== undefined && typeof value !== "boolean") {
      throw new TypeError(`cancelSync: ${name} must be a boolean, got ${shown(value)}`);
    }
  }
  let flags = 0;
  if (any === true) flags |= abi.IORING_ASYNC_CANCEL_ANY;
  if (all === true) flags |= abi.IORING_ASYNC_CANCEL_ALL;
  const bytes = new Uint8Array(SYNC_CANCEL_SIZE);
  const view = new DataView(bytes.buffer);
  let keys = 0;
  if (userData !== undefined) {
    checkUserData(userData);
    view.setBigUint64(0, BigInt(userData), true);
    keys++;
  }
  if (fd !== undefined) {
    checkU32(fd, "fd", 0x7fffffff);
    view.setInt32(8, fd, true);
    flags |= abi.IORING_ASYNC_CANCEL_FD;
    if (fixedFile === true) flags |= abi.IORING_ASYNC_CANCEL_FD_FIXED;
    keys++;
  } else {
    view.setInt32(8, -1, true);
    if (fixedFile === true) throw new RangeError("fixedFile applies to an fd: name one");
  }
  if (opcode !== undefined) {
    checkU32(opcode, "opcode", 0xff);
    view.setUint8(32, opcode);
    flags |= abi.IORING_ASYNC_CANCEL_OP;
    keys++;
  }
  if (any === true && keys > 0) {
    throw new RangeError("any matches every request: name no userData, fd or opcode");
  }
  if (any !== true && keys === 0) {
    throw new RangeError("cancelSync needs userData, fd or opcode to match by (or any: true)");
  }
  // user_data is the default key; named beside fd or opcode it must be asked for.
  if (userData !== undefined && keys > 1) flags |= abi.IORING_ASYNC_CANCEL_USERDATA;
  view.setUint32(12, flags, true);
  if (timeoutMs === undefined) {
    view.setBigInt64(16, -1n, true); // tv_sec -1, tv_nsec -1: no timeout
    view.setBigInt64(24, -1n, true);
  } else {
    if (typeof timeoutMs !== "number" || !(timeoutMs >= 0) || timeoutMs > Number.MAX_SAFE_INTEGER) {
      throw badNumber(
        timeoutMs,
        `cancelSync: timeoutMs must be a number of milliseconds ≥ 0, got ${shown(timeoutMs)}`,
      );
    }
    bytes.set(new Timespec(timeoutMs).bytes, 16); // (a struct __kernel_timespec)
  }
  return bytes;
}

/** A `struct io_uring_file_index_range` (16 bytes): `[offset, offset + length)`. */
export function fileIndexRange(offset: number, length: number): Uint8Array<ArrayBuffer> {
  checkU32(offset, "offset");
  checkU32(length, "length");
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, offset, true);
  view.setUint32(4, length, true);
  return bytes;
}

/** A `struct io_uring_rsrc_register` (32 bytes) for a sparse table of `count` slots. */
export function sparseTable(count: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(32);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, count, true); // nr
  view.setUint32(4, abi.IORING_RSRC_REGISTER_SPARSE, true); // flags
  return bytes;
}

/** Options of `IoUring.cloneBuffersFrom`. */
export interface CloneBuffersOptions {
  /** The source's first slot to clone (default 0; 6.13). */
  srcOffset?: number;
  /** The slot the first clone goes to (default 0; 6.13). */
  dstOffset?: number;
  /** How many slots to clone (default: the source's from `srcOffset` on). */
  count?: number;
  /**
   * Replace this ring's table (default false: it must have none); its slots outside the cloned
   * range stay (6.13).
   */
  replace?: boolean;
}

/**
 * A `struct io_uring_clone_buffers` (32 bytes): `nr` buffers of ring `srcFd` from its slot
 * `srcOff` to slot `dstOff` (`nr` 0: all of them), with `flags` (`IORING_REGISTER_DST_REPLACE`).
 */
export function cloneBuffersArg(
  srcFd: number,
  flags: number,
  srcOff: number,
  dstOff: number,
  nr: number,
): Uint8Array<ArrayBuffer> {
  const words = new Uint32Array(abi.CLONE_BUFFERS_SIZE / 4);
  words.set([srcFd, flags, srcOff, dstOff, nr]);
  return new Uint8Array(words.buffer);
}

/** A `struct io_uring_buf_status` (40 bytes) asking for group `group`'s head. */
export function bufStatus(group: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(40);
  new DataView(bytes.buffer).setUint32(0, group, true);
  return bytes;
}

/** A `struct io_uring_clock_register` (16 bytes). */
export function clockRegister(clockId: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(16);
  new DataView(bytes.buffer).setUint32(0, clockId, true);
  return bytes;
}

/**
 * A `cpu_set_t` (1024 bits, as glibc's) with `cpus` set, for `IORING_REGISTER_IOWQ_AFF`. Each
 * CPU is an integer from 0 to 1023.
 */
export function cpuSet(cpus: readonly number[]): Uint8Array<ArrayBuffer> {
  if (!Array.isArray(cpus) || cpus.length === 0) {
    throw new TypeError("registerIowqAffinity needs a non-empty array of CPU numbers");
  }
  const bytes = new Uint8Array(128);
  // (By index: a hole is refused, not skipped; all holes registered an empty set, "no pinning".)
  for (let i = 0; i < cpus.length; i++) {
    const cpu = cpus[i];
    checkU32(cpu, `cpus[${i}]`, 1023);
    bytes[cpu >> 3] |= 1 << (cpu & 7);
  }
  return bytes;
}

/** Network busy-polling settings of `IoUring.registerNapi` (`struct io_uring_napi`). */
export interface NapiSettings {
  /** How long a wait busy-polls the sockets' NAPI contexts, in microseconds. */
  busyPollUs: number;
  /** Ask the driver to prefer busy polling over interrupts (`SO_PREFER_BUSY_POLL`). */
  preferBusyPoll: boolean;
}

/** Size of `struct io_uring_napi`. */
const NAPI_SIZE = 16;

/** A `struct io_uring_napi` for `settings` (dynamic tracking: opcode and op_param 0), checked. */
export function napiArg(settings: NapiSettings): Uint8Array<ArrayBuffer> {
  const bytes = napiOut();
  if (typeof settings !== "object" || settings === null) {
    throw new TypeError(`registerNapi takes { busyPollUs, preferBusyPoll }, got ${shown(settings)}`);
  }
  const { busyPollUs, preferBusyPoll } = settings; // each read once
  checkU32(busyPollUs, "busyPollUs");
  if (typeof preferBusyPoll !== "boolean") {
    throw new TypeError(`preferBusyPoll must be true or false, got ${shown(preferBusyPoll)}`);
  }
  const view = new DataView(bytes.buffer);
  view.setUint32(0, busyPollUs, true); // busy_poll_to
  view.setUint8(4, preferBusyPoll ? 1 : 0); // prefer_busy_poll
  return bytes;
}

/** A zeroed `struct io_uring_napi`, for the kernel to write the settings in force into. */
export function napiOut(): Uint8Array<ArrayBuffer> {
  return new Uint8Array(NAPI_SIZE);
}

/** The settings a `struct io_uring_napi` holds (what the kernel wrote back). */
export function napiSettings(bytes: Uint8Array): NapiSettings {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { busyPollUs: view.getUint32(0, true), preferBusyPoll: view.getUint8(4) !== 0 };
}

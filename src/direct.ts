/**
 * Direct I/O (`O_DIRECT`) at the ring level: the alignment rules a read or write must follow,
 * checked before submission with an error that names the required alignment (the kernel only
 * answers `EINVAL`); the alignment a file needs, from `statx(STATX_DIOALIGN)` (6.1) with a 4096
 * fallback; and the error a polled ring (`IORING_SETUP_IOPOLL`) reports when the device has no
 * poll queues.
 *
 * @module
 */

import * as abi from "./abi.ts";
import { AlignedBuffer, DEFAULT_ALIGNMENT } from "./aligned.ts";
import { IoUringError } from "./errors.ts";
import { errno } from "./errno.ts";
import {
  addressOf,
  badNumber,
  byteLengthOf,
  checkBuffer,
  checkFd,
  checkOffset,
  checkOptionsObject,
  cstring,
  shown,
} from "./memory.ts";
import type { Offset } from "./prep.ts";
import { prepStatx } from "./prep.ts";
import { toPath } from "./permissions.ts";
import { IoUring } from "./ring.ts";
import { parseStatx, type Statx, statxBuffer } from "./structs.ts";
import type { Backend } from "./sys.ts";

/** The alignment O_DIRECT needs when nothing better is known (a page: safe on every device). */
export const DEFAULT_DIRECT_ALIGNMENT: number = DEFAULT_ALIGNMENT;

/** What O_DIRECT requires of a file: memory alignment, and file offset / length alignment. */
export interface DirectAlignment {
  /** Buffer addresses must be a multiple of this (`stx_dio_mem_align`). */
  readonly memory: number;
  /** File offsets and lengths must be a multiple of this (`stx_dio_offset_align`). */
  readonly offset: number;
  /** `"statx"`: the kernel reported it (6.1+); `"default"`: {@link DEFAULT_DIRECT_ALIGNMENT}. */
  readonly source: "statx" | "default";
}

/** Which part of an O_DIRECT request is misaligned. */
export type AlignmentPart = "address" | "length" | "offset";

/**
 * An O_DIRECT request whose buffer address, length or file offset is not a multiple of the
 * alignment the file needs. Thrown before submission, instead of the kernel's bare `EINVAL`.
 */
export class AlignmentError extends RangeError {
  /** The misaligned part. */
  readonly part: AlignmentPart;
  /** The required alignment in bytes. */
  readonly alignment: number;
  /** The offending value (address, length or offset). */
  readonly value: number | bigint;

  /** Builds the error for `part` = `value` against `alignment`. */
  constructor(part: AlignmentPart, value: number | bigint, alignment: number) {
    const shown = part === "address" ? `0x${value.toString(16)}` : String(value);
    const what = part === "address" ? "buffer address" : part === "length" ? "buffer length" : "file offset";
    super(
      `O_DIRECT needs the ${what} to be a multiple of ${alignment} bytes, got ${shown} ` +
        `(${Number(BigInt(value) % BigInt(alignment))} past a boundary)`,
    );
    this.name = "AlignmentError";
    this.part = part;
    this.value = value;
    this.alignment = alignment;
  }
}

function checkPowerOfTwo(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 30 || (n & (n - 1)) !== 0) {
    throw badNumber(n, `${what} must be a power of two, got ${shown(n)}`);
  }
}

/**
 * The first misaligned part of an O_DIRECT request (`buf` at file `offset`), or `undefined`
 * when it is aligned. `alignment` is one number for everything, or a {@link DirectAlignment}.
 * Allocates nothing.
 */
export function directMisalignment(
  buf: ArrayBufferView | AlignedBuffer,
  offset: Offset,
  alignment: number | DirectAlignment = DEFAULT_DIRECT_ALIGNMENT,
): AlignmentPart | undefined {
  const view = buf instanceof AlignedBuffer ? buf.bytes : buf;
  checkBuffer(view);
  checkOffset(offset);
  if (typeof alignment !== "number" && (typeof alignment !== "object" || alignment === null)) {
    throw new TypeError(`alignment must be a number or a DirectAlignment, got ${shown(alignment)}`);
  }
  const memory = typeof alignment === "number" ? alignment : alignment.memory;
  const fileAlign = typeof alignment === "number" ? alignment : alignment.offset;
  checkPowerOfTwo(memory, "memory alignment");
  checkPowerOfTwo(fileAlign, "offset alignment");
  // A zero-length view has no address of its own (and moves no data): only offsets matter.
  const length = byteLengthOf(view);
  if (length !== 0 && addressOf(view) % memory !== 0) return "address";
  if (length % fileAlign !== 0) return "length";
  if (typeof offset === "number" ? offset % fileAlign !== 0 : offset % BigInt(fileAlign) !== 0n) {
    return "offset";
  }
  return undefined;
}

/**
 * Throws an {@link AlignmentError} naming the required alignment unless `buf`'s address, its
 * length and the file `offset` are all multiples of it, so a misaligned O_DIRECT request never
 * reaches the kernel. `alignment` defaults to 4096; pass {@link directAlignment}'s answer for
 * the file's own (its `null`, "this file cannot do O_DIRECT", throws a `TypeError` saying so).
 * Since: always (a user-space check).
 */
export function checkDirectAlignment(
  buf: ArrayBufferView | AlignedBuffer,
  offset: Offset,
  alignment: number | DirectAlignment | null = DEFAULT_DIRECT_ALIGNMENT,
): void {
  if (alignment === null) {
    throw new TypeError("the file does not support O_DIRECT (its statx reports no direct I/O alignment)");
  }
  const part = directMisalignment(buf, offset, alignment);
  if (part === undefined) return;
  const view = buf instanceof AlignedBuffer ? buf.bytes : buf;
  if (part === "address") {
    throw new AlignmentError(
      part,
      addressOf(view),
      typeof alignment === "number" ? alignment : alignment.memory,
    );
  }
  const fileAlign = typeof alignment === "number" ? alignment : alignment.offset;
  throw new AlignmentError(part, part === "length" ? byteLengthOf(view) : offset, fileAlign);
}

/** The fallback when the kernel does not report an alignment. */
const DEFAULT: DirectAlignment = Object.freeze({
  memory: DEFAULT_DIRECT_ALIGNMENT,
  offset: DEFAULT_DIRECT_ALIGNMENT,
  source: "default",
});

/**
 * The O_DIRECT alignment a decoded `statx` reports (ask for `STATX_DIOALIGN` in the mask): the
 * kernel's values when it filled them (6.1+, on file systems that support it), else the 4096
 * default. `null` when the kernel says the file does not support O_DIRECT (both values 0).
 */
export function directAlignmentFromStatx(statx: Statx): DirectAlignment | null {
  if (!(statx.mask & abi.STATX_DIOALIGN)) return DEFAULT;
  if (statx.dioMemAlign === 0 || statx.dioOffsetAlign === 0) return null;
  return Object.freeze({ memory: statx.dioMemAlign, offset: statx.dioOffsetAlign, source: "statx" });
}

/** Options of {@link directAlignment}. */
export interface DirectAlignmentOptions {
  /** Force a system-layer backend for the private ring the query uses. */
  backend?: Backend;
}

/**
 * Asks the kernel what O_DIRECT alignment `file` needs (a path or `file:` URL, or an open fd): one
 * `statx(STATX_DIOALIGN)` on a small private ring (so it never touches the caller's rings).
 * Falls back to 4096 when the kernel (before 6.1) or the file system does not say; `null` when
 * the kernel says the file does not support O_DIRECT (both values 0). A file system that refuses
 * O_DIRECT without saying so (ramfs, /proc) gets the 4096 default, and its open fails with
 * `EINVAL`. Throws `IoUringError` when statx fails (e.g. `ENOENT`).
 * Checks no Deno permission: the layers above must. Since 5.6 (statx), values from 6.1.
 */
export function directAlignment(
  file: string | URL | number,
  options: DirectAlignmentOptions = {},
): DirectAlignment | null {
  options ??= {}; // null: the defaults
  checkOptionsObject(options);
  let path: Uint8Array;
  let dfd: number;
  let flags = 0;
  let named: string;
  if (typeof file === "number") {
    checkFd(file, "file");
    path = cstring("");
    dfd = file;
    flags = abi.AT_EMPTY_PATH;
    named = `fd ${file}`;
  } else {
    named = toPath(file, "file");
    path = cstring(named);
    dfd = abi.AT_FDCWD;
  }
  const buf = statxBuffer();
  using ring = new IoUring(1, { sqpoll: false, backend: options.backend });
  prepStatx(ring.getSqe()!, dfd, path, flags, abi.STATX_BASIC_STATS | abi.STATX_DIOALIGN, buf);
  ring.submitAndWait(1);
  const res = ring.peekCqe()!.res;
  ring.cqAdvance(1);
  if (res < 0) throw new IoUringError("statx", -res, named);
  return directAlignmentFromStatx(parseStatx(buf));
}

// ---------------------------------------------------------------------------------------------
// IOPOLL

const EOPNOTSUPP = errno("EOPNOTSUPP");

/** Options of {@link iopollError}. */
export interface IopollErrorOptions {
  /** The operation, for the error's `call`: `"read (IOPOLL)"` (default) or `"write (IOPOLL)"`. */
  op?: "read" | "write";
  /**
   * Whether the file is open with O_DIRECT, when the caller knows: it tells "the device has no
   * poll queues" from "the file is not O_DIRECT", which the kernel answers alike.
   */
  direct?: boolean;
}

/**
 * The error for a failed read or write on a polled ring (`iopoll: true`), from the CQE's `res`
 * (a negative errno). The kernel completes a polled request with a bare `EOPNOTSUPP` both when
 * the device has no poll queues and when the file is not open with O_DIRECT; the error's hint
 * explains both, and `options.direct` picks the one that applies. Since 5.1 (IOPOLL).
 */
export function iopollError(res: number, options: IopollErrorOptions = {}): IoUringError {
  options ??= {}; // null: the defaults
  checkOptionsObject(options);
  if (!Number.isInteger(res) || res >= 0) {
    throw new RangeError(`res must be a negative errno, got ${shown(res)}`);
  }
  const call = `${options.op ?? "read"} (IOPOLL)`;
  let detail: string | undefined;
  if (-res === EOPNOTSUPP && options.direct !== undefined) {
    detail = options.direct
      ? "the file is open with O_DIRECT, so its device has no poll queues"
      : "the file is not open with O_DIRECT, which a polled ring requires";
  }
  return new IoUringError(call, -res, detail);
}

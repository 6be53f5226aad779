/**
 * Memory helpers: the address of a buffer for an SQE, NUL-terminated path strings, and the
 * argument checks that keep bad buffers away from the kernel.
 *
 * @module
 */

/** Any typed array or DataView whose memory the kernel may read or write. */
export type Buffer = ArrayBufferView;

/** Base address of each ArrayBuffer's memory, computed once (the memory never moves). */
const baseAddresses = new WeakMap<ArrayBufferLike, number>();

// The engine's own accessors of a view. A view's `byteLength`, `byteOffset` and `buffer` are
// properties an object can override (an own property, a subclass getter); what the kernel may
// touch must come from the view itself, or a view that claims 64 MiB over 8 bytes has the kernel
// write 64 MiB into the heap.
type Accessor = (this: ArrayBufferView) => unknown;
const accessor = (proto: object, name: string) =>
  Object.getOwnPropertyDescriptor(proto, name)!.get as Accessor;
const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array.prototype) as object;
const TA_LENGTH = accessor(TYPED_ARRAY, "byteLength");
const TA_OFFSET = accessor(TYPED_ARRAY, "byteOffset");
const TA_BUFFER = accessor(TYPED_ARRAY, "buffer");
/** `%TypedArray%.prototype.indexOf`: refuses a view out of its buffer's bounds (see `address`). */
const TA_INDEX_OF = (TYPED_ARRAY as { indexOf: (this: unknown, value: unknown) => number }).indexOf;
const DV_LENGTH = accessor(DataView.prototype, "byteLength");
const DV_OFFSET = accessor(DataView.prototype, "byteOffset");
const DV_BUFFER = accessor(DataView.prototype, "buffer");
const TA_TAG = Object.getOwnPropertyDescriptor(TYPED_ARRAY, Symbol.toStringTag)!.get as Accessor;
const AB_DETACHED = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "detached")!.get as (
  this: ArrayBufferLike,
) => boolean;

/**
 * Whether `view` is a DataView (not a typed array), asked without running the caller's code:
 * `instanceof` walks the prototype chain, where a proxy's trap could detach the buffer after its
 * address was taken. The typed-array tag getter reads the view's own internal slot.
 */
function isDataView(view: ArrayBufferView): boolean {
  return TA_TAG.call(view) === undefined;
}

const AB_RESIZABLE = Object.getOwnPropertyDescriptor(ArrayBuffer.prototype, "resizable")!.get as (
  this: ArrayBufferLike,
) => boolean;

/**
 * Whether `buffer` is a resizable `ArrayBuffer`, asked of the engine (false for a shared buffer,
 * which can only grow in place): one that shrinks and grows again may get other pages.
 */
export function isResizable(buffer: ArrayBufferLike): boolean {
  try {
    return AB_RESIZABLE.call(buffer);
  } catch {
    return false; // a SharedArrayBuffer
  }
}

/** Whether `buffer` was detached, asked of the engine (a shared buffer never is). */
export function isDetached(buffer: ArrayBufferLike): boolean {
  try {
    return AB_DETACHED.call(buffer);
  } catch {
    return false; // a SharedArrayBuffer
  }
}

/**
 * `view.byteLength` as the engine knows it, whatever the object's `byteLength` property says.
 * Throws a `TypeError` for an object that is not really a typed array or DataView.
 */
export function byteLengthOf(view: ArrayBufferView): number {
  // One constant getter per call site: a getter picked at run time measured slower (each of these
  // calls still costs a few ns more than a property load: see bench/FINDINGS.md).
  if (isDataView(view)) return dataViewLength(view as DataView);
  const length = TA_LENGTH.call(view) as number;
  if (length === 0) checkTypedInBounds(view);
  return length;
}

/**
 * Throws a `TypeError` when typed array `view` lies outside its buffer (a resizable `ArrayBuffer`
 * shrunk below it), whose length then reads 0 as an empty view's does (the engine's own methods
 * refuse it; taken for empty, a read of it "reached the end of file"). A detached buffer passes:
 * callers report that themselves.
 */
function checkTypedInBounds(view: ArrayBufferView): void {
  try {
    TA_INDEX_OF.call(view, undefined);
  } catch (e) {
    if (isDetached(TA_BUFFER.call(view) as ArrayBufferLike)) return;
    const message = "buffer is out of bounds: its resizable ArrayBuffer shrank below the typed array";
    throw new TypeError(message, { cause: e });
  }
}

/** `view.byteOffset` as the engine knows it (see {@link byteLengthOf}). */
export function byteOffsetOf(view: ArrayBufferView): number {
  if (isDataView(view)) return dataViewOffset(view as DataView);
  return TA_OFFSET.call(view) as number;
}

/**
 * A DataView's length. Unlike a typed array's (0), it throws when the view lies outside its
 * buffer, which a resizable `ArrayBuffer` shrunk below it does: that becomes a `TypeError` that
 * says so, where the engine's names `DataView.prototype.byteLength` (a detached buffer is
 * reported as such before this is asked).
 */
function dataViewLength(view: DataView): number {
  try {
    return DV_LENGTH.call(view) as number;
  } catch (e) {
    throw outsideItsBuffer(view, e);
  }
}

/** A DataView's offset (see {@link dataViewLength}). */
function dataViewOffset(view: DataView): number {
  try {
    return DV_OFFSET.call(view) as number;
  } catch (e) {
    throw outsideItsBuffer(view, e);
  }
}

function outsideItsBuffer(view: DataView, cause: unknown): TypeError {
  const detached = isDetached(DV_BUFFER.call(view) as ArrayBufferLike);
  return new TypeError(
    detached
      ? "buffer is detached"
      : "buffer is out of bounds: its resizable ArrayBuffer shrank below the DataView",
    { cause },
  );
}

/** `view.buffer` as the engine knows it (see {@link byteLengthOf}). */
export function bufferOf(view: ArrayBufferView): ArrayBufferLike {
  if (isDataView(view)) return DV_BUFFER.call(view) as ArrayBufferLike;
  return TA_BUFFER.call(view) as ArrayBufferLike;
}

/**
 * The address of `view`'s first byte, as a number (exact: user-space addresses are < 2^53).
 * Throws a `TypeError` for a detached buffer. Cached per ArrayBuffer, so it allocates nothing
 * after the first call for a buffer. Reads the view through the engine's accessors (see
 * {@link byteLengthOf}).
 */
export function addressOf(view: ArrayBufferView): number {
  address(view);
  return ADDRESSED[0];
}

/**
 * Leaves `view`'s address in {@link ADDRESSED} (`[0]`), where a caller stores it without the
 * number travelling (see `storeAddressOf`).
 */
export function addressInto(view: ArrayBufferView): void {
  address(view);
}

/**
 * Where {@link addressOf}'s work leaves the address: a double in a typed array stays unboxed,
 * where a number returned from a function not inlined is a heap allocation (16 bytes a call on
 * the read/write hot paths, addresses being above the small-integer range).
 */
export const ADDRESSED: Float64Array = new Float64Array(1);

/** {@link addressOf}'s work: the address into `ADDRESSED[0]`, the real length into `lastLength`. */
function address(view: ArrayBufferView): void {
  // Reading the buffer first moves a small on-heap typed array's bytes off the V8 heap, so the
  // address taken below stays valid for the life of the buffer.
  let buffer: ArrayBufferLike, offset: number, length: number;
  if (isDataView(view)) {
    buffer = DV_BUFFER.call(view) as ArrayBufferLike;
    if (isDetached(buffer)) throw new TypeError("buffer is detached"); // before the getters throw
    offset = dataViewOffset(view as DataView);
    length = dataViewLength(view as DataView);
  } else {
    buffer = TA_BUFFER.call(view) as ArrayBufferLike;
    offset = TA_OFFSET.call(view) as number;
    length = TA_LENGTH.call(view) as number;
    // A typed array over a detached buffer reads 0 bytes, as does one out of the bounds of a
    // resizable buffer shrunk below it: only then can it be either.
    if (length === 0) {
      if (isDetached(buffer)) throw new TypeError("buffer is detached");
      checkTypedInBounds(view);
    }
  }
  const base = baseAddresses.get(buffer) ?? firstBase(buffer);
  // Set last, in case anything above ever runs the caller's code (none of it does: every read
  // goes through the engine's getters), which could address another view in between.
  lastLength = length;
  ADDRESSED[0] = base + offset;
}

/** The real byte length of the view {@link addressOf} last looked at (see `bufferAddressed`). */
let lastLength = 0;

/** The base address of `buffer`, found once and cached. */
function firstBase(buffer: ArrayBufferLike): number {
  // Asked of a view of the whole buffer made here, not of the caller's view: Deno's
  // `UnsafePointer.of` reads properties of the object it is given (its prototype chain,
  // `length`), which a view can override. (A zero-length view has no address of its own.)
  const whole = new Uint8Array(buffer as ArrayBuffer);
  if (whole.length === 0) return 0; // no memory at all (every offset is 0): address 0
  const base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(whole)));
  baseAddresses.set(buffer, base);
  return base;
}

const encoder = new TextEncoder();

/** Encodes `s` as UTF-8 with a terminating NUL, for paths handed to the kernel. */
export function cstring(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new TypeError(`path contains a NUL byte: ${JSON.stringify(s)}`);
  const bytes = new Uint8Array(s.length * 3 + 1);
  const { written } = encoder.encodeInto(s, bytes);
  return bytes.subarray(0, written + 1);
}

/**
 * {@link cstring} into `scratch` when it is big enough (no new memory: the kernel gets an
 * address whose base is already known), else into a new buffer of at least 256 bytes. Returns
 * the NUL-terminated view; its `.buffer` is the memory to keep for the next call. `what` names
 * the string in the `TypeError` for a NUL byte in it.
 */
export function cstringInto(
  s: string,
  scratch: Uint8Array<ArrayBuffer> | null,
  what = "path",
): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) throw new TypeError(`${what} contains a NUL byte: ${JSON.stringify(s)}`);
  const need = s.length * 3 + 1;
  let bytes = scratch;
  if (bytes === null || bytes.byteLength < need) {
    let size = 256;
    while (size < need) size *= 2;
    bytes = new Uint8Array(size);
  }
  const { written } = encoder.encodeInto(s, bytes);
  bytes[written] = 0;
  return bytes.subarray(0, written + 1);
}

/** Throws unless `path` is a NUL-terminated byte string (as made by {@link cstring}). */
export function checkCString(path: Uint8Array, what = "path"): void {
  if (!(path instanceof Uint8Array)) {
    throw new TypeError(`${what} must be a NUL-terminated Uint8Array (see cstring())`);
  }
  const length = byteLengthOf(path);
  if (length === 0 || path[length - 1] !== 0) {
    throw new TypeError(`${what} must end with a NUL byte (see cstring())`);
  }
}

/** Throws unless `view` is an ArrayBufferView that is not detached. */
export function checkBuffer(view: unknown, what = "buffer"): asserts view is ArrayBufferView {
  if (!ArrayBuffer.isView(view)) throw new TypeError(`${what} must be a typed array or DataView`);
  if (isDetached(bufferOf(view))) throw new TypeError(`${what} is detached`);
}

/**
 * `checkBuffer` + `addressOf` in one pass for the read/write hot paths (typed-array accessors
 * cost several ns each there, and `addressOf` already refuses a detached buffer), without a
 * number to allocate: leaves the address in `ADDRESSED[0]` and returns the view's real byte
 * length (the hot paths read both right after).
 */
export function bufferAddressed(buf: ArrayBufferView): number {
  if (!ArrayBuffer.isView(buf)) checkBuffer(buf); // throws the usual TypeError
  address(buf);
  return lastLength;
}

/** Throws a `RangeError` unless `n` bytes fit an SQE's 32-bit length. */
export function checkLength(n: number, what = "buffer"): void {
  if (n > 0xffffffff) throw new RangeError(`${what} is larger than 4 GiB - 1 bytes`);
}

/** Throws unless `view` holds at least `size` bytes. */
export function checkSize(view: ArrayBufferView, size: number, what = "buffer"): void {
  checkBuffer(view, what);
  const length = byteLengthOf(view);
  if (length < size) throw new RangeError(`${what} is too small: ${length} bytes, need ${size}`);
}

/** What to pass instead of `value`, an object given where a file descriptor belongs ("" if unknown). */
function fdHint(value: unknown): string {
  try {
    if (typeof Deno !== "undefined" && value instanceof Deno.FsFile) {
      return " (a Deno.FsFile has no fd to give: open the file with Uring.open() or Uring.openFd())";
    }
    const fd = typeof value === "object" && value !== null ? (value as { fd?: unknown }).fd : undefined;
    if (Number.isInteger(fd)) {
      return ` (it has an fd, ${fd}: pass the number, or use the object's own methods)`;
    }
  } catch {
    // a getter or a proxy that threw: no hint
  }
  return "";
}

/** Throws unless `fd` is an integer file descriptor (≥ 0; `AT_FDCWD` is no file to read or write). */
export function checkFd(fd: unknown, what = "fd"): asserts fd is number {
  if (typeof fd !== "number" || !Number.isInteger(fd)) {
    throw badNumber(fd, `${what} must be an integer file descriptor, got ${shown(fd)}${fdHint(fd)}`);
  }
  if (fd < 0) {
    throw new RangeError(
      `${what} must not be negative, got ${fd}${
        fd === -100 ? " (AT_FDCWD names a directory for paths only)" : ""
      }`,
    );
  }
  if (fd > 0x7fffffff) throw new RangeError(`${what} is out of range: ${fd}`);
}

/** Throws unless `dfd` is a directory descriptor for a path: ≥ 0, or -100 (`AT_FDCWD`). */
export function checkDirFd(dfd: unknown, what = "dfd"): asserts dfd is number {
  if (dfd !== -100) checkFd(dfd, what);
}

/** Maximum file offset io_uring accepts (it is a signed 64-bit value in the kernel). */
const MAX_OFFSET = 0x7fffffffffffffffn;

/** Throws unless `offset` is a non-negative integer (number ≤ 2^53-1, or bigint < 2^63). */
export function checkOffset(offset: unknown, what = "offset"): asserts offset is number | bigint {
  if (typeof offset === "number") {
    if (!Number.isSafeInteger(offset)) { // (a number, but no file offset: a RangeError)
      throw new RangeError(`${what} must be a safe integer or a bigint, got ${shown(offset)}`);
    }
    if (offset < 0) throw new RangeError(`${what} must not be negative, got ${offset}`);
  } else if (typeof offset === "bigint") {
    if (offset < 0n || offset > MAX_OFFSET) throw new RangeError(`${what} is out of range: ${offset}`);
  } else {
    throw new TypeError(`${what} must be a number or a bigint, got ${typeof offset}`);
  }
}

/**
 * `value` as an error message shows it: numbers as they are; other types marked, so that `"2"`
 * (a string) or `3n` (a bigint) is not read as the number it looks like.
 */
export function shown(value: unknown): string {
  switch (typeof value) {
    case "number":
      return String(value);
    case "bigint":
      return `${value}n (a bigint)`;
    case "string":
      return `${JSON.stringify(value)} (a string)`;
    case "undefined":
      return "undefined";
    default:
      return value === null ? "null" : typeof value === "object" ? "an object" : `a ${typeof value}`;
  }
}

/**
 * How `value` is shown when it stands where an options object belongs and is not one: `null` when
 * it may stand there (an object, or `undefined`/`null` for the defaults), else what it is
 * (`"an array"`, `"4096"`, ...). One rule for every options parameter. A `Map` or `Set` is not
 * one: its options would be read from its methods (`new Uring(new Map())` took `Map.prototype.entries`
 * for `entries`), nor is a promise (not awaited), a buffer, or an `AbortSignal` given bare (its
 * `signal` property is undefined: the operation would not be abortable).
 */
export function notAnOptionsObject(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "object") return shown(value);
  if (Array.isArray(value)) return "an array";
  if (value instanceof Map) return "a Map (pass a plain object)";
  if (value instanceof Set) return "a Set";
  if (value instanceof Promise) return "a Promise (await it first)";
  if (value instanceof AbortSignal) return "an AbortSignal (pass { signal })";
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return "a buffer";
  return null;
}

/** Throws a `TypeError` unless `value` may stand as an options object ({@link notAnOptionsObject}). */
export function checkOptionsObject(value: unknown): void {
  const notObject = notAnOptionsObject(value);
  if (notObject !== null) throw new TypeError(`options must be an object, got ${notObject}`);
}

/**
 * The error for a numeric argument refused with `message`: a `TypeError` when `value` is not a
 * number at all (nor a bigint, where `bigintToo` says one is taken), else a `RangeError`.
 */
export function badNumber(value: unknown, message: string, bigintToo = false): TypeError | RangeError {
  return typeof value === "number" || (bigintToo && typeof value === "bigint")
    ? new RangeError(message)
    : new TypeError(message);
}

/**
 * Throws unless `n` is an integer in `[min, max]` (`min` 0 by default): a `TypeError` when it is
 * not a number, a `RangeError` when it is the wrong number.
 */
export function checkU32(n: unknown, what: string, max = 0xffffffff, min = 0): asserts n is number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    throw badNumber(n, `${what} must be an integer from ${min} to ${max}, got ${shown(n)}`);
  }
}

/**
 * Throws unless `bits` is a 32-bit mask: an integer from -2^31 to 2^32 - 1, so a mask built with
 * `|` from a constant with bit 31 set (a negative int32 then) passes. Store it with `>>> 0`.
 */
export function checkBits32(bits: unknown, what: string): asserts bits is number {
  if (!(typeof bits === "number" && (bits >>> 0 === bits || (bits | 0) === bits))) {
    throw badNumber(
      bits,
      `${what} must be a 32-bit mask (an integer from -2147483648 to 4294967295), got ${shown(bits)}`,
    );
  }
}

/** {@link checkU32} for a 32-bit flags word, with the valid case decided inline (hot paths). */
export function checkFlags(flags: unknown, what: string): asserts flags is number {
  if (!(typeof flags === "number" && flags >>> 0 === flags)) checkU32(flags, what);
}

/**
 * {@link checkFlags}, and a `RangeError` for a bit outside `allowed` (the kernel refuses it):
 * `names` lists the bits it may hold, for the message.
 */
export function checkFlagBits(
  flags: unknown,
  allowed: number,
  what: string,
  names: string,
): asserts flags is number {
  checkFlags(flags, what);
  const stray = flags & ~allowed;
  if (stray !== 0) {
    throw new RangeError(
      `${what} must be 0 or a combination of ${names}, got 0x${flags.toString(16)} (0x${
        (stray >>> 0).toString(16)
      } refused)`,
    );
  }
}

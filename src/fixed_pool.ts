/**
 * A pool of fixed (registered) buffers: aligned memory registered with a ring once
 * (`IORING_REGISTER_BUFFERS`), handed out and taken back by index, and used with
 * `READ_FIXED`/`WRITE_FIXED`, so the kernel skips pinning pages on every request. The buffers
 * are aligned for O_DIRECT. {@link checkFixedBuffer} validates any fixed-buffer request before
 * it reaches the kernel (which would answer a bad index with a bare `EFAULT`).
 *
 * @module
 */

import { IORING_MAX_REG_BUFFER_SIZE, IORING_MAX_REG_BUFFERS } from "./abi.ts";
import { AlignedBuffer, checkAlignment, DEFAULT_ALIGNMENT } from "./aligned.ts";
import { ClosedError } from "./errors.ts";
import {
  addressOf,
  badNumber,
  bufferOf,
  byteLengthOf,
  checkBuffer,
  checkFd,
  checkOffset,
  isDetached,
  shown,
} from "./memory.ts";
import { type Offset, prepReadFixed, prepWriteFixed } from "./prep.ts";
import type { IoUring } from "./ring.ts";
import { type Sqe, W } from "./sqe.ts";
import type { Backend } from "./sys.ts";

/**
 * Throws a `RangeError` unless `bufIndex` names a buffer registered with `ring` and `view` lies
 * inside it (a `ClosedError` for a closed ring): the checks the kernel would otherwise answer
 * with `EFAULT`. Call it before `getSqe()` + `prepReadFixed`/`prepWriteFixed`. Allocates nothing.
 * Since 5.1.
 */
export function checkFixedBuffer(ring: IoUring, view: ArrayBufferView, bufIndex: number): void {
  if (ring.closed) throw new ClosedError("IoUring");
  const registered = ring.registeredBuffers;
  if (registered === undefined) throw new RangeError("no buffers are registered with this ring");
  if (!Number.isInteger(bufIndex) || bufIndex < 0 || bufIndex >= registered.length) {
    throw new RangeError(
      `fixed buffer index ${bufIndex} is out of range: the ring has ${registered.length} registered buffers`,
    );
  }
  checkBuffer(view);
  const target = registered[bufIndex];
  if (isDetached(bufferOf(target))) {
    throw new RangeError(
      `registered buffer ${bufIndex} was transferred away or freed (its ArrayBuffer is detached): the ` +
        "kernel still has its old pages; replace it (registerBuffersUpdate) or register the buffers again",
    );
  }
  const targetLength = byteLengthOf(target);
  if (targetLength === 0) {
    throw new RangeError(
      `registered buffer ${bufIndex} is an empty slot (fill it with registerBuffersUpdate): the kernel ` +
        "would fail the request with EFAULT",
    );
  }
  const length = byteLengthOf(view);
  if (length === 0) return;
  const start = addressOf(target);
  const address = addressOf(view);
  if (address < start || address + length > start + targetLength) {
    throw new RangeError(
      `the buffer (${length} bytes at 0x${address.toString(16)}) is not inside registered ` +
        `buffer ${bufIndex} (${targetLength} bytes at 0x${start.toString(16)})`,
    );
  }
}

/** Internal access for `Uring` (see the class's static block). */
let countInFlight: (pool: FixedBufferPool, index: number, delta: number) => void;

/**
 * Counts one more (`delta` 1) or one less (-1) operation of a `Uring` in flight on buffer `index`
 * of `pool` (internal): `release()` refuses a buffer while its count is not 0.
 */
export function poolOperationInFlight(pool: FixedBufferPool, index: number, delta: number): void {
  countInFlight(pool, index, delta);
}

/** Options of {@link FixedBufferPool}. */
export interface FixedBufferPoolOptions {
  /** Number of buffers (1 to 16384, `IORING_MAX_REG_BUFFERS`; 1024 before 5.13). */
  count: number;
  /** Bytes per buffer (1 byte to 1 GiB); each buffer starts at a multiple of `alignment`. */
  size: number;
  /** Alignment of each buffer (a power of two ≥ 512; default 4096). */
  alignment?: number;
  /** Force a system-layer backend for the memory mapping. */
  backend?: Backend;
}

// A FixedBuffer's own fields (set in its static block; they throw for any other object).
/** Pools registered by the module for its own use, with what to tell a caller who meets one. */
const borrowed = new WeakMap<FixedBufferPool, string>();

/**
 * Marks `pool` as registered by the module for itself (internal: a copy's buffers), with `why`,
 * which an attempt to register another pool on its `Uring` reports.
 */
export function markBorrowedPool(pool: FixedBufferPool, why: string): void {
  borrowed.set(pool, why);
}

/** What {@link markBorrowedPool} said of `pool`, or undefined for a caller's own (internal). */
export function borrowedPoolReason(pool: FixedBufferPool): string | undefined {
  return borrowed.get(pool);
}

let poolOf: (buf: FixedBuffer) => FixedBufferPool;
let indexOf: (buf: FixedBuffer) => number;
let bytesOf: (buf: FixedBuffer) => Uint8Array<ArrayBuffer>;

/**
 * One buffer of a {@link FixedBufferPool}: `index` is its `buf_index`, `bytes` its memory.
 * Valid while acquired and until the pool closes. Since 5.1.
 */
export class FixedBuffer {
  readonly #pool: FixedBufferPool;
  readonly #index: number;
  #bytes: Uint8Array<ArrayBuffer>;

  static {
    // The pool reads these, not the properties a caller could shadow on an object of its own.
    poolOf = (buf) => buf.#pool;
    indexOf = (buf) => buf.#index;
    bytesOf = (buf) => buf.#bytes;
  }

  /** Wraps buffer `index` (internal: pools create these). */
  constructor(pool: FixedBufferPool, index: number, bytes: Uint8Array<ArrayBuffer>) {
    this.#pool = pool;
    this.#index = index;
    this.#bytes = bytes;
  }

  /** The pool it belongs to. */
  get pool(): FixedBufferPool {
    return this.#pool;
  }

  /** Its index in the ring's registered buffer table (the SQE's `buf_index`); read-only. */
  get index(): number {
    return this.#index;
  }

  /** The buffer's memory (`pool.size` bytes). Throws once the pool is closed. */
  get bytes(): Uint8Array<ArrayBuffer> {
    if (this.#pool.closed) throw new TypeError("FixedBufferPool is closed");
    return this.#bytes;
  }

  /** Whether a caller holds it (between `acquire()` and `release()`). */
  get acquired(): boolean {
    return this.pool.isAcquired(this);
  }
}

/**
 * `count` aligned buffers of `size` bytes, registered with `ring` once (the ring then has no
 * room for other registered buffers). `acquire()`/`release()` hand them out without
 * allocating; `readFixed`/`writeFixed` validate a request, then queue a `READ_FIXED` or
 * `WRITE_FIXED` SQE for it, so a bad request never takes an SQE or reaches the kernel. Keep a
 * buffer acquired until its CQE has arrived. `close()` (or `using`) unregisters and frees the
 * memory. Since 5.1.
 */
export class FixedBufferPool implements Disposable {
  /** The ring the buffers are registered with. */
  readonly ring: IoUring;
  /** Number of buffers. */
  readonly count: number;
  /** Bytes per buffer. */
  readonly size: number;
  /** Alignment of each buffer's first byte. */
  readonly alignment: number;
  readonly #memory: AlignedBuffer;
  readonly #buffers: FixedBuffer[];
  readonly #free: Int32Array; // stack of free indexes
  readonly #held: Uint8Array; // 1 while acquired, by index
  readonly #inFlight: Int32Array; // a Uring's operations in flight, by index (see release)
  #freeTop: number;
  #registered: readonly ArrayBufferView[] | undefined; // the ring's table, to recognise it later
  #closed = false;

  /** Maps the memory and registers it with `ring` (`IORING_REGISTER_BUFFERS`). */
  constructor(ring: IoUring, options: FixedBufferPoolOptions) {
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw new TypeError("FixedBufferPool needs options: { count, size, alignment? }");
    }
    const { count, size } = options;
    const alignment = options.alignment ?? DEFAULT_ALIGNMENT;
    if (!Number.isInteger(count) || count < 1 || count > IORING_MAX_REG_BUFFERS) {
      throw badNumber(
        count,
        `count must be an integer from 1 to ${IORING_MAX_REG_BUFFERS}, got ${shown(count)}`,
      );
    }
    if (!Number.isInteger(size) || size < 1 || size > IORING_MAX_REG_BUFFER_SIZE) {
      throw badNumber(
        size,
        `size must be an integer from 1 to ${IORING_MAX_REG_BUFFER_SIZE}, got ${shown(size)}`,
      );
    }
    checkAlignment(alignment);
    if (ring.closed) throw new ClosedError("IoUring");
    if (ring.registeredBuffers !== undefined) {
      throw new RangeError("the ring already has registered buffers: unregister them first");
    }
    const stride = Math.ceil(size / alignment) * alignment;
    this.#memory = new AlignedBuffer(stride * count, alignment, { backend: options.backend });
    try {
      const whole = this.#memory.bytes;
      const views = Array.from({ length: count }, (_, i) => whole.subarray(i * stride, i * stride + size));
      ring.registerBuffers(views);
      this.#registered = ring.registeredBuffers;
      this.#buffers = views.map((v, i) => new FixedBuffer(this, i, v));
    } catch (e) {
      this.#memory.free();
      throw e;
    }
    this.ring = ring;
    this.count = count;
    this.size = size;
    this.alignment = alignment;
    this.#held = new Uint8Array(count);
    this.#inFlight = new Int32Array(count);
    this.#free = new Int32Array(count);
    for (let i = 0; i < count; i++) this.#free[i] = count - 1 - i; // acquire() hands out 0 first
    this.#freeTop = count;
  }

  /** Whether {@link FixedBufferPool.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Buffers not acquired. */
  get available(): number {
    return this.#closed ? 0 : this.#freeTop;
  }

  /** A free buffer, now held by the caller, or `null` when all are in use. Allocates nothing. */
  acquire(): FixedBuffer | null {
    if (this.#closed) throw new TypeError("FixedBufferPool is closed");
    if (this.#freeTop === 0) return null;
    const index = this.#free[--this.#freeTop];
    this.#held[index] = 1;
    return this.#buffers[index];
  }

  static {
    countInFlight = (pool, index, delta) => {
      pool.#inFlight[index] += delta;
    };
  }

  /**
   * Gives `buf` back (only once its I/O has completed). Throws on a double release, and while a
   * read or write of the pool's `Uring` on it is queued or in flight (the kernel may still write
   * into it, under the next holder's data); a chain's members, views across two buffers and
   * operations through the raw ring are the caller's to wait for.
   */
  release(buf: FixedBuffer): void {
    if (this.#closed) return;
    const index = this.#own(buf);
    if (this.#held[index] === 0) {
      throw new RangeError(`fixed buffer ${index} was not acquired (double release?)`);
    }
    const inFlight = this.#inFlight[index];
    if (inFlight !== 0) {
      throw new RangeError(
        `fixed buffer ${index} has ${inFlight} operation(s) of its Uring in flight: release it once they have settled`,
      );
    }
    this.#held[index] = 0;
    this.#free[this.#freeTop++] = index;
  }

  /** Whether `buf` (of this pool) is acquired. */
  isAcquired(buf: FixedBuffer): boolean {
    const index = this.#own(buf);
    return !this.#closed && this.#held[index] === 1;
  }

  /** The buffer with `buf_index` `index` (whether acquired or not). */
  buffer(index: number): FixedBuffer {
    if (this.#closed) throw new TypeError("FixedBufferPool is closed");
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw badNumber(
        index,
        `fixed buffer index ${shown(index)} is out of range: the pool has ${this.count} buffers`,
      );
    }
    return this.#buffers[index];
  }

  /** `buf`'s index, after checking it is one of this pool's buffers (its own fields, not its properties). */
  #own(buf: FixedBuffer): number {
    let pool: FixedBufferPool | undefined;
    try {
      pool = poolOf(buf);
    } catch {
      pool = undefined; // not a FixedBuffer
    }
    if (pool !== this) throw new RangeError("the fixed buffer belongs to another pool");
    return indexOf(buf);
  }

  /** Validates a request on `buf` and returns the ring's next SQE (or `null` when the SQ is full). */
  #queue(fd: number, buf: FixedBuffer, offset: Offset, length: number): Sqe | null {
    if (this.#closed) throw new TypeError("FixedBufferPool is closed");
    const index = this.#own(buf);
    if (this.#held[index] === 0) throw new RangeError(`fixed buffer ${index} is not acquired`);
    if (this.ring.closed || this.ring.registeredBuffers !== this.#registered) {
      throw new RangeError("the pool's buffers are no longer registered with the ring");
    }
    checkFd(fd);
    checkOffset(offset);
    if (!Number.isInteger(length) || length < 0 || length > this.size) {
      throw new RangeError(
        `length must be an integer from 0 to ${this.size} (the buffer size), got ${shown(length)}`,
      );
    }
    return this.ring.getSqe();
  }

  /**
   * Queues a `READ_FIXED` of `length` bytes (default: the whole buffer) from file `offset` into
   * `buf`, after checking every argument, and returns the SQE to set `userData`/flags on (or
   * `null` when the SQ is full; nothing was queued). Allocates nothing. Since 5.1.
   */
  readFixed(fd: number, buf: FixedBuffer, offset: Offset, length: number = this.size): Sqe | null {
    const sqe = this.#queue(fd, buf, offset, length);
    if (sqe === null) return null;
    prepReadFixed(sqe, fd, bytesOf(buf), offset, indexOf(buf));
    sqe.u32[sqe.base + W.len] = length;
    return sqe;
  }

  /**
   * Queues a `WRITE_FIXED` of the first `length` bytes of `buf` (default: all) at file `offset`;
   * as {@link FixedBufferPool.readFixed}. Since 5.1.
   */
  writeFixed(fd: number, buf: FixedBuffer, offset: Offset, length: number = this.size): Sqe | null {
    const sqe = this.#queue(fd, buf, offset, length);
    if (sqe === null) return null;
    prepWriteFixed(sqe, fd, bytesOf(buf), offset, indexOf(buf));
    sqe.u32[sqe.base + W.len] = length;
    return sqe;
  }

  /**
   * Unregisters the buffers (when the ring is open and still has them) and frees the memory:
   * every buffer's `bytes` then throws and views taken earlier are detached. The kernel keeps its
   * own hold on registered pages, so a `READ_FIXED`/`WRITE_FIXED` still in flight cannot touch
   * freed memory; a `Uring` operation of any kind on the pool's memory holds it mapped until its
   * completion. A plain `prepRead`/`prepWrite` of your own on a raw ring has no such hold: reap
   * everything first. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (!this.ring.closed && this.ring.registeredBuffers === this.#registered) {
        this.ring.unregisterBuffers();
      }
    } finally {
      this.#registered = undefined;
      this.#freeTop = 0;
      this.#memory.free();
    }
  }

  /** Same as {@link FixedBufferPool.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

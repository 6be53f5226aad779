/**
 * {@link BufferRing}: a ring of provided buffers (`IORING_REGISTER_PBUF_RING`), from which the
 * kernel picks a buffer for an operation when its data arrives, instead of the SQE naming one.
 *
 * @module
 */

import { BUF, BUF_RING_TAIL, BUF_SIZE, IORING_CQE_BUFFER_SHIFT, IORING_CQE_F_BUFFER } from "./abi.ts";
import type { AlignedBuffer } from "./aligned.ts";
import { ClosedError } from "./errors.ts";
import { checkU32 } from "./memory.ts";

/** Internal (see the class's static block). */
let ownsSqeMemory: (ring: BufferRing, words: Uint32Array) => boolean;

/**
 * The group id of `bufferRing` for a use on the ring whose SQE memory is `sqeWords` (an `Sqe`'s
 * `u32`; `undefined` skips that look, for a caller that refuses a bad SQE itself) (internal: the
 * preps and `IoUring.bufferRingHead`). Throws `ClosedError` once it is closed (its group id may
 * be another ring of buffers' now), and a `TypeError` when it is registered with another ring,
 * where its group id names another ring of buffers, or none.
 */
export function groupOn(bufferRing: BufferRing, sqeWords: Uint32Array | undefined): number {
  if (bufferRing.closed) throw new ClosedError(`BufferRing (group ${bufferRing.group})`);
  if (sqeWords !== undefined && !ownsSqeMemory(bufferRing, sqeWords)) {
    throw new TypeError(
      `this BufferRing (group ${bufferRing.group}) is registered with another ring: on this one its group ` +
        "id names another ring of buffers, or none",
    );
  }
  return bufferRing.group;
}

/** Options of `IoUring.setupBufferRing`. */
export interface BufferRingOptions {
  /** The buffer group id SQEs name (`buf_group`): 0 to 65535, one ring per group. */
  group: number;
  /** How many buffers: a power of two from 1 to 32768. */
  entries: number;
  /** The size of each buffer in bytes: 1 to 2^32 - 1 (and `entries × bufferSize` mappable). */
  bufferSize: number;
}

/**
 * A buffer group's ring of provided buffers, with `entries` buffers of `bufferSize` bytes in
 * memory the module maps (never moved or collected while registered). Made by
 * `IoUring.setupBufferRing`; an SQE asks for one of its buffers with `IOSQE_BUFFER_SELECT` and
 * the group (`prepRecvMultishot`, `prepRecvSelect`, `prepReadMultishot`, `prepReadSelect`). The
 * CQE then has `IORING_CQE_F_BUFFER` and the buffer's id in its flags: {@link BufferRing.take}
 * reads it, {@link BufferRing.view} shows the buffer, and {@link BufferRing.recycle} gives it
 * back to the kernel once its data is used. When the ring is empty the operation fails with
 * `-ENOBUFS` (a multishot one ends). Close it only once no operation that selects from it is in
 * flight: one the kernel runs in a worker thread may have taken a buffer already. Since 5.19.
 */
export class BufferRing implements Disposable {
  /** The buffer group id. */
  readonly group: number;
  /** How many buffers the ring holds. */
  readonly entries: number;
  /** The size of each buffer in bytes. */
  readonly bufferSize: number;
  readonly #ringMemory: AlignedBuffer;
  readonly #data: AlignedBuffer;
  readonly #dataAddress: number;
  readonly #words: Uint32Array;
  readonly #halves: Uint16Array;
  readonly #mask: number;
  /** 1 while buffer `bid` is in the ring (the kernel's to pick), 0 while the program has it. */
  readonly #inRing: Uint8Array;
  /**
   * For each buffer, the one added right after it (ring order: the order a bundle fills them
   * in). Kept until the buffer is added again, which cannot happen while the kernel has it.
   */
  readonly #addedAfter: Uint16Array;
  /** The buffer added last, whose successor the next add records; -1 before the first. */
  #lastAdded = -1;
  /** For each buffer taken, the next buffer of its bundle, or -1 (see {@link BufferRing.next}). */
  readonly #bundleNext: Int32Array;
  /** Views of the buffers, made on first use. */
  readonly #views: (Uint8Array<ArrayBuffer> | undefined)[];
  /** Buffers added: the next tail (16 bits, wrapping), published by {@link BufferRing.publish}. */
  #tail = 0;
  #release: (() => void) | null;
  /** The SQE memory of the ring it is registered with: a prep on another ring's SQE is refused. */
  readonly #sqeWords: Uint32Array;

  static {
    ownsSqeMemory = (ring, words) => ring.#sqeWords === words;
  }

  /**
   * Internal (`IoUring.setupBufferRing` makes it): lays out the ring over `ringMemory` with every
   * buffer of `data` in it, published. `sqeWords` is the SQE memory of the ring it belongs to;
   * `release` unregisters the group and frees the memory.
   */
  constructor(
    options: BufferRingOptions,
    ringMemory: AlignedBuffer,
    data: AlignedBuffer,
    sqeWords: Uint32Array,
    release: (ring: BufferRing) => void,
  ) {
    this.#sqeWords = sqeWords;
    this.group = options.group;
    this.entries = options.entries;
    this.bufferSize = options.bufferSize;
    this.#ringMemory = ringMemory;
    this.#data = data;
    this.#dataAddress = data.address;
    this.#words = new Uint32Array(ringMemory.bytes.buffer, ringMemory.bytes.byteOffset, this.entries * 4);
    this.#halves = new Uint16Array(ringMemory.bytes.buffer, ringMemory.bytes.byteOffset, this.entries * 8);
    this.#mask = this.entries - 1;
    this.#inRing = new Uint8Array(this.entries);
    this.#addedAfter = new Uint16Array(this.entries);
    this.#bundleNext = new Int32Array(this.entries).fill(-1);
    this.#views = new Array(this.entries);
    this.#release = () => release(this);
    for (let bid = 0; bid < this.entries; bid++) this.add(bid);
    this.publish();
  }

  /** The ring's memory, as registered (internal: `IoUring` hands its address to the kernel). */
  get ringAddress(): number {
    return this.#ringMemory.address;
  }

  /**
   * The id of the buffer a CQE's `flags` say the kernel filled (`IORING_CQE_F_BUFFER`), now the
   * program's until {@link BufferRing.recycle}; -1 when the CQE carries none (a failure such as
   * `-ENOBUFS`, or the end of a stream). Call it for every CQE, the last of a multishot operation
   * too: one that ends it because the CQ was full still carries data and a buffer. Give it only
   * the flags of CQEs of
   * operations that selected from this ring: another group's buffer id would mark one of this
   * ring's buffers taken while the kernel still has it. Throws `ClosedError` once the ring is
   * closed.
   *
   * With the CQE's `res`, it takes every buffer the CQE filled: a bundle
   * (`IORING_RECVSEND_BUNDLE`, 6.10) fills `ceil(res / bufferSize)` buffers in ring order, the
   * first named in `flags`; {@link BufferRing.next} walks them. Passing `res` is right for any
   * CQE of this ring (one that is not a bundle filled one buffer). Throws a `RangeError`, taking
   * none, when the buffers after the first are not the kernel's (flags and `res` of another
   * CQE).
   */
  take(cqeFlags: number, res?: number): number {
    this.#checkOpen();
    // (A Cqe passed for its flags, or 1.5, would read as "no buffer", or as a buffer the kernel
    // still has: a later recycle would then hand it the same buffer twice.)
    if (cqeFlags >>> 0 !== cqeFlags) checkU32(cqeFlags, "cqeFlags");
    if ((cqeFlags & IORING_CQE_F_BUFFER) === 0) return -1;
    const bid = cqeFlags >>> IORING_CQE_BUFFER_SHIFT;
    if (bid >= this.entries) {
      throw new RangeError(`buffer id ${bid} is not of this ring (${this.entries} entries)`);
    }
    if (res !== undefined && res > this.bufferSize) return this.#takeBundle(bid, res);
    if (res !== undefined && !(typeof res === "number" && Number.isInteger(res))) this.#checkRes(res);
    this.#inRing[bid] = 0;
    this.#bundleNext[bid] = -1;
    return bid;
  }

  /**
   * Takes the `ceil(res / bufferSize)` buffers of a bundle that starts at `first`: the buffers
   * added after it, in order. Checks them all before taking any.
   */
  #takeBundle(first: number, res: number): number {
    this.#checkRes(res);
    const count = Math.ceil(res / this.bufferSize);
    if (count > this.entries) {
      throw new RangeError(
        `res ${res} is more than this ring's ${this.entries} buffers of ${this.bufferSize} bytes hold`,
      );
    }
    for (let i = 1, bid = first; i < count; i++) {
      bid = this.#addedAfter[bid];
      if (this.#inRing[bid] === 0) {
        throw new RangeError(
          `a bundle of ${count} buffers from buffer ${first} reaches buffer ${bid}, which the program ` +
            "holds already: these flags and res are not of one CQE of this ring",
        );
      }
    }
    let bid = first;
    this.#inRing[bid] = 0;
    for (let i = 1; i < count; i++) {
      const after = this.#addedAfter[bid];
      this.#bundleNext[bid] = after;
      bid = after;
      this.#inRing[bid] = 0;
    }
    this.#bundleNext[bid] = -1;
    return first;
  }

  #checkRes(res: unknown): void {
    if (!(typeof res === "number" && Number.isInteger(res))) {
      throw new RangeError(
        `res must be the CQE's res (an integer), got ${typeof res === "bigint" ? `${res}n` : String(res)}`,
      );
    }
  }

  /**
   * The buffer after `bid` in the bundle {@link BufferRing.take} took it in (the next
   * `bufferSize` bytes of the data), or -1 when `bid` was the last (or alone). Valid until `bid`
   * is taken again: read it before that, even after recycling `bid`.
   */
  next(bid: number): number {
    this.#checkOpen();
    this.#checkId(bid);
    return this.#bundleNext[bid];
  }

  /**
   * Buffer `bid`, all `bufferSize` bytes of it (the data a CQE reported is its first `res`
   * bytes). The same view each time; it reads as empty once the ring is closed.
   */
  view(bid: number): Uint8Array<ArrayBuffer> {
    this.#checkOpen();
    this.#checkId(bid);
    return this.#views[bid] ??= this.#data.bytes.subarray(bid * this.bufferSize, (bid + 1) * this.bufferSize);
  }

  /**
   * Adds buffer `bid`, taken earlier, back to the ring, without publishing it yet (see
   * {@link BufferRing.publish}); refuses a buffer that is in the ring already, which would give
   * the kernel one buffer twice.
   */
  add(bid: number): void {
    this.#checkOpen();
    this.#checkId(bid);
    if (this.#inRing[bid] === 1) {
      throw new RangeError(`buffer ${bid} is in the ring already (take() it from a CQE first)`);
    }
    this.#inRing[bid] = 1;
    if (this.#lastAdded >= 0) this.#addedAfter[this.#lastAdded] = bid;
    this.#lastAdded = bid;
    const w = (this.#tail & this.#mask) * (BUF_SIZE / 4), words = this.#words;
    const addr = this.#dataAddress + bid * this.bufferSize;
    words[w + BUF.addr / 4] = addr >>> 0;
    words[w + BUF.addr / 4 + 1] = (addr - (addr >>> 0)) / 0x1_0000_0000;
    words[w + BUF.len / 4] = this.bufferSize;
    // bid (u16) and resv, which in entry 0 is the tail: write the bid half alone.
    this.#halves[w * 2 + BUF.bid / 2] = bid;
    this.#tail = (this.#tail + 1) & 0xffff;
  }

  /** Makes the buffers added since the last publish visible to the kernel (a release store of the tail). */
  publish(): void {
    this.#checkOpen();
    Atomics.store(this.#halves, BUF_RING_TAIL / 2, this.#tail);
  }

  /** {@link BufferRing.add} and {@link BufferRing.publish}: gives buffer `bid` back to the kernel. */
  recycle(bid: number): void {
    this.add(bid);
    this.publish();
  }

  /** How many buffers are in the ring (added, published or not, and not yet taken). */
  get available(): number {
    let n = 0;
    for (let bid = 0; bid < this.entries; bid++) n += this.#inRing[bid];
    return n;
  }

  /** Whether the ring was closed (by {@link BufferRing.close} or its `IoUring` closing). */
  get closed(): boolean {
    return this.#release === null;
  }

  /**
   * Unregisters the group and frees the memory (every view then reads as empty). Idempotent;
   * the ring's `close()` does it too. Operations still waiting to select a buffer of this group
   * fail with `-ENOBUFS`. When the kernel refuses the unregister (a restricted ring: `EACCES`),
   * it throws and the ring of buffers stays open, its memory the kernel's to pick from.
   */
  close(): void {
    const release = this.#release;
    if (release === null) return;
    this.#release = null;
    try {
      release();
    } catch (e) {
      this.#release = release; // nothing was freed
      throw e;
    }
  }

  /** Same as {@link BufferRing.close}, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Internal (`IoUring`): closes this ring of buffers without freeing its memory, which its ring
   * (closed, the group still registered: a restricted ring) may still pick from until the kernel
   * has torn it down. The memory stays mapped for good.
   */
  keepMemory(): void {
    this.#release = null;
  }

  /** Internal (`IoUring`): frees the memory, once the group is unregistered or the ring closed. */
  freeMemory(): void {
    this.#release = null;
    this.#ringMemory.free();
    this.#data.free();
  }

  #checkOpen(): void {
    if (this.#release === null) throw new ClosedError(`BufferRing (group ${this.group})`);
  }

  #checkId(bid: number): void {
    if (!(bid >>> 0 === bid && bid < this.entries)) checkU32(bid, "bid", this.entries - 1);
  }
}

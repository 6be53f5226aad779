/**
 * {@link BufferRing}: a ring of provided buffers (`IORING_REGISTER_PBUF_RING`), from which the
 * kernel picks a buffer for an operation when its data arrives, instead of the SQE naming one.
 *
 * @module
 */

import {
  BUF,
  BUF_RING_TAIL,
  BUF_SIZE,
  IORING_CQE_BUFFER_SHIFT,
  IORING_CQE_F_BUF_MORE,
  IORING_CQE_F_BUFFER,
} from "./abi.ts";
import type { AlignedBuffer } from "./aligned.ts";
import { ClosedError } from "./errors.ts";
import { checkU32, shown } from "./memory.ts";

/** Internal (see the class's static block). */
let ownsSqeMemory: (ring: BufferRing, words: Uint32Array) => boolean;
let markBundled: (ring: BufferRing) => void;

/**
 * Notes that `bufferRing` serves bundles (internal: the preps that ask for one): from then on
 * `take` needs each CQE's `res`, without which a bundle's other buffers would stay taken by the
 * kernel for good.
 */
export function servesBundles(bufferRing: BufferRing): void {
  markBundled(bufferRing);
}

/** The rings of buffers registered on each ring, by its SQE memory, then by group id. */
const registeredRings = new WeakMap<Uint32Array, Map<number, BufferRing>>();

/** Notes that `bufferRing` is registered (internal: `IoUring.setupBufferRing`). */
export function noteRegistered(bufferRing: BufferRing, sqeWords: Uint32Array): void {
  let rings = registeredRings.get(sqeWords);
  if (rings === undefined) registeredRings.set(sqeWords, rings = new Map());
  rings.set(bufferRing.group, bufferRing);
}

/**
 * The open {@link BufferRing} that group id `group` names on the ring whose SQE memory is
 * `sqeWords`, or `group` itself (another ring's, or none this module set up): the preps check a
 * group given by its id as they check the object.
 */
export function ringNamed(
  group: number | BufferRing,
  sqeWords: Uint32Array | undefined,
): number | BufferRing {
  if (typeof group !== "number" || sqeWords === undefined) return group;
  const ring = registeredRings.get(sqeWords)?.get(group);
  return ring === undefined || ring.closed ? group : ring;
}

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
  /**
   * Consume each buffer a part at a time (`IOU_PBUF_RING_INC`, 6.12): a receive or read takes
   * only the bytes it needs from the buffer at the ring's head, and the next one goes on where
   * it stopped; its CQE has `IORING_CQE_F_BUF_MORE` while the buffer stays the kernel's. Lets
   * a few large buffers serve many small receives. `take` then needs each CQE's `res`, and the
   * CQEs of the ring's buffers must be taken in the order the kernel posted them.
   */
  incremental?: boolean;
  /**
   * Start with no buffer in the ring (all of them the program's), for a ring that feeds sends
   * (`prepSendSelect`): write a buffer's data, then `add(bid, length)` it. Default false: every
   * buffer in the ring, for receives.
   */
  empty?: boolean;
}

/**
 * A buffer group's ring of provided buffers, with `entries` buffers of `bufferSize` bytes in
 * memory the module maps (never moved or collected while registered). Made by
 * `IoUring.setupBufferRing`; an SQE asks for one of its buffers with `IOSQE_BUFFER_SELECT` and
 * the group (`prepRecvMultishot`, `prepRecvSelect`, `prepReadMultishot`, `prepReadSelect`). The
 * CQE then has `IORING_CQE_F_BUFFER` and the buffer's id in its flags: {@link BufferRing.take}
 * reads it, {@link BufferRing.view} shows the buffer, and {@link BufferRing.recycle} gives it
 * back to the kernel once its data is used. Given the CQE's `res` too, `take` follows bundles
 * (one CQE, several buffers) and incremental rings (one buffer, several CQEs), and
 * {@link BufferRing.part} shows where the data lies. When the ring is empty the operation fails with
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
  /** Whether buffers are consumed a part at a time (`IOU_PBUF_RING_INC`, see {@link BufferRingOptions}). */
  readonly incremental: boolean;
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
  /** For each buffer, where the data of the CQE last taken for it starts ({@link BufferRing.partOffset}). */
  readonly #partStart: Uint32Array;
  /** For each buffer, that data's length, or -1 when `take` was not given `res`. */
  readonly #partLength: Float64Array;
  /** For each buffer of an incremental ring, the bytes the kernel has consumed of it so far. */
  readonly #consumed: Uint32Array;
  /** For each buffer, the length it was added with (`bufferSize` unless `add` was given one). */
  readonly #length: Uint32Array;
  /** Views of the buffers, made on first use. */
  readonly #views: (Uint8Array<ArrayBuffer> | undefined)[];
  /** Buffers added: the next tail (16 bits, wrapping), published by {@link BufferRing.publish}. */
  #tail = 0;
  #release: (() => void) | null;
  /** The SQE memory of the ring it is registered with: a prep on another ring's SQE is refused. */
  readonly #sqeWords: Uint32Array;

  /** Whether a prep asked for bundles from this ring (see `servesBundles`). */
  #bundled = false;

  static {
    ownsSqeMemory = (ring, words) => ring.#sqeWords === words;
    markBundled = (ring) => ring.#bundled = true;
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
    this.incremental = options.incremental === true;
    this.#ringMemory = ringMemory;
    this.#data = data;
    this.#dataAddress = data.address;
    this.#words = new Uint32Array(ringMemory.bytes.buffer, ringMemory.bytes.byteOffset, this.entries * 4);
    this.#halves = new Uint16Array(ringMemory.bytes.buffer, ringMemory.bytes.byteOffset, this.entries * 8);
    this.#mask = this.entries - 1;
    this.#inRing = new Uint8Array(this.entries);
    this.#addedAfter = new Uint16Array(this.entries);
    this.#bundleNext = new Int32Array(this.entries).fill(-1);
    this.#partStart = new Uint32Array(this.entries);
    this.#partLength = new Float64Array(this.entries).fill(-1);
    this.#consumed = new Uint32Array(this.entries);
    this.#length = new Uint32Array(this.entries).fill(this.bufferSize);
    this.#views = new Array(this.entries);
    this.#release = () => release(this);
    if (options.empty !== true) {
      for (let bid = 0; bid < this.entries; bid++) this.add(bid);
      this.publish();
    }
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
   * the flags of CQEs of operations that selected from this ring: another group's buffer id would
   * mark one of this ring's buffers taken while the kernel still has it. Throws `ClosedError`
   * once the ring is closed.
   *
   * Give it the CQE's `res` too (an incremental ring needs it), and it records where the data
   * lies: {@link BufferRing.part} shows it, and {@link BufferRing.next} names the next buffer
   * when the data goes on in another. A bundle (`IORING_RECVSEND_BUNDLE`, 6.10) fills buffers in
   * ring order, the first named in `flags`, so one CQE may cover several: `take` takes them all.
   * On an incremental ring the last buffer stays the kernel's while the CQE has
   * `IORING_CQE_F_BUF_MORE` (see {@link BufferRing.owned}). Throws a `RangeError`, taking none,
   * when the data would run into a buffer the program holds (flags and `res` of another CQE).
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
    if (res === undefined) {
      if (this.incremental || this.#bundled) {
        throw new TypeError(
          `a BufferRing that ${
            this.incremental ? "is incremental" : "serves bundles"
          } needs each CQE's res: take(cqe.flags, cqe.res)`,
        );
      }
      this.#inRing[bid] = 0;
      this.#bundleNext[bid] = -1;
      this.#partStart[bid] = 0;
      this.#partLength[bid] = -1;
      return bid;
    }
    if (!(typeof res === "number" && Number.isInteger(res))) {
      throw new RangeError(`res must be the CQE's res (an integer), got ${shown(res)}`);
    }
    return this.#takeParts(bid, Math.max(res, 0), (cqeFlags & IORING_CQE_F_BUF_MORE) !== 0);
  }

  /**
   * Takes the buffers that `bytes` of data fill from where the kernel stood in buffer `first`
   * (its start, or on an incremental ring the bytes consumed of it so far), in ring order.
   * Checks them all before taking any. `keepLast`: the CQE had `IORING_CQE_F_BUF_MORE`.
   */
  #takeParts(first: number, bytes: number, keepLast: boolean): number {
    const sizes = this.#length, consumed = this.#consumed;
    let count = 1;
    for (let bid = first, left = bytes; left > sizes[bid] - consumed[bid]; count++) {
      left -= sizes[bid] - consumed[bid];
      bid = this.#addedAfter[bid];
      if (count === this.entries) {
        throw new RangeError(`res ${bytes} is more than this ring's ${this.entries} buffers hold`);
      }
      if (this.#inRing[bid] === 0) {
        throw new RangeError(
          `${bytes} bytes from buffer ${first} reach buffer ${bid}, which the program holds already: these ` +
            "flags and res are not of one CQE of this ring",
        );
      }
    }
    let bid = first, left = bytes;
    for (let i = 1;; i++) {
      const start = consumed[bid], length = Math.min(left, sizes[bid] - start);
      this.#partStart[bid] = start;
      this.#partLength[bid] = length;
      left -= length;
      if (i === count) {
        this.#bundleNext[bid] = -1;
        if (keepLast && this.incremental) consumed[bid] = start + length; // still the kernel's
        else this.#inRing[bid] = 0;
        return first;
      }
      const after = this.#addedAfter[bid];
      this.#bundleNext[bid] = after;
      this.#inRing[bid] = 0;
      bid = after;
    }
  }

  /**
   * The buffer that holds the next part of the data of the CQE {@link BufferRing.take} took
   * `bid` for, or -1 when `bid` held the last (or all) of it. Valid until `bid` is taken again:
   * recycling `bid` first is fine.
   */
  next(bid: number): number {
    this.#checkOpen();
    this.#checkId(bid);
    return this.#bundleNext[bid];
  }

  /** Where in {@link BufferRing.view}`(bid)` the data of the CQE last taken for `bid` starts. */
  partOffset(bid: number): number {
    this.#checkOpen();
    this.#checkId(bid);
    return this.#partStart[bid];
  }

  /**
   * How many bytes of that data `bid` holds (all of it but for a bundle's earlier buffers).
   * Throws when `take` was not given the CQE's `res`.
   */
  partLength(bid: number): number {
    this.#checkOpen();
    this.#checkId(bid);
    const length = this.#partLength[bid];
    if (length < 0) {
      throw new RangeError(
        `buffer ${bid} was taken without the CQE's res: take(cqe.flags, cqe.res) records its part`,
      );
    }
    return length;
  }

  /**
   * The data of the CQE last taken for `bid` that lies in `bid`: a new view of
   * `partLength(bid)` bytes from `partOffset(bid)`.
   */
  part(bid: number): Uint8Array<ArrayBuffer> {
    const length = this.partLength(bid), start = this.#partStart[bid];
    return this.view(bid).subarray(start, start + length);
  }

  /**
   * Whether the program holds buffer `bid` (taken, not yet given back); false while it is in
   * the ring, as the last buffer of an incremental ring's CQE with `IORING_CQE_F_BUF_MORE` is.
   */
  owned(bid: number): boolean {
    this.#checkOpen();
    this.#checkId(bid);
    return this.#inRing[bid] === 0;
  }

  /**
   * Buffer `bid`, all `bufferSize` bytes of it (the data a CQE reported is its first `res`
   * bytes, unless the CQE was a bundle's or the ring is incremental: see
   * {@link BufferRing.part}). The same view each time; it reads as empty once the `IoUring` is
   * closed.
   */
  view(bid: number): Uint8Array<ArrayBuffer> {
    this.#checkOpen();
    this.#checkId(bid);
    return this.#views[bid] ??= this.#data.bytes.subarray(bid * this.bufferSize, (bid + 1) * this.bufferSize);
  }

  /**
   * Adds buffer `bid`, taken earlier, back to the ring, without publishing it yet (see
   * {@link BufferRing.publish}); refuses a buffer that is in the ring already, which would give
   * the kernel one buffer twice. `length` (1 to `bufferSize`, all of it by default) is what the
   * kernel may use: for a send, the bytes of data written at the buffer's start.
   */
  add(bid: number, length: number = this.bufferSize): void {
    this.#checkOpen();
    this.#checkId(bid);
    if (this.#inRing[bid] === 1) {
      throw new RangeError(`buffer ${bid} is in the ring already (take() it from a CQE first)`);
    }
    if (length !== this.bufferSize) checkU32(length, "length", this.bufferSize, 1);
    this.#inRing[bid] = 1;
    this.#length[bid] = length;
    if (this.#lastAdded >= 0) this.#addedAfter[this.#lastAdded] = bid;
    this.#lastAdded = bid;
    this.#consumed[bid] = 0;
    const w = (this.#tail & this.#mask) * (BUF_SIZE / 4), words = this.#words;
    const addr = this.#dataAddress + bid * this.bufferSize;
    words[w + BUF.addr / 4] = addr >>> 0;
    words[w + BUF.addr / 4 + 1] = (addr - (addr >>> 0)) / 0x1_0000_0000;
    words[w + BUF.len / 4] = length;
    // bid (u16) and resv, which in entry 0 is the tail: write the bid half alone.
    this.#halves[w * 2 + BUF.bid / 2] = bid;
    this.#tail = (this.#tail + 1) & 0xffff;
  }

  /** Makes the buffers added since the last publish visible to the kernel (a release store of the tail). */
  publish(): void {
    this.#checkOpen();
    Atomics.store(this.#halves, BUF_RING_TAIL / 2, this.#tail);
  }

  /**
   * {@link BufferRing.add} and {@link BufferRing.publish}: gives buffer `bid` (its first `length`
   * bytes) back to the kernel.
   */
  recycle(bid: number, length: number = this.bufferSize): void {
    this.add(bid, length);
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
   * Unregisters the group. Idempotent; the ring's `close()` does it too. Operations still
   * waiting to select a buffer of this group fail with `-ENOBUFS`; one that picked a buffer before
   * (a receive waiting in an io-wq worker) may still write into it, so its address range stays
   * reserved until the `IoUring` closes (views read zeros meanwhile, empty after): its pages are
   * given back now, but each ring of buffers closed keeps a mapping of the process until then.
   * When the kernel refuses the unregister (a restricted ring: `EACCES`), it throws and the ring
   * of buffers stays open, its memory the kernel's to pick from.
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
   * Internal (`IoUring`): closes this ring of buffers without freeing its memory: the kernel may
   * still write into it (a closed ring whose group is still registered, a restricted ring: kept
   * for good; a group unregistered while the ring is open: until the ring's fd closes).
   */
  keepMemory(): void {
    this.#release = null;
  }

  /**
   * Internal (`IoUring`): closes this ring of buffers whose group was unregistered while its ring
   * stays open, keeping its address range (an operation that picked a buffer before the
   * unregister still writes there) but not its pages: the data is replaced with fresh anonymous
   * memory through `sys` (a late write lands there, unread), so a long-lived ring that sets up and
   * closes rings of buffers does not keep their pages (3,000 rounds of 1 MiB had grown the
   * process by 3.1 GB). {@link BufferRing.freeMemory} unmaps it once the ring's fd is closed.
   */
  parkMemory(sys: { mmapAnonOver(address: number, length: number): number }): void {
    this.#release = null;
    const data = this.#data;
    // (Failing, the pages just stay: the memory is freed at the ring's close all the same.)
    if (!data.freed && data.size > 0) sys.mmapAnonOver(data.address, data.size);
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

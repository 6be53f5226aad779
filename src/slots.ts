/**
 * The preallocated slot table of the promise layer. An operation's `user_data` is its slot's
 * index (low 32 bits) and generation (high 32 bits); the slot holds the promise's resolvers and
 * every buffer, path, iovec array and struct the kernel may touch, until the CQE arrives. Slots
 * are reused, so queueing an operation allocates nothing but its promise.
 *
 * @module
 */

import { type AlignedMapping, pinAlignedMemory } from "./aligned.ts";
import { bufferOf, cstringInto } from "./memory.ts";
import { type FixedBufferPool, poolOperationInFlight } from "./fixed_pool.ts";
import type { Iovecs, Timespec } from "./structs.ts";

/** Slot state: free, on the free list. */
export const FREE = 0;
/** Slot state: accepted, waiting in the JavaScript backlog for SQ space. */
export const QUEUED = 1;
/** Slot state: its SQE is in the ring (published or about to be); the CQE has not been reaped. */
export const IN_RING = 2;
/** Slot state: its CQE was reaped; it is about to be settled and freed. */
export const DONE = 3;

/** Generations stay below 2^31, so `user_data`'s high word never equals the internal marker. */
const GEN_MASK = 0x7fffffff;

/** What a chain of linked operations keeps while its members are in flight. */
export interface ChainState {
  /** The members, in submission order. */
  readonly slots: Slot[];
  /** Per-member outcome, filled as CQEs arrive. */
  readonly results: unknown[];
  /** Members whose CQE has not arrived. */
  remaining: number;
  /** Settles the chain's promise. */
  resolve: (value: unknown) => void;
  /** Rejects the chain's promise. */
  reject: (reason: unknown) => void;
  /** The chain's abort signal, if any. */
  signal: AbortSignal | null;
  /** Whether the signal fired while members were in flight. */
  aborted: boolean;
  /**
   * The chain's own abort listener. Not the head slot's: a member's slot is freed as its CQE
   * arrives and may carry another operation before the chain settles.
   */
  readonly onAbort: () => void;
  /**
   * Every member but the last carries `IOSQE_CQE_SKIP_SUCCESS`: the chain posts exactly one CQE,
   * the last member's, or that of the member that failed (or came up short; the kernel then
   * posts nothing for the members after it). Members that post nothing on success have a result
   * known in advance (0, or a read's or write's full length).
   */
  skip: boolean;
  /** Whether a member closes a file (under SQPOLL the chain then settles behind a no-op). */
  closes: boolean;
  /**
   * Close members the Uring's own close cancelled, whose fds are closed as it ends: the chain
   * settles once they are (see `Uring.#closeMemberAtEnd`).
   */
  endCloses: number;
}

/**
 * Operations something waits to see settled: `UringFile.close()` resolves only once the
 * operations it cancelled in the kernel have settled (a cancelled poll posts its CQE only when
 * the task work runs, after the close's own CQE). {@link SettleWatch.promise} resolves when the
 * last one watched settles.
 */
export class SettleWatch {
  #remaining = 0;
  #resolve: () => void = () => {};
  /** Resolves once every operation watched has settled. */
  readonly promise: Promise<void>;

  constructor() {
    this.promise = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** Watches `slot`'s operation (in the kernel now; one watch per slot). */
  add(slot: Slot): void {
    slot.watch = this;
    this.#remaining++;
  }

  /** Also waits for everything `other` watches (operations an earlier close cancelled). */
  follow(other: SettleWatch): void {
    this.#remaining++;
    void other.promise.then(() => this.settled());
  }

  /** One operation watched settled. */
  settled(): void {
    if (--this.#remaining === 0) this.#resolve();
  }
}

/**
 * One operation's record. Fields are reused from operation to operation; `clear()` drops every
 * reference once the kernel is done with them.
 */
export class Slot {
  /** Position in the table: the low 32 bits of `user_data`. */
  readonly index: number;
  /** Bumped at each reuse: the high 32 bits of `user_data`, so stale cancels miss. */
  gen = 0;
  /** `FREE`, `QUEUED`, `IN_RING` or `DONE`. */
  state = FREE;
  /** The operation kind (the promise layer's own numbering). */
  kind = 0;
  /** The CQE result. */
  res = 0;
  /** Extra `IOSQE_*` flags (links, fixed files). */
  sqeFlags = 0;
  /** The registered buffer a read or write uses (`READ_FIXED`/`WRITE_FIXED`), or -1. */
  bufIndex = -1;
  /**
   * The buffer of the `Uring`'s pool the operation's buffer lies in, or -1 (its count of
   * operations in flight: see `FixedBufferPool.release`).
   */
  poolBuffer = -1;
  /** That buffer's pool while the operation is counted in flight there (until it settles), else null. */
  pool: FixedBufferPool | null = null;
  /** Resolves the operation's promise (null for chain members). */
  resolve: ((value: never) => void) | null = null;
  /** Rejects the operation's promise (null for chain members). */
  reject: ((reason: unknown) => void) | null = null;
  /** File descriptor argument(s). */
  fd = -1;
  /** Second file descriptor (splice output). */
  fd2 = -1;
  /** File offset argument. */
  pos: number | bigint = 0;
  /** Second offset (splice output offset, fallocate length). */
  pos2: number | bigint = 0;
  /** Length, mode or count argument. */
  len = 0;
  /** Per-opcode flags. */
  flags = 0;
  /** Mode bits (open, mkdir, fallocate). */
  mode = 0;
  /** The data buffer the kernel reads or writes. */
  buf: ArrayBufferView | null = null;
  /** `buf`'s length when the operation was called (a shorter one now: detached or shrunk). */
  bufLength = 0;
  /** The iovec array (and through it, its buffers) of `readv`/`writev`. */
  iovecs: Iovecs | null = null;
  /**
   * The AlignedBuffer memory (or memories: the iovecs') the operation pinned while the kernel
   * may use it, unpinned when the slot is cleared.
   */
  pinned: AlignedMapping | AlignedMapping[] | null = null;
  /** The NUL-terminated path(s) the kernel reads. */
  cpath: Uint8Array | null = null;
  /** The second NUL-terminated path (rename, link, symlink). */
  cpath2: Uint8Array | null = null;
  /** The path as given, for error messages. */
  path: string | null = null;
  /** The second path as given, for error messages. */
  path2: string | null = null;
  /** The `struct statx` the kernel fills. */
  statx: Uint8Array | null = null;
  /** This slot's own timespec, made on first use and kept for the slot's lifetime. */
  ts: Timespec | null = null;
  /** The operation's abort signal, if any. */
  signal: AbortSignal | null = null;
  /** Whether the signal fired while the operation was in the ring. */
  aborted = false;
  /** Whether the operation was cancelled because its file was closed (`UringFile.close`). */
  fileClosed = false;
  /** A splice's `fileClosed` came from a close of its output fd (`fd2`), not its input. */
  outputClosed = false;
  /** Whether this chain member was cancelled because another member's file was closed. */
  chainFileClosed = false;
  /** The file close waiting for this operation to settle (see {@link SettleWatch}), or null. */
  watch: SettleWatch | null = null;
  /** Times the operation was issued again after the kernel dropped it (see `Uring`). */
  reissues = 0;
  /** Times the operation was issued again after the kernel interrupted it (see `Uring`). */
  interrupts = 0;
  /** An open of a FIFO issued again to wait in an io-wq worker (see `Uring`). */
  fifoWorker = false;
  /** A close under SQPOLL that settles once a no-op behind it completes (see `Uring`). */
  barrier = false;
  /** The chain this slot is a member of, or null. */
  chain: ChainState | null = null;
  /** Position in the chain. */
  chainIndex = 0;
  /** The abort listener for this slot (made once; it always acts on the slot's current op). */
  readonly onAbort: () => void;
  // This slot's own memory for its paths, reused by every operation (only after its CQE).
  #pathMemory: Uint8Array<ArrayBuffer> | null = null;
  #path2Memory: Uint8Array<ArrayBuffer> | null = null;

  /** Makes slot `index`; `onAbort` is called with the slot when its signal fires. */
  constructor(index: number, onAbort: (slot: Slot) => void) {
    this.index = index;
    this.onAbort = () => onAbort(this);
  }

  /**
   * Stores `path` (and `path2`) NUL-terminated in this slot's own reusable memory as `cpath`
   * (`cpath2`): no new buffer per operation once the slot has held a path that long. `what` and
   * `what2` name them in the error for a NUL byte.
   */
  setPaths(path: string, path2: string | null = null, what = "path", what2 = "newPath"): void {
    const c = cstringInto(path, this.#pathMemory, what);
    if (c.buffer !== this.#pathMemory?.buffer) this.#pathMemory = new Uint8Array(c.buffer);
    this.cpath = c;
    if (path2 !== null) {
      const c2 = cstringInto(path2, this.#path2Memory, what2);
      if (c2.buffer !== this.#path2Memory?.buffer) this.#path2Memory = new Uint8Array(c2.buffer);
      this.cpath2 = c2;
    }
  }

  /**
   * Pins the AlignedBuffer memory among the operation's buffers (see `pinAlignedMemory`) when
   * its SQE is prepared.
   */
  pin(): void {
    if (this.pinned !== null) return; // issued again (see Uring's reissue): pinned the first time
    if (this.buf !== null) {
      this.pinned = pinAlignedMemory(bufferOf(this.buf)); // the engine's view of it, not an own property
    } else if (this.iovecs !== null) {
      for (const b of this.iovecs.buffers) {
        const mapping = pinAlignedMemory(bufferOf(b));
        if (mapping === null) continue;
        if (this.pinned === null) this.pinned = [];
        (this.pinned as AlignedMapping[]).push(mapping);
      }
    }
  }

  #unpin(): void {
    const pinned = this.pinned!;
    this.pinned = null;
    if (!Array.isArray(pinned)) pinned.unpin();
    else for (const mapping of pinned) mapping.unpin();
  }

  /**
   * Tells the {@link SettleWatch} on this operation that it settled (called as its slot is freed,
   * or when the Uring failed and rejected it without freeing it).
   */
  settleWatched(): void {
    const watch = this.watch!;
    this.watch = null;
    watch.settled();
  }

  /** Drops every reference held for the kernel and the caller, keeping the reusable timespec. */
  clear(): void {
    this.resolve = this.reject = null;
    this.fd = this.fd2 = -1;
    this.buf = null;
    this.iovecs = null;
    if (this.pinned !== null) this.#unpin();
    this.cpath = this.cpath2 = null;
    this.path = this.path2 = null;
    this.statx = null;
    this.signal = null;
    this.chain = null;
    this.aborted = this.fileClosed = this.chainFileClosed = false;
    this.outputClosed = false;
    if (this.watch !== null) this.settleWatched();
    this.reissues = 0;
    this.interrupts = 0;
    this.fifoWorker = false;
    this.barrier = false;
    this.sqeFlags = 0;
    this.bufIndex = -1;
    // (Its pool buffer's count of operations in flight: this one has settled.)
    if (this.pool !== null) poolOperationInFlight(this.pool, this.poolBuffer, -1);
    this.poolBuffer = -1;
    this.pool = null;
    this.flags = 0;
  }
}

/**
 * The slot table: a free list over slots made up front. It grows (doubling) only when more
 * operations are outstanding than it holds, so steady-state operation allocates nothing.
 */
export class SlotTable {
  #slots: Slot[] = [];
  #free: number[] = [];
  #used = 0;
  readonly #onAbort: (slot: Slot) => void;

  /** A table of `capacity` slots; `onAbort` receives a slot whose signal fired. */
  constructor(capacity: number, onAbort: (slot: Slot) => void) {
    this.#onAbort = onAbort;
    this.#grow(capacity);
  }

  #grow(n: number): void {
    const start = this.#slots.length;
    for (let i = start + n - 1; i >= start; i--) {
      this.#slots[i] = new Slot(i, this.#onAbort);
      this.#free.push(i);
    }
    // The free list is a stack: refill it so the lowest indexes come out first.
    this.#free.sort((a, b) => b - a);
  }

  /** Slots in use (outstanding operations). */
  get used(): number {
    return this.#used;
  }

  /** Total slots (grows on demand). */
  get capacity(): number {
    return this.#slots.length;
  }

  /** The slot at `index` (for CQE dispatch). */
  at(index: number): Slot | undefined {
    return this.#slots[index];
  }

  /** Takes a free slot (growing the table when none is left). */
  alloc(): Slot {
    if (this.#free.length === 0) this.#grow(Math.max(16, this.#slots.length));
    const slot = this.#slots[this.#free.pop()!];
    this.#used++;
    return slot;
  }

  /** Returns `slot` to the free list: its references are dropped and its generation bumped. */
  release(slot: Slot): void {
    if (slot.state === FREE) throw new Error(`internal error: slot ${slot.index} released twice`);
    slot.clear();
    slot.state = FREE;
    slot.gen = (slot.gen + 1) & GEN_MASK;
    this.#used--;
    this.#free.push(slot.index);
  }

  /** Calls `fn` for each slot not free. */
  forEachUsed(fn: (slot: Slot) => void): void {
    for (const slot of this.#slots) if (slot.state !== FREE) fn(slot);
  }
}

/**
 * A FIFO of slots waiting for SQ space, each recorded with the generation it had when queued so
 * an entry whose operation was aborted (and whose slot was reused) is skipped. Grows by doubling.
 */
export class SlotQueue {
  #slots: (Slot | null)[] = new Array(16).fill(null);
  #gens: Int32Array = new Int32Array(16);
  #head = 0;
  #size = 0;

  /** Entries queued (including stale ones not yet skipped). */
  get size(): number {
    return this.#size;
  }

  /** Appends `slot`. */
  push(slot: Slot): void {
    if (this.#size === this.#slots.length && !this.#compact()) this.#resize();
    const at = (this.#head + this.#size) & (this.#slots.length - 1);
    this.#slots[at] = slot;
    this.#gens[at] = slot.gen;
    this.#size++;
  }

  /** The first live entry (dropping stale ones), without removing it; null when empty. */
  peek(): Slot | null {
    while (this.#size > 0) {
      if (this.#live(this.#head)) return this.#slots[this.#head];
      this.shift();
    }
    return null;
  }

  /**
   * Whether the entry at `at` still waits: its slot is queued, for the same operation (a slot
   * aborted or settled meanwhile may have been used again).
   */
  #live(at: number): boolean {
    const slot = this.#slots[at]!;
    return slot.state === QUEUED && slot.gen === this.#gens[at];
  }

  /** Removes the first entry. */
  shift(): void {
    this.#slots[this.#head] = null;
    this.#head = (this.#head + 1) & (this.#slots.length - 1);
    this.#size--;
  }

  /**
   * When at least a quarter of the (full) queue is stale, drops the stale entries in place and
   * returns true. Operations aborted or settled while they waited behind a live one (a ring kept
   * full by long reads, a timeout each) otherwise stayed until the head reached them, and the
   * queue grew by one entry each for as long as that lasted.
   */
  #compact(): boolean {
    const slots = this.#slots, gens = this.#gens, mask = slots.length - 1, head = this.#head;
    let live = 0;
    for (let i = 0; i < this.#size; i++) if (this.#live((head + i) & mask)) live++;
    if (live * 4 > slots.length * 3) return false;
    let kept = 0;
    for (let i = 0; i < this.#size; i++) {
      const from = (head + i) & mask;
      if (!this.#live(from)) continue;
      const to = (head + kept++) & mask;
      slots[to] = slots[from];
      gens[to] = gens[from];
    }
    for (let i = kept; i < this.#size; i++) slots[(head + i) & mask] = null;
    this.#size = kept;
    return true;
  }

  #resize(): void {
    const n = this.#slots.length;
    const slots: (Slot | null)[] = new Array(n * 2).fill(null);
    const gens = new Int32Array(n * 2);
    for (let i = 0; i < this.#size; i++) {
      const from = (this.#head + i) & (n - 1);
      slots[i] = this.#slots[from];
      gens[i] = this.#gens[from];
    }
    this.#slots = slots;
    this.#gens = gens;
    this.#head = 0;
  }
}

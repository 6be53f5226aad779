/**
 * Aligned memory for O_DIRECT and fixed buffers: {@link alignedBuffer} maps anonymous memory
 * through the system layer (`mmap`), hands it out as a `Uint8Array`, and unmaps it on
 * {@link AlignedBuffer.free} (or `using`), with a `FinalizationRegistry` as a safety net.
 *
 * Freeing detaches the `ArrayBuffer` before the memory is unmapped, so every view of it handed
 * out earlier (`bytes`, its subarrays, `new Uint8Array(bytes.buffer)`) reads as empty and writes
 * nothing: using a freed buffer is an error or a no-op, never a fault. The module's APIs reject
 * detached buffers ("buffer is detached") before anything reaches the kernel.
 *
 * The memory stays the AlignedBuffer's: do not move it to another `ArrayBuffer`
 * (`bytes.buffer.transfer()`, or a transfer list of `postMessage`/`structuredClone`). Such a
 * move takes the pages along without copying them, and nothing tells the module: once the
 * AlignedBuffer is freed or collected its memory is unmapped, and the new `ArrayBuffer` points
 * at unmapped memory (the process crashes when it is touched). Copy the bytes instead, or use a
 * `SharedArrayBuffer` to share them with a worker.
 *
 * @module
 */

import { type Backend, getSys, type Sys } from "./sys.ts";
import { IoUringError } from "./errors.ts";
import { badNumber, checkOptionsObject, shown } from "./memory.ts";

/** Default alignment: a page, which satisfies O_DIRECT on every common device. */
export const DEFAULT_ALIGNMENT = 4096;
/** Smallest alignment {@link alignedBuffer} accepts (one 512-byte sector). */
export const MIN_ALIGNMENT = 512;
/** Largest alignment {@link alignedBuffer} accepts (1 GiB). */
export const MAX_ALIGNMENT: number = 2 ** 30;
/** Alignment `mmap` always gives (the smallest page size on Linux x86_64 and aarch64). */
const MMAP_ALIGNMENT = 4096;

/** Options of {@link alignedBuffer}. */
export interface AlignedBufferOptions {
  /** Force a system-layer backend for the `mmap`/`munmap` (default: as {@link getSys}). */
  backend?: Backend;
}

/**
 * One anonymous mapping, shared by an {@link AlignedBuffer}, the finalization registry and the
 * operations in flight on it (internal): the pins live here, so the registry sees them even
 * after the AlignedBuffer itself is gone.
 */
export class AlignedMapping {
  /** Whether the memory is unmapped. */
  unmapped = false;
  /** Whether `free()` detached the memory (it is unmapped once no pin is left). */
  freed = false;
  /** Holds by `AlignedBuffer.pin()` and by `Uring` operations in flight. */
  pins = 0;
  /** Records mapping `address` (`length` bytes, from `sys`). */
  constructor(readonly sys: Sys, readonly address: number, readonly length: number) {}

  /** Unmaps the memory (once). */
  unmap(): void {
    if (this.unmapped) return;
    this.unmapped = true;
    this.sys.munmap(this.address, this.length);
  }

  /** Releases one pin; unmaps the memory at the last one if it was freed meanwhile. */
  unpin(): void {
    if (--this.pins === 0 && this.freed) this.unmap();
  }
}

/** Set while {@link withHeldMemory} runs: the AlignedBuffers made then map held memory. */
let heldMemory = false;

/**
 * Runs `make`, every AlignedBuffer made meanwhile mapping its memory with `Sys.mmapAnonHeld`
 * (where the backend can): memory the kernel may use on a Worker's behalf for its copies (a
 * registered pool, O_DIRECT buffers), which the helper unmaps only once the thread is gone if the
 * Worker ends first (see `thread_memory.ts`). Internal: a module variable, not an option, as for
 * `makeRingDyingWithThread`.
 */
export function withHeldMemory<T>(make: () => T): T {
  heldMemory = true;
  try {
    return make();
  } finally {
    heldMemory = false;
  }
}

/** Each AlignedBuffer's mapping, by the ArrayBuffer its views share. */
const mappings = new WeakMap<ArrayBufferLike, AlignedMapping>();
/** Whether any AlignedBuffer was made: until then no lookup in {@link mappings} is needed. */
let anyMappings = false;

/**
 * Internal (`Uring`, for an operation in flight): if `memory` is an {@link AlignedBuffer}'s,
 * pins it, so that a `free()` meanwhile (of the buffer, or of the `FixedBufferPool` it belongs
 * to) detaches its views at once but unmaps only after {@link AlignedMapping.unpin}; returns the
 * mapping to unpin, or `null` for other memory.
 */
export function pinAlignedMemory(memory: ArrayBufferLike): AlignedMapping | null {
  if (!anyMappings) return null; // a program without AlignedBuffers pays no lookup per operation
  const mapping = mappings.get(memory);
  if (mapping === undefined) return null;
  mapping.pins++;
  return mapping;
}

// The registry watches each buffer's ArrayBuffer (not the AlignedBuffer object): memory is
// unmapped only when no view of it can exist any more. A pinned mapping stays: the kernel may
// still write into it, and with its AlignedBuffer gone nothing can unpin it (it is leaked).
const registry = new FinalizationRegistry<AlignedMapping>((mapping) => {
  if (mapping.pins === 0) mapping.unmap();
});

/** Throws a `RangeError` unless `alignment` is a power of two from 512 to 1 GiB (internal). */
export function checkAlignment(alignment: unknown): asserts alignment is number {
  if (
    typeof alignment !== "number" || !Number.isInteger(alignment) || alignment < MIN_ALIGNMENT ||
    alignment > MAX_ALIGNMENT || (alignment & (alignment - 1)) !== 0
  ) {
    throw badNumber(
      alignment,
      `alignment must be a power of two from ${MIN_ALIGNMENT} to ${MAX_ALIGNMENT}, got ${shown(alignment)}`,
    );
  }
}

/**
 * A block of memory at an aligned address, owned by the module: `bytes` is a `Uint8Array` over
 * it. Free it with {@link AlignedBuffer.free} or `using`; after that `bytes` and `address` throw,
 * and views taken earlier are detached (length 0). While the kernel may still use the memory,
 * hold it with {@link AlignedBuffer.pin}: `free()` then only detaches, and the memory is unmapped
 * when the last pin is released (a pinned buffer that is dropped is never unmapped: it leaks).
 * Do not transfer its `ArrayBuffer` (see the module notes). Since: always (no kernel feature
 * needed).
 */
export class AlignedBuffer implements Disposable {
  /** Size in bytes, as requested. */
  readonly size: number;
  /** Alignment of the first byte (a power of two ≥ 512). */
  readonly alignment: number;
  #memory: ArrayBuffer | undefined;
  #bytes: Uint8Array<ArrayBuffer> | undefined;
  #address: number;
  readonly #mapping: AlignedMapping;
  #userPins = 0; // the pin() holds not yet unpinned (the mapping also counts operations')

  /** Maps the memory (internal: use {@link alignedBuffer}). */
  constructor(size: number, alignment: number = DEFAULT_ALIGNMENT, options: AlignedBufferOptions = {}) {
    options ??= {}; // null: the defaults
    checkOptionsObject(options);
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 1) {
      throw badNumber(size, `size must be a positive integer, got ${shown(size)}`);
    }
    checkAlignment(alignment);
    const sys = getSys(options.backend);
    // mmap gives page alignment; for more, map extra and start at the first aligned address.
    const slack = alignment > MMAP_ALIGNMENT ? alignment - MMAP_ALIGNMENT : 0;
    const length = Math.ceil((size + slack) / MMAP_ALIGNMENT) * MMAP_ALIGNMENT;
    const base = heldMemory && sys.mmapAnonHeld !== undefined
      ? sys.mmapAnonHeld(length)
      : sys.mmapAnon(length);
    if (base < 0) throw new IoUringError("mmap", -base, `${length} bytes of anonymous memory`);
    this.#mapping = new AlignedMapping(sys, base, length);
    const address = Math.ceil(base / alignment) * alignment;
    try {
      const memory = Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(BigInt(address))!, size);
      this.#memory = memory;
      this.#bytes = new Uint8Array(memory);
      registry.register(memory, this.#mapping, this.#mapping);
      mappings.set(memory, this.#mapping);
      anyMappings = true;
    } catch (e) {
      this.#mapping.unmap();
      throw e;
    }
    this.#address = address;
    this.size = size;
    this.alignment = alignment;
  }

  /** The memory as bytes. Throws a `TypeError` once the buffer is freed. */
  get bytes(): Uint8Array<ArrayBuffer> {
    if (this.#bytes === undefined) throw new TypeError("AlignedBuffer was freed");
    return this.#bytes;
  }

  /** Address of the first byte. Throws a `TypeError` once the buffer is freed. */
  get address(): number {
    if (this.#bytes === undefined) throw new TypeError("AlignedBuffer was freed");
    return this.#address;
  }

  /** Whether {@link AlignedBuffer.free} was called. */
  get freed(): boolean {
    return this.#bytes === undefined;
  }

  /**
   * How many holds are not yet released: those {@link AlignedBuffer.pin} placed, and one per
   * `Uring` operation in flight on the memory.
   */
  get pins(): number {
    return this.#mapping.pins;
  }

  /**
   * Holds the memory mapped while the kernel may use it (an SQE points at it): a `free()` in the
   * meantime detaches the views at once but unmaps only at the last {@link AlignedBuffer.unpin}.
   * Throws once the buffer is freed.
   */
  pin(): this {
    if (this.#bytes === undefined) throw new TypeError("AlignedBuffer was freed");
    this.#userPins++;
    this.#mapping.pins++;
    return this;
  }

  /** Releases one {@link AlignedBuffer.pin}; unmaps the memory if it was freed meanwhile. */
  unpin(): void {
    if (this.#userPins === 0) throw new RangeError("AlignedBuffer.unpin() without a matching pin()");
    this.#userPins--;
    this.#mapping.unpin();
  }

  /**
   * Detaches every view of the memory and unmaps it (at the last `unpin()` when pinned).
   * Idempotent.
   */
  free(): void {
    const memory = this.#memory;
    if (memory === undefined) return;
    this.#memory = this.#bytes = undefined;
    registry.unregister(this.#mapping);
    try {
      // Detaching makes every view length 0 before the pages go away: no JS access can fault.
      memory.transfer(0);
    } catch {
      // A runtime that cannot detach this buffer: keep the memory mapped (leaked) rather than let
      // a view that escaped read unmapped pages.
      return;
    }
    this.#mapping.freed = true;
    if (this.#mapping.pins === 0) this.#mapping.unmap();
  }

  /** Same as {@link AlignedBuffer.free}, for `using`. */
  [Symbol.dispose](): void {
    this.free();
  }
}

/**
 * `size` bytes of zeroed memory whose first byte is a multiple of `alignment` (a power of two
 * from 512; default 4096), for O_DIRECT I/O and registered buffers. Free it with `free()` or
 * `using`; a `FinalizationRegistry` unmaps it if it is dropped unfreed (late: the garbage
 * collector does not see this memory). Since: always (no kernel feature needed).
 */
export function alignedBuffer(
  size: number,
  alignment: number = DEFAULT_ALIGNMENT,
  options: AlignedBufferOptions = {},
): AlignedBuffer {
  return new AlignedBuffer(size, alignment, options);
}

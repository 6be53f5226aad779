/**
 * Memory for what the kernel reads or writes after a submit has returned (a `statx` struct, a
 * copy's data buffer), for the operations of the rings the module makes for its own copies.
 *
 * A Worker terminated mid-copy runs no more JavaScript, and Deno frees the Worker's memory, every
 * `ArrayBuffer` of it, as its thread ends. An operation that an io-wq worker of that thread is
 * running goes on meanwhile (the kernel stops the thread's io-wq workers only in the thread's own
 * exit, after Deno has freed it): a `statx` landed in memory the process had already reused, and
 * 20 Workers terminated mid-`copyFile` crashed the process (a corrupted heap, or a segfault) in
 * every run. So on a Worker's thread, on a ring whose memory goes with that thread
 * (`memoryDiesWithThread`) and that has no SQ poll thread, this memory comes from the helper
 * (`Sys.mmapAnonHeld`), which unmaps it only once the thread is gone, its io-wq workers with it.
 * Elsewhere it is ordinary memory:
 * - on the process's first thread, whose end is the program's (see `copy_incomplete.ts`);
 * - on a ring with an SQ poll thread, whose operations run in that thread's workers, and which
 *   reads each SQE's paths (ordinary memory, in lanes and slots) only when it gets to it (so the
 *   copies' own rings have none in a Worker: see `CopyOptions.sqpoll`);
 * - with the libc backend, or a helper built before this.
 *
 * The memory is kept for the thread's life and reused: blocks of a power of two bytes, from 256,
 * the smaller carved from 64 KiB mappings. A block given back ({@link giveBackKernelBytes}) once
 * no operation uses it goes, zeroed, to the next taker of its size. Not on a hot path: a lane's
 * `statx` is taken once for the lane, a copy's buffers once for the copy.
 *
 * @module
 */

import type { IoUring } from "./ring.ts";
import { memoryDiesWithThread } from "./ring.ts";
import { getSys, type Sys } from "./sys.ts";

/** The smallest block: a `struct statx` (256 bytes). */
const MIN_SHIFT = 8;
/** Blocks smaller than this are carved from one mapping of this size. */
const SLAB_SHIFT = 16;

/** Free blocks by size class (the log2 of their size). */
const freeBlocks: Uint8Array<ArrayBuffer>[][] = [];
/** The size class of each piece of held memory handed out and not given back. */
const lent = new Map<Uint8Array, number>();

/** The size class of `size` bytes: the log2 of the smallest block that holds them. */
function classOf(size: number): number {
  let shift = MIN_SHIFT;
  while (2 ** shift < size) shift++;
  return shift;
}

/** Whether `ring`'s operations get held memory (see the module notes). */
function wantsHeld(ring: IoUring, sys: Sys): boolean {
  if (sys.mmapAnonHeld === undefined || ring.sqpoll || !memoryDiesWithThread(ring)) return false;
  return !sys.isMainThread();
}

/**
 * Whether memory the kernel uses for `ring`'s operations is to be held (see the module notes): for
 * AlignedBuffers (`withHeldMemory`), which this module's blocks do not serve.
 */
export function holdsKernelMemory(ring: IoUring): boolean {
  return wantsHeld(ring, getSys(ring.backend));
}

/**
 * Maps fresh held memory for blocks of class `shift` and lists all but the one returned as free;
 * `null` when the helper cannot map it (`ENOMEM`).
 */
function mapBlocks(sys: Sys, shift: number): Uint8Array<ArrayBuffer> | null {
  const length = 2 ** Math.max(shift, SLAB_SHIFT);
  const address = sys.mmapAnonHeld!(length);
  if (address < 0) return null;
  const memory = Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(BigInt(address))!, length);
  const size = 2 ** shift;
  const free = freeBlocks[shift] ??= [];
  for (let offset = size; offset < length; offset += size) free.push(new Uint8Array(memory, offset, size));
  return new Uint8Array(memory, 0, size);
}

/**
 * `size` zeroed bytes for the kernel to read or write in operations on `ring`, held until the
 * thread is gone where the module notes say, else `new Uint8Array(size)`. Give them back with
 * {@link giveBackKernelBytes} once no operation uses them (or never: they stay unused).
 */
export function kernelBytes(ring: IoUring, size: number): Uint8Array<ArrayBuffer> {
  const sys = getSys(ring.backend);
  if (!wantsHeld(ring, sys)) return new Uint8Array(size);
  const shift = classOf(size);
  let block = freeBlocks[shift]?.pop();
  if (block !== undefined) {
    block.fill(0);
  } else {
    const mapped = mapBlocks(sys, shift);
    if (mapped === null) return new Uint8Array(size); // (no memory for it: as before)
    block = mapped;
  }
  const bytes = size === block.length ? block : block.subarray(0, size);
  lent.set(bytes, shift);
  return bytes;
}

/**
 * Takes back `bytes` from {@link kernelBytes}, for a later taker, once no operation uses them;
 * anything else (ordinary memory, or bytes already given back) is ignored.
 */
export function giveBackKernelBytes(bytes: Uint8Array): void {
  const shift = lent.get(bytes);
  if (shift === undefined) return;
  lent.delete(bytes);
  freeBlocks[shift].push(new Uint8Array(bytes.buffer as ArrayBuffer, bytes.byteOffset, 2 ** shift));
}

/** Whether `bytes` is held memory from {@link kernelBytes} not yet given back (for tests). */
export function isHeldKernelBytes(bytes: Uint8Array): boolean {
  return lent.has(bytes);
}

/**
 * What a ring holds outside the JavaScript heap (its fd, its mappings, its place in the thread's
 * ring table), and its release: by `IoUring.close()`, or by the garbage collector when a ring
 * becomes unreachable without one (the fd, the mappings and an SQPOLL thread would otherwise
 * stay until the process exits).
 *
 * @module
 */

import * as abi from "./abi.ts";
import { errno } from "./errno.ts";
import { bufReg, rsrcUpdate } from "./structs.ts";

const EINTR = errno("EINTR");
import type { Sys } from "./sys.ts";

/** A ring's resources, as `IoUring` records them and {@link releaseRing} frees them. */
export interface RingHold {
  /** The calls that made them. */
  readonly sys: Sys;
  /** The ring's fd. */
  readonly fd: number;
  /** Each mapping: address, length, and the ArrayBuffer over it. */
  readonly maps: Array<[address: number, length: number, memory: ArrayBuffer]>;
  /** The ring's index in the creating thread's ring table (`IORING_REGISTER_RING_FDS`), or -1. */
  enterIndex: number;
  /** Set once released. */
  released: boolean;
  /**
   * The ring's `Sqe` handles (they reference the SQE memory, not the ring): marked stale when the
   * ring is released, also by the garbage collector, so a handle a caller kept throws
   * `ClosedError` from every member rather than writing nowhere.
   */
  sqes: readonly { invalidate(): void }[];
  /**
   * The holds on aligned memory of the registered buffers (`registerBuffers`), one per mapping:
   * let go when the ring is released, also by the garbage collector, so a freed buffer's memory
   * is unmapped.
   */
  pins: Set<{ unpin(): void }>;
  /**
   * The rings of provided buffers registered on the ring (`setupBufferRing`): their memory is
   * freed once the ring's fd is closed, also by the garbage collector.
   */
  bufferRings: Set<{ readonly group: number; freeMemory(): void; keepMemory(): void }>;
  /**
   * Rings of provided buffers closed (unregistered) while the ring stays open: their memory stays
   * mapped until the ring's fd is closed, since an operation that picked a buffer before the
   * unregister (a receive waiting in an io-wq worker) still writes into it.
   */
  parkedBufferRings: Set<{ freeMemory(): void }>;
}

/** A hold for the ring `fd` made through `sys`, with nothing mapped or registered yet. */
export function ringHold(sys: Sys, fd: number): RingHold {
  return {
    sys,
    fd,
    maps: [],
    enterIndex: -1,
    released: false,
    sqes: [],
    pins: new Set(),
    bufferRings: new Set(),
    parkedBufferRings: new Set(),
  };
}

/**
 * Unmaps every mapping of `hold`, detaching each ArrayBuffer first: every view over it (an `Sqe`
 * handle a caller kept included) then has length 0, so a stale handle reads undefined and writes
 * nothing instead of faulting. A buffer detached already was transferred by someone
 * (`sqe.u8.buffer.transfer()`) and the new buffer still points at the mapping: unmapping would
 * turn its next access into a crash, so anonymous memory takes the mapping's place (that buffer
 * reads zeros from then on). Left mapped, the region would keep the ring's file, and with it the
 * ring and its SQ thread, until the process exits.
 */
function unmapAll(hold: RingHold): void {
  for (const [address, length, memory] of hold.maps) {
    if (memory.detached) {
      hold.sys.forgetMap?.(address); // (one made to go with its thread: it now outlives it)
      hold.sys.mmapAnonOver(address, length); // (failing, the mapping just stays)
      continue;
    }
    memory.transfer(0);
    hold.sys.munmap(address, length);
  }
  hold.maps.length = 0;
}

/**
 * Releases everything `hold` records, once: the mappings, the thread's registration (which holds
 * the ring open; dropped from this thread, whose table it is in), then the fd.
 */
export function releaseRing(hold: RingHold): void {
  if (hold.released) return;
  hold.released = true;
  for (const sqe of hold.sqes) sqe.invalidate();
  hold.sqes = [];
  unmapAll(hold);
  if (hold.enterIndex >= 0) unregisterRingIndex(hold);
  // Buffer rings are unregistered before the fd closes: the kernel tears a closed ring down later,
  // and a receive that came meanwhile could pick a buffer whose memory is about to be unmapped.
  // One the kernel refuses to unregister (a restricted ring: EACCES) keeps its memory mapped for
  // good: the ring may still pick from it until the kernel has torn it down.
  const unregistered = [...hold.bufferRings].filter((b) => unregisterBufferRing(hold, b.group) === 0);
  hold.sys.close(hold.fd);
  unpinAll(hold); // (the kernel keeps its own hold on the pages until it tears the ring down)
  for (const bufferRing of hold.bufferRings) {
    if (unregistered.includes(bufferRing)) bufferRing.freeMemory();
    else bufferRing.keepMemory();
  }
  hold.bufferRings.clear();
  for (const bufferRing of hold.parkedBufferRings) bufferRing.freeMemory();
  hold.parkedBufferRings.clear();
}

/**
 * Takes the ring out of the creating thread's table of rings (`IORING_UNREGISTER_RING_FDS`) and,
 * done, forgets its index; the call's result, 1 or `-errno`.
 */
export function unregisterRingIndex(hold: RingHold): number {
  const update = rsrcUpdate(hold.enterIndex, 0n);
  let r: number;
  do r = hold.sys.register(hold.fd, abi.IORING_UNREGISTER_RING_FDS, update, 1); while (r === -EINTR);
  if (r >= 0) hold.enterIndex = -1;
  return r;
}

/** Unregisters buffer group `group`'s ring of provided buffers; 0 or `-errno`. */
export function unregisterBufferRing(hold: RingHold, group: number): number {
  const reg = bufReg(0, 0, group);
  let r: number;
  do r = hold.sys.register(hold.fd, abi.IORING_UNREGISTER_PBUF_RING, reg, 1); while (r === -EINTR);
  return r;
}

/** Lets go of the aligned memory `hold`'s registered buffers held mapped. */
export function unpinAll(hold: RingHold): void {
  const pins = hold.pins;
  hold.pins = new Set();
  for (const pin of pins) pin.unpin();
}

const dropped = new FinalizationRegistry<RingHold>(releaseRing);

/** Has the garbage collector release `hold` if `ring` becomes unreachable before its close. */
export function releaseWhenDropped(ring: object, hold: RingHold): void {
  dropped.register(ring, hold, ring);
}

/** `ring` was closed: nothing is left for the garbage collector to release. */
export function closedByOwner(ring: object): void {
  dropped.unregister(ring);
}

/**
 * The `Uring` that `copyFile` calls share when they are given none (and no `sqpoll`, no deeper
 * `queueDepth` than the default): one per thread, made for the first, kept while copies use it
 * and for {@link LINGER_MS} after the last one ends, then closed. Copies started together share
 * it, and so do copies awaited one after another.
 *
 * A ring per call cost every copy its set-up and tear-down (`io_uring_setup`, three mappings,
 * registering the ring and its file table, an `Sqe` per entry, then unmapping and closing):
 * 4,000 cached files of 1–64 KiB copied to tmpfs 32 at a time took 1.31 s, against 0.29 s on one
 * shared ring (`Deno.copyFile` × 32: 0.10 s); one after another, 622 against 317 µs a file.
 *
 * The ring keeps the empty pipes its copies' one-block chains leave (up to {@link IDLE_PIPES}),
 * for the next copies, and closes them with itself.
 *
 * The linger is an unreferenced timer: it keeps no program alive. (The event loop's next turn
 * was too soon: Deno settles a finished thread-pool call between microtasks, so under load the
 * ring closed between one awaited copy and the next.)
 *
 * @module
 */

import { IdlePipes } from "./pipe.ts";
import { getSys } from "./sys.ts";
import type { Uring } from "./uring.ts";

/** Most idle pipes the shared ring keeps for its copies' one-block chains (one per file in flight). */
export const IDLE_PIPES = 32;

/** How long (ms) the shared ring stays open after its last copy ends. */
export const LINGER_MS = 20;

/** The ring, its idle pipes, how many copies use it now, and the timer that closes it once none does. */
interface SharedEntry {
  readonly uring: Uring;
  readonly pipes: IdlePipes;
  users: number;
  linger: ReturnType<typeof setTimeout> | undefined;
}

/** This thread's shared copy ring, while it is open. */
let shared: SharedEntry | undefined;

/** One copy's hold on the shared ring. */
export interface SharedRing {
  /** The ring the copy runs on. */
  readonly uring: Uring;
  /** Empty pipes the copies on the ring leave for each other (closed with the ring). */
  readonly pipes: IdlePipes;
  /** Ends the hold (once; later calls do nothing): the last one closes the ring a little later. */
  release(): void;
}

/**
 * Holds this thread's shared copy ring for one copy, making it with `make` when there is none
 * (or it was closed); `make`'s errors propagate, and nothing is held then.
 */
export function holdSharedCopyRing(make: () => Uring): SharedRing {
  let entry = shared;
  if (entry === undefined || entry.uring.closed) {
    entry?.pipes.close(); // (a ring that failed: its copies give their pipes back to a closed shelf)
    const uring = make();
    shared = entry = {
      uring,
      pipes: new IdlePipes(getSys(uring.ring.backend), IDLE_PIPES),
      users: 0,
      linger: undefined,
    };
  }
  const held = entry;
  held.users++;
  if (held.linger !== undefined) {
    clearTimeout(held.linger);
    held.linger = undefined;
  }
  let released = false;
  return {
    uring: held.uring,
    pipes: held.pipes,
    release(): void {
      if (released) return;
      released = true;
      if (--held.users > 0) return;
      const linger = setTimeout(() => {
        held.linger = undefined;
        if (held.users > 0 || shared !== held) return; // (in use again, or replaced)
        shared = undefined;
        held.pipes.close();
        held.uring.close().catch(() => {}); // (idle: nothing of any copy is in it)
      }, LINGER_MS);
      Deno.unrefTimer(linger);
      held.linger = linger;
    },
  };
}

/** The shared copy ring if one is open now (for tests), else undefined. */
export function sharedCopyRing(): Uring | undefined {
  return shared?.uring.closed === false ? shared.uring : undefined;
}

/**
 * The `Uring` that `copyFile` calls share when they are given none (and no `sqpoll`, no deeper
 * `queueDepth` than the default): made for the first, kept while copies use it and for
 * {@link LINGER_MS} (up to twice that) after the last one ends, then closed. Copies started
 * together share it, and so do copies awaited one after another.
 *
 * The ring's memory is mapped to go with the thread that made it (`Sys.mmapHeld`; no view of it
 * leaves this module), and the helper closes the ring's and the kept lanes' fds as that thread
 * exits: a Worker (of either kind: Deno's or `node:worker_threads`') is often terminated as soon
 * as it says it is done, and nothing runs a terminated Worker's JavaScript, so a lingering ring
 * would otherwise stay open and mapped in the process for good. Where that cannot be had (the
 * libc backend, or a helper built before it), a Worker's copies use Deno's file APIs unless
 * `fallback: false` (see `openEngine`); with it, the ring closes as its last copy ends, before
 * that copy settles (see {@link lingers}), and copies awaited one after another there make a ring
 * each. 4,000 small files in a Worker: 32 at a time 0.18 s with a shared ring, 1.15 s with
 * a ring per copy (`Deno.copyFile`: 0.10 s); one after another 0.47 s, against 1.20 s (0.23 s).
 *
 * A ring per call cost every copy its set-up and tear-down (`io_uring_setup`, three mappings,
 * registering the ring and its file table, an `Sqe` per entry, then unmapping and closing):
 * 4,000 cached files of 1–64 KiB copied to tmpfs 32 at a time took 1.31 s, against 0.29 s on one
 * shared ring (`Deno.copyFile` × 32: 0.10 s); one after another, 622 against 317 µs a file.
 *
 * The ring keeps the free lanes its copies' one-block chains leave (up to {@link KEPT_LANES}:
 * file-table indexes, a pipe and memory each; the pipes within a share of the file limit, see
 * `LaneShelf`) for the next copies, and lets them go with itself.
 *
 * The linger is an unreferenced timer: it keeps no program alive. (The event loop's next turn
 * was too soon: Deno settles a finished thread-pool call between microtasks, so under load the
 * ring closed between one awaited copy and the next.)
 *
 * @module
 */

import { LaneShelf } from "./copy_small.ts";
import { memoryDiesWithThread } from "./ring.ts";
import { getSys } from "./sys.ts";
import type { Uring } from "./uring.ts";

/**
 * Most free one-block lanes the shared ring keeps for its copies (one per file in flight; two
 * file-table indexes and a pipe each).
 */
export const KEPT_LANES = 32;

/**
 * The timer function as it was when this module loaded: a test's fake clock (which replaces
 * the global ones) would otherwise hold the linger, and drop it when restored, the ring open.
 * (One installed before the module loads still does: import the module first.)
 */
const setTimer = globalThis.setTimeout;

/** How long (ms) the shared ring stays open after its last copy ends (up to twice that). */
export const LINGER_MS = 20;

/**
 * Whether `uring` lingers after its last copy: when its memory goes with this thread (see the
 * module notes), or on the process's first thread; otherwise (a Worker's, without the helper) it
 * closes at once, and the last copy waits for that before it settles.
 */
function lingers(uring: Uring): boolean {
  return memoryDiesWithThread(uring.ring) || getSys(uring.ring.backend).isMainThread();
}

/**
 * The ring, its kept lanes, whether it lingers (see {@link lingers}: fixed for its life), how many
 * copies use it now, how many times that fell to none, and the timer that closes it once none has
 * used it for a while.
 */
interface SharedEntry {
  readonly uring: Uring;
  readonly lanes: LaneShelf;
  readonly lingers: boolean;
  users: number;
  idled: number;
  linger: ReturnType<typeof setTimeout> | undefined;
}

/** This thread's shared copy ring, while it is open. */
let shared: SharedEntry | undefined;

/** One copy's hold on the shared ring. */
export interface SharedRing {
  /** The ring the copy runs on. */
  readonly uring: Uring;
  /** Free one-block lanes the copies on the ring leave for each other (let go with the ring). */
  readonly lanes: LaneShelf;
  /**
   * Ends the hold (once; later calls do nothing): the last one closes the ring a little later,
   * or at once where it cannot linger (see {@link lingers}), and then returns the promise of that
   * close (settled, never rejected, when the ring is closed), for the copy to wait for before it
   * settles.
   */
  release(): Promise<void> | undefined;
}

/**
 * Holds this thread's shared copy ring for one copy, making it with `make` when there is none
 * (or it was closed); `make`'s errors propagate, and nothing is held then.
 */
export function holdSharedCopyRing(make: () => Uring): SharedRing {
  let entry = shared;
  if (entry === undefined || entry.uring.closed) {
    entry?.lanes.close(); // (a ring that failed: its copies give their lanes back to a closed shelf)
    const uring = make();
    shared = entry = {
      uring,
      lanes: new LaneShelf(uring, KEPT_LANES),
      lingers: lingers(uring),
      users: 0,
      idled: 0,
      linger: undefined,
    };
  }
  const held = entry;
  held.users++;
  let released = false;
  return {
    uring: held.uring,
    lanes: held.lanes,
    release(): Promise<void> | undefined {
      if (released) return;
      released = true;
      if (--held.users > 0) return;
      held.idled++;
      if (!held.lingers) return closeNow(held);
      if (held.linger === undefined) linger(held);
    },
  };
}

/** Closes `held` (no copy uses it), which later copies then no longer find. */
function closeNow(held: SharedEntry): Promise<void> {
  if (shared === held) shared = undefined;
  held.lanes.close();
  return held.uring.close().catch(() => {}); // (idle: nothing of any copy is in it)
}

/**
 * Arms `held`'s linger timer: when it fires, the ring closes if no copy used it meanwhile, else
 * it waits again (in use now: the last copy to end arms it anew). One timer serves a run of copies
 * awaited one after another, where one a copy cost ~2.5 µs of the ~120 µs a small file takes.
 */
function linger(held: SharedEntry): void {
  const idled = held.idled;
  const timer = setTimer(() => {
    held.linger = undefined;
    if (held.users > 0 || shared !== held) return; // (in use, or replaced)
    if (held.idled !== idled) return linger(held); // (used meanwhile)
    void closeNow(held);
  }, LINGER_MS);
  Deno.unrefTimer(timer);
  held.linger = timer;
}

/** The shared copy ring if one is open now (for tests), else undefined. */
export function sharedCopyRing(): Uring | undefined {
  return shared?.uring.closed === false ? shared.uring : undefined;
}

/** Shelves of lanes kept for rings a program made itself for many copies (the CLI's), by ring. */
const lentShelves = new WeakMap<Uring, LaneShelf>();

/**
 * Keeps free one-block lanes between the copies given `uring` (as the shared ring does for its
 * own): for a program that makes one ring for many copies and closes it at the end (the CLI).
 * Returns the shelf, which the program closes before the ring. (Internal.)
 */
export function keepLanesFor(uring: Uring): LaneShelf {
  const shelf = new LaneShelf(uring, KEPT_LANES);
  lentShelves.set(uring, shelf);
  return shelf;
}

/** The shelf {@link keepLanesFor} made for `uring`, if any. */
export function keptLanesOf(uring: Uring): LaneShelf | undefined {
  return lentShelves.get(uring);
}

/**
 * Closes the pipes of the lanes kept for copies: the shared ring's, and those kept for `uring`
 * (see {@link keepLanesFor}). A copy out of descriptors (`EMFILE`) gives them back before it
 * gives up. Returns how many it closed.
 */
export function shedKeptPipes(uring?: Uring): number {
  const own = uring === undefined ? undefined : lentShelves.get(uring);
  return (shared?.lanes.shedPipes() ?? 0) + (own?.shedPipes() ?? 0);
}

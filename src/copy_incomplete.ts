/**
 * The files copies are writing right now, process-wide, so that a program about to exit at once
 * can remove them first: an interrupted copy never leaves a partial file under a name that looks
 * complete. The CLI's second Ctrl-C (which does not wait for the copy to clean up) calls
 * {@link removeIncompleteNow}; so does `Deno.exit()` while a copy runs (the `unload` event).
 * Before removing anything it has each running copy stop its operations in the kernel and wait
 * for them (see {@link drainBeforeExit}): a create still queued there would otherwise make the
 * file again after its removal.
 * Not an uncaught error or unhandled rejection: a handler of the program's may still prevent it
 * after this module's listener has run (the program then goes on, and its copies with it), and
 * when none does, Deno ends the process without running any more JavaScript.
 *
 * @module
 */

import { drainForExit, type Uring } from "./uring.ts";

/** Paths being written (a temporary name, or the final one for a file written in place). */
const writing = new Set<string>();

/** The longest the drains of all running copies take together before the files are removed. */
const DRAIN_MS = 1000;

/** The Urings running copies use, each with how many copies use it (see drainBeforeExit). */
const drains = new Map<Uring, { copies: number }>();

/**
 * Has `uring` drained (`drainForExit`: its operations in the kernel stopped and waited for,
 * every Uring until the same deadline) before the files are removed; several copies on one Uring
 * share the drain. Returns the function that unregisters this copy.
 */
export function drainBeforeExit(uring: Uring): () => void {
  let entry = drains.get(uring);
  if (entry === undefined) drains.set(uring, entry = { copies: 0 });
  entry.copies++;
  let done = false;
  return () => {
    if (done) return;
    done = true;
    // (After the drains ran and were cleared, this registration is gone already.)
    if (--entry.copies === 0 && drains.get(uring) === entry) drains.delete(uring);
  };
}

let watching = false;

/** Watches, once per process (or Worker), for an exit that would leave the copies unfinished. */
function watchExit(): void {
  watching = true;
  globalThis.addEventListener("unload", () => removeIncompleteNow());
}

/** Notes that a copy is about to create and write `path`. */
export function startWriting(path: string): void {
  if (!watching) watchExit();
  writing.add(path);
}

/** Notes that `path` is complete, or was removed after a failure. */
export function doneWriting(path: string): void {
  writing.delete(path);
}

/**
 * Removes every file a copy is still writing, synchronously (for a program that exits right
 * after). Returns how many were removed; one already gone or never created is passed over.
 */
export function removeIncompleteNow(): number {
  const deadline = performance.now() + DRAIN_MS;
  for (const uring of drains.keys()) {
    try {
      drainForExit(uring, deadline);
    } catch {
      // best effort: remove what can be removed
    }
  }
  drains.clear(); // once: the CLI's second Ctrl-C comes here, then to the exit's `unload`
  let removed = 0;
  for (const path of writing) {
    try {
      Deno.removeSync(path);
      removed++;
    } catch {
      // not created yet, or already removed
    }
  }
  writing.clear();
  return removed;
}

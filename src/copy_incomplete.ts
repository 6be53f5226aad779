/**
 * The files copies are writing right now, process-wide, so that a program about to exit at once
 * can remove them first: an interrupted copy never leaves a partial file under a name that looks
 * complete. The CLI's second Ctrl-C (which does not wait for the copy to clean up) calls
 * {@link removeIncompleteNow}; so does `Deno.exit()` while a copy runs (the `unload` event).
 * Not an uncaught error or unhandled rejection: a handler of the program's may still prevent it
 * after this module's listener has run (the program then goes on, and its copies with it), and
 * when none does, Deno ends the process without running any more JavaScript.
 *
 * @module
 */

/** Paths being written (a temporary name, or the final one for a file written in place). */
const writing = new Set<string>();

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

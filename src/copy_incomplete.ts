/**
 * The files copies are writing right now, process-wide, so that a program about to exit at once
 * can remove them first: an interrupted copy never leaves a partial file under a name that looks
 * complete. The CLI's second Ctrl-C (which does not wait for the copy to clean up) calls
 * {@link removeIncompleteNow}; so does the exit of a program whose copy is still running:
 * `Deno.exit()` (the `unload` event), or an uncaught error or unhandled rejection that nothing
 * prevented (the process then ends without waiting for the copy).
 *
 * @module
 */

/** Paths being written (a temporary name, or the final one for a file written in place). */
const writing = new Set<string>();

let watching = false;

/** Removes the files being written if the process is about to end with `event` (not prevented). */
function onFatal(event: Event): void {
  if (!event.defaultPrevented) removeIncompleteNow();
}

/** Watches, once per process (or Worker), for an exit that would leave the copies unfinished. */
function watchExit(): void {
  watching = true;
  globalThis.addEventListener("unload", () => removeIncompleteNow());
  globalThis.addEventListener("error", onFatal);
  globalThis.addEventListener("unhandledrejection", onFatal);
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

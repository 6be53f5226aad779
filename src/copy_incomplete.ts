/**
 * The files copies are writing right now, process-wide, so that a program about to exit at once
 * (the CLI's second Ctrl-C, which does not wait for the copy to clean up) can remove them first:
 * an interrupted copy never leaves a partial file under a name that looks complete.
 *
 * @module
 */

/** Paths being written (a temporary name, or the final one for a file written in place). */
const writing = new Set<string>();

/** Notes that a copy is about to create and write `path`. */
export function startWriting(path: string): void {
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

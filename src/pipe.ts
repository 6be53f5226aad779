/**
 * Pipes for splicing (internal): one made through the system layer, and closed through it.
 *
 * @module
 */

import type { Sys } from "./sys.ts";

/** A pipe: its two ends and its capacity in bytes (the most one splice into it moves). */
export interface Pipe {
  /** The read end. */
  readonly read: number;
  /** The write end. */
  readonly write: number;
  /** Capacity in bytes. */
  readonly capacity: number;
}

/**
 * A pipe (`pipe2` with `O_CLOEXEC`) asking for `size` bytes of capacity (0: the kernel's default;
 * a refusal also keeps it), or `null` when none can be made (no descriptors or memory left).
 */
export function openPipe(sys: Sys, size = 0): Pipe | null {
  const fds = new Int32Array(2);
  const capacity = sys.pipe(fds, size);
  return capacity > 0 ? { read: fds[0], write: fds[1], capacity } : null;
}

/** Closes both ends of `pipe`. */
export function closePipe(sys: Sys, pipe: Pipe): void {
  sys.close(pipe.read);
  sys.close(pipe.write);
}

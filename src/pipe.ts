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

/**
 * Empty pipes kept between users (the one-block chains of the copies on a thread's shared copy
 * ring), up to `max`: making and closing a pipe per copy (`pipe2`, `F_GETPIPE_SZ`, two `close`s)
 * cost ~8 µs of a one-block `copyFile`'s ~65 µs of main thread, many at once.
 */
export class IdlePipes {
  readonly #sys: Sys;
  readonly #max: number;
  readonly #pipes: Pipe[] = [];
  #closed = false;

  /** Keeps up to `max` pipes, closing them through `sys`. */
  constructor(sys: Sys, max: number) {
    this.#sys = sys;
    this.#max = max;
  }

  /** The system layer the pipes are made and closed through. */
  get sys(): Sys {
    return this.#sys;
  }

  /** A kept pipe, or null (none kept). */
  take(): Pipe | null {
    return this.#pipes.pop() ?? null;
  }

  /** Keeps `pipe`, which must be empty, for a later {@link IdlePipes.take}; closes it when full or closed. */
  give(pipe: Pipe): void {
    if (this.#closed || this.#pipes.length >= this.#max) closePipe(this.#sys, pipe);
    else this.#pipes.push(pipe);
  }

  /** Closes every kept pipe; any given later is closed at once. */
  close(): void {
    this.#closed = true;
    this.shed();
  }

  /** Closes every kept pipe (the process ran out of descriptors), keeping later ones again. */
  shed(): number {
    const count = this.#pipes.length;
    for (const pipe of this.#pipes.splice(0)) closePipe(this.#sys, pipe);
    return count;
  }

  /** How many pipes are kept now. */
  get size(): number {
    return this.#pipes.length;
  }
}

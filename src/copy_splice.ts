/**
 * The block path's data movement by `splice`: a dense file bigger than one block goes from the
 * source to the destination through pipes, `splice(source → pipe)` linked to
 * `splice(pipe → destination)`, so the kernel copies each byte once (from the page cache into
 * the destination), as `sendfile` and `copy_file_range` do, instead of into a buffer and out of
 * it again. Each pipe is a lane that moves one chunk (the pipe's capacity) at a time; a few lanes
 * run at once. The pipes come from a small pool that every file of a copy shares, so a tree copy
 * never holds more than {@link SPLICE_PIPES} of them (pipes count against the user's pipe
 * allowance, `fs.pipe-user-pages-soft`, and past it every new pipe of that user gets one page).
 *
 * @module
 */

import { codeOf, tagStage } from "./copy_errors.ts";
import { type Crew, runWorkers } from "./copy_workers.ts";
import { closePipe, openPipe, type Pipe } from "./pipe.ts";
import type { Sys } from "./sys.ts";
import type { Uring } from "./uring.ts";

/** Pipes in a copy's pool at most (4 MiB of pipe capacity at the default block size). */
export const SPLICE_PIPES = 4;

/** The largest pipe capacity asked for: the default `fs.pipe-max-size` (1 MiB). */
export const MAX_PIPE_SIZE = 1024 * 1024;

/**
 * The pipes a copy's files share: made on first use (each asks for `size` bytes of capacity),
 * at most `max` at once. A pipe that may still hold bytes is retired (closed), never reused.
 */
export class SplicePipes {
  readonly #sys: Sys;
  readonly #size: number;
  readonly #max: number;
  readonly #free: Pipe[] = [];
  #open = 0;
  #closed = false;

  /** A pool whose pipes ask for `size` bytes each (capped at {@link MAX_PIPE_SIZE}). */
  constructor(sys: Sys, size: number, max = SPLICE_PIPES) {
    this.#sys = sys;
    this.#size = Math.min(size, MAX_PIPE_SIZE);
    this.#max = max;
  }

  /** The capacity each pipe asks for: one chunk of a lane, so a file of `n` bytes has `ceil(n / size)`. */
  get size(): number {
    return this.#size;
  }

  /** Pipes open now (free or in use). */
  get open(): number {
    return this.#open;
  }

  /** Up to `want` empty pipes; fewer (maybe none) when the others are in use or pipe2 fails. */
  take(want: number): Pipe[] {
    const got: Pipe[] = [];
    while (got.length < want && !this.#closed) {
      const free = this.#free.pop();
      if (free !== undefined) {
        got.push(free);
        continue;
      }
      if (this.#open >= this.#max) break;
      const pipe = openPipe(this.#sys, this.#size);
      if (pipe === null) break; // out of descriptors or memory: the caller reads and writes
      this.#open++;
      got.push(pipe);
    }
    return got;
  }

  /** Takes back an empty pipe (closes it when the pool was closed meanwhile). */
  give(pipe: Pipe): void {
    if (this.#closed) this.retire(pipe);
    else this.#free.push(pipe);
  }

  /** Closes a pipe that may hold bytes (after a failure, an abort or a stop). */
  retire(pipe: Pipe): void {
    closePipe(this.#sys, pipe);
    this.#open--;
  }

  /** Closes the free pipes; pipes in use are closed when they come back. */
  close(): void {
    this.#closed = true;
    for (let pipe = this.#free.pop(); pipe !== undefined; pipe = this.#free.pop()) this.retire(pipe);
  }
}

/** The first splice of a copy failed with `EINVAL`: the file system cannot splice this file. */
export class SpliceUnsupported extends Error {
  /** Wraps the kernel's `EINVAL`. */
  constructor(cause: unknown) {
    super("splice is not supported here", { cause });
    this.name = "SpliceUnsupported";
  }
}

/** What {@link spliceData} works with. */
export interface SpliceJob {
  /** The ring. */
  uring: Uring;
  /** Runs one ring call holding `ops` permits of the copy's in-flight budget. */
  op<T>(ops: number, fn: () => Promise<T>): Promise<T>;
  /** Aborts the copy. */
  signal: AbortSignal | undefined;
  /** The source, open for reading. */
  srcFd: number;
  /** The destination, open for writing. */
  dstFd: number;
  /** Bytes to copy (the source's size when it was looked at). */
  size: number;
  /** Counts bytes written (progress). */
  addBytes(n: number): void;
  /**
   * Called the moment a splice is refused with `EINVAL` before any byte was written, so that
   * files starting meanwhile no longer try (the rejection comes once every lane has stopped).
   */
  unsupported(): void;
}

/**
 * Copies `job.size` bytes through `pipes` (one lane each, all at once); gives every pipe back
 * to `pool` empty, or retires it. Resolves with the bytes in the copy: fewer than the size when
 * the source shrank meanwhile (then the caller truncates). Rejects with
 * {@link SpliceUnsupported} when a splice fails with `EINVAL` before any byte was written (the
 * caller copies the file again by reading and writing), otherwise with the first failure, tagged
 * `read` (into a pipe) or `write` (out of it).
 */
export async function spliceData(job: SpliceJob, pipes: Pipe[], pool: SplicePipes): Promise<number> {
  const { uring, signal, srcFd, dstFd } = job;
  let next = 0;
  let end = job.size;
  let written = 0;
  const unsupported = (error: Error): SpliceUnsupported => {
    job.unsupported();
    return new SpliceUnsupported(error);
  };

  const runLane = async (pipe: Pipe, crew: Crew): Promise<void> => {
    let clean = true; // the pipe holds nothing
    try {
      while (!crew.failed && next < end) {
        let offset = next;
        let left = Math.min(pipe.capacity, end - offset);
        next = offset + left;
        while (left > 0) {
          clean = false;
          const [into, out] = await job.op(
            2,
            () =>
              uring.chain(
                (c) =>
                  c.splice(srcFd, offset, pipe.write, -1, left).splice(pipe.read, -1, dstFd, offset, left),
                {
                  async: true, // a splice never completes inline: go straight to the kernel's workers
                  signal,
                },
              ),
          );
          if (!into.ok) {
            clean = true; // nothing went into the pipe
            if (written === 0 && codeOf(into.error) === "EINVAL") throw unsupported(into.error);
            throw tagStage(into.error, "read");
          }
          const moved = into.value;
          if (moved === 0) {
            clean = true;
            end = Math.min(end, offset); // end of file: the source shrank since it was looked at
            break;
          }
          // A short first splice cancels the second; a failed or short second leaves bytes behind.
          let put = out.ok ? out.value : 0;
          if (!out.ok && codeOf(out.error) !== "ECANCELED") {
            if (written === 0 && codeOf(out.error) === "EINVAL") throw unsupported(out.error);
            throw tagStage(out.error, "write");
          }
          while (put < moved) {
            const at = offset + put;
            const n = await job.op(1, () => uring.splice(pipe.read, -1, dstFd, at, moved - put, { signal }))
              .catch((e) => {
                throw tagStage(e, "write");
              });
            if (n <= 0) {
              throw tagStage(
                new Error(`splice to the destination moved ${n} bytes at offset ${at}`),
                "write",
              );
            }
            put += n;
          }
          clean = true;
          written += moved;
          job.addBytes(moved);
          offset += moved;
          left -= moved;
        }
      }
    } finally {
      if (clean) pool.give(pipe);
      else pool.retire(pipe);
    }
  };

  let lanes = 0;
  await runWorkers(pipes.length, (crew) => runLane(pipes[lanes++], crew));
  return end;
}

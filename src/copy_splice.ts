/**
 * The block path's data movement by `splice`: a dense file bigger than one block goes from the
 * source to the destination through pipes, `splice(source → pipe)` linked to
 * `splice(pipe → destination)`, so the kernel copies each byte once (from the page cache into
 * the destination), as `sendfile` and `copy_file_range` do, instead of into a buffer and out of
 * it again. Each pipe is a lane that moves a run of chunks (one pipe's capacity each) as one
 * linked chain, `into → out → into → out ...`, so the kernel's worker goes from chunk to chunk
 * without coming back to JavaScript; a few lanes run at once. The pipes come from a small pool
 * that every file of a copy shares, so a tree copy never holds more than {@link SPLICE_PIPES} of
 * them (pipes count against the user's pipe allowance, `fs.pipe-user-pages-soft`, and past it
 * every new pipe of that user gets one page).
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

/**
 * Chunks a lane's chain moves at most (16 MiB at the default 1 MiB block size). With a chain per
 * chunk, which comes back to JavaScript once per MiB, 1 GiB → tmpfs took 6% longer from the page
 * cache and 68% longer from a cold one (alternating CLI runs).
 */
export const SPLICE_RUN = 16;

/** The largest pipe capacity asked for: the default `fs.pipe-max-size` (1 MiB). */
export const MAX_PIPE_SIZE = 1024 * 1024;
/**
 * Interruptions in a row (no byte moved between them) a lane takes before it gives up: see
 * {@link interrupted}.
 */
const MAX_INTERRUPTS = 100;

/**
 * Whether a splice failed with EINTR: a kernel worker blocked on a pipe was interrupted while the
 * process stopped (Ctrl-Z, SIGSTOP, a cgroup freeze: `docker pause`) and moved nothing. The
 * `Uring` reports its own cancels as ECANCELED, so this one is to be done again, as `SA_RESTART`
 * would have the kernel do for a plain `splice(2)`.
 */
function interrupted(error: unknown): boolean {
  return codeOf(error) === "EINTR";
}

/**
 * The pipes a copy's files share: made on first use (each asks for `size` bytes of capacity),
 * at most `max` at once. A pipe that may still hold bytes is retired (closed), never reused.
 */
export class SplicePipes {
  readonly #sys: Sys;
  readonly #size: number;
  #max: number;
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

  /**
   * Gives back descriptors (the process ran out): closes the free pipes and makes no new ones
   * from now on. Returns how many pipes it closed.
   */
  shed(): number {
    const closed = this.#retireFree();
    this.#max = this.#open;
    return closed;
  }

  /** Closes the free pipes; pipes in use are closed when they come back. */
  close(): void {
    this.#closed = true;
    this.#retireFree();
  }

  /** Closes the free pipes; returns how many. */
  #retireFree(): number {
    const count = this.#free.length;
    for (let pipe = this.#free.pop(); pipe !== undefined; pipe = this.#free.pop()) this.retire(pipe);
    return count;
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
  /**
   * Operations one chain may hold: at most the copy's in-flight budget and the ring's SQ size
   * (a chain is two operations per chunk).
   */
  maxOps: number;
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
 * to `pool` empty, or retires it. Each lane takes the next run of up to {@link SPLICE_RUN} chunks
 * (fewer when the file has few chunks for its lanes, or the budget is small) and moves it as one
 * chain. Resolves with the bytes in the copy: fewer than the size when the source shrank
 * meanwhile (then the caller truncates). Rejects with {@link SpliceUnsupported} when a splice
 * fails with `EINVAL` before any byte was written (the caller copies the file again by reading
 * and writing), otherwise with the first failure, tagged `read` (into a pipe) or `write` (out
 * of it).
 */
export async function spliceData(job: SpliceJob, pipes: Pipe[], pool: SplicePipes): Promise<number> {
  const { uring, signal, srcFd, dstFd } = job;
  let next = 0;
  let end = job.size;
  let written = 0;
  let interrupts = 0; // in a row, every lane's: see MAX_INTERRUPTS
  /** Counts an interruption (see {@link interrupted}); throws `error` after too many in a row. */
  const again = (error: Error, stage: "read" | "write"): void => {
    if (++interrupts > MAX_INTERRUPTS) throw tagStage(error, stage);
  };
  /**
   * The error for a chain member's failure at `stage`: {@link SpliceUnsupported} when a splice is
   * refused with `EINVAL` before any byte was written (the file system cannot splice), else the
   * failure tagged with its stage.
   */
  const failure = (error: Error, stage: "read" | "write"): unknown => {
    if (written !== 0 || codeOf(error) !== "EINVAL") return tagStage(error, stage);
    job.unsupported();
    return new SpliceUnsupported(error);
  };
  const capacity = Math.min(...pipes.map((p) => p.capacity));
  const chunks = Math.ceil(end / capacity);
  const run = Math.max(
    1,
    Math.min(SPLICE_RUN, Math.ceil(chunks / pipes.length), Math.floor(job.maxOps / (2 * pipes.length))),
  );

  /**
   * Moves `[from, stop)` as one chain of chunks through `pipe` and leaves the pipe empty; returns
   * where the data got to: `stop`, or less after a short splice (a short member fails the link,
   * so the chain's later members were cancelled) or at the end of the source (then `end` is cut
   * there). When it throws, the pipe may hold bytes.
   */
  const runChain = async (pipe: Pipe, from: number, stop: number): Promise<number> => {
    const cap = pipe.capacity;
    const count = Math.ceil((stop - from) / cap);
    const results = await job.op(
      2 * count,
      () =>
        uring.chain((c) => {
          for (let at = from; at < stop; at += cap) {
            const len = Math.min(cap, stop - at);
            c.splice(srcFd, at, pipe.write, -1, len).splice(pipe.read, -1, dstFd, at, len);
          }
        }, {
          async: true, // a splice never completes inline: go straight to the kernel's workers
          signal,
        }),
    );
    let reached = from;
    for (let i = 0; i < count; i++) {
      const at = from + i * cap;
      const len = Math.min(cap, stop - at);
      const into = results[2 * i], out = results[2 * i + 1];
      if (!into.ok) {
        // (After a short chunk the loop has returned: a failure here is this chunk's own.)
        if (!interrupted(into.error)) throw failure(into.error, "read");
        // Nothing of it moved, and the pipe is empty (the chunks before it were drained): the rest
        // of the chain was cancelled, so go again from here.
        again(into.error, "read");
        return runChain(pipe, at, stop);
      }
      const moved = into.value;
      if (moved === 0) {
        end = Math.min(end, at); // end of file: the source shrank since it was looked at
        return at;
      }
      // A short first splice cancels the second; a failed or short second leaves bytes behind.
      let put = out.ok ? out.value : 0;
      if (!out.ok && codeOf(out.error) !== "ECANCELED") {
        if (!interrupted(out.error)) throw failure(out.error, "write");
        again(out.error, "write"); // the bytes stay in the pipe: the loop below moves them
      }
      while (put < moved) {
        const to = at + put;
        const n = await job.op(1, () => uring.splice(pipe.read, -1, dstFd, to, moved - put, { signal }))
          .catch((e) => {
            if (!interrupted(e)) throw tagStage(e, "write");
            again(e, "write");
            return -1; // nothing moved: again
          });
        if (n === -1) continue;
        if (n <= 0) {
          throw tagStage(new Error(`splice to the destination moved ${n} bytes at offset ${to}`), "write");
        }
        put += n;
      }
      written += moved;
      interrupts = 0;
      job.addBytes(moved);
      reached = at + moved;
      if (moved < len || !out.ok || out.value < moved) return reached; // the rest was cancelled
    }
    return reached;
  };

  const runLane = async (pipe: Pipe, crew: Crew): Promise<void> => {
    let clean = true; // the pipe holds nothing
    try {
      while (!crew.failed && next < end) {
        // This lane's run: it moves all of it, resuming after a short splice.
        let at = next;
        const stop = Math.min(end, at + run * pipe.capacity);
        next = stop;
        while (at < Math.min(stop, end)) {
          clean = false;
          const reached = await runChain(pipe, at, Math.min(stop, end));
          clean = true;
          if (reached === at) break; // end of the source
          at = reached;
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

/**
 * {@link FifoWriterWait}: how `Uring.open` of a FIFO for reading waits for a writer, as `open(2)`
 * does (internal).
 *
 * io_uring's `openat` first tries without blocking, and a FIFO opened that way for reading opens
 * at once, with no writer: its first read would find the end of the stream. `open(2)` returns
 * once a writer is there, or has been. So the fd that first open got is held, and two operations
 * race on the Uring's ring:
 * - the same open again, in an io-wq worker (`IOSQE_ASYNC`), which waits as `open(2)` does: it
 *   returns when a writer opens;
 * - a poll of the held fd for `POLLIN`, which fires when a writer has written, or has come and
 *   gone (`POLLHUP`): a writer already waiting in its own open is let through by the held fd, and
 *   may be done before the second open looks, which would then wait for another.
 * The first to finish cancels the other. The file is the second open's fd when it got one (the
 * held fd is closed: the pipe and its data stay, since the new fd reads the same pipe), else the
 * held fd when the poll fired. The second open names the held fd's own FIFO
 * (`/proc/self/fd/N`), not the path, which may lead elsewhere by then; where it fails (no
 * `/proc`), the poll alone ends the wait.
 *
 * @module
 */

import { AT_FDCWD, IOSQE_ASYNC, POLLIN } from "./abi.ts";
import { errno, isInterruption } from "./errno.ts";
import { cstring } from "./memory.ts";
import { prepOpenat, prepPollAdd } from "./prep.ts";
import type { Sys } from "./sys.ts";
import type { RawClient, RawRing } from "./uring.ts";

const OPEN = 1, POLL = 2;
const ECANCELED = errno("ECANCELED");
/** How often in a row the second open is queued again after the kernel interrupted it. */
const MAX_INTERRUPTS = 100;
/** How long to wait before asking again for room on the ring (ms). */
const ROOM_RETRY_MS = 1;

/** What the wait needs of the open it finishes. */
export interface FifoOpen {
  /** The fd the first open got: a FIFO with no writer yet. */
  heldFd: number;
  /** The open's flags, for the second open (which reaches the FIFO through `/proc`'s link). */
  flags: number;
  /** The open's abort signal, or null. */
  signal: AbortSignal | null;
  /** Called once the wait is over, as it settles (before its promise's reactions run). */
  onSettled: () => void;
}

/** Why the wait failed when the second open failed: its errno (the Uring names the error). */
export class FifoOpenFailed {
  /** The errno (positive). */
  constructor(readonly errno: number) {}
}

/**
 * One FIFO open waiting for a writer (see the module's doc). Resolves with the fd of the file, or
 * rejects with a {@link FifoOpenFailed}, or with what {@link FifoWriterWait.stop} or the Uring's
 * failure gave.
 */
export class FifoWriterWait implements RawClient {
  readonly done: Promise<number>;
  #resolve!: (fd: number) => void;
  #reject!: (reason: unknown) => void;
  readonly #raw: RawRing;
  readonly #sys: Sys;
  readonly #open: FifoOpen;
  #id = -1;
  /** Results of the two operations; `undefined` while one is in flight, `null` before it starts. */
  #openRes: number | null | undefined = null;
  #pollRes: number | null | undefined = null;
  #stopped: unknown = undefined;
  #hasStopped = false;
  #settled = false;
  #interrupts = 0;
  readonly #onAbort = () => this.stop(this.#open.signal!.reason);
  /** `/proc/self/fd/N` of the held fd: the same FIFO, whatever its path leads to now. */
  readonly #heldPath: Uint8Array;

  constructor(raw: RawRing, sys: Sys, open: FifoOpen) {
    this.#raw = raw;
    this.#sys = sys;
    this.#open = open;
    this.#heldPath = cstring(`/proc/self/fd/${open.heldFd}`);
    this.done = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    open.signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Queues the two operations (as soon as the ring has room for them). */
  start(): void {
    if (this.#hasStopped || this.#settled) return;
    const signal = this.#open.signal;
    if (signal?.aborted) return this.stop(signal.reason); // (fired before its listener was added)
    const raw = this.#raw;
    let room: boolean, both: boolean;
    try {
      if (this.#id < 0) this.#id = raw.attach(this);
      // A ring too small ever to take both (one SQE, or a limit of one) gets the poll alone, which
      // ends the wait as well, once a writer has written or has come and gone.
      both = raw.fits(2, 2);
      room = both ? raw.room(2, 2) : raw.room(1, 1);
    } catch (e) {
      return this.stop(e); // the Uring closed meanwhile
    }
    if (!room) {
      setTimeout(() => this.start(), ROOM_RETRY_MS);
      return;
    }
    if (both) {
      this.#putOpen();
    } else {
      this.#openRes = -ECANCELED; // (never queued)
    }
    prepPollAdd(raw.sqe(this.#id, POLL), this.#open.heldFd, POLLIN);
    this.#pollRes = undefined;
    raw.commit(both ? 2 : 1, both ? 2 : 1, 0);
  }

  /** Queues the second open again, alone (see `complete`), as soon as the ring has room. */
  #queueOpen(): void {
    if (this.#hasStopped || this.#settled) return;
    let room: boolean;
    try {
      room = this.#raw.room(1, 1);
    } catch (e) {
      return this.stop(e); // the Uring closed meanwhile
    }
    if (!room) {
      setTimeout(() => this.#queueOpen(), ROOM_RETRY_MS);
      return;
    }
    this.#putOpen();
    this.#raw.commit(1, 1, 0);
  }

  /** Writes the second open's SQE (an open of the held fd's `/proc` link), once there is room. */
  #putOpen(): void {
    const open = this.#raw.sqe(this.#id, OPEN);
    prepOpenat(open, AT_FDCWD, this.#heldPath, this.#open.flags);
    open.setFlags(IOSQE_ASYNC);
    this.#openRes = undefined;
  }

  /** Whether the wait has not queued its operations yet (the ring had no room so far). */
  get waitingForRoom(): boolean {
    return !this.#settled && this.#openRes === null && this.#pollRes === null;
  }

  /** Gives up (an abort, the Uring closing): cancels what is in flight; rejects with `reason`. */
  stop(reason: unknown): void {
    if (this.#hasStopped) return;
    this.#hasStopped = true;
    this.#stopped = reason;
    if (this.#openRes === undefined) this.#raw.cancel(this.#id, OPEN);
    if (this.#pollRes === undefined) this.#raw.cancel(this.#id, POLL);
    this.#settle();
  }

  /** A CQE of one of the two operations. */
  complete(tag: number, res: number): void {
    if (tag === OPEN) {
      if (
        res < 0 && isInterruption(-res) && !this.#hasStopped && this.#pollRes === undefined &&
        this.#interrupts < MAX_INTERRUPTS
      ) {
        // Interrupted in its io-wq worker (the process was stopped and continued: Ctrl-Z, a
        // cgroup freeze), not cancelled: open(2) would be restarted. Taken as a failure, the poll
        // alone was left, and a writer that opens and waits for its reader never came through.
        this.#interrupts++;
        this.#openRes = null; // (not in flight until queued again)
        this.#queueOpen();
        return;
      }
      this.#openRes = res;
      // Opened: the poll is moot. (Failed: the poll alone ends the wait.)
      if (res >= 0 && this.#pollRes === undefined) this.#raw.cancel(this.#id, POLL);
    } else {
      this.#pollRes = res;
      // A writer has been: the held fd is the file, unless the second open gets there too.
      if (res >= 0 && this.#openRes === undefined) this.#raw.cancel(this.#id, OPEN);
    }
    this.#settle();
  }

  /** The Uring failed for good: no CQE will come. */
  fail(error: unknown): void {
    this.#openRes ??= -ECANCELED;
    this.#pollRes ??= -ECANCELED;
    if (!this.#hasStopped) {
      this.#hasStopped = true;
      this.#stopped = error;
    }
    this.#settle();
  }

  /** Settles once neither operation is in flight (or neither was queued). */
  #settle(): void {
    if (this.#settled || this.#openRes === undefined || this.#pollRes === undefined) return;
    this.#settled = true;
    this.#open.onSettled();
    if (this.#id >= 0) this.#raw.detach(this.#id);
    this.#open.signal?.removeEventListener("abort", this.#onAbort);
    const { heldFd } = this.#open;
    const openRes = this.#openRes, pollRes = this.#pollRes;
    if (this.#hasStopped) {
      if (openRes !== null && openRes >= 0) this.#sys.close(openRes);
      this.#sys.close(heldFd);
      this.#reject(this.#stopped);
    } else if (openRes !== null && openRes >= 0) {
      this.#sys.close(heldFd); // the new fd reads the same pipe
      this.#resolve(openRes);
    } else if (pollRes !== null && pollRes >= 0) {
      this.#resolve(heldFd);
    } else {
      this.#sys.close(heldFd);
      const res = openRes !== null && openRes !== -ECANCELED ? openRes : pollRes ?? -ECANCELED;
      this.#reject(new FifoOpenFailed(-res));
    }
  }
}

/**
 * One-block files copied by a linked chain of seven SQEs written straight into the copy's `Uring`
 * (through its internal `rawRing`): `openat(src)` → `openat(tmp, O_CREAT | O_EXCL)` → data →
 * `close` → `close` on two direct descriptors → `statx(src)`, every member but the last with
 * `IOSQE_CQE_SKIP_SUCCESS`, so a file costs seven SQE preps and one CQE, without the slots, result
 * objects and promises per member that `Uring.chain` spends. Each lane keeps its two file-table
 * indexes, its path and `statx` memory and a pipe from file to file.
 *
 * The closing `statx` (in the same kernel worker, no system call of ours) tells whether the source
 * is still the file the walk looked at (its inode number and birth time): the chain copies the
 * size that look found, so a file replaced in between (renamed over) would otherwise come out as
 * the first bytes of the new one, and look complete. Such a chain settles {@link SOURCE_REPLACED};
 * one whose `statx` found nothing settles {@link SOURCE_SUSPECT}, for the engine to look again on
 * its own thread.
 *
 * The data moves by `splice` through the lane's pipe (source → pipe → destination) when the
 * file fits in the pipe (64 KiB unless the user's pipe allowance is spent): the pages go from
 * the page cache into the pipe by reference and are copied once, into the destination, as
 * `sendfile` does. Otherwise (or without a pipe) by `read` into a buffer and `write` from it,
 * which copies every byte twice. Measured on 4,000 cached files of 1–64 KiB copied to tmpfs:
 * the io-wq workers' time in the data members fell from ~115 ms to ~95 ms.
 *
 * @module
 */

import {
  AT_FDCWD,
  AT_SYMLINK_NOFOLLOW,
  IORING_FEAT_CQE_SKIP,
  IOSQE_ASYNC,
  IOSQE_CQE_SKIP_SUCCESS,
  IOSQE_FIXED_FILE,
  IOSQE_IO_LINK,
  O_CREAT,
  O_EXCL,
  O_NOFOLLOW,
  O_RDONLY,
  O_WRONLY,
  SPLICE_F_FD_IN_FIXED,
  STATX,
  STATX_BTIME,
  STATX_INO,
  STATX_SIZE,
} from "./abi.ts";
import type { ChainResult } from "./chain.ts";
import {
  birthMs,
  DESCRIPTOR_SHARES,
  type FileIdentity,
  RESERVED_DESCRIPTORS,
  sameFile,
} from "./copy_engine.ts";
import { operationError } from "./deno_errors.ts";
import { errno } from "./errno.ts";
import { cstringInto } from "./memory.ts";
import { checkAccess } from "./permissions.ts";
import { closePipe, openPipe, type Pipe } from "./pipe.ts";
import { prepCloseDirect, prepOpenatDirect, prepRead, prepSplice, prepStatx, prepWrite } from "./prep.ts";
import { getSys, type Sys } from "./sys.ts";
import { giveBackKernelBytes, kernelBytes } from "./thread_memory.ts";
import { type RawClient, type RawRing, rawRing, type Uring } from "./uring.ts";

const ECANCELED = errno("ECANCELED");
const EINVAL = errno("EINVAL");
/** SQEs in one file's chain. */
export const MEMBERS = 7;
/** The chain's last member: `statx` of the source, after the data is in and both files closed. */
const CHECK = MEMBERS - 1;
/**
 * What a chain settles when it copied its file but the source is no longer the file it was asked
 * for (another file at the path): the copy may hold the first bytes of a file that replaced it.
 * Both files are closed; the destination is the caller's to remove.
 */
export const SOURCE_REPLACED = Symbol("source replaced");
/**
 * What a chain settles when its `statx` found nothing at the source's path (or failed): the
 * caller looks again on its own thread (a source removed or moved away after it was opened was
 * copied whole).
 */
export const SOURCE_SUSPECT = Symbol("source suspect");

/** A source nothing is known of: a chain copying it compares nothing. */
const UNKNOWN_SOURCE: FileIdentity = {};
/** Flags of every member but the last: linked, no CQE on success, issued from io-wq. */
const LINKED = IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS | IOSQE_ASYNC;
/** Tags are `lane * TAG_STRIDE + member`. */
export const TAG_STRIDE = 8;

/**
 * A chain that did not copy its file: every member's result (as `Uring.chain` gives them) and
 * the lane's direct descriptors, which stay the caller's to clean up until it calls `done()`.
 */
export interface SmallFailure {
  readonly results: ChainResult[];
  readonly input: number;
  readonly output: number;
  /** Gives the lane back (after whatever it left open was closed). */
  done(): void;
}

/**
 * How a chain ended: `null` when every member succeeded and the source is the file that was looked
 * at, {@link SOURCE_REPLACED} / {@link SOURCE_SUSPECT} when it copied its file but the source
 * changed (or may have), else what failed.
 */
export type SmallOutcome = SmallFailure | null | typeof SOURCE_REPLACED | typeof SOURCE_SUSPECT;

/** One chain in flight at a time: its file-table indexes, path memory and outcome. */
export interface Lane {
  /** Its index among the lanes of the {@link SmallFileChains} that has it (its chains' tags). */
  number: number;
  /** Direct descriptors (file-table indexes) of the source and destination, the lane's for good. */
  input: number;
  output: number;
  srcMemory: Uint8Array<ArrayBuffer> | null;
  dstMemory: Uint8Array<ArrayBuffer> | null;
  src: string;
  tmp: string;
  /** The lane's pipe, or null: a file up to its capacity is spliced through it. */
  pipe: Pipe | null;
  /** Whether the chain in flight moves its data by `splice` (else `read` + `write`). */
  spliced: boolean;
  /** Bytes the chain in flight copies. */
  size: number;
  /** The buffer the read fills and the write drains (held until the chain's CQE); null when spliced. */
  view: Uint8Array | null;
  /** Where the closing `statx` puts the source's inode (made on the lane's first chain). */
  statx: Uint8Array<ArrayBuffer> | null;
  /** The same memory as 32-bit words. */
  statxWords: Uint32Array<ArrayBuffer> | null;
  /** Who the source was when it was looked at (no inode number: not compared). */
  source: FileIdentity;
  /** Settles the file with its {@link SmallOutcome}. */
  settle: ((outcome: SmallOutcome) => void) | null;
  fail: ((error: unknown) => void) | null;
}

/** A new lane, number `number` of its chains, on file-table indexes `input` and `output`, without a pipe. */
export function makeLane(number: number, input: number, output: number): Lane {
  return {
    number,
    input,
    output,
    srcMemory: null,
    dstMemory: null,
    src: "",
    tmp: "",
    pipe: null,
    spliced: false,
    size: 0,
    view: null,
    statx: null,
    statxWords: null,
    source: UNKNOWN_SOURCE,
    settle: null,
    fail: null,
  };
}

/** Gives a free lane's `statx` memory back (see `thread_memory.ts`); a later chain takes new. */
function letGoOfStatx(lane: Lane): void {
  if (lane.statx !== null) giveBackKernelBytes(lane.statx);
  lane.statx = lane.statxWords = null;
}

/** Where `statx` puts the inode number, the birth time and its mask, in 32-bit words. */
const INO_WORD = STATX.ino / 4, BTIME_WORD = STATX.btime / 4, MASK_WORD = STATX.mask / 4;

/**
 * What the `statx` in `words` says of the source `id` (see `sameFile`): `null` when it is the same
 * file, else {@link SOURCE_REPLACED}. (A path that names another file for each thread,
 * `/proc/thread-self/...`, reports a size of 0 and never comes here: such files are read to
 * their end.)
 */
function checkSource(words: Uint32Array, id: FileIdentity): null | typeof SOURCE_REPLACED {
  const ino = words[INO_WORD] + words[INO_WORD + 1] * 0x1_0000_0000;
  if ((words[MASK_WORD] & STATX_BTIME) === 0) return sameFile(id, ino, 0) ? null : SOURCE_REPLACED;
  const sec = words[BTIME_WORD] + (words[BTIME_WORD + 1] | 0) * 0x1_0000_0000, nsec = words[BTIME_WORD + 2];
  return sameFile(id, ino, birthMs(sec, nsec), nsec) ? null : SOURCE_REPLACED;
}

/**
 * Two indexes of `uring`'s registered file table, for a chain's source and destination; null
 * (nothing left reserved) when the table is full or cannot be registered (a hard
 * `RLIMIT_NOFILE` below its size): the file then goes the block way, with plain descriptors.
 */
export function reserveFilePair(uring: Uring): [number, number] | null {
  let input = -1;
  try {
    input = uring.reserveFileIndex();
    const output = input < 0 ? -1 : uring.reserveFileIndex();
    if (output >= 0) return [input, output];
  } catch {
    // the table could not be registered
  }
  if (input >= 0) uring.releaseFileIndex(input);
  return null;
}

/** The one-block chains of one copy, on its `Uring` (see the module notes). */
export class SmallFileChains implements RawClient {
  readonly #uring: Uring;
  readonly #raw: RawRing;
  readonly #id: number;
  readonly #lanes: Lane[] = [];
  readonly #free: number[] = [];
  readonly #sys: Sys;
  /**
   * False once a pipe could not be made (no descriptors left) or a splice failed with `EINVAL`
   * (a file system without splice support, on older kernels): the lanes then read and write.
   */
  #pipes = true;
  /** Capacity of the lanes' pipes (the last one made), 0 before the first. */
  #capacity = 0;
  /** A pipe made by {@link SmallFileChains.splices} to learn the capacity, for the next lane. */
  #spare: Pipe | null = null;
  #spliced = 0;
  #failed: unknown = undefined;
  /** Most pipes the lanes may hold at once (each is two file descriptors). */
  readonly #maxPipes: number;
  /** Pipes open now (the spare included). */
  #openPipes = 0;
  /** Where free lanes come from first and go back to at the end (a shared ring's), if anywhere. */
  readonly #shelf: LaneShelf | undefined;

  /**
   * Attaches to `uring` (throws if it is closed); `splice: false` reads and writes every file.
   * At most `maxPipes` lanes have a pipe at once (the others read and write): a process with few
   * file descriptors (`ulimit -n`) needs them for the files themselves. `shelf`: lanes to take
   * before making any, and to leave the free ones to at the end (the same Uring's).
   */
  constructor(uring: Uring, splice = true, maxPipes = Infinity, shelf?: LaneShelf) {
    this.#uring = uring;
    this.#maxPipes = maxPipes;
    this.#shelf = shelf;
    this.#pipes = splice && maxPipes >= 1;
    this.#raw = rawRing(uring);
    this.#sys = getSys(uring.ring.backend);
    this.#id = this.#raw.attach(this);
  }

  /**
   * Whether the kernel can post one CQE per chain (5.17) and the ring is not a polled one (whose
   * opens and closes run on the Uring's plain ring); otherwise use `Uring.chain`.
   */
  static supported(uring: Uring): boolean {
    return uring.ring.hasFeature(IORING_FEAT_CQE_SKIP) && !uring.ring.iopoll;
  }

  /**
   * Queues the chain that copies `view.byteLength` bytes of `src` into the new file `tmp`
   * (created with `perm`, exclusively), by splice when the lane's pipe holds them, else by read
   * into `view` and write from it. Resolves with `null` when every member succeeded, else with a
   * {@link SmallFailure}; rejects when Deno's permissions refuse a path. Returns `undefined`,
   * queueing nothing, when the ring has no room right now, a file-table index is not to be had,
   * or the Uring failed: `Uring.chain` then does it. `srcFlags`: how the source is opened
   * (`O_RDONLY`, with `O_NOFOLLOW` for a file a tree's walk looked at with `lstat`). `id`: who
   * the source was when it was looked at; a chain that finds another file there at the end
   * settles {@link SOURCE_REPLACED} (nothing known of it: not compared).
   */
  start(
    src: string,
    tmp: string,
    perm: number,
    view: Uint8Array,
    srcFlags: number = O_RDONLY,
    id: FileIdentity = UNKNOWN_SOURCE,
  ): Promise<SmallOutcome> | undefined {
    return this.#start(src, srcFlags, tmp, perm, view.byteLength, view, id);
  }

  /**
   * {@link SmallFileChains.start} for a chain that splices its `size` bytes and so needs no
   * buffer (see {@link SmallFileChains.splices}). Returns `undefined`, queueing nothing, also when
   * the lane it would use cannot splice them (splicing is off, or its pipe is smaller): the caller
   * then takes a buffer and calls `start`.
   */
  startSpliced(
    src: string,
    tmp: string,
    perm: number,
    size: number,
    srcFlags: number = O_RDONLY,
    id: FileIdentity = UNKNOWN_SOURCE,
  ): Promise<SmallOutcome> | undefined {
    return this.#start(src, srcFlags, tmp, perm, size, null, id);
  }

  /**
   * Whether a chain for `size` bytes would move them by splice now, needing no buffer: splicing
   * is on and the lanes' pipes hold that much. Before the first lane has a pipe it makes one (for
   * that lane) to learn the capacity.
   */
  splices(size: number): boolean {
    if (!this.#pipes || this.#failed !== undefined) return false;
    if (this.#capacity === 0) this.#capacity = this.#shelf?.pipeCapacity ?? 0; // (a kept lane's)
    if (this.#capacity === 0) {
      const pipe = openPipe(this.#sys);
      if (pipe === null) {
        this.#pipes = false;
        return false;
      }
      this.#openPipes++;
      this.#spare = pipe;
      this.#capacity = pipe.capacity;
    }
    return size <= this.#capacity;
  }

  #start(
    src: string,
    flags: number,
    tmp: string,
    perm: number,
    size: number,
    view: Uint8Array | null,
    source: FileIdentity,
  ): Promise<SmallOutcome> | undefined {
    const raw = this.#raw;
    if (this.#failed !== undefined || !raw.room(MEMBERS, 1)) return undefined;
    const lane = this.#lane();
    if (lane === null) return undefined;
    if (lane.pipe === null && this.#pipes) this.#openPipe(lane);
    const pipe = this.#pipes ? lane.pipe : null;
    const spliced = pipe !== null && size <= pipe.capacity;
    if (!spliced && view === null) {
      this.#free.push(lane.number); // no buffer to read into: the caller brings one
      return undefined;
    }
    const denied = checkAccess("open", "read", src) ?? checkAccess("open", "write", tmp);
    if (denied !== null) {
      this.#free.push(lane.number);
      return Promise.reject(denied);
    }
    let srcPath: Uint8Array<ArrayBuffer>, dstPath: Uint8Array<ArrayBuffer>;
    try {
      srcPath = cstringInto(src, lane.srcMemory);
      dstPath = cstringInto(tmp, lane.dstMemory);
    } catch (e) {
      this.#free.push(lane.number);
      return Promise.reject(e);
    }
    if (srcPath.buffer !== lane.srcMemory?.buffer) lane.srcMemory = new Uint8Array(srcPath.buffer);
    if (dstPath.buffer !== lane.dstMemory?.buffer) lane.dstMemory = new Uint8Array(dstPath.buffer);
    lane.src = src;
    lane.tmp = tmp;
    lane.size = size;
    lane.view = view;
    lane.spliced = spliced;
    lane.source = source;
    if (lane.statx === null) {
      // Written by an io-wq worker, which a terminated Worker's thread may outlive (see
      // thread_memory.ts). (The paths are copied in as the chain is submitted.)
      const statx = kernelBytes(this.#uring.ring, STATX_SIZE);
      lane.statx = statx;
      lane.statxWords = new Uint32Array(statx.buffer, statx.byteOffset, STATX_SIZE / 4);
    }
    const id = this.#id, tag = lane.number * TAG_STRIDE;
    // The opens install into the lane's direct descriptors.
    prepOpenatDirect(raw.sqe(id, tag), AT_FDCWD, srcPath, flags, 0, lane.input).setFlags(LINKED);
    prepOpenatDirect(raw.sqe(id, tag + 1), AT_FDCWD, dstPath, O_WRONLY | O_CREAT | O_EXCL, perm, lane.output)
      .setFlags(LINKED);
    if (spliced) {
      // Source (direct descriptor: SPLICE_F_FD_IN_FIXED) → pipe → destination (IOSQE_FIXED_FILE).
      prepSplice(raw.sqe(id, tag + 2), lane.input, 0, pipe!.write, -1, size, SPLICE_F_FD_IN_FIXED)
        .setFlags(LINKED);
      prepSplice(raw.sqe(id, tag + 3), pipe!.read, -1, lane.output, 0, size).setFlags(
        LINKED | IOSQE_FIXED_FILE,
      );
    } else {
      prepRead(raw.sqe(id, tag + 2), lane.input, view!, 0).setFlags(LINKED | IOSQE_FIXED_FILE);
      prepWrite(raw.sqe(id, tag + 3), lane.output, view!, 0).setFlags(LINKED | IOSQE_FIXED_FILE);
    }
    prepCloseDirect(raw.sqe(id, tag + 4), lane.input).setFlags(LINKED);
    prepCloseDirect(raw.sqe(id, tag + 5), lane.output).setFlags(LINKED);
    // Is the source still the file that was looked at? (Looked at as the open did: a final
    // symlink followed or not.) Its inode number and birth time are all that is asked for.
    const nofollow = (flags & O_NOFOLLOW) !== 0 ? AT_SYMLINK_NOFOLLOW : 0;
    const check = raw.sqe(id, tag + CHECK);
    prepStatx(check, AT_FDCWD, srcPath, nofollow, STATX_INO | STATX_BTIME, lane.statx).setFlags(IOSQE_ASYNC);
    raw.commit(MEMBERS, 1, 2);
    return new Promise((resolve, reject) => {
      lane.settle = resolve;
      lane.fail = reject;
    });
  }

  /** Files copied so far whose data went by `splice` through a lane's pipe. */
  get splicedFiles(): number {
    return this.#spliced;
  }

  /** A free lane with its file-table indexes, or null. */
  #lane(): Lane | null {
    const free = this.#free.pop();
    if (free !== undefined) return this.#lanes[free];
    const kept = this.#shelf?.take();
    if (kept !== undefined) {
      kept.number = this.#lanes.length;
      this.#lanes.push(kept);
      if (kept.pipe !== null) {
        this.#openPipes++;
        this.#capacity = kept.pipe.capacity;
      }
      return kept;
    }
    const pair = reserveFilePair(this.#uring);
    if (pair === null) return null; // Uring.chain (and then the block path) will not fare better
    const lane = makeLane(this.#lanes.length, pair[0], pair[1]);
    this.#lanes.push(lane);
    return lane;
  }

  /**
   * Gives `lane` a pipe unless `maxPipes` are open (the lane then reads and writes); on failure
   * (no descriptors left) every lane reads and writes from now on.
   */
  #openPipe(lane: Lane): void {
    if (this.#spare !== null) {
      lane.pipe = this.#spare;
      this.#spare = null;
      return;
    }
    if (this.#openPipes >= this.#maxPipes) return;
    lane.pipe = openPipe(this.#sys);
    if (lane.pipe === null) {
      this.#pipes = false;
      return;
    }
    this.#openPipes++;
    this.#capacity = lane.pipe.capacity;
  }

  /** Closes the pipe made to learn the capacity, if no lane has taken it. */
  #closeSpare(): void {
    if (this.#spare === null) return;
    closePipe(this.#sys, this.#spare);
    this.#openPipes--;
    this.#spare = null;
  }

  /** Closes `lane`'s pipe (a failed splice may have left bytes in it); the next chain makes a new one. */
  #closePipe(lane: Lane): void {
    if (lane.pipe === null) return;
    closePipe(this.#sys, lane.pipe);
    lane.pipe = null;
    this.#openPipes--;
  }

  /** The chain's one CQE: the last member's, or that of the member that failed or came up short. */
  complete(tag: number, res: number): void {
    const lane = this.#lanes[Math.floor(tag / TAG_STRIDE)];
    const member = tag % TAG_STRIDE;
    const settle = lane.settle!;
    lane.settle = lane.fail = null;
    if (member === CHECK) {
      // The data is in and both files are closed: the check alone decides.
      lane.view = null;
      this.#free.push(lane.number);
      if (lane.spliced) this.#spliced++; // (the data went by splice either way)
      const source = lane.source;
      const verdict = !source.ino ? null : res < 0 ? SOURCE_SUSPECT : checkSource(lane.statxWords!, source);
      // Both files were closed: settle once the kernel has let go of them (the destination may be
      // run, renamed or locked right after; under SQPOLL it could still be open for a moment).
      this.#raw.barrier(() => settle(verdict));
      return;
    }
    const results = this.#results(lane, member, res);
    if (lane.spliced && (member === 2 || member === 3)) {
      this.#closePipe(lane);
      if (res === -EINVAL) this.#pipes = false; // the block path redoes this file; no more splices
    }
    lane.view = null;
    settle({
      results,
      input: lane.input,
      output: lane.output,
      done: () => this.#free.push(lane.number),
    });
  }

  /**
   * The results of the copying members (all but the check) when member `failed` posted `res`
   * (the ones before it succeeded), as `Uring.chain` would give them.
   */
  #results(lane: Lane, failed: number, res: number): ChainResult[] {
    const results: ChainResult[] = [];
    const size = lane.size;
    for (let i = 0; i < CHECK; i++) {
      if (i < failed) results.push({ ok: true, value: i === 2 || i === 3 ? size : 0 });
      else if (i === failed && res >= 0) results.push({ ok: true, value: res });
      else results.push({ ok: false, error: this.#error(lane, i, i === failed ? -res : ECANCELED) });
    }
    return results;
  }

  /** The error `Uring.chain` would give member `i` of `lane`'s chain. */
  #error(lane: Lane, i: number, errno: number): Error {
    switch (i) {
      case 0:
        return operationError("open", errno, lane.src);
      case 1:
        return operationError("open", errno, lane.tmp);
      default: {
        const index = i === 2 || i === 4 ? lane.input : lane.output;
        const op = i === 2 || i === 3 ? (lane.spliced ? "splice" : i === 2 ? "read" : "write") : "close";
        return operationError(op, errno, null, null, undefined, `direct descriptor ${index}`);
      }
    }
  }

  /**
   * Cancels every chain in flight (the copy stopped): each settles as a failed chain once its
   * running member is cancelled; one blocked for good (opening a FIFO that replaced a source
   * after the walk looked at it) would otherwise hold the copy for ever.
   */
  cancel(): void {
    for (const lane of this.#lanes) {
      if (lane.settle === null) continue;
      for (let member = 0; member < MEMBERS; member++) {
        this.#raw.cancel(this.#id, lane.number * TAG_STRIDE + member);
      }
    }
  }

  /** The Uring failed for good: every chain in flight rejects with `error`. */
  fail(error: unknown): void {
    this.#failed = error;
    for (const lane of this.#lanes) {
      const fail = lane.fail;
      if (fail === null) continue;
      lane.settle = lane.fail = null;
      lane.view = null;
      fail(error);
    }
  }

  /**
   * Gives back descriptors (the process ran out): closes the pipes of the lanes that are not in
   * flight and the spare, and makes no new ones from now on (the lanes read and write). Returns
   * how many pipes it closed.
   */
  shedPipes(): number {
    const before = this.#openPipes;
    this.#pipes = false;
    for (const number of this.#free) this.#closePipe(this.#lanes[number]);
    this.#closeSpare();
    return before - this.#openPipes + (this.#shelf?.shedPipes() ?? 0);
  }

  /**
   * Gives the lanes' file-table indexes back once no chain is in flight (each chain closed what
   * it opened, or its failure was cleaned up) and detaches from the Uring.
   */
  close(): void {
    this.#raw.detach(this.#id);
    let lanes = this.#lanes;
    const shelf = this.#shelf;
    const free = new Set(this.#free);
    if (shelf !== undefined && this.#failed === undefined && !this.#uring.closed) {
      // A free lane (its chain settled, whatever it left open cleaned up) goes to the shelf with
      // its pipe, which is empty: a chain whose splice failed or came up short closed it.
      for (const number of free) shelf.give(lanes[number]);
      lanes = lanes.filter((lane) => !free.has(lane.number));
    }
    for (const lane of lanes) {
      this.#closePipe(lane);
      if (free.has(lane.number)) letGoOfStatx(lane); // (a lane in flight keeps it: the kernel may write it)
    }
    this.#closeSpare();
    if (this.#failed !== undefined || this.#uring.closed) return;
    for (const lane of lanes) {
      this.#uring.releaseFileIndex(lane.input);
      this.#uring.releaseFileIndex(lane.output);
    }
  }
}

/**
 * Free one-block lanes kept between the copies on one ring (the main thread's shared copy ring,
 * and the CLI's), with their file-table indexes, pipe and memory, up to `max`: a lane made per copy (two indexes reserved,
 * a pipe made with `pipe2` and `F_GETPIPE_SZ`, path and `statx` memory, then all given back)
 * cost ~20% of 4,000 one-block `copyFile`s 32 at a time. A lane the shelf has no room for, and
 * every kept lane when it closes, gives its indexes back and closes its pipe.
 */
export class LaneShelf {
  readonly #uring: Uring;
  readonly #sys: Sys;
  readonly #max: number;
  /** Most pipes the kept lanes hold (see the constructor). */
  readonly #maxPipes: number;
  readonly #lanes: Lane[] = [];
  /** Pipes the kept lanes hold now. */
  #pipes = 0;
  #closed = false;

  /**
   * Keeps up to `max` lanes of `uring`, and their pipes within one copy's share of the file
   * limit (`RLIMIT_NOFILE` less {@link RESERVED_DESCRIPTORS}, an eighth of it: 2 pipes under
   * `ulimit -n 80`, all 32 under 1024); a lane beyond that is kept without its pipe. Kept pipes
   * are descriptors the program no longer sees in use: 64 of them made its own opens, and a lone
   * copy after the others, fail with EMFILE under `ulimit -n 80`.
   */
  constructor(uring: Uring, max: number) {
    this.#uring = uring;
    this.#sys = getSys(uring.ring.backend);
    this.#max = max;
    const limit = this.#sys.fileLimit();
    this.#maxPipes = limit < 0
      ? max
      : DESCRIPTOR_SHARES.chainPipes(Math.max(0, limit - RESERVED_DESCRIPTORS));
  }

  /** A kept lane (its `number` for the taker to set), or undefined. */
  take(): Lane | undefined {
    const lane = this.#lanes.pop();
    if (lane?.pipe != null) this.#pipes--;
    return lane;
  }

  /** Keeps free `lane` for a later {@link LaneShelf.take}; when full or closed, lets it go. */
  give(lane: Lane): void {
    if (this.#closed || this.#lanes.length >= this.#max) {
      this.#letGo(lane);
      return;
    }
    if (lane.pipe !== null) {
      if (this.#pipes < this.#maxPipes) {
        this.#pipes++;
      } else {
        closePipe(this.#sys, lane.pipe);
        lane.pipe = null;
      }
    }
    this.#lanes.push(lane);
  }

  /** The capacity of the next kept lane's pipe, 0 when it has none (or none is kept). */
  get pipeCapacity(): number {
    return this.#lanes.at(-1)?.pipe?.capacity ?? 0;
  }

  /** Closes the kept lanes' pipes (the process ran out of descriptors); returns how many. */
  shedPipes(): number {
    let closed = 0;
    for (const lane of this.#lanes) {
      if (lane.pipe === null) continue;
      closePipe(this.#sys, lane.pipe);
      lane.pipe = null;
      closed++;
    }
    this.#pipes = 0;
    return closed;
  }

  /** Lets every kept lane go; any given later goes at once. */
  close(): void {
    this.#closed = true;
    this.#pipes = 0;
    for (const lane of this.#lanes.splice(0)) this.#letGo(lane);
  }

  /** How many lanes are kept now. */
  get size(): number {
    return this.#lanes.length;
  }

  /**
   * Closes `lane`'s pipe, gives its `statx` memory back, and its indexes (unless the Uring closed:
   * they went with it).
   */
  #letGo(lane: Lane): void {
    if (lane.pipe !== null) closePipe(this.#sys, lane.pipe);
    lane.pipe = null;
    letGoOfStatx(lane);
    if (this.#uring.closed) return;
    this.#uring.releaseFileIndex(lane.input);
    this.#uring.releaseFileIndex(lane.output);
  }
}

/**
 * `UringFile`: a file opened through a `Uring`, with positional reads and writes whose promises
 * settle from io_uring completions. A file opened with `direct: true` (O_DIRECT) knows the
 * alignment its device needs and refuses misaligned requests before they reach the kernel; one
 * opened with `fixed: true` is named by its index in the ring's registered file table.
 *
 * @module
 */

import { signalOption } from "./abort.ts";
import { operationError } from "./deno_errors.ts";
import { checkDirectAlignment, type DirectAlignment } from "./direct.ts";
import { errno } from "./errno.ts";
import { refusedArgument } from "./errors.ts";
import { bufferOf, byteLengthOf, byteOffsetOf, checkBuffer, checkOffset, isDetached } from "./memory.ts";
import type { Statx } from "./structs.ts";

/** Options every operation takes. */
export interface OpOptions {
  /** Aborting cancels the operation (`IORING_OP_ASYNC_CANCEL`); its promise rejects with the reason. */
  signal?: AbortSignal;
}

/** Options of `Uring.chain`. */
export interface ChainOptions extends OpOptions {
  /**
   * Issue every member from the kernel's io-wq worker threads (`IOSQE_ASYNC`, 5.6) instead of
   * trying each inline first. Default false.
   */
  async?: boolean;
}

/**
 * What a `UringFile` asks of the `Uring` that opened it (internal). Each call gets the file, for
 * its fd, its registered-file index (`fixedIndex`) and its path (named in error messages).
 */
export interface FileOps {
  /** `pread`. */
  read(
    file: UringFile,
    buf: ArrayBufferView,
    position: number | bigint,
    signal: unknown,
  ): Promise<number>;
  /** `pwrite`. */
  write(
    file: UringFile,
    buf: ArrayBufferView,
    position: number | bigint,
    signal: unknown,
  ): Promise<number>;
  /** `fsync` / `fdatasync`. */
  fsync(file: UringFile, datasync: boolean, signal: unknown): Promise<void>;
  /** `ftruncate`. */
  ftruncate(file: UringFile, length: number | bigint, signal: unknown): Promise<void>;
  /** `statx(fd, "", AT_EMPTY_PATH)`, with `STATX_DIOALIGN` asked for too. */
  fstat(file: UringFile, signal: unknown): Promise<Statx>;
  /** Closes the file's fd (and frees its registered-file index) and forgets the file. */
  close(file: UringFile): Promise<void>;
}

function closedError(file: UringFile): Error {
  return new Deno.errors.BadResource(`UringFile '${file.path}' (fd ${file.fd}) is closed`);
}

const EBADF = errno("EBADF");
const EINVAL = errno("EINVAL");

/**
 * The kernel's answer to a read of a file opened for writing only, or a write of one opened for
 * reading only (`EBADF`), or a truncate of one opened for reading only (`EINVAL`, as `ftruncate`
 * says), given before the request reaches it, with how to open it instead.
 */
function notOpenedFor(file: UringFile, op: "read" | "write" | "ftruncate"): Error {
  const hint = op === "read"
    ? "the file was opened for writing only (open it with read: true as well)"
    : "the file was opened for reading only (open it with write: true)";
  return operationError(op, op === "ftruncate" ? EINVAL : EBADF, file.path, null, file.fd, hint);
}

/**
 * The most one read or write of `readFull`/`writeAll` asks for: 1 GiB (a single call is limited
 * to 4 GiB - 1 bytes, and the kernel moves at most 2 GiB - 4 KiB; 1 GiB is a multiple of every
 * O_DIRECT alignment).
 */
const MAX_PIECE = 1 << 30;

/**
 * `buf`'s length, for `readFull`/`writeAll` after a piece completed: a DataView whose resizable
 * buffer shrank below it since then throws, named as the operation's other refusals are.
 */
function lengthNow(buf: ArrayBufferView, op: "read" | "write"): number {
  try {
    return byteLengthOf(buf);
  } catch (e) {
    throw refusedArgument(op, e);
  }
}

/**
 * The part of `buf` from `done` on, at most {@link MAX_PIECE} bytes: `buf` itself when that is
 * all of it (and anything that is not a live view, for the read or write to refuse as it would).
 */
function piece(buf: ArrayBufferView, done: number): ArrayBufferView {
  if (!ArrayBuffer.isView(buf) || isDetached(bufferOf(buf))) return buf;
  let length: number;
  try {
    length = byteLengthOf(buf);
  } catch {
    return buf; // a DataView outside its shrunk buffer: the read or write refuses it
  }
  if (done === 0 && length <= MAX_PIECE) return buf;
  return new Uint8Array(bufferOf(buf), byteOffsetOf(buf) + done, Math.min(length - done, MAX_PIECE));
}

function advance(position: number | bigint, n: number): number | bigint {
  return typeof position === "bigint" ? position + BigInt(n) : position + n;
}

/** Sets a file's O_DIRECT alignment and registered-file index (internal: `Uring.open` only). */
export let configureFile: (file: UringFile, alignment: DirectAlignment | null, fixedIndex: number) => void;

/**
 * A file opened with `Uring.open`. It owns its fd: `close()` closes it (closing twice is
 * harmless), and closing the `Uring` closes every file it opened that is still open. Every
 * method returns a promise settled by the kernel's completion. Since 5.11 (`Uring`).
 *
 * A file opened with `direct: true` reads and writes with O_DIRECT: `readAt`/`writeAt` (and
 * `readFull`/`writeAll`) reject with an `AlignmentError` naming the required alignment,
 * before anything is submitted, unless the buffer's address, its length and the file position
 * are multiples of {@link UringFile.alignment}.
 */
export class UringFile implements AsyncDisposable {
  /** The file descriptor (owned by this object until `close()`). */
  readonly fd: number;
  /** The path the file was opened with. */
  readonly path: string;
  readonly #ops: FileOps;
  readonly #access: "read" | "write" | "both";
  #closed = false;
  #closing: Promise<void> | null = null;
  #alignment: DirectAlignment | null = null;
  #fixedIndex = -1;

  static {
    configureFile = (file, alignment, fixedIndex) => {
      file.#alignment = alignment;
      file.#fixedIndex = fixedIndex;
    };
  }

  /**
   * Made by `Uring.open` (internal). `access` is what the file was opened for (its `O_ACCMODE`):
   * a read of a file opened for writing only, or a write of one opened for reading only, is
   * refused before it reaches the kernel.
   */
  constructor(ops: FileOps, fd: number, path: string, access: "read" | "write" | "both" = "both") {
    this.#ops = ops;
    this.fd = fd;
    this.path = path;
    this.#access = access;
  }

  /** Whether the file was opened for reading (`read: true`, or by default). */
  get readable(): boolean {
    return this.#access !== "write";
  }

  /** Whether the file was opened for writing (`write: true` or `append: true`). */
  get writable(): boolean {
    return this.#access !== "read";
  }

  /** Whether `close()` was called (or the `Uring` that opened the file was closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the file was opened with O_DIRECT (`direct: true`). */
  get direct(): boolean {
    return this.#alignment !== null;
  }

  /**
   * What O_DIRECT needs of this file's requests (buffer address; file offset and length), from
   * `statx(STATX_DIOALIGN)` (6.1+) or 4096 when the kernel does not say; `null` unless the file
   * was opened with `direct: true`.
   */
  get alignment(): DirectAlignment | null {
    return this.#alignment;
  }

  /** Whether SQEs name the file by its index in the ring's registered file table (`fixed: true`). */
  get fixed(): boolean {
    return this.#fixedIndex >= 0;
  }

  /** The file's index in the ring's registered file table, or -1 (internal: the `Uring` uses it). */
  get fixedIndex(): number {
    return this.#fixedIndex;
  }

  /**
   * Marks the file closed without closing its fd (internal: the `Uring` closes it); `closed`,
   * when given, settles once the fd is closed, and `close()` returns it.
   */
  detach(closed?: Promise<void>): void {
    this.#closed = true;
    if (closed !== undefined && this.#closing === null) this.#closing = closed;
  }

  /**
   * With O_DIRECT, the `AlignmentError` a request (`op`) at `position` into `buf` would get, or
   * the error for an argument that is no buffer or position at all (as without O_DIRECT).
   */
  #misaligned(op: string, buf: ArrayBufferView, position: number | bigint): unknown {
    if (this.#alignment === null) return undefined;
    try {
      checkBuffer(buf);
      checkOffset(position, "position");
      checkDirectAlignment(buf, position, this.#alignment);
      return undefined;
    } catch (e) {
      return refusedArgument(op, e);
    }
  }

  /**
   * Reads into `buf` from byte `position`; resolves with the bytes read: 0 at end of file, and
   * possibly fewer than asked (see {@link UringFile.readFull}). With O_DIRECT, a misaligned
   * request rejects with an `AlignmentError`.
   */
  readAt(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    const signal = signalOption(options); // first: a getter there may close the file
    if (this.#closed) return Promise.reject(closedError(this));
    if (this.#access === "write") return Promise.reject(notOpenedFor(this, "read"));
    const misaligned = this.#misaligned("read", buf, position);
    if (misaligned !== undefined) return Promise.reject(misaligned);
    return this.#ops.read(this, buf, position, signal);
  }

  /**
   * Writes `buf` at byte `position`; resolves with the bytes written (possibly fewer). With
   * O_DIRECT, a misaligned request rejects with an `AlignmentError`.
   */
  writeAt(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    const signal = signalOption(options); // first: a getter there may close the file
    if (this.#closed) return Promise.reject(closedError(this));
    if (this.#access === "read") return Promise.reject(notOpenedFor(this, "write"));
    const misaligned = this.#misaligned("write", buf, position);
    if (misaligned !== undefined) return Promise.reject(misaligned);
    return this.#ops.write(this, buf, position, signal);
  }

  /**
   * Reads until `buf` is full or the file ends, looping over short reads; resolves with the
   * bytes read (less than `buf.byteLength` only at end of file). With O_DIRECT, a read that
   * stops short of an alignment boundary has reached the end of the file. A buffer of more than
   * 1 GiB is read 1 GiB at a time (so it may be larger than one read's 4 GiB limit).
   */
  async readFull(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    let done = await this.readAt(piece(buf, 0), position, options);
    const total = lengthNow(buf, "read"); // a view: readAt checked it
    const unit = this.#alignment?.offset ?? 1;
    while (done > 0 && done < total && done % unit === 0) {
      const n = await this.readAt(piece(buf, done), advance(position, done), options);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /**
   * Writes all of `buf` at `position`, looping over short writes. Rejects with
   * `Deno.errors.WriteZero` if the kernel accepts no bytes at all (and, with O_DIRECT, with an
   * `AlignmentError` if a short write leaves a misaligned rest). A buffer of more than 1 GiB is
   * written 1 GiB at a time (so it may be larger than one write's 4 GiB limit).
   */
  async writeAll(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<void> {
    // At least one writeAt, as readFull makes one readAt: it checks the file, buffer and
    // position (an empty buffer included) as a single write would.
    let done = 0;
    let total = 0;
    do {
      const n = await this.writeAt(piece(buf, done), advance(position, done), options);
      total = lengthNow(buf, "write"); // a view: writeAt checked it
      if (n === 0 && total > 0) {
        throw new Deno.errors.WriteZero(
          `write '${this.path}': wrote 0 bytes at ${advance(position, done)} (${total - done} left)`,
        );
      }
      done += n;
    } while (done < total);
  }

  /** The file's metadata (`statx` on the fd). */
  stat(options?: OpOptions): Promise<Statx> {
    const signal = signalOption(options); // first: a getter there may close the file
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.fstat(this, signal);
  }

  /** Flushes the file to storage (`fsync`; `datasync`: `fdatasync`). */
  sync(options?: OpOptions & { datasync?: boolean }): Promise<void> {
    // The options first: a getter there may close the file.
    let datasync: boolean;
    try {
      datasync = options?.datasync === true;
    } catch (e) {
      return Promise.reject(e); // a getter's throw: the operation rejects with it
    }
    const signal = signalOption(options);
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.fsync(this, datasync, signal);
  }

  /** Sets the file's length (`ftruncate`, Linux 6.9+). */
  truncate(length: number | bigint, options?: OpOptions): Promise<void> {
    const signal = signalOption(options); // first: a getter there may close the file
    if (this.#closed) return Promise.reject(closedError(this));
    if (this.#access === "read") return Promise.reject(notOpenedFor(this, "ftruncate"));
    return this.#ops.ftruncate(this, length, signal);
  }

  /**
   * Closes the fd, first cancelling the file's operations the kernel still holds (they reject
   * with `ECANCELED`, "the file was closed", unless they complete first), as Deno's
   * `FsFile.close()` does: those given its fd, a `splice` into it, and every chain with a member
   * on it (cancelled whole; its members' results say `ECANCELED`). The fd is closed once they
   * have settled, so none of them can run on another file given the same number; resolves then,
   * and under SQPOLL only once the kernel has let go of the file (see `Uring.close`).
   * Idempotent: later calls return the first call's promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#closed) return this.#closing = Promise.resolve();
    this.#closed = true;
    return this.#closing = this.#ops.close(this);
  }

  /** Same as {@link UringFile.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

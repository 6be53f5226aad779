/**
 * `UringFile`: a file opened through a `Uring`, with positional reads and writes whose promises
 * settle from io_uring completions.
 *
 * @module
 */

import type { Statx } from "./structs.ts";

/** Options every operation takes. */
export interface OpOptions {
  /** Aborting cancels the operation (`IORING_OP_ASYNC_CANCEL`); its promise rejects with the reason. */
  signal?: AbortSignal;
}

/**
 * What a `UringFile` asks of the `Uring` that opened it (internal; `path` names the file in
 * error messages).
 */
export interface FileOps {
  /** `pread`. */
  read(
    fd: number,
    buf: ArrayBufferView,
    position: number | bigint,
    signal: AbortSignal | undefined,
    path: string,
  ): Promise<number>;
  /** `pwrite`. */
  write(
    fd: number,
    buf: ArrayBufferView,
    position: number | bigint,
    signal: AbortSignal | undefined,
    path: string,
  ): Promise<number>;
  /** `fsync` / `fdatasync`. */
  fsync(fd: number, datasync: boolean, signal: AbortSignal | undefined, path: string): Promise<void>;
  /** `ftruncate`. */
  ftruncate(
    fd: number,
    length: number | bigint,
    signal: AbortSignal | undefined,
    path: string,
  ): Promise<void>;
  /** `statx(fd, "", AT_EMPTY_PATH)`. */
  fstat(fd: number, signal: AbortSignal | undefined, path: string): Promise<Statx>;
  /** Closes the file's fd and forgets the file. */
  close(file: UringFile): Promise<void>;
}

function closedError(file: UringFile): Error {
  return new Deno.errors.BadResource(`UringFile '${file.path}' (fd ${file.fd}) is closed`);
}

function rest(buf: ArrayBufferView, done: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + done, buf.byteLength - done);
}

function advance(position: number | bigint, n: number): number | bigint {
  return typeof position === "bigint" ? position + BigInt(n) : position + n;
}

/**
 * A file opened with `Uring.open`. It owns its fd: `close()` closes it (closing twice is
 * harmless), and closing the `Uring` closes every file it opened that is still open. Every
 * method returns a promise settled by the kernel's completion. Since 5.6.
 */
export class UringFile implements AsyncDisposable {
  /** The file descriptor (owned by this object until `close()`). */
  readonly fd: number;
  /** The path the file was opened with. */
  readonly path: string;
  readonly #ops: FileOps;
  #closed = false;
  #closing: Promise<void> | null = null;

  /** Made by `Uring.open` (internal). */
  constructor(ops: FileOps, fd: number, path: string) {
    this.#ops = ops;
    this.fd = fd;
    this.path = path;
  }

  /** Whether `close()` was called (or the `Uring` that opened the file was closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Marks the file closed without closing its fd (internal: the `Uring` closed it). */
  detach(): void {
    this.#closed = true;
  }

  /**
   * Reads into `buf` from byte `position`; resolves with the bytes read: 0 at end of file, and
   * possibly fewer than asked (see {@link UringFile.readFull}).
   */
  readAt(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.read(this.fd, buf, position, options?.signal, this.path);
  }

  /** Writes `buf` at byte `position`; resolves with the bytes written (possibly fewer). */
  writeAt(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.write(this.fd, buf, position, options?.signal, this.path);
  }

  /**
   * Reads until `buf` is full or the file ends, looping over short reads; resolves with the
   * bytes read (less than `buf.byteLength` only at end of file).
   */
  async readFull(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<number> {
    let done = await this.readAt(buf, position, options);
    while (done > 0 && done < buf.byteLength) {
      const n = await this.readAt(rest(buf, done), advance(position, done), options);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /**
   * Writes all of `buf` at `position`, looping over short writes. Rejects with
   * `Deno.errors.WriteZero` if the kernel accepts no bytes at all.
   */
  async writeAll(buf: ArrayBufferView, position: number | bigint, options?: OpOptions): Promise<void> {
    let done = 0;
    while (done < buf.byteLength) {
      const chunk = done === 0 ? buf : rest(buf, done);
      const n = await this.writeAt(chunk, advance(position, done), options);
      if (n === 0) {
        throw new Deno.errors.WriteZero(
          `write '${this.path}': wrote 0 bytes at ${advance(position, done)} (${buf.byteLength - done} left)`,
        );
      }
      done += n;
    }
  }

  /** The file's metadata (`statx` on the fd). */
  stat(options?: OpOptions): Promise<Statx> {
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.fstat(this.fd, options?.signal, this.path);
  }

  /** Flushes the file to storage (`fsync`; `datasync`: `fdatasync`). */
  sync(options?: OpOptions & { datasync?: boolean }): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.fsync(this.fd, options?.datasync === true, options?.signal, this.path);
  }

  /** Sets the file's length (`ftruncate`, Linux 6.9+). */
  truncate(length: number | bigint, options?: OpOptions): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this));
    return this.#ops.ftruncate(this.fd, length, options?.signal, this.path);
  }

  /** Closes the fd. Idempotent: later calls return the first call's promise. */
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

/**
 * Linked operations: a {@link ChainBuilder} collects members that run one after the other
 * (`IOSQE_IO_LINK`); a member that fails (or transfers fewer bytes than asked) cancels the rest.
 *
 * @module
 */

import { IORING_TIMEOUT_ETIME_SUCCESS } from "./abi.ts";
import {
  fillClose,
  fillFallocate,
  fillFsync,
  fillFtruncate,
  fillNop,
  fillRw,
  fillRwv,
  fillSplice,
  fillTimeout,
  K_READ,
  K_READV,
  K_WRITE,
  K_WRITEV,
} from "./ops.ts";
import type { Slot } from "./slots.ts";

/**
 * The outcome of one member of a chain: `{ ok: true, value }` (bytes transferred, or 0), or
 * `{ ok: false, error }`. Members cancelled because an earlier one failed carry an error whose
 * `code` is `"ECANCELED"`.
 */
export type ChainResult = { ok: true; value: number } | { ok: false; error: Error };

/**
 * What `Uring.chain` hands its callback: each method adds one member (in order) and returns the
 * builder; arguments are checked at once. Buffers must stay untouched until the chain's promise
 * settles. Links since 5.3.
 */
export interface ChainBuilder {
  /** Adds `pread(fd, buf, position)`; its result is the bytes read. */
  read(fd: number, buf: ArrayBufferView, position: number | bigint): this;
  /** Adds `pwrite(fd, buf, position)`; its result is the bytes written. */
  write(fd: number, buf: ArrayBufferView, position: number | bigint): this;
  /** Adds `preadv(fd, bufs, position)`. */
  readv(fd: number, bufs: readonly ArrayBufferView[], position: number | bigint): this;
  /** Adds `pwritev(fd, bufs, position)`. */
  writev(fd: number, bufs: readonly ArrayBufferView[], position: number | bigint): this;
  /** Adds `fsync(fd)` (`fdatasync` with `datasync`). */
  fsync(fd: number, options?: { datasync?: boolean }): this;
  /** Adds a no-op. */
  nop(): this;
  /** Adds `fallocate(fd, mode, offset, length)`. Since 5.6. */
  fallocate(fd: number, offset: number | bigint, length: number | bigint, options?: { mode?: number }): this;
  /** Adds `ftruncate(fd, length)`. Since 6.9. */
  ftruncate(fd: number, length: number | bigint): this;
  /** Adds `close(fd)`. Since 5.6. */
  close(fd: number): this;
  /** Adds `splice` (-1 as an offset: the fd's own position, required for pipes). Since 5.7. */
  splice(fdIn: number, offIn: number | bigint, fdOut: number, offOut: number | bigint, nbytes: number): this;
  /** Adds a delay of `ms` before the next member (its expiry counts as success). Since 5.16. */
  timeout(ms: number): this;
}

/** The {@link ChainBuilder} `Uring.chain` uses: it fills one slot per member (internal). */
export class ChainCollector implements ChainBuilder {
  readonly #alloc: () => Slot;
  /** The members added so far (internal). */
  readonly members: Slot[] = [];

  /** Made by `Uring.chain` (internal): `alloc` takes a slot from the Uring's table. */
  constructor(alloc: () => Slot) {
    this.#alloc = alloc;
  }

  #next(): Slot {
    const slot = this.#alloc();
    this.members.push(slot);
    return slot;
  }

  /** Adds `pread(fd, buf, position)`; its result is the bytes read. */
  read(fd: number, buf: ArrayBufferView, position: number | bigint): this {
    fillRw(this.#next(), K_READ, fd, buf, position);
    return this;
  }

  /** Adds `pwrite(fd, buf, position)`; its result is the bytes written. */
  write(fd: number, buf: ArrayBufferView, position: number | bigint): this {
    fillRw(this.#next(), K_WRITE, fd, buf, position);
    return this;
  }

  /** Adds `preadv(fd, bufs, position)`. */
  readv(fd: number, bufs: readonly ArrayBufferView[], position: number | bigint): this {
    fillRwv(this.#next(), K_READV, fd, bufs, position);
    return this;
  }

  /** Adds `pwritev(fd, bufs, position)`. */
  writev(fd: number, bufs: readonly ArrayBufferView[], position: number | bigint): this {
    fillRwv(this.#next(), K_WRITEV, fd, bufs, position);
    return this;
  }

  /** Adds `fsync(fd)` (`fdatasync` with `datasync`). */
  fsync(fd: number, options: { datasync?: boolean } = {}): this {
    fillFsync(this.#next(), fd, options.datasync === true);
    return this;
  }

  /** Adds a no-op. */
  nop(): this {
    fillNop(this.#next());
    return this;
  }

  /** Adds `fallocate(fd, mode, offset, length)`. Since 5.6. */
  fallocate(
    fd: number,
    offset: number | bigint,
    length: number | bigint,
    options: { mode?: number } = {},
  ): this {
    fillFallocate(this.#next(), fd, offset, length, options.mode ?? 0);
    return this;
  }

  /** Adds `ftruncate(fd, length)`. Since 6.9. */
  ftruncate(fd: number, length: number | bigint): this {
    fillFtruncate(this.#next(), fd, length);
    return this;
  }

  /** Adds `close(fd)`. Since 5.6. */
  close(fd: number): this {
    fillClose(this.#next(), fd);
    return this;
  }

  /** Adds `splice` (-1 as an offset: the fd's own position, required for pipes). Since 5.7. */
  splice(fdIn: number, offIn: number | bigint, fdOut: number, offOut: number | bigint, nbytes: number): this {
    fillSplice(this.#next(), fdIn, offIn, fdOut, offOut, nbytes);
    return this;
  }

  /** Adds a delay of `ms` before the next member (its expiry counts as success). Since 5.16. */
  timeout(ms: number): this {
    fillTimeout(this.#next(), ms, IORING_TIMEOUT_ETIME_SUCCESS);
    return this;
  }
}

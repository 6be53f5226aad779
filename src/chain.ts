/**
 * Linked operations: a {@link ChainBuilder} collects members that run one after the other
 * (`IOSQE_IO_LINK`); a member that fails (or transfers fewer bytes than asked) cancels the rest.
 *
 * @module
 */

import { IORING_TIMEOUT_ETIME_SUCCESS, IOSQE_FIXED_FILE, O_RDONLY } from "./abi.ts";
import {
  fillClose,
  fillCloseDirect,
  fillFallocate,
  fillFsync,
  fillFtruncate,
  fillNop,
  fillOpenDirect,
  fillRw,
  fillRwv,
  fillSplice,
  fillTimeout,
  K_READ,
  K_READV,
  K_WRITE,
  K_WRITEV,
  OP_NAMES,
} from "./ops.ts";
import { refusedArgument } from "./errors.ts";
import type { Slot } from "./slots.ts";
import { checkOptionsObject, checkU32 } from "./memory.ts";

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
  /** Adds `fallocate(fd, mode, offset, length)`: `mode` (default 0) in the options. Since 5.6. */
  fallocate(fd: number, offset: number | bigint, length: number | bigint, options?: { mode?: number }): this;
  /** Adds `ftruncate(fd, length)`. Since 6.9. */
  ftruncate(fd: number, length: number | bigint): this;
  /**
   * Adds `close(fd)`. Unlike `Uring.close(fd)` it does not cancel the Uring's other operations
   * on `fd` (later members of the chain on `fd` are refused). Since 5.6.
   */
  close(fd: number): this;
  /** Adds `splice` (-1 as an offset: the fd's own position, required for pipes). Since 5.7. */
  splice(fdIn: number, offIn: number | bigint, fdOut: number, offOut: number | bigint, nbytes: number): this;
  /** Adds a delay of `ms` before the next member (its expiry counts as success). Since 5.16. */
  timeout(ms: number): this;
  /**
   * Adds `openat(path)` into direct descriptor `index` (an index of the registered file table,
   * from `Uring.reserveFileIndex()`): later members of the same chain use the file through
   * `readDirect`/`writeDirect`/`closeDirect` before any fd exists, so open, I/O and close go to
   * the kernel in one submission. `flags` are raw `O_*` flags (default `O_RDONLY`; `O_CLOEXEC`
   * is dropped: a direct descriptor is not an fd, nothing inherits it); `mode` applies with
   * `O_CREAT` (default 0o666, less the umask). Needs Deno's read and/or write permission as the
   * flags imply. Its result is 0. Since 5.15; later members of the same chain find the file
   * from 5.17 (`IORING_FEAT_LINKED_FILE`: before it, the kernel looked their files up when the
   * chain was submitted, so they found the index empty).
   */
  openDirect(path: string | URL, index: number, options?: { flags?: number; mode?: number }): this;
  /** Adds `pread` from direct descriptor `index`; its result is the bytes read. Since 5.15. */
  readDirect(index: number, buf: ArrayBufferView, position: number | bigint): this;
  /** Adds `pwrite` to direct descriptor `index`; its result is the bytes written. Since 5.15. */
  writeDirect(index: number, buf: ArrayBufferView, position: number | bigint): this;
  /** Adds `close` of direct descriptor `index` (the table index stays reserved). Since 5.15. */
  closeDirect(index: number): this;
}

/**
 * Checks a path member's path and Deno permission for `flags` (throws when refused) and returns
 * it as a string (internal: `Uring.chain` provides it).
 */
export type PathCheck = (path: string | URL, flags: number) => string;

/**
 * Most bytes one read or write member may ask for: 2 GiB less 64 KiB. The kernel moves at most
 * `MAX_RW_COUNT` (2^31 less a page) per read or write and then counts that as the whole request,
 * so a bigger member would come back short without failing, and the chain would run on (its
 * result, without a CQE of its own, would claim the full length). 64 KiB covers every page size.
 */
export const MAX_CHAIN_TRANSFER = 0x7fff0000;

/** Throws unless a read or write member of `length` bytes stays within {@link MAX_CHAIN_TRANSFER}. */
function checkChainTransfer(length: number): void {
  if (length > MAX_CHAIN_TRANSFER) {
    throw new RangeError(
      `a chain's read or write moves at most ${MAX_CHAIN_TRANSFER} bytes (2 GiB - 64 KiB), got ${length}: ` +
        "the kernel would move less without failing the member; split it into several members",
    );
  }
}

/** The {@link ChainBuilder} `Uring.chain` uses: it fills one slot per member (internal). */
export class ChainCollector implements ChainBuilder {
  readonly #alloc: () => Slot;
  readonly #release: (slot: Slot) => void;
  readonly #checkPath: PathCheck;
  /** The members added so far (internal). */
  readonly members: Slot[] = [];
  #sealed = false;
  /**
   * A member is being added: its arguments may run the caller's code (an options getter, an
   * array element getter), which must not add another member meanwhile (it would land between,
   * or take the slot being filled).
   */
  #adding = false;

  /**
   * Made by `Uring.chain` (internal): `alloc` takes a slot from the Uring's table and `release`
   * gives one back; `checkPath` vets the path of a path member before any slot is taken for it.
   */
  constructor(alloc: () => Slot, release: (slot: Slot) => void, checkPath: PathCheck) {
    this.#alloc = alloc;
    this.#release = release;
    this.#checkPath = checkPath;
  }

  /** Ends the building (internal): members added after `chain()`'s build function returned throw. */
  seal(): void {
    this.#sealed = true;
  }

  /**
   * Adds one member, operation `op`: takes a slot, has `fill` check the arguments and store them,
   * and only then makes it part of the chain. A member whose arguments are refused (its error,
   * which names `op`, caught by the build function) is not part of the chain: its slot goes back.
   */
  #add(op: string, fill: (slot: Slot) => void): this {
    if (this.#sealed) {
      throw new TypeError(
        "chain: members are added inside the function given to chain(), not after it returned",
      );
    }
    if (this.#adding) {
      throw new TypeError("a chain member cannot be added while another one's arguments are being read");
    }
    const slot = this.#alloc();
    this.#adding = true;
    try {
      fill(slot);
    } catch (e) {
      this.#release(slot);
      throw refusedArgument(op, e);
    } finally {
      this.#adding = false;
    }
    this.members.push(slot);
    return this;
  }

  /** Adds `pread(fd, buf, position)`; its result is the bytes read. */
  read(fd: number, buf: ArrayBufferView, position: number | bigint): this {
    return this.#add("read", (slot) => {
      fillRw(slot, K_READ, fd, buf, position);
      checkChainTransfer(slot.bufLength);
    });
  }

  /** Adds `pwrite(fd, buf, position)`; its result is the bytes written. */
  write(fd: number, buf: ArrayBufferView, position: number | bigint): this {
    return this.#add("write", (slot) => {
      fillRw(slot, K_WRITE, fd, buf, position);
      checkChainTransfer(slot.bufLength);
    });
  }

  /** Adds `preadv(fd, bufs, position)`. */
  readv(fd: number, bufs: readonly ArrayBufferView[], position: number | bigint): this {
    return this.#add("readv", (slot) => {
      fillRwv(slot, K_READV, fd, bufs, position);
      checkChainTransfer(slot.iovecs!.totalLength);
    });
  }

  /** Adds `pwritev(fd, bufs, position)`. */
  writev(fd: number, bufs: readonly ArrayBufferView[], position: number | bigint): this {
    return this.#add("writev", (slot) => {
      fillRwv(slot, K_WRITEV, fd, bufs, position);
      checkChainTransfer(slot.iovecs!.totalLength);
    });
  }

  /** Adds `fsync(fd)` (`fdatasync` with `datasync`). */
  fsync(fd: number, options: { datasync?: boolean } = {}): this {
    return this.#add("fsync", (slot) => {
      checkOptionsObject(options);
      fillFsync(slot, fd, options?.datasync === true);
    });
  }

  /** Adds a no-op. */
  nop(): this {
    return this.#add("nop", fillNop);
  }

  /** Adds `fallocate(fd, mode, offset, length)`: `mode` (default 0) in the options. Since 5.6. */
  fallocate(
    fd: number,
    offset: number | bigint,
    length: number | bigint,
    options: { mode?: number } = {},
  ): this {
    return this.#add("fallocate", (slot) => {
      checkOptionsObject(options);
      fillFallocate(slot, fd, offset, length, options?.mode ?? 0);
    });
  }

  /** Adds `ftruncate(fd, length)`. Since 6.9. */
  ftruncate(fd: number, length: number | bigint): this {
    return this.#add("ftruncate", (slot) => fillFtruncate(slot, fd, length));
  }

  /** Adds `close(fd)`. Since 5.6. */
  close(fd: number): this {
    return this.#add("close", (slot) => fillClose(slot, fd));
  }

  /** Adds `splice` (-1 as an offset: the fd's own position, required for pipes). Since 5.7. */
  splice(fdIn: number, offIn: number | bigint, fdOut: number, offOut: number | bigint, nbytes: number): this {
    return this.#add("splice", (slot) => fillSplice(slot, fdIn, offIn, fdOut, offOut, nbytes));
  }

  /** Adds a delay of `ms` before the next member (its expiry counts as success). Since 5.16. */
  timeout(ms: number): this {
    return this.#add("timeout", (slot) => fillTimeout(slot, ms, IORING_TIMEOUT_ETIME_SUCCESS));
  }

  /** Adds `openat(path)` into direct descriptor `index`. Since 5.15. */
  openDirect(path: string | URL, index: number, options: { flags?: number; mode?: number } = {}): this {
    return this.#add("open", (slot) => {
      checkOptionsObject(options);
      const flags = options?.flags ?? O_RDONLY;
      const mode = options?.mode ?? 0o666;
      checkU32(flags, "flags");
      checkU32(mode, "mode", 0o7777);
      fillOpenDirect(slot, this.#checkPath(path, flags), index, flags, mode);
    });
  }

  /** Adds `pread` from direct descriptor `index`. Since 5.15. */
  readDirect(index: number, buf: ArrayBufferView, position: number | bigint): this {
    return this.#rwDirect(K_READ, index, buf, position);
  }

  /** Adds `pwrite` to direct descriptor `index`. Since 5.15. */
  writeDirect(index: number, buf: ArrayBufferView, position: number | bigint): this {
    return this.#rwDirect(K_WRITE, index, buf, position);
  }

  /** A read or write (`kind`) on direct descriptor `index`: the index in the fd field, FIXED_FILE. */
  #rwDirect(kind: number, index: number, buf: ArrayBufferView, position: number | bigint): this {
    return this.#add(OP_NAMES[kind], (slot) => {
      checkU32(index, "index", 0x7fffffff);
      fillRw(slot, kind, index, buf, position);
      checkChainTransfer(slot.bufLength);
      slot.sqeFlags = IOSQE_FIXED_FILE;
    });
  }

  /** Adds `close` of direct descriptor `index`. Since 5.15. */
  closeDirect(index: number): this {
    return this.#add("close", (slot) => fillCloseDirect(slot, index));
  }
}

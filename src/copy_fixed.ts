/**
 * Fixed (registered) buffers for a copy's data: when the copy's `Uring` has no buffer pool and
 * the buffers fit in {@link MAX_FIXED_POOL_BYTES}, they are registered with it for the copy
 * (`Uring.registerBufferPool`), so every read and write into them goes as
 * `READ_FIXED`/`WRITE_FIXED` (the kernel skips pinning the pages per request); the pool is
 * unregistered when the copy ends. A caller's own pool is left alone, and a refused
 * registration (`ENOMEM`: over `RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`; `EPERM`, ...) means plain
 * buffers, silently. Used by the buffered and the O_DIRECT copy alike.
 *
 * Registering is not free: mapping, faulting in and pinning the pool, and unregistering it,
 * cost about 2 ms for 32 × 128 KiB here, while fixed buffers save about 3% of the
 * time of a large cached copy (break-even near 64 MiB copied through a 4 MiB pool). So a copy
 * that says how much it will move ({@link CopyFixedBuffers.expect}, as `copyFile` does) registers
 * only when that is at least {@link FIXED_MIN_REUSE} times the pool's memory.
 *
 * @module
 */

import { DEFAULT_ALIGNMENT } from "./aligned.ts";
import { type FixedBufferPool, markBorrowedPool } from "./fixed_pool.ts";
import type { Uring } from "./uring.ts";

/** Most memory a copy registers (and so pins) as fixed buffers: 64 MiB. */
export const MAX_FIXED_POOL_BYTES = 64 * 1024 * 1024;

/** How many times over a copy must reuse its pool's memory for registering it to pay off. */
export const FIXED_MIN_REUSE = 16;

/**
 * Registers `count` buffers of `size` bytes (aligned to `alignment`) with `uring` for a copy, or
 * returns `null` when it should not or cannot: no ring, a closed ring, a ring that already has a
 * pool (the caller's: left alone), more than {@link MAX_FIXED_POOL_BYTES}, or a refusal by the
 * kernel. Since 5.1 (`IORING_REGISTER_BUFFERS`).
 */
export function registerCopyPool(
  uring: Uring | undefined,
  count: number,
  size: number,
  alignment: number = DEFAULT_ALIGNMENT,
): FixedBufferPool | null {
  if (uring === undefined || uring.closed || uring.bufferPool !== null) return null;
  if (count * size > MAX_FIXED_POOL_BYTES) return null;
  try {
    const pool = uring.registerBufferPool({ count, size, alignment });
    markBorrowedPool(pool, "a copy running on it registered it for its buffers; it goes when the copy ends");
    return pool;
  } catch {
    return null; // e.g. ENOMEM (RLIMIT_MEMLOCK without CAP_IPC_LOCK), EPERM: plain buffers work as well
  }
}

/**
 * A copy's fixed buffers, registered on the first {@link CopyFixedBuffers.take} (a copy that
 * moves no data registers nothing) and unregistered by {@link CopyFixedBuffers.close}.
 */
export class CopyFixedBuffers {
  readonly #uring: Uring | undefined;
  readonly #count: number;
  readonly #size: number;
  readonly #alignment: number;
  #pool: FixedBufferPool | null | undefined;
  #worthIt = true;

  /** Up to `count` buffers of `size` bytes for a copy on `uring` (none without a ring). */
  constructor(uring: Uring | undefined, count: number, size: number, alignment: number = DEFAULT_ALIGNMENT) {
    this.#uring = uring;
    this.#count = count;
    this.#size = size;
    this.#alignment = alignment;
  }

  /** The pool registered for the copy, or `null` (not yet, or plain buffers). */
  get pool(): FixedBufferPool | null {
    return this.#pool ?? null;
  }

  /**
   * Says the copy will move about `bytes` bytes: unless that is at least {@link FIXED_MIN_REUSE}
   * times the pool's memory, nothing is registered (plain buffers). Call before the first take.
   */
  expect(bytes: number): void {
    this.#worthIt = bytes >= FIXED_MIN_REUSE * this.#count * this.#size;
  }

  /**
   * A registered buffer of `size` bytes (registering the pool on the first call), or `null`
   * when the copy uses plain buffers or all `count` are out.
   */
  take(): Uint8Array<ArrayBuffer> | null {
    if (this.#pool === undefined) {
      this.#pool = this.#worthIt
        ? registerCopyPool(this.#uring, this.#count, this.#size, this.#alignment)
        : null;
    }
    return this.#pool?.acquire()?.bytes ?? null;
  }

  /** Unregisters and frees the pool (call once no operation uses its buffers). */
  close(): void {
    this.#pool?.close();
    this.#pool = undefined;
  }
}

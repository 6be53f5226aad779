/**
 * Counting semaphores and a buffer pool for the copy pipelines: one global budget of operations
 * in flight shared by every file of a copy, so many small files overlap their
 * open/read/write/close while the total stays bounded.
 *
 * @module
 */

/**
 * A counting semaphore. `acquire(n)` resolves once `n` of `limit` permits are free (FIFO: a
 * request never overtakes an earlier one); `release(n)` returns them. `tryAcquire(n)` takes
 * permits without waiting, when they are free and nobody waits.
 */
export class Semaphore {
  #free: number;
  readonly #waiters: Array<{ n: number; resolve: () => void } | undefined> = [];
  #head = 0;

  /** A semaphore with `limit` permits (≥ 1). */
  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be ≥ 1, got ${limit}`);
    this.#free = limit;
  }

  /** Permits free now. */
  get free(): number {
    return this.#free;
  }

  /** Takes `n` permits if they are free and nobody waits; returns whether it did. */
  tryAcquire(n = 1): boolean {
    if (this.#free >= n && this.#head === this.#waiters.length) {
      this.#free -= n;
      return true;
    }
    return false;
  }

  /** Resolves once `n` permits (1 to `limit`) are taken. */
  acquire(n = 1): Promise<void> {
    if (!Number.isInteger(n) || n < 1 || n > this.limit) {
      return Promise.reject(new RangeError(`permits must be 1 to ${this.limit}, got ${n}`));
    }
    if (this.tryAcquire(n)) return Promise.resolve();
    return new Promise<void>((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Returns `n` permits, handing them to the waiters in order while the first one's need fits. */
  release(n = 1): void {
    if (this.#free + n > this.limit) throw new Error("Semaphore released more often than acquired");
    this.#free += n;
    while (this.#head < this.#waiters.length) {
      const next = this.#waiters[this.#head]!;
      if (next.n > this.#free) break;
      this.#free -= next.n;
      this.#waiters[this.#head++] = undefined;
      if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
        this.#waiters.splice(0, this.#head);
        this.#head = 0;
      }
      next.resolve();
    }
  }

  /** Runs `fn` holding one permit. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.tryAcquire()) await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/**
 * Up to `count` buffers of `size` bytes, made on first need and reused: `take()` waits while
 * all are out, `give()` returns one. Holding a buffer across a read and the write that follows it
 * is what keeps reads feeding writes without copying.
 */
export class BufferPool {
  readonly #idle: Uint8Array<ArrayBuffer>[] = [];
  readonly #slots: Semaphore;
  readonly #make: () => Uint8Array<ArrayBuffer>;

  /** A pool of at most `count` buffers; `make` creates one (default: `new Uint8Array(size)`). */
  constructor(readonly count: number, readonly size: number, make?: () => Uint8Array<ArrayBuffer>) {
    this.#slots = new Semaphore(count);
    this.#make = make ?? (() => new Uint8Array(size));
  }

  /** A buffer, once one is free. */
  async take(): Promise<Uint8Array<ArrayBuffer>> {
    if (!this.#slots.tryAcquire()) await this.#slots.acquire();
    return this.#idle.pop() ?? this.#make();
  }

  /** A buffer if one is free now (and nobody waits), else `null`. */
  tryTake(): Uint8Array<ArrayBuffer> | null {
    if (!this.#slots.tryAcquire()) return null;
    return this.#idle.pop() ?? this.#make();
  }

  /** Returns a buffer taken from this pool. */
  give(buf: Uint8Array<ArrayBuffer>): void {
    this.#idle.push(buf);
    this.#slots.release();
  }

  /** Empties the pool of the buffers given back to it and returns them (it makes new ones later). */
  takeIdle(): Uint8Array<ArrayBuffer>[] {
    return this.#idle.splice(0);
  }
}

/**
 * The copy pipelines' worker crew: `count` workers run at once, the first failure wins (the
 * others see it and stop taking new blocks), every worker is awaited (so no operation is still
 * using a buffer), then the failure is rethrown.
 *
 * @module
 */

/** What a worker of {@link runWorkers} sees: whether some worker has failed. */
export interface Crew {
  /** True once a worker has failed: take no new work. */
  readonly failed: boolean;
}

/**
 * Runs `count` copies of `worker` at once and waits for all of them; rejects with the first
 * failure (after every worker has ended), resolves when none failed.
 */
export async function runWorkers(count: number, worker: (crew: Crew) => Promise<void>): Promise<void> {
  let failure: unknown;
  let failed = false;
  const crew: Crew = {
    get failed() {
      return failed;
    },
  };
  const running: Promise<void>[] = [];
  for (let i = 0; i < count; i++) {
    running.push(
      worker(crew).catch((e) => {
        if (!failed) {
          failed = true;
          failure = e;
        }
      }),
    );
  }
  await Promise.all(running);
  if (failed) throw failure;
}

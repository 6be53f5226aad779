/**
 * The event loop's next turn, with I/O: a call that does nothing, made on Deno's thread pool
 * (`Sys.nextTurn`), settles only after the loop has waited for it, and while it waits the loop
 * polls for I/O, so sockets, timers that are due and signal handlers all get their turn. About
 * 30–40 µs here, where `setTimeout(0)` takes ~2.1 ms (the timer's next millisecond tick, which
 * cost a busy loop 17% of its speed when taken every 10 ms). A `MessageChannel` message (~5 µs)
 * is no such turn: the loop never waits for it, so it never polls sockets, and a server in a
 * program that awaited cached reads one after another answered in 280–580 ms (now ~1–10 ms).
 *
 * The thread pool has a few dozen threads (32 here): when other work holds them all (waits on
 * FIFOs, a hung mount, parked waits of many rings), the call waits for a thread. So a timer of
 * {@link POOL_WAIT_MS} races it (a timer turn polls for I/O too), and while a call is still
 * waiting for a thread, turns are taken by the timer alone.
 *
 * @module
 */

import type { Sys } from "./sys.ts";

/** How long a turn waits for the thread pool before a timer takes it instead (ms). */
export const POOL_WAIT_MS = 2;

/** Whether a turn's call is still waiting for (or running on) the thread pool. */
let inPool = false;

/** Calls `callback` on a turn of the event loop that has polled for I/O (see the module doc). */
export function onNextTurn(sys: Sys, callback: () => void): void {
  let done = false;
  const turn = (): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    callback();
  };
  const timer = setTimeout(turn, POOL_WAIT_MS);
  if (inPool) return; // (the pool is busy: another call would only queue behind that one)
  inPool = true;
  sys.nextTurn().then(() => {
    inPool = false;
    turn();
  });
}

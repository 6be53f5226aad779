/**
 * The event loop's next turn, with I/O: a call that does nothing, made on Deno's thread pool
 * (`Sys.nextTurn`), settles only after the loop has waited for it, and while it waits the loop
 * polls for I/O, so sockets, timers that are due and signal handlers all get their turn. About
 * 30–40 µs here, where `setTimeout(0)` takes ~2.1 ms (the timer's next millisecond tick, which
 * cost a busy loop 17% of its speed when taken every 10 ms). A `MessageChannel` message (~5 µs)
 * is no such turn: the loop never waits for it, so it never polls sockets, and a server in a
 * program that awaited cached reads one after another answered in 280–580 ms (now ~1–10 ms).
 *
 * @module
 */

import type { Sys } from "./sys.ts";

/** Calls `callback` on a turn of the event loop that has polled for I/O (see the module doc). */
export function onNextTurn(sys: Sys, callback: () => void): void {
  sys.nextTurn().then(callback);
}

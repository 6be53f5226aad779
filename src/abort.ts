/**
 * Abort signals handled through the engine's own `AbortSignal` and `EventTarget` methods, taken
 * when this module loads: a signal whose `addEventListener`, `removeEventListener`, `aborted` or
 * `reason` was overridden (an own property, a getter) cannot run the caller's code, or throw,
 * from inside the ring's bookkeeping, where a throw would fail every operation of the ring.
 *
 * @module
 */

import { notAnOptionsObject } from "./memory.ts";

const ABORTED = Object.getOwnPropertyDescriptor(AbortSignal.prototype, "aborted")!.get!;
const REASON = Object.getOwnPropertyDescriptor(AbortSignal.prototype, "reason")!.get!;
const ADD_LISTENER = EventTarget.prototype.addEventListener;
const REMOVE_LISTENER = EventTarget.prototype.removeEventListener;

/** What reading an operation's `signal` option threw (a getter): the operation rejects with it. */
export class SignalOptionThrew {
  /** Wraps what the getter threw. */
  constructor(readonly thrown: unknown) {}
}

/**
 * `options.signal`, read once; when reading it throws (a getter), a {@link SignalOptionThrew},
 * so that the operation rejects with what it threw rather than the call throwing.
 */
export function signalOption(
  options: { signal?: AbortSignal | null } | null | undefined,
): AbortSignal | null | undefined | SignalOptionThrew {
  if (options === undefined || options === null) return undefined;
  const notObject = notAnOptionsObject(options);
  if (notObject !== null) {
    // (`fallocate(fd, mode, offset, length)` in liburing's order puts a number here)
    return new SignalOptionThrew(new TypeError(`options must be an object, got ${notObject}`));
  }
  try {
    return options.signal;
  } catch (e) {
    return new SignalOptionThrew(e);
  }
}

/**
 * `signal` as an operation's option: `undefined` for `undefined` or `null` (no signal), the
 * signal itself for a real `AbortSignal`, else a `TypeError` (an object made from
 * `AbortSignal.prototype` is not one); what a getter threw reading it (see {@link signalOption})
 * is thrown again.
 */
export function abortSignalOption(signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal === null) return undefined;
  if (signal instanceof SignalOptionThrew) throw signal.thrown;
  try {
    ABORTED.call(signal); // the engine's brand check
  } catch {
    throw new TypeError("signal must be an AbortSignal");
  }
  return signal as AbortSignal;
}

/** Whether `signal` has fired (false if it cannot say). */
export function signalAborted(signal: AbortSignal): boolean {
  try {
    return ABORTED.call(signal) as boolean;
  } catch {
    return false;
  }
}

/** Why `signal` fired (its `reason`, read through the engine's getter). */
export function signalReason(signal: AbortSignal): unknown {
  try {
    return REASON.call(signal);
  } catch (e) {
    return e;
  }
}

/**
 * The listeners of each signal some operation listens to, behind one listener of the engine's
 * own: adding and removing one is a set operation, where `EventTarget` keeps a list it searches
 * on every removal (one server-wide signal shared by 4,096 pending operations made each operation
 * cost ~7 µs more, 100,000 of them 23 s).
 */
const watchers = new WeakMap<AbortSignal, { listeners: Set<() => void>; fire: () => void }>();

/** Calls `listener` when `signal` fires. Throws only for an exotic signal (a proxy that refuses). */
export function listenAbort(signal: AbortSignal, listener: () => void): void {
  let watcher = watchers.get(signal);
  if (watcher === undefined) {
    const listeners = new Set<() => void>();
    const fire = () => {
      // (Once: a signal fires once. The listeners may stop listening as they run.)
      watchers.delete(signal);
      for (const each of [...listeners]) each();
      listeners.clear();
    };
    ADD_LISTENER.call(signal, "abort", fire);
    watcher = { listeners, fire };
    watchers.set(signal, watcher);
  }
  watcher.listeners.add(listener);
}

/**
 * Stops calling `listener` when `signal` fires. Never throws: a listener an exotic signal keeps
 * stays attached, and the callers' handlers check that their signal fired before acting.
 */
export function unlistenAbort(signal: AbortSignal, listener: () => void): void {
  const watcher = watchers.get(signal);
  if (watcher === undefined || !watcher.listeners.delete(listener) || watcher.listeners.size > 0) return;
  watchers.delete(signal);
  try {
    REMOVE_LISTENER.call(signal, "abort", watcher.fire);
  } catch {
    // kept: see above
  }
}

/**
 * Test support for the promise layer (`Uring`): options per ring configuration, fd counting, a
 * seeded PRNG, and a promise tracker that proves each promise settles exactly once.
 */

import assert from "node:assert/strict";
import type { UringOptions } from "../mod.ts";
import type { RingConfig } from "./_support.ts";

/** `Uring` options for one ring configuration of `ringTest`. */
export function uringOptions(config: RingConfig, extra: UringOptions = {}): UringOptions {
  return { sqpoll: config.sqpoll, backend: config.backend, ...extra };
}

// Deno's file API opens nothing under /proc without --allow-all, which `deno task test` does
// not grant: ask libc instead.
const libc = Deno.dlopen("libc.so.6", {
  fcntl: { parameters: ["i32", "i32"], result: "i32" },
  getrusage: { parameters: ["i32", "buffer"], result: "i32" },
}).symbols;
const F_GETFD = 1;
const RUSAGE_SELF = 0;
/** Highest fd number `fdCount` looks at. */
const MAX_FD = 1 << 16;

/** Whether `fd` is open in this process (`fcntl(F_GETFD)`). */
export function fdIsOpen(fd: number): boolean {
  return libc.fcntl(fd, F_GETFD) >= 0;
}

/** Number of open file descriptors of this process (`fcntl(F_GETFD)` on every number). */
export function fdCount(): number {
  let n = 0;
  for (let fd = 0; fd < MAX_FD; fd++) if (libc.fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

/**
 * User + system CPU time of the whole process in microseconds (`getrusage(RUSAGE_SELF)`: every
 * thread, the SQ poll thread included).
 */
export function cpuTimeUs(): number {
  const ru = new BigInt64Array(18); // struct rusage: two timevals first (64-bit Linux)
  if (libc.getrusage(RUSAGE_SELF, ru) !== 0) throw new Error("getrusage failed");
  return Number(ru[0]) * 1e6 + Number(ru[1]) + Number(ru[2]) * 1e6 + Number(ru[3]);
}

/** A small seeded PRNG (mulberry32): the same seed gives the same sequence. */
export class Prng {
  #state: number;
  /** Seeds the generator. */
  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** Fills `buf` with pseudo-random bytes. */
  fill(buf: Uint8Array): Uint8Array {
    for (let i = 0; i < buf.length; i++) buf[i] = this.int(256);
    return buf;
  }
}

/**
 * Wraps promises so a test can prove every one settled, and exactly once: `track(p)` returns a
 * promise of the outcome and counts settlements per promise.
 */
export class Tracker {
  #issued = 0;
  #settled = 0;
  #counts: number[] = [];

  /** Promises tracked. */
  get issued(): number {
    return this.#issued;
  }

  /** Settlements seen. */
  get settled(): number {
    return this.#settled;
  }

  /** Tracks `p`; the returned promise never rejects. */
  track<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
    const id = this.#issued++;
    this.#counts[id] = 0;
    const seen = () => {
      this.#counts[id]++;
      this.#settled++;
    };
    return p.then(
      (value) => {
        seen();
        return { ok: true as const, value };
      },
      (error) => {
        seen();
        return { ok: false as const, error };
      },
    );
  }

  /** Asserts every tracked promise settled exactly once. */
  assertAllSettledOnce(): void {
    assert.equal(this.#settled, this.#issued, `${this.#issued - this.#settled} promises never settled`);
    for (let i = 0; i < this.#counts.length; i++) {
      assert.equal(this.#counts[i], 1, `promise ${i} settled ${this.#counts[i]} times`);
    }
  }
}

/** Resolves after `ms` (a JavaScript timer). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts two busy loops per CPU (`sh -c 'while :; do :; done'`) and lets them run 100 ms: they slow
 * the kernel's SQ thread, widening the races a test means to hit. `await using` kills them.
 */
export async function busyCpus(): Promise<AsyncDisposable> {
  const loops = Array.from(
    { length: 2 * navigator.hardwareConcurrency },
    () => new Deno.Command("sh", { args: ["-c", "while :; do :; done"] }).spawn(),
  );
  await sleep(100);
  return {
    async [Symbol.asyncDispose]() {
      for (const loop of loops) loop.kill("SIGKILL");
      for (const loop of loops) await loop.status;
    },
  };
}

/** Runs `deno run` on `code` (written to a temp file) with `flags`; returns status and output. */
export async function runDeno(
  code: string,
  flags: string[],
  options: { timeoutMs?: number; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string; timedOut: boolean }> {
  const dir = Deno.makeTempDirSync({ prefix: "uring-child-" });
  const file = `${dir}/child.ts`;
  Deno.writeTextFileSync(file, code);
  const signal = AbortSignal.timeout(options.timeoutMs ?? 30_000);
  let timedOut = false;
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...flags, file],
      cwd: options.cwd,
      stdout: "piped",
      stderr: "piped",
      signal,
    }).output();
    timedOut = signal.aborted;
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr), timedOut };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * {@link runDeno} for a child script that prints its `results` as one JSON line: asserts it
 * exited 0 (naming `flags` and its stderr otherwise) and returns what it printed, parsed.
 */
export async function childResults(
  code: string,
  flags: string[],
  options: { timeoutMs?: number; cwd?: string } = {},
): Promise<Record<string, string>> {
  const out = await runDeno(code, flags, options);
  assert.equal(out.code, 0, `${flags.join(" ")}: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

/** The module's entry point as a file URL string, for child scripts to import. */
export const MOD_URL: string = new URL("../mod.ts", import.meta.url).href;

/**
 * Source of an `attempt(name, fn)` function for child scripts (which define `results`): runs `fn`
 * and records "ok", or the error's name (plus its message unless it is NotCapable), in
 * `results[name]`; and of `deno(fn)`, Deno's own API's verdict on a synchronous call: "ok" or the
 * error's name.
 */
export const ATTEMPT_JS: string = `async function attempt(name, fn) {
        try {
          await fn();
          results[name] = "ok";
        } catch (e) {
          results[name] = e.name + (e instanceof Deno.errors.NotCapable ? "" : ": " + e.message);
        }
      }
      const deno = (fn) => { try { fn(); return "ok"; } catch (e) { return e.name; } };`;

/** Each result of `attempt` as its error class alone ("NotFound: message" → "NotFound"). */
export function classesOf(results: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(results).map(([k, v]) => [k, v.split(":")[0]]));
}

/**
 * Property test of the promise layer: thousands of random operations (reads and writes at random
 * offsets and sizes on several files, readv/writev, nops, timeouts, aborts, linked chains) at
 * queue depths from 1 to 4096, on rings from 1 to 4096 entries, with and without SQPOLL. A plain
 * JavaScript model says what each file must hold; every read is checked against it, every
 * promise must settle exactly once, and the files must match the model byte for byte at the end.
 *
 * Reproduce a failure with `URING_PROPERTY_SEED=<seed printed> deno task test`.
 */

import assert from "node:assert/strict";
import { Uring, type UringFile } from "../mod.ts";
import { type RingConfig, ringTest, tempDir } from "./_support.ts";
import { Prng, Tracker, uringOptions } from "./uring_support.ts";

const FILES = 3;
const FILE_SIZE = 128 * 1024;
const OPS_PER_RUN = 2500;
const RUNS_PER_CONFIG = 2;
const SIZES = [1, 2, 3, 8, 16, 64, 256, 1024, 4096];
const DEPTHS = [1, 2, 7, 32, 256, 1024, 4096];

/** A file's expected contents, growing like a sparse file when written past its end. */
class Model {
  bytes: Uint8Array;
  size: number;
  constructor(initial: Uint8Array) {
    this.bytes = new Uint8Array(initial.length * 2);
    this.bytes.set(initial);
    this.size = initial.length;
  }
  write(off: number, data: Uint8Array): void {
    const end = off + data.length;
    if (end > this.bytes.length) {
      const bigger = new Uint8Array(Math.max(end, this.bytes.length * 2));
      bigger.set(this.bytes.subarray(0, this.size));
      this.bytes = bigger;
    }
    this.bytes.set(data, off);
    if (end > this.size) this.size = end;
  }
  read(off: number, len: number): Uint8Array {
    if (off >= this.size) return new Uint8Array(0);
    return this.bytes.slice(off, Math.min(this.size, off + len));
  }
}

/** A byte range an in-flight operation touches: writes lock, reads only conflict with writes. */
interface Lock {
  file: number;
  start: number;
  end: number; // exclusive; Infinity for writes that may change the size
  write: boolean;
}

function overlaps(a: Lock, b: Lock): boolean {
  return a.file === b.file && a.start < b.end && b.start < a.end && (a.write || b.write);
}

async function run(config: RingConfig, seed: number, dir: string): Promise<string> {
  const rng = new Prng(seed);
  const entries = SIZES[rng.int(SIZES.length)];
  const depth = DEPTHS[rng.int(DEPTHS.length)];
  const uring = new Uring(uringOptions(config, { entries }));
  const tracker = new Tracker();
  const models: Model[] = [];
  const files: UringFile[] = [];
  const paths: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const path = `${dir}/f${seed}_${i}`;
    const initial = rng.fill(new Uint8Array(FILE_SIZE));
    Deno.writeFileSync(path, initial);
    models.push(new Model(initial));
    paths.push(path);
    files.push(await uring.open(path, { read: true, write: true }));
  }

  const inflight = new Map<number, { done: Promise<void>; locks: Lock[]; abort?: AbortController }>();
  let nextId = 0;
  const counts: Record<string, number> = {};
  const failures: string[] = [];
  let aborted = 0;
  const check = (ok: boolean, what: string) => {
    if (!ok && failures.length < 10) failures.push(what);
  };

  const launch = (locks: Lock[], abort: AbortController | undefined, work: () => Promise<void>) => {
    const id = nextId++;
    const done = work().finally(() => inflight.delete(id));
    inflight.set(id, { done, locks, abort });
  };

  for (let n = 0; n < OPS_PER_RUN; n++) {
    while (inflight.size >= depth) await Promise.race([...inflight.values()].map((e) => e.done));
    // Now and then abort something in flight.
    if (inflight.size > 0 && rng.chance(0.03)) {
      const withSignal = [...inflight.values()].filter((e) => e.abort);
      if (withSignal.length > 0) {
        withSignal[rng.int(withSignal.length)].abort!.abort(new Error("random abort"));
      }
    }
    const kind = rng.int(100);
    const f = rng.int(FILES);
    const model = models[f];
    const abort = rng.chance(0.15) ? new AbortController() : undefined;
    const signal = abort?.signal;
    if (kind < 35) {
      // read (raw fd or UringFile; sometimes readv)
      const off = rng.int(model.size + 1000);
      const len = rng.range(1, 20_000);
      const lock: Lock = { file: f, start: off, end: off + len, write: false };
      while ([...inflight.values()].some((e) => e.locks.some((l) => overlaps(l, lock)))) {
        await Promise.race([...inflight.values()].map((e) => e.done));
      }
      const expect = model.read(off, len);
      const vector = rng.chance(0.2);
      counts[vector ? "readv" : "read"] = (counts[vector ? "readv" : "read"] ?? 0) + 1;
      launch([lock], abort, async () => {
        const buf = new Uint8Array(len);
        let p: Promise<number>;
        if (vector) {
          const cut = rng.int(len + 1);
          p = uring.readv(files[f].fd, [buf.subarray(0, cut), buf.subarray(cut)], off, { signal });
        } else if (rng.chance(0.5)) p = files[f].readAt(buf, off, { signal });
        else p = uring.read(files[f].fd, buf, off, { signal });
        const r = await tracker.track(p);
        if (r.ok) {
          check(
            r.value === expect.length,
            `read ${f}@${off}+${len}: got ${r.value} bytes, want ${expect.length}`,
          );
          check(
            buf.subarray(0, r.value).every((b, i) => b === expect[i]),
            `read ${f}@${off}+${len}: data differs from the model`,
          );
        } else {
          aborted++;
          check(signal?.aborted === true && r.error === signal.reason, `read failed: ${r.error}`);
        }
      });
    } else if (kind < 65) {
      // write (sometimes past the end, sometimes writev); the model changes at completion
      const extend = rng.chance(0.05);
      const off = extend ? model.size + rng.int(5000) : rng.int(Math.max(1, model.size - 1));
      const len = rng.range(1, 16_384);
      const grows = off + len > model.size;
      const lock: Lock = {
        file: f,
        start: grows ? Math.min(off, model.size) : off,
        end: grows ? Infinity : off + len,
        write: true,
      };
      while ([...inflight.values()].some((e) => e.locks.some((l) => overlaps(l, lock)))) {
        await Promise.race([...inflight.values()].map((e) => e.done));
      }
      const data = rng.fill(new Uint8Array(len));
      const vector = rng.chance(0.2);
      counts[vector ? "writev" : "write"] = (counts[vector ? "writev" : "write"] ?? 0) + 1;
      launch([lock], abort, async () => {
        let p: Promise<number>;
        if (vector) {
          const cut = rng.int(len + 1);
          p = uring.writev(files[f].fd, [data.subarray(0, cut), data.subarray(cut)], off, { signal });
        } else if (rng.chance(0.5)) p = files[f].writeAt(data, off, { signal });
        else p = uring.write(files[f].fd, data, off, { signal });
        const r = await tracker.track(p);
        if (r.ok) {
          check(r.value > 0 && r.value <= len, `write ${f}@${off}+${len}: wrote ${r.value}`);
          model.write(off, data.subarray(0, r.value));
        } else {
          aborted++;
          check(signal?.aborted === true && r.error === signal.reason, `write failed: ${r.error}`);
        }
      });
    } else if (kind < 75) {
      counts.nop = (counts.nop ?? 0) + 1;
      launch([], abort, async () => {
        const r = await tracker.track(uring.nop({ signal }));
        check(
          r.ok || (signal?.aborted === true && r.error === signal.reason),
          `nop failed: ${!r.ok && r.error}`,
        );
      });
    } else if (kind < 85) {
      counts.timeout = (counts.timeout ?? 0) + 1;
      const ms = rng.chance(0.2) ? 1000 : rng.int(3);
      // Long timeouts are always aborted soon, so the run stays short.
      const ac = ms === 1000 ? new AbortController() : abort;
      launch([], ac, async () => {
        const p = uring.timeout(ms, { signal: ac?.signal });
        if (ms === 1000) setTimeout(() => ac!.abort(new Error("timeout aborted")), rng.int(3));
        const r = await tracker.track(p);
        check(
          r.ok || (ac?.signal.aborted === true && r.error === ac.signal.reason),
          `timeout failed: ${!r.ok && r.error}`,
        );
      });
    } else {
      // chain: write -> (fsync) -> read back the same range; the read must see the write
      const off = rng.int(model.size);
      const len = rng.range(1, 8192);
      const grows = off + len > model.size;
      const lock: Lock = { file: f, start: off, end: grows ? Infinity : off + len, write: true };
      while ([...inflight.values()].some((e) => e.locks.some((l) => overlaps(l, lock)))) {
        await Promise.race([...inflight.values()].map((e) => e.done));
      }
      const data = rng.fill(new Uint8Array(len));
      const back = new Uint8Array(len);
      const sync = rng.chance(0.1) && entries >= 3;
      if (entries < 2) continue; // a chain of two needs two SQ entries
      counts.chain = (counts.chain ?? 0) + 1;
      launch([lock], undefined, async () => {
        const r = await tracker.track(uring.chain((c) => {
          c.write(files[f].fd, data, off);
          if (sync) c.fsync(files[f].fd, { datasync: true });
          c.read(files[f].fd, back, off);
        }));
        if (!r.ok) {
          check(false, `chain failed: ${r.error}`);
          return;
        }
        const [w, ...rest] = r.value;
        check(w.ok && w.value === len, `chain write: ${JSON.stringify(w)}`);
        if (w.ok) model.write(off, data.subarray(0, w.value));
        const rd = rest[rest.length - 1];
        check(rd.ok && rd.value === len, `chain read: ${JSON.stringify(rd)}`);
        check(back.every((b, i) => b === data[i]), "chain read did not see the chain's write");
      });
    }
  }
  while (inflight.size > 0) await Promise.all([...inflight.values()].map((e) => e.done));
  assert.deepEqual(failures, [], failures.join("\n"));
  tracker.assertAllSettledOnce();
  assert.equal(uring.pending, 0, "operations left pending");
  await uring.close();
  assert.ok(files.every((f) => f.closed));
  for (let i = 0; i < FILES; i++) {
    const actual = Deno.readFileSync(paths[i]);
    const expected = models[i].bytes.subarray(0, models[i].size);
    assert.equal(actual.length, expected.length, `file ${i}: size`);
    const at = actual.findIndex((b, j) => b !== expected[j]);
    assert.equal(at, -1, `file ${i} differs from the model at byte ${at}`);
  }
  return `entries=${entries} depth=${depth} ops=${tracker.issued} ${JSON.stringify(counts)} ` +
    `aborted=${aborted} waits=${uring.stats.waits} spins=${uring.stats.spinHits}/${uring.stats.spins}`;
}

function seeds(): number[] {
  const fixed = Deno.env.get("URING_PROPERTY_SEED");
  if (fixed) return [Number(fixed)];
  return Array.from({ length: RUNS_PER_CONFIG }, () => (Math.random() * 2 ** 32) >>> 0);
}

ringTest("Uring property: random operations match a model of the files", async (config) => {
  using dir = tempDir();
  for (const seed of seeds()) {
    try {
      const summary = await run(config, seed, dir.path);
      if (Deno.env.get("URING_PROPERTY_VERBOSE")) console.log(`seed ${seed}: ${summary}`);
    } catch (e) {
      console.error(
        `\nURING PROPERTY FAILURE: seed ${seed} [${config.name}]; rerun with URING_PROPERTY_SEED=${seed}`,
      );
      throw e;
    }
  }
});

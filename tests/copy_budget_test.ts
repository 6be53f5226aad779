import assert from "node:assert/strict";
import { BufferPool, Semaphore } from "../src/copy_budget.ts";
import {
  blockBuffers,
  DEFAULT_BLOCK_SIZE,
  DEFAULT_QUEUE_DEPTH,
  smallFileBuffers,
} from "../src/copy_options.ts";
import { dataRuns, HOLE_GRAIN, isZeroBlock } from "../src/copy_uring_engine.ts";
import { tempPathFor } from "../src/copy_regular.ts";
import { copyFile, copyTree, Uring } from "../mod.ts";
import { copyFixedFiles, createCopyUring } from "../src/copy_context.ts";
import { skipKernel, tempDir } from "./_support.ts";
import { randomBytes, randomFile, sha256File } from "./copy_support.ts";

Deno.test("copy budget: Semaphore takes several permits at once, in order, without overtaking", async () => {
  const s = new Semaphore(6);
  assert.equal(s.tryAcquire(4), true);
  assert.equal(s.tryAcquire(3), false, "only 2 are free");
  const order: string[] = [];
  const big = s.acquire(6).then(() => order.push("six"));
  const small = s.acquire(1).then(() => order.push("one"));
  assert.equal(s.tryAcquire(1), false, "a waiter is queued: no barging, even for one permit");
  s.release(2);
  s.release(2);
  await big;
  assert.deepEqual(order, ["six"], "the request for six went first; the one after it waits");
  s.release(6);
  await small;
  assert.deepEqual(order, ["six", "one"]);
  s.release(1);
  assert.equal(s.free, 6);
  await assert.rejects(s.acquire(7), RangeError);
  await assert.rejects(s.acquire(0), RangeError);
  assert.throws(() => s.release(1), /released more often than acquired/);
});

Deno.test("copy budget: Semaphore hands out at most `limit` permits, first come first served", async () => {
  const s = new Semaphore(2);
  assert.equal(s.tryAcquire(), true);
  await s.acquire();
  assert.equal(s.free, 0);
  assert.equal(s.tryAcquire(), false);
  const order: number[] = [];
  const waiting = [1, 2, 3].map((i) => s.acquire().then(() => order.push(i)));
  s.release();
  s.release();
  await Promise.all(waiting.slice(0, 2));
  assert.deepEqual(order, [1, 2]);
  assert.equal(s.tryAcquire(), false, "a waiter is still queued: no barging");
  s.release();
  await waiting[2];
  assert.deepEqual(order, [1, 2, 3]);
  s.release();
  s.release();
  assert.equal(s.free, 2);
  assert.throws(() => s.release(), /released more often than acquired/);
  assert.throws(() => new Semaphore(0), RangeError);
  // run() returns the permit even when the function throws.
  await assert.rejects(s.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(s.free, 2);
  assert.equal(await s.run(() => Promise.resolve(7)), 7);
});

Deno.test("copy budget: BufferPool makes at most `count` buffers and reuses them", async () => {
  let made = 0;
  const pool = new BufferPool(3, 16, () => {
    made++;
    return new Uint8Array(16);
  });
  const a = await pool.take();
  const b = await pool.take();
  const c = await pool.take();
  assert.equal(made, 3);
  let fourth: Uint8Array | undefined;
  const waiting = pool.take().then((buf) => (fourth = buf));
  await Promise.resolve();
  assert.equal(fourth, undefined, "waits while all are out");
  pool.give(b);
  await waiting;
  assert.equal(fourth, b, "the returned buffer is reused");
  pool.give(a);
  pool.give(c);
  pool.give(fourth!);
  for (let i = 0; i < 10; i++) pool.give(await pool.take());
  assert.equal(made, 3);
});

Deno.test("copy: isZeroBlock looks at exactly `length` bytes, at any alignment", () => {
  const buf = new Uint8Array(4096 + 7);
  assert.equal(isZeroBlock(buf, buf.length), true);
  for (const at of [0, 1, 31, 32, 4095, 4096, 4102]) {
    buf.fill(0);
    buf[at] = 1;
    assert.equal(isZeroBlock(buf, buf.length), false, `a one at ${at}`);
    assert.equal(isZeroBlock(buf, at), true, `zeros before ${at}`);
  }
  const odd = new Uint8Array(100).subarray(3, 90); // unaligned view
  assert.equal(isZeroBlock(odd, odd.length), true);
  odd[86] = 9;
  assert.equal(isZeroBlock(odd, odd.length), false);
  assert.equal(isZeroBlock(odd, 86), true);
});

Deno.test("copy: temporary names sit next to the destination and stay short", () => {
  const t = tempPathFor("/a/b/file.txt");
  assert.match(t, /^\/a\/b\/\.file\.txt\.uring-tmp-[0-9a-f]{8}$/);
  assert.match(tempPathFor("bare"), /^\.bare\.uring-tmp-[0-9a-f]{8}$/);
  const long = tempPathFor(`/x/${"é".repeat(120)}`);
  const name = long.slice(3);
  assert.ok(new TextEncoder().encode(name).length <= 255, "within NAME_MAX");
  assert.notEqual(tempPathFor("/x/y"), tempPathFor("/x/y"));
  // A destination just short of PATH_MAX (4,096 bytes with the NUL): the name the temporary path
  // keeps shrinks so that it fits too, as long as it can.
  const dir = `/${Array.from({ length: 20 }, () => "d".repeat(201)).join("/")}`; // 4,040 bytes
  const near = `${dir}/${"n".repeat(50)}`; // 4,091
  const tmp = tempPathFor(near);
  assert.ok(new TextEncoder().encode(tmp).length < 4096, `${tmp.length} bytes`);
  assert.ok(tmp.startsWith(`${dir}/.nnn`) && /\.uring-tmp-[0-9a-f]{8}$/.test(tmp));
});

Deno.test({
  name: "copyFile: one file keeps up to queueDepth blocks in flight, never more",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const hash = await randomFile(`${dir.path}/src`, 8 * 1024 * 1024);
    await using uring = new Uring({ sqpoll: false, entries: 64 });
    // Count the block reads and writes the copy has started and not yet seen settle: that is its
    // in-flight budget as it spends it (the kernel may finish cached I/O inside the submit call, so
    // `uring.pending` sampled from a progress callback says little).
    let outstanding = 0;
    let most = 0;
    const track = <T>(p: Promise<T>): Promise<T> => {
      most = Math.max(most, ++outstanding);
      return p.finally(() => outstanding--);
    };
    const { read, write } = uring;
    uring.read = (...args: Parameters<typeof read>) => track(read.apply(uring, args));
    uring.write = (...args: Parameters<typeof write>) => track(write.apply(uring, args));
    for (const queueDepth of [1, 8]) {
      most = 0;
      await copyFile(`${dir.path}/src`, `${dir.path}/dst-${queueDepth}`, {
        uring,
        queueDepth,
        blockSize: 65536,
        splice: false, // the buffered path's blocks (the splice lanes' budget: tests/copy_splice_test.ts)
      });
      assert.equal(await sha256File(`${dir.path}/dst-${queueDepth}`), hash);
      assert.ok(most <= queueDepth, `queueDepth ${queueDepth}: saw ${most} operations at once`);
      if (queueDepth > 1) assert.ok(most > 1, `queueDepth ${queueDepth} overlaps blocks (saw ${most})`);
    }
  },
});

Deno.test("copy: dataRuns keeps the grains with data, merges neighbours, aligns grains to the file", () => {
  const g = HOLE_GRAIN;
  const buf = new Uint8Array(16 * g + 100);
  assert.deepEqual(dataRuns(buf, buf.length, 0), [], "all zero: no runs");
  buf[5] = 1;
  assert.deepEqual(dataRuns(buf, buf.length, 0), [0, g], "one byte: its grain only");
  buf[g] = 1; // the next grain: merged into one run
  assert.deepEqual(dataRuns(buf, buf.length, 0), [0, 2 * g]);
  buf[8 * g + 3] = 1;
  buf[16 * g + 99] = 1; // in the short last grain: the run ends at `length`
  assert.deepEqual(dataRuns(buf, buf.length, 0), [0, 2 * g, 8 * g, 9 * g, 16 * g, 16 * g + 100]);
  assert.deepEqual(dataRuns(buf, 16 * g + 99, 0), [0, 2 * g, 8 * g, 9 * g], "looks at `length` bytes only");
  // A block starting off a grain boundary of the file: edges fall on the file's grains.
  buf.fill(0);
  buf[g / 2 + 1] = 1;
  assert.deepEqual(dataRuns(buf, 3 * g, g / 2), [g / 2, g / 2 + g]);
  buf[0] = 1;
  assert.deepEqual(dataRuns(buf, 3 * g, g / 2), [0, g / 2 + g]);
  // Every byte position is seen.
  buf.fill(0);
  for (const at of [0, 1, g - 1, g, 3 * g + 7, 16 * g + 99]) {
    buf[at] = 1;
    const runs = dataRuns(buf, buf.length, 0);
    assert.equal(runs.length, 2, `one run for a one at ${at}`);
    assert.ok(runs[0] <= at && at < runs[1], `the run covers ${at}`);
    buf[at] = 0;
  }
});

Deno.test("copy budget: data blocks in flight stay within 32 MiB of buffers, at least two, at most queueDepth", () => {
  const MiB = 1024 * 1024;
  assert.equal(blockBuffers(96, MiB), 32);
  assert.equal(blockBuffers(96, 64 * 1024), 96);
  assert.equal(blockBuffers(17, 33 * MiB), 2);
  assert.equal(blockBuffers(1, 64 * MiB), 1);
  assert.equal(blockBuffers(DEFAULT_QUEUE_DEPTH, DEFAULT_BLOCK_SIZE) * DEFAULT_BLOCK_SIZE, 32 * MiB);
  // One-block files: one buffer per chain of six, within the same 32 MiB, at least one.
  assert.equal(smallFileBuffers(96, MiB), 16);
  assert.equal(smallFileBuffers(96, 16 * MiB), 2);
  assert.equal(smallFileBuffers(6, 64 * MiB), 1);
  assert.equal(smallFileBuffers(5, 4096), 1);
  // The largest options allowed hold at most 2 + 1 blocks of 64 MiB, whatever the queue depth
  // (this bound replaced refusing queueDepth × blockSize above 1 GiB).
  assert.equal(blockBuffers(4096, 64 * MiB) + smallFileBuffers(4096, 64 * MiB), 3);
});

Deno.test({
  name:
    "copy budget: the default queue depth takes blocks up to the 64 MiB limit (buffers stay within 32 MiB)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const MiB = 1024 * 1024;
    const hash = await randomFile(`${dir.path}/src`, 40 * MiB + 7);
    const r = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, { blockSize: 16 * MiB });
    assert.equal(r.bytes, 40 * MiB + 7);
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
  },
});

Deno.test({
  name:
    "copy budget: at the default depth every one-block file of a tree goes by chain (the file table fits)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const files = 300;
    await Deno.mkdir(`${dir.path}/src`);
    for (let i = 0; i < files; i++) Deno.writeFileSync(`${dir.path}/src/f${i}`, randomBytes(1 + i * 37));
    // The copy's own kind of Uring, counted: a chain reads and writes through the file table (two
    // direct descriptors), the block path through plain fds.
    await using uring = createCopyUring(DEFAULT_QUEUE_DEPTH, false);
    assert.ok(
      copyFixedFiles(DEFAULT_QUEUE_DEPTH) >= 2 * smallFileBuffers(DEFAULT_QUEUE_DEPTH, DEFAULT_BLOCK_SIZE),
    );
    const result = await copyTree(`${dir.path}/src`, `${dir.path}/dst`, { uring });
    assert.equal(result.files, files);
    assert.equal(uring.stats.fixedFiles, 2 * files, "one read and one write per file on direct descriptors");
    for (const i of [0, 7, files - 1]) {
      assert.deepEqual(
        Deno.readFileSync(`${dir.path}/dst/f${i}`),
        Deno.readFileSync(`${dir.path}/src/f${i}`),
      );
    }
    assert.deepEqual(copyFixedFiles(96), 64);
    assert.deepEqual(copyFixedFiles(4096), 1024, "within the usual RLIMIT_NOFILE");
  },
});

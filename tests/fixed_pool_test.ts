import assert from "node:assert/strict";
import {
  addressOf,
  alignedBuffer,
  checkDirectAlignment,
  checkFixedBuffer,
  ClosedError,
  FixedBuffer,
  FixedBufferPool,
  IORING_MAX_REG_BUFFERS,
  IORING_OP_READ_FIXED,
  IORING_OP_WRITE_FIXED,
  IoUring,
  O_CREAT,
  O_DIRECT,
  O_RDONLY,
  O_WRONLY,
  prepReadFixed,
  type Sqe,
} from "../mod.ts";
import { assertErr, closeFd, openFile, pattern, reap, run } from "./_io.ts";
import { directTempDir, skipDirect } from "./_direct.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";

/** Submits the SQE `queue` returns (from a pool, which takes its own SQE) and returns its res. */
function runQueued(ring: IoUring, queue: () => Sqe | null, userData = 0xf1dn): number {
  const sqe = queue();
  assert.ok(sqe, "the SQ should have room");
  sqe.setUserData(userData);
  ring.submit();
  return reap(ring, 1).get(userData)!.res;
}

ringTest("FixedBufferPool: registers count aligned buffers once, with their indexes", (config) => {
  using ring = new IoUring(8, config.options);
  using pool = new FixedBufferPool(ring, { count: 4, size: 10_000 });
  assert.equal(pool.count, 4);
  assert.equal(pool.size, 10_000);
  assert.equal(pool.alignment, 4096);
  assert.equal(pool.available, 4);
  const registered = ring.registeredBuffers!;
  assert.equal(registered.length, 4);
  for (let i = 0; i < 4; i++) {
    const buf = pool.buffer(i);
    assert.ok(buf instanceof FixedBuffer);
    assert.equal(buf.index, i);
    assert.throws(() => (buf as { index: number }).index = 99, TypeError, "the index cannot be changed");
    assert.equal(buf.bytes.byteLength, 10_000);
    assert.equal(addressOf(buf.bytes) % 4096, 0, `buffer ${i} is aligned`);
    assert.equal(addressOf(registered[i]), addressOf(buf.bytes), `registered[${i}] is buffer ${i}`);
    assert.equal(registered[i].byteLength, 10_000);
  }
  // Buffers do not overlap: each starts at or after the previous one's end.
  for (let i = 1; i < 4; i++) {
    assert.ok(addressOf(pool.buffer(i).bytes) >= addressOf(pool.buffer(i - 1).bytes) + 10_000);
  }
});

ringTest("FixedBufferPool: bad options say what they got, and its type", (config) => {
  using ring = new IoUring(8, config.options);
  // (A TypeError for a value that is no number at all, a RangeError for a wrong number.)
  const bad: Array<[object, string, RegExp]> = [
    [
      { count: "2", size: 4096 },
      "TypeError",
      /^count must be an integer from 1 to 16384, got "2" \(a string\)$/,
    ],
    [
      { count: 2, size: 2n },
      "TypeError",
      /^size must be an integer from 1 to 1073741824, got 2n \(a bigint\)$/,
    ],
    [
      { count: 2, size: 4096, alignment: 0 },
      "RangeError",
      /^alignment must be a power of two from 512 to 1073741824, got 0$/,
    ],
  ];
  for (const [options, name, message] of bad) {
    assert.throws(() => new FixedBufferPool(ring, options as never), { name, message });
  }
  assert.equal(ring.registeredBuffers, undefined);
  using buf = alignedBuffer(4096);
  assert.throws(() => checkDirectAlignment(buf, 0, "512" as never), /got "512" \(a string\)/);
});

ringTest("FixedBufferPool: up to IORING_MAX_REG_BUFFERS buffers (more than readv's IOV_MAX)", (config) => {
  using ring = new IoUring(8, config.options);
  {
    using pool = new FixedBufferPool(ring, { count: IORING_MAX_REG_BUFFERS, size: 512, alignment: 512 });
    assert.equal(ring.registeredBuffers!.length, IORING_MAX_REG_BUFFERS);
    const last = pool.buffer(IORING_MAX_REG_BUFFERS - 1);
    assert.equal(addressOf(ring.registeredBuffers![IORING_MAX_REG_BUFFERS - 1]), addressOf(last.bytes));
  }
  const many = Array.from({ length: 2000 }, () => new Uint8Array(64));
  ring.registerBuffers(many);
  assert.equal(ring.registeredBuffers!.length, 2000);
  ring.unregisterBuffers();
  const tooMany = Array.from({ length: IORING_MAX_REG_BUFFERS + 1 }, () => new Uint8Array(1));
  assert.throws(() => ring.registerBuffers(tooMany), /at most 16384 iovecs, got 16385/);
  assert.equal(ring.registeredBuffers, undefined);
});

ringTest(
  "FixedBufferPool: acquire/release hand buffers out once each, and catch double release",
  (config) => {
    using ring = new IoUring(8, config.options);
    using pool = new FixedBufferPool(ring, { count: 3, size: 4096, alignment: 512 });
    const got = [pool.acquire(), pool.acquire(), pool.acquire()];
    assert.deepEqual(got.map((b) => b?.index), [0, 1, 2]);
    assert.equal(pool.available, 0);
    assert.equal(pool.acquire(), null, "exhausted");
    assert.ok(got.every((b) => b!.acquired));
    pool.release(got[1]!);
    assert.equal(got[1]!.acquired, false);
    assert.equal(pool.available, 1);
    assert.throws(() => pool.release(got[1]!), /was not acquired \(double release\?\)/);
    assert.equal(pool.acquire(), got[1], "the released buffer comes back");
    using ring2 = new IoUring(2, config.options);
    using other = new FixedBufferPool(ring2, { count: 1, size: 4096 });
    assert.throws(() => pool.release(other.buffer(0)), /belongs to another pool/);
    assert.throws(() => pool.buffer(3), /out of range: the pool has 3 buffers/);
  },
);

ringTest("FixedBufferPool: READ_FIXED into registered buffers matches the file", (config) => {
  using dir = tempDir();
  const file = `${dir.path}/f`;
  const data = pattern(64 * 1024, 4);
  Deno.writeFileSync(file, data);
  using ring = new IoUring(16, config.options);
  using pool = new FixedBufferPool(ring, { count: 4, size: 16 * 1024 });
  const fd = openFile(ring, file, O_RDONLY);
  const bufs = [0, 1, 2, 3].map(() => pool.acquire()!);
  for (const buf of bufs) {
    const sqe = pool.readFixed(fd, buf, buf.index * 16 * 1024)!;
    assert.equal(sqe.opcode, IORING_OP_READ_FIXED);
    sqe.setUserData(100 + buf.index);
  }
  ring.submit();
  const done = reap(ring, 4);
  for (const buf of bufs) {
    assert.equal(done.get(BigInt(100 + buf.index))!.res, 16 * 1024);
    assert.deepEqual(buf.bytes, data.subarray(buf.index * 16 * 1024, (buf.index + 1) * 16 * 1024));
  }
  // A shorter length reads only that many bytes into the start of the buffer.
  bufs[0].bytes.fill(0);
  assert.equal(runQueued(ring, () => pool.readFixed(fd, bufs[0], 100, 300)!), 300);
  assert.deepEqual(bufs[0].bytes.subarray(0, 300), data.subarray(100, 400));
  assert.ok(bufs[0].bytes.subarray(300).every((b) => b === 0));
  for (const buf of bufs) pool.release(buf);
  closeFd(ring, fd);
});

ringTest("FixedBufferPool: WRITE_FIXED from registered buffers lands in the file", (config) => {
  using dir = tempDir();
  const file = `${dir.path}/f`;
  using ring = new IoUring(8, config.options);
  using pool = new FixedBufferPool(ring, { count: 2, size: 8192 });
  const fd = openFile(ring, file, O_WRONLY | O_CREAT);
  const a = pool.acquire()!, b = pool.acquire()!;
  a.bytes.set(pattern(8192, 1));
  b.bytes.set(pattern(8192, 2));
  const sa = pool.writeFixed(fd, a, 0)!;
  assert.equal(sa.opcode, IORING_OP_WRITE_FIXED);
  sa.setUserData(1);
  pool.writeFixed(fd, b, 8192, 5000)!.setUserData(2);
  ring.submit();
  const done = reap(ring, 2);
  assert.equal(done.get(1n)!.res, 8192);
  assert.equal(done.get(2n)!.res, 5000);
  closeFd(ring, fd);
  const got = Deno.readFileSync(file);
  assert.equal(got.byteLength, 8192 + 5000);
  assert.deepEqual(got.subarray(0, 8192), pattern(8192, 1));
  assert.deepEqual(got.subarray(8192), pattern(8192, 2).subarray(0, 5000));
});

for (const options of [{ sqpoll: false }, { sqpoll: true }] as const) {
  Deno.test({
    name:
      `FixedBufferPool: O_DIRECT READ_FIXED/WRITE_FIXED round trip matches Deno's reads [sqpoll ${options.sqpoll}]`,
    ignore: skipDirect(),
    fn() {
      using dir = directTempDir();
      const file = `${dir.path}/f`;
      using ring = new IoUring(8, options);
      using pool = new FixedBufferPool(ring, { count: 2, size: 64 * 1024 });
      const out = openFile(ring, file, O_WRONLY | O_CREAT | O_DIRECT);
      const w = pool.acquire()!;
      w.bytes.set(pattern(64 * 1024, 6));
      checkDirectAlignment(w.bytes, 4096);
      assert.equal(runQueued(ring, () => pool.writeFixed(out, w, 4096)!), 64 * 1024);
      closeFd(ring, out);
      const deno = Deno.readFileSync(file);
      assert.deepEqual(deno.subarray(4096), w.bytes);
      const inp = openFile(ring, file, O_RDONLY | O_DIRECT);
      const r = pool.acquire()!;
      assert.equal(runQueued(ring, () => pool.readFixed(inp, r, 0)!), 64 * 1024);
      assert.deepEqual(r.bytes, deno.subarray(0, 64 * 1024));
      closeFd(ring, inp);
    },
  });
}

ringTest(
  "fixed buffers: an out-of-range index is rejected before submission (the kernel says EFAULT)",
  (config) => {
    using dir = tempDir();
    const file = `${dir.path}/f`;
    Deno.writeFileSync(file, pattern(8192));
    using ring = new IoUring(8, config.options);
    using pool = new FixedBufferPool(ring, { count: 2, size: 4096 });
    const fd = openFile(ring, file, O_RDONLY);
    const view = pool.buffer(1).bytes;
    checkFixedBuffer(ring, view, 1);
    checkFixedBuffer(ring, view.subarray(100, 200), 1);
    const before = ring.sqReady();
    assert.throws(
      () => checkFixedBuffer(ring, view, 2),
      /index 2 is out of range: the ring has 2 registered buffers/,
    );
    assert.throws(() => checkFixedBuffer(ring, view, -1), /out of range/);
    assert.throws(() => checkFixedBuffer(ring, view, 1.5), /out of range/);
    assert.throws(() => checkFixedBuffer(ring, view, 0), /is not inside registered buffer 0/);
    using outside = alignedBuffer(4096);
    assert.throws(() => checkFixedBuffer(ring, outside.bytes, 1), /not inside registered buffer 1/);
    assert.equal(ring.sqReady(), before, "nothing was queued");
    // What the check prevents: the kernel's bare EFAULT for the same request.
    assertErr(run(ring, (s) => prepReadFixed(s, fd, view, 0, 2)), "EFAULT", "READ_FIXED with index 2 of 2");
    assertErr(
      run(ring, (s) => prepReadFixed(s, fd, outside.bytes, 0, 1)),
      "EFAULT",
      "buffer outside index 1",
    );
    closeFd(ring, fd);
    // A closed ring says so (it said "no buffers are registered with this ring").
    ring.close();
    assert.throws(() => checkFixedBuffer(ring, view, 1), ClosedError);
  },
);

ringTest("FixedBufferPool: bad requests throw before taking an SQE", (config) => {
  using ring = new IoUring(4, config.options);
  using pool = new FixedBufferPool(ring, { count: 2, size: 4096 });
  const held = pool.acquire()!;
  const free = pool.buffer(1);
  using ring2 = new IoUring(2, config.options);
  using other = new FixedBufferPool(ring2, { count: 1, size: 4096 });
  const space = ring.sqSpaceLeft();
  assert.throws(() => pool.readFixed(0, free, 0), /fixed buffer 1 is not acquired/);
  assert.throws(() => pool.readFixed(0, other.acquire()!, 0), /belongs to another pool/);
  assert.throws(() => pool.readFixed(0, held, 0, 4097), /length must be an integer from 0 to 4096/);
  assert.throws(() => pool.writeFixed(0, held, -1), RangeError);
  assert.throws(() => pool.writeFixed(-5, held, 0), RangeError);
  assert.equal(ring.sqSpaceLeft(), space, "no SQE was taken");
  // The SQ full: null, nothing queued.
  const sqes = [];
  for (let s = ring.getSqe(); s !== null; s = ring.getSqe()) sqes.push(s);
  assert.equal(pool.readFixed(0, held, 0), null);
  assert.ok(sqes.length > 0);
});

ringTest("FixedBufferPool: close() unregisters and frees; the ring can take a new pool", (config) => {
  using ring = new IoUring(4, config.options);
  const pool = new FixedBufferPool(ring, { count: 2, size: 4096 });
  const buf = pool.acquire()!;
  const view = buf.bytes;
  assert.throws(() => new FixedBufferPool(ring, { count: 1, size: 4096 }), /already has registered buffers/);
  pool.close();
  assert.equal(pool.closed, true);
  assert.equal(ring.registeredBuffers, undefined, "unregistered");
  assert.equal(view.byteLength, 0, "views are detached");
  assert.throws(() => buf.bytes, /FixedBufferPool is closed/);
  assert.throws(() => pool.acquire(), /closed/);
  assert.throws(() => pool.readFixed(0, buf, 0), /closed/);
  assert.equal(pool.available, 0);
  pool.close(); // idempotent
  pool.release(buf); // a late release after close is harmless
  using again = new FixedBufferPool(ring, { count: 1, size: 4096 });
  assert.equal(ring.registeredBuffers!.length, 1);
  assert.equal(again.available, 1);
});

ringTest("FixedBufferPool: a pool outlives its ring's close, and notices its buffers are gone", (config) => {
  const ring = new IoUring(4, config.options);
  using pool = new FixedBufferPool(ring, { count: 1, size: 4096 });
  const buf = pool.acquire()!;
  ring.close();
  assert.throws(() => pool.readFixed(0, buf, 0), /no longer registered with the ring/);
  pool.close();
  assert.throws(() => buf.bytes, /closed/);
});

Deno.test({
  name: "FixedBufferPool: bad options, a ring with buffers registered already, a closed ring",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(2, { sqpoll: false });
    for (
      const options of [
        { count: 0, size: 4096 },
        { count: IORING_MAX_REG_BUFFERS + 1, size: 4096 },
        { count: 1.5, size: 4096 },
        { count: 1, size: 0 },
        { count: 1, size: 2 ** 30 + 1 },
        { count: 1, size: 4096, alignment: 100 },
      ]
    ) {
      assert.throws(() => new FixedBufferPool(ring, options), RangeError, JSON.stringify(options));
    }
    assert.equal(ring.registeredBuffers, undefined);
    // Buffers registered by someone else: the pool refuses before the kernel's EBUSY.
    using held = alignedBuffer(4096);
    ring.registerBuffers([held.bytes]);
    assert.throws(
      () => new FixedBufferPool(ring, { count: 1, size: 4096 }),
      /already has registered buffers/,
    );
    ring.unregisterBuffers();
    ring.close();
    assert.throws(() => new FixedBufferPool(ring, { count: 1, size: 4096 }), /ring is closed/);
  },
});

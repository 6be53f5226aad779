/**
 * Kernel tests of IoUring and the prep helpers: every test runs four times, with and without
 * SQPOLL, on the C helper and on the libc fallback (see ringTest in _support.ts). Completions are
 * matched by user_data, never by order; files are checked with Deno's own file API.
 */

import assert from "node:assert/strict";
import {
  AT_FDCWD,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  type Backend,
  ClosedError,
  type Cqe,
  cstring,
  errno,
  FALLOC_FL_KEEP_SIZE,
  FILES_UPDATE_SIZE,
  getSys,
  HELPER_PATH,
  IORING_ASYNC_CANCEL_ALL,
  IORING_FEAT_EXT_ARG,
  IORING_FEAT_NODROP,
  IORING_FEAT_SINGLE_MMAP,
  IORING_OP_FTRUNCATE,
  IORING_OP_LINKAT,
  IORING_OP_NOP,
  IORING_OP_OPENAT2,
  IORING_OP_READ,
  IORING_OP_SPLICE,
  IORING_OP_TEE,
  IORING_OP_TIMEOUT,
  IORING_REGISTER_FILES_SKIP,
  IORING_REGISTER_RING_FDS,
  IORING_SETUP_COOP_TASKRUN,
  IORING_SETUP_CQSIZE,
  IORING_SETUP_NO_SQARRAY,
  IORING_SETUP_SQPOLL,
  IORING_SETUP_TASKRUN_FLAG,
  IORING_SQ_TASKRUN,
  IORING_TIMEOUT_ETIME_SUCCESS,
  IORING_UNREGISTER_RING_FDS,
  IOSQE_ASYNC,
  IOSQE_CQE_SKIP_SUCCESS,
  IOSQE_FIXED_FILE,
  IOSQE_IO_DRAIN,
  IOSQE_IO_HARDLINK,
  IOSQE_IO_LINK,
  IoUring,
  IoUringError,
  Iovecs,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  openHow,
  PARAMS,
  PARAMS_SIZE,
  parseStatx,
  POLLIN,
  POSIX_FADV_SEQUENTIAL,
  prepCancel,
  prepCancelOp,
  prepClose,
  prepCloseDirect,
  prepFadvise,
  prepFallocate,
  prepFdatasync,
  prepFsync,
  prepFtruncate,
  prepLinkat,
  prepLinkTimeout,
  prepMadvise,
  prepMkdirat,
  prepNop,
  prepOpenat,
  prepOpenat2,
  prepPollAdd,
  prepPollRemove,
  prepRead,
  prepReadFixed,
  prepReadv,
  prepRenameat,
  prepSplice,
  prepStatx,
  prepSymlinkat,
  prepSyncFileRange,
  prepTee,
  prepTimeout,
  prepTimeoutRemove,
  prepUnlinkat,
  prepWrite,
  prepWriteFixed,
  prepWritev,
  RENAME_NOREPLACE,
  RESOLVE,
  SEEK_DATA,
  SEEK_HOLE,
  type Sqe,
  STATX_BASIC_STATS,
  STATX_BTIME,
  statxBuffer,
  SYNC_FILE_RANGE_WRITE,
  Timespec,
} from "../mod.ts";
import { older, ringTest, skipKernel, tempDir } from "./_support.ts";
import { childResults, MOD_URL } from "./uring_support.ts";
import {
  assertErr,
  assertNoCompletion,
  closeFd,
  describe,
  eventfd,
  mkfifo,
  openFile,
  OtherCpuWriter,
  pattern,
  pipe,
  reap,
  run,
  sysClose,
  sysRead,
  sysWrite,
} from "./_io.ts";

/** getSqe, waiting (bounded) for the SQ poll thread to free a slot; fails the test otherwise. */
function getSqe(ring: IoUring): Sqe {
  const deadline = performance.now() + 5000;
  for (;;) {
    const sqe = ring.getSqe();
    if (sqe) return sqe;
    assert.ok(ring.sqpoll, "getSqe returned null although the kernel consumed every SQE (no SQPOLL)");
    assert.ok(performance.now() < deadline, "the SQ poll thread never consumed the queued SQEs");
  }
}

/** A FIFO opened read-write (blocking) through the ring: reads from it wait forever. */
function openFifo(ring: IoUring, dir: string): number {
  const path = `${dir}/fifo`;
  mkfifo(path);
  return openFile(ring, path, O_RDWR);
}

// --- Setup and the NOP round trip --------------------------------------------------------------

ringTest("setup: rounds entries up to a power of two, maps the rings, reports params", (config) => {
  using ring = new IoUring(5, config.options);
  assert.equal(ring.sqpoll, config.sqpoll);
  assert.equal(ring.backend, config.backend);
  assert.equal(ring.sqpollFallbackReason, undefined);
  assert.equal(ring.params.sqEntries, 8);
  assert.equal(ring.sqEntries, 8);
  assert.equal(ring.params.cqEntries, 16); // the kernel's default: twice the SQ
  assert.equal(ring.cqEntries, 16);
  assert.equal((ring.params.flags & IORING_SETUP_SQPOLL) !== 0, config.sqpoll);
  assert.ok(ring.fd >= 0);
  assert.equal(ring.features, ring.params.features);
  assert.ok(ring.hasFeature(IORING_FEAT_NODROP | IORING_FEAT_EXT_ARG | IORING_FEAT_SINGLE_MMAP));
  if (config.sqpoll) assert.equal(ring.params.sqThreadIdle, 50); // DEFAULT_SQPOLL_IDLE_MS
  assert.equal(ring.sqReady(), 0);
  assert.equal(ring.sqSpaceLeft(), 8);
  assert.equal(ring.cqReady(), 0);
  assert.equal(ring.sqDropped, 0);
  assert.equal(ring.cqOverflow, 0);
  assert.equal(ring.peekCqe(), null);
  assert.deepEqual({ ...ring.stats }, { submit: 0, wakeup: 0, wait: 0 });

  using big = new IoUring(8, { ...config.options, cqEntries: 100 });
  assert.ok(big.params.flags & IORING_SETUP_CQSIZE);
  assert.equal(big.cqEntries, 128);
  using one = new IoUring(1, config.options);
  assert.equal(one.sqEntries, 1);
});

/** Whether this kernel accepts `IORING_SETUP_NO_SQARRAY` (6.6), asked by a raw `io_uring_setup`. */
function kernelDropsSqArray(backend: Backend): boolean {
  const sys = getSys(backend);
  const params = new Uint8Array(PARAMS_SIZE);
  new DataView(params.buffer).setUint32(PARAMS.flags, IORING_SETUP_NO_SQARRAY, true);
  const fd = sys.setup(4, params);
  if (fd >= 0) sys.close(fd);
  return fd >= 0;
}

/** `rounds` rounds of NOPs filling `ring`'s whole SQ (so the ring wraps), each reaped and checked. */
function nopRounds(ring: IoUring, rounds: number): void {
  for (let round = 0; round < rounds; round++) {
    const base = round * 1000;
    for (let i = 0; i < ring.sqEntries; i++) prepNop(getSqe(ring)).setUserData(base + i);
    ring.submit();
    const done = reap(ring, ring.sqEntries);
    const want = Array.from({ length: ring.sqEntries }, (_, i) => BigInt(base + i));
    assert.deepEqual([...done.keys()].sort((a, b) => Number(a - b)), want, `round ${round}`);
  }
}

ringTest(
  "the SQ index array: dropped where the kernel allows (6.6), kept on request or when refused",
  (config) => {
    using ring = new IoUring(8, config.options);
    assert.equal((ring.params.flags & IORING_SETUP_NO_SQARRAY) !== 0, kernelDropsSqArray(config.backend));
    using classic = new IoUring(8, { ...config.options, sqArray: true });
    assert.equal(classic.params.flags & IORING_SETUP_NO_SQARRAY, 0);
    nopRounds(ring, 5);
    nopRounds(classic, 5);

    // A kernel before 6.6 refuses the unknown flag with EINVAL: simulated here.
    const sys = getSys(config.backend);
    const setup = sys.setup;
    const asked: boolean[] = [];
    sys.setup = (entries, params) => {
      const flags = new DataView(params.buffer, params.byteOffset).getUint32(PARAMS.flags, true);
      asked.push((flags & IORING_SETUP_NO_SQARRAY) !== 0);
      return flags & IORING_SETUP_NO_SQARRAY ? -errno("EINVAL") : setup.call(sys, entries, params);
    };
    try {
      using old = new IoUring(8, config.options);
      assert.deepEqual(asked, [true, false], "asked with the flag, then without");
      assert.equal(old.params.flags & IORING_SETUP_NO_SQARRAY, 0);
      assert.equal(old.sqpoll, config.sqpoll);
      nopRounds(old, 5);
      // Named in `flags`, the flag is insisted on: the refusal is the error, with no retry.
      asked.length = 0;
      assert.throws(
        () => new IoUring(8, { ...config.options, flags: IORING_SETUP_NO_SQARRAY }),
        (e) => e instanceof IoUringError && e.errno === errno("EINVAL"),
      );
      assert.deepEqual(asked, [true]);
    } finally {
      sys.setup = setup;
    }
  },
);

/**
 * Whether this thread may register one more ring (`IORING_REGISTER_RING_FDS`, 5.18), asked of a
 * raw ring that is registered, unregistered and closed again.
 */
function threadRegistersRings(backend: Backend): boolean {
  const sys = getSys(backend);
  const fd = sys.setup(2, new Uint8Array(PARAMS_SIZE));
  assert.ok(fd >= 0, `io_uring_setup: ${fd}`);
  const update = new Uint8Array(FILES_UPDATE_SIZE);
  const view = new DataView(update.buffer);
  view.setUint32(0, 0xffffffff, true);
  view.setBigUint64(8, BigInt(fd), true);
  const registered = sys.register(fd, IORING_REGISTER_RING_FDS, update, 1) === 1;
  if (registered) sys.register(fd, IORING_UNREGISTER_RING_FDS, update, 1);
  sys.close(fd);
  return registered;
}

ringTest(
  "the ring is registered in its thread's ring table (5.18), 16 at most; close frees its slot",
  async (config) => {
    const supported = threadRegistersRings(config.backend);
    using ring = new IoUring(8, config.options);
    assert.equal(ring.ringIndex >= 0, supported);
    // Every kind of enter through the index: submit, submit-and-wait, waits with and without a
    // timeout; and a wait on the thread pool, which names the ring by its fd.
    nopRounds(ring, 3);
    prepNop(getSqe(ring)).setUserData(5);
    ring.submitAndWait(1);
    assert.ok(ring.waitCqe() !== null);
    ring.cqAdvance(1);
    const ts = new Timespec(20);
    prepTimeout(getSqe(ring), ts).setUserData(6);
    ring.submit();
    const deadline = performance.now() + 5000;
    while (ring.cqReady() === 0) {
      assert.ok(performance.now() < deadline, "the timeout never completed");
      await ring.waitAsync(1000);
    }
    assertErr(reap(ring, 1).get(6n)!.res, "ETIME");

    using plain = new IoUring(8, { ...config.options, registerRing: false });
    assert.equal(plain.ringIndex, -1);
    nopRounds(plain, 2);

    // A thread's table holds 16 rings: past that, rings keep their fds and work the same.
    const options = { backend: config.backend, sqpoll: false } as const;
    const crowd = Array.from({ length: 17 }, () => new IoUring(4, options));
    try {
      const indexes = crowd.map((r) => r.ringIndex).filter((i) => i >= 0);
      assert.equal(new Set(indexes).size, indexes.length, "an index given twice");
      assert.ok(indexes.length <= 15, `${indexes.length} more rings registered beside the first`);
      if (supported) assert.ok(crowd.some((r) => r.ringIndex === -1));
      for (const r of crowd) nopRounds(r, 1);
    } finally {
      for (const r of crowd) r.close();
    }
    // Closing gave the slots back.
    using again = new IoUring(4, options);
    assert.equal(again.ringIndex >= 0, supported);
    nopRounds(again, 1);
  },
);

ringTest("nop round trip carries user_data 0, 2^53+1 and 2^64-1", (config) => {
  using ring = new IoUring(8, config.options);
  const values = [0n, 2n ** 53n + 1n, 2n ** 64n - 1n, 0xdead_beef_0000_0001n];
  for (const v of values) prepNop(ring.getSqe()!).setUserData(v);
  assert.equal(ring.sqReady(), values.length);
  assert.equal(ring.submitAndWait(values.length), values.length);
  assert.ok(ring.cqReady() >= values.length);
  const seen: bigint[] = [];
  for (const cqe of ring.completions()) {
    assert.equal(cqe.res, 0);
    assert.equal(cqe.flags, 0);
    seen.push(cqe.userData);
    // The two halves are exact for every value.
    assert.equal(BigInt(cqe.userDataLo) | (BigInt(cqe.userDataHi) << 32n), cqe.userData);
  }
  assert.deepEqual(seen.sort(), [...values].sort());
  assert.equal(ring.cqReady(), 0);
  assert.equal(ring.sqReady(), 0);

  // The cheap number path, up to 2^53-1, round-trips through userDataNumber.
  const numbers = [0, 1, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1];
  for (const n of numbers) prepNop(ring.getSqe()!).setUserData(n);
  ring.submit();
  const done = reap(ring, numbers.length);
  assert.deepEqual([...done.keys()].map(Number).sort((a, b) => a - b), numbers);
});

ringTest("reaping: peekBatch, forEachCqe, completions(), waitCqe timeout, waitAsync", async (config) => {
  using ring = new IoUring(8, config.options);
  for (let i = 0; i < 6; i++) prepNop(ring.getSqe()!).setUserData(100 + i);
  ring.submitAndWait(6);
  assert.equal(ring.cqReady(), 6);
  const out = new Array(4);
  assert.equal(ring.peekBatch(out), 4);
  const first = out.map((c) => c.userDataNumber);
  ring.cqAdvance(4);
  const rest: number[] = [];
  assert.equal(ring.forEachCqe((c) => rest.push(c.userDataNumber)), 2);
  assert.deepEqual([...first, ...rest].sort(), [100, 101, 102, 103, 104, 105]);
  assert.equal(ring.cqReady(), 0);
  assert.equal(ring.forEachCqe(() => assert.fail("no completion is ready")), 0);
  assert.equal(ring.peekBatch(out), 0);

  // waitCqe with a timeout returns null when nothing comes; without one it returns the CQE.
  assert.equal(ring.waitCqe({ timeoutMs: 10 }), null);
  assert.equal(ring.waitCqe({ timeoutMs: 0 }), null);
  prepNop(ring.getSqe()!).setUserData(7);
  ring.submit();
  const cqe = ring.waitCqe();
  assert.ok(cqe);
  assert.equal(cqe.userDataNumber, 7);
  // Peeking does not consume: the same completion is seen until cqAdvance.
  assert.equal(ring.peekCqe()?.userDataNumber, 7);
  ring.cqAdvance(1);
  assert.equal(ring.peekCqe(), null);

  // waitAsync: the event loop keeps running while the kernel waits for a timeout to fire.
  const ts = new Timespec(20);
  prepTimeout(ring.getSqe()!, ts).setUserData(8);
  ring.submit();
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 1);
  try {
    const deadline = performance.now() + 5000;
    while (ring.cqReady() === 0 && performance.now() < deadline) await ring.waitAsync(1000);
  } finally {
    clearInterval(ticker);
  }
  const t = ring.peekCqe();
  assert.ok(t, "the timeout never completed");
  assert.equal(t.userDataNumber, 8);
  assertErr(t.res, "ETIME");
  ring.cqAdvance(1);
  // waitAsync returns at once when something is ready, and after its timeout otherwise.
  await ring.waitAsync(0);
  prepNop(ring.getSqe()!).setUserData(9);
  ring.submitAndWait(1);
  await ring.waitAsync(5000);
  assert.equal(ring.peekCqe()?.userDataNumber, 9);
  ring.cqAdvance(1);
});

ringTest(
  "waitAsync: close() ends a wait without a limit, and never runs what was left unsubmitted",
  async (config) => {
    {
      const ring = new IoUring(8, config.options);
      const waiting = ring.waitAsync(-1);
      await new Promise((r) => setTimeout(r, 20));
      const t0 = performance.now();
      ring.close();
      await waiting;
      assert.ok(performance.now() - t0 < 500, `the wait outlived close() by ${performance.now() - t0} ms`);
    }
    // An SQE queued and not submitted: the wake-up no-op would submit it, so close() posts none and
    // the wait ends at its next second instead; the write never runs.
    using dir = tempDir();
    const path = `${dir.path}/untouched`;
    Deno.writeFileSync(path, new Uint8Array(0));
    const ring = new IoUring(8, config.options);
    const fd = openFile(ring, path, O_RDWR);
    const waiting = ring.waitAsync(-1);
    await new Promise((r) => setTimeout(r, 20));
    prepWrite(getSqe(ring), fd, pattern(16), 0).setUserData(1);
    const t0 = performance.now();
    ring.close();
    await waiting;
    assert.ok(performance.now() - t0 < 1500, `the wait outlived close() by ${performance.now() - t0} ms`);
    sysClose(fd);
    assert.equal(Deno.statSync(path).size, 0, "the unsubmitted write ran");
    if (!config.sqpoll) {
      // A wait longer than one thread-pool call still lasts its whole time.
      using other = new IoUring(8, config.options);
      const t1 = performance.now();
      await other.waitAsync(1300);
      assert.ok(
        performance.now() - t1 >= 1250,
        `waitAsync(1300) returned after ${performance.now() - t1} ms`,
      );
    }
  },
);

ringTest(
  "SQE memory transferred away: submit refuses, close() works and leaves memory there, not the ring's",
  (config) => {
    const ring = new IoUring(8, config.options);
    prepNop(getSqe(ring)).setUserData(1);
    ring.submitAndWait(1);
    ring.cqAdvance(1);
    const sqe = getSqe(ring);
    const moved = (sqe.u8.buffer as ArrayBuffer).transfer(); // the same mapped memory, under a new owner
    assert.throws(() => prepNop(sqe), ClosedError); // it would write nothing now
    assert.throws(
      () => ring.submit(),
      (e) => e instanceof Deno.errors.BadResource && /SQE memory of this ring was detached/.test(e.message),
    );
    assert.throws(
      () => ring.submitAndWait(1),
      (e) => e instanceof Deno.errors.BadResource && /SQE memory of this ring was detached/.test(e.message),
    );
    assert.throws(
      () => ring.flushSq(),
      (e) => e instanceof Deno.errors.BadResource && /SQE memory of this ring was detached/.test(e.message),
    );
    ring.close();
    assert.equal(ring.closed, true);
    // Still memory (unmapped, this read would crash): see the next test for whose.
    const bytes = new Uint8Array(moved);
    assert.equal(bytes.length, 8 * 64);
    bytes.fill(bytes[0], 0, 1); // read and write it
  },
);

Deno.test({
  name: "SQE memory transferred away: after close() the memory there is no longer the ring's",
  ignore: skipKernel(),
  async fn() {
    // A mapping of the ring's file kept the ring (and its SQ thread) alive until the process
    // exited. (In a child: Deno lets only a program with every permission read /proc/self/maps.)
    const results = await childResults(
      `
import { IoUring } from ${JSON.stringify(MOD_URL)};
const ring = new IoUring(8);
const moved = ring.getSqe().u8.buffer.transfer();
const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(moved)));
const ringMapped = () =>
  Deno.readTextFileSync("/proc/self/maps").split(String.fromCharCode(10)).some((line) => {
    const [from, to] = line.split(" ")[0].split("-").map((h) => BigInt("0x" + (h || "0")));
    return from <= address && address < to && line.includes("io_uring");
  });
const before = ringMapped();
ring.close();
new Uint8Array(moved).fill(1); // still memory
console.log(JSON.stringify({ before: String(before), after: String(ringMapped()) }));
`,
      ["--allow-all"],
    );
    assert.deepEqual(results, { before: "true", after: "false" });
  },
});

// --- Reads and writes, checked with Deno's file API ------------------------------------------

ringTest("write and read at offsets; the file agrees with Deno's file API", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const path = `${dir.path}/data`;
  const initial = pattern(10000, 3);
  Deno.writeFileSync(path, initial);
  const fd = openFile(ring, path, O_RDWR);

  // read what Deno wrote, at an offset, into a subarray
  const big = new Uint8Array(8192);
  const into = big.subarray(100, 4196);
  assert.equal(run(ring, (s) => prepRead(s, fd, into, 5000)), 4096);
  assert.deepEqual(into, initial.subarray(5000, 9096));
  assert.ok(big.subarray(0, 100).every((b) => b === 0), "bytes before the subarray were written");

  // write at an offset above the end (a hole), and at a bigint offset
  const w = pattern(3000, 9);
  assert.equal(run(ring, (s) => prepWrite(s, fd, w, 12000)), 3000);
  assert.equal(run(ring, (s) => prepWrite(s, fd, w.subarray(0, 10), 20n)), 10);
  closeFd(ring, fd);
  const file = Deno.readFileSync(path);
  assert.equal(file.length, 15000);
  assert.deepEqual(file.subarray(12000), w);
  assert.ok(file.subarray(10000, 12000).every((b) => b === 0), "the hole reads as zeros");
  assert.deepEqual(file.subarray(20, 30), w.subarray(0, 10));
  assert.deepEqual(file.subarray(0, 20), initial.subarray(0, 20));
  assert.deepEqual(file.subarray(30, 10000), initial.subarray(30));
});

ringTest("readv and writev with several buffers", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const path = `${dir.path}/v`;
  const fd = openFile(ring, path, O_RDWR | O_CREAT, 0o600);
  const parts = [pattern(100, 1), pattern(5000, 2), new Uint8Array(0), pattern(37, 3)];
  const out = new Iovecs(parts);
  assert.equal(out.totalLength, 5137);
  assert.equal(run(ring, (s) => prepWritev(s, fd, out, 10)), 5137);
  const file = Deno.readFileSync(path);
  assert.equal(file.length, 5147);
  assert.deepEqual(file.subarray(10), new Uint8Array([...parts[0], ...parts[1], ...parts[3]]));

  Deno.writeFileSync(path, pattern(9000, 4));
  const a = new Uint8Array(10), b = new Float64Array(100), c = new Uint8Array(20);
  const vin = new Iovecs([a, b, c]);
  assert.equal(run(ring, (s) => prepReadv(s, fd, vin, 1000)), 830);
  const expect = pattern(9000, 4).subarray(1000, 1830);
  assert.deepEqual(a, expect.subarray(0, 10));
  assert.deepEqual(new Uint8Array(b.buffer), expect.subarray(10, 810));
  assert.deepEqual(c, expect.subarray(810));
  closeFd(ring, fd);
});

ringTest("short read at EOF, and 0 past it", (config) => {
  using dir = tempDir();
  using ring = new IoUring(4, config.options);
  const path = `${dir.path}/short`;
  Deno.writeFileSync(path, pattern(100));
  const fd = openFile(ring, path, O_RDONLY);
  const buf = new Uint8Array(4096);
  assert.equal(run(ring, (s) => prepRead(s, fd, buf, 0)), 100);
  assert.deepEqual(buf.subarray(0, 100), pattern(100));
  assert.equal(run(ring, (s) => prepRead(s, fd, buf, 60)), 40);
  assert.equal(run(ring, (s) => prepRead(s, fd, buf, 100)), 0);
  assert.equal(run(ring, (s) => prepRead(s, fd, buf, 1n << 40n)), 0);
  // A write to a read-only fd fails with EBADF in its CQE (not as an exception).
  assertErr(run(ring, (s) => prepWrite(s, fd, buf, 0)), "EBADF");
  closeFd(ring, fd);
  assertErr(run(ring, (s) => prepRead(s, fd, buf, 0)), "EBADF");
});

ringTest(
  "offset -1 reads and writes at the file's position and moves it, as read(2)/write(2) do",
  (config) => {
    using dir = tempDir();
    using ring = new IoUring(4, config.options);
    const path = `${dir.path}/position`;
    const fd = openFile(ring, path, O_RDWR | O_CREAT);
    const data = pattern(300, 6);
    assert.equal(run(ring, (s) => prepWrite(s, fd, data.subarray(0, 100), -1)), 100);
    assert.equal(ring.queueWrite(1, fd, data.subarray(100, 200), -1n) !== null, true);
    ring.submitAndWait(1);
    assert.equal(ring.peekCqe()!.res, 100);
    ring.cqAdvance(1);
    assert.equal(run(ring, (s) => prepWritev(s, fd, new Iovecs([data.subarray(200)]), -1)), 100);
    assert.deepEqual(Deno.readFileSync(path), data, "each write went on where the last one ended");
    // The position is at 300: a positioned read leaves it there; -1 reads at it, and at the end.
    const buf = new Uint8Array(150);
    assert.equal(run(ring, (s) => prepRead(s, fd, buf, 0)), 150);
    assert.equal(run(ring, (s) => prepRead(s, fd, buf, -1)), 0, "at the end of the file");
    assert.equal(run(ring, (s) => prepWrite(s, fd, data.subarray(0, 10), 0)), 10);
    closeFd(ring, fd);
    const again = openFile(ring, path, O_RDONLY);
    assert.equal(run(ring, (s) => prepRead(s, again, buf, -1)), 150);
    assert.deepEqual(buf, data.subarray(0, 150));
    assert.equal(ring.queueRead(2, again, buf, -1) !== null, true);
    ring.submitAndWait(1);
    assert.equal(ring.peekCqe()!.res, 150);
    ring.cqAdvance(1);
    assert.deepEqual(buf, data.subarray(150), "the second read went on from the first");
    closeFd(ring, again);
  },
);

ringTest("fixed buffers: write_fixed and read_fixed on sub-ranges; unregister", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const path = `${dir.path}/fixed`;
  const fd = openFile(ring, path, O_RDWR | O_CREAT);
  const b0 = new Uint8Array(8192), b1 = new Uint8Array(4096);
  ring.registerBuffers([b0, b1]);
  assert.deepEqual(ring.registeredBuffers, [b0, b1]);
  b1.set(pattern(4096, 5));
  assert.equal(run(ring, (s) => prepWriteFixed(s, fd, b1, 0, 1)), 4096);
  assert.equal(run(ring, (s) => prepWriteFixed(s, fd, b1.subarray(1000, 1100), 4096, 1)), 100);
  assert.deepEqual(
    Deno.readFileSync(path),
    new Uint8Array([...pattern(4096, 5), ...pattern(4096, 5).subarray(1000, 1100)]),
  );
  assert.equal(run(ring, (s) => prepReadFixed(s, fd, b0.subarray(4000, 8000), 96, 0)), 4000);
  assert.deepEqual(b0.subarray(4000, 8000), Deno.readFileSync(path).subarray(96, 4096));
  // A buffer outside the registered one is refused by the kernel.
  const other = new Uint8Array(16);
  assertErr(run(ring, (s) => prepReadFixed(s, fd, other, 0, 0)), "EFAULT");
  // An index past the table is refused too.
  assertErr(run(ring, (s) => prepReadFixed(s, fd, b0, 0, 2)), "EFAULT");
  ring.unregisterBuffers();
  assert.equal(ring.registeredBuffers, undefined);
  assertErr(run(ring, (s) => prepReadFixed(s, fd, b0, 0, 0)), "EFAULT");
  assert.throws(() => ring.unregisterBuffers(), (e) => e instanceof IoUringError && e.code === "ENXIO");
  closeFd(ring, fd);
});

ringTest("fixed files: IOSQE_FIXED_FILE by index, registerFilesUpdate, unregister", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  Deno.writeTextFileSync(`${dir.path}/a`, "AAAA");
  Deno.writeTextFileSync(`${dir.path}/b`, "BBBB");
  const fa = openFile(ring, `${dir.path}/a`, O_RDONLY);
  const fb = openFile(ring, `${dir.path}/b`, O_RDONLY);
  ring.registerFiles([-1, fa]);
  assert.equal(ring.registeredFileCount, 2);
  const buf = new Uint8Array(4);
  const readFixed = (index: number) =>
    run(ring, (s) => {
      prepRead(s, index, buf, 0);
      s.addFlags(IOSQE_FIXED_FILE);
    });
  assert.equal(readFixed(1), 4);
  assert.equal(new TextDecoder().decode(buf), "AAAA");
  assertErr(readFixed(0), "EBADF"); // an empty slot
  assert.equal(ring.registerFilesUpdate(0, [fb, IORING_REGISTER_FILES_SKIP]), 2);
  buf.fill(0);
  assert.equal(readFixed(0), 4);
  assert.equal(new TextDecoder().decode(buf), "BBBB");
  assert.equal(readFixed(1), 4); // SKIP left slot 1 alone
  assert.equal(new TextDecoder().decode(buf), "AAAA");
  assert.equal(ring.registerFilesUpdate(1, [-1]), 1);
  assertErr(readFixed(1), "EBADF");
  // close_direct (5.15) empties a slot from inside the ring.
  assert.equal(ring.registerFilesUpdate(1, [fa]), 1);
  assert.equal(readFixed(1), 4);
  assert.equal(run(ring, (s) => prepCloseDirect(s, 1)), 0);
  assertErr(readFixed(1), "EBADF");
  assertErr(run(ring, (s) => prepCloseDirect(s, 1)), "EBADF");
  // An fd the kernel refuses mid-list is named; the slots before it stay updated (the kernel
  // returned 1 and the EBADF was lost).
  assert.throws(
    () => ring.registerFilesUpdate(0, [fa, 9999]),
    (e) =>
      e instanceof IoUringError && e.code === "EBADF" &&
      e.message.includes("IORING_REGISTER_FILES_UPDATE (fds[1] for slot 1; 1 updated before it)"),
  );
  assert.equal(readFixed(0), 4, "slot 0 updated");
  assert.equal(ring.registerFilesUpdate(0, [fb]), 1);
  // The table holds its own reference: closing the fd does not empty the slot.
  closeFd(ring, fb);
  assert.equal(readFixed(0), 4);
  assert.throws(() => ring.registerFiles([fa]), (e) => e instanceof IoUringError && e.code === "EBUSY");
  ring.unregisterFiles();
  assert.equal(ring.registeredFileCount, 0);
  assertErr(readFixed(0), "EBADF");
  assert.throws(() => ring.unregisterFiles(), (e) => e instanceof IoUringError && e.code === "ENXIO");
  closeFd(ring, fa);
});

// --- Links, drain, skip ---------------------------------------------------------------------

ringTest("registerIowqMaxWorkers sets the io-wq thread limits and returns the ones before", (config) => {
  using ring = new IoUring(8, config.options);
  const before = ring.registerIowqMaxWorkers(0, 0); // 0 changes nothing
  assert.ok(before[0] > 0 && before[1] > 0, `limits in force: ${before}`);
  assert.deepEqual(ring.registerIowqMaxWorkers(2, 3), before);
  assert.deepEqual(ring.registerIowqMaxWorkers(0, 0), [2, 3]);
  assert.deepEqual(ring.registerIowqMaxWorkers(0, 5), [2, 3]);
  assert.deepEqual(ring.registerIowqMaxWorkers(0, 0), [2, 5]);
  assert.throws(() => ring.registerIowqMaxWorkers(-1, 0), RangeError);
  assert.throws(() => ring.registerIowqMaxWorkers(1, 1.5), RangeError);
});

ringTest("IO_LINK chain: write -> fsync -> read completes in order, data intact", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const path = `${dir.path}/chain`;
  const fd = openFile(ring, path, O_RDWR | O_CREAT);
  const data = pattern(6000, 7);
  const back = new Uint8Array(6000);
  prepWrite(getSqe(ring), fd, data, 0).setUserData(1).setFlags(IOSQE_IO_LINK);
  prepFsync(getSqe(ring), fd).setUserData(2).setFlags(IOSQE_IO_LINK);
  prepRead(getSqe(ring), fd, back, 0).setUserData(3);
  ring.submit();
  const done = reap(ring, 3);
  assert.equal(done.get(1n)?.res, 6000);
  assert.equal(done.get(2n)?.res, 0);
  assert.equal(done.get(3n)?.res, 6000);
  assert.deepEqual(back, data);
  assert.deepEqual(Deno.readFileSync(path), data);
  closeFd(ring, fd);
});

ringTest("a failing link member cancels the rest (ECANCELED); a hardlink does not", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const path = `${dir.path}/l`;
  Deno.writeTextFileSync(path, "x");
  const fd = openFile(ring, path, O_RDONLY);
  const buf = new Uint8Array(8);
  // write to a read-only fd fails; the read and the NOP after it never run
  prepWrite(getSqe(ring), fd, buf, 0).setUserData(1).setFlags(IOSQE_IO_LINK);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(2).setFlags(IOSQE_IO_LINK);
  prepNop(getSqe(ring)).setUserData(3);
  prepNop(getSqe(ring)).setUserData(4).setFlags(IOSQE_ASYNC); // not in the chain; punted to a worker
  ring.submit();
  let done = reap(ring, 4);
  assertErr(done.get(1n)!.res, "EBADF", "failing member");
  assertErr(done.get(2n)!.res, "ECANCELED", "second member");
  assertErr(done.get(3n)!.res, "ECANCELED", "last member");
  assert.equal(done.get(4n)!.res, 0);
  assert.equal(buf[0], 0, "the cancelled read must not have run");

  prepWrite(getSqe(ring), fd, buf, 0).setUserData(5).setFlags(IOSQE_IO_HARDLINK);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(6);
  ring.submit();
  done = reap(ring, 2);
  assertErr(done.get(5n)!.res, "EBADF");
  assert.equal(done.get(6n)!.res, 1);
  assert.equal(String.fromCharCode(buf[0]), "x");
  closeFd(ring, fd);
});

ringTest("IOSQE_CQE_SKIP_SUCCESS posts nothing on success; IO_DRAIN waits for earlier work", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  prepNop(getSqe(ring)).setUserData(1).setFlags(IOSQE_CQE_SKIP_SUCCESS);
  prepNop(getSqe(ring)).setUserData(2);
  ring.submit();
  const done = reap(ring, 1);
  assert.ok(done.has(2n));
  assertNoCompletion(ring);

  // Once a ring has used CQE_SKIP_SUCCESS the kernel refuses IO_DRAIN on it (EOPNOTSUPP).
  assertErr(run(ring, (s) => prepNop(s).setFlags(IOSQE_IO_DRAIN)), "EOPNOTSUPP");

  // On a fresh ring, a drained NOP cannot complete before the pending read queued ahead of it.
  using r2 = new IoUring(8, config.options);
  drain(r2, dir.path);
});

function drain(ring: IoUring, dir: string): void {
  const fd = openFifo(ring, dir);
  const buf = new Uint8Array(4);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(10);
  prepNop(getSqe(ring)).setUserData(11).setFlags(IOSQE_IO_DRAIN);
  prepNop(getSqe(ring)).setUserData(12);
  ring.submit();
  // (NOP 12 comes after the drain point, so it waits too.)
  assertNoCompletion(ring, 20);
  assert.equal(sysWrite(fd, new Uint8Array([1, 2, 3])), 3);
  const first = ring.waitCqe({ timeoutMs: 5000 });
  assert.ok(first);
  assert.equal(first.userDataNumber, 10, "the read completes first");
  assert.equal(first.res, 3);
  ring.cqAdvance(1);
  const rest = reap(ring, 2);
  assert.equal(rest.get(11n)?.res, 0);
  assert.equal(rest.get(12n)?.res, 0);
  closeFd(ring, fd);
}

// --- Timeouts, cancellation, poll -------------------------------------------------------------

ringTest("timeout fires with ETIME; count completes it early; timeout_remove cancels it", (config) => {
  using ring = new IoUring(8, config.options);
  const ts = new Timespec(10);
  assertErr(run(ring, (s) => prepTimeout(s, ts)), "ETIME");
  // IORING_TIMEOUT_ETIME_SUCCESS (5.16) reports expiry as success... still -ETIME in res, but
  // does not break a link: check only that the kernel accepts the flag.
  assertErr(run(ring, (s) => prepTimeout(s, ts, 0, IORING_TIMEOUT_ETIME_SUCCESS)), "ETIME");

  // A long timeout with count 1 completes (res 0) once one other completion was posted.
  const long = new Timespec(10_000);
  prepTimeout(getSqe(ring), long, 1).setUserData(1);
  ring.submit();
  prepNop(getSqe(ring)).setUserData(2);
  ring.submit();
  let done = reap(ring, 2);
  assert.equal(done.get(1n)?.res, 0);
  assert.equal(done.get(2n)?.res, 0);

  // timeout_remove: the removed timeout completes with ECANCELED, the remove with 0.
  prepTimeout(getSqe(ring), long).setUserData(3n);
  ring.submit();
  prepTimeoutRemove(getSqe(ring), 3n).setUserData(4n);
  ring.submit();
  done = reap(ring, 2);
  assertErr(done.get(3n)!.res, "ECANCELED");
  assert.equal(done.get(4n)!.res, 0);
  // Nothing by that user_data any more.
  assertErr(run(ring, (s) => prepTimeoutRemove(s, 3n)), "ENOENT");
});

ringTest("link_timeout cuts a read from an empty FIFO", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const fd = openFifo(ring, dir.path);
  const buf = new Uint8Array(16);
  const ts = new Timespec(20);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(1).setFlags(IOSQE_IO_LINK);
  prepLinkTimeout(getSqe(ring), ts).setUserData(2);
  ring.submit();
  const done = reap(ring, 2);
  assertErr(done.get(1n)!.res, "ECANCELED", "the read");
  assertErr(done.get(2n)!.res, "ETIME", "the link timeout");

  // A read that finishes in time: the link timeout is cancelled instead.
  const data = new TextEncoder().encode("hello");
  assert.equal(run(ring, (s) => prepWrite(s, fd, data, 0)), 5);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(3).setFlags(IOSQE_IO_LINK);
  prepLinkTimeout(getSqe(ring), new Timespec(10_000)).setUserData(4);
  ring.submit();
  const ok = reap(ring, 2);
  assert.equal(ok.get(3n)!.res, 5);
  assertErr(ok.get(4n)!.res, "ECANCELED", "the unneeded link timeout");
  closeFd(ring, fd);
});

ringTest("async_cancel stops a pending read; cancelling nothing gives ENOENT", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const fd = openFifo(ring, dir.path);
  const buf = new Uint8Array(16);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(2n ** 64n - 2n);
  ring.submit();
  assertNoCompletion(ring, 10); // it really is pending
  prepCancel(getSqe(ring), 2n ** 64n - 2n).setUserData(1);
  ring.submit();
  const done = reap(ring, 2);
  assert.equal(done.get(1n)!.res, 0, `cancel: ${describe(done.get(1n)!.res)}`);
  assertErr(done.get(2n ** 64n - 2n)!.res, "ECANCELED", "the read");
  assertErr(run(ring, (s) => prepCancel(s, 12345)), "ENOENT");
  closeFd(ring, fd);
});

ringTest("prepCancelOp cancels every request of an opcode (the timeouts, not the NOPs)", (config) => {
  using ring = new IoUring(8, config.options);
  if (older("6.6")) return;
  const ts = new Timespec(10_000);
  for (const id of [5n, 6n]) prepTimeout(getSqe(ring), ts).setUserData(id);
  ring.submit();
  assertNoCompletion(ring, 10);
  prepCancelOp(getSqe(ring), IORING_OP_TIMEOUT, IORING_ASYNC_CANCEL_ALL).setUserData(1);
  ring.submit();
  const done = reap(ring, 3);
  assert.equal(done.get(1n)!.res, 2, "two cancelled");
  assertErr(done.get(5n)!.res, "ECANCELED");
  assertErr(done.get(6n)!.res, "ECANCELED");
});

ringTest("poll_add reports readiness; poll_remove cancels a pending poll", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const fd = openFifo(ring, dir.path);
  prepPollAdd(getSqe(ring), fd, POLLIN).setUserData(1);
  ring.submit();
  assertNoCompletion(ring, 10);
  prepPollRemove(getSqe(ring), 1).setUserData(2);
  ring.submit();
  let done = reap(ring, 2);
  assertErr(done.get(1n)!.res, "ECANCELED", "the removed poll");
  assert.equal(done.get(2n)!.res, 0);

  prepPollAdd(getSqe(ring), fd, POLLIN).setUserData(3);
  ring.submit();
  const one = new Uint8Array([1]);
  prepWrite(getSqe(ring), fd, one, 0).setUserData(4);
  ring.submit();
  done = reap(ring, 2);
  assert.equal(done.get(4n)!.res, 1);
  assert.ok(done.get(3n)!.res & POLLIN, `poll result ${describe(done.get(3n)!.res)}`);
  assertErr(run(ring, (s) => prepPollRemove(s, 3)), "ENOENT");
  closeFd(ring, fd);
});

ringTest("close() with a read still pending does not hang, and frees the ring", (config) => {
  using dir = tempDir();
  const ring = new IoUring(4, config.options);
  const fd = openFifo(ring, dir.path);
  const buf = new Uint8Array(16);
  prepRead(getSqe(ring), fd, buf, 0).setUserData(1);
  ring.submit();
  ring.close();
  assert.ok(ring.closed);
  sysClose(fd);
});

// --- Queue limits ------------------------------------------------------------------------------

ringTest("SQ full: getSqe returns null, never hands out a queued slot", (config) => {
  using ring = new IoUring(4, config.options);
  const sqes: Sqe[] = [];
  for (let i = 0; i < 4; i++) {
    const sqe = ring.getSqe();
    assert.ok(sqe, `SQE ${i}`);
    prepNop(sqe).setUserData(1000 + i);
    sqes.push(sqe);
  }
  assert.equal(new Set(sqes.map((s) => s.slot)).size, 4);
  assert.equal(ring.sqReady(), 4);
  assert.equal(ring.sqSpaceLeft(), 0);
  assert.equal(ring.getSqe(), null);
  assert.equal(ring.getSqe(), null);
  // Nothing was overwritten by the refused calls.
  sqes.forEach((s, i) => assert.equal(s.userData, BigInt(1000 + i)));
  assert.equal(ring.submit(), 4);
  const done = reap(ring, 4);
  assert.deepEqual([...done.keys()].sort(), [1000n, 1001n, 1002n, 1003n]);
  assert.equal(ring.sqReady(), 0);
  assert.ok(ring.getSqe(), "room again once the kernel consumed the SQEs");

  // Many rounds: fill whatever is free, submit, reap what is there. A slot handed out twice
  // before the kernel consumed it would lose a user_data.
  using r2 = new IoUring(4, config.options);
  const seen = new Set<number>();
  let next = 0;
  const total = 400;
  const deadline = performance.now() + 10_000;
  while (seen.size < total) {
    assert.ok(performance.now() < deadline, `stuck at ${seen.size} of ${total}`);
    while (next < total) {
      const sqe = r2.getSqe();
      if (!sqe) break;
      assert.ok(r2.sqReady() <= r2.sqEntries);
      prepNop(sqe).setUserData(next++);
    }
    r2.submit();
    r2.forEachCqe((c) => {
      assert.ok(!seen.has(c.userDataNumber), `user_data ${c.userDataNumber} twice`);
      seen.add(c.userDataNumber);
    });
    if (seen.size < next && r2.cqReady() === 0) r2.waitCqe({ timeoutMs: 1000 });
  }
  assert.equal(seen.size, total);
});

ringTest("CQ overflow on a tiny CQ loses nothing (12 completions through a 4-entry CQ)", (config) => {
  using ring = new IoUring(4, { ...config.options, cqEntries: 4 });
  assert.equal(ring.cqEntries, 4);
  for (let batch = 0; batch < 3; batch++) {
    for (let i = 0; i < 4; i++) prepNop(getSqe(ring)).setUserData(batch * 4 + i);
    ring.submit();
    // Let the kernel take every SQE of the batch before queueing the next.
    const deadline = performance.now() + 5000;
    while (ring.sqReady() > 0) assert.ok(performance.now() < deadline, "SQEs never consumed");
  }
  assert.equal(ring.cqReady(), 4, "the CQ is full; the rest wait in the kernel");
  // Reap without ever waiting: peekCqe alone must bring the held completions in.
  const seen: number[] = [];
  for (let cqe = ring.peekCqe(); cqe !== null; cqe = ring.peekCqe()) {
    assert.equal(cqe.res, 0);
    seen.push(cqe.userDataNumber);
    ring.cqAdvance(1);
  }
  assert.deepEqual(seen.sort((a, b) => a - b), [...Array(12).keys()]);
  assert.equal(ring.cqOverflow, 0, "no completion was dropped");
  assertNoCompletion(ring, 10);
  // The ring works normally afterwards.
  assert.equal(run(ring, (s) => prepNop(s), 99n), 0);
});

ringTest("CQ overflow: forEachCqe and peekBatch also bring held completions in", (config) => {
  using ring = new IoUring(4, { ...config.options, cqEntries: 4 });
  for (let i = 0; i < 8; i++) {
    prepNop(getSqe(ring)).setUserData(i);
    if (i % 4 === 3) {
      ring.submit();
      const deadline = performance.now() + 5000;
      while (ring.sqReady() > 0) assert.ok(performance.now() < deadline, "SQEs never consumed");
    }
  }
  const seen: number[] = [];
  assert.equal(ring.forEachCqe((c) => seen.push(c.userDataNumber)), 4);
  const out = new Array(8);
  const n = ring.peekBatch(out);
  assert.equal(n, 4, "peekBatch flushed the held completions");
  for (let i = 0; i < n; i++) seen.push(out[i].userDataNumber);
  ring.cqAdvance(n);
  assert.deepEqual(seen.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(ring.peekCqe(), null);
});

ringTest("coopTaskrun: completions held as task work are collected by every reaper", async (config) => {
  const WARM_UP = 40;
  using ring = new IoUring(8, { ...config.options, coopTaskrun: true });
  const coop = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
  // The kernel refuses the flags with SQPOLL: there the option is left out.
  assert.equal(ring.params.flags & coop, config.sqpoll ? 0 : coop);
  const reapers: (() => [number, number][])[] = [
    () => {
      const cqe = ring.peekCqe();
      if (cqe === null) return [];
      ring.cqAdvance(1);
      return [[cqe.userDataNumber, cqe.res]];
    },
    () => {
      const seen: [number, number][] = [];
      ring.forEachCqe((c) => seen.push([c.userDataNumber, c.res]));
      return seen;
    },
    () => {
      const seen: [number, number][] = [];
      ring.forEachCompletion((userData, res) => seen.push([userData, res]));
      return seen;
    },
    () => {
      const out = new Array(4);
      const n = ring.peekBatch(out);
      const seen = out.slice(0, n).map((c: Cqe): [number, number] => [c.userDataNumber, c.res]);
      ring.cqAdvance(n);
      return seen;
    },
  ];
  const [readFd, writeFd] = pipe();
  const writer = await OtherCpuWriter.start(writeFd);
  try {
    const buf = new Uint8Array(8);
    let held = 0, late = 0;
    // The first rounds only warm up: while V8 still compiles this loop, it makes system calls
    // (to hand work to its compiler threads), and any system call posts held completions.
    for (let round = 0; round < WARM_UP + 24; round++) {
      // A read of the empty pipe waits on poll. The write comes from another thread on another
      // CPU, so the wake-up (a retry of the read, then its CQE) is task work for this thread,
      // which (cooperatively) is not interrupted for it.
      prepRead(getSqe(ring), readFd, buf, 0).setUserData(round);
      ring.submit();
      writer.write();
      // Watch without a system call until the write is in (a timer tick may post it meanwhile).
      const deadline = performance.now() + 5000;
      while (ring.cqReady() === 0 && !(ring.sqFlags & IORING_SQ_TASKRUN)) {
        if (performance.now() > deadline) break;
      }
      // The kernel raises the flag a moment before it hands the work to this thread.
      const settle = performance.now() + 0.01;
      while (performance.now() < settle);
      if (ring.cqReady() === 0 && round >= WARM_UP) held++;
      const reaper = reapers[round % reapers.length];
      let seen = reaper();
      for (let i = 0; i < 100 && seen.length === 0; i++) seen = reaper();
      if (seen.length === 0) {
        // SQPOLL: the SQ thread posts it. Without, a reaper that left it held was too late.
        if (!config.sqpoll && round >= WARM_UP) late++;
        assert.notEqual(ring.waitCqe({ timeoutMs: 5000 }), null, `round ${round}: no completion`);
        seen = reaper();
      }
      assert.deepEqual(seen, [[round, 1]], `round ${round}: the read's completion`);
      while (writer.writes <= round) await new Promise((r) => setTimeout(r, 1));
      assert.equal(writer.lastResult, 1);
    }
    // How many were still held when the reaper looked depends on the scheduler (ticks and other
    // threads' system calls post them too), so only the reaper's part is asserted: each of them
    // came out of the reaper (refill: one io_uring_enter), none had to be waited for.
    assert.ok(late <= 2, `${late} of ${held} held completions were not collected by the reaper`);
    assertNoCompletion(ring, 10);
  } finally {
    writer.close();
    sysClose(readFd);
    sysClose(writeFd);
  }
});

// --- File system operations -------------------------------------------------------------------

ringTest("mkdirat, openat, statx, close, renameat, unlinkat (and their errors)", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const sub = cstring(`${dir.path}/sub`);
  assert.equal(run(ring, (s) => prepMkdirat(s, AT_FDCWD, sub, 0o750)), 0);
  const st = Deno.statSync(`${dir.path}/sub`);
  assert.ok(st.isDirectory);
  assert.equal(st.mode! & 0o777, 0o750 & ~Deno.umask());
  assertErr(run(ring, (s) => prepMkdirat(s, AT_FDCWD, sub)), "EEXIST");

  // openat relative to a directory fd
  const dfd = openFile(ring, `${dir.path}/sub`, O_RDONLY | O_DIRECTORY);
  const name = cstring("f.txt");
  const fd = run(ring, (s) => prepOpenat(s, dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0o600));
  assert.ok(fd >= 0, describe(fd));
  assertErr(run(ring, (s) => prepOpenat(s, dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0o600)), "EEXIST");
  assert.equal(run(ring, (s) => prepWrite(s, fd, pattern(1234), 0)), 1234);
  closeFd(ring, fd);
  assertErr(run(ring, (s) => prepClose(s, fd)), "EBADF");

  // statx through the ring agrees with Deno.statSync
  const sb = statxBuffer();
  const file = cstring(`${dir.path}/sub/f.txt`);
  assert.equal(run(ring, (s) => prepStatx(s, AT_FDCWD, file, 0, STATX_BASIC_STATS, sb)), 0);
  const sx = parseStatx(sb);
  const ds = Deno.statSync(`${dir.path}/sub/f.txt`);
  assert.equal(sx.size, 1234);
  assert.equal(sx.size, ds.size);
  assert.ok(sx.isFile && !sx.isDirectory && !sx.isSymlink);
  assert.equal(sx.mode & 0o777, 0o600 & ~Deno.umask());
  assert.equal(sx.mode, ds.mode);
  assert.equal(sx.ino, BigInt(ds.ino!));
  assert.equal(sx.nlink, ds.nlink);
  assert.equal(sx.uid, ds.uid);
  assert.equal(sx.blksize, ds.blksize);
  assert.equal(sx.mtime.sec, Math.floor(ds.mtime!.getTime() / 1000));
  assert.equal(sx.mask & STATX_BASIC_STATS, STATX_BASIC_STATS);
  const sbd = statxBuffer();
  assert.equal(run(ring, (s) => prepStatx(s, dfd, cstring("."), 0, STATX_BASIC_STATS, sbd)), 0);
  assert.ok(parseStatx(sbd).isDirectory);
  assertErr(run(ring, (s) => prepStatx(s, AT_FDCWD, cstring(`${dir.path}/nope`), 0, 0x7ff, sb)), "ENOENT");

  // renameat, RENAME_NOREPLACE
  const renamed = cstring(`${dir.path}/sub/g.txt`);
  assert.equal(run(ring, (s) => prepRenameat(s, AT_FDCWD, file, AT_FDCWD, renamed)), 0);
  assert.throws(() => Deno.statSync(`${dir.path}/sub/f.txt`), Deno.errors.NotFound);
  assert.deepEqual(Deno.readFileSync(`${dir.path}/sub/g.txt`), pattern(1234));
  Deno.writeTextFileSync(`${dir.path}/sub/h.txt`, "h");
  assertErr(
    run(ring, (s) => prepRenameat(s, dfd, cstring("h.txt"), dfd, cstring("g.txt"), RENAME_NOREPLACE)),
    "EEXIST",
  );
  assert.equal(
    run(ring, (s) => prepRenameat(s, dfd, cstring("h.txt"), AT_FDCWD, cstring(`${dir.path}/h`))),
    0,
  );
  assert.equal(Deno.readTextFileSync(`${dir.path}/h`), "h");

  // unlinkat: a file, then the directory (which needs AT_REMOVEDIR and must be empty)
  assertErr(run(ring, (s) => prepUnlinkat(s, AT_FDCWD, sub, AT_REMOVEDIR)), "ENOTEMPTY");
  assert.equal(run(ring, (s) => prepUnlinkat(s, dfd, cstring("g.txt"))), 0);
  assertErr(run(ring, (s) => prepUnlinkat(s, dfd, cstring("g.txt"))), "ENOENT");
  assertErr(run(ring, (s) => prepUnlinkat(s, AT_FDCWD, sub)), "EISDIR");
  closeFd(ring, dfd);
  assert.equal(run(ring, (s) => prepUnlinkat(s, AT_FDCWD, sub, AT_REMOVEDIR)), 0);
  assert.throws(() => Deno.statSync(`${dir.path}/sub`), Deno.errors.NotFound);
  assertErr(run(ring, (s) => prepOpenat(s, AT_FDCWD, file, O_RDONLY)), "ENOENT");
});

ringTest("symlinkat and linkat", (config) => {
  using dir = tempDir();
  using ring = new IoUring(4, config.options);
  if (!ring.probe().supports(IORING_OP_LINKAT)) return; // 5.15
  Deno.writeTextFileSync(`${dir.path}/t`, "target");
  const link = `${dir.path}/sym`;
  assert.equal(run(ring, (s) => prepSymlinkat(s, cstring("t"), AT_FDCWD, cstring(link))), 0);
  assert.equal(Deno.readLinkSync(link), "t");
  assert.equal(Deno.readTextFileSync(link), "target");
  assertErr(run(ring, (s) => prepSymlinkat(s, cstring("t"), AT_FDCWD, cstring(link))), "EEXIST");
  const hard = `${dir.path}/hard`;
  assert.equal(
    run(ring, (s) => prepLinkat(s, AT_FDCWD, cstring(`${dir.path}/t`), AT_FDCWD, cstring(hard))),
    0,
  );
  assert.equal(Deno.statSync(`${dir.path}/t`).nlink, 2);
  assert.equal(Deno.statSync(hard).ino, Deno.statSync(`${dir.path}/t`).ino);
  assertErr(
    run(ring, (s) => prepLinkat(s, AT_FDCWD, cstring(`${dir.path}/x`), AT_FDCWD, cstring(hard))),
    "ENOENT",
  );
});

ringTest("ftruncate, fallocate, fadvise, sync_file_range, fsync and fdatasync", (config) => {
  using dir = tempDir();
  using ring = new IoUring(4, config.options);
  const path = `${dir.path}/sz`;
  Deno.writeFileSync(path, pattern(5000));
  const fd = openFile(ring, path, O_RDWR);
  if (ring.probe().supports(IORING_OP_FTRUNCATE)) { // 6.9
    assert.equal(run(ring, (s) => prepFtruncate(s, fd, 1000)), 0);
    assert.equal(Deno.statSync(path).size, 1000);
    assert.equal(run(ring, (s) => prepFtruncate(s, fd, 3000n)), 0);
    assert.equal(Deno.statSync(path).size, 3000);
    assert.deepEqual(Deno.readFileSync(path).subarray(0, 1000), pattern(5000).subarray(0, 1000));
    assert.ok(Deno.readFileSync(path).subarray(1000).every((b) => b === 0));
  }
  assert.equal(run(ring, (s) => prepFallocate(s, fd, 0, 0, 1 << 20)), 0);
  assert.equal(Deno.statSync(path).size, 1 << 20);
  assert.equal(run(ring, (s) => prepFallocate(s, fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20)), 0);
  assert.equal(Deno.statSync(path).size, 1 << 20);
  assert.ok(Deno.statSync(path).blocks! * 512 >= 2 << 20, "KEEP_SIZE still allocated the blocks");
  assert.equal(run(ring, (s) => prepFadvise(s, fd, 0, 4096, POSIX_FADV_SEQUENTIAL)), 0);
  // (An advice the kernel refuses, EINVAL, is refused before it: see prep_test.)
  assert.equal(run(ring, (s) => prepSyncFileRange(s, fd, 4096, 0, SYNC_FILE_RANGE_WRITE)), 0);
  assert.equal(run(ring, (s) => prepFsync(s, fd)), 0);
  assert.equal(run(ring, (s) => prepFdatasync(s, fd)), 0);
  closeFd(ring, fd);
  assertErr(run(ring, (s) => prepFsync(s, fd)), "EBADF");
});

ringTest("splice file -> pipe -> file, and tee between pipes", (config) => {
  using dir = tempDir();
  using ring = new IoUring(8, config.options);
  const probe = ring.probe();
  if (!probe.supports(IORING_OP_SPLICE) || !probe.supports(IORING_OP_TEE)) return; // 5.7 / 5.8
  const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
  Deno.writeFileSync(src, pattern(10000, 11));
  const fin = openFile(ring, src, O_RDONLY);
  const fout = openFile(ring, dst, O_WRONLY | O_CREAT);
  const [pr, pw] = pipe();
  const [qr, qw] = pipe();
  try {
    assert.equal(run(ring, (s) => prepSplice(s, fin, 2000, pw, -1, 3000)), 3000);
    assert.equal(run(ring, (s) => prepTee(s, pr, qw, 3000)), 3000); // copy without consuming
    assert.equal(run(ring, (s) => prepSplice(s, pr, -1, fout, 100, 3000)), 3000);
    const file = Deno.readFileSync(dst);
    assert.equal(file.length, 3100);
    assert.deepEqual(file.subarray(100), pattern(10000, 11).subarray(2000, 5000));
    const teed = new Uint8Array(3000);
    assert.equal(run(ring, (s) => prepRead(s, qr, teed, 0)), 3000);
    assert.deepEqual(teed, pattern(10000, 11).subarray(2000, 5000));
    // splice with no offset on a regular file uses (and moves) the file position
    assert.equal(run(ring, (s) => prepSplice(s, fin, -1, pw, -1, 10)), 10);
    const head = new Uint8Array(10);
    assert.equal(sysRead(pr, head), 10);
    assert.deepEqual(head, pattern(10000, 11).subarray(0, 10));
  } finally {
    for (const fd of [pr, pw, qr, qw]) sysClose(fd);
  }
  closeFd(ring, fin);
  closeFd(ring, fout);
});

ringTest("openat2 with open_how and RESOLVE_BENEATH", (config) => {
  using dir = tempDir();
  using ring = new IoUring(4, config.options);
  if (!ring.probe().supports(IORING_OP_OPENAT2)) return; // 5.6
  Deno.mkdirSync(`${dir.path}/d`);
  Deno.writeTextFileSync(`${dir.path}/outside`, "o");
  const dfd = openFile(ring, `${dir.path}/d`, O_RDONLY | O_DIRECTORY);
  const how = openHow({ flags: O_RDWR | O_CREAT, mode: 0o640, resolve: RESOLVE.BENEATH });
  const fd = run(ring, (s) => prepOpenat2(s, dfd, cstring("new"), how));
  assert.ok(fd >= 0, describe(fd));
  assert.equal(Deno.statSync(`${dir.path}/d/new`).mode! & 0o777, 0o640 & ~Deno.umask());
  closeFd(ring, fd);
  const ro = openHow({ flags: O_RDONLY, resolve: RESOLVE.BENEATH });
  assertErr(run(ring, (s) => prepOpenat2(s, dfd, cstring("../outside"), ro)), "EXDEV");
  // An open_how with unknown flags is rejected by the kernel.
  const bad = openHow({ flags: O_RDONLY, resolve: 0x8000 });
  assertErr(run(ring, (s) => prepOpenat2(s, dfd, cstring("new"), bad)), "EINVAL");
  closeFd(ring, dfd);
});

// --- Probe and registration --------------------------------------------------------------------

ringTest("probe() lists the opcodes this kernel supports", (config) => {
  using ring = new IoUring(2, config.options);
  const probe = ring.probe();
  assert.ok(probe.lastOp >= IORING_OP_READ, `lastOp ${probe.lastOp}`);
  for (const op of [IORING_OP_NOP, IORING_OP_READ, IORING_OP_OPENAT2, IORING_OP_SPLICE]) {
    assert.ok(probe.supports(op), `opcode ${op}`);
  }
  assert.equal(probe.supports(250), false);
  assert.equal(probe.supports(probe.lastOp + 1), false);
  assert.ok(probe.names.includes("NOP") && probe.names.includes("READ") && probe.names.includes("STATX"));
  assert.equal(probe.names[0], "NOP");
});

ringTest("registerEventfd signals completions; unregisterEventfd stops it", async (config) => {
  using ring = new IoUring(4, config.options);
  const efd = eventfd();
  try {
    ring.registerEventfd(efd);
    assert.throws(() => ring.registerEventfd(efd), (e) => e instanceof IoUringError && e.code === "EBUSY");
    prepNop(getSqe(ring)).setUserData(1);
    prepNop(getSqe(ring)).setUserData(2);
    ring.submit();
    reap(ring, 2);
    const counter = new Uint8Array(8);
    // The kernel signals right after posting; allow it a moment to get there.
    let r = -1;
    for (let i = 0; i < 200 && r < 0; i++) {
      r = sysRead(efd, counter);
      if (r < 0) await new Promise((ok) => setTimeout(ok, 5));
    }
    assert.equal(r, 8, "the eventfd was never signalled");
    assert.ok(new DataView(counter.buffer).getBigUint64(0, true) >= 1n);

    ring.unregisterEventfd();
    assert.throws(() => ring.unregisterEventfd(), (e) => e instanceof IoUringError && e.code === "ENXIO");
    assert.equal(run(ring, (s) => prepNop(s)), 0);
    await new Promise((ok) => setTimeout(ok, 10));
    assert.equal(sysRead(efd, counter), -1, "signalled after unregisterEventfd");

    // The async variant registers too (signals only for completions that went async).
    ring.registerEventfd(efd, { async: true });
    ring.unregisterEventfd();
  } finally {
    sysClose(efd);
  }
  assert.equal(sysWrite(efd, new Uint8Array(8)), -1); // closed
});

Deno.test({
  name: "URING_BACKEND chooses the backend; an unknown value is refused",
  ignore: skipKernel(),
  fn() {
    const saved = Deno.env.get("URING_BACKEND");
    try {
      for (const backend of ["libc", "helper"] as const) {
        Deno.env.set("URING_BACKEND", backend);
        using ring = new IoUring(2, { sqpoll: false });
        assert.equal(ring.backend, backend);
        assert.equal(run(ring, (s) => prepNop(s)), 0);
      }
      Deno.env.set("URING_BACKEND", "kernel");
      assert.throws(() => new IoUring(2, { sqpoll: false }), TypeError);
      // An explicit option wins over the environment.
      using ring = new IoUring(2, { sqpoll: false, backend: "libc" });
      assert.equal(ring.backend, "libc");
    } finally {
      if (saved === undefined) Deno.env.delete("URING_BACKEND");
      else Deno.env.set("URING_BACKEND", saved);
    }
    using ring = new IoUring(2, { sqpoll: false });
    assert.equal(ring.backend, saved ?? "helper", "the helper is the default once built");
  },
});

Deno.test({
  name: "backend choice: the helper loads with --allow-ffi alone; URING_HELPER and empty values",
  ignore: skipKernel(),
  async fn() {
    const mod = JSON.stringify(new URL("../mod.ts", import.meta.url).href);
    const script = `import { getSys } from ${mod};
      try { console.log(getSys().backend); } catch (e) { console.log("error: " + e.message); }`;
    using dir = tempDir();
    const path = `${dir.path}/choice.ts`;
    Deno.writeTextFileSync(path, script);
    /**
     * What `getSys()` chose in a child run with `flags` and `env` (and no other permission); the
     * two variables are unset unless `env` sets them, whatever this process has.
     */
    const choice = async (flags: string[], env: Record<string, string>) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", ...flags, path],
        env: { URING_BACKEND: "", URING_HELPER: "", ...env },
        stdin: "null",
      }).output();
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout).trim();
    };
    // Without --allow-read (and --allow-env) the built helper is still the default.
    assert.equal(await choice(["--allow-ffi"], {}), "helper");
    assert.equal(await choice(["--allow-ffi", "--allow-env"], { URING_BACKEND: "" }), "helper");
    assert.equal(await choice(["--allow-ffi", "--allow-env"], { URING_BACKEND: "libc" }), "libc");
    // A helper URING_HELPER names that does not load is an error that says so (no quiet libc).
    assert.match(
      await choice(["--allow-ffi", "--allow-env"], { URING_HELPER: "/nonexistent/helper.so" }),
      /^error: cannot load the helper URING_HELPER names \(\/nonexistent\/helper\.so\): /,
    );
    assert.equal(await choice(["--allow-ffi", "--allow-env"], { URING_HELPER: "" }), "helper");
  },
});

Deno.test({
  name:
    "the helper stays mapped after dlclose (NODELETE): process exit never unmaps it under a wait still in it",
  ignore: skipKernel(),
  async fn() {
    // A wait runs in the helper on Deno's thread pool; at process exit Deno closes the library
    // while that thread may still be inside it. The helper marks itself RTLD_NODELETE when it is
    // loaded, so dlclose leaves it mapped.
    const path = decodeURIComponent(HELPER_PATH.pathname);
    const script = `
      const lib = Deno.dlopen(${JSON.stringify(path)}, { uring_fence: { parameters: [], result: "void" } });
      lib.symbols.uring_fence();
      lib.close();
      const mapped = Deno.readTextFileSync("/proc/self/maps").includes(${JSON.stringify(path)});
      console.log(mapped ? "mapped" : "unmapped");
    `;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(code, 0, dec.decode(stderr));
    assert.equal(
      dec.decode(stdout).trim(),
      "mapped",
      `${path} was unmapped by dlclose (its constructor should pin it)`,
    );
  },
});

Deno.test({
  name:
    "Sys.seek finds a sparse file's data and holes, Sys.utimens sets times, Sys.statx reads them, on both backends",
  ignore: skipKernel(),
  fn() {
    using dir = tempDir();
    const path = `${dir.path}/sparse`;
    {
      using f = Deno.openSync(path, { write: true, create: true });
      f.truncateSync(8 << 20);
      f.seekSync(4 << 20, Deno.SeekMode.Start);
      f.writeSync(new Uint8Array(4096).fill(1));
    }
    if (Deno.statSync(path).blocks! * 512 >= 8 << 20) {
      console.log("  (this file system keeps no holes: skipped)");
      return;
    }
    for (const backend of ["helper", "libc"] as const) {
      using ring = new IoUring(2, { sqpoll: false, backend });
      const fd = openFile(ring, path, 0);
      try {
        const sys = getSys(backend);
        assert.equal(sys.seek(fd, 0, SEEK_DATA), 4 << 20, backend);
        assert.equal(sys.seek(fd, 4 << 20, SEEK_HOLE), (4 << 20) + 4096, backend);
        assert.equal(sys.seek(fd, (4 << 20) + 4096, SEEK_DATA), -errno("ENXIO"), `${backend}: no data after`);
        assert.equal(sys.seek(-1, 0, SEEK_DATA), -errno("EBADF"), backend);
        // utimensat, to the nanosecond.
        const times = new BigInt64Array([7n, 123456789n, 8n, 987654321n]);
        assert.equal(sys.utimens(cstring(path), new Uint8Array(times.buffer)), 0, backend);
        const st = Deno.statSync(path);
        assert.equal(st.mtime!.getTime(), 8987, backend); // Deno's view is milliseconds
        assert.equal(sys.utimens(cstring(`${path}-missing`), new Uint8Array(times.buffer)), -errno("ENOENT"));
        // statx on this thread: the birth time to the nanosecond, the times utimensat set.
        const out = new Uint8Array(256);
        assert.equal(sys.statx(cstring(path), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME, out), 0);
        const sx = parseStatx(out);
        assert.equal(sx.ino, BigInt(st.ino!), backend);
        assert.equal(sx.size, 8 << 20, backend);
        assert.deepEqual(sx.mtime, { sec: 8, nsec: 987654321 }, backend);
        assert.ok(sx.mask & STATX_BTIME, `${backend}: ext4 and tmpfs keep birth times`);
        assert.equal(Math.floor(sx.btime.sec * 1000 + sx.btime.nsec / 1e6), st.birthtime!.getTime(), backend);
        assert.equal(sys.statx(cstring(`${path}-missing`), 0, STATX_BASIC_STATS, out), -errno("ENOENT"));
      } finally {
        closeFd(ring, fd);
      }
    }
  },
});

Deno.test({
  name:
    "IoUring misuse found by a probe: layout flags, 4 GiB lengths, nested reaps, close in a reap, setters",
  ignore: skipKernel(),
  async fn() {
    // Flags that change the ring's memory layout in ways it does not read are refused (they made
    // completions vanish). SQE128 and CQE32 (1 << 10, 1 << 11) it reads: tests/big_ring_test.ts.
    for (const flags of [1 << 14, 1 << 15, 1 << 18, 1 << 19]) {
      assert.throws(() => new IoUring(8, { sqpoll: false, flags }), RangeError, `flags ${flags}`);
    }
    using ring = new IoUring(8, { sqpoll: false });
    // Lengths of 4 GiB or more (virtual memory only: never touched).
    let big: Uint8Array | null = null;
    try {
      big = new Uint8Array(2 ** 32 + 5);
    } catch {
      console.log("  (no 4 GiB buffer here: length checks skipped)");
    }
    if (big !== null) {
      const words = new Uint32Array(new Iovecs([big]).bytes.buffer);
      assert.deepEqual([words[2], words[3]], [5, 1], "iov_len keeps its high word");
      assert.throws(() => ring.registerBuffers([big!]), /at most 1 GiB each/);
      assert.throws(() => prepMadvise(getSqe(ring), big!, 0), /larger than 4 GiB/);
    }
    // SQE setters refuse what they cannot hold; preps refuse the wrong kind of argument.
    const sqe = getSqe(ring);
    prepNop(sqe);
    assert.throws(() => sqe.setFlags(256), RangeError);
    assert.throws(() => sqe.setFlags(-1), RangeError);
    assert.throws(() => sqe.addFlags(1.5), RangeError);
    assert.throws(() => sqe.setIoprio(65536), RangeError);
    assert.throws(() => sqe.setPersonality(-1), RangeError);
    assert.throws(() => prepTimeout(sqe, { bytes: new Uint8Array(1) } as unknown as Timespec), TypeError);
    assert.throws(() => prepReadv(sqe, 0, [new Uint8Array(4)] as unknown as Iovecs, 0), TypeError);
    await assert.rejects(ring.waitAsync(NaN), RangeError);
    // waitCqe takes an options object: a bare number would have waited without a limit.
    assert.throws(() => ring.waitCqe(100 as unknown as { timeoutMs: number }), TypeError);
    assert.throws(() => ring.peekBatch({} as unknown as Cqe[]), TypeError);
    ring.submitAndWait(1);
    ring.forEachCqe(() => {});
    // A reap from inside a reap's callback is refused (it handed completions out twice).
    const fill = (n: number, base: number) => {
      for (let i = 0; i < n; i++) prepNop(getSqe(ring)).setUserData(base + i);
      ring.submitAndWait(n);
    };
    fill(2, 0);
    const seen: number[] = [];
    assert.throws(
      () =>
        ring.forEachCqe((c) => {
          seen.push(c.userDataNumber);
          ring.forEachCompletion(() => {});
        }),
      /cannot be called from inside/,
    );
    ring.forEachCompletion((u) => seen.push(u));
    assert.deepEqual(seen, [0, 1], "each completion once");
    // So is every other way to reap from there: peeking, advancing, waiting, iterating.
    const nested: [string, () => unknown][] = [
      ["peekCqe", () => ring.peekCqe()],
      ["peekBatch", () => ring.peekBatch(new Array(4))],
      ["cqAdvance", () => ring.cqAdvance(1)],
      ["waitCqe", () => ring.waitCqe({ timeoutMs: 1 })],
      ["completions", () => ring.completions().next()],
    ];
    for (const [name, reap] of nested) {
      fill(2, 100);
      const once: number[] = [];
      assert.throws(
        () =>
          ring.forEachCompletion((u) => {
            once.push(u);
            reap();
          }),
        (e) =>
          e instanceof Deno.errors.Busy &&
          /cannot be called from inside a forEachCqe\/forEachCompletion callback/.test(e.message),
        name,
      );
      ring.forEachCompletion((u) => once.push(u));
      assert.deepEqual(once, [100, 101], `${name}: each completion once`);
      assert.equal(ring.cqReady(), 0, `${name}: the head stayed where the reaps left it`);
    }
    // A callback that is not a function consumes nothing.
    fill(2, 10);
    assert.throws(() => ring.forEachCqe(null as unknown as (c: Cqe) => void), TypeError);
    assert.equal(ring.cqReady(), 2);
    ring.forEachCqe(() => {});
    // close() from a reap's callback: the completions it took are still real; then it is closed.
    const other = new IoUring(8, { sqpoll: false });
    for (let i = 0; i < 3; i++) prepNop(other.getSqe()!).setUserData(20 + i);
    other.submitAndWait(3);
    const got: number[] = [];
    other.forEachCompletion((u, res) => {
      got.push(u, res);
      other.close();
    });
    assert.deepEqual(got, [20, 0, 21, 0, 22, 0]);
    assert.ok(other.closed);
    assert.throws(() => other.forEachCqe(() => {}), ClosedError);
    // close() in a `for ... of completions()` body ends the loop (it threw ClosedError at the next step).
    const third = new IoUring(8, { sqpoll: false });
    for (let i = 0; i < 3; i++) prepNop(third.getSqe()!).setUserData(30 + i);
    third.submitAndWait(3);
    const iterated: number[] = [];
    for (const cqe of third.completions()) {
      iterated.push(cqe.userDataNumber);
      third.close();
    }
    assert.deepEqual(iterated, [30]);
    assert.throws(() => third.completions().next(), ClosedError);
  },
});

ringTest("waitCqe({ count }) waits until that many completions are ready, or its timeout", (config) => {
  using ring = new IoUring(8, config.options);
  const ts = new Timespec(40);
  prepNop(ring.getSqe()!).setUserData(1);
  prepTimeout(ring.getSqe()!, ts).setUserData(2);
  ring.submit();
  // One completion is there at once; three never come within 20 ms.
  assert.equal(ring.waitCqe({ count: 3, timeoutMs: 20 }), null);
  const first = ring.waitCqe({ count: 2, timeoutMs: 5_000 });
  assert.ok(first !== null, "the NOP and the timeout both completed");
  assert.equal(ring.cqReady(), 2);
  assert.equal(first.userData, 1n, "the oldest is returned, nothing consumed");
  ring.cqAdvance(2);
  for (const count of [0, ring.cqEntries + 1, 1.5, -1]) {
    assert.throws(() => ring.waitCqe({ count, timeoutMs: 0 }), RangeError, String(count));
  }
});

ringTest(
  "submitAndWait(n) with some completions ready waits in the kernel for the rest, not in a loop",
  (config) => {
    // The kernel counts min_complete from the CQ head: asking it for the missing ones only returned
    // at once while half were there, and under SQPOLL the wait spun (810,000 enters in 100 ms).
    using ring = new IoUring(8, config.options);
    const ts = new Timespec(50);
    prepNop(ring.getSqe()!).setUserData(1);
    prepNop(ring.getSqe()!).setUserData(2);
    prepTimeout(ring.getSqe()!, ts).setUserData(3);
    ring.submit();
    const deadline = performance.now() + 5000;
    while (ring.cqReady() < 2) assert.ok(performance.now() < deadline, "the NOPs never completed");
    const waits = ring.stats.wait;
    ring.submitAndWait(3);
    assert.equal(ring.cqReady(), 3);
    assert.ok(ring.stats.wait - waits <= 5, `${ring.stats.wait - waits} enters to wait for one completion`);
    ring.cqAdvance(3);
  },
);

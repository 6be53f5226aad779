import assert from "node:assert/strict";
import {
  alignedBuffer,
  directAlignment,
  FixedBufferPool,
  iopollError,
  IORING_FEAT_CQE_SKIP,
  IoUring,
  OsError,
  Uring,
  type UringFile,
} from "../mod.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";
import { mkfifo, pipe, spinUntilReady, sysClose, sysRead, sysWrite } from "./_io.ts";
import { fdCount, fdIsOpen, sleep, uringOptions } from "./uring_support.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

ringTest("Uring: nop, read, write, readv, writev, fsync, fallocate, ftruncate", async (config) => {
  using dir = tempDir();
  await using uring = new Uring(uringOptions(config, { entries: 8 }));
  assert.equal(uring.sqpoll, config.sqpoll);
  assert.equal(await uring.nop(), undefined);

  const path = `${dir.path}/a.bin`;
  const fd = await uring.openFd(path, 0o2 | 0o100, 0o644); // O_RDWR | O_CREAT
  assert.ok(fd >= 0);
  assert.equal(await uring.write(fd, enc.encode("hello, world"), 0), 12);
  const buf = new Uint8Array(32);
  assert.equal(await uring.read(fd, buf, 7), 5);
  assert.equal(dec.decode(buf.subarray(0, 5)), "world");
  assert.equal(await uring.read(fd, buf, 12), 0, "0 at end of file");
  assert.equal(await uring.read(fd, buf, 4096n), 0, "bigint positions work");

  assert.equal(await uring.writev(fd, [enc.encode("AB"), enc.encode("CDE")], 100), 5);
  const a = new Uint8Array(3), b = new Uint8Array(2);
  assert.equal(await uring.readv(fd, [a, b], 100), 5);
  assert.equal(dec.decode(a) + dec.decode(b), "ABCDE");
  assert.equal(Deno.statSync(path).size, 105);

  await uring.fsync(fd);
  await uring.fsync(fd, { datasync: true });
  await uring.fallocate(fd, 0, 8192);
  assert.equal(Deno.statSync(path).size, 8192);
  await uring.ftruncate(fd, 3);
  assert.equal(Deno.readTextFileSync(path), "hel");
  await uring.close(fd);
  await assert.rejects(uring.read(fd, buf, 0), (e: OsError) => e.code === "EBADF");
});

ringTest(
  "Uring: open gives a UringFile: readAt/writeAt/readFull/writeAll/stat/sync/truncate/close",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config));
    const path = `${dir.path}/f.txt`;
    const before = fdCount();
    const file = await uring.open(path, { read: true, write: true, create: true });
    assert.equal(file.path, path);
    assert.equal(fdCount(), before + 1);
    const data = new Uint8Array(100_000).map((_, i) => i * 7);
    await file.writeAll(data, 0);
    const back = new Uint8Array(200_000);
    assert.equal(await file.readFull(back, 0), data.length, "readFull stops at end of file");
    assert.deepEqual(back.subarray(0, data.length), data);
    assert.equal(await file.readAt(back, 50_000n), 50_000);
    const st = await file.stat();
    assert.equal(st.size, data.length);
    assert.ok(st.isFile);
    assert.equal(st.ino, BigInt(Deno.statSync(path).ino!));
    await file.sync();
    await file.sync({ datasync: true });
    await file.truncate(10);
    assert.equal((await file.stat()).size, 10);
    await file.close();
    assert.ok(file.closed);
    await file.close(); // harmless
    assert.equal(fdCount(), before);
    await assert.rejects(file.readAt(back, 0), Deno.errors.BadResource);
    await assert.rejects(file.stat(), Deno.errors.BadResource);
    // writeAll checks as writeAt does, also for an empty buffer (it used to resolve at once).
    await assert.rejects(file.writeAll(new Uint8Array(0), 0), Deno.errors.BadResource);

    // Default open is read-only; append writes at the end.
    const ro = await uring.open(path);
    await assert.rejects(ro.writeAt(enc.encode("x"), 0), (e: OsError) => e.code === "EBADF");
    await assert.rejects(ro.writeAll(new Uint8Array(0), 0), (e: OsError) => e.code === "EBADF");
    await ro.close();
    await using rw = await uring.open(path, { read: true, write: true });
    await assert.rejects(
      rw.writeAll(new Uint8Array(0), -1),
      /^RangeError: write: position must not be negative, got -1$/,
    );
    await assert.rejects(rw.writeAll({} as never, 0), /^TypeError: .*buffer must be/);
    await assert.rejects(rw.writeAll(null as never, 0), /^TypeError: .*buffer must be/);
    await rw.writeAll(new Uint8Array(0), 5); // an empty write at a valid position: nothing to do
    const ap = await uring.open(path, { append: true });
    await ap.writeAll(enc.encode("!!"), 0);
    await ap.close();
    assert.equal(Deno.statSync(path).size, 12);
  },
);

ringTest("Uring: UringFile.close() cancels the file's operations still in the kernel", async (config) => {
  using dir = tempDir();
  const fifo = `${dir.path}/fifo`;
  mkfifo(fifo);
  await using uring = new Uring(uringOptions(config));
  // Read and write ends: a read of the empty FIFO waits in the kernel for ever.
  const file = await uring.open(fifo, { read: true, write: true });
  const other = await uring.open(fifo, { read: true, write: true });
  const read = file.readAt(new Uint8Array(16), 0);
  const bare = uring.read(file.fd, new Uint8Array(16), 0); // the same fd, not through the file
  const untouched = other.readAt(new Uint8Array(16), 0);
  await sleep(20);
  const settled: boolean[] = [false, false];
  [read, bare].forEach((op, i) => op.then(() => settled[i] = true, () => settled[i] = true));
  await file.close();
  // close() resolves once they have settled (the cancelled reads' CQEs come after its own).
  assert.deepEqual(settled, [true, true]);
  const notCancelled = (op: Promise<unknown>) =>
    Promise.race([op, sleep(5000).then(() => assert.fail("still pending 5 s after the close"))]);
  for (const op of [read, bare]) {
    await assert.rejects(notCancelled(op), (e: OsError) => {
      assert.equal(e.code, "ECANCELED", String(e));
      assert.match(e.message, /^read .*\(ECANCELED\): the file was closed$/);
      return true;
    });
  }
  // Another file's operation goes on.
  assert.equal(uring.pending, 1);
  assert.equal(await uring.write(other.fd, enc.encode("data"), 0), 4);
  assert.equal(await untouched, 4);
  await other.close();

  // A file with a registered index: its operations by index and by fd. And an operation still
  // in the backlog (the in-flight limit is full of reads of another FIFO) is rejected too,
  // instead of reaching the kernel after the close.
  const fifo2 = `${dir.path}/fifo2`;
  mkfifo(fifo2);
  await using small = new Uring({ ...uringOptions(config), entries: 2 });
  const filler = await small.open(fifo2, { read: true, write: true });
  const queuedFile = await small.open(fifo, { read: true, write: true });
  const fillers = Array.from({ length: small.ring.cqEntries }, () => filler.readAt(new Uint8Array(4), 0));
  const fixed = await uring.open(fifo, { read: true, write: true, fixed: true });
  assert.ok(fixed.fixedIndex >= 0);
  // Their outcomes, caught at once: the queued one rejects inside close().
  const outcomes = [
    fixed.readAt(new Uint8Array(4), 0),
    uring.read(fixed.fd, new Uint8Array(4), 0),
    queuedFile.readAt(new Uint8Array(4), 0), // behind the fillers
  ].map((op) => notCancelled(op).then(() => null, (e: OsError) => e));
  await sleep(20);
  // (queuedFile's close waits in the backlog too, behind the fillers: awaited after them.)
  const closingQueued = queuedFile.close();
  await fixed.close();
  for (const e of await Promise.all(outcomes)) {
    assert.ok(e !== null && e.code === "ECANCELED" && /file was closed/.test(e.message), String(e));
  }
  // (Written through the other Uring: this one's in-flight limit is full of the fillers.)
  assert.equal(await uring.write(filler.fd, new Uint8Array(4 * fillers.length), 0), 4 * fillers.length);
  await Promise.all(fillers);
  await closingQueued;
  await filler.close();
});

ringTest(
  "Uring: UringFile.close() also cancels a chain with a member on the file and a splice into it",
  async (config) => {
    // Left alone, both ran after the close: the chain's write on the next file given the same fd
    // number, the splice into the closed file once its pipe had data.
    using dir = tempDir();
    const [a, b] = [`${dir.path}/a`, `${dir.path}/b`];
    const reset = () => {
      Deno.writeTextFileSync(a, "AAAAAAAA");
      Deno.writeTextFileSync(b, "BBBBBBBB");
    };
    const cancelledByClose = (e: unknown) =>
      e instanceof Error && (e as OsError).code === "ECANCELED" && /the file was closed/.test(e.message);
    await using uring = new Uring(uringOptions(config));

    // 1. A chain in the kernel: its write on the file waits behind a timeout.
    reset();
    let fileA = await uring.open(a, { write: true });
    const chain = uring.chain((c) => c.timeout(300).write(fileA.fd, enc.encode("XX"), 0));
    let chainSettled = false;
    void chain.then(() => chainSettled = true);
    await sleep(20);
    await fileA.close();
    assert.ok(chainSettled, "close() resolved only once the chain had settled");
    let fileB = await uring.open(b, { write: true });
    const results = await chain;
    assert.equal(results.length, 2);
    assert.ok(
      !results[1].ok && cancelledByClose(results[1].error),
      String(!results[1].ok && results[1].error),
    );
    await sleep(350); // (past the timeout: nothing runs later either)
    await fileB.close();
    assert.equal(Deno.readTextFileSync(a), "AAAAAAAA");
    assert.equal(Deno.readTextFileSync(b), "BBBBBBBB", "nothing was written through the reused fd");

    // 2. A chain still in the backlog (the in-flight limit is full of reads of a FIFO) never runs.
    reset();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    await using small = new Uring({ ...uringOptions(config), entries: 2 });
    const filler = await small.open(fifo, { read: true, write: true });
    fileA = await small.open(a, { write: true });
    const fillers = Array.from({ length: small.ring.cqEntries }, () => filler.readAt(new Uint8Array(4), 0));
    await sleep(20);
    const queued = small.chain((c) => c.write(fileA.fd, enc.encode("YY"), 0).nop());
    const closing = fileA.close(); // queued too, behind the fillers
    // It settles as a chain cancelled in the kernel does: every member ECANCELED, saying why.
    const queuedResults = await queued;
    assert.ok(!queuedResults[0].ok && cancelledByClose(queuedResults[0].error));
    assert.ok(
      !queuedResults[1].ok && /ECANCELED.*another member of its chain/.test(String(queuedResults[1].error)),
      String(!queuedResults[1].ok && queuedResults[1].error),
    );
    assert.equal(await uring.write(filler.fd, new Uint8Array(4 * fillers.length), 0), 4 * fillers.length);
    await Promise.all(fillers);
    await closing;
    await filler.close();
    assert.equal(Deno.readTextFileSync(a), "AAAAAAAA");

    // 2b. Members issued only when the one before completes, in the same tick as the close: the
    // kernel's close waits for them, so they write into this file or nothing, never into the
    // next file given the fd's number (before, 300 of 300 runs without SQPOLL wrote into b).
    for (let round = 0; round < 20; round++) {
      reset();
      fileA = await uring.open(a, { write: true });
      const linked = uring.chain((c) =>
        c.nop().write(fileA.fd, enc.encode("XX"), 0).write(fileA.fd, enc.encode("XX"), 2)
      );
      const closingA = fileA.close();
      fileB = await uring.open(b, { write: true });
      for (const r of await linked) assert.ok(r.ok || cancelledByClose(r.error), String(!r.ok && r.error));
      await closingA;
      await fileB.close();
      assert.match(Deno.readTextFileSync(a), /^(XXXX|XX)?A+$/);
      assert.equal(Deno.readTextFileSync(b), "BBBBBBBB", `round ${round}: written through the reused fd`);
    }

    // 2c. A member cancelled because another member's file was closed says so (a splice waiting
    // on an empty pipe posts the kernel-internal ERESTARTSYS when cancelled: not EINTR).
    {
      reset();
      const [r, w] = pipe();
      try {
        const other = await uring.open(b, { write: true });
        fileA = await uring.open(a, { write: true });
        const spliced = uring.chain((c) =>
          c.splice(r, -1, other.fd, 0, 4).write(fileA.fd, enc.encode("XX"), 0)
        );
        await sleep(20);
        await fileA.close();
        const [first, second] = await spliced;
        assert.ok(
          !first.ok && (first.error as OsError).code === "ECANCELED" &&
            /another member of its chain/.test(first.error.message),
          String(!first.ok && first.error),
        );
        assert.ok(!second.ok && cancelledByClose(second.error), String(!second.ok && second.error));
        await other.close();
      } finally {
        sysClose(r);
        sysClose(w);
      }
    }

    // 3. A splice into the file, waiting for its pipe's data.
    reset();
    const [r, w] = pipe();
    try {
      fileA = await uring.open(a, { write: true });
      const splice = uring.splice(r, -1, fileA.fd, 0, 4);
      let spliceSettled = false;
      void splice.then(() => spliceSettled = true, () => spliceSettled = true);
      await sleep(20);
      await fileA.close();
      assert.ok(spliceSettled, "close() resolved only once the splice had settled");
      // (It names the file closed: the splice's output, not its input, the pipe.)
      await assert.rejects(
        splice,
        (e: OsError) =>
          e.code === "ECANCELED" && e.message.endsWith(`its output, fd ${fileA!.fd}, was closed`),
      );
      fileB = await uring.open(b, { write: true });
      assert.equal(await uring.write(w, enc.encode("ZZZZ"), 0), 4);
      const left = new Uint8Array(8);
      assert.equal(await uring.read(r, left, 0), 4, "the pipe's data is still there");
      await fileB.close();
      assert.equal(Deno.readTextFileSync(a), "AAAAAAAA");
      assert.equal(Deno.readTextFileSync(b), "BBBBBBBB");
    } finally {
      sysClose(r);
      sysClose(w);
    }
  },
);

ringTest(
  "Uring: file.close() cancels a chain's members issued after it, and settles promptly",
  async (config) => {
    // A member still waiting for the one before is not found by a cancel; the close asks again
    // as the chain moves on. Before, the close waited for the chain to end by itself: for ever
    // on an empty FIFO, 3 s behind a timeout (whose write then landed).
    using dir = tempDir();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    const a = `${dir.path}/a`;
    Deno.writeTextFileSync(a, "AAAAAAAA");
    await using uring = new Uring(uringOptions(config));
    const within = <T>(p: Promise<T>, ms: number, what: string) =>
      Promise.race([p, sleep(ms).then(() => assert.fail(`${what}: still pending after ${ms} ms`))]);
    for (let round = 0; round < 5; round++) {
      const pipeFile = await uring.open(fifo, { read: true, write: true });
      const chain = uring.chain((c) => c.nop().read(pipeFile.fd, new Uint8Array(1), 0));
      await within(pipeFile.close(), 2000, "close of a FIFO a chain reads");
      const results = await chain;
      assert.ok(!results[1].ok && (results[1].error as OsError).code === "ECANCELED", String(results[1]));
    }
    // A read issued from io-wq after the member before it, then cancelled, posts EINTR: the
    // close cancelled it, so ECANCELED, "the file was closed".
    {
      const pipeFile = await uring.open(fifo, { read: true, write: true });
      const other = await uring.open(`${dir.path}/other`, { write: true, create: true });
      const chain = uring.chain((c) =>
        c.write(other.fd, enc.encode("o"), 0).read(pipeFile.fd, new Uint8Array(1), 0)
      );
      await sleep(100);
      await within(pipeFile.close(), 2000, "close of a FIFO a chain reads");
      const [, read] = await chain;
      assert.ok(
        !read.ok && /ECANCELED.*the file was closed/.test(String(read.error)),
        String(!read.ok && read.error),
      );
      await other.close();
    }
    const fileA = await uring.open(a, { write: true });
    const late = uring.chain((c) => c.nop().timeout(3000).write(fileA.fd, enc.encode("late"), 0));
    await within(fileA.close(), 2000, "close of a file behind a timeout");
    const lateResults = await late;
    assert.ok(!lateResults[2].ok, "the write after the timeout did not run");
    assert.equal(Deno.readTextFileSync(a), "AAAAAAAA");
    // The same with another operation pending, so that the Uring has a 1 s wait parked: the close
    // asks again on a timer of its own. (A probe's script, run with `deno run`, had the write land
    // in 1 and 3 of 12 rounds when the retry waited for the parked wait; under `deno test` this
    // loop did not reproduce that, so it guards the outcome, not that code path.)
    await using parked = new Uring(uringOptions(config));
    const unrelated = parked.timeout(60_000).catch(() => {});
    await sleep(50);
    for (let round = 0; round < 12; round++) {
      const file = await parked.open(a, { write: true });
      const chain = parked.chain((c) => c.nop().timeout(300).write(file.fd, enc.encode("late"), 0));
      await file.close();
      const results = await chain;
      assert.ok(!results[2].ok, `round ${round}: the write after the timeout did not run`);
      assert.equal(Deno.readTextFileSync(a), "AAAAAAAA");
    }
    await parked.close();
    await unrelated;
  },
);

ringTest(
  "Uring: close() right after file.close() closes the fd only after the file's operations",
  async (config) => {
    // The file's close waited in the backlog (a 2-entry ring full of its writes); the Uring's close
    // used to run it at once with close(2), while earlier writes sat in the SQ not yet issued: they
    // then wrote into the next file given the fd's number (without SQPOLL, every time).
    using dir = tempDir();
    const [a, b] = [`${dir.path}/a`, `${dir.path}/b`];
    Deno.writeTextFileSync(b, "BBBBBBBB");
    const uring = new Uring({ ...uringOptions(config), entries: 2 });
    const fileA = await uring.open(a, { write: true, create: true });
    const writes = Array.from({ length: 6 }, (_, i) => fileA.writeAt(enc.encode("XX"), 2 * i));
    const closingA = fileA.close();
    const closingUring = uring.close();
    const other = Deno.openSync(b, { write: true }); // would take the fd's number if it were free
    try {
      const outcomes = await Promise.allSettled(writes);
      for (const o of outcomes) {
        assert.ok(o.status === "fulfilled" ? o.value === 2 : /ECANCELED/.test(String(o.reason)), String(o));
      }
      await closingA;
      await closingUring;
      assert.equal(Deno.readTextFileSync(b), "BBBBBBBB", "nothing was written through the fd's number");
      const written = outcomes.filter((o) => o.status === "fulfilled").length;
      assert.equal(Deno.statSync(a).size >= 2 * written, true);
    } finally {
      other.close();
    }
  },
);

ringTest("Uring: a view whose byteLength lies moves only its real bytes", async (config) => {
  using dir = tempDir();
  const path = `${dir.path}/data`;
  Deno.writeFileSync(path, new Uint8Array(4096).fill(0x5a));
  await using uring = new Uring(uringOptions(config));
  await using file = await uring.open(path, { read: true, write: true });
  const memory = new ArrayBuffer(1024);
  const view = new Uint8Array(memory, 512, 8);
  Object.defineProperty(view, "byteLength", { value: 64 << 20 });
  assert.equal(await file.readAt(view, 0), 8);
  const all = new Uint8Array(memory);
  assert.ok(all.subarray(512, 520).every((b) => b === 0x5a));
  assert.ok(all.subarray(520).every((b) => b === 0) && all.subarray(0, 512).every((b) => b === 0));
  assert.equal(await file.writeAt(view, 4096), 8);
  assert.equal(Deno.statSync(path).size, 4104);
});

/**
 * A 64 KiB view whose prototype is a proxy: every `instanceof` on it runs the trap, which
 * transfers the view's buffer away (to 8 bytes) on its `n`-th call.
 */
function detachingView(n: number): Uint8Array {
  const memory = new ArrayBuffer(1 << 16);
  const view = new Uint8Array(memory);
  let calls = 0;
  const keep: ArrayBuffer[] = [];
  Object.setPrototypeOf(
    view,
    new Proxy(Uint8Array.prototype, {
      getPrototypeOf(target) {
        if (++calls === n) keep.push(memory.transfer(8));
        return Reflect.getPrototypeOf(target);
      },
    }),
  );
  return view;
}

ringTest(
  "Uring: a view whose proxy prototype detaches its buffer: the read runs on live memory or rejects",
  async (config) => {
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open("/dev/zero", { read: true });
    // Wherever the caller's code runs while the read is queued (see detachingView), a read that
    // completes had its memory all along: none reads into a buffer detached after its address was
    // written (the kernel once wrote 64 KiB into freed memory: "malloc(): unsorted double linked
    // list corrupted"). Queuing runs none of it now, so every read completes.
    for (let n = 1; n <= 8; n++) {
      const view = detachingView(n);
      const outcome = await file.readAt(view, 0).catch((e) => e);
      if (typeof outcome === "number") {
        // /dev/zero may stop short (at a page, when a signal or task work is pending: 61440 of
        // 65536 once under SQPOLL in CI); what matters is the memory it went to.
        assert.ok(outcome > 0 && outcome <= 1 << 16 && outcome % 4096 === 0, `n=${n}: read ${outcome}`);
        assert.equal(view.byteLength, 1 << 16, `n=${n}: read into a buffer detached meanwhile`);
      } else {
        assert.ok(outcome instanceof TypeError, String(outcome));
      }
    }
    assert.equal(await file.readAt(new Uint8Array(16), 0), 16);
    assert.equal(uring.pending, 0);
  },
);

ringTest(
  "Uring: a chain member's view whose proxy prototype detaches its buffer: the chain runs on live memory or rejects",
  async (config) => {
    using dir = tempDir();
    const path = `${dir.path}/data`;
    Deno.writeFileSync(path, new Uint8Array(1 << 16).fill(0x5a));
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open(path, { read: true });
    // As above, in the middle of a three-member chain.
    for (let n = 1; n <= 8; n++) {
      const view = detachingView(n);
      const before = new Uint8Array(16), after = new Uint8Array(16);
      const outcome = await uring.chain((c) =>
        c.read(file.fd, before, 0).read(file.fd, view, 0).read(file.fd, after, 0)
      ).catch((e) => e);
      if (Array.isArray(outcome)) {
        assert.deepEqual(outcome.map((r) => r.ok && r.value), [16, 1 << 16, 16]);
        assert.equal(view.byteLength, 1 << 16, `n=${n}: read into a buffer detached meanwhile`);
      } else {
        assert.ok(outcome instanceof TypeError, String(outcome));
        // Nothing of the chain ran: its members became no-ops before the kernel saw them.
        assert.ok(before.every((b) => b === 0) && after.every((b) => b === 0), `n=${n}: a member ran`);
      }
    }
    assert.equal(await file.readAt(new Uint8Array(16), 0), 16);
    const [first] = await uring.chain((c) => c.read(file.fd, new Uint8Array(8), 0).nop());
    assert.deepEqual(first, { ok: true, value: 8 });
    assert.equal(uring.pending, 0);
  },
);

ringTest("Uring: readFull loops over short reads (FIFO)", async (config) => {
  using dir = tempDir();
  await using uring = new Uring(uringOptions(config));
  const fifo = `${dir.path}/fifo`;
  mkfifo(fifo);
  // Read-write open of a FIFO does not wait for a peer.
  await using file = await uring.open(fifo, { read: true, write: true });
  const out = new Uint8Array(8);
  const reading = file.readFull(out, 0);
  // Three separate writes arrive one by one: each read is short, readFull keeps going.
  for (const chunk of ["abc", "de", "fgh"]) {
    await sleep(5);
    assert.equal(await file.writeAt(enc.encode(chunk), 0), chunk.length);
  }
  assert.equal(await reading, 8);
  assert.equal(dec.decode(out), "abcdefgh");
});

ringTest(
  "Uring: path operations: mkdir, open flags, statx, rename, link, symlink, unlink",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config));
    const d = `${dir.path}/sub`;
    await uring.mkdir(d, { mode: 0o750 });
    assert.ok(Deno.statSync(d).isDirectory);
    assert.equal(Deno.statSync(d).mode! & 0o777, 0o750 & ~0o022 & 0o777);
    const st = await uring.statx(new URL(`file://${d}`));
    assert.ok(st.isDirectory);

    const f = `${d}/one`;
    const file = await uring.open(f, { write: true, create: true, mode: 0o600 });
    await file.writeAll(enc.encode("one"), 0);
    await file.close();
    assert.equal(Deno.statSync(f).mode! & 0o777, 0o600);
    await assert.rejects(uring.open(f, { write: true, exclusive: true }), Deno.errors.AlreadyExists);
    const t = await uring.open(f, { write: true, truncate: true });
    await t.close();
    assert.equal(Deno.statSync(f).size, 0);

    await uring.rename(f, `${d}/two`);
    assert.ok(Deno.statSync(`${d}/two`).isFile);
    Deno.writeTextFileSync(`${d}/three`, "3");
    await assert.rejects(
      uring.rename(`${d}/two`, `${d}/three`, { noReplace: true }),
      Deno.errors.AlreadyExists,
    );

    await uring.link(`${d}/three`, `${d}/hard`);
    assert.equal(Deno.statSync(`${d}/hard`).nlink, 2);
    await uring.symlink("three", `${d}/soft`);
    assert.equal(Deno.readLinkSync(`${d}/soft`), "three");
    assert.ok((await uring.statx(`${d}/soft`, { followSymlinks: false })).isSymlink);
    assert.ok((await uring.statx(`${d}/soft`)).isFile);

    await assert.rejects(uring.unlink(d, { directory: true }), (e: OsError) => e.code === "ENOTEMPTY");
    for (const name of ["two", "three", "hard", "soft"]) await uring.unlink(`${d}/${name}`);
    await uring.unlink(d, { directory: true });
    assert.throws(() => Deno.statSync(d), Deno.errors.NotFound);
  },
);

ringTest("Uring: failures reject with Deno.errors classes naming the operation and path", async (config) => {
  using dir = tempDir();
  await using uring = new Uring(uringOptions(config));
  const missing = `${dir.path}/nope/x`;
  const file = `${dir.path}/file`;
  Deno.writeTextFileSync(file, "x");
  const rw = await uring.openFd(file, 2, 0); // O_RDWR

  const cases: Array<[() => Promise<unknown>, new (...args: never[]) => Error, string, string]> = [
    [
      () => uring.open(missing),
      Deno.errors.NotFound,
      "ENOENT",
      `open '${missing}': No such file or directory (ENOENT)`,
    ],
    [
      () => uring.statx(missing),
      Deno.errors.NotFound,
      "ENOENT",
      `statx '${missing}': No such file or directory (ENOENT)`,
    ],
    [
      () => uring.mkdir(dir.path),
      Deno.errors.AlreadyExists,
      "EEXIST",
      `mkdir '${dir.path}': File exists (EEXIST)`,
    ],
    [
      () => uring.open(file, { write: true, create: true, exclusive: true }),
      Deno.errors.AlreadyExists,
      "EEXIST",
      `open '${file}': File exists (EEXIST)`,
    ],
    [
      () => uring.statx(`${file}/x`),
      Deno.errors.NotADirectory,
      "ENOTDIR",
      `statx '${file}/x': Not a directory (ENOTDIR)`,
    ],
    [
      () => uring.open(dir.path, { write: true }),
      Deno.errors.IsADirectory,
      "EISDIR",
      `open '${dir.path}': Is a directory (EISDIR)`,
    ],
    [
      () => uring.unlink(missing),
      Deno.errors.NotFound,
      "ENOENT",
      `unlink '${missing}': No such file or directory (ENOENT)`,
    ],
    [
      () => uring.rename(missing, `${dir.path}/y`),
      Deno.errors.NotFound,
      "ENOENT",
      `rename '${missing}' -> '${dir.path}/y': No such file or directory (ENOENT)`,
    ],
    [
      () => uring.read(1 << 20, new Uint8Array(1), 0),
      OsError,
      "EBADF",
      `read (fd 1048576): Bad file descriptor (EBADF)`,
    ],
    // (Neither end a pipe: the kernel's EINVAL.)
    [
      () => uring.splice(rw, 0, rw, 1, 1),
      TypeError,
      "EINVAL",
      `splice (fd ${rw}): Invalid argument (EINVAL)`,
    ],
  ];
  // One at a time: every rejection has its handler before it can happen.
  for (const [start, cls, code, message] of cases) {
    const error: OsError = await start().then(() => assert.fail(`${message}: should have failed`), (e) => e);
    assert.ok(error instanceof cls, `${message}: got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.code, code);
    assert.equal(error.message, message);
    assert.equal(typeof error.errno, "number");
    assert.ok(error.errno > 0);
  }
  await uring.close(rw);
  // The file's own path names UringFile failures: from the kernel (a read of a directory)...
  const d = await uring.open(dir.path);
  const e: OsError = await d.readAt(new Uint8Array(1), 0).catch((e) => e);
  assert.ok(e instanceof Deno.errors.IsADirectory, String(e));
  assert.equal(e.code, "EISDIR");
  assert.equal(e.message, `read '${dir.path}': Is a directory (EISDIR)`);
  assert.equal(e.path, dir.path);
  await d.close();
  // ...and before it (a write of a file opened for reading only).
  const f = await uring.open(file);
  const e2: OsError = await f.writeAt(enc.encode("y"), 0).catch((e) => e);
  assert.equal(
    e2.message,
    `write '${file}': Bad file descriptor (EBADF): the file was opened for reading only (open it with write: true)`,
  );
  assert.equal(e2.path, file);
  await f.close();
});

ringTest("Uring: bad arguments are refused before anything is queued", async (config) => {
  await using uring = new Uring(uringOptions(config));
  const sqes = uring.stats.sqes;
  await assert.rejects(uring.read(-1, new Uint8Array(1), 0), RangeError);
  await assert.rejects(uring.read(0, new Uint8Array(1), -5), RangeError);
  await assert.rejects(uring.read(0, new Uint8Array(1), 1.5), RangeError); // a number, but no position
  await assert.rejects(uring.read(0, new Uint8Array(1), "1" as unknown as number), TypeError);
  await assert.rejects(uring.read(0, "x" as unknown as Uint8Array, 0), TypeError);
  await assert.rejects(uring.writev(0, [], 0), TypeError);
  await assert.rejects(uring.timeout(-1), RangeError);
  await assert.rejects(uring.open("a\0b"), TypeError);
  await assert.rejects(uring.open(""), TypeError);
  await assert.rejects(uring.open(new URL("https://example.com/x")), TypeError);
  await assert.rejects(uring.open("/tmp/x", { create: true }), TypeError, "create needs write");
  await assert.rejects(uring.mkdir("/tmp/x", { mode: -1 }), RangeError);
  await assert.rejects(uring.chain(() => {}), RangeError);
  await assert.rejects(uring.chain((c) => c.read(-1, new Uint8Array(1), 0)), RangeError);
  assert.equal(uring.stats.sqes, sqes);
  assert.equal(uring.pending, 0);
});

ringTest(
  "UringFile: a read of a file opened for writing only, or a write of one opened for reading only, is refused before the kernel",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config));
    const path = `${dir.path}/f`;
    Deno.writeTextFileSync(path, "hello");
    const buf = new Uint8Array(5);
    const refused = (op: string, hint: RegExp, code = "EBADF") => (e: OsError) => {
      assert.equal(e.code, code);
      assert.equal(e.syscall, op);
      assert.equal(e.path, path);
      assert.match(e.message, hint);
      return true;
    };
    for (
      const [options, readable, writable] of [
        [{}, true, false],
        [{ read: true }, true, false],
        [{ write: true }, false, true],
        [{ append: true }, false, true],
        [{ read: true, write: true }, true, true],
      ] as const
    ) {
      await using file = await uring.open(path, options);
      assert.equal(file.readable, readable, JSON.stringify(options));
      assert.equal(file.writable, writable, JSON.stringify(options));
      const sqes = uring.stats.sqes;
      if (readable) {
        assert.equal(await file.readAt(buf, 0), 5);
      } else {
        await assert.rejects(file.readAt(buf, 0), refused("read", /opened for writing only/));
        await assert.rejects(file.readFull(buf, 0), refused("read", /opened for writing only/));
        assert.equal(uring.stats.sqes, sqes, "nothing reached the kernel");
      }
      if (writable) {
        assert.equal(await file.writeAt(buf.subarray(0, 1), 0), 1);
      } else {
        await assert.rejects(file.writeAt(buf, 0), refused("write", /opened for reading only/));
        await assert.rejects(file.writeAll(buf, 0), refused("write", /opened for reading only/));
        // ftruncate's own answer is EINVAL (the kernel's, and Deno's FsFile.truncate's).
        await assert.rejects(file.truncate(0), refused("ftruncate", /opened for reading only/, "EINVAL"));
        assert.equal(uring.stats.sqes, readable ? sqes + 1 : sqes, "nothing more reached the kernel");
      }
    }
  },
);

ringTest("Uring: timeout resolves; many operations in one tick go as one batch", async (config) => {
  await using uring = new Uring(uringOptions(config, { entries: 64 }));
  await uring.timeout(0);
  await uring.timeout(5);
  const enters = { ...uring.ring.stats };
  const all = await Promise.all(Array.from({ length: 64 }, () => uring.nop()));
  assert.equal(all.length, 64);
  if (!config.sqpoll) {
    // One io_uring_enter submitted all 64 (the NOPs complete inside it).
    assert.equal(uring.ring.stats.submit - enters.submit, 1);
  }
});

ringTest("Uring: AbortSignal", async (config) => {
  await using uring = new Uring(uringOptions(config));
  const [r, w] = pipe();
  try {
    // Already aborted: rejects with the reason and queues nothing.
    const sqes = uring.stats.sqes;
    const reason = new Error("stop");
    await assert.rejects(uring.nop({ signal: AbortSignal.abort(reason) }), (e) => e === reason);
    assert.equal(uring.stats.sqes, sqes);

    // A read on an empty pipe is cancelled: the promise rejects with the reason.
    const ac = new AbortController();
    const read = uring.read(r, new Uint8Array(8), 0, { signal: ac.signal });
    await sleep(10);
    ac.abort(reason);
    await assert.rejects(read, (e) => e === reason);

    // Finished first: aborting later changes nothing.
    const ac2 = new AbortController();
    assert.equal(await uring.nop({ signal: ac2.signal }), undefined);
    ac2.abort();

    // The default reason is an AbortError DOMException.
    const ac3 = new AbortController();
    const t = uring.timeout(60_000, { signal: ac3.signal });
    setTimeout(() => ac3.abort(), 5);
    await assert.rejects(t, (e: DOMException) => e.name === "AbortError");

    // Data written while a read waits completes it.
    const ac4 = new AbortController();
    const buf = new Uint8Array(8);
    const read4 = uring.read(r, buf, 0, { signal: ac4.signal });
    assert.equal(await uring.write(w, enc.encode("hi"), 0), 2);
    assert.equal(await read4, 2);
    ac4.abort();
    assert.equal(uring.pending, 0);
  } finally {
    await uring.close(r);
    await uring.close(w);
  }
});

ringTest(
  "Uring: a write whose buffer shrank while it waited for room rejects, saying shrunk",
  async (config) => {
    await using uring = new Uring(uringOptions(config, { entries: 1 })); // room for 2 in the kernel
    const [r, w] = pipe();
    const [r2, w2] = pipe();
    try {
      const reads = [uring.read(r, new Uint8Array(4), 0), uring.read(r, new Uint8Array(4), 0)];
      await sleep(10); // both in the kernel, waiting for data: the write below waits for room
      const resizable = new ArrayBuffer(8, { maxByteLength: 8 });
      const refused = assert.rejects(
        uring.write(w2, new Uint8Array(resizable), 0),
        /^TypeError: write: a buffer was detached or shrunk before the operation started/,
      );
      resizable.resize(4);
      sysWrite(w, enc.encode("12345678"));
      await Promise.all(reads);
      await refused;
    } finally {
      for (const fd of [r, w, r2, w2]) sysClose(fd);
    }
  },
);

ringTest(
  "Uring: close(fd) cancels this Uring's operations on the fd first; the other end sees it closed",
  async (config) => {
    // Before, the read stayed in the kernel after the close resolved, holding the pipe open: the
    // writer's next bytes went into the "closed" reader's buffer instead of failing with EPIPE.
    await using uring = new Uring(uringOptions(config));
    const [r, w] = pipe();
    const [r2, w2] = pipe();
    try {
      const reads = [uring.read(r, new Uint8Array(8), 0), uring.read(r, new Uint8Array(8), 0)];
      const outcomes = reads.map((read) =>
        read.then((n) => `read ${n}`, (e: OsError) => `${e.code}: ${e.message}`)
      );
      const other = uring.read(r2, new Uint8Array(8), 0);
      await sleep(10); // all three in the kernel, waiting for data
      await uring.close(r);
      for (const outcome of outcomes) {
        const seen = await Promise.race([
          outcome,
          sleep(5000).then(() => "still pending 5 s after the close"),
        ]);
        assert.match(seen, /^ECANCELED: .*the file was closed$/);
      }
      assert.equal(sysWrite(w, enc.encode("late")), -1, "the reader is gone: EPIPE (SIGPIPE is ignored)");
      // An operation on another fd goes on.
      assert.equal(sysWrite(w2, enc.encode("hi")), 2);
      assert.equal(await other, 2);
    } finally {
      for (const fd of [w, r2, w2]) {
        sysClose(fd);
      }
    }
  },
);

ringTest(
  "Uring: operations on an fd whose close(fd) is under way are refused, as on a closing file's",
  async (config) => {
    // Queued behind the close (or its cancels), they ran after it: a read kept the pipe open and
    // took the writer's next bytes, and a write landed in the file that got the number next
    // ("EVILnew-" in a probe, 10 of 10).
    await using uring = new Uring(uringOptions(config));
    const [r, w] = pipe();
    const [r2, w2] = pipe();
    try {
      const pending = uring.read(r, new Uint8Array(8), 0).catch((e: OsError) => e.code);
      await sleep(10);
      const closing = uring.close(r);
      const late = new Uint8Array(4);
      const refused = [
        uring.read(r, late, 0),
        uring.write(r, enc.encode("x"), 0),
        uring.chain((c) => c.read(r, late, 0)),
        uring.close(r),
      ].map((p) => p.then(() => "ran", (e: Error) => `${e.name}: ${e.message}`));
      await closing;
      assert.equal(await pending, "ECANCELED");
      for (const outcome of await Promise.all(refused)) {
        assert.match(outcome, /^BadResource: .*\(\d+\): the fd is being closed/);
      }
      assert.equal(sysWrite(w, enc.encode("late")), -1, "the reader is gone: EPIPE");
      assert.deepEqual(late, new Uint8Array(4));
      // Once closed, the number is free: an fd given it next works as any other.
      const [r3, w3] = pipe();
      try {
        assert.ok(r3 === r || w3 === r, `the number came back (${r3}, ${w3}, ${r})`);
        const read = uring.read(r3, new Uint8Array(2), 0);
        assert.equal(sysWrite(w3, enc.encode("ok")), 2);
        assert.equal(await read, 2);
      } finally {
        sysClose(r3);
        sysClose(w3);
      }
      // Another fd's operations were never held up.
      const other = uring.read(r2, new Uint8Array(2), 0);
      assert.equal(sysWrite(w2, enc.encode("hi")), 2);
      assert.equal(await other, 2);
    } finally {
      for (const fd of [w, r2, w2]) sysClose(fd);
    }
  },
);

ringTest(
  "Uring: a number the kernel closed and gave to another file before the close's CQE was reaped is not refused",
  async (config) => {
    // Many copyFile()s on one Uring failed with "splice(25): the fd is being closed (close(25) was
    // called)": one copy's close of a pipe had reached the kernel, which gave the number to
    // another copy's pipe2() before the close's CQE was reaped, and the Uring still refused it.
    await using uring = new Uring(uringOptions(config));
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeTextFileSync(path, "data");
    const block = new Int32Array(new SharedArrayBuffer(4));
    for (const how of Array.from({ length: 20 }, () => ["close(fd)", "UringFile.close()"]).flat()) {
      const file = how === "close(fd)" ? null : await uring.open(path);
      const [r, w] = file === null ? pipe() : [file.fd, -1];
      const closing = file === null ? uring.close(r) : file.close();
      // After the pump's microtask (which submits the close), block the thread without a turn
      // of the event loop: the kernel closes the fd meanwhile, and pipe2() gets its number.
      // (If the pump was put off to a later turn, the next rounds let it run.)
      let reused: [number, number] | null = null;
      for (let round = 0; round < 50 && reused === null; round++) {
        await (round === 0 ? new Promise<void>((resolve) => queueMicrotask(resolve)) : sleep(1));
        for (let i = 0; i < 20 && reused === null; i++) {
          Atomics.wait(block, 0, 0, 1);
          const fds = pipe();
          if (fds[0] === r || fds[1] === r) reused = fds;
          else for (const fd of fds) sysClose(fd);
        }
      }
      assert.ok(reused !== null, `${how}: the number ${r} never came back`);
      try {
        const [r2, w2] = reused;
        const mine = r2 === r ? r2 : w2;
        const outcome = r2 === r
          ? uring.read(r2, new Uint8Array(2), 0).then(String)
          : uring.write(w2, enc.encode("ok"), 0).then(String);
        if (r2 === r) assert.equal(sysWrite(w2, enc.encode("ok")), 2);
        assert.equal(await outcome.catch((e: Error) => `${e.name}: ${e.message}`), "2", `${how}, fd ${mine}`);
      } finally {
        for (const fd of reused) sysClose(fd);
      }
      await closing;
      if (w >= 0) sysClose(w);
    }
  },
);

ringTest(
  "Uring: close(fd) reaches the kernel after the code that called it: the number is neither reused nor refused before",
  async (config) => {
    // Under SQPOLL the close reached the kernel as it was called; a microtask queued before the
    // Uring's own then got the number from pipe2() and had its splice refused ("splice(107): the
    // fd is being closed", concurrent copyFile()s). Now the close waits for the code that called
    // it to end; until then the number cannot come back.
    await using uring = new Uring(uringOptions(config));
    const block = new Int32Array(new SharedArrayBuffer(4));
    let reusedEarly = 0;
    for (let round = 0; round < 10; round++) {
      const [r, w] = pipe();
      const early = Promise.resolve().then(async () => {
        for (let i = 0; i < 10; i++) {
          Atomics.wait(block, 0, 0, 1);
          const fds = pipe();
          if (fds[0] !== r && fds[1] !== r) {
            for (const fd of fds) sysClose(fd);
            continue;
          }
          reusedEarly++;
          try {
            const [r2, w2] = fds;
            const outcome = r2 === r
              ? uring.read(r2, new Uint8Array(2), 0)
              : uring.write(w2, enc.encode("ok"), 0);
            if (r2 === r) assert.equal(sysWrite(w2, enc.encode("ok")), 2);
            assert.equal(await outcome.catch((e: Error) => `${e.name}: ${e.message}`), 2);
          } finally {
            for (const fd of fds) sysClose(fd);
          }
          return;
        }
      });
      const closing = uring.close(r);
      await early;
      await closing;
      sysClose(w);
    }
    // The close is held back until the Uring's microtask: the number never came back before it.
    assert.equal(reusedEarly, 0);
  },
);

ringTest(
  "Uring: a splice cancelled because its output fd was closed names that fd, not its input",
  async (config) => {
    await using uring = new Uring(uringOptions(config));
    using dir = tempDir();
    const [r, w] = pipe();
    const out = await uring.openFd(`${dir.path}/out`, 0o101, 0o644); // O_WRONLY | O_CREAT
    try {
      const spliced = uring.splice(r, -1, out, 0, 100).then(() => "ran", (e: Error) => e.message);
      const chained = uring.chain((c) => c.splice(r, -1, out, 0, 100)).then((res) =>
        res[0].ok ? "ran" : (res[0].error as Error).message
      );
      await sleep(10);
      await uring.close(out);
      for (const message of [await spliced, await chained]) {
        assert.match(
          message,
          new RegExp(`^splice \\(fd ${r}\\): .*\\(ECANCELED\\): its output, fd ${out}, was closed$`),
        );
      }
    } finally {
      sysClose(r);
      sysClose(w);
    }
  },
);

ringTest(
  "Uring: close(fd) aborted after it cancelled the fd's operations still closes the fd",
  async (config) => {
    // A probe: the abort refused the close that waited for its cancels, so the read was told
    // "the file was closed" (ECANCELED) while the fd stayed open.
    await using uring = new Uring(uringOptions(config));
    for (const when of ["sync", "microtask", "timer"]) {
      const [r, w] = pipe();
      const read = uring.read(r, new Uint8Array(4), 0).then(() => "read", (e: OsError) => e.code);
      await sleep(10);
      const ac = new AbortController();
      const close = uring.close(r, { signal: ac.signal }).then(() => "closed", (e: Error) => e.name);
      if (when === "sync") ac.abort();
      else if (when === "microtask") queueMicrotask(() => ac.abort());
      else setTimeout(() => ac.abort(), 0);
      assert.equal(await read, "ECANCELED", when);
      assert.equal(await close, "closed", when);
      assert.equal(fdIsOpen(r), false, `${when}: the fd its operations were told was closed is open`);
      sysClose(w);
    }
  },
);

ringTest(
  "Uring: close(fd) waiting for its cancels still closes the fd when the Uring closes meanwhile; a refused one cancels nothing",
  async (config) => {
    const uring = new Uring(uringOptions(config));
    const [r, w] = pipe();
    const [r2, w2] = pipe();
    try {
      const read = uring.read(r, new Uint8Array(8), 0).catch((e: OsError) => e.code);
      const read2 = uring.read(r2, new Uint8Array(8), 0);
      await sleep(10);
      // Refused closes (an aborted signal, a signal that is none): the read on r2 is left alone.
      const aborted = new AbortController();
      aborted.abort(new Error("never mind"));
      await assert.rejects(uring.close(r2, { signal: aborted.signal }), /never mind/);
      await assert.rejects(uring.close(r2, { signal: 42 as never }), TypeError);
      assert.equal(sysWrite(w2, enc.encode("ok")), 2);
      assert.equal(await read2, 2, "the read was not cancelled");
      // A close waiting for its cancel when the Uring closes: the fd is closed at the Uring's end.
      const closing = uring.close(r);
      await uring.close();
      await closing;
      assert.equal(await read, "ECANCELED");
      assert.equal(fdIsOpen(r), false, "the fd was closed");
    } finally {
      if (fdIsOpen(r)) sysClose(r);
      for (const fd of [w, r2, w2]) sysClose(fd);
    }
  },
);

ringTest(
  "Uring: a file's close goes past operations that fill the in-flight limit and may never complete",
  async (config) => {
    // It waited behind them in the backlog, forever: reads of an empty FIFO held the limit.
    using dir = tempDir();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    Deno.writeFileSync(`${dir.path}/idle`, new Uint8Array(10));
    await using uring = new Uring(uringOptions(config, { entries: 4 })); // limit 8, SQ 4
    const pipe = await uring.open(fifo, { read: true, write: true });
    const files = [await uring.open(`${dir.path}/idle`), await uring.open(`${dir.path}/idle`)];
    const reads = Array.from(
      { length: 2 * uring.ring.cqEntries },
      () => pipe.readAt(new Uint8Array(1), 0).catch((e) => e.code),
    );
    const closed = files.map((file) => file.close().then(() => "closed"));
    const outcome = await Promise.race([
      Promise.all(closed),
      sleep(5000).then(() => "still pending after 5 s"),
    ]);
    assert.deepEqual(outcome, ["closed", "closed"]);
    await pipe.close();
    assert.ok((await Promise.all(reads)).every((code) => code === "ECANCELED"));
  },
);

ringTest(
  "Uring: a close goes past a chain the in-flight limit holds back, too",
  async (config) => {
    // Reads of an empty FIFO fill the limit; a chain queued after them waits for room that may
    // never come; a close queued behind the chain must not wait with it.
    using dir = tempDir();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    Deno.writeFileSync(`${dir.path}/idle`, new Uint8Array(10));
    await using uring = new Uring(uringOptions(config, { entries: 4 })); // limit 8, SQ 4
    const pipe = await uring.open(fifo, { read: true, write: true });
    const idle = await uring.open(`${dir.path}/idle`);
    const reads = Array.from(
      { length: uring.ring.cqEntries },
      () => pipe.readAt(new Uint8Array(1), 0).catch((e) => e.code),
    );
    const chain = uring.chain((c) => c.nop().nop()).then(() => "chain ran", (e) => e.code);
    const closed = idle.close().then(() => "closed");
    const outcome = await Promise.race([closed, sleep(5000).then(() => "still pending after 5 s")]);
    assert.equal(outcome, "closed");
    await pipe.close();
    assert.ok((await Promise.all(reads)).every((code) => code === "ECANCELED"));
    assert.equal(await chain, "chain ran", "the chain runs once the reads are gone");
  },
);

ringTest(
  "Uring: work the full SQ held back goes in when there is room, not after a completion",
  async (config) => {
    // Reads of an empty pipe fill the SQ (the in-flight limit has room to spare); what was queued
    // behind them waited for a completion that never came, until the parked wait's timeout (1 s),
    // in every round.
    for (const what of ["nop", "close", "nop", "close"]) {
      await using uring = new Uring(uringOptions(config, { entries: 4 })); // limit 8, SQ 4
      const [r, w] = pipe();
      const [r2, w2] = pipe();
      const reads = Array.from(
        { length: uring.ring.sqEntries },
        () => uring.read(r, new Uint8Array(1), 0).catch((e) => e.code),
      );
      const behind = what === "nop" ? uring.nop() : uring.close(w2);
      const outcome = await Promise.race([
        behind.then(() => "settled"),
        sleep(500).then(() => "still pending after 500 ms"),
      ]);
      assert.equal(outcome, "settled", what);
      sysWrite(w, new Uint8Array(reads.length));
      assert.deepEqual(await Promise.all(reads), reads.map(() => 1));
      for (const fd of what === "nop" ? [r, w, r2, w2] : [r, w, r2]) sysClose(fd);
    }
  },
);

ringTest(
  "Uring: a read whose buffer is detached or shrunk while the kernel holds it rejects",
  async (config) => {
    await using uring = new Uring(uringOptions(config));
    const [r, w] = pipe();
    try {
      const buf = new Uint8Array(8);
      const read = uring.read(r, buf, 0);
      await sleep(10); // in the kernel, waiting for data
      const moved = buf.buffer.transfer(); // same length: the memory moves to `moved`, nothing is freed
      assert.equal(await uring.write(w, enc.encode("hi"), 0), 2);
      await assert.rejects(read, (e: Error) => {
        assert.ok(e instanceof TypeError);
        assert.match(e.message, /^read: a buffer was detached or shrunk while the operation ran/);
        return true;
      });
      assert.equal(new TextDecoder().decode(new Uint8Array(moved, 0, 2)), "hi"); // where the data went

      const resizable = new ArrayBuffer(8, { maxByteLength: 16 });
      const readv = uring.readv(r, [new Uint8Array(2), new Uint8Array(resizable)], 0);
      await sleep(10);
      resizable.resize(4);
      assert.equal(await uring.write(w, enc.encode("abcdef"), 0), 6);
      await assert.rejects(
        readv,
        /^TypeError: readv: a buffer was detached or shrunk while the operation ran/,
      );

      // A plain read whose resizable buffer shrinks under it: its view is shorter, or out of bounds.
      for (const tracking of [true, false]) {
        const shrinking = new ArrayBuffer(16, { maxByteLength: 32 });
        const view = tracking ? new Uint8Array(shrinking) : new Uint8Array(shrinking, 0, 16);
        const read = uring.read(r, view, 0);
        await sleep(10);
        shrinking.resize(4);
        assert.equal(await uring.write(w, enc.encode("0123456789"), 0), 10);
        await assert.rejects(
          read,
          /^TypeError: read: a buffer was detached or shrunk while the operation ran/,
        );
      }

      // Grown while in flight: the recorded part stays valid, so the read counts.
      resizable.resize(8);
      const grown = uring.readv(r, [new Uint8Array(resizable)], 0);
      await sleep(10);
      resizable.resize(16);
      assert.equal(await uring.write(w, enc.encode("xyz"), 0), 3);
      assert.equal(await grown, 3);
      assert.equal(uring.pending, 0);
    } finally {
      await uring.close(r);
      await uring.close(w);
    }
  },
);

ringTest(
  "Uring: a buffer shrunk and grown again while the kernel writes from it is reported as shrunk, not as the kernel's EFAULT",
  async (config) => {
    // Under SQPOLL the SQ thread reads the buffer while the main thread resizes it: shrinking
    // to 0 takes the pages away, and the kernel fails the write with EFAULT (40 of 50 before);
    // the length is back by the completion, so only the EFAULT tells. Without SQPOLL the write
    // runs inside the submit, before the resize: it resolves.
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open(`${dir.path}/f`, { write: true, create: true });
    const outcomes = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const memory = new ArrayBuffer(4096, { maxByteLength: 1 << 20 });
      const write = file.writeAt(new Uint8Array(memory).fill(0xaa), 0);
      memory.resize(0);
      memory.resize(4096);
      try {
        const n = await write;
        assert.ok(n > 0 && n <= 4096, `wrote ${n}`);
        outcomes.add("resolved");
      } catch (e) {
        assert.ok(e instanceof TypeError, `rejected with ${e}`);
        assert.match(e.message, /^write: a buffer was detached or shrunk while the operation ran/);
        outcomes.add("shrunk");
      }
    }
    if (!config.sqpoll) assert.deepEqual([...outcomes], ["resolved"]);
  },
);

ringTest(
  "Uring: a length-tracking view that grows before its operation starts moves the bytes it had at the call",
  async (config) => {
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeFileSync(path, new Uint8Array(100).fill(7));
    {
      // One SQ entry: the read and the write wait in the backlog behind a timeout while their
      // buffers grow. (Grown past 4 GiB, a read's SQE could not say its length: that failed the
      // whole Uring before.)
      await using uring = new Uring({ ...uringOptions(config), entries: 1 });
      await using file = await uring.open(path, { read: true, write: true });
      const blocker = uring.timeout(30);
      const readBuffer = new ArrayBuffer(8, { maxByteLength: 64 });
      const read = file.readAt(new Uint8Array(readBuffer), 0);
      const writeBuffer = new ArrayBuffer(4, { maxByteLength: 64 });
      const write = file.writeAt(new Uint8Array(writeBuffer).fill(2), 200);
      readBuffer.resize(64);
      writeBuffer.resize(64);
      assert.equal(await read, 8);
      assert.deepEqual([...new Uint8Array(readBuffer, 0, 9)], [...Array(8).fill(7), 0]);
      assert.equal(await write, 4);
      assert.equal(Deno.statSync(path).size, 204, "4 bytes written, not 64");
      await blocker;
    }
    // A chain's read reports its length at the call (its CQE is skipped on success).
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open(path);
    const rab = new ArrayBuffer(8, { maxByteLength: 64 });
    const chained = uring.chain((c) => c.read(file.fd, new Uint8Array(rab), 0).nop());
    rab.resize(64);
    assert.deepEqual(await chained, [{ ok: true, value: 8 }, { ok: true, value: 0 }]);
  },
);

Deno.test({
  name: "null options mean the defaults, and `signal: null` no signal",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeTextFileSync(path, "hello");
    const none = null as never;
    await using uring = new Uring(none);
    await using file = await uring.open(path, none);
    const buf = new Uint8Array(5);
    assert.equal(await file.readAt(buf, 0, { signal: none }), 5);
    assert.equal(await uring.read(file.fd, buf, 0, { signal: none }), 5);
    assert.equal(await uring.nop({ signal: none }), undefined);
    const [r] = await uring.chain((c) => c.nop(), { signal: none });
    assert.equal(r.ok, true);
    using ring = new IoUring(4, none);
    alignedBuffer(4096, 4096, none).free();
    assert.ok(directAlignment(path, none) !== undefined);
    assert.deepEqual(directAlignment(new URL(`file://${path}`)), directAlignment(path));
    assert.throws(() => directAlignment(none), /file must be a string or a file: URL/);
    assert.equal(iopollError(-95, none).code, "EOPNOTSUPP");
    assert.throws(
      () => new FixedBufferPool(ring, none),
      /FixedBufferPool needs options: \{ count, size, alignment\? \}/,
    );
  },
});

ringTest("Uring: abort of operations still queued in JavaScript (SQ full)", async (config) => {
  await using uring = new Uring(uringOptions(config, { entries: 2 }));
  const [r, w] = pipe();
  try {
    // Two reads fill the SQ/CQ budget of a 2-entry ring (CQ 4); more wait in the FIFO.
    const ac = new AbortController();
    const reads = Array.from({ length: 8 }, () => uring.read(r, new Uint8Array(1), 0, { signal: ac.signal }));
    await sleep(10);
    assert.equal(uring.pending, 8);
    const reason = new Error("enough");
    ac.abort(reason);
    const results = await Promise.allSettled(reads);
    for (const result of results) {
      assert.equal(result.status, "rejected");
      assert.equal((result as PromiseRejectedResult).reason, reason);
    }
    assert.equal(uring.pending, 0);
    // The ring still works.
    assert.equal(await uring.write(w, enc.encode("z"), 0), 1);
    const one = new Uint8Array(1);
    assert.equal(await uring.read(r, one, 0), 1);
    assert.equal(dec.decode(one), "z");
  } finally {
    await uring.close(r);
    await uring.close(w);
  }
});

ringTest("Uring: chain runs linked members in order; a failure cancels the rest", async (config) => {
  using dir = tempDir();
  await using uring = new Uring(uringOptions(config, { entries: 8 }));
  const file = await uring.open(`${dir.path}/c`, { read: true, write: true, create: true });
  const out = new Uint8Array(5);
  const results = await uring.chain((c) =>
    c.write(file.fd, enc.encode("chain"), 0).fsync(file.fd).read(file.fd, out, 0).nop().timeout(1)
  );
  assert.deepEqual(results, [
    { ok: true, value: 5 },
    { ok: true, value: 0 },
    { ok: true, value: 5 },
    { ok: true, value: 0 },
    { ok: true, value: 0 },
  ]);
  assert.equal(dec.decode(out), "chain");

  const failed = await uring.chain((c) => c.read(1 << 20, out, 0).write(file.fd, out, 0).nop());
  assert.equal(failed.length, 3);
  assert.equal(failed[0].ok, false);
  assert.equal(!failed[0].ok && (failed[0].error as OsError).code, "EBADF");
  for (const member of failed.slice(1)) {
    assert.equal(member.ok, false);
    assert.equal(!member.ok && (member.error as OsError).code, "ECANCELED");
  }

  // A short read breaks the chain too.
  const short = await uring.chain((c) => c.read(file.fd, new Uint8Array(100), 0).nop());
  assert.deepEqual(short[0], { ok: true, value: 5 });
  assert.equal(!short[1].ok && (short[1].error as OsError).code, "ECANCELED");

  await assert.rejects(
    uring.chain((c) => {
      for (let i = 0; i < 9; i++) c.nop();
    }),
    RangeError,
  );

  // Aborting a chain cancels what is in flight and rejects with the reason.
  const [r, w] = pipe();
  const ac = new AbortController();
  const pending = uring.chain((c) => c.read(r, new Uint8Array(1), 0).nop(), { signal: ac.signal });
  await sleep(10);
  const reason = new Error("chain stop");
  ac.abort(reason);
  await assert.rejects(pending, (e) => e === reason);
  await uring.close(r);
  await uring.close(w);
  await file.close();
  assert.equal(uring.pending, 0);
});

ringTest(
  "Uring: aborting a chain whose head has completed cancels the chain, not the operation that reuses the head's slot",
  async (config) => {
    await using uring = new Uring(uringOptions(config));
    const [r, w] = pipe();
    const [r2, w2] = pipe();
    try {
      for (const withSignal of [true, false]) {
        const ac = new AbortController();
        // The head (1 ms) completes and frees its slot; the read waits on the empty pipe.
        const chain = uring.chain((c) => c.timeout(1).read(r, new Uint8Array(1), 0), { signal: ac.signal });
        await sleep(20);
        // An unrelated read takes the freed slot (the table hands out the last freed one first).
        const otherSignal = withSignal ? new AbortController().signal : undefined;
        const other = uring.read(r2, new Uint8Array(1), 0, { signal: otherSignal });
        const reason = new Error("chain stop");
        ac.abort(reason);
        await assert.rejects(chain, (e) => e === reason, "the chain itself is cancelled");
        const settled = await Promise.race([other.then(() => "settled", () => "settled"), sleep(30)]);
        assert.equal(settled, undefined, "the other read is still waiting for its byte");
        await uring.write(w2, new Uint8Array([7]), 0);
        assert.equal(await other, 1);
      }
    } finally {
      for (const fd of [r, w, r2, w2]) await uring.close(fd);
    }
    assert.equal(uring.pending, 0);
  },
);

ringTest(
  "Uring: aborting a chain whose freed head slot carries a queued operation cancels the chain, not the operation",
  async (config) => {
    // Two SQ entries: at most four operations in the kernel, the rest wait in the backlog.
    await using uring = new Uring({ ...uringOptions(config), entries: 2 });
    const ac = new AbortController();
    const reason = new Error("chain stop");
    const chain = uring.chain((c) => c.timeout(1).timeout(300), { signal: ac.signal });
    const fillers = [uring.timeout(200), uring.timeout(200), uring.timeout(200)];
    await sleep(50); // the head has completed and its slot is free; the ring is full
    const nop = uring.nop(); // waits in the backlog, on the head's old slot
    ac.abort(reason);
    await assert.rejects(chain, (e) => e === reason);
    assert.equal(
      await Promise.race([nop.then(() => "resolved"), sleep(2000).then(() => "hung")]),
      "resolved",
    );
    await Promise.all(fillers);
    assert.equal(await uring.nop().then(() => "ok"), "ok", "the Uring still works");
    assert.equal(uring.pending, 0);
  },
);

ringTest(
  "Uring: a file's close still waiting in the backlog when the Uring closes still closes it",
  async (config) => {
    using dir = tempDir();
    Deno.writeFileSync(`${dir.path}/f`, new Uint8Array(10));
    const before = fdCount();
    const uring = new Uring({ ...uringOptions(config), entries: 1 });
    const file = await uring.open(`${dir.path}/f`);
    // The ring is full: the close waits (the timeouts are cancelled by the Uring's close).
    const busy = [uring.timeout(50), uring.timeout(50)].map((p) => p.catch(() => {}));
    const closing = file.close();
    await uring.close();
    await closing; // done with close(2) when the Uring closed
    await Promise.all(busy);
    assert.ok(file.closed);
    assert.equal(fdCount(), before, "the ring's and the file's descriptors were closed");
  },
);

Deno.test({
  name: "Uring: misused chain builders, signals and timeouts are refused without keeping a slot",
  ignore: skipKernel(),
  async fn() {
    await using uring = new Uring({ sqpoll: false });
    // A builder kept after chain() returned adds nothing.
    let kept: { nop(): unknown } | undefined;
    await uring.chain((c) => {
      kept = c;
      c.nop();
    });
    assert.throws(() => kept!.nop(), /added inside the function given to chain/);
    // An async build function.
    await assert.rejects(
      uring.chain(async (c) => {
        c.nop();
        await Promise.resolve();
      }),
      /before it returns \(not async\)/,
    );
    // Something that is not an AbortSignal.
    const notASignal = {} as AbortSignal;
    await assert.rejects(uring.nop({ signal: notASignal }), /signal must be an AbortSignal/);
    await assert.rejects(
      uring.chain((c) => c.nop(), { signal: notASignal }),
      /signal must be an AbortSignal/,
    );
    // Timeouts past 2^53 - 1 ms (they used to wrap around and fire at once).
    for (const ms of [1e300, 2 ** 64 * 1000, 1e22]) {
      await assert.rejects(uring.timeout(ms), RangeError);
    }
    assert.equal(uring.pending, 0, "no slot kept");
    // 999.9999999 ms rounds to one whole second, not 0 s + 1e9 ns (which the kernel refuses).
    const t0 = performance.now();
    await uring.timeout(99.9999999);
    assert.ok(performance.now() - t0 >= 95);
  },
});

ringTest(
  "Uring: a chain whose members succeed as asked posts one CQE (IOSQE_CQE_SKIP_SUCCESS)",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config, { entries: 16 }));
    if (!uring.ring.hasFeature(IORING_FEAT_CQE_SKIP)) return; // before 5.17 every member posts its CQE
    const file = await uring.open(`${dir.path}/s`, { read: true, write: true, create: true });
    const out = new Uint8Array(4);
    const cqes = () => uring.stats.cqes;

    // Success: only the last member posts; the others' results are what they asked for.
    let before = cqes();
    const ok = await uring.chain((c) =>
      c.write(file.fd, enc.encode("skip"), 0).fsync(file.fd).read(file.fd, out, 0).nop()
    );
    assert.equal(cqes() - before, 1);
    assert.deepEqual(ok, [{ ok: true, value: 4 }, { ok: true, value: 0 }, { ok: true, value: 4 }, {
      ok: true,
      value: 0,
    }]);
    assert.equal(dec.decode(out), "skip");

    // A failure in the middle: its CQE is the chain's only one; the members after it never ran.
    before = cqes();
    const failed = await uring.chain((c) => c.nop().read(1 << 20, out, 0).write(file.fd, out, 0).nop());
    assert.equal(cqes() - before, 1);
    assert.deepEqual(failed.map((r) => r.ok ? r.value : (r.error as OsError).code), [
      0,
      "EBADF",
      "ECANCELED",
      "ECANCELED",
    ]);

    // A short read in the middle: the bytes it got, then the rest cancelled.
    before = cqes();
    const short = await uring.chain((c) =>
      c.read(file.fd, new Uint8Array(10), 0).write(file.fd, out, 4).nop()
    );
    assert.equal(cqes() - before, 1);
    assert.deepEqual(short.map((r) => r.ok ? r.value : (r.error as OsError).code), [
      4,
      "ECANCELED",
      "ECANCELED",
    ]);
    assert.equal(Deno.statSync(`${dir.path}/s`).size, 4, "the write after the short read never ran");

    // The last member failing: everything before it succeeded.
    before = cqes();
    const lastFails = await uring.chain((c) => c.nop().read(file.fd, out, 0).read(1 << 20, out, 0));
    assert.equal(cqes() - before, 1);
    assert.deepEqual(lastFails.map((r) => r.ok ? r.value : (r.error as OsError).code), [0, 4, "EBADF"]);

    // A member whose result is not known in advance (a delay) keeps every member's own CQE.
    before = cqes();
    const mixed = await uring.chain((c) => c.nop().timeout(1).nop());
    assert.equal(cqes() - before, 3);
    assert.deepEqual(mixed, [{ ok: true, value: 0 }, { ok: true, value: 0 }, { ok: true, value: 0 }]);

    // Many at once: nothing is left in flight, and plain operations still work after them.
    const many = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      uring.chain((
        c,
      ) => (i % 3 === 0 ? c.nop().read(1 << 20, out, 0).nop() : c.nop().read(file.fd, out, 0).nop()))));
    many.forEach((r, i) => assert.equal(r[2].ok, i % 3 !== 0));
    assert.equal(uring.pending, 0);
    assert.equal(await file.readAt(out, 0), 4);
    await file.close();
  },
);

ringTest(
  "Uring: an aborted chain settles even when its running member ignores the cancel and the next blocks",
  async (config) => {
    // The abort's one round of cancels cannot reach a member still waiting behind a write to a
    // regular file (which runs to its end); once issued, a splice from an empty pipe blocks for
    // good. Before, such a chain never settled (its promise hung, `pending` stayed up); now the
    // cancels are asked again until it settles, as a file close does.
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config));
    const file = await uring.open(`${dir.path}/big`, { write: true, create: true });
    const [r, w] = pipe();
    try {
      const big = new Uint8Array(64 << 20).fill(7);
      const ac = new AbortController();
      const chain = uring.chain(
        (c) => c.write(file.fd, big, 0).fsync(file.fd).splice(r, -1, file.fd, 0, 10).nop(),
        { signal: ac.signal, async: true },
      );
      // Abort once the write is running (the file has grown): the kernel cannot stop it.
      await sleep(1);
      const deadline = performance.now() + 5000;
      while (Deno.statSync(`${dir.path}/big`).size === 0 && performance.now() < deadline) { /* wait */ }
      ac.abort();
      const outcome = await Promise.race([
        chain.then(() => "resolved", (e) => (e as Error).name),
        sleep(10_000).then(() => "still pending 10 s after the abort"),
      ]);
      assert.equal(outcome, "AbortError");
      assert.equal(uring.pending, 0);
      // (The scenario: the write had started, so it ran to its end despite the abort.)
      assert.equal(Deno.statSync(`${dir.path}/big`).size, big.length, "the write ran, uncancelled");
    } finally {
      sysClose(w); // (a splice left blocked would end here, with 0 bytes)
      sysClose(r);
      await file.close();
    }
  },
);

ringTest(
  "Uring: a chain of splices posts one CQE; a short splice posts its own and cancels the rest",
  async (config) => {
    // A splice that moves fewer bytes than asked fails the link and posts its CQE (5.7), so a
    // chain of splices needs only its last member's CQE: the copy's chains of 2 × 16 splices
    // woke the event loop once per member before.
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config, { entries: 16 }));
    if (!uring.ring.hasFeature(IORING_FEAT_CQE_SKIP)) return; // before 5.17 every member posts its CQE
    const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
    Deno.writeTextFileSync(src, "0123456789");
    const from = await uring.open(src, { read: true });
    const to = await uring.open(dst, { write: true, create: true });
    const [r, w] = pipe();
    try {
      const cqes = () => uring.stats.cqes;
      // Two chunks of 4 bytes, file → pipe → file: every member moves what it asked.
      let before = cqes();
      const ok = await uring.chain((c) =>
        c.splice(from.fd, 0, w, -1, 4).splice(r, -1, to.fd, 0, 4)
          .splice(from.fd, 4, w, -1, 4).splice(r, -1, to.fd, 4, 4)
      );
      assert.equal(cqes() - before, 1);
      assert.deepEqual(ok.map((m) => m.ok ? m.value : m.error), [4, 4, 4, 4]);
      assert.equal(Deno.readTextFileSync(dst), "01234567");

      // The source ends 2 bytes into the next chunk: that splice is short, the rest cancelled.
      before = cqes();
      const short = await uring.chain((c) =>
        c.splice(from.fd, 8, w, -1, 4).splice(r, -1, to.fd, 8, 4)
          .splice(from.fd, 12, w, -1, 4).splice(r, -1, to.fd, 12, 4)
      );
      assert.equal(cqes() - before, 1);
      assert.deepEqual(short.map((m) => m.ok ? m.value : (m.error as OsError).code), [
        2,
        "ECANCELED",
        "ECANCELED",
        "ECANCELED",
      ]);
      // The 2 bytes wait in the pipe (the splice out of it never ran).
      assert.equal(await uring.splice(r, -1, to.fd, 8, 2), 2);
      assert.equal(Deno.readTextFileSync(dst), "0123456789");

      // A failure in the middle, and a member of 0 bytes (which moves what it asked: nothing).
      before = cqes();
      const failed = await uring.chain((c) =>
        c.splice(from.fd, 0, w, -1, 0).splice(from.fd, 0, w, -1, 3).splice(r, -1, 1 << 20, 0, 3)
          .splice(from.fd, 0, w, -1, 1)
      );
      assert.equal(cqes() - before, 1);
      assert.deepEqual(failed.map((m) => m.ok ? m.value : (m.error as OsError).code), [
        0,
        3,
        "EBADF",
        "ECANCELED",
      ]);
      assert.equal(uring.pending, 0);
    } finally {
      sysClose(r);
      sysClose(w);
      await from.close();
      await to.close();
    }
  },
);

ringTest(
  "Uring: a chain opens, reads, writes and closes direct descriptors in one submission",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config, { entries: 16, fixedFiles: 4 }));
    const src = `${dir.path}/src`;
    const dst = `${dir.path}/dst`;
    Deno.writeTextFileSync(src, "direct descriptors");
    const a = uring.reserveFileIndex();
    const b = uring.reserveFileIndex();
    assert.deepEqual([a, b].sort(), [0, 1]);
    const buf = new Uint8Array(18);
    for (const async of [false, true]) {
      const results = await uring.chain((c) =>
        c.openDirect(src, a)
          .openDirect(dst, b, { flags: 0o1 | 0o100 | 0o1000 | 0o2000000, mode: 0o640 }) // WRONLY|CREAT|TRUNC|CLOEXEC
          .readDirect(a, buf, 0)
          .writeDirect(b, buf, 0)
          .closeDirect(a)
          .closeDirect(b), { async });
      assert.deepEqual(results.map((r) => r.ok ? r.value : (r.error as OsError).code), [0, 0, 18, 18, 0, 0]);
      assert.equal(Deno.readTextFileSync(dst), "direct descriptors");
      assert.equal(Deno.statSync(dst).mode! & 0o777, 0o640);
    }
    assert.equal(uring.stats.fixedFiles, 4, "reads and writes went through the file table");

    // A missing file: the open fails, everything after it is cancelled.
    const missing = await uring.chain((c) =>
      c.openDirect(`${dir.path}/none`, a).readDirect(a, buf, 0).closeDirect(a)
    );
    assert.deepEqual(missing.map((r) => r.ok ? r.value : (r.error as OsError).code), [
      "ENOENT",
      "ECANCELED",
      "ECANCELED",
    ]);
    assert.ok(!missing[0].ok && missing[0].error instanceof Deno.errors.NotFound);
    // A member on an index with nothing open there names the index, not an fd.
    const empty = await uring.chain((c) => c.readDirect(a, buf, 0));
    assert.ok(!empty[0].ok);
    assert.match(empty[0].error.message, /^read: .*\(EBADF\): direct descriptor 0$/);
    const emptyClose = await uring.chain((c) => c.closeDirect(a));
    assert.ok(!emptyClose[0].ok);
    assert.match(emptyClose[0].error.message, /^close: .*direct descriptor 0$/);

    // Bad input is refused before anything is queued.
    await assert.rejects(uring.chain((c) => c.openDirect(src, -1)), RangeError);
    // (0xfffffffe + 1 is IORING_FILE_INDEX_ALLOC: the kernel would pick a free index instead.)
    await assert.rejects(uring.chain((c) => c.openDirect(src, 0xfffffffe)), RangeError);
    await assert.rejects(uring.chain((c) => c.readDirect(1.5, buf, 0)), RangeError);
    await assert.rejects(uring.chain((c) => c.closeDirect(2 ** 32)), RangeError);
    await assert.rejects(uring.chain((c) => c.openDirect("", a)), TypeError);
    assert.throws(() => uring.releaseFileIndex(3), /not reserved/);
    // An index a `fixed` file holds is not the caller's to give back.
    const held = await uring.open(src, { fixed: true });
    assert.ok(held.fixed);
    assert.throws(() => uring.releaseFileIndex(held.fixedIndex), /not reserved/);
    await held.close();
    assert.throws(() => uring.releaseFileIndex(4), RangeError);

    // Four indexes in the table: two more can be reserved, then none.
    const c = uring.reserveFileIndex(), d = uring.reserveFileIndex();
    assert.ok(c >= 0 && d >= 0);
    assert.equal(uring.reserveFileIndex(), -1);
    for (const i of [a, b, c, d]) uring.releaseFileIndex(i);
    assert.equal(uring.pending, 0);
  },
);

ringTest("Uring: splice file -> pipe -> file", async (config) => {
  using dir = tempDir();
  await using uring = new Uring(uringOptions(config));
  const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
  const data = new Uint8Array(10_000).map((_, i) => i % 251);
  Deno.writeFileSync(src, data);
  const a = await uring.open(src);
  const b = await uring.open(dst, { write: true, create: true });
  const [r, w] = pipe();
  let off = 0;
  while (off < data.length) {
    const n = await uring.splice(a.fd, off, w, -1, Math.min(4096, data.length - off));
    assert.ok(n > 0);
    let moved = 0;
    while (moved < n) moved += await uring.splice(r, -1, b.fd, off + moved, n - moved);
    off += n;
  }
  await a.close();
  await b.close();
  await uring.close(r);
  await uring.close(w);
  assert.deepEqual(Deno.readFileSync(dst), data);
});

ringTest("Uring: close() closes the files open() returned; raw fds stay the caller's", async (config) => {
  using dir = tempDir();
  Deno.writeTextFileSync(`${dir.path}/x`, "x");
  const before = fdCount();
  const uring = new Uring(uringOptions(config));
  const files: UringFile[] = [];
  for (let i = 0; i < 5; i++) files.push(await uring.open(`${dir.path}/x`));
  const raw = await uring.openFd(`${dir.path}/x`, 0);
  assert.equal(fdCount(), before + 6 + 1); // + the ring fd
  await uring.close();
  assert.ok(files.every((f) => f.closed));
  assert.equal(fdCount(), before + 1, "only the raw fd is left");
  const one = new Uint8Array(1);
  assert.equal(sysRead(raw, one), 1);
  await files[0].close(); // harmless after the Uring closed
  await assert.rejects(uring.nop(), /Uring is closed/);
  await uring.close(); // closing twice is harmless
  await using other = new Uring(uringOptions(config));
  await other.close(raw);
  assert.equal(fdCount(), before + 1); // `other`'s ring fd
});

ringTest(
  "Uring: an operation whose buffer is detached while it waits for room rejects alone",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config, { entries: 2 })); // CQ 4: 4 operations in the ring
    const [r, w] = pipe();
    const file = await uring.open(`${dir.path}/f`, { read: true, write: true, create: true });
    try {
      const reads = Array.from({ length: 4 }, () => uring.read(r, new Uint8Array(1), 0));
      await sleep(5);
      const data = new Uint8Array(16).fill(1);
      const queued = file.writeAt(data, 0).then(() => "written", (e) => e);
      const other = file.writeAt(new Uint8Array(4).fill(2), 0);
      data.buffer.transfer(); // detach it while the write waits in JavaScript
      // The ring is full of waiting reads: feed the pipe from outside the Uring.
      Deno.writeFileSync(`/proc/self/fd/${w}`, enc.encode("abcd"));
      assert.deepEqual(await Promise.all(reads), [1, 1, 1, 1]);
      const error = await queued;
      assert.ok(error instanceof TypeError, String(error));
      assert.match(error.message, /detached/);
      assert.equal(await other, 4);
      assert.equal(uring.pending, 0);
    } finally {
      await file.close();
      await uring.close(r);
      await uring.close(w);
    }
  },
);

Deno.test({
  name: "Uring: under SQPOLL an operation's SQE reaches the kernel thread at once, before the pump runs",
  ignore: skipKernel(),
  async fn() {
    await using uring = new Uring({ sqpoll: { idleMs: 1000 } });
    await uring.nop(); // the SQ thread is running and awake for the next second
    const before = { ...uring.ring.stats };
    const pending = uring.nop();
    // No microtask has run since nop() returned, so the pump has not submitted: the NOP can
    // complete only if nop() itself published its SQE (the SQ tail store).
    spinUntilReady(uring.ring, 1, "the NOP was not published before the pump ran");
    assert.deepEqual({ ...uring.ring.stats }, before, "no io_uring_enter was needed");
    assert.equal(await pending, undefined);
  },
});

ringTest(
  "Uring: aborts and close() cancel even when the in-flight limit is taken by waiting reads",
  async (config) => {
    const within = <T>(p: Promise<T>, what: string): Promise<T> => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} hung`)), 5000);
      });
      return Promise.race([p, late]).finally(() => clearTimeout(timer));
    };
    const uring = new Uring(uringOptions(config, { entries: 2 })); // at most 4 CQEs in flight
    const [r, w] = pipe();
    try {
      // Reads of an empty pipe never complete by themselves; enough of them fill the in-flight
      // limit (the pump moves queued ones in as the kernel takes the SQEs), the rest wait in JS.
      const ac = new AbortController();
      const reads = Array.from(
        { length: 8 },
        () => uring.read(r, new Uint8Array(1), 0, { signal: ac.signal }),
      );
      for (let i = 0; i < 4; i++) {
        await sleep(5);
        uring.nop().catch(() => {}); // each nop makes the pump run again and move reads in
      }
      await sleep(20);
      // The cancels for the reads in the kernel need SQEs of their own, beyond the limit.
      ac.abort(new Error("enough"));
      const results = await within(Promise.allSettled(reads), "abort");
      for (const result of results) {
        assert.equal(result.status, "rejected");
      }

      // The same for close(): reads in the kernel up to the limit, then close.
      const more = Array.from(
        { length: 8 },
        () => uring.read(r, new Uint8Array(1), 0).catch(() => "rejected"),
      );
      for (let i = 0; i < 4; i++) {
        await sleep(5);
        uring.nop().catch(() => {});
      }
      await sleep(20);
      await within(uring.close(), "close()");
      assert.deepEqual(await Promise.all(more), Array(8).fill("rejected"));
    } finally {
      sysClose(r);
      sysClose(w);
    }
  },
);

ringTest("Uring: one signal shared by many operations aborts exactly those still pending", async (config) => {
  // (Operations listen through one listener per signal: each settles and stops listening alone.)
  await using uring = new Uring(uringOptions(config));
  const controller = new AbortController();
  const signal = controller.signal;
  const done = await Promise.all(Array.from({ length: 300 }, () => uring.nop({ signal }).then(() => "done")));
  assert.ok(done.every((d) => d === "done"));
  const pending = Array.from(
    { length: 300 },
    () => uring.timeout(60_000, { signal }).then(() => "fired", (e) => e),
  );
  const other = new AbortController();
  const unrelated = uring.timeout(30, { signal: other.signal }).then(() => "fired");
  await uring.nop({ signal }); // one more that settles while the others wait
  controller.abort(new Error("stop"));
  for (const result of await Promise.all(pending)) assert.equal((result as Error).message, "stop");
  assert.equal(await unrelated, "fired", "another signal's operation is not touched");
  await assert.rejects(uring.nop({ signal }), /stop/, "a signal that fired refuses new operations");
  assert.equal(uring.pending, 0);
});

ringTest(
  "Uring chain: what would run on another file is refused, and what the kernel refuses is named",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config));
    // A member on an fd an earlier member closes would run on the next file to get the number.
    Deno.writeTextFileSync(`${dir.path}/a`, "");
    const f = await uring.openFd(`${dir.path}/a`, 2);
    await assert.rejects(
      uring.chain((c) => c.close(f).write(f, new TextEncoder().encode("BAD"), 0)),
      /^TypeError: chain: write on fd \d+, which an earlier member of the chain closes$/,
    );
    await uring.close(f);
    // The same for a direct descriptor, unless an openDirect fills the index again.
    const index = uring.reserveFileIndex();
    await assert.rejects(
      uring.chain((c) => c.closeDirect(index).readDirect(index, new Uint8Array(4), 0)),
      /^TypeError: chain: read on direct descriptor \d+, which an earlier member of the chain closes$/,
    );
    const again = await uring.chain((c) =>
      c.openDirect(`${dir.path}/a`, index).closeDirect(index).openDirect(`${dir.path}/a`, index).closeDirect(
        index,
      )
    );
    assert.ok(again.every((r) => r.ok));
    // A reserved index may not be released while a pending chain names it: the next open would
    // get it, and the chain's members would act on that file.
    const [r, w] = pipe();
    try {
      const pending = uring.chain((c) =>
        c.openDirect(`${dir.path}/a`, index).read(r, new Uint8Array(1), 0).closeDirect(index)
      );
      assert.throws(
        () => uring.releaseFileIndex(index),
        /^TypeError: file index \d+ is used by a chain still pending/,
      );
      sysWrite(w, new Uint8Array([1]));
      assert.ok((await pending).every((m) => m.ok));
      uring.releaseFileIndex(index);
    } finally {
      sysClose(r);
      sysClose(w);
    }
    // A path the kernel refuses (PATH_MAX) is named before anything is queued; in a chain its refusal
    // came back as the head's ECANCELED, blamed on io-wq.
    const long = `${dir.path}/${"x".repeat(5000)}`;
    await assert.rejects(
      uring.open(long),
      /^OsError: open '.*\.\.\.': File name too long \(ENAMETOOLONG\): the path is \d+ bytes: at most 4095$/,
    );
    const other = uring.reserveFileIndex();
    await assert.rejects(uring.chain((c) => c.nop().openDirect(long, other)), /ENAMETOOLONG/);
  },
);

ringTest(
  "Uring chain: a buffer detached while an early member of a skip chain ran is reported",
  async (config) => {
    // (In a chain whose members post no CQE on success, the early members' results were taken as asked.)
    using dir = tempDir();
    Deno.writeFileSync(`${dir.path}/f`, new Uint8Array(8192));
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open(`${dir.path}/f`, { read: true });
    const a = new Uint8Array(new ArrayBuffer(4096));
    const results = uring.chain((c) => c.read(file.fd, a, 0).read(file.fd, new Uint8Array(4096), 4096));
    a.buffer.transfer();
    const [first, second] = await results;
    assert.ok(!first.ok && first.error instanceof TypeError, String(!first.ok && first.error));
    assert.match(String(!first.ok && first.error), /detached or shrunk while the operation ran/);
    assert.ok(second.ok);
  },
);

Deno.test({
  name: "Uring chain: a chain of more than 8 waiting when another Uring attaches to the SQ thread is refused",
  ignore: skipKernel(),
  async fn() {
    // It waited for a pass of the shared thread it can never fit in: pending for ever, and the
    // operations queued behind it too.
    using dir = tempDir();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    const a = new Uring({ entries: 16 }); // (SQPOLL: the default)
    try {
      const pfd = await a.openFd(fifo, 2);
      const reads = Array.from({ length: 20 }, () => a.read(pfd, new Uint8Array(1), 0));
      await sleep(50);
      const chain = a.chain((c) => {
        for (let i = 0; i < 16; i++) c.nop();
      });
      await sleep(20);
      const b = new Uring({ entries: 16, attachTo: a });
      try {
        const w = Deno.openSync(fifo, { write: true });
        w.writeSync(new Uint8Array(20));
        w.close();
        await Promise.all(reads);
        const outcome = await Promise.race([
          chain.then(() => "ran", (e) => String(e)),
          sleep(3000).then(() => "still pending after 3 s"),
        ]);
        assert.match(
          outcome,
          /^RangeError: chain: 16 members on a Uring whose SQ thread serves other rings too/,
        );
        await a.close(pfd);
      } finally {
        await b.close();
      }
    } finally {
      await a.close();
    }
  },
});

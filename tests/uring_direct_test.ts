/**
 * The promise layer's direct I/O: `open(path, { direct: true })` (O_DIRECT, alignment checked
 * before submission), a registered buffer pool whose buffers go as READ_FIXED/WRITE_FIXED,
 * `open(path, { fixed: true })` (registered files), and polled Urings (`iopoll: true`).
 */

import assert from "node:assert/strict";
import {
  alignedBuffer,
  AlignmentError,
  ClosedError,
  FixedBufferPool,
  Uring,
  type UringFile,
} from "../mod.ts";
import { devicePolls, directTempDir, skipDirect } from "./_direct.ts";
import { pattern, pipe, sysClose, sysWrite } from "./_io.ts";
import { CONFIGS, ringTest, skipKernel, tempDir } from "./_support.ts";
import { fdCount, uringOptions } from "./uring_support.ts";

/** Registers `fn` once per ring configuration, skipped where O_DIRECT is unavailable. */
function directTest(name: string, fn: (config: (typeof CONFIGS)[number]) => Promise<void>): void {
  for (const config of CONFIGS) {
    Deno.test({ name: `${name} [${config.name}]`, ignore: skipDirect(), fn: () => fn(config) });
  }
}

directTest(
  "Uring O_DIRECT: open with create, truncate or createNew creates and truncates as asked",
  async (config) => {
    using dir = directTempDir();
    await using uring = new Uring(uringOptions(config));
    const path = `${dir.path}/f`;
    Deno.writeFileSync(path, pattern(8192));
    let file = await uring.open(path, { write: true, truncate: true, direct: true });
    assert.equal(Deno.statSync(path).size, 0, "truncated");
    await file.close();
    file = await uring.open(`${dir.path}/new`, { write: true, create: true, direct: true });
    assert.equal(Deno.statSync(`${dir.path}/new`).size, 0, "created");
    await file.close();
    file = await uring.open(`${dir.path}/new`, { write: true, create: true, direct: true }); // there already
    await file.close();
    await assert.rejects(
      uring.open(`${dir.path}/new`, { write: true, createNew: true, direct: true }),
      Deno.errors.AlreadyExists,
    );
    file = await uring.open(`${dir.path}/newer`, { write: true, createNew: true, direct: true, fixed: true });
    assert.ok(file.fixedIndex >= 0);
    await file.close();
  },
);

directTest(
  "Uring O_DIRECT: aligned reads and writes through UringFile match Deno's reads",
  async (config) => {
    using dir = directTempDir();
    const path = `${dir.path}/f`;
    const data = pattern(5 * 4096 + 100, 3); // the last block is partial
    Deno.writeFileSync(path, data);
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open(path, { read: true, write: true, direct: true });
    assert.equal(file.direct, true);
    const align = file.alignment!;
    assert.ok(align.memory >= 1 && align.offset >= 512, `alignment ${JSON.stringify(align)}`);
    assert.ok(4096 % align.memory === 0 && 4096 % align.offset === 0, "4096 satisfies this file");
    using buf = alignedBuffer(8192);

    assert.equal(await file.readAt(buf.bytes, 4096), 8192);
    assert.deepEqual(buf.bytes, data.subarray(4096, 12288));
    // The file ends inside its last block: O_DIRECT reads it short; readFull stops there.
    assert.equal(await file.readAt(buf.bytes, 4 * 4096), 4096 + 100);
    assert.deepEqual(buf.bytes.subarray(0, 4196), data.subarray(4 * 4096));
    using whole = alignedBuffer(8 * 4096);
    assert.equal(await file.readFull(whole.bytes, 0), data.length);
    assert.deepEqual(whole.bytes.subarray(0, data.length), data);

    const fresh = pattern(8192, 9);
    buf.bytes.set(fresh);
    assert.equal(await file.writeAt(buf.bytes, 8192), 8192);
    await file.writeAll(buf.bytes.subarray(0, 4096), 0);
    const expected = data.slice();
    expected.set(fresh, 8192);
    expected.set(fresh.subarray(0, 4096), 0);
    assert.deepEqual(Deno.readFileSync(path), expected, "Deno reads what O_DIRECT wrote");
    assert.equal((await file.stat()).size, data.length);
  },
);

directTest(
  "Uring O_DIRECT: a misaligned buffer address, length or offset rejects before submission",
  async (config) => {
    using dir = directTempDir();
    const path = `${dir.path}/f`;
    Deno.writeFileSync(path, pattern(4 * 4096));
    await using uring = new Uring(uringOptions(config));
    await using file = await uring.open(path, { read: true, write: true, direct: true });
    const { memory, offset } = file.alignment!;
    using buf = alignedBuffer(3 * 4096);
    const sqes = uring.stats.sqes;
    const cases: [string, Promise<unknown>, "address" | "length" | "offset", number][] = [];
    for (const [name, op] of [["readAt", file.readAt], ["writeAt", file.writeAt]] as const) {
      const call = (b: Uint8Array, pos: number) => op.call(file, b, pos);
      if (memory > 1) {
        cases.push([
          `${name} address`,
          call(buf.bytes.subarray(memory / 2, memory / 2 + 4096), 0),
          "address",
          memory,
        ]);
      }
      cases.push([`${name} length`, call(buf.bytes.subarray(0, 4096 + offset / 2), 0), "length", offset]);
      cases.push([`${name} offset`, call(buf.bytes.subarray(0, 4096), offset / 2), "offset", offset]);
    }
    cases.push(["readFull offset", file.readFull(buf.bytes, offset + 1), "offset", offset]);
    cases.push(["writeAll length", file.writeAll(buf.bytes.subarray(0, 100), 0), "length", offset]);
    for (const [what, promise, part, alignment] of cases) {
      await assert.rejects(promise, (e: unknown) => {
        assert.ok(e instanceof AlignmentError, `${what}: ${e}`);
        assert.equal(e.part, part, what);
        assert.equal(e.alignment, alignment, what);
        assert.match(e.message, new RegExp(`O_DIRECT needs the .* to be a multiple of ${alignment} bytes`));
        return true;
      });
    }
    assert.equal(uring.stats.sqes, sqes, "nothing reached the kernel");
    assert.equal(uring.pending, 0);
    // A buffered file has no such rule.
    await using plain = await uring.open(path);
    assert.equal(plain.direct, false);
    assert.equal(plain.alignment, null);
    assert.equal(await plain.readAt(buf.bytes.subarray(1, 101), 3), 100);
  },
);

ringTest(
  "Uring buffer pool: reads and writes on pool buffers go as READ_FIXED/WRITE_FIXED",
  async (config) => {
    using dir = tempDir();
    const path = `${dir.path}/f`;
    const data = pattern(64 * 1024, 5);
    Deno.writeFileSync(path, data);
    await using uring = new Uring(uringOptions(config));
    const pool = uring.registerBufferPool({ count: 4, size: 8192 });
    assert.ok(pool instanceof FixedBufferPool);
    assert.equal(uring.bufferPool, pool);
    assert.throws(() => uring.registerBufferPool({ count: 1, size: 4096 }), /already has a buffer pool/);
    await using file = await uring.open(path, { read: true, write: true });
    const a = pool.acquire()!, b = pool.acquire()!;
    assert.equal(a.index, 0);

    // Whole buffers, a subarray inside one, and the raw read/write calls all go fixed.
    const before = uring.stats.fixedBuffers;
    const [n1, n2, n3] = await Promise.all([
      file.readAt(a.bytes, 8192),
      file.readAt(b.bytes.subarray(100, 1100), 1000),
      uring.read(file.fd, pool.buffer(2).bytes, 0),
    ]);
    assert.deepEqual([n1, n2, n3], [8192, 1000, 8192]);
    assert.equal(uring.stats.fixedBuffers, before + 3);
    assert.deepEqual(a.bytes, data.subarray(8192, 16384));
    assert.deepEqual(b.bytes.subarray(100, 1100), data.subarray(1000, 2000));
    assert.deepEqual(pool.buffer(2).bytes, data.subarray(0, 8192));

    a.bytes.set(pattern(8192, 11));
    assert.equal(await file.writeAt(a.bytes, 16384), 8192);
    assert.equal(uring.stats.fixedBuffers, before + 4);
    assert.deepEqual(Deno.readFileSync(path).subarray(16384, 24576), pattern(8192, 11));

    // A view across two pool buffers is not inside a registered buffer: it goes as a plain read.
    const across = new Uint8Array(a.bytes.buffer, a.bytes.byteOffset + 4096, 8192);
    assert.equal(await file.readAt(across, 0), 8192);
    assert.equal(uring.stats.fixedBuffers, before + 4);
    assert.deepEqual(across, data.subarray(0, 8192));

    // Indexes out of range are refused; closing the pool detaches its buffers.
    assert.throws(() => pool.buffer(4), /fixed buffer index 4 is out of range: the pool has 4 buffers/);
    assert.throws(() => pool.buffer(-1), RangeError);
    pool.release(a);
    pool.release(b);
    const stale = pool.buffer(0).bytes;
    pool.close();
    assert.equal(uring.bufferPool, null);
    await assert.rejects(file.readAt(stale, 0), /detached/);
    const again = uring.registerBufferPool({ count: 1, size: 4096 });
    assert.equal(await file.readAt(again.buffer(0).bytes, 0), 4096);
    assert.equal(uring.stats.fixedBuffers, before + 5);
    await uring.close();
    assert.equal(again.closed, true, "closing the Uring closes its pool");
    assert.throws(() => uring.registerBufferPool({ count: 1, size: 4096 }), ClosedError);
  },
);

ringTest(
  "Uring buffer pool: a read queued before the buffer table is changed through ring is issued again, plain",
  async (config) => {
    // Its SQE named the pool buffer's index, which the kernel looked up in the changed table:
    // EFAULT (every time without SQPOLL, in some runs under it).
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeFileSync(path, pattern(4096, 3));
    await using uring = new Uring(uringOptions(config));
    const pool = uring.registerBufferPool({ count: 2, size: 4096 });
    using other = alignedBuffer(4096);
    await using file = await uring.open(path);
    const buf = pool.acquire()!;
    const read = file.readAt(buf.bytes, 0); // its SQE written now, submitted from a microtask
    uring.ring.registerBuffersUpdate(0, [other.bytes]);
    assert.equal(await read, 4096);
    assert.deepEqual(buf.bytes, pattern(4096, 3));
    assert.ok(other.bytes.every((b) => b === 0), "nothing went into the buffer now in the slot");
  },
);

ringTest(
  "Uring buffer pool: release() refuses a buffer while a read of the Uring into it is in flight",
  async (config) => {
    // It was accepted, and the next acquire() handed out the buffer the late read then wrote into.
    await using uring = new Uring({ ...uringOptions(config), entries: 2 }); // (at most 4 in flight)
    const pool = uring.registerBufferPool({ count: 1, size: 4096 });
    const [r, w] = pipe();
    try {
      const buf = pool.acquire()!;
      const read = uring.read(r, buf.bytes.subarray(0, 8), 0); // waits for data
      await new Promise((resolve) => setTimeout(resolve, 10));
      assert.throws(() => pool.release(buf), /fixed buffer 0 has 1 operation\(s\) of its Uring in flight/);
      assert.equal(pool.acquire(), null, "still held");
      assert.equal(await uring.write(w, new TextEncoder().encode("late"), 0), 4);
      assert.equal(await read, 4);
      pool.release(buf); // settled: given back
      assert.equal(pool.acquire(), buf);
      // Waiting in the backlog (the ring's limit taken by reads that wait) counts too: it was
      // given back there, handed out again, and the late read overwrote the new holder's data.
      const waiting = Array.from({ length: 12 }, () => uring.read(r, new Uint8Array(1), 0));
      const queued = uring.read(r, buf.bytes.subarray(0, 1), 0);
      assert.throws(() => pool.release(buf), /in flight/);
      assert.equal(sysWrite(w, new Uint8Array(13).fill(7)), 13); // (the ring's limit is taken)
      assert.deepEqual(await Promise.all([...waiting, queued]), new Array(13).fill(1));
      pool.release(buf);
    } finally {
      sysClose(r);
      sysClose(w);
    }
  },
);

directTest("Uring buffer pool + O_DIRECT: fixed reads and writes match Deno's reads", async (config) => {
  using dir = directTempDir();
  const path = `${dir.path}/f`;
  const data = pattern(16 * 4096, 7);
  Deno.writeFileSync(path, data);
  await using uring = new Uring(uringOptions(config));
  const pool = uring.registerBufferPool({ count: 2, size: 16384, alignment: 4096 });
  await using file = await uring.open(path, { read: true, write: true, direct: true, fixed: true });
  const buf = pool.acquire()!;
  const fixed = uring.stats.fixedBuffers;
  assert.equal(await file.readAt(buf.bytes, 4096 * 3), 16384);
  assert.deepEqual(buf.bytes, data.subarray(4096 * 3, 4096 * 7));
  buf.bytes.fill(0xa5);
  await file.writeAll(buf.bytes, 0);
  assert.equal(uring.stats.fixedBuffers, fixed + 2);
  const expected = data.slice();
  expected.fill(0xa5, 0, 16384);
  assert.deepEqual(Deno.readFileSync(path), expected);
  await assert.rejects(file.readAt(buf.bytes.subarray(1, 4097), 0), AlignmentError);
});

ringTest(
  "Uring fixed files: reads, writes and sync name the file by index; close frees it",
  async (config) => {
    using dir = tempDir();
    const path = `${dir.path}/f`;
    const data = pattern(16384, 2);
    Deno.writeFileSync(path, data);
    const fds = fdCount();
    {
      await using uring = new Uring(uringOptions(config, { fixedFiles: 1 }));
      const file = await uring.open(path, { read: true, write: true, fixed: true });
      assert.equal(file.fixed, true);
      assert.equal(file.fixedIndex, 0);
      const buf = new Uint8Array(4096);
      const before = uring.stats.fixedFiles;
      assert.equal(await file.readAt(buf, 4096), 4096);
      assert.deepEqual(buf, data.subarray(4096, 8192));
      await file.writeAll(pattern(4096, 8), 0);
      await file.sync({ datasync: true });
      assert.equal(uring.stats.fixedFiles, before + 3);
      assert.deepEqual(Deno.readFileSync(path).subarray(0, 4096), pattern(4096, 8));
      assert.equal((await file.stat()).size, 16384);

      // The table holds one file: the next fixed open falls back to a plain fd.
      const second = await uring.open(path, { fixed: true });
      assert.equal(second.fixed, false);
      assert.equal(await second.readAt(buf, 0), 4096);
      assert.equal(uring.stats.fixedFiles, before + 3);
      await second.close();

      await file.close();
      await file.close(); // harmless
      await assert.rejects(file.readAt(buf, 0), Deno.errors.BadResource);
      const third = await uring.open(path, { fixed: true });
      assert.equal(third.fixed, true, "close freed the index");
      assert.equal(third.fixedIndex, 0);
      assert.equal(await third.readAt(buf, 8192), 4096);
      assert.deepEqual(buf, data.subarray(8192, 12288));
      // third is left open: closing the Uring closes it.
    }
    assert.equal(fdCount(), fds, "no fd leaked");
  },
);

ringTest(
  "Uring.open with direct, create and truncate: an open aborted partway leaves no file it created",
  async (config) => {
    if (skipDirect()) return;
    // A probe: aborted while the created file was being truncated (a step it never needed), the
    // open rejected and left the file behind (14 and 64 of 300).
    using dir = directTempDir();
    await using uring = new Uring(uringOptions(config));
    let rejected = 0;
    for (let i = 0; i < 200; i++) {
      const path = `${dir.path}/f${i}`;
      const ac = new AbortController();
      const open = uring.open(path, {
        write: true,
        create: true,
        truncate: true,
        direct: true,
        signal: ac.signal,
      });
      const when = i % 4;
      if (when === 0) queueMicrotask(() => ac.abort());
      else if (when === 1) Promise.resolve().then(() => Promise.resolve()).then(() => ac.abort());
      else setTimeout(() => ac.abort(), when === 2 ? 0 : Math.random());
      try {
        await (await open).close();
        Deno.removeSync(path);
      } catch {
        rejected++;
        assert.throws(
          () => Deno.statSync(path),
          Deno.errors.NotFound,
          `${path} left behind by a rejected open`,
        );
      }
    }
    assert.ok(rejected > 0, "no open was aborted");
  },
);

Deno.test({
  name: "Uring: fixedFiles must be 1 to 65536",
  ignore: skipKernel(),
  fn() {
    for (const [fixedFiles, got] of [[0, "0"], [65537, "65537"], [1.5, "1.5"], ["8", '"8" (a string)']]) {
      const Class = typeof fixedFiles === "number" ? RangeError : TypeError; // (not a number at all)
      assert.throws(
        () => new Uring({ sqpoll: false, fixedFiles: fixedFiles as number }),
        new Class(`fixedFiles must be an integer from 1 to 65536, got ${got}`),
      );
    }
  },
});

Deno.test({
  name: "Uring: a fixedFiles table larger than RLIMIT_NOFILE is halved until it fits; fixed opens still work",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const script = `${dir.path}/table.ts`;
    Deno.writeTextFileSync(
      script,
      `import { Uring } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
      await using uring = new Uring({ sqpoll: false, fixedFiles: 4096 });
      const files = [];
      for (let i = 0; i < 150; i++) files.push(await uring.open(${JSON.stringify(script)}, { fixed: true }));
      const fixed = files.filter((f) => f.fixed).length;
      const buf = new Uint8Array(6);
      await files[0].readAt(buf, 0);
      console.log(JSON.stringify({ fixed, first: files[0].fixed, text: new TextDecoder().decode(buf) }));`,
    );
    // The kernel refuses a table larger than RLIMIT_NOFILE (EMFILE): 4096 → ... → 128 fits in 200.
    const out = await new Deno.Command("sh", {
      args: ["-c", 'ulimit -n 200 && exec "$0" run -A "$1"', Deno.execPath(), script],
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, stderr);
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.deepEqual(result, { fixed: 128, first: true, text: "import" });
  },
});

/** Whether the device holding `path` polls (undefined: sysfs does not say). */
async function pollsHere(uring: Uring, path: string): Promise<boolean | undefined> {
  const st = await uring.statx(path);
  return devicePolls(st.devMajor, st.devMinor);
}

async function checkPolledRead(uring: Uring, file: UringFile, data: Uint8Array, polls: boolean | undefined) {
  using buf = alignedBuffer(4096);
  const read = file.readAt(buf.bytes, 4096);
  if (polls === true) {
    assert.equal(await read, 4096);
    assert.deepEqual(buf.bytes, data.subarray(4096, 8192));
    return;
  }
  if (polls === undefined) console.log("note: sysfs does not say whether this device polls");
  await assert.rejects(read, (e: unknown) => {
    assert.ok(e instanceof Deno.errors.NotSupported, `expected NotSupported, got ${e}`);
    assert.equal((e as { code?: string }).code, "EOPNOTSUPP");
    assert.match(e.message, /^read '.*\/f': /, "names the operation and the file");
    assert.match(e.message, /the file is open with O_DIRECT, so its device has no poll queues/);
    assert.match(e.message, /a polled Uring \(iopoll: true\) works only for O_DIRECT files/);
    assert.match(String((e as Error).cause), /read \(IOPOLL\) failed: EOPNOTSUPP/);
    return true;
  });
  assert.equal(uring.pending, 0);
}

for (const backend of ["helper", "libc"] as const) {
  for (const sqpoll of [false, true]) {
    const name = `${sqpoll ? "sqpoll" : "nosqpoll"}/${backend}`;
    Deno.test({
      name: `Uring IOPOLL: sets up, opens on its plain ring, a read on this disk gives the clear ` +
        `"no poll queues" error, tears down cleanly [${name}]`,
      ignore: skipDirect(),
      async fn() {
        using dir = directTempDir();
        const path = `${dir.path}/f`;
        const data = pattern(4 * 4096, 4);
        Deno.writeFileSync(path, data);
        const fds = fdCount();
        const uring = new Uring({ iopoll: true, sqpoll, backend });
        assert.equal(uring.iopoll, true);
        assert.equal(uring.ring.iopoll, true);
        assert.equal(uring.sqpoll, sqpoll);
        await uring.nop(); // a no-op runs on the polled ring itself
        await assert.rejects(uring.open(path), /open them with \{ direct: true \}/);
        // What a polled ring refuses (statx, open, timeout, close) runs on the plain ring.
        const polls = await pollsHere(uring, path);
        await uring.timeout(1);
        const file = await uring.open(path, { read: true, direct: true, fixed: true });
        assert.equal(file.direct, true);
        assert.equal(file.fixed, true);
        assert.equal((await file.stat()).size, data.length);
        await checkPolledRead(uring, file, data, polls);
        const raw = await uring.openFd(path, 0);
        await uring.close(raw);
        // `file` is left open: close() closes it on the plain ring after the polled one drains.
        await uring.close();
        assert.equal(file.closed, true);
        assert.equal(uring.pending, 0);
        assert.equal(fdCount(), fds, "no fd (file, ring, plain ring) leaked");
        await assert.rejects(uring.statx(path), /closed/);
      },
    });
  }
}

Deno.test({
  name:
    "Uring buffer pool: once its registration is gone (unregistered or replaced through ring), reads go plain",
  ignore: skipKernel(),
  fn: async () => {
    // They went as READ_FIXED with the pool's index: EFAULT once unregistered, and with the table
    // registered again in another order the kernel would move another buffer's bytes.
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeFileSync(path, pattern(8192));
    await using uring = new Uring({ sqpoll: false });
    await using file = await uring.open(path, { read: true });
    const pool = uring.registerBufferPool({ count: 4, size: 4096 });
    const buf = pool.acquire()!;
    assert.equal(await file.readAt(buf.bytes, 0), 4096);
    assert.equal(uring.stats.fixedBuffers, 1);
    uring.ring.unregisterBuffers();
    buf.bytes.fill(0);
    assert.equal(await file.readAt(buf.bytes, 4096), 4096, "a plain read, not EFAULT");
    assert.deepEqual(buf.bytes, pattern(8192).subarray(4096));
    uring.ring.registerBuffers([3, 2, 1, 0].map((i) => pool.buffer(i).bytes));
    buf.bytes.fill(0);
    assert.equal(await file.readAt(buf.bytes, 0), 4096);
    assert.deepEqual(
      buf.bytes,
      pattern(8192).subarray(0, 4096),
      "into this buffer, not the one at its index now",
    );
    assert.equal(uring.stats.fixedBuffers, 1, "no fixed-buffer SQE after the pool's registration went");
    uring.ring.unregisterBuffers();
    pool.release(buf);
  },
});

ringTest(
  "Uring buffer pool: reads waiting in the backlog when the table changes through ring go plain",
  async (config) => {
    // Their index was chosen when they were called, and written into an SQE only later: with
    // slot 0 replaced meanwhile, all 16 failed with EFAULT (without SQPOLL; 12 with it).
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeFileSync(path, pattern(16 * 512));
    await using uring = new Uring({ ...uringOptions(config), entries: 2 });
    await using file = await uring.open(path, { read: true });
    const pool = uring.registerBufferPool({ count: 2, size: 16 * 512 });
    const buf = pool.acquire()!;
    const reads = Array.from(
      { length: 16 },
      (_, i) => file.readAt(buf.bytes.subarray(i * 512, i * 512 + 512), i * 512),
    );
    uring.ring.registerBuffersUpdate(0, [new Uint8Array(4096)]);
    const results = await Promise.allSettled(reads);
    const failed = results.filter((r) => r.status === "rejected");
    // The ones in the SQ already (at most its 2 entries) kept the index: EFAULT.
    assert.ok(failed.length <= 2, `${failed.length} of 16 failed`);
    for (const f of failed) assert.match(String((f as PromiseRejectedResult).reason), /EFAULT/);
    for (let i = 0; i < 16; i++) {
      if (results[i].status === "fulfilled") {
        assert.deepEqual(
          buf.bytes.subarray(i * 512, i * 512 + 512),
          pattern(16 * 512).subarray(i * 512, i * 512 + 512),
        );
      }
    }
    pool.release(buf);
  },
);

/**
 * Fixed-buffer tables that change: `registerBuffersSparse` (a table of empty slots) and
 * `registerBuffersUpdate` (replace or empty slots), with `checkFixedBuffer` and the kernel
 * agreeing on what each slot holds, in every ring configuration.
 */

import assert from "node:assert/strict";
import {
  alignedBuffer,
  checkFixedBuffer,
  IoUring,
  IoUringError,
  O_CREAT,
  O_RDWR,
  prepReadFixed,
  prepWriteFixed,
} from "../mod.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";
import { MOD_URL, runDeno } from "./uring_support.ts";
import { pinAlignedMemory } from "../src/aligned.ts";
import { assertErr, closeFd, openFile, pattern, run } from "./_io.ts";

/** A file of 8 KiB of `pattern(8192)` opened read-write through `ring`. */
function patternFile(ring: IoUring, dir: string): number {
  Deno.writeFileSync(`${dir}/data`, pattern(8192));
  return openFile(ring, `${dir}/data`, O_RDWR | O_CREAT);
}

ringTest(
  "registerBuffersSparse: empty slots (EFAULT, refused by checkFixedBuffer) filled by an update",
  (config) => {
    using dir = tempDir();
    using ring = new IoUring(8, config.options);
    const fd = patternFile(ring, dir.path);
    ring.registerBuffersSparse(4);
    const empty = ring.registeredBuffers!;
    assert.equal(empty.length, 4);
    assert.ok(Object.isFrozen(empty));
    for (const slot of empty) assert.equal(slot.byteLength, 0);
    const buf = new Uint8Array(4096);
    assertErr(run(ring, (s) => prepReadFixed(s, fd, buf, 0, 1)), "EFAULT"); // the kernel: no buffer there
    assert.throws(() => checkFixedBuffer(ring, buf, 1), /registered buffer 1 is an empty slot/);

    assert.equal(ring.registerBuffersUpdate(1, [buf]), 1);
    const filled = ring.registeredBuffers!;
    assert.notEqual(filled, empty, "a new array after the change");
    assert.equal(filled[1], buf);
    assert.equal(filled[0].byteLength + filled[2].byteLength + filled[3].byteLength, 0);
    checkFixedBuffer(ring, buf.subarray(100, 200), 1);
    assert.equal(run(ring, (s) => prepReadFixed(s, fd, buf, 4096, 1)), 4096);
    assert.deepEqual(buf, pattern(8192).subarray(4096));
    assertErr(run(ring, (s) => prepReadFixed(s, fd, buf, 0, 0)), "EFAULT"); // slot 0 stays empty
    ring.unregisterBuffers();
    assert.equal(ring.registeredBuffers, undefined);
    closeFd(ring, fd);
  },
);

ringTest(
  "registerBuffersUpdate: replaces and empties slots; the old buffer is no longer the slot's",
  (config) => {
    using dir = tempDir();
    using ring = new IoUring(8, config.options);
    const fd = patternFile(ring, dir.path);
    const a = new Uint8Array(4096), b = new Uint8Array(4096), c = new Uint8Array(8192);
    ring.registerBuffers([a, b]);
    assert.equal(ring.registerBuffersUpdate(0, [c, null]), 2);
    assert.deepEqual([...ring.registeredBuffers!].map((v) => v.byteLength), [8192, 0]);
    assert.equal(ring.registeredBuffers![0], c);
    // Slot 0 is c's memory now: a read into a through it is outside the buffer.
    assertErr(run(ring, (s) => prepReadFixed(s, fd, a, 0, 0)), "EFAULT");
    assert.throws(() => checkFixedBuffer(ring, a, 0), /is not inside registered buffer 0/);
    assert.equal(run(ring, (s) => prepReadFixed(s, fd, c, 0, 0)), 8192);
    assert.deepEqual(c, pattern(8192));
    assertErr(run(ring, (s) => prepReadFixed(s, fd, b, 0, 1)), "EFAULT"); // emptied
    assert.throws(() => checkFixedBuffer(ring, b, 1), /empty slot/);
    // Filled again, with the same buffer as slot 0 (the kernel allows it).
    assert.equal(ring.registerBuffersUpdate(1, [c]), 1);
    c.set(pattern(4096, 9), 0);
    assert.equal(run(ring, (s) => prepWriteFixed(s, fd, c.subarray(0, 4096), 0, 1)), 4096);
    assert.deepEqual(Deno.readFileSync(`${dir.path}/data`).subarray(0, 4096), pattern(4096, 9));
    closeFd(ring, fd);
  },
);

ringTest("registerBuffersUpdate/Sparse: bad input is refused before the kernel", (config) => {
  using ring = new IoUring(8, config.options);
  const buf = new Uint8Array(64);
  assert.throws(() => ring.registerBuffersUpdate(0, [buf]), /no buffers are registered with this ring/);
  assert.throws(() => ring.registerBuffersSparse(0), /count must be an integer from 1 to 16384, got 0/);
  assert.throws(
    () => ring.registerBuffersSparse(16385),
    /count must be an integer from 1 to 16384, got 16385/,
  );
  assert.throws(() => ring.registerBuffersSparse(1.5), RangeError);
  ring.registerBuffersSparse(2);
  assert.throws(
    () => ring.registerBuffersSparse(2),
    (e) =>
      e instanceof IoUringError && e.code === "EBUSY" &&
      /IORING_REGISTER_BUFFERS2 \(2 sparse\)/.test(e.message),
  );
  assert.throws(
    () => ring.registerBuffersUpdate(1, [buf, buf]),
    /slots 1\.\.2 are outside the table of 2 buffers/,
  );
  assert.throws(() => ring.registerBuffersUpdate(-1, [buf]), RangeError);
  assert.throws(() => ring.registerBuffersUpdate(0, []), /non-empty array/);
  assert.throws(() => ring.registerBuffersUpdate(0, buf as unknown as Uint8Array[]), /non-empty array/);
  assert.throws(() => ring.registerBuffersUpdate(0, [{} as Uint8Array]), /must be a typed array or DataView/);
  const gone = new Uint8Array(16);
  gone.buffer.transfer();
  assert.throws(() => ring.registerBuffersUpdate(0, [gone]), /detached/);
  const resizable = new Uint8Array(new ArrayBuffer(16, { maxByteLength: 64 }));
  assert.throws(() => ring.registerBuffersUpdate(1, [resizable]), /resizable ArrayBuffer/);
  // Nothing of the refused calls reached the table.
  for (const slot of ring.registeredBuffers!) assert.equal(slot.byteLength, 0);
  ring.close();
  assert.throws(() => ring.registerBuffersUpdate(0, [buf]), /closed/);
  assert.equal(ring.registeredBuffers, undefined);
});

ringTest(
  "registerBuffersUpdate: a slot the kernel refuses is named; the slots before it stay replaced",
  (config) => {
    using ring = new IoUring(8, config.options);
    // Memory without access (PROT_NONE): the kernel cannot pin it and refuses it with EFAULT.
    const libc = Deno.dlopen("libc.so.6", {
      mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
      munmap: { parameters: ["pointer", "usize"], result: "i32" },
    });
    const MAP_PRIVATE = 0x02, MAP_ANONYMOUS = 0x20, PROT_NONE = 0;
    const p = libc.symbols.mmap(null, 4096n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
    try {
      assert.ok(p !== null && Deno.UnsafePointer.value(p) !== -1n, "mmap failed");
      const forbidden = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p!, 4096)); // (never read)
      const a = new Uint8Array(64), b = new Uint8Array(64), c = new Uint8Array(64);
      ring.registerBuffersSparse(4);
      assert.throws(
        () => ring.registerBuffersUpdate(0, [a, b, forbidden, c]),
        (e) =>
          e instanceof IoUringError && e.code === "EFAULT" &&
          e.message.includes("IORING_REGISTER_BUFFERS_UPDATE (slot 2; 2 replaced before it)"),
      );
      const table = ring.registeredBuffers!;
      assert.equal(table[0], a);
      assert.equal(table[1], b);
      assert.equal(
        table[2].byteLength + table[3].byteLength,
        0,
        "the refused slot and the one after it stay empty",
      );
      checkFixedBuffer(ring, b, 1);
      ring.unregisterBuffers();
    } finally {
      libc.symbols.munmap(p, 4096n);
      libc.close();
    }
  },
);

ringTest("cloneBuffersFrom: the same memory in another ring, kept when the source lets go", (config) => {
  using dir = tempDir();
  using source = new IoUring(8, config.options);
  using ring = new IoUring(8, config.options);
  const fd = patternFile(ring, dir.path);
  const a = new Uint8Array(4096), b = new Uint8Array(4096), c = new Uint8Array(4096);
  source.registerBuffers([a, b, c]);
  ring.cloneBuffersFrom(source);
  assert.deepEqual(ring.registeredBuffers, [a, b, c]);
  source.unregisterBuffers(); // the clone holds its own references, in the kernel and here
  assert.equal(run(ring, (s) => prepReadFixed(s, fd, b, 4096, 1)), 4096);
  assert.deepEqual(b, pattern(8192).subarray(4096));
  checkFixedBuffer(ring, c, 2);
  closeFd(ring, fd);
});

ringTest(
  "cloneBuffersFrom: a range into a table (replace) keeps the slots outside it",
  (config) => {
    using dir = tempDir();
    using source = new IoUring(8, config.options);
    using ring = new IoUring(8, config.options);
    const fd = patternFile(ring, dir.path);
    const a = new Uint8Array(4096), b = new Uint8Array(4096), c = new Uint8Array(4096);
    const mine = new Uint8Array(4096), after = new Uint8Array(4096);
    source.registerBuffers([a, b, c]);
    ring.registerBuffersSparse(6);
    ring.registerBuffersUpdate(0, [mine]);
    ring.registerBuffersUpdate(5, [after]);
    ring.cloneBuffersFrom(source, { srcOffset: 1, dstOffset: 2, count: 2, replace: true });
    const table = ring.registeredBuffers!;
    assert.deepEqual(table.map((v) => v.byteLength), [4096, 0, 4096, 4096, 0, 4096]);
    assert.equal(table[0], mine);
    assert.equal(table[2], b);
    assert.equal(table[3], c);
    // The kernel agrees slot by slot.
    assert.equal(run(ring, (s) => prepReadFixed(s, fd, mine, 0, 0)), 4096);
    assert.equal(run(ring, (s) => prepReadFixed(s, fd, c, 4096, 3)), 4096);
    assert.deepEqual(c, pattern(8192).subarray(4096));
    assert.equal(run(ring, (s) => prepReadFixed(s, fd, after, 0, 5)), 4096);
    assertErr(run(ring, (s) => prepReadFixed(s, fd, a, 0, 1)), "EFAULT");
    assert.throws(() => checkFixedBuffer(ring, a, 1), /empty slot/);
    checkFixedBuffer(ring, after, 5);
    // A table shorter than the range grows.
    using short = new IoUring(8, config.options);
    short.registerBuffers([mine]);
    short.cloneBuffersFrom(source, { dstOffset: 2, replace: true });
    assert.deepEqual(short.registeredBuffers, [mine, short.registeredBuffers![1], a, b, c]);
    assert.equal(short.registeredBuffers![1].byteLength, 0);
    assert.equal(run(short, (s) => prepReadFixed(s, fd, a, 0, 2)), 4096);
    assertErr(run(short, (s) => prepReadFixed(s, fd, a, 0, 1)), "EFAULT");
    closeFd(ring, fd);
  },
);

ringTest("cloneBuffersFrom: bad input is refused before the kernel", (config) => {
  using source = new IoUring(8, config.options);
  using ring = new IoUring(8, config.options);
  assert.throws(() => ring.cloneBuffersFrom(source), /the source ring has no registered buffers/);
  assert.throws(() => ring.cloneBuffersFrom({} as IoUring), /source must be an IoUring/);
  source.registerBuffers([new Uint8Array(64), new Uint8Array(64)]);
  assert.throws(
    () => ring.cloneBuffersFrom(source, { srcOffset: 2 }),
    /srcOffset must be an integer from 0 to 1, got 2/,
  );
  assert.throws(
    () => ring.cloneBuffersFrom(source, { srcOffset: 1, count: 2 }),
    /count must be an integer from 1 to 1, got 2/,
  );
  assert.throws(
    () => ring.cloneBuffersFrom(source, { count: 0 }),
    /count must be an integer from 1 to 2, got 0/,
  );
  assert.throws(
    () => ring.cloneBuffersFrom(source, { dstOffset: 16383, count: 2 }),
    /count must be an integer from 1 to 1, got 2/,
  );
  assert.throws(
    () => ring.cloneBuffersFrom(source, { replace: 1 as unknown as boolean }),
    /replace must be a boolean/,
  );
  assert.throws(
    () => ring.cloneBuffersFrom(source, 5 as unknown as object),
    /options must be an object, got 5/,
  );
  ring.registerBuffersSparse(1);
  assert.throws(() => ring.cloneBuffersFrom(source), /has registered buffers already: .*replace: true/);
  assert.equal(ring.registeredBuffers!.length, 1);
  source.close();
  assert.throws(() => ring.cloneBuffersFrom(source, { replace: true }), /IoUring \(the source\) is closed/);
});

Deno.test({
  name: "unregisterBuffers: the ring keeps the buffers referenced (the kernel may still write into them)",
  ignore: skipKernel(),
  async fn() {
    // Since 6.13 the kernel's unregister does not wait for fixed requests in flight: a buffer the
    // garbage collector freed under a pending READ_FIXED took the kernel's bytes (heap corruption).
    const out = await runDeno(
      `
import { IoUring, prepReadFixed } from ${JSON.stringify(MOD_URL)};
const results = {};
for (const how of ["unregister", "update"]) {
  const ring = new IoUring(4, { sqpoll: false });
  let buf = new Uint8Array(8192);
  const ref = new WeakRef(buf.buffer); // (its memory is what the kernel writes into)
  ring.registerBuffers([buf]);
  if (how === "update") ring.registerBuffersUpdate(0, [null]);
  ring.unregisterBuffers();
  buf = null;
  await new Promise((resolve) => setTimeout(resolve, 0)); // (a WeakRef holds its target until the job ends)
  for (let i = 0; i < 5; i++) globalThis.gc();
  results[how] = ref.deref() === undefined ? "freed" : "kept";
  ring.close();
}
console.log(JSON.stringify(results));
`,
      ["--allow-ffi", "--allow-read", "--allow-env", "--v8-flags=--expose-gc"],
    );
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { unregister: "kept", update: "kept" });
  },
});

ringTest("registerBuffersUpdate: one hold per aligned mapping, however often a slot changes", (config) => {
  using ring = new IoUring(8, config.options);
  using a = alignedBuffer(4096);
  using b = alignedBuffer(4096);
  ring.registerBuffers([a.bytes]);
  for (let i = 0; i < 100; i++) ring.registerBuffersUpdate(0, [i % 2 === 0 ? b.bytes : a.bytes]);
  for (const buffer of [a, b]) {
    const mapping = pinAlignedMemory(buffer.bytes.buffer)!; // (a look: one more hold, given back)
    try {
      assert.equal(mapping.pins, 2, "the ring's one hold, and this look's");
    } finally {
      mapping.unpin();
    }
  }
  ring.unregisterBuffers();
});

ringTest("registerBuffersUpdate: only null empties a slot (undefined or a hole is refused)", (config) => {
  using ring = new IoUring(8, config.options);
  ring.registerBuffersSparse(2);
  const buf = new Uint8Array(64);
  assert.throws(
    () => ring.registerBuffersUpdate(0, [buf, undefined as unknown as null]),
    /^TypeError: buffers\[1\] must be a typed array or DataView/,
  );
  // deno-lint-ignore no-sparse-arrays
  assert.throws(
    () => ring.registerBuffersUpdate(0, [, buf] as Uint8Array[]),
    /buffers\[0\] must be a typed array/,
  );
  assert.equal(ring.registerBuffersUpdate(0, [buf, null]), 2);
});

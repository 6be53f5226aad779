import assert from "node:assert/strict";
import {
  addressOf,
  AlignedBuffer,
  alignedBuffer,
  type Backend,
  checkDirectAlignment,
  IoUring,
  Iovecs,
  MAX_ALIGNMENT,
  MIN_ALIGNMENT,
  Uring,
} from "../mod.ts";
import { pipe } from "./_io.ts";
import { skipKernel } from "./_support.ts";

const BACKENDS: Backend[] = ["helper", "libc"];

// Deno needs --allow-all to read /proc/self/maps; mincore(2) tells mapped from unmapped too.
const libc = Deno.dlopen("libc.so.6", {
  mincore: { parameters: ["pointer", "usize", "buffer"], result: "i32" },
}).symbols;
const residentVec = new Uint8Array(1);

/** Whether the page at `address` is mapped: mincore fails (ENOMEM) on unmapped memory. */
function isMapped(address: number): boolean {
  const page = address - (address % 4096);
  return libc.mincore(Deno.UnsafePointer.create(BigInt(page)), 4096n, residentVec) === 0;
}

for (const backend of BACKENDS) {
  Deno.test(`alignedBuffer: default 4096 alignment, exact size, zeroed and writable [${backend}]`, () => {
    using buf = alignedBuffer(10_000, undefined, { backend });
    assert.ok(buf instanceof AlignedBuffer);
    assert.equal(buf.alignment, 4096);
    assert.equal(buf.size, 10_000);
    assert.equal(buf.bytes.byteLength, 10_000);
    assert.equal(buf.address % 4096, 0);
    assert.equal(addressOf(buf.bytes), buf.address);
    assert.ok(buf.bytes.every((b) => b === 0));
    buf.bytes.fill(0xab);
    assert.equal(buf.bytes[9_999], 0xab);
    assert.ok(isMapped(buf.address));
  });

  Deno.test(`alignedBuffer: alignments from 512 to 2 MiB, larger ones over-allocated [${backend}]`, () => {
    for (const alignment of [512, 1024, 4096, 8192, 65536, 2 * 1024 * 1024]) {
      for (const size of [1, 4095, 4096, 5000]) {
        using buf = alignedBuffer(size, alignment, { backend });
        assert.equal(buf.address % alignment, 0, `size ${size} alignment ${alignment}`);
        assert.equal(buf.bytes.byteLength, size);
        buf.bytes[size - 1] = 1; // the last byte is inside the mapping
        assert.equal(buf.bytes[size - 1], 1);
      }
    }
  });
}

Deno.test("alignedBuffer: bad sizes and alignments are RangeErrors", () => {
  for (const size of [0, -1, 1.5, NaN, 2 ** 53]) {
    assert.throws(() => alignedBuffer(size), RangeError, `size ${size}`);
  }
  for (const alignment of [0, 1, 256, 3000, 4097, MAX_ALIGNMENT * 2, MIN_ALIGNMENT / 2]) {
    assert.throws(() => alignedBuffer(4096, alignment), /power of two from 512/, `alignment ${alignment}`);
  }
});

Deno.test("alignedBuffer: free() unmaps, detaches every earlier view, and bytes/address throw", () => {
  const buf = alignedBuffer(8192);
  const address = buf.address;
  const bytes = buf.bytes;
  const sub = bytes.subarray(100, 200);
  const again = new Uint8Array(bytes.buffer);
  const dv = new DataView(bytes.buffer);
  bytes.fill(7);
  buf.free();
  assert.equal(buf.freed, true);
  assert.equal(isMapped(address), false, "the memory is unmapped");
  // Every view is detached: reads give undefined/0 length, writes are ignored, nothing faults.
  for (const view of [bytes, sub, again]) {
    assert.equal(view.byteLength, 0);
    assert.equal(view[0], undefined);
    view[0] = 1;
    assert.equal(view[0], undefined);
  }
  assert.throws(() => dv.getUint8(0), TypeError);
  assert.throws(() => buf.bytes, /AlignedBuffer was freed/);
  assert.throws(() => buf.address, /AlignedBuffer was freed/);
  buf.free(); // idempotent
  assert.equal(buf.freed, true);
});

Deno.test("alignedBuffer: `using` frees at the end of the scope", () => {
  let address: number;
  let view: Uint8Array;
  {
    using buf = alignedBuffer(4096);
    address = buf.address;
    view = buf.bytes;
    assert.ok(isMapped(address));
  }
  assert.equal(view.byteLength, 0);
  assert.equal(isMapped(address), false);
});

Deno.test("alignedBuffer: module APIs reject a freed buffer's views before the kernel sees them", () => {
  const buf = alignedBuffer(4096);
  const view = buf.bytes;
  buf.free();
  assert.throws(() => addressOf(view), /detached/);
  assert.throws(() => new Iovecs([view]), /detached/);
  assert.throws(() => checkDirectAlignment(view, 0), /detached/);
  assert.throws(() => checkDirectAlignment(buf, 0), /AlignedBuffer was freed/);
});

Deno.test("alignedBuffer: free() while pinned detaches now and unmaps at the last unpin()", () => {
  const buf = alignedBuffer(4096);
  const address = buf.address;
  const view = buf.bytes;
  buf.pin().pin();
  assert.equal(buf.pins, 2);
  buf.free();
  assert.equal(view.byteLength, 0, "detached at once");
  assert.throws(() => buf.bytes, /freed/);
  assert.throws(() => buf.pin(), /freed/);
  assert.ok(isMapped(address), "still mapped while pinned (the kernel may be using it)");
  buf.unpin();
  assert.ok(isMapped(address), "still mapped with one pin left");
  buf.unpin();
  assert.equal(isMapped(address), false, "unmapped at the last unpin");
  assert.throws(() => buf.unpin(), /without a matching pin/);
});

Deno.test("alignedBuffer: unpin() of a live buffer keeps it mapped", () => {
  using buf = alignedBuffer(4096);
  buf.pin();
  buf.unpin();
  assert.equal(buf.pins, 0);
  assert.ok(isMapped(buf.address));
  assert.throws(() => buf.unpin(), RangeError);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test({
  name: "alignedBuffer: freed while a Uring read into it is in flight, it stays mapped until the completion",
  ignore: skipKernel(),
  fn: async () => {
    await using uring = new Uring();
    const [r, w] = pipe();
    try {
      const buf = alignedBuffer(4096);
      const address = buf.address;
      const read = uring.read(r, buf.bytes.subarray(0, 8), 0);
      await sleep(10); // in the kernel, waiting for data
      assert.equal(buf.pins, 1, "the operation holds the memory");
      buf.free();
      assert.equal(buf.freed, true);
      assert.ok(isMapped(address), "still mapped: the kernel holds its address");
      const other = alignedBuffer(4096); // cannot land on the still-mapped pages
      assert.notEqual(other.address, address);
      assert.equal(await uring.write(w, new TextEncoder().encode("late"), 0), 4);
      await assert.rejects(read, /^TypeError: read: an AlignedBuffer was freed while the operation ran/);
      assert.equal(isMapped(address), false, "unmapped once the completion came");
      assert.ok(other.bytes.every((b) => b === 0));
      other.free();
      // A write from one freed meanwhile: the kernel read the caller's bytes (still mapped), so
      // its count stands (it rejected as if it had done nothing, though the data went out).
      const out = alignedBuffer(4096);
      out.bytes.set(new TextEncoder().encode("written"));
      const full = new Uint8Array(65536);
      let queued = 0;
      for (
        let n;
        (n = await uring.write(w, full, 0, { signal: AbortSignal.timeout(50) }).catch(() => 0)) > 0;
      ) queued += n;
      const write = uring.write(w, out.bytes.subarray(0, 7), 0); // waits: the pipe is full
      await sleep(10);
      out.free();
      const drained = new Uint8Array(queued + 7);
      let got = 0;
      while (got < drained.length) got += await uring.read(r, drained.subarray(got), 0);
      assert.equal(await write, 7);
      assert.equal(new TextDecoder().decode(drained.subarray(queued)), "written");
    } finally {
      await uring.close(r);
      await uring.close(w);
    }
  },
});

Deno.test({
  name:
    "alignedBuffer: a FixedBufferPool closed under a plain read into its memory stays mapped until the completion",
  ignore: skipKernel(),
  fn: async () => {
    await using uring = new Uring();
    const [r, w] = pipe();
    try {
      const pool = uring.registerBufferPool({ count: 2, size: 4096 });
      const first = pool.buffer(0).bytes;
      // Across the end of buffer 0 into buffer 1: not inside one registered buffer, so a plain READ.
      const span = new Uint8Array(first.buffer, first.byteOffset + 4096 - 8, 32);
      const address = addressOf(span);
      const read = uring.read(r, span, 0);
      await sleep(10);
      pool.close();
      assert.equal(span.byteLength, 0, "the pool's views are detached at once");
      assert.ok(isMapped(address), "the pool's memory stays mapped while the read is in flight");
      assert.equal(await uring.write(w, new TextEncoder().encode("late"), 0), 4);
      await assert.rejects(read, /an AlignedBuffer was freed while the operation ran/);
      assert.equal(isMapped(address), false);
    } finally {
      await uring.close(r);
      await uring.close(w);
    }
  },
});

// The FinalizationRegistry needs a collectable heap: run it in a child with --expose-gc.
const FINALIZER_SCRIPT = `
import { alignedBuffer } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const gc = globalThis.gc;
const libc = Deno.dlopen("libc.so.6", { mincore: { parameters: ["pointer", "usize", "buffer"], result: "i32" } });
const vec = new Uint8Array(1);
const mapped = (a) => libc.symbols.mincore(Deno.UnsafePointer.create(BigInt(a - (a % 4096))), 4096n, vec) === 0;
const settle = async () => { for (let i = 0; i < 6; i++) { gc(); await new Promise((r) => setTimeout(r, 20)); } };

// 1. Dropped without free(): the registry unmaps it. Each is filled with a marker first: once
// unmapped, the address may be mapped again by something else of the process (V8's heap), so a
// leak is an address that is mapped and still holds the marker.
const MARK = 0xa5;
const dropped = [];
(() => {
  for (let i = 0; i < 8; i++) {
    const b = alignedBuffer(65536);
    b.bytes.fill(MARK);
    dropped.push(b.address);
  }
})();
await settle();
const stillMarked = (a) => {
  const view = new Deno.UnsafePointerView(Deno.UnsafePointer.create(BigInt(a)));
  for (const at of [0, 4096, 65535]) if (view.getUint8(at) !== MARK) return false;
  return true;
};
const leaked = dropped.filter((a) => mapped(a) && stillMarked(a)).length;

// 2. Freed explicitly, then dropped: no second munmap. A new buffer often lands at the same
// address; if the finalizer unmapped it again, touching it below would crash this process.
let reused = 0;
const live = [];
for (let i = 0; i < 16; i++) {
  const address = (() => { const b = alignedBuffer(65536); const a = b.address; b.free(); return a; })();
  const next = alignedBuffer(65536);
  if (next.address === address) reused++;
  live.push(next);
}
await settle();
let stillMapped = 0;
for (const b of live) { b.bytes.fill(1); if (mapped(b.address) && b.bytes[65535] === 1) stillMapped++; }

// 3. A view that outlives its AlignedBuffer keeps the memory mapped.
const view = (() => alignedBuffer(65536).bytes)();
// 4. Pinned (the kernel may still write into it), then dropped: it stays mapped.
const pinned = (() => alignedBuffer(65536).pin().address)();
await settle();
view.fill(2);
console.log(JSON.stringify({ leaked, reused, stillMapped, viewOk: view[65535] === 2, pinnedMapped: mapped(pinned) }));
`;

Deno.test("alignedBuffer: the finalizer unmaps dropped buffers, never frees twice, spares live views and pins", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "uring-aligned-" });
  try {
    const script = `${dir}/finalizer.mjs`;
    Deno.writeTextFileSync(script, FINALIZER_SCRIPT);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--v8-flags=--expose-gc",
        "--allow-ffi",
        "--allow-read",
        "--allow-env",
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `child failed (code ${out.code}, signal ${out.signal}): ${stderr}`);
    const result = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
    assert.equal(result.leaked, 0, "every dropped buffer was unmapped by the finalizer");
    assert.equal(result.stillMapped, 16, "explicitly freed buffers were not unmapped a second time");
    assert.equal(result.viewOk, true);
    assert.equal(result.pinnedMapped, true, "a pinned buffer is never unmapped by the finalizer");
    if (result.reused === 0) console.log("note: no address was reused, so the double-free check was weak");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "IoUring.registerBuffers holds aligned memory mapped while registered, and refuses resizable buffers",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(4, { sqpoll: false });
    // free() of a registered buffer unmapped it: the next alignedBuffer landed at the same address,
    // and WRITE_FIXED / READ_FIXED moved the old pages' bytes, not the new buffer's, reporting success.
    const first = alignedBuffer(4096);
    const address = first.address;
    ring.registerBuffers([first.bytes]);
    first.free();
    assert.ok(isMapped(address), "still registered: still mapped");
    ring.unregisterBuffers();
    assert.ok(!isMapped(address), "unregistered: unmapped, as free() asked");
    // Registered until close(): close lets go too.
    const second = alignedBuffer(4096);
    const secondAddress = second.address;
    const ring2 = new IoUring(4, { sqpoll: false });
    ring2.registerBuffers([second.bytes]);
    second.free();
    assert.ok(isMapped(secondAddress));
    ring2.close();
    assert.ok(!isMapped(secondAddress));
    // A resizable ArrayBuffer shrunk and grown again got new pages; the kernel kept the old ones.
    const resizable = new ArrayBuffer(8192, { maxByteLength: 16384 });
    assert.throws(
      () => ring.registerBuffers([new Uint8Array(resizable)]),
      /^RangeError: buffers\[0\] is a view of a resizable ArrayBuffer/,
    );
    assert.equal(ring.registeredBuffers, undefined);
    // A growable SharedArrayBuffer only grows in place: it may be registered.
    const growable = new SharedArrayBuffer(4096, { maxByteLength: 8192 });
    ring.registerBuffers([new Uint8Array(growable)]);
    ring.unregisterBuffers();
  },
});

Deno.test({
  name:
    "IoUring.registerBuffersUpdate holds the aligned memory it takes out of the table until the table goes",
  ignore: skipKernel(),
  fn() {
    // A request in flight may still use the buffer an update replaced, and nothing says when it is
    // done: free() of it must not unmap it before the table (or the ring) goes.
    using ring = new IoUring(4, { sqpoll: false });
    const first = alignedBuffer(4096), second = alignedBuffer(4096);
    const firstAddress = first.address, secondAddress = second.address;
    ring.registerBuffers([first.bytes]);
    ring.registerBuffersUpdate(0, [second.bytes]);
    first.free();
    second.free();
    assert.ok(isMapped(firstAddress), "taken out by the update: still mapped");
    assert.ok(isMapped(secondAddress), "registered: still mapped");
    ring.unregisterBuffers();
    assert.ok(!isMapped(firstAddress) && !isMapped(secondAddress), "unregistered: unmapped, as free() asked");
    // Emptied by an update, then the ring closed: close lets go too.
    const third = alignedBuffer(4096);
    const thirdAddress = third.address;
    const ring2 = new IoUring(4, { sqpoll: false });
    ring2.registerBuffersSparse(2);
    ring2.registerBuffersUpdate(1, [third.bytes]);
    ring2.registerBuffersUpdate(1, [null]);
    third.free();
    assert.ok(isMapped(thirdAddress));
    ring2.close();
    assert.ok(!isMapped(thirdAddress));
  },
});

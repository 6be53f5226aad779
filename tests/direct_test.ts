import assert from "node:assert/strict";
import {
  alignedBuffer,
  AlignmentError,
  AT_FDCWD,
  checkDirectAlignment,
  cstring,
  DEFAULT_DIRECT_ALIGNMENT,
  directAlignment,
  directAlignmentFromStatx,
  directMisalignment,
  IoUring,
  IoUringError,
  O_CREAT,
  O_DIRECT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  prepOpenat,
  prepRead,
  prepWrite,
  type Sqe,
  type Statx,
  STATX_DIOALIGN,
} from "../mod.ts";
import { assertErr, closeFd, describe, openFile, pattern, run } from "./_io.ts";
import { directTempDir, skipDirect } from "./_direct.ts";
import { residency, skipPageCache } from "./_pagecache.ts";
import { CONFIGS, skipKernel } from "./_support.ts";

/** Registers one test per ring configuration, skipped when O_DIRECT is unusable here. */
function directTest(name: string, fn: (options: (typeof CONFIGS)[number]["options"]) => void): void {
  for (const config of CONFIGS) {
    Deno.test({ name: `${name} [${config.name}]`, ignore: skipDirect(), fn: () => fn(config.options) });
  }
}

/** openat(AT_FDCWD, path, flags). */
function prepOpenAt(sqe: Sqe, path: string, flags: number): Sqe {
  return prepOpenat(sqe, AT_FDCWD, cstring(path), flags, 0o644);
}

// ---------------------------------------------------------------------------------------------
// Alignment checks (no kernel needed)

Deno.test("checkDirectAlignment: aligned address, length and offset pass (number and bigint offsets)", () => {
  using buf = alignedBuffer(3 * 4096);
  for (const offset of [0, 4096, 2 ** 40, 0n, 8192n, 2n ** 62n]) {
    checkDirectAlignment(buf.bytes, offset);
    checkDirectAlignment(buf, offset);
    assert.equal(directMisalignment(buf.bytes, offset), undefined);
  }
  checkDirectAlignment(buf.bytes.subarray(4096, 8192), 4096);
  checkDirectAlignment(buf.bytes.subarray(0, 0), 4096); // moves no data: only the offset counts
  // directAlignment's null (no O_DIRECT for this file) is refused in so many words.
  assert.throws(
    () => checkDirectAlignment(buf, 0, null),
    new TypeError(
      "the file does not support O_DIRECT (its statx reports no direct I/O alignment)",
    ),
  );
});

Deno.test("checkDirectAlignment: each misaligned part gives an AlignmentError naming the alignment", () => {
  using buf = alignedBuffer(3 * 4096);
  const cases: Array<[Uint8Array, number | bigint, string, RegExp]> = [
    [buf.bytes.subarray(1, 4097), 0, "address", /buffer address to be a multiple of 4096 bytes.*\(1 past/],
    [buf.bytes.subarray(512, 4608), 0, "address", /buffer address to be a multiple of 4096 bytes/],
    [buf.bytes.subarray(0, 4095), 0, "length", /buffer length to be a multiple of 4096 bytes, got 4095/],
    [buf.bytes.subarray(0, 4096), 512, "offset", /file offset to be a multiple of 4096 bytes, got 512/],
    [buf.bytes.subarray(0, 4096), 2n ** 40n + 1n, "offset", /got 1099511627777 \(1 past a boundary\)/],
  ];
  for (const [view, offset, part, message] of cases) {
    assert.equal(directMisalignment(view, offset), part);
    assert.throws(() => checkDirectAlignment(view, offset), (e: unknown) => {
      assert.ok(e instanceof AlignmentError && e instanceof RangeError);
      assert.equal(e.part, part);
      assert.equal(e.alignment, 4096);
      assert.match(e.message, message);
      return true;
    });
  }
  // A heap Uint8Array is almost never page-aligned.
  const heap = new Uint8Array(8192 + 1).subarray(1, 4097);
  assert.throws(() => checkDirectAlignment(heap, 0), /buffer address/);
});

Deno.test("checkDirectAlignment: separate memory and offset alignments (statx's DirectAlignment)", () => {
  using buf = alignedBuffer(8192);
  const a = { memory: 512, offset: 1024, source: "statx" } as const;
  checkDirectAlignment(buf.bytes.subarray(512, 512 + 1024), 1024, a); // address 512-aligned: ok
  assert.throws(
    () => checkDirectAlignment(buf.bytes.subarray(256, 256 + 1024), 0, a),
    /multiple of 512 bytes/,
  );
  assert.throws(
    () => checkDirectAlignment(buf.bytes.subarray(0, 512), 0, a),
    /length.*multiple of 1024 bytes/,
  );
  assert.throws(() => checkDirectAlignment(buf.bytes.subarray(0, 1024), 512, a), /offset.*multiple of 1024/);
  assert.throws(() => checkDirectAlignment(buf.bytes, 0, 3), /power of two/);
  assert.throws(
    () => checkDirectAlignment(buf.bytes, 0, { memory: 0, offset: 512, source: "statx" }),
    /power/,
  );
  assert.throws(() => checkDirectAlignment(buf.bytes, -1), RangeError);
  assert.throws(() => checkDirectAlignment("x" as unknown as Uint8Array, 0), TypeError);
});

Deno.test("directAlignmentFromStatx: kernel values, the 4096 default, and null for no O_DIRECT", () => {
  const base = { mask: 0, dioMemAlign: 0, dioOffsetAlign: 0 } as Statx;
  assert.deepEqual(directAlignmentFromStatx(base), {
    memory: DEFAULT_DIRECT_ALIGNMENT,
    offset: DEFAULT_DIRECT_ALIGNMENT,
    source: "default",
  });
  assert.equal(DEFAULT_DIRECT_ALIGNMENT, 4096);
  assert.equal(directAlignmentFromStatx({ ...base, mask: STATX_DIOALIGN }), null);
  assert.deepEqual(
    directAlignmentFromStatx({ ...base, mask: STATX_DIOALIGN, dioMemAlign: 4, dioOffsetAlign: 512 }),
    { memory: 4, offset: 512, source: "statx" },
  );
});

Deno.test("O_DIRECT, O_DIRECTORY, O_NOFOLLOW carry this architecture's values", () => {
  const aarch64 = Deno.build.arch === "aarch64";
  assert.equal(O_DIRECT, aarch64 ? 0o200000 : 0o40000);
  assert.equal(O_DIRECTORY, aarch64 ? 0o40000 : 0o200000);
  assert.equal(O_NOFOLLOW, aarch64 ? 0o100000 : 0o400000);
});

// ---------------------------------------------------------------------------------------------
// Through the kernel

Deno.test({
  name: "open flags: the kernel honours O_DIRECT, O_DIRECTORY and O_NOFOLLOW as defined for this arch",
  ignore: skipDirect(),
  fn() {
    using dir = directTempDir();
    using ring = new IoUring(4, { sqpoll: false });
    const file = `${dir.path}/f`;
    Deno.writeFileSync(file, pattern(8192));
    Deno.symlinkSync(file, `${dir.path}/link`);
    // O_DIRECTORY on a regular file: ENOTDIR. O_NOFOLLOW on a symlink: ELOOP.
    assertErr(run(ring, (s) => prepOpenAt(s, file, O_RDONLY | O_DIRECTORY)), "ENOTDIR", "O_DIRECTORY");
    assertErr(
      run(ring, (s) => prepOpenAt(s, `${dir.path}/link`, O_RDONLY | O_NOFOLLOW)),
      "ELOOP",
      "O_NOFOLLOW",
    );
    // O_DIRECT: a misaligned read fails with EINVAL, which a buffered fd would serve.
    const direct = openFile(ring, file, O_RDONLY | O_DIRECT);
    const buffered = openFile(ring, file, O_RDONLY);
    const heap = new Uint8Array(100);
    assertErr(run(ring, (s) => prepRead(s, direct, heap, 1)), "EINVAL", "misaligned O_DIRECT read");
    assert.equal(run(ring, (s) => prepRead(s, buffered, heap, 1)), 100);
    closeFd(ring, direct);
    closeFd(ring, buffered);
  },
});

Deno.test({
  name: "directAlignment: statx STATX_DIOALIGN for a path and an fd, errors name the file",
  ignore: skipDirect(),
  fn() {
    using dir = directTempDir();
    const file = `${dir.path}/f`;
    Deno.writeFileSync(file, pattern(4096));
    const a = directAlignment(file);
    assert.ok(a !== null, "this file system supports O_DIRECT (the probe said so)");
    for (const n of [a.memory, a.offset]) assert.ok(n > 0 && (n & (n - 1)) === 0, `power of two: ${n}`);
    assert.ok(a.source === "statx" || a.source === "default");
    if (a.source === "default") {
      console.log("note: this kernel or file system does not report STATX_DIOALIGN");
    }
    using ring = new IoUring(2, { sqpoll: false });
    const fd = openFile(ring, file, O_RDONLY);
    assert.deepEqual(directAlignment(fd), a);
    closeFd(ring, fd);
    assert.throws(() => directAlignment(`${dir.path}/missing`), (e: unknown) => {
      assert.ok(e instanceof IoUringError);
      assert.equal(e.code, "ENOENT");
      assert.match(e.message, /statx failed: ENOENT.*missing/);
      return true;
    });
  },
});

Deno.test({
  name:
    "checkDirectAlignment mirrors the kernel: what it rejects at the file's alignment, the kernel EINVALs",
  ignore: skipDirect(),
  fn() {
    using dir = directTempDir();
    const file = `${dir.path}/f`;
    Deno.writeFileSync(file, pattern(4 * 4096));
    const a = directAlignment(file)!;
    if (a.source !== "statx") {
      console.log("SKIP kernel cross-check: no STATX_DIOALIGN here, so the kernel's alignment is unknown");
      return;
    }
    using ring = new IoUring(4, { sqpoll: false });
    const fd = openFile(ring, file, O_RDONLY | O_DIRECT);
    using buf = alignedBuffer(4 * 4096);
    const block = Math.max(a.offset, a.memory);
    const good = buf.bytes.subarray(block, 2 * block);
    checkDirectAlignment(good, block, a);
    assert.equal(
      run(ring, (s) => prepRead(s, fd, good, block)),
      block,
      "aligned at the file's own alignment",
    );
    assert.deepEqual(good, pattern(4 * 4096).subarray(block, 2 * block));
    const bad: Array<[string, Uint8Array, number]> = [];
    // (A one-sector request may pass the kernel at any address: 6.18 checks memory alignment per
    // segment. statx's stx_dio_mem_align is the contract; a multi-page request shows it.)
    const span = Math.max(4096, 2 * block);
    if (a.memory > 1) bad.push(["address", buf.bytes.subarray(a.memory / 2, a.memory / 2 + span), 0]);
    if (a.offset > 1) {
      bad.push(["length", buf.bytes.subarray(0, block + a.offset / 2), 0]);
      bad.push(["offset", buf.bytes.subarray(0, block), a.offset / 2]);
    }
    for (const [part, view, offset] of bad) {
      assert.throws(() => checkDirectAlignment(view, offset, a), (e: unknown) => {
        assert.ok(e instanceof AlignmentError);
        assert.equal(e.part, part);
        assert.equal(e.alignment, part === "address" ? a.memory : a.offset);
        return true;
      });
      // Submitted anyway (bypassing the check), the kernel refuses the same request.
      assertErr(run(ring, (s) => prepRead(s, fd, view, offset)), "EINVAL", `misaligned ${part}`);
    }
    closeFd(ring, fd);
  },
});

directTest("O_DIRECT reads through the ring at aligned offsets match Deno's reads", (options) => {
  using dir = directTempDir();
  const file = `${dir.path}/f`;
  const size = 5 * 4096 + 100; // the last block is short
  const data = pattern(size, 3);
  Deno.writeFileSync(file, data);
  using ring = new IoUring(8, options);
  const fd = openFile(ring, file, O_RDONLY | O_DIRECT);
  using buf = alignedBuffer(3 * 4096);
  const deno = Deno.readFileSync(file);
  for (const [offset, length] of [[0, 4096], [4096, 8192], [2 * 4096, 3 * 4096], [4 * 4096, 4096]]) {
    const view = buf.bytes.subarray(0, length);
    checkDirectAlignment(view, offset);
    const res = run(ring, (s) => prepRead(s, fd, view, offset));
    const expected = Math.min(length, size - offset);
    assert.equal(res, expected, `read ${length} at ${offset}: ${describe(res)}`);
    assert.deepEqual(view.subarray(0, res), deno.subarray(offset, offset + res));
  }
  // At EOF: 0 bytes.
  assert.equal(run(ring, (s) => prepRead(s, fd, buf.bytes.subarray(0, 4096), 8 * 4096)), 0);
  closeFd(ring, fd);
});

directTest(
  "O_DIRECT writes through the ring at aligned offsets read back identically with Deno",
  (options) => {
    using dir = directTempDir();
    const file = `${dir.path}/f`;
    using ring = new IoUring(8, options);
    const fd = openFile(ring, file, O_WRONLY | O_CREAT | O_DIRECT);
    const expected = new Uint8Array(20 * 4096);
    using buf = alignedBuffer(16 * 4096);
    let end = 0;
    for (const [offset, length, seed] of [[0, 4096, 1], [3 * 4096, 8192, 2], [4 * 4096, 16 * 4096, 3]]) {
      const view = buf.bytes.subarray(0, length);
      view.set(pattern(length, seed));
      checkDirectAlignment(view, offset);
      assert.equal(run(ring, (s) => prepWrite(s, fd, view, offset)), length);
      expected.set(view, offset);
      end = Math.max(end, offset + length);
    }
    closeFd(ring, fd);
    const got = Deno.readFileSync(file);
    assert.equal(got.byteLength, end);
    assert.deepEqual(got, expected.subarray(0, end)); // the hole at 4096..12287 reads as zeros
  },
);

directTest("O_DIRECT round trip: write and read the same blocks through one O_RDWR fd", (options) => {
  using dir = directTempDir();
  const file = `${dir.path}/f`;
  using ring = new IoUring(8, options);
  const fd = openFile(ring, file, O_RDWR | O_CREAT | O_DIRECT);
  using out = alignedBuffer(8 * 4096);
  using back = alignedBuffer(8 * 4096);
  out.bytes.set(pattern(8 * 4096, 9));
  assert.equal(run(ring, (s) => prepWrite(s, fd, out.bytes, 4096)), 8 * 4096);
  assert.equal(run(ring, (s) => prepRead(s, fd, back.bytes, 4096)), 8 * 4096);
  assert.deepEqual(back.bytes, out.bytes);
  closeFd(ring, fd);
  assert.deepEqual(Deno.readFileSync(file).subarray(4096), out.bytes);
});

// ---------------------------------------------------------------------------------------------
// Page cache (fincore)

Deno.test({
  name: "page cache: a file written with O_DIRECT has no resident pages; after Deno.readFile, all of them",
  ignore: skipKernel() || skipDirect() || skipPageCache(),
  fn() {
    using dir = directTempDir();
    const file = `${dir.path}/f`;
    const size = 1024 * 1024;
    using ring = new IoUring(4, { sqpoll: false });
    const fd = openFile(ring, file, O_WRONLY | O_CREAT | O_DIRECT);
    using buf = alignedBuffer(256 * 1024);
    for (let offset = 0; offset < size; offset += buf.size) {
      buf.bytes.set(pattern(buf.size, offset / buf.size));
      assert.equal(run(ring, (s) => prepWrite(s, fd, buf.bytes, offset)), buf.size);
    }
    closeFd(ring, fd);
    const before = residency(file);
    assert.equal(before.size, size);
    assert.equal(before.pages, 0, `O_DIRECT left ${before.pages} pages of the file in the page cache`);
    assert.equal(Deno.readFileSync(file).byteLength, size);
    const after = residency(file);
    assert.equal(after.pages, size / 4096, "a buffered read caches every page");
    assert.equal(after.bytes, size);
  },
});

/**
 * Kernel-free tests of the prep helpers: every field each helper writes, byte for byte.
 *
 * The expected 64-byte images are built here, independently of src/abi.ts, from the layout of
 * `struct io_uring_sqe` in the kernel's include/uapi/linux/io_uring.h (offsets and opcode numbers
 * are literals below), and compared with what the helper wrote into an Sqe over a plain buffer.
 */

import assert from "node:assert/strict";
import {
  AT_FDCWD,
  cstring,
  IOSQE_ASYNC,
  IOSQE_BUFFER_SELECT,
  IOSQE_CQE_SKIP_SUCCESS,
  IOSQE_FIXED_FILE,
  IOSQE_IO_DRAIN,
  IOSQE_IO_HARDLINK,
  IOSQE_IO_LINK,
  Iovecs,
  openHow,
  prepCancel,
  prepCancelFd,
  prepCancelOp,
  prepClose,
  prepCloseDirect,
  prepFadvise,
  prepFallocate,
  prepFdatasync,
  prepFilesUpdate,
  prepFsync,
  prepFtruncate,
  prepLinkat,
  prepLinkTimeout,
  prepMadvise,
  prepMkdirat,
  prepNop,
  prepOpenat,
  prepOpenat2,
  prepOpenatDirect,
  prepPollAdd,
  prepPollMultishot,
  prepPollRemove,
  prepRead,
  prepReadFixed,
  prepReadv,
  prepRenameat,
  prepRw,
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
  type Sqe,
  statxBuffer,
  Timespec,
} from "../mod.ts";
import { assertSqe, dirtySqe, freshSqe, hex, ptr } from "./_sqe_image.ts";

// --- The kernel ABI, written out independently ----------------------------------------------

/** Opcode numbers from `enum io_uring_op` (include/uapi/linux/io_uring.h). */
const OP = {
  NOP: 0,
  READV: 1,
  WRITEV: 2,
  FSYNC: 3,
  READ_FIXED: 4,
  WRITE_FIXED: 5,
  POLL_ADD: 6,
  POLL_REMOVE: 7,
  SYNC_FILE_RANGE: 8,
  TIMEOUT: 11,
  TIMEOUT_REMOVE: 12,
  ASYNC_CANCEL: 14,
  LINK_TIMEOUT: 15,
  FALLOCATE: 17,
  OPENAT: 18,
  CLOSE: 19,
  FILES_UPDATE: 20,
  STATX: 21,
  READ: 22,
  WRITE: 23,
  FADVISE: 24,
  MADVISE: 25,
  OPENAT2: 28,
  SPLICE: 30,
  TEE: 33,
  RENAMEAT: 35,
  UNLINKAT: 36,
  MKDIRAT: 37,
  SYMLINKAT: 38,
  LINKAT: 39,
  FTRUNCATE: 55,
} as const;

// --- Struct layout of the handles ------------------------------------------------------------

Deno.test("Sqe: slot, base word and bytes() cover exactly the slot's 64 bytes", () => {
  const sqe = freshSqe();
  assert.equal(sqe.slot, 2);
  assert.equal(sqe.base, 2 * 16);
  sqe.u8.fill(0xab, 128, 192);
  assert.equal(sqe.bytes().length, 64);
  assert.ok(sqe.bytes().every((b) => b === 0xab));
  sqe.clear();
  assert.ok(sqe.u8.every((b) => b === 0));
});

Deno.test("Sqe: user_data, flags, ioprio and personality land at their kernel offsets", () => {
  const sqe = freshSqe();
  sqe.setUserData(0x0123_4567_89ab_cdefn).setFlags(IOSQE_IO_LINK).addFlags(IOSQE_ASYNC);
  sqe.setIoprio(0xbeef).setPersonality(0x1234);
  assertSqe(sqe, {
    opcode: 0,
    flags: 0x04 | 0x10,
    ioprio: 0xbeef,
    userData: 0x0123_4567_89ab_cdefn,
    personality: 0x1234,
  });
  assert.equal(sqe.userData, 0x0123_4567_89ab_cdefn);
  assert.equal(sqe.flags, 0x14);
  // The number path: exact up to 2^53-1, high word included.
  sqe.setUserData(Number.MAX_SAFE_INTEGER);
  assert.equal(sqe.userData, 2n ** 53n - 1n);
  sqe.setUserData(2n ** 64n - 1n);
  assert.equal(sqe.userData, 2n ** 64n - 1n);
  sqe.setUserData(0);
  assert.equal(sqe.userData, 0n);
});

Deno.test("IOSQE_* flags have the kernel's bit values", () => {
  assert.equal(IOSQE_FIXED_FILE, 1);
  assert.equal(IOSQE_IO_DRAIN, 2);
  assert.equal(IOSQE_IO_LINK, 4);
  assert.equal(IOSQE_IO_HARDLINK, 8);
  assert.equal(IOSQE_ASYNC, 16);
  assert.equal(IOSQE_CQE_SKIP_SUCCESS, 64);
});

// --- Every prep helper, byte for byte ---------------------------------------------------------

const buf = new Uint8Array(4096);
const sub = buf.subarray(512, 1536); // a view with a byteOffset
const BIG = 0x1_2345_6789n; // an offset above 2^32

Deno.test("prepNop", () => {
  const sqe = freshSqe();
  prepNop(sqe);
  assertSqe(sqe, { opcode: OP.NOP, fd: -1 });
});

/** What the tests below set before a prep, which every prep keeps. */
const KEPT = { flags: IOSQE_IO_LINK, ioprio: 0x0102, userData: 77n, personality: 9 };

Deno.test("prepNop on a fresh SQE (its one-store path) keeps what was set before it, and a second one changes nothing", () => {
  const sqe = freshSqe();
  sqe.setFlags(IOSQE_IO_LINK).setIoprio(0x0102).setPersonality(9).setUserData(77);
  prepNop(sqe);
  const want = { opcode: OP.NOP, fd: -1, ...KEPT };
  assertSqe(sqe, want);
  prepNop(sqe);
  assertSqe(sqe, want);
  // Over an earlier prep it takes the full path: nothing of the earlier op is left.
  prepRead(sqe, 7, sub, 4096, 0x10);
  prepNop(sqe);
  assertSqe(sqe, want);
});

Deno.test("prepRead / prepWrite: fd, addr, len, off, rw_flags; number and bigint offsets", () => {
  let sqe = freshSqe();
  prepRead(sqe, 7, sub, 4096);
  assertSqe(sqe, { opcode: OP.READ, fd: 7, addr: ptr(sub), len: 1024, off: 4096n });
  sqe = freshSqe();
  prepRead(sqe, 7, buf, Number(BIG), 0x10); // RWF_NOWAIT-ish flag value: the helper passes it on
  assertSqe(sqe, { opcode: OP.READ, fd: 7, addr: ptr(buf), len: 4096, off: BIG, opFlags: 0x10 });
  sqe = freshSqe();
  prepWrite(sqe, 3, sub, BIG);
  assertSqe(sqe, { opcode: OP.WRITE, fd: 3, addr: ptr(sub), len: 1024, off: BIG });
  sqe = freshSqe();
  prepWrite(sqe, 3, sub, 2n ** 63n - 1n, 4);
  assertSqe(sqe, { opcode: OP.WRITE, fd: 3, addr: ptr(sub), len: 1024, off: 2n ** 63n - 1n, opFlags: 4 });
  // A DataView and a Float64Array work too: bytes, not elements.
  const f64 = new Float64Array(16);
  sqe = freshSqe();
  prepRead(sqe, 1, f64, 0);
  assertSqe(sqe, { opcode: OP.READ, fd: 1, addr: ptr(f64), len: 128 });
});

Deno.test("every flags, mode, mask and advice argument must be a 32-bit integer; nothing is written when refused", () => {
  const path = cstring("p"), path2 = cstring("q");
  const ts = new Timespec(5);
  const iov = new Iovecs([buf]);
  const sb = statxBuffer();
  // [helper, argument, prep with that argument; u32 words also take bit 31 as a negative int32]
  const u32: Array<[string, string, (s: Sqe, v: number) => Sqe]> = [
    ["prepRead", "rwFlags", (s, v) => prepRead(s, 1, buf, 0, v)],
    ["prepWrite", "rwFlags", (s, v) => prepWrite(s, 1, buf, 0, v)],
    ["prepReadv", "rwFlags", (s, v) => prepReadv(s, 1, iov, 0, v)],
    ["prepWritev", "rwFlags", (s, v) => prepWritev(s, 1, iov, 0, v)],
    ["prepFallocate", "mode", (s, v) => prepFallocate(s, 1, v, 0, 10)],
    ["prepMadvise", "advice", (s, v) => prepMadvise(s, buf, v)],
    ["prepOpenat", "flags", (s, v) => prepOpenat(s, AT_FDCWD, path, v)],
    ["prepOpenat", "mode", (s, v) => prepOpenat(s, AT_FDCWD, path, 0, v)],
    ["prepOpenatDirect", "flags", (s, v) => prepOpenatDirect(s, AT_FDCWD, path, v, 0, 1)],
    ["prepMkdirat", "mode", (s, v) => prepMkdirat(s, AT_FDCWD, path, v)],
  ];
  // These know their bits too (see the cancel test): a u32 of unknown bits is refused as well.
  const knownBits: typeof u32 = [
    ["prepTimeoutRemove", "flags", (s, v) => prepTimeoutRemove(s, 3, v)],
    ["prepCancel", "flags", (s, v) => prepCancel(s, 3, v)],
    ["prepCancelFd", "flags", (s, v) => prepCancelFd(s, 3, v)],
    ["prepCancelOp", "flags", (s, v) => prepCancelOp(s, 3, v)],
    ["prepFsync", "fsyncFlags", (s, v) => prepFsync(s, 1, v)],
    ["prepTimeout", "flags", (s, v) => prepTimeout(s, ts, 0, v)],
    ["prepLinkTimeout", "flags", (s, v) => prepLinkTimeout(s, ts, v)],
    // (Reached the kernel, which refuses other bits whatever the file: a probe's EINVALs.)
    ["prepSyncFileRange", "flags", (s, v) => prepSyncFileRange(s, 1, 10, 0, v)],
    ["prepFadvise", "advice", (s, v) => prepFadvise(s, 1, 0, 10, v)],
    ["prepStatx", "flags", (s, v) => prepStatx(s, AT_FDCWD, path, v, 0x7ff, sb)],
    ["prepStatx", "mask", (s, v) => prepStatx(s, AT_FDCWD, path, 0, v, sb)],
    ["prepUnlinkat", "flags", (s, v) => prepUnlinkat(s, AT_FDCWD, path, v)],
    ["prepRenameat", "flags", (s, v) => prepRenameat(s, AT_FDCWD, path, AT_FDCWD, path2, v)],
    ["prepLinkat", "flags", (s, v) => prepLinkat(s, AT_FDCWD, path, AT_FDCWD, path2, v)],
  ];
  // Splice and tee know their bits, bit 31 (SPLICE_F_FD_IN_FIXED) among them.
  const spliceBits: typeof u32 = [
    ["prepSplice", "flags", (s, v) => prepSplice(s, 1, -1, 2, -1, 10, v)],
    ["prepTee", "flags", (s, v) => prepTee(s, 1, 2, 10, v)],
  ];
  const bits32: typeof u32 = [
    ["prepPollAdd", "mask", (s, v) => prepPollAdd(s, 1, v)],
    ["prepPollMultishot", "mask", (s, v) => prepPollMultishot(s, 1, v)],
  ];
  const refuse = (name: string, arg: string, prep: (s: Sqe, v: number) => Sqe, bad: unknown[]) => {
    for (const v of bad) {
      const sqe = freshSqe();
      // A TypeError for what is not a number at all, a RangeError for the wrong number.
      const type = typeof v === "number" ? RangeError : TypeError;
      assert.throws(
        () => prep(sqe, v as number),
        (e: Error) => e instanceof type && e.message.startsWith(`${arg} must be `),
        `${name} ${arg} ${String(v)}`,
      );
      assert.ok(sqe.bytes().every((b) => b === 0), `${name} ${arg} ${String(v)}: the SQE was written`);
    }
  };
  for (const [name, arg, prep] of u32) {
    refuse(name, arg, prep, [-1, 1.5, 2 ** 32, NaN, "1", 1n, null]);
    prep(freshSqe(), 0xffffffff); // the whole u32 range passes
  }
  for (const [name, arg, prep] of knownBits) {
    refuse(name, arg, prep, [-1, 1.5, 2 ** 32, NaN, "1", 1n, null, 0xffffffff]);
  }
  for (const [name, arg, prep] of spliceBits) {
    refuse(name, arg, prep, [1.5, 2 ** 32, -(2 ** 31) - 1, NaN, "1", 1n, null, 0xffffffff, 0x10]);
    prep(freshSqe(), 0x80000000 | 1); // SPLICE_F_FD_IN_FIXED | SPLICE_F_MOVE, made with `|`: -2147483647
    prep(freshSqe(), 0x8000000f);
  }
  for (const [name, arg, prep] of bits32) {
    refuse(name, arg, prep, [1.5, 2 ** 32, -(2 ** 31) - 1, NaN, "1", 1n, null]);
    prep(freshSqe(), 0xffffffff);
    prep(freshSqe(), 0x80000000 | 1); // a mask made with `|` from a bit-31 constant: -2147483647
  }
  // The probe's values, each of which reached the kernel (EINVAL), and what passes beside them.
  const strays: Array<[(s: Sqe) => Sqe, (s: Sqe) => Sqe]> = [
    [(s) => prepSplice(s, 1, -1, 2, -1, 10, 0x100), (s) => prepSplice(s, 1, -1, 2, -1, 10, 0xf)],
    [(s) => prepTee(s, 1, 2, 10, 0x100), (s) => prepTee(s, 1, 2, 10, 0x2)],
    [(s) => prepSyncFileRange(s, 1, 10, 0, 0x100), (s) => prepSyncFileRange(s, 1, 10, 0, 0x7)],
    [(s) => prepFadvise(s, 1, 0, 10, 99), (s) => prepFadvise(s, 1, 0, 10, 5)],
    [(s) => prepUnlinkat(s, AT_FDCWD, path, 0x1), (s) => prepUnlinkat(s, AT_FDCWD, path, 0x200)],
    [
      (s) => prepRenameat(s, AT_FDCWD, path, AT_FDCWD, path2, 0x80),
      (s) => prepRenameat(s, AT_FDCWD, path, AT_FDCWD, path2, 0x7),
    ],
    [
      (s) => prepStatx(s, AT_FDCWD, path, 0x80000000, 0x7ff, sb),
      (s) => prepStatx(s, AT_FDCWD, path, 0x3900, 0x7ff, sb),
    ],
    [
      (s) => prepStatx(s, AT_FDCWD, path, 0x6000, 0x7ff, sb),
      (s) => prepStatx(s, AT_FDCWD, path, 0x2000, 0x7fffffff, sb),
    ],
    [
      (s) => prepLinkat(s, AT_FDCWD, path, AT_FDCWD, path2, 0x1),
      (s) => prepLinkat(s, AT_FDCWD, path, AT_FDCWD, path2, 0x1400),
    ],
  ];
  for (const [refused, passes] of strays) {
    const sqe = freshSqe();
    assert.throws(() => refused(sqe), RangeError, String(refused));
    assert.ok(sqe.bytes().every((b) => b === 0), `${refused}: the SQE was written`);
    passes(freshSqe());
  }
  // The read/write helpers store rw_flags (the u32 at byte 28) as given.
  const bytes = prepRead(freshSqe(), 1, buf, 0, 0xffffffff).bytes();
  assert.equal(new DataView(bytes.buffer, bytes.byteOffset).getUint32(28, true), 0xffffffff);
});

Deno.test("prepReadv / prepWritev: addr is the iovec array, len the count", () => {
  const a = new Uint8Array(10), b = new Uint8Array(300);
  const iov = new Iovecs([a, b]);
  // The iovec array itself: { void *iov_base; size_t iov_len } × 2, 16 bytes each.
  const v = new DataView(iov.bytes.buffer, iov.bytes.byteOffset, iov.bytes.byteLength);
  assert.equal(iov.bytes.byteLength, 32);
  assert.equal(v.getBigUint64(0, true), ptr(a));
  assert.equal(v.getBigUint64(8, true), 10n);
  assert.equal(v.getBigUint64(16, true), ptr(b));
  assert.equal(v.getBigUint64(24, true), 300n);
  assert.equal(iov.totalLength, 310);
  let sqe = freshSqe();
  prepReadv(sqe, 5, iov, 8192, 2);
  assertSqe(sqe, { opcode: OP.READV, fd: 5, addr: ptr(iov.bytes), len: 2, off: 8192n, opFlags: 2 });
  sqe = freshSqe();
  prepWritev(sqe, 5, iov, BIG);
  assertSqe(sqe, { opcode: OP.WRITEV, fd: 5, addr: ptr(iov.bytes), len: 2, off: BIG });
});

Deno.test("prepReadFixed / prepWriteFixed: buf_index at byte 40", () => {
  let sqe = freshSqe();
  prepReadFixed(sqe, 9, sub, 100, 3);
  assertSqe(sqe, { opcode: OP.READ_FIXED, fd: 9, addr: ptr(sub), len: 1024, off: 100n, bufIndex: 3 });
  sqe = freshSqe();
  prepWriteFixed(sqe, 9, buf, BIG, 0xffff);
  assertSqe(sqe, { opcode: OP.WRITE_FIXED, fd: 9, addr: ptr(buf), len: 4096, off: BIG, bufIndex: 0xffff });
});

Deno.test("prepFsync / prepFdatasync: fsync_flags", () => {
  let sqe = freshSqe();
  prepFsync(sqe, 4);
  assertSqe(sqe, { opcode: OP.FSYNC, fd: 4 });
  sqe = freshSqe();
  prepFdatasync(sqe, 4);
  assertSqe(sqe, { opcode: OP.FSYNC, fd: 4, opFlags: 1 }); // IORING_FSYNC_DATASYNC
});

Deno.test("prepSyncFileRange: len = length, off = offset, sync_range_flags", () => {
  const sqe = freshSqe();
  prepSyncFileRange(sqe, 4, 65536, BIG, 2);
  assertSqe(sqe, { opcode: OP.SYNC_FILE_RANGE, fd: 4, len: 65536, off: BIG, opFlags: 2 });
});

Deno.test("prepFallocate: mode in len, offset in off, length in addr", () => {
  const sqe = freshSqe();
  prepFallocate(sqe, 6, 3, 4096, BIG);
  assertSqe(sqe, { opcode: OP.FALLOCATE, fd: 6, len: 3, off: 4096n, addr: BIG });
});

Deno.test("prepFadvise: len = length, off = offset, fadvise_advice", () => {
  const sqe = freshSqe();
  prepFadvise(sqe, 6, BIG, 1 << 20, 4);
  assertSqe(sqe, { opcode: OP.FADVISE, fd: 6, off: BIG, len: 1 << 20, opFlags: 4 });
});

Deno.test("prepMadvise: fd -1, addr/len the buffer, advice", () => {
  const sqe = freshSqe();
  prepMadvise(sqe, sub, 3);
  assertSqe(sqe, { opcode: OP.MADVISE, fd: -1, addr: ptr(sub), len: 1024, opFlags: 3 });
});

Deno.test("prepFtruncate: the length travels in off", () => {
  const sqe = freshSqe();
  prepFtruncate(sqe, 8, BIG);
  assertSqe(sqe, { opcode: OP.FTRUNCATE, fd: 8, off: BIG });
});

Deno.test("prepOpenat: dfd, path in addr, mode in len, open_flags", () => {
  const path = cstring("/tmp/x");
  let sqe = freshSqe();
  prepOpenat(sqe, AT_FDCWD, path, 0o101, 0o640);
  assertSqe(sqe, { opcode: OP.OPENAT, fd: -100, addr: ptr(path), len: 0o640, opFlags: 0o101 });
  sqe = freshSqe();
  prepOpenat(sqe, 12, path, 0);
  assertSqe(sqe, { opcode: OP.OPENAT, fd: 12, addr: ptr(path) });
});

Deno.test("prepOpenatDirect: prepOpenat plus file_index + 1 (or ALLOC) at byte 44; a bad slot is refused", () => {
  const path = cstring("/tmp/x");
  const sqe = freshSqe();
  prepOpenatDirect(sqe, AT_FDCWD, path, 0o101, 0o640, 6);
  assertSqe(sqe, { opcode: OP.OPENAT, fd: -100, addr: ptr(path), len: 0o640, opFlags: 0o101, spliceFdIn: 7 });
  assert.throws(() => prepOpenatDirect(freshSqe(), AT_FDCWD, path, 0, 0, -1), RangeError);
  // IORING_FILE_INDEX_ALLOC (any free slot) goes in as it is.
  const alloc = freshSqe();
  prepOpenatDirect(alloc, AT_FDCWD, path, 0, 0, 0xffffffff);
  assert.equal(alloc.u32[alloc.base + 44 / 4], 0xffffffff);
  assert.throws(() => prepOpenatDirect(freshSqe(), AT_FDCWD, path, 0, 0, 0x1_0000_0000), RangeError);
  // Slot 0xfffffffe would be written as 0xffffffff, IORING_FILE_INDEX_ALLOC: "any free slot".
  assert.throws(() => prepOpenatDirect(freshSqe(), AT_FDCWD, path, 0, 0, 0xfffffffe), RangeError);
  sqe.clear();
  prepOpenatDirect(sqe, AT_FDCWD, path, 0, 0, 0xfffffffd);
  assert.equal(sqe.u32[sqe.base + 44 / 4], 0xfffffffe); // file_index, the highest slot + 1
});

Deno.test("prepOpenat2: how pointer in off, its size (24) in len; open_how is flags/mode/resolve u64s", () => {
  const path = cstring("a/b");
  const how = openHow({ flags: 0o2000102, mode: 0o600, resolve: 0x08 }); // O_CLOEXEC | O_CREAT | O_RDWR
  const v = new DataView(how.buffer);
  assert.equal(how.byteLength, 24);
  assert.equal(v.getBigUint64(0, true), 0o2000102n);
  assert.equal(v.getBigUint64(8, true), 0o600n);
  assert.equal(v.getBigUint64(16, true), 0x08n);
  const sqe = freshSqe();
  prepOpenat2(sqe, AT_FDCWD, path, how);
  assertSqe(sqe, { opcode: OP.OPENAT2, fd: -100, addr: ptr(path), len: 24, off: ptr(how) });
});

Deno.test("prepClose / prepCloseDirect: file_index + 1 at byte 44", () => {
  let sqe = freshSqe();
  prepClose(sqe, 17);
  assertSqe(sqe, { opcode: OP.CLOSE, fd: 17 });
  sqe = freshSqe();
  prepCloseDirect(sqe, 4);
  assertSqe(sqe, { opcode: OP.CLOSE, fd: 0, spliceFdIn: 5 });
  assert.throws(() => prepCloseDirect(freshSqe(), 0xfffffffe), RangeError);
});

Deno.test("prepStatx: path in addr, mask in len, statxbuf in off, statx_flags", () => {
  const path = cstring("f");
  const sb = statxBuffer();
  assert.equal(sb.byteLength, 256);
  const sqe = freshSqe();
  prepStatx(sqe, AT_FDCWD, path, 0x100, 0x7ff, sb);
  assertSqe(sqe, { opcode: OP.STATX, fd: -100, addr: ptr(path), len: 0x7ff, off: ptr(sb), opFlags: 0x100 });
});

Deno.test("prepSplice: fd_out in fd, off_out in off, off_in in addr, fd_in at byte 44; -1 = no offset", () => {
  let sqe = freshSqe();
  prepSplice(sqe, 3, 100, 4, BIG, 65536, 1);
  assertSqe(sqe, { opcode: OP.SPLICE, fd: 4, off: BIG, addr: 100n, len: 65536, opFlags: 1, spliceFdIn: 3 });
  // -1 as a bigint is the same "no offset" (it was refused as out of range).
  for (const none of [-1, -1n as unknown as -1]) {
    sqe = freshSqe();
    prepSplice(sqe, 3, none, 4, none, 10);
    assertSqe(sqe, {
      opcode: OP.SPLICE,
      fd: 4,
      off: 2n ** 64n - 1n,
      addr: 2n ** 64n - 1n,
      len: 10,
      spliceFdIn: 3,
    });
  }
  sqe = freshSqe();
  prepSplice(sqe, 3, -1, 4, 0, 10, 0x80000000); // SPLICE_F_FD_IN_FIXED
  assertSqe(sqe, {
    opcode: OP.SPLICE,
    fd: 4,
    off: 0n,
    addr: 2n ** 64n - 1n,
    len: 10,
    spliceFdIn: 3,
    opFlags: 0x80000000,
  });
});

Deno.test("prepTee: fd_out in fd, fd_in at byte 44, both offsets zero", () => {
  const sqe = freshSqe();
  prepTee(sqe, 5, 6, 4096, 2);
  assertSqe(sqe, { opcode: OP.TEE, fd: 6, len: 4096, opFlags: 2, spliceFdIn: 5 });
});

Deno.test("prepUnlinkat / prepMkdirat: dfd, path, unlink_flags / mode in len", () => {
  const path = cstring("d");
  let sqe = freshSqe();
  prepUnlinkat(sqe, AT_FDCWD, path, 0x200);
  assertSqe(sqe, { opcode: OP.UNLINKAT, fd: -100, addr: ptr(path), opFlags: 0x200 });
  sqe = freshSqe();
  prepMkdirat(sqe, 9, path, 0o750);
  assertSqe(sqe, { opcode: OP.MKDIRAT, fd: 9, addr: ptr(path), len: 0o750 });
  sqe = freshSqe();
  prepMkdirat(sqe, AT_FDCWD, path);
  assertSqe(sqe, { opcode: OP.MKDIRAT, fd: -100, addr: ptr(path), len: 0o777 });
});

Deno.test("prepRenameat / prepLinkat: new dfd in len, new path in off (addr2), flags", () => {
  const a = cstring("old"), b = cstring("new");
  let sqe = freshSqe();
  prepRenameat(sqe, AT_FDCWD, a, 7, b, 1);
  assertSqe(sqe, { opcode: OP.RENAMEAT, fd: -100, addr: ptr(a), len: 7, off: ptr(b), opFlags: 1 });
  sqe = freshSqe();
  prepRenameat(sqe, 7, a, AT_FDCWD, b);
  assertSqe(sqe, { opcode: OP.RENAMEAT, fd: 7, addr: ptr(a), len: 0xffffff9c, off: ptr(b) });
  sqe = freshSqe();
  prepLinkat(sqe, AT_FDCWD, a, AT_FDCWD, b, 0x400); // AT_SYMLINK_FOLLOW
  assertSqe(sqe, { opcode: OP.LINKAT, fd: -100, addr: ptr(a), len: 0xffffff9c, off: ptr(b), opFlags: 0x400 });
});

Deno.test("prepSymlinkat: target in addr, new dfd in fd, link path in off", () => {
  const target = cstring("t"), link = cstring("l");
  const sqe = freshSqe();
  prepSymlinkat(sqe, target, AT_FDCWD, link);
  assertSqe(sqe, { opcode: OP.SYMLINKAT, fd: -100, addr: ptr(target), off: ptr(link) });
});

Deno.test("prepTimeout / prepLinkTimeout: timespec in addr, len 1, count in off, timeout_flags", () => {
  const ts = new Timespec(1500.000250);
  const tv = new DataView(ts.bytes.buffer);
  // struct __kernel_timespec { __s64 tv_sec; long long tv_nsec; }
  assert.equal(tv.getBigInt64(0, true), 1n);
  assert.equal(tv.getBigInt64(8, true), 500_000_250n);
  assert.equal(ts.sec, 1);
  assert.equal(ts.nsec, 500_000_250);
  let sqe = freshSqe();
  prepTimeout(sqe, ts);
  assertSqe(sqe, { opcode: OP.TIMEOUT, fd: -1, addr: ptr(ts.bytes), len: 1 });
  sqe = freshSqe();
  prepTimeout(sqe, ts, 5, 1);
  assertSqe(sqe, { opcode: OP.TIMEOUT, fd: -1, addr: ptr(ts.bytes), len: 1, off: 5n, opFlags: 1 });
  sqe = freshSqe();
  prepLinkTimeout(sqe, ts, 1);
  assertSqe(sqe, { opcode: OP.LINK_TIMEOUT, fd: -1, addr: ptr(ts.bytes), len: 1, opFlags: 1 });
  // What the kernel refuses (EINVAL) is refused first, the SQE left alone.
  const ABS = 1, UPDATE = 2, BOOTTIME = 4, REALTIME = 8, ETIME_SUCCESS = 32, MULTISHOT = 64;
  prepTimeout(freshSqe(), ts, 3, MULTISHOT | BOOTTIME | ETIME_SUCCESS);
  prepLinkTimeout(freshSqe(), ts, ABS | REALTIME);
  for (
    const [prep, why] of [
      [(s: Sqe) => prepTimeout(s, ts, 0, UPDATE), /prepTimeoutUpdate/],
      [(s: Sqe) => prepTimeout(s, ts, 0, 0x80000), /0x80000 refused/],
      [(s: Sqe) => prepTimeout(s, ts, 0, BOOTTIME | REALTIME), /one clock/],
      [(s: Sqe) => prepTimeout(s, ts, 0, MULTISHOT | ABS), /not with IORING_TIMEOUT_ABS/],
      [(s: Sqe) => prepLinkTimeout(s, ts, MULTISHOT), /0x40 refused/],
      [(s: Sqe) => prepLinkTimeout(s, ts, 1 << 20), /refused/],
      [(s: Sqe) => prepFsync(s, 3, 2), /fsyncFlags must be 0 or a combination of IORING_FSYNC_DATASYNC/],
    ] as const
  ) {
    sqe = freshSqe();
    assert.throws(() => prep(sqe), why);
    assert.ok(sqe.bytes().every((b) => b === 0), String(why));
  }
});

Deno.test("prepTimeoutRemove / prepCancel / prepPollRemove: the target user_data in addr", () => {
  let sqe = freshSqe();
  prepTimeoutRemove(sqe, 2n ** 64n - 1n);
  assertSqe(sqe, { opcode: OP.TIMEOUT_REMOVE, fd: -1, addr: 2n ** 64n - 1n });
  sqe = freshSqe();
  prepCancel(sqe, 2 ** 53 - 1, 1);
  assertSqe(sqe, { opcode: OP.ASYNC_CANCEL, fd: -1, addr: 2n ** 53n - 1n, opFlags: 1 });
  sqe = freshSqe();
  prepCancelFd(sqe, 11);
  assertSqe(sqe, { opcode: OP.ASYNC_CANCEL, fd: 11, opFlags: 2 }); // IORING_ASYNC_CANCEL_FD
  sqe = freshSqe();
  prepCancelOp(sqe, 11, 1);
  assertSqe(sqe, { opcode: OP.ASYNC_CANCEL, fd: -1, len: 11, opFlags: 0x21 }); // IORING_ASYNC_CANCEL_OP | _ALL
  // What the kernel always refuses (EINVAL, EBADF, EFAULT), or silently reads another way: a cancel
  // by opcode through prepCancel had no opcode (len 0) and cancelled NOPs.
  assert.throws(() => prepCancel(freshSqe(), 1, 1 << 5), /^RangeError: flags must be made of .*prepCancelOp/);
  assert.throws(() => prepCancel(freshSqe(), 1, 1 << 1), /prepCancelFd/);
  assert.throws(() => prepCancel(freshSqe(), 1, 1 << 20), /bits the kernel does not know/);
  assert.throws(
    () => prepCancelFd(freshSqe(), 3, 1 << 2),
    /^RangeError: flags must be made of IORING_ASYNC_CANCEL_ALL/,
  );
  assert.throws(() => prepCancelOp(freshSqe(), 3, 1 << 2), /^RangeError: flags must be made of/);
  assert.throws(() => prepCancelOp(freshSqe(), 256), /opcode must be an integer from 0 to 255/);
  assert.throws(() => prepTimeoutRemove(freshSqe(), 1, 1 << 1), /^RangeError: flags must be 0 for a removal/);
  sqe = freshSqe();
  prepPollRemove(sqe, 42);
  assertSqe(sqe, { opcode: OP.POLL_REMOVE, fd: -1, addr: 42n });
});

Deno.test("prepPollAdd / prepPollMultishot: poll32_events at byte 28, multishot flag in len", () => {
  let sqe = freshSqe();
  prepPollAdd(sqe, 3, 0x1 | 0x4);
  assertSqe(sqe, { opcode: OP.POLL_ADD, fd: 3, opFlags: 5 });
  sqe = freshSqe();
  prepPollMultishot(sqe, 3, 0x1);
  assertSqe(sqe, { opcode: OP.POLL_ADD, fd: 3, opFlags: 1, len: 1 });
});

Deno.test("prepFilesUpdate: fd -1, the fd array in addr, count in len, offset in off", () => {
  const fds = new Int32Array([3, -1, 5]);
  const sqe = freshSqe();
  prepFilesUpdate(sqe, fds, 2);
  assertSqe(sqe, { opcode: OP.FILES_UPDATE, fd: -1, addr: ptr(fds), len: 3, off: 2n });
});

Deno.test("prep helpers keep flags, ioprio, user_data and personality, and clear every other field", () => {
  // A slot full of 0xff (stale data from an earlier use), then flags/user_data set first.
  const sqe = dirtySqe();
  sqe.setFlags(IOSQE_IO_LINK).setUserData(77n).setIoprio(0x0102).setPersonality(9);
  prepRead(sqe, 3, sub, 0);
  assertSqe(sqe, {
    opcode: OP.READ,
    flags: IOSQE_IO_LINK,
    ioprio: 0x0102,
    fd: 3,
    addr: ptr(sub),
    len: 1024,
    userData: 77n,
    personality: 9,
  });
  // prepRw itself, and a second prep over the first, leave nothing of the first behind.
  prepSplice(sqe, 1, 2, 3, 4, 5, 6);
  prepNop(sqe);
  assertSqe(sqe, { opcode: OP.NOP, fd: -1, ...KEPT });
  prepRw(sqe, OP.WRITE, 4, 0x1000, 16, 32);
  assertSqe(sqe, {
    opcode: OP.WRITE,
    flags: IOSQE_IO_LINK,
    ioprio: 0x0102,
    fd: 4,
    addr: 0x1000n,
    len: 16,
    off: 32n,
    userData: 77n,
    personality: 9,
  });
  // The flags that named the earlier op's file or buffer go with it; the caller's others stay.
  sqe.addFlags(IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT);
  prepNop(sqe);
  assertSqe(sqe, { opcode: OP.NOP, fd: -1, ...KEPT });
});

Deno.test("every prep helper over a dirty slot writes the same image as over a clean one", () => {
  const path = cstring("p"), path2 = cstring("q");
  const ts = new Timespec(5);
  const iov = new Iovecs([buf]);
  const sb = statxBuffer();
  const how = openHow({ flags: 0 });
  const fds = new Int32Array([1]);
  const preps: Array<[string, (s: Sqe) => void]> = [
    ["nop", (s) => prepNop(s)],
    ["read", (s) => prepRead(s, 1, buf, 9)],
    ["write", (s) => prepWrite(s, 1, buf, 9)],
    ["readv", (s) => prepReadv(s, 1, iov, 9)],
    ["writev", (s) => prepWritev(s, 1, iov, 9)],
    ["readFixed", (s) => prepReadFixed(s, 1, buf, 9, 2)],
    ["writeFixed", (s) => prepWriteFixed(s, 1, buf, 9, 2)],
    ["fsync", (s) => prepFsync(s, 1)],
    ["fdatasync", (s) => prepFdatasync(s, 1)],
    ["syncFileRange", (s) => prepSyncFileRange(s, 1, 10, 9)],
    ["fallocate", (s) => prepFallocate(s, 1, 0, 9, 10)],
    ["fadvise", (s) => prepFadvise(s, 1, 9, 10, 2)],
    ["madvise", (s) => prepMadvise(s, buf, 2)],
    ["ftruncate", (s) => prepFtruncate(s, 1, 9)],
    ["openat", (s) => prepOpenat(s, AT_FDCWD, path, 0)],
    ["openatDirect", (s) => prepOpenatDirect(s, AT_FDCWD, path, 0, 0, 1)],
    ["openat2", (s) => prepOpenat2(s, AT_FDCWD, path, how)],
    ["close", (s) => prepClose(s, 1)],
    ["closeDirect", (s) => prepCloseDirect(s, 1)],
    ["statx", (s) => prepStatx(s, AT_FDCWD, path, 0, 0x7ff, sb)],
    ["splice", (s) => prepSplice(s, 1, -1, 2, 9, 10)],
    ["tee", (s) => prepTee(s, 1, 2, 10)],
    ["unlinkat", (s) => prepUnlinkat(s, AT_FDCWD, path)],
    ["renameat", (s) => prepRenameat(s, AT_FDCWD, path, AT_FDCWD, path2)],
    ["mkdirat", (s) => prepMkdirat(s, AT_FDCWD, path)],
    ["symlinkat", (s) => prepSymlinkat(s, path, AT_FDCWD, path2)],
    ["linkat", (s) => prepLinkat(s, AT_FDCWD, path, AT_FDCWD, path2)],
    ["timeout", (s) => prepTimeout(s, ts)],
    ["timeoutRemove", (s) => prepTimeoutRemove(s, 3)],
    ["linkTimeout", (s) => prepLinkTimeout(s, ts)],
    ["cancel", (s) => prepCancel(s, 3)],
    ["cancelFd", (s) => prepCancelFd(s, 3)],
    ["pollAdd", (s) => prepPollAdd(s, 1, 1)],
    ["pollMultishot", (s) => prepPollMultishot(s, 1, 1)],
    ["pollRemove", (s) => prepPollRemove(s, 3)],
    ["filesUpdate", (s) => prepFilesUpdate(s, fds, 0)],
  ];
  for (const [name, prep] of preps) {
    const clean = freshSqe();
    prep(clean);
    const dirty = dirtySqe();
    dirty.setFlags(0).setUserData(0).setIoprio(0).setPersonality(0);
    prep(dirty);
    assert.equal(hex(dirty.bytes()), hex(clean.bytes()), `${name}: a stale field survived the prep`);
  }
});

Deno.test("prep helpers return the SQE they filled", () => {
  const sqe = freshSqe();
  assert.equal(prepNop(sqe), sqe);
  assert.equal(prepRead(sqe, 0, buf, 0), sqe);
  assert.equal(prepClose(sqe, 0), sqe);
});

/** A view of `bytes` bytes at `offset` of a fresh buffer whose `byteLength` and `byteOffset` lie. */
function lyingView(offset: number, bytes: number): Uint8Array<ArrayBuffer> {
  const view = new Uint8Array(new ArrayBuffer(4096), offset, bytes);
  Object.defineProperty(view, "byteLength", { value: 64 << 20 });
  Object.defineProperty(view, "byteOffset", { value: 0 });
  return view;
}

Deno.test("a view whose byteLength or byteOffset lies: the SQE gets its real address and length", () => {
  const view = lyingView(256, 8);
  const real = ptr(new Uint8Array(view.buffer, 256, 8));
  let sqe = freshSqe();
  prepRead(sqe, 5, view, 0);
  assertSqe(sqe, { opcode: OP.READ, fd: 5, addr: real, len: 8 });
  sqe = freshSqe();
  prepWrite(sqe, 5, view, 0);
  assertSqe(sqe, { opcode: OP.WRITE, fd: 5, addr: real, len: 8 });
  sqe = freshSqe();
  prepReadFixed(sqe, 5, view, 0, 1);
  assertSqe(sqe, { opcode: OP.READ_FIXED, fd: 5, addr: real, len: 8, bufIndex: 1 });
  sqe = freshSqe();
  prepMadvise(sqe, view, 4);
  assertSqe(sqe, { opcode: OP.MADVISE, fd: -1, addr: real, len: 8, opFlags: 4 });
  // A subclass whose getter reports more than it holds.
  class Claims extends Uint8Array {
    override get byteLength(): number {
      return 1 << 30;
    }
  }
  const claims = new Claims(16);
  sqe = freshSqe();
  prepRead(sqe, 5, claims, 0);
  assertSqe(sqe, { opcode: OP.READ, fd: 5, addr: ptr(claims), len: 16 });
  // An iovec array records the real lengths too.
  const iov = new Iovecs([view, claims]);
  assert.equal(iov.totalLength, 24);
  const words = new BigUint64Array(iov.bytes.buffer);
  assert.deepEqual([...words], [real, 8n, ptr(claims), 16n]);
  // The lie did not poison the address cache of the view's buffer: an honest view after it.
  sqe = freshSqe();
  const honest = new Uint8Array(view.buffer, 1024, 4);
  prepRead(sqe, 5, honest, 0);
  assertSqe(sqe, { opcode: OP.READ, fd: 5, addr: ptr(honest), len: 4 });
});

Deno.test("Timespec and Iovecs: the memory handed to the kernel cannot be swapped afterwards", () => {
  const ts = new Timespec(5);
  const iov = new Iovecs([new Uint8Array(8)]);
  assert.throws(() => {
    (ts as unknown as { bytes: Uint8Array }).bytes = new Uint8Array(1);
  }, TypeError);
  assert.throws(() => {
    (iov as unknown as { bytes: Uint8Array }).bytes = new Uint8Array(1);
  }, TypeError);
  assert.throws(() => {
    (iov.buffers as ArrayBufferView[])[0] = new Uint8Array(1 << 20);
  }, TypeError);
  assert.equal(ts.bytes.byteLength, 16);
  assert.equal(iov.bytes.byteLength, 16);
  assert.throws(() => new Timespec(null as unknown as number), TypeError);
});

Deno.test("prepFilesUpdate takes an Int32Array only; prepCancel with a bad key writes no cancel", () => {
  for (const fds of [new Uint8Array(4), new DataView(new ArrayBuffer(12)), [3, 4]]) {
    assert.throws(() => prepFilesUpdate(freshSqe(), fds as unknown as Int32Array, 0), TypeError);
  }
  for (
    const [name, prep] of [
      ["prepCancel", (s: Sqe) => prepCancel(s, -5)],
      ["prepTimeoutRemove", (s: Sqe) => prepTimeoutRemove(s, 1.5)],
      ["prepPollRemove", (s: Sqe) => prepPollRemove(s, NaN)],
    ] as const
  ) {
    const sqe = freshSqe();
    assert.throws(() => prep(sqe), RangeError, name);
    assert.equal(sqe.opcode, OP.NOP, `${name}: a refused key left opcode ${sqe.opcode}`);
  }
});

Deno.test("the length a prep takes is its own view's, even when the view's buffer runs code that addresses another", () => {
  const big = new Uint8Array(1 << 20);
  const other = freshSqe();
  for (const property of ["detached", "byteLength"]) {
    const buffer = new ArrayBuffer(8);
    // A zero-length view (so the buffer's `detached` is asked) of a buffer not seen before (so its
    // `byteLength` is asked too), whose getter preps a read of 1 MiB meanwhile.
    Object.defineProperty(buffer, property, {
      get() {
        prepRead(other, 5, big, 0);
        return property === "detached" ? false : 0;
      },
    });
    const empty = new Uint8Array(buffer, 8, 0);
    const sqe = freshSqe();
    prepRead(sqe, 5, empty, 0);
    assert.equal(new DataView(sqe.bytes().buffer, sqe.bytes().byteOffset).getUint32(24, true), 0, property);
  }
});

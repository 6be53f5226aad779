/**
 * Kernel-free tests of the xattr, pipe, fixed-fd-install and vectored fixed-buffer prep helpers:
 * every field each writes, byte for byte, against the layout of `struct io_uring_sqe` in the
 * kernel's include/uapi/linux/io_uring.h (tests/_sqe_image.ts) with literal opcode and flag
 * numbers from that header (not from src/abi.ts), on fresh SQEs and on SQEs full of stale bytes;
 * and the arguments each refuses before writing anything.
 */

import assert from "node:assert/strict";
import {
  cstring,
  IORING_FILE_INDEX_ALLOC,
  Iovecs,
  prepFgetxattr,
  prepFixedFdInstall,
  prepFsetxattr,
  prepGetxattr,
  prepPipe,
  prepPipeDirect,
  prepReadvFixed,
  prepSetxattr,
  prepWritevFixed,
  type Sqe,
} from "../mod.ts";
import { assertSqe, dirtySqe, freshSqe, hex, ptr } from "./_sqe_image.ts";

/** Opcode numbers from `enum io_uring_op` (include/uapi/linux/io_uring.h, 6.18). */
const OP = {
  FSETXATTR: 41,
  SETXATTR: 42,
  FGETXATTR: 43,
  GETXATTR: 44,
  FIXED_FD_INSTALL: 54,
  READV_FIXED: 60,
  WRITEV_FIXED: 61,
  PIPE: 62,
} as const;

// Literal values, from the headers named.
const IOSQE_FIXED_FILE = 1, IOSQE_IO_LINK = 4; // (1U << IOSQE_FIXED_FILE_BIT), (1U << IOSQE_IO_LINK_BIT)
const IORING_FIXED_FD_NO_CLOEXEC = 1; // (1U << 0), io_uring.h 6.8+ (not in /usr/include's older copy)
const XATTR_CREATE = 1, XATTR_REPLACE = 2; // linux/xattr.h
const O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000; // asm-generic/fcntl.h
const RWF_HIPRI = 1; // linux/fs.h

const path = cstring("/tmp/f"), name = cstring("user.k");
const value = new Uint8Array(32);

/** Fills `sqe` with `prep` over a slot of stale bytes too, and asserts both images are equal. */
function sameOverDirt(label: string, prep: (sqe: Sqe) => void): void {
  const clean = freshSqe();
  prep(clean);
  const dirty = dirtySqe();
  dirty.setFlags(0).setUserData(0).setIoprio(0).setPersonality(0);
  prep(dirty);
  assert.equal(hex(dirty.bytes()), hex(clean.bytes()), `${label}: a stale field survived the prep`);
}

Deno.test("prepGetxattr / prepFgetxattr: name in addr, value in addr2 (off), len, path in addr3, flags 0", () => {
  let sqe = freshSqe();
  prepGetxattr(sqe, path, name, value);
  assertSqe(sqe, { opcode: OP.GETXATTR, addr: ptr(name), off: ptr(value), len: 32, addr3: ptr(path) });
  sqe = freshSqe();
  prepGetxattr(sqe, path, name, value, 7);
  assertSqe(sqe, { opcode: OP.GETXATTR, addr: ptr(name), off: ptr(value), len: 7, addr3: ptr(path) });
  sqe = freshSqe();
  prepFgetxattr(sqe, 9, name, value.subarray(4));
  assertSqe(sqe, { opcode: OP.FGETXATTR, fd: 9, addr: ptr(name), off: ptr(value) + 4n, len: 28 });
  // A size query: no value (null, an empty view or len 0): addr2 and len are 0.
  for (const [v, len] of [[null, undefined], [new Uint8Array(0), undefined], [value, 0]] as const) {
    sqe = freshSqe();
    prepGetxattr(sqe, path, name, v, len);
    assertSqe(sqe, { opcode: OP.GETXATTR, addr: ptr(name), addr3: ptr(path) });
    sqe = freshSqe();
    prepFgetxattr(sqe, 3, name, v, len);
    assertSqe(sqe, { opcode: OP.FGETXATTR, fd: 3, addr: ptr(name) });
  }
});

Deno.test("prepSetxattr / prepFsetxattr: the XATTR_* flags in the op flags, the value and its length", () => {
  let sqe = freshSqe();
  prepSetxattr(sqe, path, name, value, XATTR_CREATE);
  assertSqe(sqe, {
    opcode: OP.SETXATTR,
    addr: ptr(name),
    off: ptr(value),
    len: 32,
    opFlags: XATTR_CREATE,
    addr3: ptr(path),
  });
  sqe = freshSqe();
  prepSetxattr(sqe, path, name, value, 0, 5);
  assertSqe(sqe, { opcode: OP.SETXATTR, addr: ptr(name), off: ptr(value), len: 5, addr3: ptr(path) });
  sqe = freshSqe();
  prepFsetxattr(sqe, 4, name, value, XATTR_REPLACE, 3);
  assertSqe(sqe, {
    opcode: OP.FSETXATTR,
    fd: 4,
    addr: ptr(name),
    off: ptr(value),
    len: 3,
    opFlags: XATTR_REPLACE,
  });
  sqe = freshSqe();
  prepFsetxattr(sqe, 4, name, null); // an empty value
  assertSqe(sqe, { opcode: OP.FSETXATTR, fd: 4, addr: ptr(name) });
});

Deno.test("the xattr preps refuse a bad path, name, value, len, fd or flags before writing", () => {
  const sqe = freshSqe();
  const noNul = new TextEncoder().encode("user.k");
  assert.throws(() => prepGetxattr(sqe, noNul, name, value), /path must end with a NUL/);
  assert.throws(() => prepGetxattr(sqe, path, noNul, value), /name must end with a NUL/);
  assert.throws(
    () => prepSetxattr(sqe, path, "user.k" as unknown as Uint8Array, value),
    /name must be a NUL/,
  );
  assert.throws(
    () => prepFgetxattr(sqe, 3, name, [1, 2] as unknown as Uint8Array),
    /value must be a typed array/,
  );
  assert.throws(() => prepGetxattr(sqe, path, name, value, 33), /len is 33, but value holds 32 bytes/);
  assert.throws(() => prepGetxattr(sqe, path, name, null, 1), /len is 1, but value holds nothing/);
  assert.throws(() => prepFsetxattr(sqe, 3, name, value, 0, -1), RangeError);
  assert.throws(() => prepFsetxattr(sqe, 3, name, value, 0, 1.5), RangeError);
  assert.throws(() => prepFgetxattr(sqe, -1, name, value), RangeError);
  assert.throws(() => prepFsetxattr(sqe, 3, name, value, -1), RangeError);
  assert.throws(() => prepSetxattr(sqe, path, name, value, 2 ** 32), RangeError);
  // Set flags other than XATTR_CREATE and XATTR_REPLACE: the kernel's EINVAL, refused first.
  assert.throws(() => prepSetxattr(sqe, path, name, value, 4), /XATTR_CREATE or XATTR_REPLACE, got 0x4/);
  assert.throws(() => prepFsetxattr(sqe, 3, name, value, 8), /XATTR_CREATE or XATTR_REPLACE/);
  const gone = new Uint8Array(new ArrayBuffer(8));
  structuredClone(gone.buffer, { transfer: [gone.buffer] });
  assert.throws(() => prepSetxattr(sqe, path, name, gone), /value is detached/);
  assert.throws(() => prepGetxattr(null as unknown as Sqe, path, name, value), /sqe is null/);
  assert.ok(sqe.bytes().every((b) => b === 0), "a refused prep wrote into the SQE");
});

Deno.test("prepPipe: fds in addr, the pipe flags in the op flags, fd, off and file_index 0", () => {
  const fds = new Int32Array(2);
  let sqe = freshSqe();
  prepPipe(sqe, fds, O_CLOEXEC | O_NONBLOCK);
  assertSqe(sqe, { opcode: OP.PIPE, addr: ptr(fds), opFlags: O_CLOEXEC | O_NONBLOCK });
  const bytes = new Uint8Array(16);
  sqe = freshSqe();
  prepPipe(sqe, new DataView(bytes.buffer, 8)); // any view of 8 bytes
  assertSqe(sqe, { opcode: OP.PIPE, addr: ptr(bytes) + 8n });
});

Deno.test("prepPipeDirect: file_index is the slot + 1 (the write end goes to the next), or ALLOC", () => {
  const fds = new Int32Array(2);
  let sqe = freshSqe();
  prepPipeDirect(sqe, fds, O_NONBLOCK, 0);
  assertSqe(sqe, { opcode: OP.PIPE, addr: ptr(fds), opFlags: O_NONBLOCK, spliceFdIn: 1 });
  sqe = freshSqe();
  prepPipeDirect(sqe, fds, 0, 6);
  assertSqe(sqe, { opcode: OP.PIPE, addr: ptr(fds), spliceFdIn: 7 });
  sqe = freshSqe();
  prepPipeDirect(sqe, fds, 0, IORING_FILE_INDEX_ALLOC);
  assertSqe(sqe, { opcode: OP.PIPE, addr: ptr(fds), spliceFdIn: 0xffffffff });
  // The highest slot whose next slot (the write end's) a file_index can still name.
  sqe = freshSqe();
  prepPipeDirect(sqe, fds, 0, 0xfffffffc);
  assertSqe(sqe, { opcode: OP.PIPE, addr: ptr(fds), spliceFdIn: 0xfffffffd });
});

Deno.test("the pipe preps refuse a short fds, bad flags, O_CLOEXEC for slots and a slot without a next", () => {
  const sqe = freshSqe();
  assert.throws(() => prepPipe(sqe, new Int32Array(1)), /fds must hold two 4-byte fds .* got 4 bytes/);
  assert.throws(() => prepPipe(sqe, [0, 0] as unknown as Int32Array), /fds must be a typed array/);
  assert.throws(() => prepPipe(sqe, new Int32Array(2), -1), RangeError);
  // Bits io_pipe_prep refuses (EINVAL): any but O_CLOEXEC, O_NONBLOCK, O_DIRECT, O_EXCL.
  const O_RDWR = 2, O_TRUNC = 0o1000;
  for (const bad of [O_RDWR, O_TRUNC, 0x80000000]) {
    assert.throws(() => prepPipe(sqe, new Int32Array(2), (bad | O_CLOEXEC) >>> 0), {
      name: "RangeError",
      message: "pipeFlags must be 0 or a combination of O_CLOEXEC, O_NONBLOCK, O_DIRECT and " +
        `O_NOTIFICATION_PIPE (O_EXCL), got 0x${((bad | O_CLOEXEC) >>> 0).toString(16)} (0x${
          bad.toString(16)
        } refused)`,
    });
    assert.throws(
      () => prepPipeDirect(sqe, new Int32Array(2), bad, 0),
      /^RangeError: pipeFlags .*refused\)$/,
    );
  }
  assert.throws(() => prepPipeDirect(sqe, new Int32Array(2), O_CLOEXEC, 0), /O_CLOEXEC/);
  assert.throws(() => prepPipeDirect(sqe, new Int32Array(2), 0, 0xfffffffd), /fileIndex/); // its next is ALLOC
  assert.throws(() => prepPipeDirect(sqe, new Int32Array(2), 0, 0xfffffffe), /fileIndex/);
  assert.throws(() => prepPipeDirect(sqe, new Int32Array(2), 0, -1), /fileIndex/);
  assert.throws(() => prepPipeDirect(sqe, new Int32Array(2), 0, 1.5), /fileIndex/);
  assert.ok(sqe.bytes().every((b) => b === 0), "a refused prep wrote into the SQE");
});

Deno.test("prepFixedFdInstall: the slot in fd, IOSQE_FIXED_FILE added to the flags, install_fd_flags", () => {
  let sqe = freshSqe();
  prepFixedFdInstall(sqe, 5);
  assertSqe(sqe, { opcode: OP.FIXED_FD_INSTALL, flags: IOSQE_FIXED_FILE, fd: 5 });
  sqe = freshSqe();
  sqe.setFlags(IOSQE_IO_LINK).setUserData(9n);
  prepFixedFdInstall(sqe, 0, IORING_FIXED_FD_NO_CLOEXEC);
  assertSqe(sqe, {
    opcode: OP.FIXED_FD_INSTALL,
    flags: IOSQE_IO_LINK | IOSQE_FIXED_FILE, // the caller's flags stay
    opFlags: IORING_FIXED_FD_NO_CLOEXEC,
    userData: 9n,
  });
  assert.throws(() => prepFixedFdInstall(freshSqe(), -1), /fixedIndex/);
  assert.throws(() => prepFixedFdInstall(freshSqe(), 2 ** 31), /fixedIndex/);
  assert.throws(() => prepFixedFdInstall(freshSqe(), "3" as unknown as number), /fixedIndex/);
  assert.throws(() => prepFixedFdInstall(freshSqe(), 3, -1), RangeError);
  // Only IORING_FIXED_FD_NO_CLOEXEC: the kernel fails any other bit with EINVAL.
  assert.throws(() => prepFixedFdInstall(freshSqe(), 3, 2), {
    name: "RangeError",
    message: "flags must be 0 or a combination of IORING_FIXED_FD_NO_CLOEXEC, got 0x2 (0x2 refused)",
  });
  assert.throws(() => prepFixedFdInstall(freshSqe(), 3, 0x80000001), /0x80000000 refused/);
  const refused = freshSqe();
  assert.throws(() => prepFixedFdInstall(refused, 3, 0.5), RangeError);
  assert.ok(refused.bytes().every((b) => b === 0), "a refused prep wrote into the SQE");
});

Deno.test("prepReadvFixed / prepWritevFixed: iovecs in addr, count in len, offset, rw flags, buf_index", () => {
  const reg = new Uint8Array(4096);
  const iov = new Iovecs([reg.subarray(0, 100), reg.subarray(512, 1024), reg.subarray(4000)]);
  let sqe = freshSqe();
  prepReadvFixed(sqe, 7, iov, 4096, 3);
  assertSqe(sqe, { opcode: OP.READV_FIXED, fd: 7, addr: ptr(iov.bytes), len: 3, off: 4096n, bufIndex: 3 });
  sqe = freshSqe();
  sqe.setPersonality(2);
  prepWritevFixed(sqe, 8, iov, 2n ** 40n, 0xffff, RWF_HIPRI);
  assertSqe(sqe, {
    opcode: OP.WRITEV_FIXED,
    fd: 8,
    addr: ptr(iov.bytes),
    len: 3,
    off: 2n ** 40n,
    opFlags: RWF_HIPRI,
    bufIndex: 0xffff,
    personality: 2, // kept
  });
  const refused = freshSqe();
  assert.throws(() => prepReadvFixed(refused, 7, iov, 0, 0x10000), /bufIndex/);
  assert.throws(() => prepReadvFixed(refused, 7, iov, 0, -1), /bufIndex/);
  assert.throws(
    () => prepWritevFixed(refused, 7, iov, -2, 0),
    /offset must be -1 \(the fd's position\) or a file offset/,
  );
  assert.throws(() => prepWritevFixed(refused, -2, iov, 0, 0), RangeError);
  assert.throws(() => prepReadvFixed(refused, 7, iov, 0, 0, -1), /rwFlags/);
  assert.throws(() => prepReadvFixed(refused, 7, [reg] as unknown as Iovecs, 0, 0), /must be an Iovecs/);
  const part = new Uint8Array(new ArrayBuffer(64));
  const stale = new Iovecs([part]);
  structuredClone(part.buffer, { transfer: [part.buffer] });
  assert.throws(
    () => prepWritevFixed(refused, 7, stale, 0, 0),
    /prepWritevFixed: iovecs buffer 0 was detached/,
  );
  const withEmpty = new Iovecs([reg.subarray(0, 8), reg.subarray(8, 8)]);
  assert.throws(
    () => prepReadvFixed(refused, 7, withEmpty, 0, 0),
    /prepReadvFixed: iovecs buffer 1 is empty/,
  );
  assert.throws(
    () => prepWritevFixed(refused, 7, withEmpty, 0, 0),
    /prepWritevFixed: iovecs buffer 1 is empty/,
  );
  assert.ok(refused.bytes().every((b) => b === 0), "a refused prep wrote into the SQE");
});

Deno.test("each of these preps over a slot of stale bytes writes the same image as over a clean one", () => {
  const reg = new Uint8Array(256);
  const iov = new Iovecs([reg.subarray(0, 16), reg.subarray(64, 80)]);
  const fds = new Int32Array(2);
  const preps: Array<[string, (s: Sqe) => void]> = [
    ["getxattr", (s) => prepGetxattr(s, path, name, value)],
    ["getxattr size", (s) => prepGetxattr(s, path, name, null)],
    ["fgetxattr", (s) => prepFgetxattr(s, 3, name, value)],
    ["setxattr", (s) => prepSetxattr(s, path, name, value, XATTR_CREATE)],
    ["fsetxattr", (s) => prepFsetxattr(s, 3, name, value, XATTR_REPLACE, 4)],
    ["pipe", (s) => prepPipe(s, fds, O_CLOEXEC)],
    ["pipeDirect", (s) => prepPipeDirect(s, fds, 0, 2)],
    ["pipeDirect alloc", (s) => prepPipeDirect(s, fds, 0, IORING_FILE_INDEX_ALLOC)],
    ["readvFixed", (s) => prepReadvFixed(s, 3, iov, 9, 1)],
    ["writevFixed", (s) => prepWritevFixed(s, 3, iov, 9, 1, RWF_HIPRI)],
  ];
  for (const [label, prep] of preps) sameOverDirt(label, prep);
  // The install sets IOSQE_FIXED_FILE in the flags, which a prep otherwise leaves to the caller.
  const dirty = dirtySqe();
  dirty.setFlags(0).setUserData(0).setIoprio(0).setPersonality(0);
  prepFixedFdInstall(dirty, 2);
  assertSqe(dirty, { opcode: OP.FIXED_FD_INSTALL, flags: IOSQE_FIXED_FILE, fd: 2 });
});

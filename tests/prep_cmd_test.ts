/**
 * Byte images of the driver-command and NOP preps (`prepUringCmd`, `prepNopResult`,
 * `prepNopCqe32`) and of 128-byte SQE handles, written out from `struct io_uring_sqe` in the
 * kernel's include/uapi/linux/io_uring.h with literal offsets: cmd_op is the u32 at byte 8,
 * uring_cmd_flags / nop_flags the u32 at 28, buf_index the u16 at 40, and the command area
 * `cmd[]` starts at byte 48 (16 bytes in a 64-byte SQE, 80 in a 128-byte one). No kernel needed.
 */

import assert from "node:assert/strict";
import { prepNopCqe32, prepNopResult, prepRead, prepUringCmd, Sqe } from "../mod.ts";
import { assertSqe, dirtySqe, freshSqe, hex, image, STALE_FLAGS_AFTER_PREP } from "./_sqe_image.ts";

const OP_NOP = 0, OP_URING_CMD = 46;

/** Four 128-byte SQE slots over plain memory, and the Sqe on slot 2 (bytes 256..383). */
function bigSqe(fill = 0): Sqe {
  const mem = new ArrayBuffer(4 * 128);
  const sqe = new Sqe(new Uint32Array(mem), new Uint8Array(mem), 2, undefined, 128);
  sqe.u8.fill(fill, 256, 384);
  return sqe;
}

/** `count` bytes counting up from `from` (wrapping at 256). */
function bytesFrom(from: number, count: number): Uint8Array {
  return Uint8Array.from({ length: count }, (_, i) => (from + i) & 0xff);
}

/** The 128-byte image: `image(f)` for the first 64 bytes, then `cmd` from byte 48, the rest zero. */
function bigImage(f: Parameters<typeof image>[0], cmd: Uint8Array): Uint8Array {
  const out = new Uint8Array(128);
  out.set(image(f));
  out.fill(0, 48);
  out.set(cmd, 48);
  return out;
}

Deno.test("Sqe of 128 bytes: base, size, command area, clear and bytes cover the whole entry", () => {
  const sqe = bigSqe(0xff);
  assert.equal(sqe.size, 128);
  assert.equal(sqe.base, 2 * 32, "slot 2 starts at word 64 (byte 256)");
  assert.equal(sqe.cmdOffset, 256 + 48);
  assert.equal(sqe.cmdSize, 80);
  assert.equal(sqe.bytes().length, 128);
  sqe.clear();
  assert.ok(sqe.u8.subarray(256, 384).every((b) => b === 0), "clear() zeroed all 128 bytes");
  const small = freshSqe();
  assert.equal(small.size, 64);
  assert.equal(small.cmdOffset, 2 * 64 + 48);
  assert.equal(small.cmdSize, 16);
});

Deno.test("prepUringCmd: cmd_op, fd, flags, buf_index and a 16-byte command in a 64-byte SQE", () => {
  const sqe = freshSqe();
  const cmd = bytesFrom(1, 16);
  prepUringCmd(sqe, 0xc0de_0001, 7, cmd, 1, 3);
  const want = image({ opcode: OP_URING_CMD, fd: 7, off: 0xc0de_0001n, opFlags: 1, bufIndex: 3 });
  want.set(cmd, 48);
  assert.equal(hex(sqe.bytes()), hex(want));
  assert.ok(sqe.u8.subarray(0, 128).every((b) => b === 0), "slots before were written");
  assert.ok(sqe.u8.subarray(192).every((b) => b === 0), "slots after were written");
});

Deno.test("prepUringCmd: an 80-byte command fills a 128-byte SQE; a shorter one is zero-padded", () => {
  const sqe = bigSqe(0xff); // stale bytes everywhere: the helper must leave none in the area
  const cmd = bytesFrom(0x40, 80);
  prepUringCmd(sqe, 5, 9, cmd);
  // The 0xff of flags (but the two that named a file or buffer) and ioprio, personality and
  // user_data stay (the caller's, as every prep).
  const fields = {
    opcode: OP_URING_CMD,
    flags: STALE_FLAGS_AFTER_PREP,
    ioprio: 0xffff,
    fd: 9,
    off: 5n,
    personality: 0xffff,
  };
  const want = bigImage({ ...fields, userData: 0xffff_ffff_ffff_ffffn }, cmd);
  assert.equal(hex(sqe.bytes()), hex(want));
  prepUringCmd(sqe, 5, 9, bytesFrom(0x10, 10));
  assert.equal(
    hex(sqe.bytes()),
    hex(bigImage({ ...fields, userData: 0xffff_ffff_ffff_ffffn }, bytesFrom(0x10, 10))),
  );
  assert.ok(sqe.u8.subarray(0, 256).every((b) => b === 0) && sqe.u8.subarray(384).every((b) => b === 0));
});

Deno.test("prepUringCmd: without a command the area is zeroed, for the caller to write in place", () => {
  const sqe = bigSqe(0xaa);
  prepUringCmd(sqe, 2, 4);
  assert.ok(sqe.u8.subarray(sqe.cmdOffset, sqe.cmdOffset + 80).every((b) => b === 0));
  sqe.u8.set([1, 2, 3], sqe.cmdOffset);
  assert.deepEqual([...sqe.bytes().subarray(48, 52)], [1, 2, 3, 0]);
});

Deno.test("prepUringCmd: a command that is not a Uint8Array is copied as its bytes", () => {
  const sqe = freshSqe();
  const words = new Uint32Array([0x04030201, 0x08070605]);
  prepUringCmd(sqe, 1, 3, words);
  const want = image({ opcode: OP_URING_CMD, fd: 3, off: 1n });
  want.set(bytesFrom(1, 8), 48);
  assert.equal(hex(sqe.bytes()), hex(want));
  // A DataView over part of a buffer: its own bytes, not the buffer's start.
  const backing = bytesFrom(0, 32);
  prepUringCmd(sqe, 1, 3, new DataView(backing.buffer, 10, 4));
  assert.deepEqual([...sqe.bytes().subarray(48, 56)], [10, 11, 12, 13, 0, 0, 0, 0]);
});

Deno.test("prepUringCmd over an earlier prep: the read's fields go", () => {
  const sqe = dirtySqe();
  prepRead(sqe, 3, new Uint8Array(8), 100, 4);
  prepUringCmd(sqe, 6, 3, bytesFrom(0x30, 4));
  const want = image({
    opcode: OP_URING_CMD,
    flags: STALE_FLAGS_AFTER_PREP,
    ioprio: 0xffff,
    fd: 3,
    off: 6n,
    userData: 0xffff_ffff_ffff_ffffn,
    personality: 0xffff,
  });
  want.set(bytesFrom(0x30, 4), 48);
  assert.equal(hex(sqe.bytes()), hex(want));
});

Deno.test("prepUringCmd refuses what does not fit or is not a command, leaving the SQE as it was", () => {
  const sqe = freshSqe();
  assert.throws(
    () => prepUringCmd(sqe, 1, 3, new Uint8Array(17)),
    (e: unknown) =>
      e instanceof RangeError && /cmd is 17 bytes/.test(e.message) && /holds 16/.test(e.message) &&
      /sqe128/.test(e.message),
  );
  assert.throws(() => prepUringCmd(bigSqe(), 1, 3, new Uint8Array(81)), /cmd is 81 bytes.*holds 80/);
  assert.throws(() => prepUringCmd(sqe, -1, 3), RangeError);
  assert.throws(() => prepUringCmd(sqe, 2 ** 32, 3), RangeError);
  assert.throws(() => prepUringCmd(sqe, 1, -1), RangeError);
  assert.throws(() => prepUringCmd(sqe, 1, 3, null, 1.5), RangeError);
  // Only IORING_URING_CMD_FIXED is a uring_cmd flag (the kernel failed others with EINVAL).
  for (const flags of [2, 4, 0x80000000, -1]) {
    assert.throws(() => prepUringCmd(sqe, 1, 3, null, flags), /flags may be 0 or IORING_URING_CMD_FIXED/);
  }
  // A view whose own buffer/byteOffset getters would run mid-prep is read as the engine knows it.
  const sneaky = new Uint8Array([1, 2, 3, 4]);
  Object.defineProperty(sneaky, "byteOffset", { get: () => 3 });
  Object.defineProperty(sneaky, "buffer", { get: () => new ArrayBuffer(1) });
  const fresh = freshSqe();
  prepUringCmd(fresh, 1, 3, sneaky);
  assert.deepEqual([...fresh.bytes().subarray(48, 53)], [1, 2, 3, 4, 0]);
  assert.throws(() => prepUringCmd(sqe, 1, 3, null, 0, 0x10000), RangeError);
  assert.throws(() => prepUringCmd(sqe, 1, 3, [1, 2] as unknown as Uint8Array), TypeError);
  assert.throws(() => prepUringCmd({} as Sqe, 1, 3), TypeError);
  assert.ok(sqe.u8.every((b) => b === 0), "a refused prep wrote nothing");
});

Deno.test("prepNopResult: nop_flags INJECT_RESULT, the result in len as an s32", () => {
  const sqe = freshSqe();
  prepNopResult(sqe, -2);
  assertSqe(sqe, { opcode: OP_NOP, fd: -1, len: 0xffff_fffe, opFlags: 1 });
  prepNopResult(sqe, 0x7fff_ffff);
  assertSqe(sqe, { opcode: OP_NOP, fd: -1, len: 0x7fff_ffff, opFlags: 1 });
  for (const bad of [2 ** 31, -(2 ** 31) - 1, 1.5, NaN, "1", 1n]) {
    const type = typeof bad === "number" ? RangeError : TypeError; // (TypeError: not a number at all)
    assert.throws(() => prepNopResult(sqe, bad as number), type, String(bad));
  }
});

Deno.test("prepNopCqe32: nop_flags CQE32, extra1 in off and extra2 in addr", () => {
  const sqe = freshSqe();
  prepNopCqe32(sqe, 0x1122_3344_5566_7788n, 2 ** 53 - 1);
  assertSqe(sqe, {
    opcode: OP_NOP,
    fd: -1,
    off: 0x1122_3344_5566_7788n,
    addr: 2n ** 53n - 1n,
    opFlags: 1 << 5,
  });
  prepNopCqe32(sqe, 0, 0xffff_ffff_ffff_ffffn);
  assertSqe(sqe, { opcode: OP_NOP, fd: -1, addr: 0xffff_ffff_ffff_ffffn, opFlags: 1 << 5 });
  for (const bad of [-1, 1.5, -1n, 2n ** 64n, "1"]) {
    const type = typeof bad === "string" ? "TypeError" : "RangeError"; // (a string is no number at all)
    assert.throws(
      () => prepNopCqe32(sqe, bad as number, 0),
      new RegExp(`^${type}: extra1 must be an integer from 0 to 2\\^64-1, got `),
      String(bad),
    );
    assert.throws(
      () => prepNopCqe32(sqe, 0, bad as number),
      new RegExp(`^${type}: extra2 must be an integer from 0 to 2\\^64-1, got `),
      String(bad),
    );
  }
  // A number past 2^53 is not exact: the message says to pass a bigint.
  assert.throws(
    () => prepNopCqe32(sqe, 2 ** 53, 0),
    /^RangeError: extra1 as a number must be at most 2\^53-1 .*: pass a bigint$/,
  );
  assert.throws(
    () => prepNopCqe32(sqe, 0, 2 ** 53),
    /^RangeError: extra2 as a number must be at most 2\^53-1 .*: pass a bigint$/,
  );
});

/**
 * Kernel-free tests of the preps that steer other requests or the ring's resources: poll and
 * timeout updates, passing a file between rings, classic provided buffers, and socket commands.
 * Each expected SQE is written out from the layout of include/uapi/linux/io_uring.h (literal
 * numbers, not src/abi.ts), on a fresh SQE and on one full of stale bytes.
 */

import assert from "node:assert/strict";
import {
  prepCmdSock,
  prepGetsockopt,
  prepLinkTimeoutUpdate,
  prepMsgRingFd,
  prepPollUpdate,
  prepProvideBuffers,
  prepRemoveBuffers,
  prepSetsockopt,
  prepTimeoutUpdate,
  type Sqe,
  Timespec,
} from "../mod.ts";
import { assertSqe, dirtySqe, type Expect, freshSqe, ptr, STALE_FLAGS_AFTER_PREP } from "./_sqe_image.ts";

/** Opcode numbers from `enum io_uring_op`. */
const OP = {
  POLL_REMOVE: 7,
  TIMEOUT_REMOVE: 12,
  PROVIDE_BUFFERS: 31,
  REMOVE_BUFFERS: 32,
  MSG_RING: 40,
  URING_CMD: 46,
};

/** Checks `prep` on a fresh SQE and on a dirty one (flags, ioprio, user_data, personality kept). */
function both(prep: (sqe: Sqe) => void, expect: Expect): void {
  const fresh = freshSqe();
  prep(fresh);
  assertSqe(fresh, expect);
  const dirty = dirtySqe();
  prep(dirty);
  // A dirty SQE keeps its flags (byte 1; not the two that named the stale op's file or buffer),
  // ioprio unless the opcode owns it, user_data, personality.
  assertSqe(dirty, {
    ...expect,
    flags: STALE_FLAGS_AFTER_PREP,
    ioprio: expect.ioprio ?? 0xffff,
    userData: 2n ** 64n - 1n,
    personality: 0xffff,
    bufIndex: expect.bufIndex ?? 0,
  });
}

Deno.test("prepTimeoutUpdate / prepLinkTimeoutUpdate: key in addr, timespec in addr2, UPDATE flag", () => {
  const ts = new Timespec(2.5);
  both((s) => prepTimeoutUpdate(s, 77, ts), {
    opcode: OP.TIMEOUT_REMOVE,
    fd: -1,
    addr: 77n,
    off: ptr(ts.bytes),
    opFlags: 1 << 1, // IORING_TIMEOUT_UPDATE
  });
  both((s) => prepTimeoutUpdate(s, 2n ** 64n - 2n, ts, 1), {
    opcode: OP.TIMEOUT_REMOVE,
    fd: -1,
    addr: 2n ** 64n - 2n,
    off: ptr(ts.bytes),
    opFlags: (1 << 1) | 1, // UPDATE | ABS
  });
  both((s) => prepLinkTimeoutUpdate(s, 5, ts), {
    opcode: OP.TIMEOUT_REMOVE,
    fd: -1,
    addr: 5n,
    off: ptr(ts.bytes),
    opFlags: (1 << 1) | (1 << 4), // IORING_TIMEOUT_UPDATE | IORING_LINK_TIMEOUT_UPDATE
  });
  // The kernel refuses a clock (or any flag but ABS) in an update: refused here first.
  for (const bad of [1 << 2, 1 << 3, 1 << 5, 1 << 1]) {
    assert.throws(() => prepTimeoutUpdate(freshSqe(), 1, ts, bad), RangeError);
  }
  assert.throws(() => prepTimeoutUpdate(freshSqe(), 1, {} as Timespec), TypeError);
  assert.throws(() => prepLinkTimeoutUpdate(freshSqe(), -1, ts), RangeError);
});

Deno.test("prepPollUpdate: old key in addr, new user_data in off, flags in len, mask in poll32_events", () => {
  both((s) => prepPollUpdate(s, 9, 10, 0x4, (1 << 1) | (1 << 2)), {
    opcode: OP.POLL_REMOVE,
    fd: -1,
    addr: 9n,
    off: 10n,
    len: 6,
    opFlags: 4,
  });
  both((s) => prepPollUpdate(s, 2n ** 63n, 0, 0x1, (1 << 1) | 1), {
    opcode: OP.POLL_REMOVE,
    fd: -1,
    addr: 2n ** 63n,
    len: 3, // UPDATE_EVENTS | ADD_MULTI
    opFlags: 1,
  });
  // Without a flag to update, or with ADD_MULTI alone, the kernel refuses (EINVAL): so do we.
  for (const flags of [0, 1, 1 << 3, 1 << 4]) {
    assert.throws(() => prepPollUpdate(freshSqe(), 1, 0, 0, flags), RangeError);
  }
  // A new user_data or mask that its flag would not apply.
  assert.throws(() => prepPollUpdate(freshSqe(), 1, 2, 0, 1 << 1), /newUserData must be 0/);
  assert.throws(() => prepPollUpdate(freshSqe(), 1, 2, 1, 1 << 2), /mask must be 0/);
});

Deno.test("prepMsgRingFd: SEND_FD in addr, source slot in addr3, target slot + 1 in file_index", () => {
  both((s) => prepMsgRingFd(s, 12, 3, 7, 99), {
    opcode: OP.MSG_RING,
    fd: 12,
    addr: 1n, // IORING_MSG_SEND_FD
    off: 99n,
    addr3: 3n,
    spliceFdIn: 8,
  });
  both((s) => prepMsgRingFd(s, 12, 0, 0xffffffff, 2n ** 64n - 1n, 1), {
    opcode: OP.MSG_RING,
    fd: 12,
    addr: 1n,
    off: 2n ** 64n - 1n,
    spliceFdIn: -1, // IORING_FILE_INDEX_ALLOC as it is
    opFlags: 1, // IORING_MSG_RING_CQE_SKIP
  });
  assert.throws(() => prepMsgRingFd(freshSqe(), 12, 0, 0, 1, 2), /IORING_MSG_RING_CQE_SKIP/); // FLAGS_PASS
  assert.throws(() => prepMsgRingFd(freshSqe(), 12, -1, 0, 1), RangeError);
  assert.throws(() => prepMsgRingFd(freshSqe(), 12, 0, 0xfffffffe, 1), RangeError);
});

Deno.test("prepProvideBuffers / prepRemoveBuffers: count in fd, size in len, first id in off, group", () => {
  const memory = new Uint8Array(4 * 100);
  both((s) => prepProvideBuffers(s, memory, 4, 100, 7, 10), {
    opcode: OP.PROVIDE_BUFFERS,
    fd: 4,
    addr: ptr(memory),
    len: 100,
    off: 10n,
    bufIndex: 7,
  });
  both((s) => prepRemoveBuffers(s, 3, 0xffff), { opcode: OP.REMOVE_BUFFERS, fd: 3, bufIndex: 0xffff });
  assert.throws(() => prepProvideBuffers(freshSqe(), memory, 5, 100, 7), /need 500 bytes; memory holds 400/);
  assert.throws(() => prepProvideBuffers(freshSqe(), memory, 0, 100, 7), /count must be at least 1/);
  assert.throws(() => prepProvideBuffers(freshSqe(), memory, 1, 0, 7), /size must be at least 1/);
  assert.throws(() => prepProvideBuffers(freshSqe(), memory, 2, 1, 7, 65535), /pass the last id/);
  assert.throws(() => prepProvideBuffers(freshSqe(), memory, 1, 1, 65536), RangeError);
  assert.throws(() => prepRemoveBuffers(freshSqe(), 0, 1), RangeError);
  assert.throws(() => prepProvideBuffers(freshSqe(), null as unknown as Uint8Array, 1, 1, 1), TypeError);
});

Deno.test("prepCmdSock / prepGetsockopt / prepSetsockopt: cmd_op, level, optname, optlen, optval", () => {
  const value = new Int32Array(1);
  const expect = (cmdOp: number, optlen: number): Expect => ({
    opcode: OP.URING_CMD,
    fd: 5,
    off: BigInt(cmdOp), // cmd_op in the low word, __pad1 zero
    addr: (9n << 32n) | 1n, // level 1 (SOL_SOCKET) low, optname 9 high
    spliceFdIn: optlen,
    addr3: ptr(value),
  });
  both((s) => prepGetsockopt(s, 5, 1, 9, value), expect(2, 4));
  both((s) => prepSetsockopt(s, 5, 1, 9, value), expect(3, 4));
  both((s) => prepCmdSock(s, 3, 5, 1, 9, value, 2), expect(3, 2));
  both((s) => prepCmdSock(s, 0, 5), { opcode: OP.URING_CMD, fd: 5 }); // SIOCINQ
  assert.throws(() => prepCmdSock(freshSqe(), 3, 5, 1, 9, value, 5), /optlen is 5, but optval holds 4 bytes/);
  assert.throws(() => prepCmdSock(freshSqe(), 3, 5, 1, 9, null, 4), /no optval/);
  assert.throws(() => prepGetsockopt(freshSqe(), 5, 1, 9, null as unknown as Int32Array), TypeError);
  assert.throws(() => prepCmdSock(freshSqe(), -1, 5), RangeError);
});

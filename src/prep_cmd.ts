/**
 * `prep*` helpers for driver commands (`IORING_OP_URING_CMD`, which NVMe passthrough and ublk
 * take, with 128-byte SQEs) and the NOPs that test a ring's completion path: one with an injected
 * result, one that posts a 32-byte CQE. Arguments are checked before anything reaches the kernel.
 *
 * @module
 */

import * as abi from "./abi.ts";
import {
  badNumber,
  bufferOf,
  byteLengthOf,
  byteOffsetOf,
  checkBuffer,
  checkFd,
  checkU32,
  shown,
} from "./memory.ts";
import { checkSqe, writeRw } from "./prep_base.ts";
import { checkU64, type Sqe, W, writeU64 } from "./sqe.ts";

const OP_FLAGS = W.opFlags, BUF_INDEX = W.bufIndex;

/**
 * A driver command (`IORING_OP_URING_CMD`, liburing's `io_uring_prep_uring_cmd`): the file's
 * driver runs command `cmdOp` with the command bytes `cmd`, copied into the SQE's command area
 * (its last 16 bytes, or 80 on a ring of 128-byte SQEs: `IoUringOptions.sqe128`, which NVMe
 * passthrough's 72-byte `struct nvme_uring_cmd` needs); the rest of the area is zeroed. With
 * `cmd` null the area is zeroed, to be written in place afterwards (`sqe.u8` at `sqe.cmdOffset`).
 * `flags` may be `IORING_URING_CMD_FIXED` (6.1: the command's data lies in registered buffer
 * `bufIndex`). What the command does and what it completes with is the
 * driver's: a file whose driver has no such commands fails with `-EOPNOTSUPP`. The sockets'
 * commands have their own helper, `prepCmdSock`. The command is viewed as bytes (one small
 * allocation) and copied. Since 5.19.
 */
export function prepUringCmd(
  sqe: Sqe,
  cmdOp: number,
  fd: number,
  cmd: ArrayBufferView | null = null,
  flags = 0,
  bufIndex = 0,
): Sqe {
  checkSqe(sqe);
  checkU32(cmdOp, "cmdOp");
  checkFd(fd);
  if (flags !== 0 && flags !== abi.IORING_URING_CMD_FIXED) {
    throw new RangeError(`flags may be 0 or IORING_URING_CMD_FIXED, got ${shown(flags)}`);
  }
  checkU32(bufIndex, "bufIndex", 0xffff);
  let length = 0;
  let bytes: Uint8Array | null = null;
  if (cmd !== null) {
    checkBuffer(cmd, "cmd");
    length = byteLengthOf(cmd);
    if (length > sqe.cmdSize) {
      const wider = sqe.size === 64
        ? " (a ring made with sqe128 has 128-byte SQEs, whose area holds 80)"
        : "";
      throw new RangeError(
        `cmd is ${length} bytes, but the command area of a ${sqe.size}-byte SQE holds ${sqe.cmdSize}${wider}`,
      );
    }
    // The bytes as the engine knows them (not the view's own, overridable, properties), before
    // anything is written: a getter's code cannot run with the SQE half filled.
    if (length > 0) bytes = new Uint8Array(bufferOf(cmd) as ArrayBuffer, byteOffsetOf(cmd), length);
  }
  writeRw(sqe, abi.IORING_OP_URING_CMD, fd, 0, 0, 0);
  const u32 = sqe.u32, b = sqe.base, u8 = sqe.u8, at = sqe.cmdOffset;
  u32[b + W.offLo] = cmdOp; // cmd_op (its __pad1, the offset's high word, stays 0)
  u32[b + OP_FLAGS] = flags; // uring_cmd_flags
  u32[b + BUF_INDEX] = (u32[b + BUF_INDEX] & 0xffff0000) | bufIndex; // keep personality
  if (bytes !== null) u8.set(bytes, at);
  u8.fill(0, at + length, at + sqe.cmdSize);
  return sqe;
}

/**
 * A NOP that completes with `result` instead of 0 (`IORING_NOP_INJECT_RESULT`, 6.10): a negative
 * `-errno` fails the request as that error would, breaking a link it heads. For testing how code
 * handles a completion. Since 6.10.
 */
export function prepNopResult(sqe: Sqe, result: number): Sqe {
  if (typeof result !== "number" || (result | 0) !== result) {
    throw badNumber(result, `result must be a 32-bit signed integer, got ${shown(result)}`);
  }
  writeRw(sqe, abi.IORING_OP_NOP, -1, 0, result >>> 0, 0); // the result travels in len
  sqe.u32[sqe.base + OP_FLAGS] = abi.IORING_NOP_INJECT_RESULT;
  return sqe;
}

/**
 * A NOP that posts a 32-byte CQE whose extra words are `extra1` and `extra2` (`Cqe.extra1`,
 * `Cqe.extra2`; `IORING_NOP_CQE32`), on a ring of 32-byte CQEs (`IoUringOptions.cqe32`); any
 * other ring fails it with `-EINVAL`. Each value is a safe integer or a bigint below 2^64. For
 * testing a big-CQE completion path without a device. Since 6.18.
 */
export function prepNopCqe32(sqe: Sqe, extra1: number | bigint, extra2: number | bigint): Sqe {
  checkU64(extra1, "extra1");
  checkU64(extra2, "extra2");
  writeRw(sqe, abi.IORING_OP_NOP, -1, 0, 0, extra1);
  writeU64(sqe.u32, sqe.base + W.addrLo, extra2);
  sqe.u32[sqe.base + OP_FLAGS] = abi.IORING_NOP_CQE32;
  return sqe;
}

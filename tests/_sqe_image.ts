/**
 * SQE images for the prep tests, written out from the layout of `struct io_uring_sqe` in the
 * kernel's include/uapi/linux/io_uring.h (offsets are literals here, independent of src/abi.ts),
 * and an Sqe over plain memory to compare them with.
 */

import assert from "node:assert/strict";
import { Sqe } from "../mod.ts";

/** The fields of `struct io_uring_sqe` a test expects; everything not named is zero. */
export interface Expect {
  opcode: number;
  flags?: number;
  ioprio?: number;
  fd?: number;
  off?: bigint;
  addr?: bigint;
  len?: number;
  opFlags?: number;
  userData?: bigint;
  bufIndex?: number;
  personality?: number;
  spliceFdIn?: number;
  addr3?: bigint;
}

/** Builds the 64-byte little-endian image of an SQE from its fields, at the kernel's offsets. */
export function image(f: Expect): Uint8Array {
  const bytes = new Uint8Array(64);
  const v = new DataView(bytes.buffer);
  v.setUint8(0, f.opcode); // __u8 opcode
  v.setUint8(1, f.flags ?? 0); // __u8 flags
  v.setUint16(2, f.ioprio ?? 0, true); // __u16 ioprio
  v.setInt32(4, f.fd ?? 0, true); // __s32 fd
  v.setBigUint64(8, BigInt.asUintN(64, f.off ?? 0n), true); // __u64 off / addr2
  v.setBigUint64(16, BigInt.asUintN(64, f.addr ?? 0n), true); // __u64 addr / splice_off_in
  v.setUint32(24, f.len ?? 0, true); // __u32 len
  v.setUint32(28, f.opFlags ?? 0, true); // rw_flags, open_flags, ... (a u32 union)
  v.setBigUint64(32, f.userData ?? 0n, true); // __u64 user_data
  v.setUint16(40, f.bufIndex ?? 0, true); // __u16 buf_index / buf_group
  v.setUint16(42, f.personality ?? 0, true); // __u16 personality
  v.setInt32(44, f.spliceFdIn ?? 0, true); // __s32 splice_fd_in / __u32 file_index
  v.setBigUint64(48, f.addr3 ?? 0n, true); // __u64 addr3
  // bytes 56..63: __pad2[1], always zero
  return bytes;
}

/** The address of a buffer's first byte, straight from Deno (not through src/memory.ts). */
export function ptr(buf: ArrayBufferView): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
}

/** A four-slot SQE array over plain memory (no kernel), and an Sqe on slot 2. */
export function freshSqe(): Sqe {
  const mem = new ArrayBuffer(4 * 64);
  return new Sqe(new Uint32Array(mem), new Uint8Array(mem), 2);
}

/**
 * The flags byte of an all-0xff slot after a prep: the caller's flags stay, but for
 * `IOSQE_FIXED_FILE` (bit 0) and `IOSQE_BUFFER_SELECT` (bit 5), which named the earlier op's file
 * or buffer and go with it.
 */
export const STALE_FLAGS_AFTER_PREP = 0xff & ~(1 | 1 << 5);

/** An Sqe whose 64 bytes are all 0xff first: shows which bytes the helper leaves alone. */
export function dirtySqe(): Sqe {
  const sqe = freshSqe();
  sqe.u8.fill(0xff, 2 * 64, 3 * 64);
  return sqe;
}

export function hex(b: Uint8Array): string {
  const words: string[] = [];
  for (let i = 0; i < b.length; i += 8) {
    words.push(
      `${i.toString().padStart(2)}: ${
        [...b.subarray(i, i + 8)].map((x) => x.toString(16).padStart(2, "0")).join(" ")
      }`,
    );
  }
  return words.join("\n");
}

/** Asserts the SQE's 64 bytes equal the image of `f`, and that no other slot was touched. */
export function assertSqe(sqe: Sqe, f: Expect): void {
  const got = sqe.bytes();
  const want = image(f);
  assert.equal(hex(got), hex(want), `SQE image for opcode ${f.opcode}`);
  // The neighbouring slots stay untouched (zero in a fresh SQE array).
  assert.ok(sqe.u8.subarray(0, 2 * 64).every((b) => b === 0), "slots before the SQE were written");
  assert.ok(sqe.u8.subarray(3 * 64).every((b) => b === 0), "slots after the SQE were written");
}

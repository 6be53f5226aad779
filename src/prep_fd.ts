/**
 * `prep*` helpers for opcodes that make descriptors: `pipe2` (plain fds or registered file
 * slots) and the install of a registered file as a plain fd, filled as liburing's
 * `io_uring_prep_pipe`, `io_uring_prep_pipe_direct` and `io_uring_prep_fixed_fd_install` do.
 *
 * @module
 */

import * as abi from "./abi.ts";
import { byteLengthOf, checkBuffer, checkFlagBits, checkU32 } from "./memory.ts";
import { storeAddressOf, targetSlot, writeRw } from "./prep_base.ts";
import { type Sqe, W } from "./sqe.ts";

const OP_FLAGS = W.opFlags, FILE_INDEX = W.spliceFdIn;

/**
 * The pipe flags the kernel takes (`io_pipe_prep`: any other bit fails with `EINVAL`);
 * `O_NOTIFICATION_PIPE` is `O_EXCL`.
 */
const PIPE_FLAGS = abi.O_CLOEXEC | abi.O_NONBLOCK | abi.O_DIRECT | abi.O_EXCL;
const PIPE_FLAG_NAMES = "O_CLOEXEC, O_NONBLOCK, O_DIRECT and O_NOTIFICATION_PIPE (O_EXCL)";

/** Throws a `RangeError` for `pipeFlags` with a bit the kernel refuses. */
function checkPipeFlags(pipeFlags: unknown): asserts pipeFlags is number {
  checkFlagBits(pipeFlags, PIPE_FLAGS, "pipeFlags", PIPE_FLAG_NAMES);
}

/** Throws unless `fds` has room for the two `int`s the kernel writes (an `Int32Array(2)`). */
function checkFdPair(fds: unknown): asserts fds is ArrayBufferView {
  checkBuffer(fds, "fds");
  const length = byteLengthOf(fds);
  if (length < 8) {
    throw new RangeError(`fds must hold two 4-byte fds (an Int32Array(2)), got ${length} bytes`);
  }
}

/**
 * `pipe2(fds, pipeFlags)`: the kernel writes the read end's fd to `fds[0]` and the write end's
 * to `fds[1]` (an `Int32Array(2)`, or any view of at least 8 bytes, kept referenced until the
 * CQE), and completes with 0. `pipeFlags`: `O_CLOEXEC`, `O_NONBLOCK`, `O_DIRECT` (a packet
 * pipe), `O_EXCL` (`O_NOTIFICATION_PIPE`, which fails with `ENOPKG` on a kernel built without
 * watch queues); any other bit is refused with a `RangeError` (the kernel would fail it with
 * `EINVAL`). (`O_NONBLOCK` is for the fds' other users: a read of an
 * empty pipe through the ring waits for data all the same, as the kernel polls the pipe.)
 * Since 6.16.
 */
export function prepPipe(sqe: Sqe, fds: Int32Array | ArrayBufferView, pipeFlags = 0): Sqe {
  checkFdPair(fds);
  checkPipeFlags(pipeFlags);
  writeRw(sqe, abi.IORING_OP_PIPE, 0, 0, 0, 0);
  storeAddressOf(sqe, fds, W.addrLo);
  sqe.u32[sqe.base + OP_FLAGS] = pipeFlags;
  return sqe;
}

/**
 * {@link prepPipe} into registered file slots instead of fds (later SQEs name them with
 * `IOSQE_FIXED_FILE`): the read end in slot `fileIndex` and the write end in `fileIndex + 1`
 * (an occupied slot is replaced), or, with `IORING_FILE_INDEX_ALLOC`, each in a free slot the
 * kernel picks. The kernel writes the two slots to `fds` and completes with 0. Slots have no
 * close-on-exec, so `O_CLOEXEC` is refused (the kernel would fail it with `EINVAL`). Kernels
 * before the fix "io_uring/openclose: fix io_pipe_fixed() slot tracking for specific slots"
 * (7.0, backported to stable; 6.18.44 has it) write `0, 0` to `fds` for a given `fileIndex`
 * (the slots are still `fileIndex` and `fileIndex + 1`), and when the write end's slot does not
 * exist they leave the read end in its slot and empty slot 0 instead. Since 6.16.
 */
export function prepPipeDirect(
  sqe: Sqe,
  fds: Int32Array | ArrayBufferView,
  pipeFlags: number,
  fileIndex: number,
): Sqe {
  checkFdPair(fds);
  checkPipeFlags(pipeFlags);
  if (pipeFlags & abi.O_CLOEXEC) {
    throw new RangeError("pipeFlags: O_CLOEXEC has no meaning for registered file slots (EINVAL)");
  }
  // Two slots: the write end's, fileIndex + 1, must be one too.
  const slot = targetSlot(fileIndex, "fileIndex", abi.MAX_FILE_INDEX - 1);
  prepPipe(sqe, fds, pipeFlags);
  sqe.u32[sqe.base + FILE_INDEX] = slot;
  return sqe;
}

/**
 * Installs registered file `fixedIndex` as a plain fd in the process's table and completes with
 * that fd; the slot keeps its file. The new fd is close-on-exec unless `flags` holds
 * `IORING_FIXED_FD_NO_CLOEXEC` (other bits are refused with a `RangeError`: the kernel would fail
 * them with `EINVAL`). The opcode needs
 * `IOSQE_FIXED_FILE`, so this sets that flag in the SQE's flags (keeping the others: add more
 * with `addFlags`, as `setFlags` would drop it and the kernel would fail with `EBADF`). An SQE
 * with a `personality` fails with `EPERM`. Since 6.8.
 */
export function prepFixedFdInstall(sqe: Sqe, fixedIndex: number, flags = 0): Sqe {
  checkU32(fixedIndex, "fixedIndex", 0x7fffffff); // the SQE's fd field (an s32)
  checkFlagBits(flags, abi.IORING_FIXED_FD_NO_CLOEXEC, "flags", "IORING_FIXED_FD_NO_CLOEXEC");
  writeRw(sqe, abi.IORING_OP_FIXED_FD_INSTALL, fixedIndex, 0, 0, 0);
  const u32 = sqe.u32, at = sqe.base + W.head;
  u32[at] = (u32[at] | (abi.IOSQE_FIXED_FILE << 8)) >>> 0;
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  return sqe;
}

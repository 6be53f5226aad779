/**
 * `prep*` helpers for operations that take a buffer from a {@link BufferRing} (a provided-buffer
 * group) instead of naming one: the kernel picks a buffer when data arrives and says which in
 * the CQE's flags (`IORING_CQE_F_BUFFER`, the id above `IORING_CQE_BUFFER_SHIFT`). Each sets
 * `IOSQE_BUFFER_SELECT` in the SQE's flags and the group in `buf_group`: a later `setFlags` must
 * keep `IOSQE_BUFFER_SELECT` (add flags with `addFlags`). A later prep of another op over the same
 * SQE drops it, as it drops the group: the flag belongs to the op (the caller's other flags stay).
 *
 * @module
 */

import * as abi from "./abi.ts";
import { BufferRing, groupOn, ringNamed, servesBundles } from "./buf_ring.ts";
import { byteLengthOf, checkBuffer, checkFd, checkFlags, checkU32, shown } from "./memory.ts";
import { checkOffsetOrPosition, type Offset, setIoprio, storeAddressOf, writeRw } from "./prep_base.ts";
import { RecvmsgOut } from "./recvmsg_out.ts";
import { type Sqe, W } from "./sqe.ts";

const HEAD = W.head, OP_FLAGS = W.opFlags, BUF_INDEX = W.bufIndex;
/** Buffer ids per group: 16 bits (`MAX_BIDS_PER_BGID` in io_uring/kbuf.c). */
const MAX_BIDS = 1 << 16;

/** A group id, or the group of a {@link BufferRing}. */
export type BufferGroup = number | BufferRing;

/** The group id `group` names; a {@link BufferRing} only for an SQE of its own ring. */
function groupOf(sqe: Sqe, group: BufferGroup): number {
  if (group instanceof BufferRing) return groupOn(group, sqe?.u32);
  checkU32(group, "group", 0xffff);
  return group;
}

/**
 * Refuses a cap (`length`) on an operation that takes a part of an incremental ring's buffer: a
 * read of a regular file, or one the kernel runs in io-wq, consumes the cap, not the bytes it
 * moved, and `BufferRing.take` could not know where the next part starts.
 */
function checkIncrementalLength(group: BufferGroup, length: number, what: string): void {
  if (length !== 0 && group instanceof BufferRing && group.incremental) {
    throw new RangeError(
      `${what}: length must be 0 on an incremental BufferRing (the kernel may consume the cap rather than ` +
        "the bytes moved, and the next part's place would be lost)",
    );
  }
}

/** Writes buffer group `group` into `buf_group` (the low half of the word; personality kept). */
function writeGroup(sqe: Sqe, group: number): void {
  sqe.u32[sqe.base + BUF_INDEX] = (sqe.u32[sqe.base + BUF_INDEX] & 0xffff0000) | group;
}

/** Sets `IOSQE_BUFFER_SELECT`, `buf_group` and `ioprio` (the socket opcodes' own flags). */
function selectFrom(sqe: Sqe, group: number, ioprio: number): Sqe {
  const u32 = sqe.u32, b = sqe.base;
  setIoprio(sqe, ioprio);
  u32[b + HEAD] = (u32[b + HEAD] | (abi.IOSQE_BUFFER_SELECT << 8)) >>> 0;
  writeGroup(sqe, group);
  return sqe;
}

/**
 * Throws unless `ioprio` holds only the flags a receive from a buffer group takes here
 * (`IORING_RECVSEND_POLL_FIRST`, and `IORING_RECVSEND_BUNDLE` where `bundle`); `what` names the
 * prep.
 */
function checkSelectIoprio(ioprio: number, bundle: boolean, what: string): void {
  checkU32(ioprio, "ioprio", 0xffff);
  const allowed = abi.IORING_RECVSEND_POLL_FIRST | (bundle ? abi.IORING_RECVSEND_BUNDLE : 0);
  if ((ioprio & ~allowed) !== 0) {
    const multishot = what === "prepRecvSelect" && (ioprio & abi.IORING_RECV_MULTISHOT) !== 0
      ? " (for a multishot receive, use prepRecvMultishot)"
      : "";
    throw new RangeError(
      `${what}: ioprio may hold IORING_RECVSEND_POLL_FIRST${
        bundle ? " and IORING_RECVSEND_BUNDLE" : ""
      }, got 0x${ioprio.toString(16)}${multishot}`,
    );
  }
}

/**
 * `recv` into a buffer of `group`: completes with the bytes received and the buffer's id in the
 * CQE's flags. `length` caps the bytes (0: the whole buffer). `ioprio` takes
 * `IORING_RECVSEND_POLL_FIRST` and `IORING_RECVSEND_BUNDLE` (6.10, a ring of provided buffers:
 * fill several buffers in ring order; the CQE names the first, `res` counts all:
 * `BufferRing.take(flags, res)` takes them). Since 5.7 (rings of provided buffers: 5.19).
 */
export function prepRecvSelect(
  sqe: Sqe,
  fd: number,
  group: BufferGroup,
  length = 0,
  flags = 0,
  ioprio = 0,
): Sqe {
  return writeSelectSendRecv(sqe, abi.IORING_OP_RECV, fd, group, length, flags, ioprio, "prepRecvSelect");
}

/**
 * A send or receive (`opcode`) with a buffer of `group`; `what` names the prep for its errors.
 * `multishot`: `IORING_RECV_MULTISHOT` for a receive that stays armed (then without
 * `MSG_WAITALL`), else 0.
 */
function writeSelectSendRecv(
  sqe: Sqe,
  opcode: number,
  fd: number,
  group: BufferGroup,
  length: number,
  flags: number,
  ioprio: number,
  what: string,
  multishot = 0,
): Sqe {
  checkFd(fd);
  group = ringNamed(group, sqe?.u32); // (a group given by id is checked as its ring would be)
  const id = groupOf(sqe, group);
  checkU32(length, "length");
  checkIncrementalLength(group, length, what);
  checkFlags(flags, "flags");
  if (multishot !== 0) refuseMultishotFlags(flags, what);
  checkSelectIoprio(ioprio, true, what);
  if ((ioprio & abi.IORING_RECVSEND_BUNDLE) !== 0 && group instanceof BufferRing) servesBundles(group);
  writeRw(sqe, opcode, fd, 0, length, 0);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  return selectFrom(sqe, id, ioprio | multishot);
}

/**
 * Refuses in a multishot receive's `flags` `MSG_WAITALL` (the kernel's `EINVAL`) and `MSG_PEEK`
 * (the kernel takes it: the same bytes come again in every buffer, and the receive never ends
 * while they wait); `what` names the prep.
 */
function refuseMultishotFlags(flags: number, what: string): void {
  if ((flags & abi.MSG_WAITALL) !== 0) {
    throw new RangeError(`${what}: flags must not hold MSG_WAITALL (the kernel refuses it: EINVAL)`);
  }
  if ((flags & abi.MSG_PEEK) !== 0) {
    throw new RangeError(
      `${what}: flags must not hold MSG_PEEK (a multishot receive would deliver the same bytes again and ` +
        "again, into every buffer of the group)",
    );
  }
}

/**
 * A `recv` that stays armed: one CQE per arrival of data, each with a buffer of `group` and
 * `IORING_CQE_F_MORE`, until an error, the end of the stream (`res` 0, no buffer; on a datagram
 * socket an empty datagram ends it so too, the socket still open), a cancel, or `-ENOBUFS` when the
 * group has no buffer left (recycle them, then issue it again). `flags` are `recv`'s, without
 * `MSG_WAITALL` or `MSG_PEEK`. The last CQE (no
 * `F_MORE`) may also be data, with a buffer, when the kernel found the CQ full: take its buffer
 * and issue the receive again. `ioprio` takes `IORING_RECVSEND_POLL_FIRST` and
 * `IORING_RECVSEND_BUNDLE` (6.10: each CQE may cover several buffers, see
 * {@link prepRecvSelect}). Since 6.0.
 */
export function prepRecvMultishot(sqe: Sqe, fd: number, group: BufferGroup, flags = 0, ioprio = 0): Sqe {
  return writeSelectSendRecv(
    sqe,
    abi.IORING_OP_RECV,
    fd,
    group,
    0,
    flags,
    ioprio,
    "prepRecvMultishot",
    abi.IORING_RECV_MULTISHOT,
  );
}

/**
 * `send` from buffers of `group`: the kernel takes the buffer at the ring's head (added with
 * its length: `bufferRing.add(bid, length)`, on a ring set up `empty`) and sends its bytes; the
 * CQE names it, and `res` counts the bytes sent. `length` caps them (0: the buffer's length).
 * `ioprio` takes `IORING_RECVSEND_POLL_FIRST` and `IORING_RECVSEND_BUNDLE`: then it sends
 * buffer after buffer, in ring order, until the ring is empty, in rounds, each with a CQE of its
 * own: every CQE but the last has `IORING_CQE_F_MORE` (reap until one has not), and
 * `BufferRing.take(flags, res)` takes what each sent (a buffer sent in part is taken too: send
 * the rest again); `length` caps the first round only (6.18). Since 6.10.
 */
export function prepSendSelect(
  sqe: Sqe,
  fd: number,
  group: BufferGroup,
  length = 0,
  flags = 0,
  ioprio = 0,
): Sqe {
  return writeSelectSendRecv(sqe, abi.IORING_OP_SEND, fd, group, length, flags, ioprio, "prepSendSelect");
}

/**
 * A `recvmsg` that stays armed, into buffers of `group`: one CQE per datagram (or chunk of a
 * stream), each with a buffer laid out as `layout` says (the sender's address, ancillary data,
 * then the payload: read it with `layout.parse(bufferRing.view(bid), cqe.res)`), with
 * `IORING_CQE_F_MORE` while it stays armed. It ends as {@link prepRecvMultishot} does, and at an
 * empty datagram, which reads as the end of a stream (its CQE still carries a buffer, with the
 * sender; 6.18). `flags` are `recvmsg`'s, without `MSG_WAITALL` (the kernel refuses it): with
 * `MSG_TRUNC`, `layout.payloadLength` is a cut datagram's whole length. `ioprio` takes
 * `IORING_RECVSEND_POLL_FIRST`. Each buffer must hold at least `layout.payloadOffset` bytes
 * (also one added or recycled with a length: a shorter one fails the receive with `EFAULT`, again
 * on every issue while it is at the ring's head). Not on an incremental ring, nor with `MSG_PEEK`.
 * Since 6.0.
 */
export function prepRecvmsgMultishot(
  sqe: Sqe,
  fd: number,
  layout: RecvmsgOut,
  group: BufferGroup,
  flags = 0,
  ioprio = 0,
): Sqe {
  checkFd(fd);
  if (!(layout instanceof RecvmsgOut)) {
    throw new TypeError(
      `layout must be a RecvmsgOut (new RecvmsgOut({ name, control })), got ${shown(layout)}`,
    );
  }
  group = ringNamed(group, sqe?.u32);
  const id = groupOf(sqe, group);
  if (group instanceof BufferRing && group.incremental) {
    throw new RangeError(
      "prepRecvmsgMultishot: the group's ring is incremental: the kernel lays each message out at the " +
        "unused part of a buffer (not where layout.parse(view(bid)) reads it), and fails a part shorter " +
        "than the layout's header with EFAULT, again on every issue; use a ring that is not incremental",
    );
  }
  if (group instanceof BufferRing && group.bufferSize < layout.payloadOffset) {
    throw new RangeError(
      `prepRecvmsgMultishot: the group's buffers (${group.bufferSize} bytes) cannot hold the layout's ` +
        `${layout.payloadOffset} bytes of header, address and control room (the kernel fails it: EFAULT)`,
    );
  }
  checkFlags(flags, "flags");
  refuseMultishotFlags(flags, "prepRecvmsgMultishot");
  checkSelectIoprio(ioprio, false, "prepRecvmsgMultishot");
  writeRw(sqe, abi.IORING_OP_RECVMSG, fd, 0, 1, 0);
  storeAddressOf(sqe, layout.bytes, W.addrLo);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  return selectFrom(sqe, id, abi.IORING_RECV_MULTISHOT | ioprio);
}

/**
 * `pread` into a buffer of `group` (`offset` -1: the file's position, for pipes and sockets);
 * `length` caps the bytes (0: the whole buffer). Since 5.7 (rings of provided buffers: 5.19).
 */
export function prepReadSelect(
  sqe: Sqe,
  fd: number,
  group: BufferGroup,
  offset: Offset | -1,
  length = 0,
): Sqe {
  checkFd(fd);
  group = ringNamed(group, sqe?.u32);
  const id = groupOf(sqe, group);
  checkOffsetOrPosition(offset, "offset");
  checkU32(length, "length");
  checkIncrementalLength(group, length, "prepReadSelect");
  writeRw(sqe, abi.IORING_OP_READ, fd, 0, length, offset);
  return selectFrom(sqe, id, 0);
}

/**
 * A read that stays armed on a pollable file (a pipe, a socket, an eventfd): one CQE per arrival
 * of data, each with a buffer of `group` and `IORING_CQE_F_MORE`, until an error, the end of the
 * stream (`res` 0), a cancel or `-ENOBUFS`; or a last CQE of data (with a buffer, no `F_MORE`)
 * when the kernel found the CQ full: issue it again. Each read may fill a whole buffer: the kernel refuses
 * a cap (`EINVAL` for a non-zero `len`, on 6.18), so `length` must be 0. A pipe opened by its path
 * (`< fifo`, bash's `< <(cmd)`) never reported its end this way on 6.18, once its writer had
 * gone (a plain read returns 0). Since 6.7.
 */
export function prepReadMultishot(sqe: Sqe, fd: number, group: BufferGroup, length = 0): Sqe {
  checkFd(fd);
  const id = groupOf(sqe, group);
  if (length !== 0) {
    throw new RangeError(
      `length must be 0, got ${
        shown(length)
      }: a multishot read fills whole buffers (size the group's buffers instead)`,
    );
  }
  writeRw(sqe, abi.IORING_OP_READ_MULTISHOT, fd, 0, 0, 0);
  return selectFrom(sqe, id, 0);
}

/**
 * Hands `count` buffers of `size` bytes, cut from the start of `memory`, to the kernel as buffer
 * group `group` with ids `startId`, `startId + 1`, ... (the classic provided buffers: each is used
 * once, then must be provided again). Completes with 0 (`-EINVAL` if the group is a ring of
 * provided buffers). `memory` must stay referenced, and not be moved, until every buffer is used
 * or removed ({@link prepRemoveBuffers}). Since 5.7; rings ({@link BufferRing}) are faster.
 */
export function prepProvideBuffers(
  sqe: Sqe,
  memory: ArrayBufferView,
  count: number,
  size: number,
  group: number,
  startId = 0,
): Sqe {
  checkBuffer(memory, "memory");
  checkU32(count, "count", MAX_BIDS);
  if (count === 0) throw new RangeError("count must be at least 1");
  checkU32(size, "size", 0x7fffffff);
  if (size === 0) throw new RangeError("size must be at least 1");
  checkU32(group, "group", 0xffff);
  checkU32(startId, "startId", 0xffff);
  if (startId + count > MAX_BIDS) {
    throw new RangeError(`ids ${startId}..${startId + count - 1} pass the last id, ${MAX_BIDS - 1}`);
  }
  const length = byteLengthOf(memory);
  if (count * size > length) {
    throw new RangeError(
      `${count} buffers of ${size} bytes need ${count * size} bytes; memory holds ${length}`,
    );
  }
  writeRw(sqe, abi.IORING_OP_PROVIDE_BUFFERS, count, 0, size, startId);
  storeAddressOf(sqe, memory, W.addrLo);
  writeGroup(sqe, group);
  return sqe;
}

/**
 * Takes up to `count` unused buffers of group `group` back from the kernel (provided with
 * {@link prepProvideBuffers}); completes with how many it took (0 when none are left), `-ENOENT`
 * for a group never provided, `-EINVAL` for a ring's group. Since 5.7.
 */
export function prepRemoveBuffers(sqe: Sqe, count: number, group: number): Sqe {
  checkU32(count, "count", MAX_BIDS);
  if (count === 0) throw new RangeError("count must be at least 1");
  checkU32(group, "group", 0xffff);
  writeRw(sqe, abi.IORING_OP_REMOVE_BUFFERS, count, 0, 0, 0);
  writeGroup(sqe, group);
  return sqe;
}

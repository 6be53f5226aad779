/**
 * `prep*` helpers for sockets: `socket`, `bind`, `listen`, `accept`, `connect`, `send`, `recv`,
 * `sendmsg`, `recvmsg`, zero-copy sends and `shutdown`, filled as liburing's `io_uring_prep_*`
 * do. Arguments are checked before anything reaches the kernel; the buffers and structs an SQE
 * points at must stay referenced until its CQE.
 *
 * These run with the process's full authority, as every FFI caller does: Deno's `--allow-net`
 * does not see them.
 *
 * @module
 */

import * as abi from "./abi.ts";
import {
  badNumber,
  bufferAddressed,
  checkBits32,
  checkBuffer,
  checkFd,
  checkFlagBits,
  checkFlags,
  checkLength,
  checkU32,
  shown,
} from "./memory.ts";
import { type Msghdr, prepareMsghdr } from "./msghdr.ts";
import {
  optionalLength,
  setIoprio,
  storeAddressed,
  storeAddressOf,
  targetSlot,
  writeRw,
} from "./prep_base.ts";
import {
  checkSocketAddress,
  checkSpecified,
  lengthToSend,
  roomForAcceptedPeer,
  type SocketAddress,
} from "./sockaddr.ts";
import { type Sqe, W } from "./sqe.ts";

const OP_FLAGS = W.opFlags, FILE_INDEX = W.spliceFdIn, BUF_INDEX = W.bufIndex;

/**
 * Throws for `SOCK_CLOEXEC` in `bits` of an SQE that installs a registered file: such a file has
 * no fd to close on exec, and the kernel refuses it (`EINVAL`).
 */
function refuseCloexec(bits: number, what: string): void {
  if (typeof bits === "number" && (bits & abi.SOCK_CLOEXEC) !== 0) {
    throw new RangeError(
      `${what} must not hold SOCK_CLOEXEC for a registered file slot (it has no fd to close)`,
    );
  }
}

/**
 * `socket(domain, type, protocol)`: completes with the new socket's fd. `type` may carry
 * `SOCK_NONBLOCK` and `SOCK_CLOEXEC`; `flags` must be 0 (reserved). Since 5.19.
 */
export function prepSocket(sqe: Sqe, domain: number, type: number, protocol = 0, flags = 0): Sqe {
  checkU32(domain, "domain", 0x7fffffff);
  checkFlags(type, "type");
  // (The kernel refuses other bits above the type's own four: EINVAL.)
  if ((type & ~(0xf | abi.SOCK_NONBLOCK | abi.SOCK_CLOEXEC)) !== 0) {
    throw new RangeError(
      `type must be a socket type (SOCK_STREAM, ...) with at most SOCK_NONBLOCK and SOCK_CLOEXEC, got 0x${
        (type >>> 0).toString(16)
      }`,
    );
  }
  checkU32(protocol, "protocol", 0x7fffffff);
  checkFlags(flags, "flags");
  if (flags !== 0) {
    throw new RangeError(`flags must be 0 (reserved: the kernel refuses others), got ${flags}`);
  }
  writeRw(sqe, abi.IORING_OP_SOCKET, domain, 0, protocol, type);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  setIoprio(sqe, 0);
  return sqe;
}

/**
 * {@link prepSocket} into registered file slot `fileIndex` (or `IORING_FILE_INDEX_ALLOC`: the
 * kernel picks a free slot and completes with it): later SQEs name the socket with
 * `IOSQE_FIXED_FILE`. Since 5.19.
 */
export function prepSocketDirect(
  sqe: Sqe,
  domain: number,
  type: number,
  protocol: number,
  fileIndex: number,
  flags = 0,
): Sqe {
  const slot = targetSlot(fileIndex);
  refuseCloexec(type, "type");
  prepSocket(sqe, domain, type, protocol, flags);
  sqe.u32[sqe.base + FILE_INDEX] = slot;
  return sqe;
}

/** `bind(fd, address)`. Since 6.11. */
export function prepBind(sqe: Sqe, fd: number, address: SocketAddress): Sqe {
  return writeAddressed(sqe, abi.IORING_OP_BIND, fd, address);
}

/** An opcode that takes a socket and an address: the address in `addr`, its length in `off`. */
function writeAddressed(sqe: Sqe, opcode: number, fd: number, address: SocketAddress): Sqe {
  checkFd(fd);
  checkSocketAddress(address);
  checkSpecified(address, opcode === abi.IORING_OP_BIND ? "bind" : "connect");
  writeRw(sqe, opcode, fd, 0, 0, lengthToSend(address));
  storeAddressOf(sqe, address.bytes, W.addrLo);
  setIoprio(sqe, 0);
  return sqe;
}

/**
 * `listen(fd, backlog)`: `backlog` is an `int`, which the kernel caps at `net.core.somaxconn`
 * (a negative one means that cap). Since 6.11.
 */
export function prepListen(sqe: Sqe, fd: number, backlog: number): Sqe {
  checkFd(fd);
  if (!(Number.isInteger(backlog) && backlog >= -0x8000_0000 && backlog <= 0x7fff_ffff)) {
    throw badNumber(backlog, `backlog must be a 32-bit integer, got ${shown(backlog)}`);
  }
  writeRw(sqe, abi.IORING_OP_LISTEN, fd, 0, backlog >>> 0, 0);
  setIoprio(sqe, 0);
  return sqe;
}

/**
 * `accept4(fd, peer, flags)`: completes with the connection's fd. When `peer` is given (an empty
 * `new SocketAddress()`), the kernel writes the client's address into it; `flags` takes
 * `SOCK_NONBLOCK` and `SOCK_CLOEXEC`. Since 5.5.
 */
export function prepAccept(sqe: Sqe, fd: number, peer: SocketAddress | null = null, flags = 0): Sqe {
  return writeAccept(sqe, fd, peer, flags, 0);
}

/**
 * {@link prepAccept} that stays armed: one CQE per connection, each with `IORING_CQE_F_MORE`
 * until the last, which ends it: an error, a cancel, or a connection (an fd to keep) when the
 * kernel found the CQ full; then issue it again. It reports no peer address: one `sockaddr` shared
 * by every connection would hold a mix of them (the kernel writes each address within the length
 * the one before left). Since 5.19.
 */
export function prepMultishotAccept(sqe: Sqe, fd: number, flags = 0): Sqe {
  return writeAccept(sqe, fd, null, flags, abi.IORING_ACCEPT_MULTISHOT);
}

/**
 * {@link prepMultishotAccept} into registered file slots the kernel picks
 * (`IORING_FILE_INDEX_ALLOC`): each CQE's result is a slot, for `IOSQE_FIXED_FILE`. When no slot
 * is free the CQE is `-ENFILE`, and that connection is lost: the kernel accepted it, then closed
 * it (the client reads the end of the stream); it does not stay in the listen backlog. Since 5.19.
 */
export function prepMultishotAcceptDirect(sqe: Sqe, fd: number, flags = 0): Sqe {
  refuseCloexec(flags, "flags");
  writeAccept(sqe, fd, null, flags, abi.IORING_ACCEPT_MULTISHOT);
  sqe.u32[sqe.base + FILE_INDEX] = abi.IORING_FILE_INDEX_ALLOC;
  return sqe;
}

/**
 * {@link prepAccept} into registered file slot `fileIndex` instead of an fd (since 5.15), or into
 * a free slot the kernel picks and completes with (`IORING_FILE_INDEX_ALLOC`, since 5.19). With no
 * free slot it completes with `-ENFILE` having accepted and closed the connection (lost, not left
 * in the backlog).
 */
export function prepAcceptDirect(
  sqe: Sqe,
  fd: number,
  peer: SocketAddress | null,
  flags: number,
  fileIndex: number,
): Sqe {
  const slot = targetSlot(fileIndex);
  refuseCloexec(flags, "flags");
  writeAccept(sqe, fd, peer, flags, 0);
  sqe.u32[sqe.base + FILE_INDEX] = slot;
  return sqe;
}

function writeAccept(sqe: Sqe, fd: number, peer: SocketAddress | null, flags: number, ioprio: number): Sqe {
  checkFd(fd);
  if (peer !== null) checkSocketAddress(peer, "peer");
  // accept4's flags: the kernel refuses any other bit (EINVAL).
  checkFlagBits(flags, abi.SOCK_NONBLOCK | abi.SOCK_CLOEXEC, "flags", "SOCK_NONBLOCK and SOCK_CLOEXEC");
  writeRw(sqe, abi.IORING_OP_ACCEPT, fd, 0, 0, 0);
  if (peer !== null) {
    storeAddressOf(sqe, peer.bytes, W.addrLo);
    storeAddressOf(sqe, roomForAcceptedPeer(peer), W.offLo); // where the length goes
  }
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  setIoprio(sqe, ioprio);
  return sqe;
}

/** `connect(fd, address)`. Since 5.5. */
export function prepConnect(sqe: Sqe, fd: number, address: SocketAddress): Sqe {
  return writeAddressed(sqe, abi.IORING_OP_CONNECT, fd, address);
}

/**
 * Throws unless `ioprio` is 0 or `IORING_RECVSEND_POLL_FIRST`, all a send or receive into its own
 * buffer takes (`what` names the prep): the kernel refuses multishot and bundle bits without a
 * buffer group (`EINVAL`), or takes a bundle for a plain send and posts two CQEs for it.
 */
function checkPollFirst(ioprio: number, what: string): void {
  checkU32(ioprio, "ioprio", 0xffff);
  if ((ioprio & ~abi.IORING_RECVSEND_POLL_FIRST) !== 0) {
    throw new RangeError(
      `${what}: ioprio may hold only IORING_RECVSEND_POLL_FIRST here, got 0x${ioprio.toString(16)} ` +
        "(multishot and bundles need a buffer group: see prepRecvMultishot, prepRecvSelect, prepSendSelect)",
    );
  }
}

/**
 * `send(fd, buf, buf.byteLength, flags)` (`MSG_NOSIGNAL`, `MSG_MORE`, ...); `ioprio` takes
 * `IORING_RECVSEND_POLL_FIRST`. A stream socket may send less than asked: the CQE's `res` says
 * how much. Since 5.6.
 */
export function prepSend(sqe: Sqe, fd: number, buf: ArrayBufferView, flags = 0, ioprio = 0): Sqe {
  checkPollFirst(ioprio, "prepSend");
  return writeSendRecv(sqe, abi.IORING_OP_SEND, fd, buf, flags, ioprio);
}

/**
 * `sendto(fd, buf, buf.byteLength, flags, address)`: {@link prepSend} to `address` (in the SQE's
 * `addr2` and `addr_len`), for a datagram socket that is not connected, or one sent elsewhere
 * than its peer. Keep `address` referenced until the CQE. Since 6.1.
 */
export function prepSendto(
  sqe: Sqe,
  fd: number,
  buf: ArrayBufferView,
  address: SocketAddress,
  flags = 0,
  ioprio = 0,
): Sqe {
  checkDestination(address, "prepSendto");
  checkPollFirst(ioprio, "prepSendto");
  writeSendRecv(sqe, abi.IORING_OP_SEND, fd, buf, flags, ioprio);
  return writeDestination(sqe, address);
}

/** Throws unless `address` is a {@link SocketAddress} that names somewhere (`what` names the prep). */
function checkDestination(address: SocketAddress, what: string): void {
  checkSocketAddress(address);
  checkSpecified(address, what);
}

/** Writes `address` as a send's destination: `addr2` (the `off` field) and `addr_len`. */
function writeDestination(sqe: Sqe, address: SocketAddress): Sqe {
  storeAddressOf(sqe, address.bytes, W.offLo);
  // addr_len is the low half of the word at byte 44 (its high half, __pad3, must be 0).
  sqe.u32[sqe.base + FILE_INDEX] = lengthToSend(address);
  return sqe;
}

/**
 * `recv(fd, buf, buf.byteLength, flags)` (`MSG_WAITALL`, `MSG_PEEK`, ...): completes with the
 * bytes received, 0 at the end of a stream. `ioprio` takes `IORING_RECVSEND_POLL_FIRST`. Since
 * 5.6.
 */
export function prepRecv(sqe: Sqe, fd: number, buf: ArrayBufferView, flags = 0, ioprio = 0): Sqe {
  checkPollFirst(ioprio, "prepRecv");
  return writeSendRecv(sqe, abi.IORING_OP_RECV, fd, buf, flags, ioprio);
}

/**
 * The `zcFlags` bits a zero-copy send takes here: `POLL_FIRST` and `REPORT_USAGE` (the kernel
 * refuses others, `EINVAL`), and `FIXED_BUF` for the prep that sets it itself; `noFixed`, for the
 * others, says why they refuse it.
 */
function checkZcFlags(zcFlags: number, noFixed?: string): void {
  checkU32(zcFlags, "zcFlags", 0xffff);
  if (noFixed !== undefined && (zcFlags & abi.IORING_RECVSEND_FIXED_BUF)) {
    throw new RangeError(`zcFlags: IORING_RECVSEND_FIXED_BUF ${noFixed}`);
  }
  const stray = zcFlags &
    ~(abi.IORING_RECVSEND_POLL_FIRST | abi.IORING_SEND_ZC_REPORT_USAGE | abi.IORING_RECVSEND_FIXED_BUF);
  if (stray !== 0) {
    throw new RangeError(
      `zcFlags may hold IORING_RECVSEND_POLL_FIRST and IORING_SEND_ZC_REPORT_USAGE, got 0x${
        zcFlags.toString(16)
      }`,
    );
  }
}

/**
 * A zero-copy {@link prepSend}: the kernel sends from `buf` itself and posts two CQEs, the
 * result (with `IORING_CQE_F_MORE`) and later a notification (`IORING_CQE_F_NOTIF`) once it no
 * longer reads `buf`. Keep `buf` unchanged and referenced until the notification. Two cases
 * differ (6.18): with `IOSQE_CQE_SKIP_SUCCESS` the kernel refuses it (one CQE, `-EINVAL`, no
 * notification); cancelled as a member of a failed link it completes with `-ECANCELED` without
 * `F_MORE`, and a notification may still follow: give each zero-copy send its own user_data.
 * `zcFlags` (in `ioprio`) takes `IORING_RECVSEND_POLL_FIRST` and `IORING_SEND_ZC_REPORT_USAGE`.
 * Since 6.0.
 */
export function prepSendZc(sqe: Sqe, fd: number, buf: ArrayBufferView, flags = 0, zcFlags = 0): Sqe {
  checkZcFlags(zcFlags, "needs a buffer index: use prepSendZcFixed");
  return writeSendRecv(sqe, abi.IORING_OP_SEND_ZC, fd, buf, flags, zcFlags);
}

/**
 * {@link prepSendZc} to `address` (`addr2`, `addr_len`): a zero-copy `sendto`, for a datagram
 * socket that is not connected. Keep `address` referenced until the CQE. Since 6.0.
 */
export function prepSendZcTo(
  sqe: Sqe,
  fd: number,
  buf: ArrayBufferView,
  address: SocketAddress,
  flags = 0,
  zcFlags = 0,
): Sqe {
  checkDestination(address, "prepSendZcTo");
  prepSendZc(sqe, fd, buf, flags, zcFlags);
  return writeDestination(sqe, address);
}

/**
 * {@link prepSendZc} from registered buffer `bufIndex` (`buf` must lie inside it). Since 6.0.
 */
export function prepSendZcFixed(
  sqe: Sqe,
  fd: number,
  buf: ArrayBufferView,
  flags: number,
  zcFlags: number,
  bufIndex: number,
): Sqe {
  checkZcFlags(zcFlags);
  checkU32(bufIndex, "bufIndex", 0xffff);
  writeSendRecv(sqe, abi.IORING_OP_SEND_ZC, fd, buf, flags, zcFlags | abi.IORING_RECVSEND_FIXED_BUF);
  const u32 = sqe.u32, at = sqe.base + BUF_INDEX;
  u32[at] = (u32[at] & 0xffff0000) | bufIndex;
  return sqe;
}

function writeSendRecv(
  sqe: Sqe,
  opcode: number,
  fd: number,
  buf: ArrayBufferView,
  flags: number,
  ioprio: number,
): Sqe {
  checkFd(fd);
  checkFlags(flags, "flags");
  checkU32(ioprio, "ioprio", 0xffff);
  const length = bufferAddressed(buf);
  checkLength(length);
  writeRw(sqe, opcode, fd, 0, length, 0);
  storeAddressed(sqe);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  setIoprio(sqe, ioprio);
  return sqe;
}

/**
 * `sendmsg(fd, msg, flags)`: the data of `msg`'s iovecs, to its name (if any), with its control
 * data. Since 5.3.
 */
export function prepSendmsg(sqe: Sqe, fd: number, msg: Msghdr, flags = 0, ioprio = 0): Sqe {
  checkPollFirst(ioprio, "prepSendmsg");
  return writeMsg(sqe, abi.IORING_OP_SENDMSG, fd, msg, flags, ioprio, false, "prepSendmsg");
}

/**
 * `recvmsg(fd, msg, flags)`: receives into `msg`'s iovecs; when the CQE arrives, `msg.name`
 * holds the sender, `msg.flags` `MSG_TRUNC`/`MSG_CTRUNC`, and `msg.controlLength` the control
 * data's length. Since 5.3.
 */
export function prepRecvmsg(sqe: Sqe, fd: number, msg: Msghdr, flags = 0, ioprio = 0): Sqe {
  checkPollFirst(ioprio, "prepRecvmsg");
  return writeMsg(sqe, abi.IORING_OP_RECVMSG, fd, msg, flags, ioprio, true, "prepRecvmsg");
}

/**
 * A zero-copy {@link prepSendmsg}: two CQEs, as {@link prepSendZc} posts; keep the buffers
 * unchanged until the notification. Since 6.1.
 */
export function prepSendmsgZc(sqe: Sqe, fd: number, msg: Msghdr, flags = 0, zcFlags = 0): Sqe {
  checkZcFlags(zcFlags, "is not for prepSendmsgZc (its iovecs name the memory)");
  return writeMsg(sqe, abi.IORING_OP_SENDMSG_ZC, fd, msg, flags, zcFlags, false, "prepSendmsgZc");
}

function writeMsg(
  sqe: Sqe,
  opcode: number,
  fd: number,
  msg: Msghdr,
  flags: number,
  ioprio: number,
  receive: boolean,
  what: string,
): Sqe {
  checkFd(fd);
  checkFlags(flags, "flags");
  checkU32(ioprio, "ioprio", 0xffff);
  prepareMsghdr(msg, receive, what);
  // A send to an empty address (new SocketAddress(), made for the kernel to fill) would send to
  // AF_UNSPEC: refused as connect and bind refuse it. A name of length 0 (a stream sender's,
  // reported by a receive) sends to the socket's peer.
  if (!receive && msg.name !== null && lengthToSend(msg.name) > 0) checkSpecified(msg.name, what);
  writeRw(sqe, opcode, fd, 0, 1, 0);
  storeAddressOf(sqe, msg.bytes, W.addrLo);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  setIoprio(sqe, ioprio);
  return sqe;
}

/** `shutdown(fd, how)`: `SHUT_RD`, `SHUT_WR` or `SHUT_RDWR`. Since 5.11. */
export function prepShutdown(sqe: Sqe, fd: number, how: number): Sqe {
  checkFd(fd);
  checkU32(how, "how", abi.SHUT_RDWR);
  writeRw(sqe, abi.IORING_OP_SHUTDOWN, fd, 0, how, 0);
  setIoprio(sqe, 0);
  return sqe;
}

/**
 * A socket command (`IORING_OP_URING_CMD` on a socket, liburing's `io_uring_prep_cmd_sock`):
 * - `SOCKET_URING_OP_SIOCINQ` / `SIOCOUTQ`: completes with the bytes waiting to be read / not yet
 *   sent, as `ioctl(SIOCINQ/SIOCOUTQ)`; `level`, `optname` and `optval` are unused (0, 0, null);
 * - `SOCKET_URING_OP_GETSOCKOPT`: `getsockopt(fd, level, optname)` into `optval` (at most
 *   `optlen` bytes, default all of it); completes with the option's length. The kernel takes
 *   only `SOL_SOCKET` here (`-EOPNOTSUPP` otherwise);
 * - `SOCKET_URING_OP_SETSOCKOPT`: `setsockopt(fd, level, optname, optval, optlen)`; completes
 *   with 0.
 *
 * `SIOCINQ`/`SIOCOUTQ` need a protocol with an `ioctl` (TCP, UDP, ...): on a Unix socket they
 * fail with `-EOPNOTSUPP` (the socket options work there, 6.18). Since 6.7.
 */
export function prepCmdSock(
  sqe: Sqe,
  cmdOp: number,
  fd: number,
  level = 0,
  optname = 0,
  optval: ArrayBufferView | null = null,
  optlen?: number,
): Sqe {
  checkU32(cmdOp, "cmdOp");
  checkFd(fd);
  checkBits32(level, "level");
  checkBits32(optname, "optname");
  const length = optionalLength(optval, optlen, "optval", "optlen");
  writeRw(sqe, abi.IORING_OP_URING_CMD, fd, 0, 0, 0);
  const u32 = sqe.u32, b = sqe.base;
  u32[b + W.offLo] = cmdOp; // cmd_op (its __pad1, the offset's high word, stays 0)
  u32[b + W.addrLo] = level >>> 0; // level and optname share the addr field
  u32[b + W.addrHi] = optname >>> 0;
  u32[b + FILE_INDEX] = length; // optlen
  if (optval !== null) storeAddressOf(sqe, optval, W.addr3Lo); // optval (else 0, from writeRw)
  return sqe;
}

/**
 * `getsockopt(fd, level, optname)` (the kernel takes `SOL_SOCKET` only) through the ring ({@link prepCmdSock}): the value lands
 * in `optval` (an `Int32Array(1)` for the int options); completes with its length. Since 6.7.
 */
export function prepGetsockopt(
  sqe: Sqe,
  fd: number,
  level: number,
  optname: number,
  optval: ArrayBufferView,
): Sqe {
  checkBuffer(optval, "optval");
  return prepCmdSock(sqe, abi.SOCKET_URING_OP_GETSOCKOPT, fd, level, optname, optval);
}

/**
 * `setsockopt(fd, level, optname, optval)` through the ring ({@link prepCmdSock}); completes
 * with 0. Since 6.7.
 */
export function prepSetsockopt(
  sqe: Sqe,
  fd: number,
  level: number,
  optname: number,
  optval: ArrayBufferView,
): Sqe {
  checkBuffer(optval, "optval");
  return prepCmdSock(sqe, abi.SOCKET_URING_OP_SETSOCKOPT, fd, level, optname, optval);
}

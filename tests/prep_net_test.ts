/**
 * Kernel-free tests of the socket prep helpers, `SocketAddress` and `Msghdr`: every field each
 * writes, byte for byte, against layouts written out from the kernel's and glibc's headers
 * (include/uapi/linux/io_uring.h in tests/_sqe_image.ts; netinet/in.h, sys/un.h and
 * bits/socket.h here), not from src/abi.ts.
 */

import assert from "node:assert/strict";
import {
  IORING_FILE_INDEX_ALLOC,
  Iovecs,
  Msghdr,
  prepAccept,
  prepAcceptDirect,
  prepBind,
  prepConnect,
  prepListen,
  prepMsgRing,
  prepMultishotAccept,
  prepMultishotAcceptDirect,
  prepRead,
  prepRecv,
  prepRecvmsg,
  prepRecvMultishot,
  prepSend,
  prepSendmsg,
  prepSendmsgZc,
  prepSendto,
  prepSendZc,
  prepSendZcFixed,
  prepShutdown,
  prepSocket,
  prepSocketDirect,
  prepWrite,
  SocketAddress,
  type Sqe,
} from "../mod.ts";
import { assertSqe, freshSqe, ptr } from "./_sqe_image.ts";

/** Opcode numbers from `enum io_uring_op`. */
const OP = {
  SENDMSG: 9,
  RECVMSG: 10,
  ACCEPT: 13,
  CONNECT: 16,
  SEND: 26,
  RECV: 27,
  SHUTDOWN: 34,
  MSG_RING: 40,
  SOCKET: 45,
  SEND_ZC: 47,
  SENDMSG_ZC: 48,
  BIND: 56,
  LISTEN: 57,
} as const;

// Linux values (bits/socket.h, bits/socket_type.h, sys/socket.h), written out.
const AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, SOCK_STREAM = 1, SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000, MSG_NOSIGNAL = 0x4000, MSG_WAITALL = 0x100;

Deno.test("SocketAddress.inet (IPv4): sockaddr_in is family, port big-endian, address, 8 zero bytes", () => {
  const a = SocketAddress.inet("127.0.0.1", 0x1f90);
  assert.equal(a.bytes.byteLength, 128);
  assert.deepEqual([...a.bytes.subarray(0, 16)], [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.ok(a.bytes.subarray(16).every((b) => b === 0));
  assert.equal(a.length, 16);
  assert.equal(a.family, AF_INET);
  assert.equal(a.hostname, "127.0.0.1");
  assert.equal(a.port, 8080);
  assert.equal(String(a), "127.0.0.1:8080");
  assert.equal(SocketAddress.inet("255.255.255.255", 65535).toString(), "255.255.255.255:65535");
  assert.equal(SocketAddress.inet("0.0.0.0", 0).toString(), "0.0.0.0:0");
});

Deno.test("SocketAddress.inet (IPv6): sockaddr_in6 is family, port, flow info (both big-endian), address, scope id", () => {
  const a = SocketAddress.inet("fe80::1:2", 443, { scopeId: 3, flowInfo: 0x12345 });
  const want = new Uint8Array(28);
  want.set([10, 0, 0x01, 0xbb, 0x00, 0x01, 0x23, 0x45, 0xfe, 0x80]);
  want.set([0, 1, 0, 2], 20);
  want.set([3, 0, 0, 0], 24); // sin6_scope_id, host order
  assert.deepEqual([...a.bytes.subarray(0, 28)], [...want]);
  assert.equal(a.length, 28);
  assert.equal(a.family, AF_INET6);
  assert.equal(a.hostname, "fe80::1:2");
  assert.equal(a.port, 443);
  assert.equal(a.scopeId, 3);
  assert.equal(String(a), "[fe80::1:2]:443");
});

Deno.test("SocketAddress.inet parses IPv6 as inet_pton does and shows it as RFC 5952 says", () => {
  const shown = (text: string) => SocketAddress.inet(text, 1).hostname;
  const bytesOf = (text: string) => [...SocketAddress.inet(text, 1).bytes.subarray(8, 24)];
  assert.equal(shown("::"), "::");
  assert.equal(shown("::1"), "::1");
  assert.equal(shown("1::"), "1::");
  assert.equal(shown("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  assert.equal(shown("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1"); // the first of two equal runs
  assert.equal(shown("2001:0:0:1:0:0:0:1"), "2001:0:0:1::1"); // the longest run
  assert.equal(shown("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1"); // one zero word stays
  assert.equal(shown("1:2:3:4:5:6:7::"), "1:2:3:4:5:6:7:0");
  assert.equal(shown("::ffff:192.0.2.1"), "::ffff:192.0.2.1");
  assert.equal(shown("::ffff:c000:0201"), "::ffff:192.0.2.1");
  assert.deepEqual(bytesOf("::1.2.3.4"), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
  assert.deepEqual(bytesOf("1:2:3:4:5:6:7.8.9.10"), [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 7, 8, 9, 10]);
  assert.deepEqual(bytesOf("abcd::"), [0xab, 0xcd, ...new Array(14).fill(0)]);
  for (
    const bad of [
      "",
      ":",
      ":::",
      "1:::2",
      "1::2::3",
      ":1::",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "g::",
      "::1.2.3",
      "::1.2.3.256",
      "1.2.3.4::",
      "::ffff:01.2.3.4",
      "[::1]",
      "fe80::1%2",
      "localhost",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "1.2.3.-4",
      " 1.2.3.4",
    ]
  ) {
    assert.throws(() => SocketAddress.inet(bad, 1), TypeError, JSON.stringify(bad));
  }
  assert.throws(() => SocketAddress.inet("[::1]", 1), /without the brackets/);
  assert.throws(() => SocketAddress.inet("fe80::1%2", 1), /scopeId/);
  assert.throws(() => SocketAddress.inet("example.com", 1), /Deno\.resolveDns/);
});

Deno.test("SocketAddress.inet refuses bad ports, scopes and flow labels", () => {
  for (const port of [-1, 65536, 1.5, NaN, "80" as unknown as number, 80n as unknown as number]) {
    assert.throws(
      () => SocketAddress.inet("127.0.0.1", port),
      typeof port === "number" ? RangeError : TypeError,
    );
  }
  assert.throws(() => SocketAddress.inet("::1", 1, { scopeId: -1 }), RangeError);
  // sin6_flowinfo: the traffic class and the flow label (IPV6_FLOWINFO_MASK), big-endian.
  assert.throws(() => SocketAddress.inet("::1", 1, { flowInfo: 0x10000000 }), RangeError);
  const flow = SocketAddress.inet("::1", 1, { flowInfo: 0x0ff12345 });
  assert.deepEqual([...flow.bytes.subarray(4, 8)], [0x0f, 0xf1, 0x23, 0x45]);
  assert.equal(SocketAddress.inet("::1", 1, null as never).port, 1); // null options: the defaults
  assert.throws(() => SocketAddress.inet("127.0.0.1", 1, { scopeId: 1 }), /IPv6/);
  assert.throws(() => SocketAddress.inet(1 as unknown as string, 1), TypeError);
});

Deno.test("SocketAddress.unix: sun_path with its NUL; abstract names without one; the unnamed address", () => {
  const a = SocketAddress.unix("/run/x.sock");
  assert.deepEqual([...a.bytes.subarray(0, 2 + 12)], [1, 0, ...new TextEncoder().encode("/run/x.sock"), 0]);
  assert.equal(a.length, 2 + 11 + 1);
  assert.equal(a.family, AF_UNIX);
  assert.equal(a.path, "/run/x.sock");
  assert.equal(String(a), "unix:/run/x.sock");
  assert.equal(a.hostname, "");
  assert.equal(a.port, 0);
  const abstract = SocketAddress.unix("\0name");
  assert.deepEqual([...abstract.bytes.subarray(0, 7)], [1, 0, 0, 110, 97, 109, 101]);
  assert.equal(abstract.length, 2 + 5); // no NUL at the end: every byte is the name
  assert.equal(abstract.path, "\0name");
  assert.equal(String(abstract), "unix:\\u0000name");
  const unnamed = SocketAddress.unix("");
  assert.equal(unnamed.length, 2);
  assert.equal(unnamed.path, "");
  // sun_path is 108 bytes: 107 and a NUL for a path, all 108 for an abstract name.
  // sun_path holds 108 bytes: 107 and a NUL, or all 108 without one (the kernel ends it).
  assert.equal(SocketAddress.unix("x".repeat(107)).length, 110);
  const full = SocketAddress.unix("x".repeat(108));
  assert.equal(full.length, 110);
  assert.equal(full.path, "x".repeat(108));
  assert.throws(() => SocketAddress.unix("x".repeat(109)), /at most 108 bytes, got 109/);
  assert.equal(SocketAddress.unix("\0" + "x".repeat(107)).length, 110);
  assert.throws(() => SocketAddress.unix("\0" + "x".repeat(108)), /at most 108 bytes/);
  assert.throws(() => SocketAddress.unix("é".repeat(55)), /got 110/); // bytes, not characters
  assert.throws(() => SocketAddress.unix("/tmp/\ud800"), /lone surrogate/); // no UTF-8 for it
  assert.throws(() => SocketAddress.unix("a\0b"), /NUL/);
});

Deno.test("new SocketAddress(): empty, with the whole storage as its room", () => {
  const a = new SocketAddress();
  assert.equal(a.family, 0);
  assert.equal(a.length, 128);
  assert.equal(String(a), "unknown");
  assert.equal(a.hostname, "");
  assert.equal(a.path, "");
});

Deno.test("prepSocket / prepSocketDirect: domain in fd, type in off, protocol in len, file_index + 1", () => {
  let sqe = freshSqe();
  prepSocket(sqe, AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 6);
  assertSqe(sqe, { opcode: OP.SOCKET, fd: AF_INET6, off: BigInt(SOCK_STREAM | SOCK_CLOEXEC), len: 6 });
  sqe = freshSqe();
  prepSocketDirect(sqe, AF_UNIX, SOCK_DGRAM, 0, 4);
  assertSqe(sqe, { opcode: OP.SOCKET, fd: AF_UNIX, off: BigInt(SOCK_DGRAM), spliceFdIn: 5 });
  sqe = freshSqe();
  prepSocketDirect(sqe, AF_UNIX, SOCK_DGRAM, 0, IORING_FILE_INDEX_ALLOC);
  assertSqe(sqe, { opcode: OP.SOCKET, fd: AF_UNIX, off: BigInt(SOCK_DGRAM), spliceFdIn: 0xffffffff });
  assert.throws(() => prepSocket(freshSqe(), -1, SOCK_STREAM), RangeError);
  assert.throws(() => prepSocket(freshSqe(), AF_INET, -1), RangeError);
  assert.throws(() => prepSocketDirect(freshSqe(), AF_INET, SOCK_STREAM, 0, 0xfffffffe), RangeError);
});

Deno.test("prepBind / prepConnect: the address in addr, its length in off; prepListen: backlog in len", () => {
  const address = SocketAddress.inet("10.1.2.3", 99);
  let sqe = freshSqe();
  prepBind(sqe, 7, address);
  assertSqe(sqe, { opcode: OP.BIND, fd: 7, addr: ptr(address.bytes), off: 16n });
  sqe = freshSqe();
  const unix = SocketAddress.unix("/a");
  prepConnect(sqe, 7, unix);
  assertSqe(sqe, { opcode: OP.CONNECT, fd: 7, addr: ptr(unix.bytes), off: 5n });
  sqe = freshSqe();
  prepListen(sqe, 7, 128);
  assertSqe(sqe, { opcode: OP.LISTEN, fd: 7, len: 128 });
  // An int, as listen(2) takes it (the kernel caps it at somaxconn; -1 means the cap).
  sqe = freshSqe();
  prepListen(sqe, 7, -1);
  assertSqe(sqe, { opcode: OP.LISTEN, fd: 7, len: 0xffffffff });
  assert.throws(() => prepListen(freshSqe(), 7, 2 ** 31), RangeError);
  assert.throws(() => prepListen(freshSqe(), 7, 1.5), RangeError);
  for (
    const notAddress of [undefined, null, "127.0.0.1:80", new Uint8Array(16), { bytes: new Uint8Array(128) }]
  ) {
    assert.throws(() => prepConnect(freshSqe(), 7, notAddress as SocketAddress), /must be a SocketAddress/);
    assert.throws(() => prepBind(freshSqe(), 7, notAddress as SocketAddress), /must be a SocketAddress/);
  }
});

Deno.test("prepBind / prepConnect: an empty address is refused; SocketAddress.unspecified() means AF_UNSPEC", () => {
  // The kernel reads family 0 as AF_UNSPEC: connect dissolves the association (a TCP connection
  // is reset), bind on an IPv4 socket takes any address and port.
  assert.throws(
    () => prepConnect(freshSqe(), 7, new SocketAddress()),
    /^RangeError: connect: the address is empty \(family 0, as new SocketAddress\(\) makes it/,
  );
  assert.throws(
    () => prepBind(freshSqe(), 7, new SocketAddress()),
    /^RangeError: bind: the address is empty/,
  );
  const unspecified = SocketAddress.unspecified();
  assert.equal(unspecified.family, 0);
  const sqe = freshSqe();
  prepConnect(sqe, 7, unspecified);
  assertSqe(sqe, { opcode: OP.CONNECT, fd: 7, addr: ptr(unspecified.bytes), off: 16n });
});

Deno.test("prepAccept: the peer's storage in addr, its socklen_t (reset to 128) in off, accept_flags", () => {
  const peer = SocketAddress.inet("1.2.3.4", 5); // a used one: its length is reset to the room
  let sqe = freshSqe();
  prepAccept(sqe, 3, peer, SOCK_NONBLOCK | SOCK_CLOEXEC);
  const word = new DataView(peer.bytes.buffer, peer.bytes.byteOffset + 128, 4);
  assert.equal(word.getUint32(0, true), 128, "the room the kernel gets");
  assert.equal(peer.length, 0, "no address until the accept writes one");
  assert.equal(peer.bytes[4], 1, "the bytes stay (another SQE of the batch may hand them over)");
  assertSqe(sqe, {
    opcode: OP.ACCEPT,
    fd: 3,
    addr: ptr(peer.bytes),
    off: ptr(peer.bytes) + 128n,
    opFlags: SOCK_NONBLOCK | SOCK_CLOEXEC,
  });
  sqe = freshSqe();
  prepAccept(sqe, 3);
  assertSqe(sqe, { opcode: OP.ACCEPT, fd: 3 });
  sqe = freshSqe();
  prepMultishotAccept(sqe, 3);
  assertSqe(sqe, { opcode: OP.ACCEPT, fd: 3, ioprio: 1 }); // IORING_ACCEPT_MULTISHOT
  // A plain accept over the multishot one's SQE drops the flag.
  prepAccept(sqe, 3);
  assertSqe(sqe, { opcode: OP.ACCEPT, fd: 3 });
  sqe = freshSqe();
  prepMultishotAcceptDirect(sqe, 3, SOCK_NONBLOCK);
  assertSqe(sqe, { opcode: OP.ACCEPT, fd: 3, ioprio: 1, opFlags: SOCK_NONBLOCK, spliceFdIn: 0xffffffff });
  sqe = freshSqe();
  prepAcceptDirect(sqe, 3, null, 0, 9);
  assertSqe(sqe, { opcode: OP.ACCEPT, fd: 3, spliceFdIn: 10 });
  // A registered file has no fd to close on exec: the kernel refuses SOCK_CLOEXEC there (EINVAL).
  assert.throws(
    () => prepMultishotAcceptDirect(freshSqe(), 3, SOCK_CLOEXEC),
    /^RangeError: flags must not hold SOCK_CLOEXEC/,
  );
  assert.throws(
    () => prepAcceptDirect(freshSqe(), 3, null, SOCK_CLOEXEC, 9),
    /flags must not hold SOCK_CLOEXEC/,
  );
  assert.throws(
    () => prepSocketDirect(freshSqe(), AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0, 1),
    /^RangeError: type must not hold SOCK_CLOEXEC/,
  );
  // prepSocket's flags are reserved: the kernel refuses anything but 0.
  assert.throws(() => prepSocket(freshSqe(), AF_INET, SOCK_STREAM, 0, 1), /^RangeError: flags must be 0/);
  assert.throws(() => prepAccept(freshSqe(), 3, new Uint8Array(128) as unknown as SocketAddress), /peer/);
});

Deno.test("prepSend / prepRecv / prepSendZc: buffer in addr and len, msg_flags, ioprio flags, buf_index", () => {
  const buf = new Uint8Array(100).subarray(10, 60);
  let sqe = freshSqe();
  prepSend(sqe, 4, buf, MSG_NOSIGNAL);
  assertSqe(sqe, { opcode: OP.SEND, fd: 4, addr: ptr(buf), len: 50, opFlags: MSG_NOSIGNAL });
  sqe = freshSqe();
  prepRecv(sqe, 4, buf, MSG_WAITALL, 1); // IORING_RECVSEND_POLL_FIRST
  assertSqe(sqe, { opcode: OP.RECV, fd: 4, addr: ptr(buf), len: 50, opFlags: MSG_WAITALL, ioprio: 1 });
  sqe = freshSqe();
  prepSendZc(sqe, 4, buf, 0, 8); // IORING_SEND_ZC_REPORT_USAGE
  assertSqe(sqe, { opcode: OP.SEND_ZC, fd: 4, addr: ptr(buf), len: 50, ioprio: 8 });
  sqe = freshSqe();
  prepSendZcFixed(sqe, 4, buf, 0, 0, 3);
  assertSqe(sqe, { opcode: OP.SEND_ZC, fd: 4, addr: ptr(buf), len: 50, ioprio: 4, bufIndex: 3 });
  assert.throws(() => prepSendZc(freshSqe(), 4, buf, 0, 4), /prepSendZcFixed/);
  const msg = new Msghdr(new Iovecs([buf]));
  assert.throws(() => prepSendmsgZc(freshSqe(), 4, msg, 0, 4), /not for prepSendmsgZc/);
  assert.throws(() => prepSendZc(freshSqe(), 4, buf, 0, 0x10000), RangeError);
  assert.throws(() => prepSendZcFixed(freshSqe(), 4, buf, 0, 1.5, 0), RangeError);
  // zcFlags bits the kernel does not take for a zero-copy send (EINVAL).
  assert.throws(
    () => prepSendZc(freshSqe(), 4, buf, 0, 1 << 4),
    /^RangeError: zcFlags may hold IORING_RECVSEND_POLL_FIRST/,
  );
  assert.throws(() => prepSendZcFixed(freshSqe(), 4, buf, 0, 1 << 6, 0), /zcFlags may hold/);
  assert.throws(() => prepSend(freshSqe(), 4, [1, 2] as unknown as Uint8Array), TypeError);
  const detached = new Uint8Array(8);
  detached.buffer.transfer();
  assert.throws(() => prepRecv(freshSqe(), 4, detached), /detached/);
});

Deno.test("a file prep over a socket prep's SQE drops the socket flags it kept in ioprio (a read took them as a priority: EINVAL)", () => {
  const buf = new Uint8Array(16);
  for (
    const socketPrep of [
      (s: Sqe) => prepSend(s, 4, buf, 0, 1), // IORING_RECVSEND_POLL_FIRST
      (s: Sqe) => prepMultishotAccept(s, 4),
      (s: Sqe) => prepSendZc(s, 4, buf, 0, 8),
    ]
  ) {
    const sqe = freshSqe();
    socketPrep(sqe);
    assert.notEqual(sqe.bytes()[2] | sqe.bytes()[3], 0, "the socket prep set ioprio");
    prepRead(sqe, 3, buf, 0);
    assertSqe(sqe, { opcode: 22, fd: 3, addr: ptr(buf), len: 16 });
  }
  // The caller's own I/O priority on a file prep stays, as before.
  const sqe = freshSqe();
  sqe.setIoprio(0x0102);
  prepRead(sqe, 3, buf, 0);
  prepWrite(sqe, 3, buf, 0);
  assert.deepEqual([sqe.bytes()[2], sqe.bytes()[3]], [0x02, 0x01]);
});

Deno.test("prepShutdown: how in len, 0 to 2", () => {
  const sqe = freshSqe();
  prepShutdown(sqe, 5, 1);
  assertSqe(sqe, { opcode: OP.SHUTDOWN, fd: 5, len: 1 });
  assert.throws(() => prepShutdown(freshSqe(), 5, 3), RangeError);
});

Deno.test("prepMsgRing: target ring fd, res in len, user_data in off, msg_ring_flags, CQE flags in file_index", () => {
  let sqe = freshSqe();
  prepMsgRing(sqe, 9, -5, 0x1_0000_0002n);
  assertSqe(sqe, { opcode: OP.MSG_RING, fd: 9, len: 0xfffffffb, off: 0x1_0000_0002n });
  sqe = freshSqe();
  prepMsgRing(sqe, 9, 1, 2, 2, 0x40); // IORING_MSG_RING_FLAGS_PASS
  assertSqe(sqe, { opcode: OP.MSG_RING, fd: 9, len: 1, off: 2n, opFlags: 2, spliceFdIn: 0x40 });
  assert.throws(() => prepMsgRing(freshSqe(), 9, 1, 2, 0, 0x40), /FLAGS_PASS/);
  assert.throws(() => prepMsgRing(freshSqe(), 9, 2 ** 32, 2), RangeError);
  assert.throws(() => prepMsgRing(freshSqe(), 9, 1, -1), RangeError);
  // Flags the kernel always refuses for a data message (it failed the SQE with EINVAL):
  // IORING_MSG_RING_CQE_SKIP (1), unknown bits.
  for (const flags of [1, 0x100, 0x80000000]) {
    assert.throws(() => prepMsgRing(freshSqe(), 9, 1, 2, flags), /may be 0 or IORING_MSG_RING_FLAGS_PASS/);
  }
});

Deno.test("Msghdr: msghdr's pointers and lengths at glibc's offsets; recvmsg resets what the kernel writes", () => {
  const a = new Uint8Array(10), b = new Uint8Array(20);
  const iovecs = new Iovecs([a, b]);
  const name = SocketAddress.unix("/peer");
  const control = new Uint8Array(64);
  const msg = new Msghdr(iovecs, { name, control });
  const v = new DataView(msg.bytes.buffer);
  assert.equal(msg.bytes.byteLength, 56);
  assert.equal(v.getBigUint64(0, true), ptr(name.bytes)); // msg_name
  assert.equal(v.getUint32(8, true), 2 + 5 + 1); // msg_namelen: the name's own length
  assert.equal(v.getBigUint64(16, true), ptr(iovecs.bytes)); // msg_iov
  assert.equal(v.getBigUint64(24, true), 2n); // msg_iovlen
  assert.equal(v.getBigUint64(32, true), ptr(control)); // msg_control
  assert.equal(v.getBigUint64(40, true), 64n); // msg_controllen
  assert.equal(v.getInt32(48, true), 0); // msg_flags
  assert.equal(name.length, 8, "sending: the name's own length");
  // prepRecvmsg gives the kernel the room in each, and clears msg_flags.
  const sqe = freshSqe();
  prepRecvmsg(sqe, 6, msg, MSG_WAITALL);
  assertSqe(sqe, { opcode: OP.RECVMSG, fd: 6, addr: ptr(msg.bytes), len: 1, opFlags: MSG_WAITALL });
  assert.equal(v.getUint32(8, true), 128);
  assert.equal(v.getBigUint64(40, true), 64n);
  assert.equal(msg.flags, 0);
  // The name reads as empty until the receive writes one (one that fails writes no address: it
  // must not read as the last sender); its bytes stay (a send or bind of the same address earlier
  // in the batch may still hand them to the kernel).
  assert.deepEqual([name.length, name.family, String(name)], [0, 0, "unknown"]);
  assert.equal(new TextDecoder().decode(name.bytes.subarray(2, 7)), "/peer");
  // As the kernel leaves it after the receive: the address written, and the name (the object
  // given, not just msg.name) reports the length the kernel wrote into msg_namelen.
  name.bytes.set([1, 0, ...new TextEncoder().encode("/p")]); // AF_UNIX, "/p"
  v.setUint32(8, 4, true);
  v.setBigUint64(40, 0n, true);
  v.setInt32(48, 0x20, true);
  assert.equal(msg.flags, 0x20);
  assert.equal(name.length, 4);
  assert.equal(name.path, "/p");
  // No address written (a stream socket, an unnamed sender): the name is empty, not the last one.
  v.setUint32(8, 0, true);
  assert.equal(name.family, 0);
  assert.equal(String(name), "unknown");
  const bare = new Msghdr(new Iovecs([a]));
  const bv = new DataView(bare.bytes.buffer);
  assert.equal(bv.getBigUint64(0, true), 0n);
  assert.equal(bv.getBigUint64(32, true), 0n);
  assert.equal(bare.name, null);
  let s = freshSqe();
  prepSendmsg(s, 6, bare, MSG_NOSIGNAL);
  assertSqe(s, { opcode: OP.SENDMSG, fd: 6, addr: ptr(bare.bytes), len: 1, opFlags: MSG_NOSIGNAL });
  s = freshSqe();
  prepSendmsgZc(s, 6, bare, 0, 8);
  assertSqe(s, { opcode: OP.SENDMSG_ZC, fd: 6, addr: ptr(bare.bytes), len: 1, ioprio: 8 });
});

Deno.test("Msghdr refuses what is not its parts, and buffers detached or shrunk after it was built", () => {
  const iovecs = new Iovecs([new Uint8Array(8)]);
  assert.throws(() => new Msghdr([new Uint8Array(8)] as unknown as Iovecs), /must be an Iovecs/);
  assert.throws(
    () => new Msghdr(iovecs, { name: "x" as unknown as SocketAddress }),
    /name must be a SocketAddress/,
  );
  assert.throws(() => new Msghdr(iovecs, { control: [0] as unknown as Uint8Array }), /control/);
  assert.throws(
    () => prepSendmsg(freshSqe(), 3, { bytes: new Uint8Array(56) } as unknown as Msghdr),
    /Msghdr/,
  );
  const data = new Uint8Array(8);
  const msg = new Msghdr(new Iovecs([data]));
  data.buffer.transfer();
  assert.throws(() => prepRecvmsg(freshSqe(), 3, msg), /prepRecvmsg: iovecs buffer 0 was detached/);
  const resizable = new ArrayBuffer(64, { maxByteLength: 128 });
  const control = new Uint8Array(resizable);
  const withControl = new Msghdr(new Iovecs([new Uint8Array(4)]), { control });
  resizable.resize(32);
  const sqe = freshSqe();
  assert.throws(() => prepSendmsg(sqe, 3, withControl), /control buffer was detached or shrunk/);
  assert.ok(sqe.u8.every((byte) => byte === 0), "a refused prep wrote the SQE");
});

Deno.test("flag words the kernel refuses are refused first: accept4 flags, recv multishot MSG_WAITALL, an empty sendmsg name", () => {
  for (const prep of [(s: Sqe) => prepAccept(s, 5, null, 0x1), (s: Sqe) => prepMultishotAccept(s, 5, 0x40)]) {
    const sqe = freshSqe();
    assert.throws(() => prep(sqe), /flags must be 0 or a combination of SOCK_NONBLOCK and SOCK_CLOEXEC/);
    assert.ok(sqe.bytes().every((b) => b === 0), "nothing written");
  }
  prepAccept(freshSqe(), 5, null, SOCK_NONBLOCK | SOCK_CLOEXEC); // what accept4 takes
  assert.throws(() => prepRecvMultishot(freshSqe(), 5, 1, MSG_WAITALL), /MSG_WAITALL/);
  const iov = new Iovecs([new Uint8Array(4)]);
  assert.throws(
    () => prepSendmsg(freshSqe(), 5, new Msghdr(iov, { name: new SocketAddress() })),
    /prepSendmsg: the address is empty/,
  );
  assert.throws(
    () => prepSendmsgZc(freshSqe(), 5, new Msghdr(iov, { name: new SocketAddress() })),
    /the address is empty/,
  );
  // A receive takes the empty address to fill, and a send to a named one goes through.
  prepRecvmsg(freshSqe(), 5, new Msghdr(iov, { name: new SocketAddress() }));
  prepSendmsg(freshSqe(), 5, new Msghdr(iov, { name: SocketAddress.unix("/run/x") }));
  prepSendmsg(freshSqe(), 5, new Msghdr(iov, { name: SocketAddress.unspecified() }));
  // ioprio of a send or receive into its own buffer: POLL_FIRST (1) only. Multishot (2) and
  // bundle (16) bits reached the kernel (EINVAL, or a plain send as a bundle: two CQEs).
  const buf = new Uint8Array(4);
  const msg = new Msghdr(iov);
  const ioprioPreps: Array<[string, (s: Sqe, ioprio: number) => Sqe]> = [
    ["prepSend", (s, p) => prepSend(s, 5, buf, 0, p)],
    ["prepRecv", (s, p) => prepRecv(s, 5, buf, 0, p)],
    ["prepSendto", (s, p) => prepSendto(s, 5, buf, SocketAddress.inet("127.0.0.1", 9), 0, p)],
    ["prepSendmsg", (s, p) => prepSendmsg(s, 5, msg, 0, p)],
    ["prepRecvmsg", (s, p) => prepRecvmsg(s, 5, msg, 0, p)],
  ];
  for (const [name, prep] of ioprioPreps) {
    for (const bad of [2, 16, 0x8000]) {
      const sqe = freshSqe();
      assert.throws(
        () => prep(sqe, bad),
        new RegExp(`^RangeError: ${name}: ioprio may hold only IORING_RECVSEND_POLL_FIRST`),
      );
      assert.ok(sqe.bytes().every((b) => b === 0), `${name}: nothing written`);
    }
    prep(freshSqe(), 1);
  }
  // A socket's type: the type (low four bits) with SOCK_NONBLOCK and SOCK_CLOEXEC only.
  assert.throws(() => prepSocket(freshSqe(), 2, 1 | 0x100), /^RangeError: type must be a socket type/);
  prepSocket(freshSqe(), 2, 2 | SOCK_NONBLOCK | SOCK_CLOEXEC);
});

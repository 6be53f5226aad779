/**
 * Sends to an address (`prepSendto`, `prepSendZcTo`), receive bundles (`IORING_RECVSEND_BUNDLE`
 * with `BufferRing.take(flags, res)` and `next`), and multishot `recvmsg` into provided buffers
 * (`prepRecvmsgMultishot`, `RecvmsgOut`): the SQE bytes, the checks before the kernel, and real
 * sockets in every ring configuration.
 */

import assert from "node:assert/strict";
import {
  AF_INET,
  AF_UNIX,
  IORING_CQE_F_BUF_MORE,
  IORING_CQE_F_BUFFER,
  IORING_CQE_F_MORE,
  IORING_FEAT_RECVSEND_BUNDLE,
  IORING_OP_BIND,
  IORING_OP_LISTEN,
  IORING_OP_SOCKET,
  IORING_RECV_MULTISHOT,
  IORING_RECVSEND_BUNDLE,
  IORING_RECVSEND_POLL_FIRST,
  IoUring,
  IoUringError,
  Iovecs,
  MSG_PEEK,
  MSG_TRUNC,
  MSG_WAITALL,
  Msghdr,
  prepAccept,
  prepBind,
  prepClose,
  prepConnect,
  prepListen,
  prepReadSelect,
  prepRecv,
  prepRecvmsgMultishot,
  prepRecvMultishot,
  prepRecvSelect,
  prepSend,
  prepSendmsg,
  prepSendSelect,
  prepSendto,
  prepSendZcTo,
  prepSocket,
  RecvmsgOut,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SocketAddress,
  type Sqe,
} from "../mod.ts";
import { lacks, older, ringTest, tempDir } from "./_support.ts";
import { ok, reap, run } from "./_io.ts";
import { freshSqe } from "./_sqe_image.ts";

const text = new TextEncoder(), untext = new TextDecoder();

function view(sqe: Sqe): DataView {
  return new DataView(sqe.u8.buffer, sqe.base * 4, 64);
}

/** The address of `bytes`, as the kernel is given it. */
function pointer(bytes: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(bytes as Uint8Array<ArrayBuffer>)));
}

/** Completions of one multishot operation (all with `userData`), until `n` arrived or one ends it. */
function reapShots(ring: IoUring, userData: bigint, n: number): { res: number; flags: number }[] {
  const out: { res: number; flags: number }[] = [];
  const deadline = performance.now() + 5000;
  while (out.length < n) {
    const cqe = ring.waitCqe({ timeoutMs: Math.max(0, deadline - performance.now()) });
    if (cqe === null) assert.fail(`timed out: ${out.length} of ${n} completions`);
    assert.equal(cqe.userData, userData);
    out.push({ res: cqe.res, flags: cqe.flags });
    ring.cqAdvance(1);
    if ((cqe.flags & IORING_CQE_F_MORE) === 0) break;
  }
  return out;
}

Deno.test("prepSendto and prepSendZcTo: the address in addr2 and its length in addr_len; an empty one refused", () => {
  const to = SocketAddress.inet("127.0.0.1", 9);
  const data = text.encode("datagram");
  let sqe = freshSqe();
  prepSendto(sqe, 5, data, to, 0x40, IORING_RECVSEND_POLL_FIRST);
  let v = view(sqe);
  assert.deepEqual(
    [v.getUint8(0), v.getUint16(2, true), v.getInt32(4, true), v.getUint32(24, true), v.getUint32(28, true)],
    [26, IORING_RECVSEND_POLL_FIRST, 5, 8, 0x40], // SEND, ioprio, fd, len, msg_flags
  );
  assert.equal(v.getBigUint64(16, true), pointer(data));
  assert.equal(v.getBigUint64(8, true), pointer(to.bytes), "addr2");
  assert.deepEqual([v.getUint16(44, true), v.getUint16(46, true)], [16, 0], "addr_len, __pad3");
  sqe = freshSqe();
  prepSendZcTo(sqe, 5, data, SocketAddress.unix("/run/x"), 0, 0);
  v = view(sqe);
  assert.equal(v.getUint8(0), 47); // SEND_ZC
  assert.equal(v.getUint16(44, true), 2 + 6 + 1);
  // A plain send over the same SQE leaves no address behind.
  prepSend(sqe, 5, data);
  v = view(sqe);
  assert.deepEqual([v.getBigUint64(8, true), v.getUint32(44, true)], [0n, 0]);
  assert.throws(() => prepSendto(freshSqe(), 5, data, new SocketAddress()), /empty/);
  assert.throws(() => prepSendZcTo(freshSqe(), 5, data, "127.0.0.1:9" as never), TypeError);
  assert.throws(() => prepSendto(freshSqe(), 5, data, null as never), TypeError);
});

Deno.test("receive preps: bundles and POLL_FIRST in ioprio; other bits, MSG_WAITALL and small buffers refused", () => {
  let sqe = freshSqe();
  prepRecvSelect(sqe, 5, 9, 0, 0, IORING_RECVSEND_BUNDLE);
  assert.equal(view(sqe).getUint16(2, true), IORING_RECVSEND_BUNDLE);
  sqe = freshSqe();
  prepRecvMultishot(sqe, 5, 9, 0, IORING_RECVSEND_BUNDLE | IORING_RECVSEND_POLL_FIRST);
  assert.equal(
    view(sqe).getUint16(2, true),
    IORING_RECV_MULTISHOT | IORING_RECVSEND_BUNDLE | IORING_RECVSEND_POLL_FIRST,
  );
  assert.throws(() => prepRecvSelect(freshSqe(), 5, 9, 0, 0, IORING_RECV_MULTISHOT), /use prepRecvMultishot/);
  assert.throws(() => prepRecvMultishot(freshSqe(), 5, 9, 0, 1 << 7), /ioprio may hold/);
  const layout = new RecvmsgOut({ control: 24 });
  assert.deepEqual([layout.nameRoom, layout.controlRoom, layout.payloadOffset], [128, 24, 168]);
  sqe = freshSqe();
  prepRecvmsgMultishot(sqe, 5, layout, 9, 0x40, IORING_RECVSEND_POLL_FIRST);
  const v = view(sqe);
  assert.deepEqual(
    [v.getUint8(0), v.getUint8(1), v.getUint16(2, true), v.getUint32(24, true), v.getUint32(28, true)],
    [10, 0x20, IORING_RECV_MULTISHOT | IORING_RECVSEND_POLL_FIRST, 1, 0x40], // RECVMSG, BUFFER_SELECT
  );
  assert.equal(v.getBigUint64(16, true), pointer(layout.bytes));
  assert.equal(v.getUint16(40, true), 9);
  const msghdr = new DataView(layout.bytes.buffer);
  assert.deepEqual(
    [msghdr.getUint32(8, true), msghdr.getBigUint64(24, true), msghdr.getBigUint64(40, true)],
    [128, 0n, 24n], // msg_namelen, msg_iovlen, msg_controllen
  );
  assert.throws(() => prepRecvmsgMultishot(freshSqe(), 5, layout, 9, MSG_WAITALL), /MSG_WAITALL/);
  // MSG_PEEK the kernel takes: the same bytes came in every buffer, and re-armed on ENOBUFS, the
  // receive delivered 525,845 CQEs of one 3-byte message in a second (a probe).
  assert.throws(() => prepRecvmsgMultishot(freshSqe(), 5, layout, 9, MSG_PEEK), /MSG_PEEK/);
  assert.throws(
    () => prepRecvMultishot(freshSqe(), 5, 9, MSG_PEEK),
    /^RangeError: prepRecvMultishot: .*MSG_PEEK/,
  );
  prepRecvSelect(freshSqe(), 5, 9, 0, MSG_PEEK); // (a single receive may peek)
  assert.throws(() => prepRecvmsgMultishot(freshSqe(), 5, layout, 9, 0, IORING_RECVSEND_BUNDLE), /ioprio/);
  assert.throws(() => prepRecvmsgMultishot(freshSqe(), 5, {} as never, 9), /RecvmsgOut/);
  assert.deepEqual(new RecvmsgOut({ name: false }).payloadOffset, 16);
  assert.deepEqual(new RecvmsgOut({ name: 16 }).payloadOffset, 32);
  assert.throws(() => new RecvmsgOut({ name: 129 }), RangeError);
  assert.throws(() => new RecvmsgOut({ control: -1 }), RangeError);
  assert.throws(() => new RecvmsgOut(null as never), TypeError);
  assert.throws(() => layout.payload(), /parse/);
  assert.throws(() => layout.parse(new Uint8Array(200), 100), /from 168/);
  assert.throws(() => layout.parse(new Uint8Array(200), 201), /to the buffer's 200/);
  assert.throws(() => layout.parse(new Uint8Array(200), -105), /-errno/);
  // A sender's address longer than the room: cut short, it is refused, not handed out.
  const narrow = new RecvmsgOut({ name: 16 });
  const filled = new Uint8Array(64);
  new DataView(filled.buffer).setUint32(0, 40, true); // namelen: a Unix path of 38 bytes
  assert.equal(narrow.parse(filled, 40).nameLength, 40);
  assert.throws(() => narrow.name(), /did not fit in the layout's nameRoom \(16\)/);
  using ring = new IoUring(4, { sqpoll: false });
  using small = ring.setupBufferRing({ group: 1, entries: 2, bufferSize: 100 });
  const sqeOfRing = ring.getSqe()!;
  assert.throws(() => prepRecvmsgMultishot(sqeOfRing, 5, layout, small), /cannot hold/);
  // The same group given by its id, on its own ring, is checked as the object is (a re-check: the
  // id form let it through).
  assert.throws(() => prepRecvmsgMultishot(sqeOfRing, 5, layout, 1), /cannot hold/);
  // An incremental ring: the kernel lays a message out at the unused part of a buffer, not where
  // the documented reading looks (a probe read a stale header and the first datagram's bytes as
  // the second), and a part shorter than the header fails every issue with EFAULT.
  try {
    using parts = ring.setupBufferRing({ group: 2, entries: 2, bufferSize: 4096, incremental: true });
    assert.throws(() => prepRecvmsgMultishot(sqeOfRing, 5, layout, parts), /^RangeError: .*incremental/);
    assert.throws(() => prepRecvmsgMultishot(sqeOfRing, 5, layout, 2), /^RangeError: .*incremental/);
    assert.throws(
      () => prepRecvSelect(sqeOfRing, 5, 2, 100),
      /^RangeError: prepRecvSelect: length must be 0/,
    );
    assert.throws(
      () => prepReadSelect(sqeOfRing, 5, 2, -1, 100),
      /^RangeError: prepReadSelect: length must be 0/,
    );
  } catch (e) {
    if (!(e instanceof IoUringError)) throw e; // (a kernel before 6.12: no incremental rings)
  }
});

/** A connected pair of Unix stream sockets made through the ring (and the listener, closed). */
function streamPair(ring: IoUring, path: string): [number, number] {
  const address = SocketAddress.unix(path);
  const listener = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
  ok(ring, "bind", (s) => prepBind(s, listener, address));
  ok(ring, "listen", (s) => prepListen(s, listener, 1));
  const client = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
  ok(ring, "connect", (s) => prepConnect(s, client, address));
  const server = ok(ring, "accept", (s) => prepAccept(s, listener));
  ok(ring, "close", (s) => prepClose(s, listener));
  return [client, server];
}

ringTest(
  "receive bundles: one CQE fills several buffers in ring order; take(flags, res) and next() walk them",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    if (!ring.hasFeature(IORING_FEAT_RECVSEND_BUNDLE)) {
      console.log(`SKIP [${config.name}]: this kernel lacks IORING_FEAT_RECVSEND_BUNDLE (6.10)`);
      return;
    }
    using dir = tempDir();
    const [client, server] = streamPair(ring, `${dir.path}/s`);
    try {
      using buffers = ring.setupBufferRing({ group: 4, entries: 8, bufferSize: 16 });
      /** Receives one bundle and returns its data, put together by walking the buffers it names. */
      const receiveBundle = (): { data: string; bids: number[] } => {
        const sqe = ring.getSqe()!;
        prepRecvSelect(sqe, server, buffers, 0, 0, IORING_RECVSEND_BUNDLE).setUserData(7);
        ring.submit();
        const done = reap(ring, 1).get(7n)!;
        assert.ok(done.res > 0, `bundle recv: ${done.res}`);
        assert.ok(done.flags & IORING_CQE_F_BUFFER);
        const bids: number[] = [];
        let data = "";
        let bid = buffers.take(done.flags, done.res);
        for (let left = done.res; left > 0; left -= buffers.bufferSize) {
          bids.push(bid);
          data += untext.decode(buffers.view(bid).subarray(0, Math.min(left, buffers.bufferSize)));
          const next = buffers.next(bid);
          assert.equal(next === -1, left <= buffers.bufferSize, "next() is -1 exactly at the last buffer");
          bid = next;
        }
        return { data, bids };
      };
      let sent = "";
      for (let i = 0; i < 3; i++) {
        const chunk = text.encode(`chunk-${i}:abcdefghij`); // 18 bytes: more than one buffer each
        assert.equal(run(ring, (s) => prepSend(s, client, chunk)), chunk.length);
        sent += untext.decode(chunk);
      }
      let got = "";
      const first = receiveBundle();
      assert.ok(first.bids.length >= 2, `a bundle of ${first.bids.length} buffer(s)`);
      assert.deepEqual(first.bids, [0, 1, 2, 3].slice(0, first.bids.length), "ring order, as added");
      got += first.data;
      assert.equal(buffers.available, 8 - first.bids.length);
      // Give the buffers back in reverse: the kernel now meets them in that order, after the rest.
      for (const bid of [...first.bids].reverse()) buffers.add(bid);
      buffers.publish();
      while (got.length < sent.length) {
        const more = receiveBundle();
        got += more.data;
        for (const bid of more.bids) buffers.recycle(bid);
      }
      assert.equal(got, sent);
      // Past the untouched buffers, a bundle follows the reversed order.
      const tail = "x".repeat(16 * 8 - 1);
      assert.equal(run(ring, (s) => prepSend(s, client, text.encode(tail))), tail.length);
      let rest = "";
      const order: number[] = [];
      while (rest.length < tail.length) {
        const more = receiveBundle();
        rest += more.data;
        order.push(...more.bids);
        for (const bid of more.bids) buffers.recycle(bid);
      }
      assert.equal(rest, tail);
      assert.equal(order.length, 8);
      assert.deepEqual(new Set(order).size, 8, "every buffer once");
      // A CQE that does not fit what the ring holds: refused, nothing taken.
      const held = buffers.available;
      assert.throws(() => buffers.take(IORING_CQE_F_BUFFER | (order[0] << 16), 16 * 9), /more than/);
      assert.equal(buffers.available, held);
    } finally {
      run(ring, (s) => prepClose(s, client));
      run(ring, (s) => prepClose(s, server));
    }
  },
);

ringTest(
  "incremental rings: receives take a part of a buffer at a time, IORING_CQE_F_BUF_MORE while it stays the kernel's",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    if (older("6.12")) return;
    using dir = tempDir();
    const [client, server] = streamPair(ring, `${dir.path}/s`);
    try {
      using buffers = ring.setupBufferRing({ group: 5, entries: 2, bufferSize: 16, incremental: true });
      assert.equal(buffers.incremental, true);
      /** Sends `data` (unless empty), receives once into the group; returns the CQE. */
      const receive = (data: string) => {
        if (data !== "") assert.equal(run(ring, (s) => prepSend(s, client, text.encode(data))), data.length);
        const sqe = ring.getSqe()!;
        prepRecvSelect(sqe, server, buffers).setUserData(8);
        ring.submit();
        return reap(ring, 1).get(8n)!;
      };
      /** `receive`, then takes and describes the one part it filled. */
      const exchange = (data: string) => {
        const done = receive(data);
        assert.throws(() => buffers.take(done.flags), /needs each CQE's res/);
        const bid = buffers.take(done.flags, done.res);
        assert.equal(buffers.next(bid), -1);
        return {
          bid,
          offset: buffers.partOffset(bid),
          data: untext.decode(buffers.part(bid)),
          more: (done.flags & IORING_CQE_F_BUF_MORE) !== 0,
          owned: buffers.owned(bid),
        };
      };
      assert.deepEqual(exchange("0123456789"), {
        bid: 0,
        offset: 0,
        data: "0123456789",
        more: true,
        owned: false,
      });
      assert.throws(() => buffers.recycle(0), /in the ring already/, "still the kernel's");
      // Ten more bytes: the six left in buffer 0 use it up (now the program's); four stay queued.
      assert.deepEqual(exchange("abcdefghij"), {
        bid: 0,
        offset: 10,
        data: "abcdef",
        more: false,
        owned: true,
      });
      assert.equal(untext.decode(buffers.view(0)), "0123456789abcdef", "the parts lie one after the other");
      buffers.recycle(0); // back at the ring's tail, to be filled from its start
      assert.deepEqual(exchange(""), { bid: 1, offset: 0, data: "ghij", more: true, owned: false });
      assert.deepEqual(exchange("klmnopqrstuv"), {
        bid: 1,
        offset: 4,
        data: "klmnopqrstuv",
        more: false,
        owned: true,
      });
      buffers.recycle(1);
      assert.deepEqual(exchange("w"), { bid: 0, offset: 0, data: "w", more: true, owned: false });
      if (!ring.hasFeature(IORING_FEAT_RECVSEND_BUNDLE)) return;
      // A bundle: the 15 bytes left of buffer 0, then 5 of buffer 1, which stays the kernel's.
      const twenty = "ABCDEFGHIJKLMNOPQRST";
      assert.equal(run(ring, (s) => prepSend(s, client, text.encode(twenty))), 20);
      const sqe = ring.getSqe()!;
      prepRecvSelect(sqe, server, buffers, 0, 0, IORING_RECVSEND_BUNDLE).setUserData(8);
      ring.submit();
      const done = reap(ring, 1).get(8n)!;
      assert.equal(done.res, 20);
      assert.ok(done.flags & IORING_CQE_F_BUF_MORE);
      assert.equal(buffers.take(done.flags, done.res), 0);
      assert.deepEqual(
        [buffers.partOffset(0), untext.decode(buffers.part(0)), buffers.owned(0), buffers.next(0)],
        [1, twenty.slice(0, 15), true, 1],
      );
      assert.deepEqual(
        [buffers.partOffset(1), untext.decode(buffers.part(1)), buffers.owned(1), buffers.next(1)],
        [0, twenty.slice(15), false, -1],
      );
    } finally {
      run(ring, (s) => prepClose(s, client));
      run(ring, (s) => prepClose(s, server));
    }
  },
);

ringTest(
  "sends from a ring of buffers: one buffer, then a bundle of two, in the order they were added",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    if (!ring.hasFeature(IORING_FEAT_RECVSEND_BUNDLE)) {
      console.log(`SKIP [${config.name}]: this kernel lacks sends from provided buffers (6.10)`);
      return;
    }
    using dir = tempDir();
    const [client, server] = streamPair(ring, `${dir.path}/s`);
    try {
      using queue = ring.setupBufferRing({ group: 6, entries: 4, bufferSize: 16, empty: true });
      assert.equal(queue.available, 0);
      assert.ok(queue.owned(0));
      assert.throws(() => queue.add(0, 0), RangeError);
      assert.throws(() => queue.add(0, 17), RangeError);
      /** Writes `data` into buffer `bid` and adds it with that length. */
      const enqueue = (bid: number, data: string) => {
        const bytes = text.encode(data);
        queue.view(bid).set(bytes);
        queue.add(bid, bytes.length);
      };
      enqueue(2, "hello, ");
      enqueue(0, "world");
      enqueue(3, "!");
      queue.publish();
      /** Sends from the queue, takes what the CQE used, and returns the parts in order. */
      /** Sends from the queue; takes what each CQE used (a bundle's come in rounds, F_MORE on all but the last). */
      const send = (ioprio: number) => {
        const sqe = ring.getSqe()!;
        prepSendSelect(sqe, client, queue, 0, 0, ioprio).setUserData(6);
        ring.submit();
        const parts: [number, string][] = [];
        for (let more = true; more;) {
          const done = reap(ring, 1).get(6n)!;
          assert.ok(done.res > 0, `send: ${done.res}`);
          for (let bid = queue.take(done.flags, done.res); bid >= 0; bid = queue.next(bid)) {
            assert.ok(queue.owned(bid));
            parts.push([bid, untext.decode(queue.part(bid))]);
          }
          more = (done.flags & IORING_CQE_F_MORE) !== 0;
        }
        return parts;
      };
      assert.deepEqual(send(0), [[2, "hello, "]], "without a bundle: the buffer at the head");
      assert.deepEqual(
        send(IORING_RECVSEND_BUNDLE),
        [[0, "world"], [3, "!"]],
        "a bundle: the rest, in ring order",
      );
      const got = new Uint8Array(13);
      assert.equal(run(ring, (s) => prepRecv(s, server, got, MSG_WAITALL), 7n), 13);
      assert.equal(untext.decode(got), "hello, world!");
      // Nothing left to send: the kernel says so.
      const sqe = ring.getSqe()!;
      prepSendSelect(sqe, client, queue).setUserData(6);
      ring.submit();
      assert.equal(reap(ring, 1).get(6n)!.res, -105, "ENOBUFS");
    } finally {
      run(ring, (s) => prepClose(s, client));
      run(ring, (s) => prepClose(s, server));
    }
  },
);

ringTest(
  "take(flags, res) refuses a bundle that runs into a buffer the program holds, and takes nothing",
  (config) => {
    using ring = new IoUring(4, config.options);
    using buffers = ring.setupBufferRing({ group: 2, entries: 4, bufferSize: 8 });
    // Take buffer 1 as if a CQE had named it, then claim a bundle of 3 from buffer 0: 0, 1, 2.
    assert.equal(buffers.take(IORING_CQE_F_BUFFER | (1 << 16), 8), 1);
    assert.equal(buffers.next(1), -1);
    assert.throws(() => buffers.take(IORING_CQE_F_BUFFER, 20), /reach buffer 1, which the program holds/);
    assert.equal(buffers.available, 3, "nothing more was taken");
    assert.throws(() => buffers.take(IORING_CQE_F_BUFFER, 1.5), /res must be/);
    assert.equal(buffers.take(IORING_CQE_F_BUFFER, -104), 0, "a failed CQE with a buffer: that one buffer");
    assert.throws(() => buffers.next(4), RangeError);
    // Once a prep asked this ring for bundles, take() needs res: without it a bundle's other
    // buffers would stay the kernel's for good.
    prepRecvSelect(ring.getSqe()!, 5, buffers, 0, 0, IORING_RECVSEND_BUNDLE);
    assert.throws(() => buffers.take(IORING_CQE_F_BUFFER | (2 << 16)), /serves bundles needs each CQE's res/);
    // An incremental ring refuses a cap: the kernel may consume the cap rather than what it moved.
    using parts = ring.setupBufferRing({ group: 3, entries: 2, bufferSize: 64, incremental: true });
    assert.throws(() => prepRecvSelect(ring.getSqe()!, 5, parts, 10), /length must be 0 on an incremental/);
    assert.throws(
      () => prepReadSelect(ring.getSqe()!, 5, parts, 0, 10),
      /length must be 0 on an incremental/,
    );
  },
);

ringTest(
  "multishot recvmsg: each buffer holds the sender, the ancillary data and the payload; MSG_TRUNC when cut",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND)) return;
    using dir = tempDir();
    const serverPath = `${dir.path}/server`, clientPath = `${dir.path}/client`;
    const server = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    const client = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    const unnamed = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    const passed: number[] = [];
    try {
      ok(ring, "bind", (s) => prepBind(s, server, SocketAddress.unix(serverPath)));
      ok(ring, "bind", (s) => prepBind(s, client, SocketAddress.unix(clientPath)));
      const layout = new RecvmsgOut({ control: 24 }); // CMSG_SPACE(sizeof(int))
      using buffers = ring.setupBufferRing({ group: 3, entries: 4, bufferSize: layout.payloadOffset + 32 });
      const to = SocketAddress.unix(serverPath);
      // 1: a datagram that fits, from a named sender, with an fd in SCM_RIGHTS.
      const control = new Uint8Array(24);
      const cmsg = new DataView(control.buffer);
      cmsg.setBigUint64(0, 20n, true); // cmsg_len: CMSG_LEN(sizeof(int))
      cmsg.setInt32(8, 1, true); // SOL_SOCKET
      cmsg.setInt32(12, 1, true); // SCM_RIGHTS
      cmsg.setInt32(16, server, true);
      const withFd = new Msghdr(new Iovecs([text.encode("first")]), { name: to, control });
      assert.equal(run(ring, (s) => prepSendmsg(s, client, withFd), 1n), 5);
      // 2: 40 bytes from an unnamed sender into 32 bytes of room.
      const long = "0123456789".repeat(4);
      assert.equal(run(ring, (s) => prepSendto(s, unnamed, text.encode(long), to), 2n), 40);
      // 3: an empty datagram, which ends the receive as the end of a stream would (6.18), with
      // its buffer.
      assert.equal(run(ring, (s) => prepSendto(s, client, new Uint8Array(0), to), 3n), 0);
      // Armed after the three are queued: its completions are then the only ones coming.
      const armed = ring.getSqe()!;
      prepRecvmsgMultishot(armed, server, layout, buffers, MSG_TRUNC).setUserData(9);
      ring.submit();
      const shots = reapShots(ring, 9n, 3);
      assert.equal(shots.length, 3);
      const seen = shots.map(({ res, flags }, i) => {
        assert.equal(flags & IORING_CQE_F_MORE ? "armed" : "ended", i < 2 ? "armed" : "ended");
        const bid = buffers.take(flags, res);
        layout.parse(buffers.view(bid), res);
        const out = {
          name: layout.name().path,
          nameLength: layout.nameLength,
          payload: untext.decode(layout.payload()),
          payloadLength: layout.payloadLength,
          trunc: (layout.flags & MSG_TRUNC) !== 0,
          control: layout.control().byteLength,
        };
        if (out.control > 0) {
          const received = new DataView(layout.control().slice().buffer);
          assert.deepEqual([received.getInt32(8, true), received.getInt32(12, true)], [1, 1]);
          passed.push(received.getInt32(16, true));
        }
        buffers.recycle(bid);
        return out;
      });
      assert.deepEqual(seen, [
        {
          name: clientPath,
          nameLength: 2 + text.encode(clientPath).length + 1,
          payload: "first",
          payloadLength: 5,
          trunc: false,
          control: 24,
        },
        { name: "", nameLength: 0, payload: long.slice(0, 32), payloadLength: 40, trunc: true, control: 0 },
        {
          name: clientPath,
          nameLength: 2 + text.encode(clientPath).length + 1,
          payload: "",
          payloadLength: 0,
          trunc: false,
          control: 0,
        },
      ]);
      assert.equal(passed.length, 1);
      assert.ok(passed[0] > 2 && passed[0] !== server, `a new fd for the one passed: ${passed[0]}`);
      // The name written into an address of the caller's, then used to answer.
      const sender = new SocketAddress();
      assert.equal(layout.parse(buffers.view(0), shots[0].res).name(sender), sender);
      // (buffer 0 was recycled, but the kernel has not reused it: its bytes still read as the first.)
      assert.equal(sender.path, clientPath);
    } finally {
      for (const fd of [server, client, unnamed, ...passed]) run(ring, (s) => prepClose(s, fd));
    }
  },
);

ringTest("prepSendto and prepSendZcTo reach an unconnected UDP socket", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND)) return;
  const receiver = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
  const sender = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
  try {
    let port = 0;
    for (let attempt = 0; port === 0 && attempt < 20; attempt++) {
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const candidate = (probe.addr as Deno.NetAddr).port;
      probe.close();
      if (run(ring, (s) => prepBind(s, receiver, SocketAddress.inet("127.0.0.1", candidate))) === 0) {
        port = candidate;
      }
    }
    assert.ok(port !== 0, "no free UDP port");
    const to = SocketAddress.inet("127.0.0.1", port);
    assert.equal(run(ring, (s) => prepSendto(s, sender, text.encode("plain"), to)), 5);
    const got = new Uint8Array(16);
    assert.equal(run(ring, (s) => prepRecv(s, receiver, got)), 5);
    assert.equal(untext.decode(got.subarray(0, 5)), "plain");
    // Zero copy: the result (F_MORE), then the notification.
    const sqe = ring.getSqe()!;
    prepSendZcTo(sqe, sender, text.encode("zero-copy"), to).setUserData(5);
    ring.submit();
    const first = reapShots(ring, 5n, 1)[0];
    assert.equal(first.res, 9);
    if (first.flags & IORING_CQE_F_MORE) reapShots(ring, 5n, 1);
    assert.equal(run(ring, (s) => prepRecv(s, receiver, got)), 9);
    assert.equal(untext.decode(got.subarray(0, 9)), "zero-copy");
  } finally {
    run(ring, (s) => prepClose(s, receiver));
    run(ring, (s) => prepClose(s, sender));
  }
});

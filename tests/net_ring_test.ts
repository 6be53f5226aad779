/**
 * The socket opcodes through a real ring, with Deno's own sockets as the independent other end:
 * a Unix stream server built from ring operations alone, a TCP client, IPv6, datagrams through
 * sendmsg/recvmsg with the sender's address, multishot accept, zero-copy sends and messages
 * between rings. Each runs once per ring configuration (SQPOLL or not, helper or libc).
 */

import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  errno,
  IORING_CQE_F_MORE,
  IORING_CQE_F_NOTIF,
  IORING_MSG_RING_CQE_SKIP,
  IORING_MSG_RING_FLAGS_PASS,
  IORING_OP_BIND,
  IORING_OP_LISTEN,
  IORING_OP_MSG_RING,
  IORING_OP_SEND_ZC,
  IORING_OP_SOCKET,
  IORING_SEND_ZC_REPORT_USAGE,
  IOSQE_FIXED_FILE,
  IOSQE_IO_LINK,
  IoUring,
  IoUringError,
  Iovecs,
  MSG_DONTWAIT,
  MSG_TRUNC,
  Msghdr,
  prepAccept,
  prepBind,
  prepCancel,
  prepClose,
  prepConnect,
  prepListen,
  prepMsgRing,
  prepMultishotAccept,
  prepMultishotAcceptDirect,
  prepRecv,
  prepRecvmsg,
  prepSend,
  prepSendmsg,
  prepSendto,
  prepSendZc,
  prepShutdown,
  prepSocket,
  SHUT_WR,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SocketAddress,
} from "../mod.ts";
import { ok, pipe, run, sysClose } from "./_io.ts";
import { lacks, ringTest, tempDir } from "./_support.ts";

const text = new TextEncoder(), untext = new TextDecoder();

/** One completion as plain values (the ring's `Cqe` handle is reused). */
interface Done {
  userData: number;
  res: number;
  flags: number;
}

/** Waits (at most 5 s) for `n` completions and returns them in the order they came. */
function reap(ring: IoUring, n: number): Done[] {
  const out: Done[] = [];
  while (out.length < n) {
    const cqe = ring.waitCqe({ timeoutMs: 5000 });
    assert.ok(cqe !== null, `waited 5 s for completion ${out.length + 1} of ${n}`);
    out.push({ userData: cqe.userDataNumber, res: cqe.res, flags: cqe.flags });
    ring.cqAdvance(1);
  }
  return out;
}

/** A Unix stream socket bound at `path` and listening, from ring operations alone: its fd. */
function unixListener(ring: IoUring, path: string): number {
  const listener = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
  try {
    assert.equal(run(ring, (s) => prepBind(s, listener, SocketAddress.unix(path))), 0);
    assert.equal(run(ring, (s) => prepListen(s, listener, 8)), 0);
  } catch (e) {
    run(ring, (s) => prepClose(s, listener));
    throw e;
  }
  return listener;
}

ringTest(
  "a Unix stream server from ring operations alone: socket, bind, listen, accept, recv, send, shutdown, close",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    using dir = tempDir();
    const path = `${dir.path}/server.sock`;
    const listener = unixListener(ring, path);
    try {
      assert.ok(Deno.lstatSync(path).isSocket, "bind made the socket file");
      const client = await Deno.connect({ transport: "unix", path });
      const peer = new SocketAddress();
      const conn = ok(ring, "accept", (s) => prepAccept(s, listener, peer, SOCK_CLOEXEC));
      try {
        assert.equal(peer.family, AF_UNIX);
        assert.equal(peer.path, ""); // Deno's client is unnamed
        await client.write(text.encode("hello"));
        const buf = new Uint8Array(64);
        const n = ok(ring, "recv", (s) => prepRecv(s, conn, buf));
        assert.equal(untext.decode(buf.subarray(0, n)), "hello");
        assert.equal(run(ring, (s) => prepSend(s, conn, text.encode("world"))), 5);
        const got = new Uint8Array(64);
        const m = await client.read(got);
        assert.equal(untext.decode(got.subarray(0, m!)), "world");
        assert.equal(run(ring, (s) => prepShutdown(s, conn, SHUT_WR)), 0);
        assert.equal(await client.read(got), null, "the client saw the end of the stream");
        client.close();
        assert.equal(
          run(ring, (s) => prepRecv(s, conn, buf)),
          0,
          "recv after the peer closed: end of stream",
        );
      } finally {
        assert.equal(run(ring, (s) => prepClose(s, conn)), 0);
      }
    } finally {
      assert.equal(run(ring, (s) => prepClose(s, listener)), 0);
    }
  },
);

ringTest(
  "an accept in flight, or failed, leaves its SocketAddress empty (not the previous peer)",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    using dir = tempDir();
    const path = `${dir.path}/server.sock`;
    const listener = unixListener(ring, path);
    try {
      const client = await Deno.connect({ transport: "unix", path });
      const peer = new SocketAddress();
      const conn = ok(ring, "accept", (s) => prepAccept(s, listener, peer, SOCK_CLOEXEC));
      assert.equal(run(ring, (s) => prepClose(s, conn)), 0);
      client.close();
      assert.equal(peer.family, AF_UNIX);
      // Another accept, on a peer and on an address built as one: no client comes; it is cancelled.
      for (const address of [peer, SocketAddress.inet("10.0.0.1", 80)]) {
        prepAccept(ring.getSqe()!, listener, address).setUserData(5);
        ring.submit();
        assert.deepEqual([address.family, address.hostname, address.port], [0, "", 0], "while in flight");
        prepCancel(ring.getSqe()!, 5).setUserData(6);
        ring.submit();
        const done = reap(ring, 2).sort((a, b) => a.userData - b.userData);
        assert.equal(done[0].res, -errno("ECANCELED"));
        assert.deepEqual([address.family, address.hostname, address.port], [0, "", 0], "after it failed");
      }
    } finally {
      assert.equal(run(ring, (s) => prepClose(s, listener)), 0);
    }
  },
);

ringTest(
  "a SocketAddress bound and then accepted into, in one batch: the bind gets the address as it was when prepped",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    // Readying the address for the accept emptied it, and the bind (not yet issued) then bound any
    // address on a random port (a probe).
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const listener = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
    try {
      const address = SocketAddress.inet("127.0.0.1", port);
      prepBind(ring.getSqe()!, listener, address).setUserData(1).setFlags(IOSQE_IO_LINK);
      prepListen(ring.getSqe()!, listener, 8).setUserData(2).setFlags(IOSQE_IO_LINK);
      prepAccept(ring.getSqe()!, listener, address, SOCK_CLOEXEC).setUserData(3);
      ring.submit();
      assert.deepEqual(reap(ring, 2).map((d) => [d.userData, d.res]), [[1, 0], [2, 0]]);
      const client = await Deno.connect({ hostname: "127.0.0.1", port }); // refused if bound elsewhere
      const [accepted] = reap(ring, 1);
      assert.ok(accepted.res >= 0, `accept: ${accepted.res}`);
      assert.equal(run(ring, (s) => prepClose(s, accepted.res)), 0);
      client.close();
      assert.deepEqual([address.family, address.hostname], [AF_INET, "127.0.0.1"], "the peer, now");
    } finally {
      assert.equal(run(ring, (s) => prepClose(s, listener)), 0);
    }
  },
);

ringTest(
  "a SocketAddress bound and then named by a receiving Msghdr, in one batch: the bind gets the address as prepped",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND)) return;
    // The receive's preparation zeroed the name's bytes, and the bind (not yet issued) then bound
    // any address on a random port (a probe).
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const a = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
    const b = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      const address = SocketAddress.inet("127.0.0.1", port);
      const msg = new Msghdr(new Iovecs([new Uint8Array(16)]), { name: address });
      prepBind(ring.getSqe()!, a, address).setUserData(1);
      prepRecvmsg(ring.getSqe()!, b, msg, MSG_DONTWAIT).setUserData(2); // b has nothing: EAGAIN
      ring.submit();
      assert.deepEqual(reap(ring, 2).map((d) => [d.userData, d.res]).sort(), [[1, 0], [2, -errno("EAGAIN")]]);
      assert.equal(address.family, 0, "the failed receive wrote no name");
      const to = SocketAddress.inet("127.0.0.1", port);
      assert.equal(run(ring, (s) => prepSendto(s, b, new TextEncoder().encode("hi"), to)), 2);
      const got = new Uint8Array(8);
      assert.equal(run(ring, (s) => prepRecv(s, a, got)), 2, "a is bound to the address asked for");
    } finally {
      assert.equal(run(ring, (s) => prepClose(s, a)), 0);
      assert.equal(run(ring, (s) => prepClose(s, b)), 0);
    }
  },
);

ringTest(
  "a TCP client: connect to Deno's listener on 127.0.0.1 and on ::1, then send and recv",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET)) return;
    for (const [family, hostname] of [[AF_INET, "127.0.0.1"], [AF_INET6, "::1"]] as const) {
      let listener: Deno.TcpListener;
      try {
        listener = Deno.listen({ hostname, port: 0 });
      } catch (e) {
        if (family === AF_INET6) {
          console.log(`SKIP [${config.name}]: no IPv6 loopback here (${(e as Error).message})`);
          continue;
        }
        throw e;
      }
      const { port } = listener.addr;
      const fd = ok(ring, "socket", (s) => prepSocket(s, family, SOCK_STREAM | SOCK_CLOEXEC));
      try {
        const accepted = listener.accept();
        assert.equal(run(ring, (s) => prepConnect(s, fd, SocketAddress.inet(hostname, port))), 0);
        const conn = await accepted;
        assert.equal(conn.remoteAddr.hostname, hostname);
        assert.equal(run(ring, (s) => prepSend(s, fd, text.encode(`ping ${hostname}`))), 5 + hostname.length);
        const got = new Uint8Array(64);
        const n = await conn.read(got);
        assert.equal(untext.decode(got.subarray(0, n!)), `ping ${hostname}`);
        await conn.write(text.encode("pong"));
        const buf = new Uint8Array(64);
        assert.equal(run(ring, (s) => prepRecv(s, fd, buf)), 4);
        assert.equal(untext.decode(buf.subarray(0, 4)), "pong");
        conn.close();
      } finally {
        run(ring, (s) => prepClose(s, fd));
        listener.close();
      }
    }
    // A refused connection is the kernel's ECONNREFUSED, as a CQE.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const freed = probe.addr.port;
    probe.close();
    const fd = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
    assert.equal(
      run(ring, (s) => prepConnect(s, fd, SocketAddress.inet("127.0.0.1", freed))),
      -errno("ECONNREFUSED"),
    );
    run(ring, (s) => prepClose(s, fd));
  },
);

ringTest("datagrams: sendmsg to a named peer, recvmsg with the sender's address and MSG_TRUNC", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND)) return;
  using dir = tempDir();
  const aPath = `${dir.path}/a.sock`, bPath = `${dir.path}/b.sock`;
  const a = ok(ring, "socket a", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
  const b = ok(ring, "socket b", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
  try {
    assert.equal(run(ring, (s) => prepBind(s, a, SocketAddress.unix(aPath))), 0);
    assert.equal(run(ring, (s) => prepBind(s, b, SocketAddress.unix(bPath))), 0);
    const out = new Msghdr(new Iovecs([text.encode("dgram-"), text.encode("payload")]), {
      name: SocketAddress.unix(aPath),
    });
    assert.equal(run(ring, (s) => prepSendmsg(s, b, out)), 13);
    // A receive with room for 5 bytes: the rest of the datagram is dropped and flagged.
    const small = new Uint8Array(5);
    const sender = new SocketAddress();
    const into = new Msghdr(new Iovecs([small]), { name: sender });
    assert.equal(run(ring, (s) => prepRecvmsg(s, a, into)), 5);
    assert.equal(untext.decode(small), "dgram");
    assert.equal(into.flags & MSG_TRUNC, MSG_TRUNC);
    assert.equal(into.name, sender);
    assert.equal(sender.family, AF_UNIX);
    assert.equal(sender.path, bPath);
    assert.equal(into.nameLength, 2 + text.encode(bPath).length + 1);
    // The same Msghdr again, from an abstract-named sender, with room for all of it this time.
    const c = ok(ring, "socket c", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      const abstract = `\0uring-test-${Deno.pid}-${config.name}`;
      assert.equal(run(ring, (s) => prepBind(s, c, SocketAddress.unix(abstract))), 0);
      const hi = new Msghdr(new Iovecs([text.encode("hi")]), { name: SocketAddress.unix(aPath) });
      assert.equal(run(ring, (s) => prepSendmsg(s, c, hi)), 2);
      assert.equal(run(ring, (s) => prepRecvmsg(s, a, into)), 2);
      assert.equal(into.flags & MSG_TRUNC, 0, "msg_flags were reset for the new receive");
      // The address given as the name is the sender, with its own length (not the storage's
      // 128 bytes): a reply to it arrives.
      assert.equal(sender.path, abstract);
      assert.equal(sender.length, 2 + text.encode(abstract).length);
      const reply = new Msghdr(new Iovecs([text.encode("back")]), { name: sender });
      assert.equal(run(ring, (s) => prepSendmsg(s, a, reply)), 4);
      const back = new Uint8Array(8);
      assert.equal(run(ring, (s) => prepRecv(s, c, back)), 4);
      assert.equal(untext.decode(back.subarray(0, 4)), "back");
    } finally {
      run(ring, (s) => prepClose(s, c));
    }
    // A receive that brings no address (this sender is unnamed): the name is empty, not the last.
    const unnamed = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      const anon = new Msghdr(new Iovecs([text.encode("anon")]), { name: SocketAddress.unix(aPath) });
      assert.equal(run(ring, (s) => prepSendmsg(s, unnamed, anon)), 4);
      assert.equal(run(ring, (s) => prepRecvmsg(s, a, into)), 4);
      assert.equal(into.nameLength, 0);
      assert.deepEqual([sender.family, sender.path, String(sender)], [0, "", "unknown"]);
    } finally {
      run(ring, (s) => prepClose(s, unnamed));
    }
    // A receive that fails (nothing waiting: EAGAIN) writes no address: the name is empty, not
    // the last sender (a probe read the previous sender after a failed receive).
    const d = ok(ring, "socket d", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      const dPath = `${aPath}.d`;
      assert.equal(run(ring, (s) => prepBind(s, d, SocketAddress.unix(dPath))), 0);
      const hello = new Msghdr(new Iovecs([text.encode("hello")]), { name: SocketAddress.unix(aPath) });
      assert.equal(run(ring, (s) => prepSendmsg(s, d, hello)), 5);
      assert.equal(run(ring, (s) => prepRecvmsg(s, a, into)), 5);
      assert.equal(sender.path, dPath);
      assert.equal(run(ring, (s) => prepRecvmsg(s, a, into, MSG_DONTWAIT)), -11); // EAGAIN
      assert.deepEqual([sender.family, sender.path], [0, ""]);
    } finally {
      run(ring, (s) => prepClose(s, d));
    }
  } finally {
    run(ring, (s) => prepClose(s, a));
    run(ring, (s) => prepClose(s, b));
  }
});

ringTest(
  "multishot accept: one CQE per connection with IORING_CQE_F_MORE, until a cancel ends it",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    using dir = tempDir();
    const path = `${dir.path}/multi.sock`;
    const listener = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
    const clients: Deno.Conn[] = [];
    const accepted: number[] = [];
    try {
      assert.equal(run(ring, (s) => prepBind(s, listener, SocketAddress.unix(path))), 0);
      assert.equal(run(ring, (s) => prepListen(s, listener, 8)), 0);
      for (let i = 0; i < 3; i++) clients.push(await Deno.connect({ transport: "unix", path }));
      prepMultishotAccept(ring.getSqe()!, listener, SOCK_CLOEXEC).setUserData(7);
      ring.submit();
      for (const done of reap(ring, 3)) {
        assert.equal(done.userData, 7);
        assert.ok(done.res >= 0, `accept failed: ${done.res}`);
        assert.equal(done.flags & IORING_CQE_F_MORE, IORING_CQE_F_MORE, "the accept stays armed");
        accepted.push(done.res);
      }
      // Still armed: a fourth connection is accepted without a new SQE.
      clients.push(await Deno.connect({ transport: "unix", path }));
      const [fourth] = reap(ring, 1);
      assert.ok(fourth.res >= 0 && (fourth.flags & IORING_CQE_F_MORE) !== 0);
      accepted.push(fourth.res);
      assert.equal(new Set(accepted).size, 4);
      prepCancel(ring.getSqe()!, 7).setUserData(8);
      ring.submit();
      const ends = reap(ring, 2);
      const last = ends.find((d) => d.userData === 7)!;
      assert.equal(last.res, -errno("ECANCELED"));
      assert.equal(last.flags & IORING_CQE_F_MORE, 0, "the last CQE has no MORE");
      assert.equal(ends.find((d) => d.userData === 8)!.res, 0);
    } finally {
      for (const client of clients) client.close();
      for (const fd of accepted) run(ring, (s) => prepClose(s, fd));
      run(ring, (s) => prepClose(s, listener));
    }
  },
);

ringTest("zero-copy send: the result, then a notification once the buffer is free", async (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_SEND_ZC)) return;
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const fd = ok(ring, "socket", (s) => prepSocket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
  try {
    const accepted = listener.accept();
    assert.equal(
      run(ring, (s) => prepConnect(s, fd, SocketAddress.inet("127.0.0.1", listener.addr.port))),
      0,
    );
    const conn = await accepted;
    const payload = text.encode("zero-copy payload");
    prepSendZc(ring.getSqe()!, fd, payload, 0, IORING_SEND_ZC_REPORT_USAGE).setUserData(3);
    ring.submit();
    const [result, notification] = reap(ring, 2);
    assert.deepEqual([result.userData, result.res, result.flags & IORING_CQE_F_MORE], [3, payload.length, 2]);
    assert.equal(notification.userData, 3);
    assert.equal(notification.flags & IORING_CQE_F_NOTIF, IORING_CQE_F_NOTIF);
    assert.equal(notification.flags & IORING_CQE_F_MORE, 0);
    // Loopback copies (the usage bit says so); the data arrived either way.
    const got = new Uint8Array(64);
    const n = await conn.read(got);
    assert.equal(untext.decode(got.subarray(0, n!)), "zero-copy payload");
    conn.close();
  } finally {
    run(ring, (s) => prepClose(s, fd));
    listener.close();
  }
});

ringTest(
  "prepMsgRing posts a CQE on another ring, with flags when asked; an fd that is not a ring fails",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_MSG_RING)) return;
    using target = new IoUring(8, { sqpoll: false });
    assert.equal(run(ring, (s) => prepMsgRing(s, target.fd, -5, 0x1_0000_0002n)), 0);
    const cqe = target.peekCqe();
    assert.ok(cqe !== null, "the target ring got a CQE without any submission of its own");
    assert.deepEqual([cqe.res, cqe.userData, cqe.flags], [-5, 0x1_0000_0002n, 0]);
    target.cqAdvance(1);
    assert.equal(run(ring, (s) => prepMsgRing(s, target.fd, 9, 10, IORING_MSG_RING_FLAGS_PASS, 0x40)), 0);
    const flagged = target.peekCqe()!;
    assert.deepEqual([flagged.res, flagged.userDataNumber, flagged.flags], [9, 10, 0x40]);
    target.cqAdvance(1);
    // An fd that is not a ring (a socket): the kernel refuses it (EBADFD).
    if (!ring.probe().supports(IORING_OP_SOCKET)) return;
    const notRing = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      assert.equal(run(ring, (s) => prepMsgRing(s, notRing, 1, 1)), -errno("EBADFD"));
    } finally {
      run(ring, (s) => prepClose(s, notRing));
    }
  },
);

ringTest(
  "IoUring.sendMsgRing posts a CQE on a ring without a ring of its own; a non-ring fd is named",
  async (config) => {
    using target = new IoUring(8, config.options);
    const next = () => {
      const cqe = target.peekCqe() ?? target.waitCqe({ timeoutMs: 2000 });
      assert.ok(cqe !== null, "the message came");
      return cqe;
    };
    IoUring.sendMsgRing(target.fd, -5, 0x1_0000_0002n, 0, 0, config.options.backend);
    const cqe = next();
    assert.deepEqual([cqe.res, cqe.userData, cqe.flags], [-5, 0x1_0000_0002n, 0]);
    target.cqAdvance(1);
    IoUring.sendMsgRing(target.fd, 9, 10, IORING_MSG_RING_FLAGS_PASS, 0x40);
    const flagged = next();
    assert.deepEqual([flagged.res, flagged.userDataNumber, flagged.flags], [9, 10, 0x40]);
    target.cqAdvance(1);
    // From a Worker, which has the fd number only.
    const worker = new Worker(
      `data:application/javascript,${
        encodeURIComponent(`
          import { IoUring } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
          self.onmessage = (e) => { IoUring.sendMsgRing(e.data, 77, 78); self.postMessage("sent"); };
        `)
      }`,
      { type: "module" },
    );
    try {
      const sent = new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
      worker.postMessage(target.fd);
      assert.equal(await sent, "sent");
    } finally {
      worker.terminate();
    }
    const fromWorker = next();
    assert.deepEqual([fromWorker.res, fromWorker.userDataNumber], [77, 78]);
    target.cqAdvance(1);
    const [r, w] = pipe();
    try {
      assert.throws(
        () => IoUring.sendMsgRing(r, 1, 1),
        (e) =>
          e instanceof IoUringError && e.code === "EBADFD" &&
          e.message.includes("IORING_REGISTER_SEND_MSG_RING") &&
          e.hint ===
            "the fd is not an io_uring ring, or its ring is still disabled (IORING_SETUP_R_DISABLED)",
      );
    } finally {
      sysClose(r);
      sysClose(w);
    }
    assert.throws(() => IoUring.sendMsgRing(-1, 1, 1), /ringFd/);
    assert.throws(
      () => IoUring.sendMsgRing(target.fd, 1, 1, IORING_MSG_RING_CQE_SKIP),
      /flags of a data message/,
    );
  },
);

ringTest(
  "multishot accept into registered file slots the kernel picks; a receive names the slot",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND, IORING_OP_LISTEN)) return;
    using dir = tempDir();
    const path = `${dir.path}/direct.sock`;
    ring.registerFiles([-1, -1, -1, -1]);
    const listener = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
    const clients: Deno.Conn[] = [];
    try {
      assert.equal(run(ring, (s) => prepBind(s, listener, SocketAddress.unix(path))), 0);
      assert.equal(run(ring, (s) => prepListen(s, listener, 8)), 0);
      for (let i = 0; i < 2; i++) clients.push(await Deno.connect({ transport: "unix", path }));
      prepMultishotAcceptDirect(ring.getSqe()!, listener).setUserData(5);
      ring.submit();
      const slots = reap(ring, 2).map((d) => {
        assert.equal(d.flags & IORING_CQE_F_MORE, IORING_CQE_F_MORE);
        return d.res;
      });
      assert.deepEqual(slots.sort(), [0, 1], "the first free slots");
      await clients[1].write(text.encode("via slot"));
      const buf = new Uint8Array(16);
      const recv = ring.getSqe()!;
      prepRecv(recv, slots[1], buf);
      recv.setFlags(IOSQE_FIXED_FILE).setUserData(6);
      ring.submit();
      const [got] = reap(ring, 1);
      assert.equal(got.userData, 6);
      assert.equal(untext.decode(buf.subarray(0, got.res)), "via slot");
      prepCancel(ring.getSqe()!, 5).setUserData(7);
      ring.submit();
      assert.equal(reap(ring, 2).find((d) => d.userData === 5)!.res, -errno("ECANCELED"));
    } finally {
      for (const client of clients) client.close();
      run(ring, (s) => prepClose(s, listener));
    }
  },
);

ringTest("a reply to a Unix datagram sender whose path fills all 108 bytes of sun_path arrives", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_SOCKET, IORING_OP_BIND)) return;
  using dir = tempDir();
  const a = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
  const b = ok(ring, "socket", (s) => prepSocket(s, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC));
  try {
    const aPath = `${dir.path}/a.sock`;
    const bPath = `${dir.path}/${"b".repeat(107 - dir.path.length)}`; // 108 bytes, no room for a NUL
    assert.equal(text.encode(bPath).length, 108);
    assert.equal(run(ring, (s) => prepBind(s, a, SocketAddress.unix(aPath))), 0);
    assert.equal(run(ring, (s) => prepBind(s, b, SocketAddress.unix(bPath))), 0);
    const hello = new Msghdr(new Iovecs([text.encode("hi")]), { name: SocketAddress.unix(aPath) });
    assert.equal(run(ring, (s) => prepSendmsg(s, b, hello)), 2);
    const sender = new SocketAddress();
    const into = new Msghdr(new Iovecs([new Uint8Array(8)]), { name: sender });
    assert.equal(run(ring, (s) => prepRecvmsg(s, a, into)), 2);
    assert.equal(sender.path, bPath);
    // The kernel counts a NUL past sun_path into the length it reports (111), and refuses that
    // length when it is handed back (EINVAL): the reply sends what sun_path holds.
    const reply = new Msghdr(new Iovecs([text.encode("back")]), { name: sender });
    assert.equal(run(ring, (s) => prepSendmsg(s, a, reply)), 4);
    const back = new Uint8Array(8);
    assert.equal(run(ring, (s) => prepRecv(s, b, back)), 4);
  } finally {
    run(ring, (s) => prepClose(s, a));
    run(ring, (s) => prepClose(s, b));
  }
});

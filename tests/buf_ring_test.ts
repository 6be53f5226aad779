/**
 * Rings of provided buffers (`IoUring.setupBufferRing`, `BufferRing`) and the preps that select
 * from them: the SQE bytes, the ring's bookkeeping, and real multishot reads and receives in
 * every ring configuration.
 */

import assert from "node:assert/strict";
import {
  AF_UNIX,
  alignedBuffer,
  ClosedError,
  IORING_CQE_F_BUFFER,
  IORING_CQE_F_MORE,
  IORING_OP_READ_MULTISHOT,
  IOSQE_ASYNC,
  IoUring,
  IoUringError,
  prepCancel,
  prepClose,
  prepConnect,
  prepFixedFdInstall,
  prepRead,
  prepReadMultishot,
  prepReadSelect,
  prepRecvMultishot,
  prepRecvSelect,
  prepSocket,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SocketAddress,
  Sqe,
} from "../mod.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";
import { pipe, sysClose, sysWrite } from "./_io.ts";

const text = new TextEncoder(), untext = new TextDecoder();

/** Preps one SQE of `ring` with `prep`, submits it and waits for its CQE: its `res`. */
function roundTrip(ring: IoUring, prep: (sqe: Sqe) => void): number {
  prep(ring.getSqe()!);
  ring.submit();
  const cqe = ring.waitCqe({ timeoutMs: 5000 })!;
  const res = cqe.res;
  ring.cqAdvance(1);
  return res;
}

function freshSqe(): Sqe {
  const mem = new ArrayBuffer(64);
  return new Sqe(new Uint32Array(mem), new Uint8Array(mem), 0);
}

/** The SQE's bytes as the kernel reads them (offsets of `struct io_uring_sqe`). */
function fields(sqe: Sqe) {
  const v = new DataView(sqe.u8.buffer, sqe.base * 4, 64);
  return {
    opcode: v.getUint8(0),
    flags: v.getUint8(1),
    ioprio: v.getUint16(2, true),
    fd: v.getInt32(4, true),
    off: v.getBigUint64(8, true),
    addr: v.getBigUint64(16, true),
    len: v.getUint32(24, true),
    opFlags: v.getUint32(28, true),
    bufGroup: v.getUint16(40, true),
  };
}

const IOSQE_BUFFER_SELECT = 0x20, IOSQE_IO_LINK = 0x04;

Deno.test("select preps: IOSQE_BUFFER_SELECT kept beside other flags, buf_group at byte 40, no buffer address", () => {
  let sqe = freshSqe();
  sqe.setFlags(IOSQE_IO_LINK);
  prepRecvMultishot(sqe, 5, 300, 0x40);
  assert.deepEqual(fields(sqe), {
    opcode: 27, // RECV
    flags: IOSQE_IO_LINK | IOSQE_BUFFER_SELECT,
    ioprio: 2, // IORING_RECV_MULTISHOT
    fd: 5,
    off: 0n,
    addr: 0n,
    len: 0,
    opFlags: 0x40,
    bufGroup: 300,
  });
  sqe = freshSqe();
  prepRecvSelect(sqe, 5, 1, 512);
  assert.deepEqual(fields(sqe), {
    opcode: 27,
    flags: IOSQE_BUFFER_SELECT,
    ioprio: 0,
    fd: 5,
    off: 0n,
    addr: 0n,
    len: 512,
    opFlags: 0,
    bufGroup: 1,
  });
  // A plain recv over the multishot one's SQE drops its ioprio flag.
  sqe = freshSqe();
  prepRecvMultishot(sqe, 5, 1);
  prepRecvSelect(sqe, 5, 1);
  assert.equal(fields(sqe).ioprio, 0);
  sqe = freshSqe();
  prepReadSelect(sqe, 6, 65535, -1, 100);
  assert.deepEqual(fields(sqe), {
    opcode: 22, // READ
    flags: IOSQE_BUFFER_SELECT,
    ioprio: 0,
    fd: 6,
    off: 0xffff_ffff_ffff_ffffn,
    addr: 0n,
    len: 100,
    opFlags: 0,
    bufGroup: 65535,
  });
  sqe = freshSqe();
  prepReadMultishot(sqe, 6, 2);
  assert.deepEqual(fields(sqe), {
    opcode: IORING_OP_READ_MULTISHOT,
    flags: IOSQE_BUFFER_SELECT,
    ioprio: 0,
    fd: 6,
    off: 0n,
    addr: 0n,
    len: 0,
    opFlags: 0,
    bufGroup: 2,
  });
  assert.throws(() => prepRecvMultishot(freshSqe(), 5, 65536), RangeError);
  // The kernel refuses a cap on a multishot read (EINVAL for a non-zero len): refused here.
  assert.throws(() => prepReadMultishot(freshSqe(), 6, 2, 8), /length must be 0/);
  assert.throws(() => prepReadSelect(freshSqe(), 5, -1, 0), RangeError);
  assert.throws(() => prepReadSelect(freshSqe(), 5, 1, -2), RangeError);
  const atPosition = freshSqe();
  prepReadSelect(atPosition, 5, 1, -1n); // -1n, as -1: the file's position (it was refused)
  assert.deepEqual([atPosition.u32[2], atPosition.u32[3]], [0xffffffff, 0xffffffff]);
  assert.throws(() => prepRecvSelect(freshSqe(), 5, "1" as never), TypeError); // not a number at all
});

Deno.test({
  name: "setupBufferRing checks its options; a BufferRing hands each buffer out once and refuses it twice",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(4, { sqpoll: false });
    for (
      const bad of [
        { group: 0, entries: 3, bufferSize: 8 },
        { group: 0, entries: 0, bufferSize: 8 },
        { group: 0, entries: 65536, bufferSize: 8 },
        { group: 65536, entries: 4, bufferSize: 8 },
        { group: 0, entries: 4, bufferSize: 0 },
        { group: 0, entries: 4, bufferSize: 2 ** 32 },
      ]
    ) {
      assert.throws(() => ring.setupBufferRing(bad), RangeError, JSON.stringify(bad));
    }
    // One message states the real range (0 is no power of two: it said "from 0 to 32768").
    for (
      const [entries, shown] of [[0, "0"], [3, "3"], [65536, "65536"], [1.5, "1.5"], ["4", '"4" (a string)']]
    ) {
      assert.throws(() => ring.setupBufferRing({ group: 0, entries: entries as number, bufferSize: 8 }), {
        name: typeof entries === "number" ? "RangeError" : "TypeError", // (a string is not a number at all)
        message: `entries must be a power of two from 1 to 32768, got ${shown}`,
      });
    }
    assert.throws(() => ring.setupBufferRing(undefined as never), TypeError);
    // One message states the real range of bufferSize too (it said "from 0", then refused 0).
    for (const [size, shown] of [[0, "0"], [1.5, "1.5"], [2 ** 32, "4294967296"]]) {
      assert.throws(() => ring.setupBufferRing({ group: 0, entries: 4, bufferSize: size as number }), {
        name: "RangeError",
        message: `bufferSize must be an integer from 1 to 4294967295, got ${shown}`,
      });
    }
    const buffers = ring.setupBufferRing({ group: 3, entries: 4, bufferSize: 100 });
    assert.deepEqual([buffers.group, buffers.entries, buffers.bufferSize, buffers.available], [3, 4, 100, 4]);
    assert.equal(buffers.view(2).byteLength, 100);
    assert.equal(buffers.view(2), buffers.view(2), "one view per buffer, made once");
    assert.throws(() => buffers.view(4), RangeError);
    // Each buffer is in the ring: giving one back before the kernel handed it out is refused.
    assert.throws(() => buffers.recycle(1), /buffer 1 is in the ring already/);
    assert.equal(buffers.take(0), -1, "flags without IORING_CQE_F_BUFFER carry no buffer");
    assert.equal(buffers.take(IORING_CQE_F_BUFFER | (1 << 16)), 1);
    assert.equal(buffers.available, 3);
    buffers.recycle(1);
    assert.equal(buffers.available, 4);
    assert.throws(() => buffers.take(IORING_CQE_F_BUFFER | (9 << 16)), /not of this ring/);
    // The group is taken while the ring is registered; free again once it is closed.
    assert.throws(
      () => ring.setupBufferRing({ group: 3, entries: 2, bufferSize: 8 }),
      (e: IoUringError) => e instanceof IoUringError && e.code === "EEXIST",
    );
    buffers.close();
    buffers.close(); // idempotent
    assert.equal(buffers.closed, true);
    assert.throws(() => buffers.view(0), ClosedError);
    assert.throws(() => buffers.recycle(0), ClosedError);
    const again = ring.setupBufferRing({ group: 3, entries: 2, bufferSize: 8 });
    const held = again.view(0);
    ring.close();
    assert.equal(again.closed, true, "the ring's close frees its buffer rings");
    assert.equal(held.byteLength, 0, "a view of freed memory reads as empty");
    assert.throws(() => ring.setupBufferRing({ group: 4, entries: 2, bufferSize: 8 }), ClosedError);
  },
});

Deno.test({
  name:
    "a prep over an SQE a select prep (or prepFixedFdInstall) filled drops the flag that op set: the read fills the caller's buffer, the close closes the fd",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(8, { sqpoll: false });
    const [r, w] = pipe();
    let wOpen = true;
    try {
      using group = ring.setupBufferRing({ group: 1, entries: 4, bufferSize: 64 });
      assert.equal(sysWrite(w, text.encode("hello")), 5);
      const mine = new Uint8Array(16);
      const res = roundTrip(ring, (sqe) => {
        prepRecvSelect(sqe, r, group);
        prepRead(sqe.addFlags(IOSQE_ASYNC), r, mine, 0); // IOSQE_ASYNC is the caller's: it stays
        assert.equal(sqe.flags, IOSQE_ASYNC);
      });
      assert.equal(res, 5);
      assert.equal(untext.decode(mine.subarray(0, 5)), "hello", "read into the caller's buffer");
      assert.equal(group.available, 4, "no provided buffer was taken");
      // prepFixedFdInstall sets IOSQE_FIXED_FILE: a close prepped over it closes the fd itself.
      ring.registerFilesSparse(2);
      const closed = roundTrip(ring, (sqe) => {
        prepFixedFdInstall(sqe, 0);
        prepClose(sqe, w);
        assert.equal(sqe.flags, 0);
      });
      assert.equal(closed, 0);
      wOpen = false;
      // With its only write end closed, the pipe reads as at its end at once.
      assert.equal(roundTrip(ring, (sqe) => prepRead(sqe, r, mine, 0)), 0);
    } finally {
      sysClose(r);
      if (wOpen) sysClose(w);
    }
  },
});

ringTest(
  "multishot read of a pipe: each write lands in a buffer of the group, recycled buffers are used again",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (!ring.probe().supports(IORING_OP_READ_MULTISHOT)) {
      console.log(`SKIP [${config.name}]: this kernel has no READ_MULTISHOT (6.7)`);
      return;
    }
    using buffers = ring.setupBufferRing({ group: 9, entries: 2, bufferSize: 32 });
    const [r, w] = pipe();
    try {
      prepReadMultishot(ring.getSqe()!, r, buffers).setUserData(11);
      ring.submit();
      const got: string[] = [];
      const ids = new Set<number>();
      for (let i = 0; i < 6; i++) { // three times as many messages as buffers
        const message = `message ${i}`;
        assert.equal(sysWrite(w, text.encode(message)), message.length);
        const cqe = ring.waitCqe({ timeoutMs: 5000 });
        assert.ok(cqe !== null, `no completion for ${message}`);
        assert.equal(cqe.userDataNumber, 11);
        assert.ok(cqe.res > 0, `read failed: ${cqe.res}`);
        assert.equal(cqe.flags & IORING_CQE_F_MORE, IORING_CQE_F_MORE, "still armed");
        const bid = buffers.take(cqe.flags);
        const res = cqe.res;
        ring.cqAdvance(1);
        got.push(untext.decode(buffers.view(bid).subarray(0, res)));
        ids.add(bid);
        buffers.recycle(bid);
      }
      assert.deepEqual(got, [0, 1, 2, 3, 4, 5].map((i) => `message ${i}`));
      assert.deepEqual([...ids].sort(), [0, 1]);
      // Not recycled: the group runs dry, and the read ends with ENOBUFS.
      sysWrite(w, text.encode("a"));
      const a = ring.waitCqe({ timeoutMs: 5000 })!;
      const kept = buffers.take(a.flags);
      ring.cqAdvance(1);
      sysWrite(w, text.encode("b"));
      const b = ring.waitCqe({ timeoutMs: 5000 })!;
      buffers.take(b.flags);
      ring.cqAdvance(1);
      sysWrite(w, text.encode("c"));
      const dry = ring.waitCqe({ timeoutMs: 5000 })!;
      assert.deepEqual([dry.res, dry.flags & IORING_CQE_F_MORE], [-105, 0]); // -ENOBUFS, the end
      ring.cqAdvance(1);
      assert.equal(buffers.available, 0);
      buffers.recycle(kept);
      // A single read with a provided buffer picks up what is waiting.
      prepReadSelect(ring.getSqe()!, r, buffers, -1).setUserData(12);
      ring.submit();
      const single = ring.waitCqe({ timeoutMs: 5000 })!;
      assert.equal(single.res, 1);
      assert.equal(untext.decode(buffers.view(buffers.take(single.flags)).subarray(0, 1)), "c");
      ring.cqAdvance(1);
    } finally {
      sysClose(r);
      sysClose(w);
    }
  },
);

ringTest(
  "multishot recv from a Unix socket: data from Deno's client in provided buffers, then a cancel ends it",
  async (config) => {
    using ring = new IoUring(8, config.options);
    using dir = tempDir();
    const path = `${dir.path}/s.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    try {
      const one = (prep: (sqe: Sqe) => void): number => roundTrip(ring, prep);
      const fd = one((s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
      assert.ok(fd >= 0);
      try {
        const accepted = listener.accept();
        assert.equal(one((s) => prepConnect(s, fd, SocketAddress.unix(path))), 0);
        const conn = await accepted;
        using buffers = ring.setupBufferRing({ group: 1, entries: 4, bufferSize: 8 });
        prepRecvMultishot(ring.getSqe()!, fd, buffers).setUserData(21);
        ring.submit();
        let received = "";
        await conn.write(text.encode("0123456789abcdef-tail")); // more than one buffer's worth
        while (received.length < 21) {
          const cqe = ring.waitCqe({ timeoutMs: 5000 });
          assert.ok(cqe !== null, `got only ${JSON.stringify(received)}`);
          assert.ok(cqe.res > 0 && cqe.res <= 8, `recv: ${cqe.res}`);
          assert.equal(cqe.flags & IORING_CQE_F_MORE, IORING_CQE_F_MORE);
          const bid = buffers.take(cqe.flags);
          received += untext.decode(buffers.view(bid).subarray(0, cqe.res));
          ring.cqAdvance(1);
          buffers.recycle(bid);
        }
        assert.equal(received, "0123456789abcdef-tail");
        prepCancel(ring.getSqe()!, 21).setUserData(22);
        ring.submit();
        const ends = [ring.waitCqe({ timeoutMs: 5000 })!];
        const first = { userData: ends[0].userDataNumber, res: ends[0].res, flags: ends[0].flags };
        ring.cqAdvance(1);
        const second = ring.waitCqe({ timeoutMs: 5000 })!;
        const both = [first, { userData: second.userDataNumber, res: second.res, flags: second.flags }];
        ring.cqAdvance(1);
        const recv = both.find((d) => d.userData === 21)!;
        assert.deepEqual([recv.res, recv.flags & IORING_CQE_F_MORE], [-125, 0]); // ECANCELED, the end
        assert.equal(both.find((d) => d.userData === 22)!.res, 0);
        conn.close();
      } finally {
        one((s) => prepClose(s, fd));
      }
    } finally {
      listener.close();
    }
  },
);

Deno.test({
  name: "an IoUring with buffer rings still registered is released by the garbage collector, as one without",
  ignore: skipKernel(),
  fn: async () => {
    // A BufferRing's close named the ring, and the ring's hold (which the collector's registry
    // keeps) held the BufferRing: such a ring was never collected (20 of 20 fds and SQ threads kept).
    const mod = new URL("../mod.ts", import.meta.url).href;
    const script = `
      import { IoUring } from ${JSON.stringify(mod)};
      // The process's io_uring fds (Deno opens sockets of its own meanwhile).
      const fds = () => [...Deno.readDirSync("/proc/self/fd")].filter((entry) => {
        try {
          return Deno.readLinkSync("/proc/self/fd/" + entry.name) === "anon_inode:[io_uring]";
        } catch {
          return false;
        }
      }).length;
      const before = fds();
      for (let i = 0; i < 20; i++) {
        const ring = new IoUring(8, { sqpoll: i % 2 === 0 });
        ring.setupBufferRing({ group: 1, entries: 8, bufferSize: 4096 });
      }
      const made = fds();
      for (let k = 0; k < 10 && fds() > before + 1; k++) {
        gc();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      console.log(JSON.stringify({ before, made, after: fds() }));
    `;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--v8-flags=--expose-gc", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const { before, made, after } = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.ok(made >= before + 20, `the rings were made: ${before} -> ${made}`);
    // (The engine may keep the last object made alive a while longer: one ring, with or without
    // a buffer ring.)
    assert.ok(
      after <= before + 1,
      `the collector closed the rings' fds: ${made} -> ${after}, from ${before}`,
    );
  },
});

Deno.test({
  name: "a BufferRing is refused on another ring's SQE (its group id means another ring of buffers there)",
  ignore: skipKernel(),
  fn() {
    using a = new IoUring(4, { sqpoll: false });
    using b = new IoUring(4, { sqpoll: false });
    using buffers = a.setupBufferRing({ group: 5, entries: 2, bufferSize: 8 });
    assert.throws(() => prepReadSelect(b.getSqe()!, 0, buffers, -1), /registered with another ring/);
    assert.throws(() => prepRecvMultishot(b.getSqe()!, 0, buffers), /registered with another ring/);
    prepReadSelect(a.getSqe()!, 0, buffers, -1); // its own ring's SQE
    prepReadSelect(b.getSqe()!, 0, 5, -1); // a bare group id is the caller's to mean
  },
});

ringTest(
  "BufferRing.close() keeps the address range (not its pages) while the ring is open: a receive that picked a buffer writes there",
  async (config) => {
    // A probe: a receive in an io-wq worker picks its buffer before data comes; the ring of
    // buffers was closed and its memory freed, new memory was mapped at that address, and the
    // data the receive got later landed in it (4 of 4).
    const ring = new IoUring(8, config.options);
    using dir = tempDir();
    const path = `${dir.path}/s.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    try {
      const one = (prep: (sqe: Sqe) => void): number => roundTrip(ring, prep);
      const fd = one((s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC)); // blocking
      assert.ok(fd >= 0);
      const accepted = listener.accept();
      assert.equal(one((s) => prepConnect(s, fd, SocketAddress.unix(path))), 0);
      const conn = await accepted;
      const buffers = ring.setupBufferRing({ group: 10, entries: 1, bufferSize: 4096 });
      const held = buffers.view(0);
      prepRecvSelect(ring.getSqe()!, fd, buffers).setUserData(1).addFlags(IOSQE_ASYNC);
      ring.submit();
      await new Promise((resolve) => setTimeout(resolve, 100)); // the worker waits in recv, buffer picked
      held.set(text.encode("stale bytes"));
      buffers.close();
      // Its pages are given back (fresh ones read zeros): only the address range stays taken.
      assert.equal(untext.decode(held.subarray(0, 11)), "\0".repeat(11), "the closed ring's pages were kept");
      const fresh = Array.from({ length: 16 }, () => alignedBuffer(4096, 4096));
      await conn.write(text.encode("SECRET-DATA"));
      const cqe = ring.waitCqe({ timeoutMs: 5000 })!;
      assert.equal(cqe.res, 11);
      ring.cqAdvance(1);
      for (const f of fresh) {
        assert.equal(
          untext.decode(f.bytes.subarray(0, 11)),
          "\0".repeat(11),
          "the data landed in new memory",
        );
        f.free();
      }
      assert.equal(
        untext.decode(held.subarray(0, 11)),
        "SECRET-DATA",
        "in the closed ring's memory, still mapped",
      );
      conn.close();
      one((s) => prepClose(s, fd));
      ring.close();
      assert.equal(held.byteLength, 0, "freed once the ring closed");
    } finally {
      listener.close();
      ring.close();
    }
  },
);

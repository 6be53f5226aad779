/**
 * Through a real ring, in each ring configuration: the preps that steer other requests (timeout
 * and poll updates), pass a file between rings, hand classic provided buffers to the kernel, and
 * run socket commands; and the register calls for personalities, restrictions on a disabled
 * ring, sparse file tables and their allocation range, synchronous cancels, a buffer ring's head
 * and the wait clock. Results are checked against what the kernel must do, with Deno's own file
 * and socket APIs as the other end where there is one.
 */

import assert from "node:assert/strict";
import {
  AF_INET,
  AF_UNIX,
  AT_FDCWD,
  ClosedError,
  cstring,
  IORING_CQE_BUFFER_SHIFT,
  IORING_CQE_F_BUFFER,
  IORING_FILE_INDEX_ALLOC,
  IORING_OP_NOP,
  IORING_OP_READ,
  IORING_POLL_UPDATE_EVENTS,
  IORING_POLL_UPDATE_USER_DATA,
  IORING_REGISTER_PBUF_RING,
  IORING_REGISTER_PROBE,
  IORING_SETUP_R_DISABLED,
  IOSQE_BUFFER_SELECT,
  IOSQE_FIXED_FILE,
  IOSQE_IO_LINK,
  IoUring,
  IoUringError,
  O_RDONLY,
  prepCmdSock,
  prepConnect,
  prepGetsockopt,
  prepLinkTimeout,
  prepLinkTimeoutUpdate,
  prepMsgRingFd,
  prepNop,
  prepOpenatDirect,
  prepPollAdd,
  prepPollUpdate,
  prepProvideBuffers,
  prepRead,
  prepReadSelect,
  prepRemoveBuffers,
  prepSetsockopt,
  prepSocket,
  prepTimeout,
  prepTimeoutUpdate,
  prepWrite,
  SO_RCVBUF,
  SO_TYPE,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOCKET_URING_OP_SIOCINQ,
  SOCKET_URING_OP_SIOCOUTQ,
  SocketAddress,
  SOL_SOCKET,
  type Sqe,
  Timespec,
} from "../mod.ts";
import {
  assertErr,
  assertNoCompletion,
  describe,
  mkfifo,
  openFile,
  pipe,
  reap,
  run,
  sysClose,
  sysWrite,
} from "./_io.ts";
import { older, ringTest, tempDir } from "./_support.ts";

const POLLIN = 0x1, POLLOUT = 0x4;
const text = new TextEncoder();

/** Queues one SQE filled by `prep`, tagged `userData`, without submitting. */
function queue(ring: IoUring, userData: number, prep: (sqe: Sqe) => void): Sqe {
  const sqe = ring.getSqe();
  assert.ok(sqe, "the SQ should have room");
  prep(sqe);
  sqe.setUserData(userData);
  return sqe;
}

ringTest(
  "prepTimeoutUpdate: a 10 s timeout brought forward to 20 ms fires; an unknown one is ENOENT",
  (config) => {
    if (older("5.11")) return;
    using ring = new IoUring(8, config.options);
    const long = new Timespec(10_000), short = new Timespec(20);
    queue(ring, 1, (s) => prepTimeout(s, long));
    ring.submit();
    assertNoCompletion(ring, 30); // armed, and not firing on its own
    const started = performance.now();
    queue(ring, 2, (s) => prepTimeoutUpdate(s, 1, short));
    queue(ring, 3, (s) => prepTimeoutUpdate(s, 404, short));
    ring.submit();
    const done = reap(ring, 3);
    assert.equal(done.get(2n)!.res, 0, "the update");
    assertErr(done.get(3n)!.res, "ENOENT", "update of no timeout");
    assertErr(done.get(1n)!.res, "ETIME", "the timeout");
    assert.ok(performance.now() - started < 5000, "fired long before its first 10 s");
  },
);

ringTest("prepLinkTimeoutUpdate: a read's 10 s link timeout cut to 20 ms cancels the read", (config) => {
  if (older("5.15")) return;
  using ring = new IoUring(8, config.options);
  const [readFd, writeFd] = pipe();
  try {
    const buf = new Uint8Array(8);
    const long = new Timespec(10_000), short = new Timespec(20);
    queue(ring, 1, (s) => prepRead(s, readFd, buf, 0)).setFlags(IOSQE_IO_LINK);
    queue(ring, 2, (s) => prepLinkTimeout(s, long));
    ring.submit();
    assertNoCompletion(ring, 30); // the read waits on the empty pipe; its timeout is armed
    queue(ring, 3, (s) => prepLinkTimeoutUpdate(s, 2, short));
    ring.submit();
    const done = reap(ring, 3);
    assert.equal(done.get(3n)!.res, 0, `the update: ${describe(done.get(3n)!.res)}`);
    assertErr(done.get(1n)!.res, "ECANCELED", "the read");
    assertErr(done.get(2n)!.res, "ETIME", "the link timeout");
  } finally {
    sysClose(readFd);
    sysClose(writeFd);
  }
});

ringTest("prepPollUpdate: a poll's user_data and mask replaced while it waits", (config) => {
  if (older("5.13")) return;
  using ring = new IoUring(8, config.options);
  const [readFd, writeFd] = pipe();
  try {
    // New user_data: the poll for input on the read end completes under its new tag.
    queue(ring, 1, (s) => prepPollAdd(s, readFd, POLLIN));
    ring.submit();
    assertNoCompletion(ring, 20);
    queue(ring, 2, (s) => prepPollUpdate(s, 1, 11, 0, IORING_POLL_UPDATE_USER_DATA));
    ring.submit();
    let done = reap(ring, 1);
    assert.equal(done.get(2n)?.res, 0, "the update");
    assert.equal(sysWrite(writeFd, text.encode("x")), 1);
    done = reap(ring, 1);
    assert.equal(done.get(11n)?.res, POLLIN, "the poll, under its new user_data");
    // New mask: a poll of the write end for input (never) becomes one for output (at once).
    queue(ring, 3, (s) => prepPollAdd(s, writeFd, POLLIN));
    ring.submit();
    assertNoCompletion(ring, 20);
    queue(ring, 4, (s) => prepPollUpdate(s, 3, 0, POLLOUT, IORING_POLL_UPDATE_EVENTS));
    ring.submit();
    done = reap(ring, 2);
    assert.equal(done.get(4n)?.res, 0, "the update");
    assert.equal(done.get(3n)?.res, POLLOUT, "the poll, with its new mask");
    // Nothing left to update.
    assertErr(run(ring, (s) => prepPollUpdate(s, 3, 0, POLLIN, IORING_POLL_UPDATE_EVENTS)), "ENOENT");
  } finally {
    sysClose(readFd);
    sysClose(writeFd);
  }
});

ringTest("prepMsgRingFd: a file passed to another ring's fixed slot, named or picked", (config) => {
  if (older("6.0")) return;
  using tmp = tempDir();
  const path = `${tmp.path}/passed`;
  Deno.writeTextFileSync(path, "passed between rings");
  using sender = new IoUring(8, config.options);
  using target = new IoUring(8, config.options);
  const fd = openFile(sender, path, O_RDONLY);
  try {
    sender.registerFiles([fd]);
    target.registerFilesSparse(4);
    target.registerFileAllocRange(2, 2);
    assert.equal(run(sender, (s) => prepMsgRingFd(s, target.fd, 0, 1, 55)), 0, "sent to slot 1");
    const picked = run(sender, (s) => prepMsgRingFd(s, target.fd, 0, IORING_FILE_INDEX_ALLOC, 56));
    assert.equal(picked, 2, "a picked slot: the sender learns it (the first of the allocation range)");
    const posted = reap(target, 2);
    assert.equal(posted.get(55n)?.res, 0, "a named slot: res 0");
    assert.equal(posted.get(56n)?.res, 2, "a picked slot: the target learns it too");
    for (const slot of [1, 2]) {
      const buf = new Uint8Array(32);
      const n = run(target, (s) => prepRead(s, slot, buf, 0).setFlags(IOSQE_FIXED_FILE));
      assert.equal(new TextDecoder().decode(buf.subarray(0, n)), "passed between rings", `slot ${slot}`);
    }
    // Sent again to the named slot, which holds a file: it is replaced (res 0), not refused.
    assert.equal(run(sender, (s) => prepMsgRingFd(s, target.fd, 0, 1, 58)), 0);
    assert.equal(reap(target, 1).get(58n)?.res, 0, "an occupied named slot");
    // With CQE_SKIP the target gets no completion.
    assert.equal(run(sender, (s) => prepMsgRingFd(s, target.fd, 0, 0, 59, 1)), 0);
    assertNoCompletion(target, 20);
    // No file in the source slot.
    sender.registerFilesUpdate(0, [-1]);
    assertErr(run(sender, (s) => prepMsgRingFd(s, target.fd, 0, 3, 57)), "EBADF");
  } finally {
    sysClose(fd);
  }
});

ringTest(
  "prepProvideBuffers: a read picks one of the group's buffers; prepRemoveBuffers takes the rest",
  (config) => {
    if (older("5.7")) return;
    using ring = new IoUring(8, config.options);
    const [readFd, writeFd] = pipe();
    try {
      const memory = new Uint8Array(4 * 16);
      assert.equal(
        run(ring, (s) => prepProvideBuffers(s, memory, 4, 16, 3, 100)),
        0,
        "provided ids 100..103",
      );
      assert.equal(sysWrite(writeFd, text.encode("hello")), 5);
      const sqe = ring.getSqe()!;
      prepReadSelect(sqe, readFd, 3, -1);
      sqe.setUserData(1);
      ring.submit();
      const done = reap(ring, 1).get(1n)!;
      assert.equal(done.res, 5, describe(done.res));
      assert.ok(done.flags & IORING_CQE_F_BUFFER, "the CQE names a buffer");
      const id = done.flags >>> IORING_CQE_BUFFER_SHIFT;
      assert.ok(id >= 100 && id <= 103, `buffer id ${id}`);
      const at = (id - 100) * 16;
      assert.equal(new TextDecoder().decode(memory.subarray(at, at + 5)), "hello", "the data in that buffer");
      assert.equal(run(ring, (s) => prepRemoveBuffers(s, 10, 3)), 3, "the three left");
      assert.equal(run(ring, (s) => prepRemoveBuffers(s, 1, 3)), 0, "none left in the group");
      assertErr(run(ring, (s) => prepRemoveBuffers(s, 1, 99)), "ENOENT", "a group never provided");
    } finally {
      sysClose(readFd);
      sysClose(writeFd);
    }
  },
);

ringTest(
  "prepCmdSock: SIOCINQ, SIOCOUTQ, getsockopt and setsockopt on a TCP socket; EOPNOTSUPP on Unix",
  async (config) => {
    if (older("6.7")) return;
    using ring = new IoUring(8, config.options);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const fd = run(ring, (s) => prepSocket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
    assert.ok(fd >= 0, describe(fd));
    try {
      const address = SocketAddress.inet("127.0.0.1", (listener.addr as Deno.NetAddr).port);
      const accepted = listener.accept();
      assert.equal(run(ring, (s) => prepConnect(s, fd, address)), 0, "connect");
      const peer = await accepted;
      try {
        await peer.write(text.encode("12345"));
        // SIOCINQ: the 5 bytes once they are in (loopback: at once, but not synchronously).
        let waiting = 0;
        for (const deadline = performance.now() + 5000; waiting < 5 && performance.now() < deadline;) {
          waiting = run(ring, (s) => prepCmdSock(s, SOCKET_URING_OP_SIOCINQ, fd));
          if (waiting < 5) await new Promise((r) => setTimeout(r, 5));
        }
        assert.equal(waiting, 5, "SIOCINQ");
        assert.equal(run(ring, (s) => prepCmdSock(s, SOCKET_URING_OP_SIOCOUTQ, fd)), 0, "SIOCOUTQ");
        const value = new Int32Array(1);
        assert.equal(run(ring, (s) => prepGetsockopt(s, fd, SOL_SOCKET, SO_TYPE, value)), 4, "optlen");
        assert.equal(value[0], SOCK_STREAM, "SO_TYPE");
        value[0] = 65536;
        assert.equal(run(ring, (s) => prepSetsockopt(s, fd, SOL_SOCKET, SO_RCVBUF, value)), 0, "setsockopt");
        value[0] = 0;
        assert.equal(run(ring, (s) => prepGetsockopt(s, fd, SOL_SOCKET, SO_RCVBUF, value)), 4);
        assert.equal(value[0], 2 * 65536, "SO_RCVBUF as set (the kernel doubles it)");
      } finally {
        peer.close();
      }
    } finally {
      sysClose(fd);
      listener.close();
    }
    const unix = run(ring, (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
    try {
      assertErr(run(ring, (s) => prepCmdSock(s, SOCKET_URING_OP_SIOCINQ, unix)), "EOPNOTSUPP", "Unix socket");
    } finally {
      sysClose(unix);
    }
  },
);

ringTest(
  "registerPersonality: an SQE runs with a registered id; an unknown or unregistered one is EINVAL",
  (config) => {
    if (older("5.6")) return;
    using ring = new IoUring(8, config.options);
    const id = ring.registerPersonality();
    assert.ok(id >= 1 && id <= 0xffff, `personality id ${id}`);
    assert.equal(run(ring, (s) => prepNop(s).setPersonality(id)), 0, "with the registered id");
    assertErr(run(ring, (s) => prepNop(s).setPersonality(id + 100)), "EINVAL", "an unknown id");
    ring.unregisterPersonality(id);
    assertErr(run(ring, (s) => prepNop(s).setPersonality(id)), "EINVAL", "after unregistering");
    assert.throws(
      () => ring.unregisterPersonality(id),
      (e) => e instanceof IoUringError && e.code === "EINVAL",
    );
    // Ids start at 1 (the kernel allocates from 1; 0 in an SQE means none): 0 is refused first.
    assert.throws(() => ring.unregisterPersonality(0), {
      name: "RangeError",
      message: "id must be an integer from 1 to 65535, got 0",
    });
  },
);

ringTest(
  "waitAsync on a ring not enabled yet throws EBADFD on every backend (the libc one returned at once, for ever)",
  async (config) => {
    if (older("5.10") || config.sqpoll) return; // (SQPOLL and R_DISABLED: see the test below)
    using ring = new IoUring(8, { ...config.options, flags: IORING_SETUP_R_DISABLED });
    await assert.rejects(ring.waitAsync(-1), (e) => e instanceof IoUringError && e.code === "EBADFD");
  },
);

ringTest("registerRestrictions + enableRings: a disabled ring allows only what was listed", (config) => {
  if (older("5.10")) return;
  using ring = new IoUring(8, { ...config.options, flags: IORING_SETUP_R_DISABLED });
  if (!config.sqpoll) {
    // Disabled, the ring refuses to enter (with a hint).
    prepNop(ring.getSqe()!).setUserData(9);
    assert.throws(
      () => ring.submit(),
      (e) => e instanceof IoUringError && e.code === "EBADFD" && /enableRings/.test(e.message),
    );
  }
  ring.registerRestrictions([
    { sqeOp: IORING_OP_NOP },
    { sqeOp: IORING_OP_READ },
    { registerOp: IORING_REGISTER_PROBE },
  ]);
  assert.throws(
    () => ring.registerRestrictions([{ sqeOp: IORING_OP_NOP }]),
    (e) =>
      e instanceof IoUringError && e.code === "EBUSY" &&
      e.hint === "a ring takes restrictions once, for its whole life: they cannot be unregistered or " +
          "replaced (create another ring with IORING_SETUP_R_DISABLED for other rules)",
    "only once",
  );
  ring.enableRings();
  if (!config.sqpoll) {
    ring.submit(); // the NOP the failed enter left in the SQ
    assert.equal(reap(ring, 1).get(9n)?.res, 0, "the NOP queued while disabled");
  }
  assert.equal(run(ring, (s) => prepNop(s)), 0, "NOP is allowed");
  const [readFd, writeFd] = pipe();
  try {
    assertErr(run(ring, (s) => prepWrite(s, writeFd, text.encode("x"), 0)), "EACCES", "WRITE is not");
    assert.equal(sysWrite(writeFd, text.encode("y")), 1);
    assert.equal(run(ring, (s) => prepRead(s, readFd, new Uint8Array(4), 0)), 1, "READ is");
  } finally {
    sysClose(readFd);
    sysClose(writeFd);
  }
  assert.ok(ring.probe().supports(IORING_OP_READ), "IORING_REGISTER_PROBE is allowed");
  assert.throws(
    () => ring.registerFilesSparse(2),
    (e) => e instanceof IoUringError && e.code === "EACCES",
    "a register call not listed",
  );
  assert.throws(
    () => ring.enableRings(),
    (e) => e instanceof IoUringError && e.code === "EACCES",
    "IORING_REGISTER_ENABLE_RINGS was not listed either",
  );
});

ringTest(
  "BufferRing.close() the kernel refuses (a restricted ring) frees nothing: the kernel still picks from it",
  (config) => {
    if (older("5.19")) return;
    using ring = new IoUring(8, { ...config.options, flags: IORING_SETUP_R_DISABLED });
    ring.registerRestrictions([{ registerOp: IORING_REGISTER_PBUF_RING }, { sqeOp: IORING_OP_READ }, {
      sqeFlagsAllowed: IOSQE_BUFFER_SELECT,
    }]);
    ring.enableRings();
    const buffers = ring.setupBufferRing({ group: 1, entries: 1, bufferSize: 4096 });
    // The memory was freed although the group stayed registered: the next read landed in
    // whatever took its place (a new buffer, or malloc's bookkeeping: aborts).
    assert.throws(
      () => buffers.close(),
      (e) =>
        e instanceof IoUringError && e.code === "EACCES" && /IORING_UNREGISTER_PBUF_RING/.test(e.message),
    );
    assert.equal(buffers.closed, false, "still open: its memory is still the kernel's to pick from");
    const [readFd, writeFd] = pipe();
    try {
      assert.equal(sysWrite(writeFd, text.encode("still here")), 10);
      const res = run(ring, (s) => prepReadSelect(s, readFd, buffers, 0));
      assert.equal(res, 10);
      assert.equal(new TextDecoder().decode(buffers.view(0).subarray(0, 10)), "still here");
    } finally {
      sysClose(readFd);
      sysClose(writeFd);
    }
    ring.close();
    assert.throws(
      () => ring.bufferRingHead(buffers),
      ClosedError,
      "the ring is closed (not: another ring's)",
    );
    // Closed with its ring, as documented; its memory stays mapped (the kernel may still use it).
    assert.equal(buffers.closed, true);
    assert.throws(() => buffers.view(0), ClosedError);
  },
);

ringTest(
  "registerRestrictions: refused on an enabled ring (EBADFD), and bad rules before the kernel",
  (config) => {
    if (older("5.10")) return;
    using ring = new IoUring(8, config.options);
    assert.throws(
      () => ring.registerRestrictions([{ sqeOp: IORING_OP_NOP }]),
      (e) => e instanceof IoUringError && e.code === "EBADFD",
    );
    assert.throws(() => ring.enableRings(), (e) => e instanceof IoUringError && e.code === "EBADFD");
    assert.throws(() => ring.registerRestrictions([]), TypeError);
    assert.throws(() => ring.registerRestrictions([{ sqeOp: 256 }]), RangeError);
    assert.throws(() => ring.registerRestrictions([{ sqeOp: 1, registerOp: 2 } as never]), TypeError);
    assert.throws(() => ring.registerRestrictions([{ nope: 1 } as never]), TypeError);
    // A hole is refused as undefined is: skipped, its 16 zero bytes read as "allow
    // IORING_REGISTER_BUFFERS" (a probe's restricted ring then registered buffers).
    // deno-lint-ignore no-sparse-arrays
    const holed = [, { sqeOp: IORING_OP_NOP }] as never;
    assert.throws(() => ring.registerRestrictions(holed), /^TypeError: restrictions\[0\] must be/);
    assert.throws(() => ring.registerRestrictions(new Array(2)), /^TypeError: restrictions\[0\] must be/);
    // deno-lint-ignore no-sparse-arrays
    assert.throws(
      () => ring.registerIowqAffinity([, 1] as never),
      /^TypeError: cpus\[0\] must be an integer from 0 to 1023, got undefined$/,
    );
    assert.throws(
      () => ring.registerIowqAffinity(new Array(3)),
      /^TypeError: cpus\[0\] must be an integer from 0 to 1023, got undefined$/,
    );
  },
);

ringTest(
  "registerFilesSparse + registerFileAllocRange: direct opens fill the range's slots in order",
  (config) => {
    if (older("6.0")) return;
    using ring = new IoUring(8, config.options);
    ring.registerFilesSparse(8);
    assert.equal(ring.registeredFileCount, 8);
    ring.registerFileAllocRange(5, 2);
    const path = cstring("/dev/null");
    const open = () =>
      run(ring, (s) => prepOpenatDirect(s, AT_FDCWD, path, O_RDONLY, 0, IORING_FILE_INDEX_ALLOC));
    assert.equal(open(), 5);
    assert.equal(open(), 6);
    assertErr(open(), "ENFILE", "the range is full");
    // Past the table (the kernel's EINVAL) or past 2^32 (its EOVERFLOW): refused before it.
    const outside = (offset: number, length: number, message: string) =>
      assert.throws(() => ring.registerFileAllocRange(offset, length), { name: "RangeError", message });
    outside(7, 2, "slots 7..8 are outside the table of 8 registered files");
    outside(9, 0, "offset 9 is outside the table of 8 registered files");
    outside(0xffffffff, 1, "slots 4294967295..4294967295 are outside the table of 8 registered files");
    outside(1, 0xffffffff, "slots 1..4294967295 are outside the table of 8 registered files");
    assertErr(open(), "ENFILE", "the range the refused calls left as it was");
    ring.unregisterFiles();
    outside(
      0,
      1,
      "slots 0..0 are outside the table of 0 registered files (register files first: registerFiles or " +
        "registerFilesSparse)",
    );
  },
);

ringTest("cancelSync: a read waiting on a pipe is cancelled and gone when the call returns", (config) => {
  if (older("6.0")) return;
  using ring = new IoUring(8, config.options);
  const [readFd, writeFd] = pipe();
  try {
    queue(ring, 7, (s) => prepRead(s, readFd, new Uint8Array(4), 0));
    ring.submit();
    assertNoCompletion(ring, 20); // (under SQPOLL: long enough for the thread to have issued it)
    assert.equal(ring.cancelSync({ userData: 7 }), 0);
    // Without SQPOLL the completion is there at once; under SQPOLL the SQ thread, which owns the
    // request, posts it (reap waits for it).
    if (!config.sqpoll) assert.ok(ring.cqReady() >= 1, "posted before cancelSync returned");
    assertErr(reap(ring, 1).get(7n)!.res, "ECANCELED");
    assert.throws(
      () => ring.cancelSync({ userData: 7 }),
      (e) => e instanceof IoUringError && e.code === "ENOENT",
      "nothing left to cancel",
    );
    // By fd, every match.
    queue(ring, 8, (s) => prepRead(s, readFd, new Uint8Array(4), 0));
    queue(ring, 9, (s) => prepRead(s, readFd, new Uint8Array(4), 0));
    ring.submit();
    assertNoCompletion(ring, 20);
    assert.equal(ring.cancelSync({ fd: readFd, all: true }), 2, "both reads on the fd");
    const done = reap(ring, 2);
    assertErr(done.get(8n)!.res, "ECANCELED");
    assertErr(done.get(9n)!.res, "ECANCELED");
  } finally {
    sysClose(readFd);
    sysClose(writeFd);
  }
  assert.throws(() => ring.cancelSync({}), RangeError);
  assert.throws(() => ring.cancelSync({ any: true, userData: 1 }), RangeError);
  assert.throws(() => ring.cancelSync({ userData: -1 }), RangeError);
  // A truthy non-boolean was taken as false (one match of two cancelled, without a word).
  assert.throws(
    () => ring.cancelSync({ userData: 1, all: 1 as unknown as boolean }),
    /^TypeError: cancelSync: all must be a boolean, got 1$/,
  );
  assert.throws(
    () => ring.cancelSync({ userData: 1, timeoutMs: -5 }),
    /^RangeError: cancelSync: timeoutMs must be a number of milliseconds ≥ 0, got -5$/,
  );
});

ringTest("bufferRingHead: the kernel's head moves by one per buffer it picks", (config) => {
  if (older("6.8")) return;
  using ring = new IoUring(8, config.options);
  using buffers = ring.setupBufferRing({ group: 4, entries: 4, bufferSize: 64 });
  assert.equal(ring.bufferRingHead(buffers), 0);
  const [readFd, writeFd] = pipe();
  try {
    for (let i = 0; i < 2; i++) {
      assert.equal(sysWrite(writeFd, text.encode("ab")), 2);
      assert.equal(run(ring, (s) => prepReadSelect(s, readFd, buffers, -1)), 2);
    }
    assert.equal(ring.bufferRingHead(4), 2);
  } finally {
    sysClose(readFd);
    sysClose(writeFd);
  }
  assert.throws(() => ring.bufferRingHead(5), (e) => e instanceof IoUringError && e.code === "ENOENT");
});

ringTest(
  "registerClock: CLOCK_BOOTTIME is taken and timed waits still time out; CLOCK_REALTIME is refused",
  (config) => {
    if (older("6.12")) return;
    using ring = new IoUring(8, config.options);
    ring.registerClock(7); // CLOCK_BOOTTIME
    const start = performance.now();
    assert.equal(ring.waitCqe({ timeoutMs: 30 }), null);
    const waited = performance.now() - start;
    assert.ok(waited >= 25 && waited < 5000, `waited ${waited} ms for a 30 ms timeout`);
    ring.registerClock(1); // CLOCK_MONOTONIC
    // CLOCK_REALTIME (0), which the kernel refuses (EINVAL), is refused before it.
    assert.throws(
      () => ring.registerClock(0),
      /clockId must be CLOCK_MONOTONIC \(1\) or CLOCK_BOOTTIME \(7\), got 0/,
    );
  },
);

Deno.test({
  name:
    "registerPersonality: after the process drops root, an SQE with the root personality still opens a root-only file",
  ignore: Deno.uid() !== 0,
  async fn() {
    using tmp = tempDir();
    const secret = `${tmp.path}/secret`;
    Deno.writeTextFileSync(secret, "root only");
    Deno.chmodSync(secret, 0o600);
    const script = `${tmp.path}/child.ts`;
    Deno.writeTextFileSync(
      script,
      `import { AT_FDCWD, cstring, IoUring, O_RDONLY, prepOpenat } from ${
        JSON.stringify(new URL("../mod.ts", import.meta.url).href)
      };
const ring = new IoUring(8, { sqpoll: Deno.args[1] === "sqpoll" });
const id = ring.registerPersonality(); // root's credentials
const libc = Deno.dlopen("libc.so.6", { setresuid: { parameters: ["u32", "u32", "u32"], result: "i32" } });
if (libc.symbols.setresuid(65534, 65534, 65534) !== 0) throw new Error("setresuid failed");
const path = cstring(Deno.args[0]);
const open = (personality: number) => {
  const sqe = ring.getSqe()!;
  prepOpenat(sqe, AT_FDCWD, path, O_RDONLY, 0);
  if (personality !== 0) sqe.setPersonality(personality);
  ring.submitAndWait(1);
  const res = ring.peekCqe()!.res;
  ring.cqAdvance(1);
  return res;
};
console.log(JSON.stringify({ sqpoll: ring.sqpoll, without: open(0), with: open(id) }));
`,
    );
    for (const mode of ["nosqpoll", "sqpoll"]) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", "--allow-read", script, secret, mode],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const got = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.ok(got.with >= 0, `${mode}: with the personality: ${describe(got.with)}`);
      if (got.sqpoll) {
        // The SQ thread submits with the credentials of the thread that created the ring.
        assert.ok(got.without >= 0, `sqpoll: without a personality: ${describe(got.without)}`);
      } else {
        assertErr(got.without, "EACCES", `${mode}: without the personality, as nobody`);
      }
    }
  },
});

/**
 * A child process (a fresh io-wq, without idle workers of earlier tests, which keep the CPUs they
 * were started with and take new work) that parks FIFO opens in io-wq workers around
 * `registerIowqAffinity([1])` and `unregisterIowqAffinity()`, and prints the CPUs of the workers
 * waiting in a FIFO open (`wait_for_partner`) after each.
 */
const IOWQ_CHILD = `
import { AT_FDCWD, cstring, IoUring, IOSQE_ASYNC, O_RDONLY, prepOpenat } from ${
  JSON.stringify(new URL("../mod.ts", import.meta.url).href)
};
const [fifo, backend, sqpoll] = Deno.args;
const ring = new IoUring(8, { sqpoll: sqpoll === "sqpoll", backend });
const path = cstring(fifo);
const cpus = () => {
  const out = new Deno.Command("sh", { args: ["-c",
    \`for t in /proc/\${Deno.pid}/task/*; do case "$(cat $t/comm) $(cat $t/wchan)" in \` +
    \`"iou-wrk-"*" wait_for_partner") grep Cpus_allowed_list $t/status | cut -f2;; esac; done\`],
    stdout: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout).split("\\n").filter((l) => l !== "").sort();
};
const seen = [];
const park = async (n) => {
  const sqe = ring.getSqe();
  prepOpenat(sqe, AT_FDCWD, path, O_RDONLY, 0);
  sqe.setFlags(IOSQE_ASYNC);
  ring.submit();
  let now = [];
  for (const end = performance.now() + 5000; performance.now() < end; await new Promise((r) => setTimeout(r, 10))) {
    now = cpus();
    if (now.length >= n) break;
  }
  seen.push(now);
};
ring.registerIowqMaxWorkers(3, 0); // opens are bounded work: room for three
await park(1);
ring.registerIowqAffinity([1]);
await park(2);
ring.unregisterIowqAffinity();
await park(3);
Deno.openSync(fifo, { write: true }).close();
console.log(JSON.stringify({ sqpoll: ring.sqpoll, seen }));
`;

ringTest(
  "registerIowqAffinity: io-wq workers started after it run on the CPUs given, until unregistered",
  async (config) => {
    if (older("5.14")) return;
    if (navigator.hardwareConcurrency < 2) return; // (nothing to tell apart on one CPU)
    using tmp = tempDir();
    const fifo = `${tmp.path}/fifo`;
    mkfifo(fifo);
    const script = `${tmp.path}/child.ts`;
    Deno.writeTextFileSync(script, IOWQ_CHILD);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--no-check",
        script,
        fifo,
        config.backend,
        config.sqpoll ? "sqpoll" : "no",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const { seen } = JSON.parse(new TextDecoder().decode(out.stdout));
    const all = `0-${navigator.hardwareConcurrency - 1}`;
    assert.deepEqual(seen, [
      [all],
      [all, "1"].sort(), // the waiting worker stays where it was; the one started after is pinned
      [all, all, "1"].sort(), // started after the unregister: anywhere again
    ]);
    using ring = new IoUring(8, config.options);
    assert.throws(() => ring.registerIowqAffinity([]), TypeError);
    assert.throws(() => ring.registerIowqAffinity([1024]), RangeError);
  },
);

ringTest("registerNapi / unregisterNapi: each returns the settings that were in force", (config) => {
  if (older("6.9")) return;
  using ring = new IoUring(8, config.options);
  assert.deepEqual(ring.registerNapi({ busyPollUs: 50, preferBusyPoll: true }), {
    busyPollUs: 0,
    preferBusyPoll: false,
  });
  assert.deepEqual(ring.registerNapi({ busyPollUs: 20, preferBusyPoll: false }), {
    busyPollUs: 50,
    preferBusyPoll: true,
  });
  assert.deepEqual(ring.unregisterNapi(), { busyPollUs: 20, preferBusyPoll: false });
  assert.throws(() => ring.registerNapi({ busyPollUs: -1, preferBusyPoll: true }), RangeError);
  assert.throws(() => ring.registerNapi({ busyPollUs: 1 } as never), TypeError);
  assert.throws(() => ring.registerNapi(null as never), TypeError);
  // The kernel refuses NAPI on any polled ring (EINVAL, before it reads the settings).
  using polled = new IoUring(2, { ...config.options, iopoll: true });
  assert.throws(() => polled.registerNapi({ busyPollUs: 10, preferBusyPoll: false }), {
    name: "RangeError",
    message: "registerNapi: the kernel refuses network busy-polling (NAPI) on a polled ring (iopoll: " +
      "true, IORING_SETUP_IOPOLL; EINVAL): use a ring without iopoll for the sockets",
  });
  assert.deepEqual(
    polled.unregisterNapi(),
    { busyPollUs: 0, preferBusyPoll: false },
    "unregister is allowed",
  );
});

ringTest(
  "a restricted ring's close() releases it: its pending read is cancelled, not left to take the data",
  async (config) => {
    if (older("5.18")) return;
    const [readFd, writeFd] = pipe();
    try {
      const ring = new IoUring(8, { ...config.options, flags: IORING_SETUP_R_DISABLED });
      ring.registerRestrictions([{ sqeOp: IORING_OP_READ }]); // IORING_UNREGISTER_RING_FDS not listed
      assert.equal(ring.ringIndex, -1, "out of the thread's table of rings, which would keep it alive");
      ring.enableRings();
      queue(ring, 1, (s) => prepRead(s, readFd, new Uint8Array(8), 0));
      ring.submit();
      assertNoCompletion(ring, 20); // the read waits on the empty pipe
      ring.close();
      // The kernel tears a closed ring down shortly after (cancelling its read); one kept alive by
      // the table of rings keeps its read, which would take the data meant for our next reader.
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(sysWrite(writeFd, text.encode("hello")), 5);
      using reader = new IoUring(8, config.options);
      queue(reader, 2, (s) => prepRead(s, readFd, new Uint8Array(8), 0));
      reader.submit();
      const cqe = reader.waitCqe({ timeoutMs: 2000 });
      assert.equal(cqe?.res, 5, "the data reached a reader of the open ring");
    } finally {
      sysClose(readFd);
      sysClose(writeFd);
    }
  },
);

/**
 * Rings of 128-byte SQEs and 32-byte CQEs (`sqe128`, `cqe32`, 5.19) through the kernel, in every
 * ring configuration: the kernel must find each SQE at a 128-byte stride (reads of a file land
 * where their SQEs said, over several laps of the ring, through `getSqe` and the one-call
 * `queue*` forms), `getSqe` must hand out all 128 bytes zeroed, and every reaper must read CQEs at
 * a 32-byte stride with their extra words (NOPs that post them: `IORING_NOP_CQE32`, 6.18), also
 * after a CQ overflow. A driver command through `prepUringCmd` (a socket's getsockopt, whose
 * optval pointer travels in the command area), and NOPs with an injected result.
 */

import assert from "node:assert/strict";
import {
  AF_INET,
  type Cqe,
  IORING_SETUP_CQE32,
  IORING_SETUP_SQE128,
  IORING_TIMEOUT_MULTISHOT,
  IOSQE_IO_LINK,
  IoUring,
  O_RDONLY,
  prepClose,
  prepMsgRing,
  prepNop,
  prepNopCqe32,
  prepNopResult,
  prepRead,
  prepSocket,
  prepTimeout,
  prepUringCmd,
  SO_TYPE,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOCKET_URING_OP_GETSOCKOPT,
  SOL_SOCKET,
  type Sqe,
  Timespec,
} from "../mod.ts";
import { assertErr, describe, openFile, reap, run, sysClose } from "./_io.ts";
import { older, ringTest, skipKernel, tempDir } from "./_support.ts";
import { W } from "../src/sqe.ts";

/** A file of `size` bytes where byte i is i % 251 (a prime: no two nearby 4 KiB blocks agree). */
function patternedFile(path: string, size: number): Uint8Array {
  const data = Uint8Array.from({ length: size }, (_, i) => i % 251);
  Deno.writeFileSync(path, data);
  return data;
}

ringTest("sqe128: reads over three laps land as their 128-byte SQEs said", (config) => {
  using dir = tempDir();
  const data = patternedFile(`${dir.path}/f`, 64 * 1024);
  using ring = new IoUring(4, { ...config.options, sqe128: true });
  assert.equal(ring.params.flags & IORING_SETUP_SQE128, IORING_SETUP_SQE128);
  const fd = openFile(ring, `${dir.path}/f`, O_RDONLY);
  try {
    const bufs = Array.from({ length: 4 }, () => new Uint8Array(100));
    for (let lap = 0; lap < 3; lap++) {
      for (let i = 0; i < 4; i++) {
        const offset = (lap * 4 + i) * 1000 + 7;
        if (i % 2 === 0) {
          const sqe = ring.getSqe()!;
          assert.equal(sqe.size, 128);
          assert.ok(sqe.bytes().every((b) => b === 0), "getSqe handed out all 128 bytes zeroed");
          prepRead(sqe, fd, bufs[i], offset).setUserData(offset);
        } else {
          assert.ok(ring.queueRead(offset, fd, bufs[i], offset), "queueRead");
        }
      }
      ring.submit();
      const done = reap(ring, 4);
      for (let i = 0; i < 4; i++) {
        const offset = (lap * 4 + i) * 1000 + 7;
        assert.equal(
          done.get(BigInt(offset))?.res,
          100,
          `read at ${offset}: ${describe(done.get(BigInt(offset))?.res ?? 0)}`,
        );
        assert.deepEqual(bufs[i], data.subarray(offset, offset + 100), `the bytes at ${offset}`);
      }
    }
    // queueNop writes at the 128-byte stride too.
    for (let i = 0; i < 4; i++) assert.ok(ring.queueNop(900 + i));
    ring.submit();
    assert.deepEqual([...reap(ring, 4).keys()].sort(), [900n, 901n, 902n, 903n]);
  } finally {
    sysClose(fd);
  }
});

ringTest("sqe128: getSqe zeroes a command area a previous lap filled", (config) => {
  using ring = new IoUring(2, { ...config.options, sqe128: true });
  // Fill both slots' command areas with 0xaa (a NOP's command area is not read), complete them.
  for (let lap = 0; lap < 3; lap++) {
    for (let i = 0; i < 2; i++) {
      const sqe = ring.getSqe()!;
      assert.ok(sqe.bytes().every((b) => b === 0), `lap ${lap}: stale bytes in a fresh SQE`);
      prepNop(sqe).setUserData(lap * 2 + i);
      sqe.u8.fill(0xaa, sqe.cmdOffset, sqe.cmdOffset + sqe.cmdSize);
    }
    ring.submit();
    reap(ring, 2);
  }
});

/** The NOPs' extra words: distinct per NOP, with both halves of each word used. */
function extras(n: number): [bigint, bigint] {
  return [0x1000_0000_0000n * BigInt(n + 1) + BigInt(n), 0xffff_ffff_0000_0000n - BigInt(n)];
}

ringTest("cqe32: every reaper reads 32-byte CQEs with their extra words, over laps", (config) => {
  if (older("6.18")) return; // IORING_NOP_CQE32
  using ring = new IoUring(4, { ...config.options, cqe32: true, cqEntries: 4 });
  assert.equal(ring.params.flags & IORING_SETUP_CQE32, IORING_SETUP_CQE32);
  let n = 0;
  /** Queues and submits `count` NOPs with extras, user_data n; returns their numbers. */
  const queue = (count: number): number[] => {
    const ids: number[] = [];
    for (let i = 0; i < count; i++, n++) {
      const [e1, e2] = extras(n);
      prepNopCqe32(ring.getSqe()!, e1, e2).setUserData(n);
      ids.push(n);
    }
    ring.submitAndWait(count);
    return ids;
  };
  const check = (cqe: Cqe, id: number, how: string) => {
    assert.equal(cqe.userDataNumber, id, how);
    assert.equal(cqe.res, 0, `${how}: ${describe(cqe.res)}`);
    assert.deepEqual([cqe.extra1, cqe.extra2], extras(id), `${how}: extras of ${id}`);
  };
  for (let lap = 0; lap < 3; lap++) {
    for (const id of queue(1)) {
      const cqe = ring.peekCqe()!;
      check(cqe, id, "peekCqe");
      ring.cqAdvance(1);
    }
    for (const id of queue(1)) {
      const cqe = ring.waitCqe()!;
      check(cqe, id, "waitCqe");
      ring.cqAdvance(1);
    }
    const ids = queue(3);
    const seen: number[] = [];
    ring.forEachCqe((cqe) => {
      check(cqe, ids[seen.length], "forEachCqe");
      seen.push(cqe.userDataNumber);
    });
    assert.deepEqual(seen, ids);
    const batch = queue(2);
    assert.equal(ring.peekBatch([]), 0, "an empty array takes none");
    const two: Cqe[] = [null!, null!];
    assert.equal(ring.peekBatch(two), 2);
    two.forEach((cqe, i) => check(cqe, batch[i], "peekBatch"));
    ring.cqAdvance(2);
    const plain = queue(3);
    const got: [number, number][] = [];
    ring.forEachCompletion((userData, res) => got.push([userData, res]));
    assert.deepEqual(got, plain.map((id) => [id, 0]), "forEachCompletion");
    for (const id of queue(2)) {
      let cqe: Cqe | undefined;
      for (const c of ring.completions()) {
        cqe = c;
        break;
      }
      check(cqe!, id, "completions()");
    }
  }
});

ringTest("cqe32: completions that overflowed the CQ come back whole and in order", (config) => {
  if (older("6.18")) return;
  using ring = new IoUring(8, { ...config.options, cqe32: true, cqEntries: 8 });
  // 24 NOPs into 8 CQ slots, in three submits, reaping nothing in between.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 8; i++) {
      const id = round * 8 + i;
      const [e1, e2] = extras(id);
      prepNopCqe32(ring.getSqe()!, e1, e2).setUserData(id);
    }
    ring.submit();
    const start = performance.now();
    while (ring.sqReady() > 0 && performance.now() - start < 5000) { /* the SQ thread takes them */ }
  }
  assert.equal(ring.cqReady(), 8, "the CQ is full: the other 16 wait in the kernel's overflow list");
  const seen: number[] = [];
  for (const deadline = performance.now() + 5000; seen.length < 24 && performance.now() < deadline;) {
    ring.forEachCqe((cqe) => {
      assert.deepEqual(
        [cqe.extra1, cqe.extra2],
        extras(cqe.userDataNumber),
        `extras of ${cqe.userDataNumber}`,
      );
      seen.push(cqe.userDataNumber);
    });
  }
  assert.deepEqual(seen, Array.from({ length: 24 }, (_, i) => i), "every completion, once, in order");
});

ringTest("cqe32 without the NOP's flag, and sqe128 with cqe32: plain NOPs read right", (config) => {
  using ring = new IoUring(4, { ...config.options, sqe128: true, cqe32: true });
  for (let lap = 0; lap < 3; lap++) {
    for (let i = 0; i < 4; i++) prepNop(ring.getSqe()!).setUserData(lap * 4 + i);
    ring.submitAndWait(4);
    const seen: number[] = [];
    ring.forEachCqe((cqe) => {
      assert.equal(cqe.res, 0);
      assert.equal(cqe.extra1 | cqe.extra2, 0n, "a NOP without IORING_NOP_CQE32 leaves the extra words 0");
      seen.push(cqe.userDataNumber);
    });
    assert.deepEqual(seen, [0, 1, 2, 3].map((i) => lap * 4 + i));
  }
});

ringTest("prepNopCqe32 on a ring of 16-byte CQEs: the kernel refuses it with EINVAL", (config) => {
  if (older("6.18")) return;
  using ring = new IoUring(2, config.options);
  assertErr(run(ring, (s) => prepNopCqe32(s, 1, 2)), "EINVAL");
});

ringTest("prepNopResult: the injected result, and a negative one breaks the link it heads", (config) => {
  if (older("6.10")) return;
  using ring = new IoUring(4, config.options);
  assert.equal(run(ring, (s) => prepNopResult(s, 12345)), 12345);
  prepNopResult(ring.getSqe()!, -2).setUserData(1).addFlags(IOSQE_IO_LINK);
  prepNop(ring.getSqe()!).setUserData(2);
  ring.submit();
  const done = reap(ring, 2);
  assertErr(done.get(1n)!.res, "ENOENT", "the injected result");
  assertErr(done.get(2n)!.res, "ECANCELED", "the NOP linked after it");
});

for (const sqe128 of [false, true]) {
  ringTest(
    `prepUringCmd: a socket's getsockopt, its optval pointer in the command area (sqe128 ${sqe128})`,
    (config) => {
      if (older("6.7")) return;
      using ring = new IoUring(4, { ...config.options, sqe128 });
      const fd = run(ring, (s) => prepSocket(s, AF_INET, SOCK_STREAM | SOCK_CLOEXEC));
      assert.ok(fd >= 0, describe(fd));
      try {
        const optval = new Int32Array([-1]);
        const address = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(optval)));
        // The command: optval's address (addr3, the area's first 8 bytes), then bytes the socket
        // does not read (all of a 128-byte SQE's area, to show the copy stays in it).
        const cmd = new Uint8Array(sqe128 ? 80 : 16).fill(0x5a);
        new DataView(cmd.buffer).setBigUint64(0, address, true);
        const res = run(ring, (s) => {
          prepUringCmd(s, SOCKET_URING_OP_GETSOCKOPT, fd, cmd);
          s.u32[s.base + W.addrLo] = SOL_SOCKET; // level and optname share addr, as prepCmdSock writes
          s.u32[s.base + W.addrHi] = SO_TYPE;
          s.u32[s.base + W.spliceFdIn] = 4; // optlen
        });
        assert.equal(res, 4, `getsockopt: ${describe(res)}`);
        assert.equal(optval[0], SOCK_STREAM, "SO_TYPE written through the pointer in the command area");
      } finally {
        sysClose(fd);
      }
    },
  );
}

Deno.test({
  name: "IoUring options sqe128/cqe32: booleans only; the raw SETUP flags do the same; mixed layouts refused",
  ignore: skipKernel(),
  fn() {
    assert.throws(() => new IoUring(2, { sqe128: 1 as unknown as boolean }), /sqe128 must be true or false/);
    assert.throws(
      () => new IoUring(2, { cqe32: "yes" as unknown as boolean }),
      /cqe32 must be true or false/,
    );
    using ring = new IoUring(2, { sqpoll: false, flags: IORING_SETUP_SQE128 | IORING_SETUP_CQE32 });
    assert.equal(ring.getSqe()!.size, 128);
    prepNop(ring.getSqe()!).setUserData(7);
    ring.submitAndWait(2);
    const seen: number[] = [];
    ring.forEachCqe((cqe) => seen.push(cqe.userDataNumber));
    assert.deepEqual(seen, [0, 7], "the first SQE (left zeroed: a NOP with user_data 0), then ours");
    assert.throws(() => new IoUring(2, { flags: 1 << 18 }), /CQE_MIXED/); // IORING_SETUP_CQE_MIXED
  },
});

ringTest("a prep over a NOP with nop_flags drops them (and the fields they named)", (config) => {
  if (older("6.18")) return;
  using ring = new IoUring(4, { ...config.options, cqe32: true });
  const once = (prep: (sqe: Sqe) => void): Cqe => {
    const sqe = ring.getSqe()!;
    prep(sqe);
    sqe.setUserData(1);
    ring.submitAndWait(1);
    const cqe = ring.peekCqe()!;
    ring.cqAdvance(1);
    return cqe;
  };
  assert.equal(once((s) => prepNop(prepNopResult(s, -5))).res, 0, "a NOP after an injected result");
  const cqe = once((s) => prepNop(prepNopCqe32(s, 1, 2)));
  assert.deepEqual([cqe.res, cqe.extra1, cqe.extra2], [0, 0n, 0n], "a NOP after a CQE32 NOP");
  assertErr(
    once((s) => prepClose(prepNopResult(s, 3), 999)).res,
    "EBADF",
    "a close after an injected result",
  );
  assertErr(once((s) => prepClose(prepNopCqe32(s, 1, 2), 999)).res, "EBADF", "a close after a CQE32 NOP");
});

ringTest(
  "cqe32: CQEs the kernel posts itself (a message, a multishot timeout) show no earlier lap's words",
  (config) => {
    if (older("6.18")) return;
    using ring = new IoUring(4, { ...config.options, cqe32: true, cqEntries: 4 });
    using other = new IoUring(2, { sqpoll: false });
    for (let i = 0; i < 4; i++) prepNopCqe32(ring.getSqe()!, 0x1111_0000 + i, 0x2222_0000 + i).setUserData(i);
    ring.submitAndWait(4);
    ring.cqAdvance(4); // every CQ slot held extra words
    prepTimeout(ring.getSqe()!, new Timespec(5), 3, IORING_TIMEOUT_MULTISHOT).setUserData(50);
    ring.submit();
    prepMsgRing(other.getSqe()!, ring.fd, 7, 60).setUserData(1);
    other.submitAndWait(1);
    other.cqAdvance(1);
    const seen: string[] = [];
    for (let n = 0; n < 4; n++) {
      const cqe = ring.waitCqe({ timeoutMs: 2000 });
      assert.ok(cqe, `completion ${n} of 4 missing`);
      seen.push(`${cqe.userDataNumber}: ${cqe.extra1} ${cqe.extra2}`);
      ring.cqAdvance(1);
    }
    assert.deepEqual(seen.sort(), ["50: 0 0", "50: 0 0", "50: 0 0", "60: 0 0"]);
  },
);

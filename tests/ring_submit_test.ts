/**
 * Submission and waiting on the raw ring when things go wrong (a probe's findings): a signal that
 * ends `io_uring_enter`'s wait, an SQE the kernel refuses in the middle of a batch, a chain half
 * published by `flushSq`, peeks on a `DEFER_TASKRUN` ring, setup flags that contradict the
 * options, and misuse of closed or foreign buffer rings and of transferred fixed buffers.
 */

import assert from "node:assert/strict";
import {
  checkFixedBuffer,
  ClosedError,
  IORING_OP_NOP,
  IORING_SETUP_ATTACH_WQ,
  IORING_SETUP_COOP_TASKRUN,
  IORING_SETUP_CQSIZE,
  IORING_SETUP_DEFER_TASKRUN,
  IORING_SETUP_IOPOLL,
  IORING_SETUP_NO_SQARRAY,
  IORING_SETUP_R_DISABLED,
  IORING_SETUP_SINGLE_ISSUER,
  IORING_SETUP_SQ_AFF,
  IORING_SETUP_SQPOLL,
  IORING_SETUP_TASKRUN_FLAG,
  IOSQE_IO_HARDLINK,
  IOSQE_IO_LINK,
  IoUring,
  prepNop,
  prepRead,
  prepReadSelect,
  prepTimeout,
  Timespec,
} from "../mod.ts";
import { assertErr, pipe, reap, sysClose, sysWrite } from "./_io.ts";
import { older, ringTest, skipKernel } from "./_support.ts";

const text = new TextEncoder();

/**
 * Runs, in a process of its own, `submitAndWait(1)` on a 30 ms timeout 10 times while a shell
 * sends the process SIGWINCH (which it listens for) every few milliseconds, and returns what it
 * printed: how often the call came back with nothing ready. (In a process of its own: under
 * `deno test` the signals do not land in the main thread's wait.)
 */
async function earlyReturnsUnderSignals(options: string): Promise<string> {
  const script = `
    import { IoUring, prepTimeout, Timespec } from ${
    JSON.stringify(new URL("../mod.ts", import.meta.url).href)
  };
    Deno.addSignalListener("SIGWINCH", () => {});
    const ring = new IoUring(4, ${options});
    const storm = new Deno.Command("sh", {
      args: ["-c", "while kill -WINCH " + Deno.pid + " 2>/dev/null; do sleep 0.002; done"],
    }).spawn();
    const ts = new Timespec(30);
    let early = 0;
    for (let round = 0; round < 10; round++) {
      prepTimeout(ring.getSqe()!, ts).setUserData(round);
      ring.submitAndWait(1);
      if (ring.cqReady() === 0) early++;
      else if (ring.peekCqe()!.res !== -62) throw new Error("not ETIME: " + ring.peekCqe()!.res);
      ring.waitCqe();
      ring.cqAdvance(1);
    }
    storm.kill("SIGKILL");
    await storm.status;
    console.log("early " + early);
    Deno.exit(0);
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", "--allow-read", "--allow-env", "--allow-run", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(script));
  await writer.close();
  const result = await child.output();
  const stdout = new TextDecoder().decode(result.stdout).trim();
  assert.ok(result.success, `the child failed: ${stdout}\n${new TextDecoder().decode(result.stderr)}`);
  return stdout;
}

ringTest(
  "submitAndWait waits on when a signal ends the kernel's wait after the submission",
  async (config) => {
    assert.equal(await earlyReturnsUnderSignals(JSON.stringify(config.options)), "early 0");
  },
);

ringTest(
  "an SQE the kernel refuses mid-batch fails alone: the rest are submitted and waited for",
  (config) => {
    using ring = new IoUring(8, config.options);
    // An opcode no kernel has: the kernel refuses it before running it.
    for (const how of ["submit", "submitAndWait"] as const) {
      prepNop(ring.getSqe()!).setUserData(1);
      const bad = ring.getSqe()!;
      prepNop(bad).setUserData(2);
      bad.u8[bad.base * 4] = 250; // opcode byte
      prepNop(ring.getSqe()!).setUserData(3);
      prepNop(ring.getSqe()!).setUserData(4);
      if (how === "submitAndWait") ring.submitAndWait(4);
      else ring.submit();
      if (!config.sqpoll) assert.equal(ring.sqReady(), 0, `${how}: SQEs left unsubmitted`);
      const done = reap(ring, 4, 2000);
      assertErr(done.get(2n)!.res, "EINVAL", `${how}: the unknown opcode`);
      for (const id of [1n, 3n, 4n]) assert.equal(done.get(id)!.res, 0, `${how}: NOP ${id}`);
    }
  },
);

ringTest("a restricted ring's refused SQE does not strand the NOPs after it", (config) => {
  if (older("5.10")) return;
  using ring = new IoUring(8, { ...config.options, flags: IORING_SETUP_R_DISABLED });
  ring.registerRestrictions([{ sqeOp: IORING_OP_NOP }]);
  ring.enableRings();
  const [readFd, writeFd] = pipe();
  try {
    prepRead(ring.getSqe()!, readFd, new Uint8Array(4), 0).setUserData(1);
    prepNop(ring.getSqe()!).setUserData(2);
    prepNop(ring.getSqe()!).setUserData(3);
    ring.submit();
    const done = reap(ring, 3, 2000);
    assertErr(done.get(1n)!.res, "EACCES", "the READ the rules leave out");
    assert.equal(done.get(2n)!.res, 0);
    assert.equal(done.get(3n)!.res, 0);
  } finally {
    sysClose(readFd);
    sysClose(writeFd);
  }
});

ringTest("flushSq holds back a chain still being built, so the kernel cannot split it", (config) => {
  using ring = new IoUring(8, config.options);
  prepNop(ring.getSqe()!).setUserData(1);
  prepTimeout(ring.getSqe()!, new Timespec(30)).setUserData(2).addFlags(IOSQE_IO_HARDLINK);
  assert.equal(ring.flushSq(), 1, "the NOP before the chain goes; the chain's head waits");
  const start = performance.now();
  while (performance.now() - start < 5) { /* an SQ thread would take what was published */ }
  prepNop(ring.getSqe()!).setUserData(3).addFlags(IOSQE_IO_LINK);
  assert.equal(ring.flushSq(), 0, "still open: its last SQE so far links on");
  prepNop(ring.getSqe()!).setUserData(4);
  assert.equal(ring.flushSq(), 3, "the chain is complete");
  ring.submit();
  const order: number[] = [];
  for (const deadline = performance.now() + 2000; order.length < 4 && performance.now() < deadline;) {
    ring.forEachCqe((cqe) => void order.push(cqe.userDataNumber));
    if (order.length < 4) ring.waitCqe({ timeoutMs: 50 });
  }
  assert.deepEqual(order, [1, 2, 3, 4], "the linked NOPs ran after the timeout, not beside it");
});

Deno.test({
  name: "a DEFER_TASKRUN ring: completions finished by another thread show up to a loop that only peeks",
  ignore: skipKernel(),
  fn() {
    if (older("6.1")) return;
    using ring = new IoUring(4, {
      sqpoll: false,
      flags: IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    });
    assert.ok(ring.params.flags & IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG came with DEFER_TASKRUN");
    const [readFd, writeFd] = pipe();
    try {
      prepRead(ring.getSqe()!, readFd, new Uint8Array(4), 0).setUserData(7);
      ring.submit();
      assert.equal(sysWrite(writeFd, text.encode("hi")), 2);
      let cqe = null;
      for (const deadline = performance.now() + 1000; cqe === null && performance.now() < deadline;) {
        cqe = ring.peekCqe();
      }
      assert.ok(cqe, "the read's completion never showed to peekCqe");
      assert.deepEqual([cqe.userDataNumber, cqe.res], [7, 2]);
    } finally {
      sysClose(readFd);
      sysClose(writeFd);
    }
  },
});

Deno.test({
  name:
    "a DEFER_TASKRUN ring: a loop that submits work completing at once still sees a pipe read's completion",
  ignore: skipKernel(),
  fn() {
    if (older("6.1")) return;
    // Its CQ is never empty when it reaps (each submit's NOP completes in the submit), so the
    // reapers never ask for the task work; the read's completion waited there for good (4.4M
    // rounds in 2 s), as it would not with liburing, whose submit asks for it (IORING_SQ_TASKRUN).
    using ring = new IoUring(4, {
      sqpoll: false,
      flags: IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
    });
    const [readFd, writeFd] = pipe();
    const buf = new Uint8Array(4);
    try {
      prepRead(ring.getSqe()!, readFd, buf, 0).setUserData(7);
      ring.submit();
      assert.equal(sysWrite(writeFd, text.encode("hi")), 2);
      let res: number | null = null, rounds = 0;
      for (; res === null && rounds < 10_000; rounds++) {
        ring.queueNop(1);
        ring.submit();
        ring.forEachCompletion((userData, r) => {
          if (userData === 7) res = r;
        });
      }
      assert.equal(res, 2, `the read's completion after ${rounds} rounds`);
      assert.deepEqual(buf.subarray(0, 2), text.encode("hi"));
    } finally {
      sysClose(readFd);
      sysClose(writeFd);
    }
  },
});

Deno.test({
  name:
    "IoUring: flags that contradict an option are refused; waitCqe's timeout message; unknown IOSQE bits refused",
  ignore: skipKernel(),
  fn() {
    const refused: [number, object, RegExp][] = [
      [IORING_SETUP_SQPOLL, { sqpoll: false }, /contradicts sqpoll: false/],
      [IORING_SETUP_SQ_AFF, {}, /sqpoll: \{ cpu \}/],
      [IORING_SETUP_ATTACH_WQ, {}, /attachTo/],
      [IORING_SETUP_IOPOLL, { iopoll: false }, /contradicts iopoll: false/],
      [IORING_SETUP_NO_SQARRAY, { sqArray: true }, /contradicts sqArray: true/],
      [IORING_SETUP_CQSIZE, { sqpoll: false }, /CQSIZE: give the CQ size as cqEntries/],
      // SQPOLL named in flags insists, as sqpoll: true does (its fallback named it again: EINVAL).
      [IORING_SETUP_SQPOLL | IORING_SETUP_COOP_TASKRUN, {}, /sqpoll cannot be combined with flags/],
      [1 << 20, {}, /SQ_REWIND/], // IORING_SETUP_SQ_REWIND: SQEs from slot 0, whatever the tail
    ];
    for (const [flags, options, message] of refused) {
      assert.throws(() => new IoUring(2, { ...options, flags }), message, `flags 0x${flags.toString(16)}`);
    }
    using ring = new IoUring(2, { sqpoll: false });
    prepNop(ring.getSqe()!).setUserData(5);
    ring.submit();
    assert.equal(ring.waitCqe({ timeoutMs: 1000 })?.userDataNumber, 5);
    ring.cqAdvance(1);
    for (const bad of ["5", null, -1, NaN, Infinity]) {
      assert.throws(
        () => ring.waitCqe({ timeoutMs: bad as number }),
        /timeoutMs must be a finite number of milliseconds ≥ 0 \(leave it out to wait without a limit\), got /,
        String(bad),
      );
    }
    const sqe = ring.getSqe()!;
    assert.throws(() => sqe.setFlags(0x80), RangeError);
    assert.throws(() => sqe.addFlags(0x80), RangeError);
    sqe.setFlags(0x7f); // every bit up to IOSQE_CQE_SKIP_SUCCESS
    sqe.setFlags(0);
  },
});

Deno.test({
  name:
    "BufferRing: a closed one is refused by the preps, take() and bufferRingHead; take() checks its flags",
  ignore: skipKernel(),
  fn() {
    if (older("5.19")) return;
    using ring = new IoUring(4, { sqpoll: false });
    using other = new IoUring(4, { sqpoll: false });
    const first = ring.setupBufferRing({ group: 1, entries: 2, bufferSize: 64 });
    first.close();
    using second = ring.setupBufferRing({ group: 1, entries: 2, bufferSize: 64 }); // the same group id
    const sqe = ring.getSqe()!;
    assert.throws(() => prepReadSelect(sqe, 0, first, -1), ClosedError);
    assert.throws(() => first.take(1 | (0 << 16)), ClosedError);
    assert.throws(() => ring.bufferRingHead(first), ClosedError);
    using foreign = other.setupBufferRing({ group: 2, entries: 2, bufferSize: 64 });
    assert.throws(() => ring.bufferRingHead(foreign), /registered with another ring/);
    if (!older("6.8")) assert.equal(ring.bufferRingHead(second), 0);
    assert.throws(() => second.take({ flags: 1 } as unknown as number), TypeError, "a Cqe for its flags");
    assert.throws(() => second.take(1.5), RangeError);
    assert.throws(() => second.take(-1), RangeError);
    assert.equal(second.take(0), -1, "no buffer");
  },
});

Deno.test({
  name: "checkFixedBuffer: a registered buffer transferred away is refused, saying so",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(2, { sqpoll: false });
    const memory = new ArrayBuffer(4096);
    ring.registerBuffers([new Uint8Array(memory)]);
    const moved = memory.transfer();
    assert.throws(
      () => checkFixedBuffer(ring, new Uint8Array(moved, 0, 16), 0),
      /registered buffer 0 was transferred away/,
    );
    ring.unregisterBuffers();
  },
});

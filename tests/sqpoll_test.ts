/**
 * SQPOLL protocol tests: the poll thread going to sleep (NEED_WAKEUP) and being woken by the
 * next submit, and zero submit-side `io_uring_enter` calls while it is awake, read from
 * `ring.stats` and, where strace is installed, cross-checked by counting the real system calls.
 */

import assert from "node:assert/strict";
import {
  type Backend,
  ClosedError,
  DEFAULT_SQPOLL_IDLE_MS,
  IORING_SETUP_ATTACH_WQ,
  IORING_SETUP_COOP_TASKRUN,
  IORING_SETUP_SQ_AFF,
  IORING_SETUP_SQPOLL,
  IORING_SQ_CQ_OVERFLOW,
  IORING_SQ_NEED_WAKEUP,
  IoUring,
  IoUringError,
  prepNop,
  Uring,
} from "../mod.ts";
import { runAsNobody, skipKernel, straceWorks, whyNoNobodyChild } from "./_support.ts";
import { reap, spinUntilReady } from "./_io.ts";

const BACKENDS: readonly Backend[] = ["helper", "libc"];
const sleep = (ms: number) => new Promise((ok) => setTimeout(ok, ms));

/** Waits (bounded) until the SQ thread has gone to sleep and flagged NEED_WAKEUP. */
async function untilAsleep(ring: IoUring): Promise<void> {
  await sleep(100);
  const deadline = performance.now() + 3000;
  while (!(ring.sqFlags & IORING_SQ_NEED_WAKEUP)) {
    assert.ok(performance.now() < deadline, "the SQ thread never set IORING_SQ_NEED_WAKEUP");
    await sleep(10);
  }
}

/**
 * Submits `n` NOPs one at a time, reaping each by spinning on the CQ (no system call), and
 * checks each user_data. Fails rather than hangs if a completion does not come.
 */
function spinNops(ring: IoUring, n: number): void {
  for (let i = 0; i < n; i++) {
    const sqe = ring.getSqe();
    assert.ok(sqe, "the SQ has room: every earlier SQE completed");
    prepNop(sqe).setUserData(i);
    ring.submit();
    spinUntilReady(ring, 1, `NOP ${i} never completed`);
    const cqe = ring.peekCqe()!;
    assert.equal(cqe.userDataNumber, i);
    assert.equal(cqe.res, 0);
    ring.cqAdvance(1);
  }
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `SQPOLL: an idle poll thread sets NEED_WAKEUP and the next submit wakes it [${backend}]`,
    ignore: skipKernel(),
    async fn() {
      using ring = new IoUring(8, { sqpoll: { idleMs: 10 }, backend });
      assert.ok(ring.sqpoll);
      assert.equal(ring.params.sqThreadIdle, 10);
      for (let round = 0; round < 2; round++) {
        await untilAsleep(ring);
        const before = { ...ring.stats };
        prepNop(ring.getSqe()!).setUserData(40 + round);
        assert.equal(ring.submit(), 1);
        assert.equal(ring.stats.wakeup, before.wakeup + 1, "submit must wake the sleeping thread");
        assert.equal(ring.stats.submit, before.submit);
        const done = reap(ring, 1);
        assert.equal(done.get(BigInt(40 + round))?.res, 0);
      }
      // With nothing queued, submit() leaves a sleeping thread asleep: no system call at all.
      await untilAsleep(ring);
      const idle = { ...ring.stats };
      assert.equal(ring.submit(), 0);
      assert.deepEqual({ ...ring.stats }, idle, "submit() with nothing queued entered the kernel");
      assert.ok(ring.sqFlags & IORING_SQ_NEED_WAKEUP);
    },
  });

  Deno.test({
    name: `SQPOLL: flushSq() publishes SQEs to an awake poll thread with no system call [${backend}]`,
    ignore: skipKernel(),
    fn() {
      using ring = new IoUring(64, { sqpoll: { idleMs: 1000 }, backend });
      spinNops(ring, 10); // the thread is running (a wakeup here, if it had not started, is fine)
      const before = { ...ring.stats };
      for (let i = 0; i < 3; i++) prepNop(ring.getSqe()!).setUserData(100 + i);
      assert.equal(ring.flushSq(), 3);
      assert.equal(ring.flushSq(), 0, "nothing new to publish");
      // Only the tail store reached the kernel: the thread takes the SQEs and completes them.
      spinUntilReady(ring, 3, "the published NOPs never completed");
      assert.deepEqual({ ...ring.stats }, before, "flushSq() entered the kernel");
      const seen: number[] = [];
      ring.forEachCqe((cqe) => seen.push(cqe.userDataNumber));
      assert.deepEqual(seen, [100, 101, 102]);
      // submit() afterwards has nothing left to publish, and the awake thread needs no wakeup.
      assert.equal(ring.submit(), 0);
      assert.deepEqual({ ...ring.stats }, before);
    },
  });

  Deno.test({
    name: `SQPOLL: 10,000 submissions to an awake poll thread make zero io_uring_enter calls [${backend}]`,
    ignore: skipKernel(),
    fn() {
      // idleMs 1000: the thread stays awake as long as work arrives within a second, which the
      // loop below guarantees, so any enter counted here is a protocol bug, not a sleep.
      using ring = new IoUring(64, { sqpoll: { idleMs: 1000 }, backend });
      assert.ok(ring.sqpoll);
      spinNops(ring, 100); // warm up (a wakeup here, if the thread had not started, is fine)
      assert.equal(ring.sqFlags & IORING_SQ_NEED_WAKEUP, 0);
      const before = { ...ring.stats };
      spinNops(ring, 10_000);
      assert.deepEqual({ ...ring.stats }, before, "no io_uring_enter of any kind while the thread is awake");

      // Batches too: 32 per submit, reaped by spinning.
      for (let round = 0; round < 50; round++) {
        for (let i = 0; i < 32; i++) prepNop(ring.getSqe()!).setUserData(round * 32 + i);
        assert.equal(ring.submit(), 32);
        const start = performance.now();
        let got = 0;
        while (got < 32) {
          got += ring.forEachCqe(() => {});
          if (performance.now() - start > 5000) assert.fail("a batch never completed");
        }
      }
      assert.deepEqual({ ...ring.stats }, before);
    },
  });
}

Deno.test({
  name: "SQPOLL: defaults, idle time and CPU affinity are passed to the kernel",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(4);
    assert.ok(ring.sqpoll, "SQPOLL is on by default");
    assert.equal(ring.sqpollFallbackReason, undefined);
    assert.ok(ring.params.flags & IORING_SETUP_SQPOLL);
    assert.equal(ring.params.sqThreadIdle, DEFAULT_SQPOLL_IDLE_MS);
    using pinned = new IoUring(4, { sqpoll: { cpu: 0, idleMs: 5 } });
    assert.ok(pinned.params.flags & IORING_SETUP_SQ_AFF);
    assert.equal(pinned.params.sqThreadCpu, 0);
    assert.equal(pinned.params.sqThreadIdle, 5);
    prepNop(pinned.getSqe()!).setUserData(1);
    pinned.submitAndWait(1);
    assert.equal(pinned.peekCqe()?.res, 0);
    using plain = new IoUring(4, { sqpoll: false });
    assert.equal(plain.sqpoll, false);
    assert.equal(plain.params.flags & IORING_SETUP_SQPOLL, 0);
    // A CPU that is not online: the kernel's EINVAL, and the error says which setting it was.
    assert.throws(() => new IoUring(4, { sqpoll: { cpu: 4095 } }), (e: IoUringError) => {
      assert.equal(e.code, "EINVAL");
      assert.match(
        e.message,
        /pinned to CPU 4095 \(sqpoll.cpu\): the kernel refuses that CPU: it is not online, or not in this process's cpuset \(this machine shows \d+ CPUs\)\)/,
      );
      return true;
    });
  },
});

Deno.test({
  name: "SQPOLL refused by the kernel: the default falls back to a plain ring and says why; insisting throws",
  ignore: skipKernel(),
  fn() {
    // COOP_TASKRUN is an IPI optimisation the kernel refuses together with SQPOLL (EINVAL): the
    // default SQPOLL falls back.
    for (const backend of BACKENDS) {
      using ring = new IoUring(4, { flags: IORING_SETUP_COOP_TASKRUN, backend });
      assert.equal(ring.sqpoll, false);
      assert.ok(ring.params.flags & IORING_SETUP_COOP_TASKRUN);
      assert.match(ring.sqpollFallbackReason ?? "", /EINVAL/);
      prepNop(ring.getSqe()!).setUserData(3);
      ring.submitAndWait(1);
      assert.equal(ring.peekCqe()?.userDataNumber, 3);
      // Insisting on SQPOLL with it is refused before the kernel is asked.
      for (const sqpoll of [true, { idleMs: 5 }]) {
        assert.throws(
          () => new IoUring(4, { flags: IORING_SETUP_COOP_TASKRUN, sqpoll, backend }),
          RangeError,
        );
      }
      // A refusal the kernel makes alone (a CPU that is not online) still throws its error.
      assert.throws(
        () => new IoUring(4, { sqpoll: { cpu: 4095 }, backend }),
        (e: unknown) => e instanceof IoUringError && e.call === "io_uring_setup" && e.code === "EINVAL",
      );
    }
  },
});

for (const sqpoll of [true, false]) {
  Deno.test({
    name: `CQ overflow sets IORING_SQ_CQ_OVERFLOW and submit() enters to flush it [${
      sqpoll ? "sqpoll" : "nosqpoll"
    }]`,
    ignore: skipKernel(),
    fn() {
      using ring = new IoUring(4, { sqpoll, cqEntries: 4 });
      for (let i = 0; i < 6; i++) {
        const deadline = performance.now() + 5000;
        let sqe;
        while (!(sqe = ring.getSqe())) assert.ok(performance.now() < deadline);
        prepNop(sqe).setUserData(i);
        ring.submit();
      }
      // Wait (bounded) for the kernel to have consumed all six SQEs and raised the overflow flag.
      // Under SQPOLL the flag rises with the fifth completion, and the SQ thread may still be
      // posting the sixth: give it a moment after the last SQE was consumed.
      const deadline = performance.now() + 5000;
      while (!(ring.sqFlags & IORING_SQ_CQ_OVERFLOW) || ring.sqReady() !== 0) {
        assert.ok(performance.now() < deadline, "no overflow flag");
      }
      if (sqpoll) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      assert.equal(ring.cqReady(), 4);
      // Make room, then submit: the ring must flush the held completions into the CQ.
      ring.cqAdvance(4);
      const before = ring.stats.submit;
      ring.submit();
      assert.equal(ring.stats.submit, before + 1, "submit() entered with GETEVENTS to flush the overflow");
      assert.equal(ring.cqReady(), 2, "the two held completions are now in the CQ");
      assert.equal(ring.sqFlags & IORING_SQ_CQ_OVERFLOW, 0);
      const done = reap(ring, 2);
      assert.deepEqual([...done.keys()].sort(), [4n, 5n]);
    },
  });
}

// --- Cross-check with strace --------------------------------------------------------------------

Deno.test({
  name: "SQPOLL: strace counts the same io_uring_enter calls as ring.stats (zero while awake)",
  ignore: skipKernel() || !straceWorks(),
  async fn() {
    const dir = Deno.makeTempDirSync({ prefix: "uring-strace-" });
    try {
      const script = `${dir}/spin.ts`;
      const mod = new URL("../mod.ts", import.meta.url).href;
      Deno.writeTextFileSync(
        script,
        `import { IoUring, prepNop } from ${JSON.stringify(mod)};
using ring = new IoUring(64, { sqpoll: { idleMs: 1000 }, backend: Deno.args[0] as "helper" | "libc" });
function spin(from: number, n: number) {
  for (let i = from; i < from + n; i++) {
    prepNop(ring.getSqe()!).setUserData(i);
    ring.submit();
    const t = performance.now();
    while (ring.cqReady() === 0) if (performance.now() - t > 5000) throw new Error("stuck");
    if (ring.peekCqe()!.userDataNumber !== i) throw new Error("wrong user_data");
    ring.cqAdvance(1);
  }
}
// A new SQ thread goes to sleep at once (the kernel starts it with an expired idle timer), so
// the first submit may need a wakeup: warm up first, then measure.
spin(0, 100);
const warm = { ...ring.stats };
spin(100, 10000);
// A positive control: a plain ring makes exactly one enter per submit, which strace must see.
using plain = new IoUring(4, { sqpoll: false, backend: Deno.args[0] as "helper" | "libc" });
for (let i = 0; i < 5; i++) {
  prepNop(plain.getSqe()!);
  plain.submit();
  plain.cqAdvance(1);
}
console.log(JSON.stringify({ warm, sq: ring.stats, plain: plain.stats }));
`,
      );
      const summary = `${dir}/summary`;
      const out = await new Deno.Command("strace", {
        args: [
          "-f",
          "-c",
          "-e",
          "trace=io_uring_enter",
          "-o",
          summary,
          Deno.execPath(),
          "run",
          "--quiet",
          "--no-lock",
          "--allow-ffi",
          "--allow-read",
          "--allow-env",
          script,
          "helper",
        ],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      if (!out.success && /ptrace|Operation not permitted/i.test(stderr)) {
        console.log(`SKIP strace cross-check: strace cannot trace here: ${stderr.trim().split("\n")[0]}`);
        return;
      }
      assert.ok(out.success, `the traced script failed:\n${stderr}`);
      const { warm, sq, plain } = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").pop()!);
      const table = Deno.readTextFileSync(summary);
      const row = table.split("\n").find((l) => /\sio_uring_enter\s*$/.test(l));
      // Columns: % time, seconds, usecs/call, calls, [errors,] syscall.
      const calls = row ? Number(row.trim().split(/\s+/)[3]) : 0;
      const counted = sq.submit + sq.wakeup + sq.wait + plain.submit + plain.wakeup + plain.wait;
      const detail = `strace:\n${table}\nstats ${JSON.stringify({ warm, sq, plain })}`;
      assert.equal(plain.submit, 5);
      assert.equal(calls, counted, `ring.stats and strace disagree. ${detail}`);
      assert.deepEqual(sq, warm, `enters while the SQ thread was awake. ${detail}`);
      assert.equal(sq.submit + sq.wait, 0, detail);
      assert.ok(sq.wakeup <= 1, detail);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const noNprocTest = skipKernel() ? "no io_uring" : whyNoNobodyChild();
if (noNprocTest !== null) console.log(`skipping the RLIMIT_NPROC SQPOLL test: ${noNprocTest}`);

Deno.test({
  name: "IoUring: SQPOLL's thread refused by RLIMIT_NPROC (EAGAIN) falls back to a plain ring by default",
  ignore: noNprocTest !== null,
  fn: async () => {
    // Each SQPOLL ring's kernel thread counts against its user's RLIMIT_NPROC (root is exempt).
    const out = await runAsNobody(
      ["--nproc=60:60"],
      `import { IoUring } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const rings = [];
let sqpoll = 0, plain = 0, reason = "";
for (let i = 0; i < 80; i++) {
  const ring = new IoUring(8); // the default: SQPOLL unless refused
  rings.push(ring);
  if (ring.sqpoll) sqpoll++;
  else { plain++; reason ||= ring.sqpollFallbackReason ?? ""; }
}
for (const ring of rings) ring.close();
console.log(JSON.stringify({ sqpoll, plain, reason }));
`,
    );
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.ok(r.sqpoll > 0 && r.plain > 0, JSON.stringify(r)); // some threads, then the limit
    assert.match(r.reason, /EAGAIN.*RLIMIT_NPROC/);
  },
});

/**
 * The SQ poll threads of this process, once their number has held still for 30 ms (read through a
 * shell: Deno's own API needs --allow-all for /proc).
 */
async function sqThreads(): Promise<number> {
  const count = async () => {
    const out = await new Deno.Command("sh", {
      args: ["-c", `cat /proc/${Deno.pid}/task/*/comm 2>/dev/null | grep -c '^iou-sqp' || true`],
      stdout: "piped",
      stderr: "null",
    }).output();
    return Number(new TextDecoder().decode(out.stdout).trim());
  };
  let last = await count();
  for (let stable = 0, tries = 0; stable < 3 && tries < 200; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    const now = await count();
    stable = now === last ? stable + 1 : 0;
    last = now;
  }
  return last;
}

Deno.test({
  name: "attachTo: a second SQPOLL ring shares the first one's SQ thread (one more thread for two rings)",
  ignore: skipKernel(),
  fn: async () => {
    const before = await sqThreads();
    using first = new IoUring(8);
    if (!first.sqpoll) {
      console.log(`SKIP: SQPOLL is refused here (${first.sqpollFallbackReason})`);
      return;
    }
    assert.equal(await sqThreads(), before + 1);
    using attached = new IoUring(8, { attachTo: first });
    assert.equal(attached.sqpoll, true);
    assert.ok((attached.params.flags & IORING_SETUP_ATTACH_WQ) !== 0);
    assert.equal(await sqThreads(), before + 1, "no thread of its own");
    using separate = new IoUring(8);
    assert.equal(await sqThreads(), before + 2, "a ring without attachTo starts its own");
    // The shared thread serves both, and outlives the ring that started it.
    for (const ring of [first, attached]) {
      for (let i = 0; i < 4; i++) prepNop(ring.getSqe()!).setUserData(i);
      ring.submit();
      assert.equal(reap(ring, 4).size, 4);
    }
    first.close();
    for (let i = 0; i < 4; i++) prepNop(attached.getSqe()!).setUserData(i);
    attached.submit();
    assert.equal(reap(attached, 4).size, 4);
    separate.close();
    // What cannot share a thread is refused before the kernel.
    assert.throws(() => new IoUring(8, { attachTo: first }), ClosedError);
    using plain = new IoUring(8, { sqpoll: false });
    assert.throws(() => new IoUring(8, { attachTo: plain }), /that ring has none/);
    assert.throws(() => new IoUring(8, { attachTo: attached, sqpoll: false }), /it needs SQPOLL/);
    assert.throws(() => new IoUring(8, { attachTo: {} as IoUring }), /attachTo must be an IoUring/);
  },
});

Deno.test({
  name: "Uring attachTo: two Urings on one SQ thread, each reading",
  ignore: skipKernel(),
  fn: async () => {
    const before = await sqThreads();
    await using first = new Uring();
    if (!first.sqpoll) {
      console.log("SKIP: SQPOLL is refused here");
      return;
    }
    await using second = new Uring({ attachTo: first });
    assert.equal(second.sqpoll, true);
    assert.equal(await sqThreads(), before + 1);
    const path = Deno.makeTempFileSync();
    try {
      Deno.writeTextFileSync(path, "shared");
      for (const uring of [first, second]) {
        await using file = await uring.open(path);
        const buf = new Uint8Array(6);
        assert.equal(await file.readAt(buf, 0), 6);
        assert.equal(new TextDecoder().decode(buf), "shared");
      }
    } finally {
      Deno.removeSync(path);
    }
    assert.throws(() => new Uring({ attachTo: {} as Uring }), /attachTo must be a Uring/);
  },
});

Deno.test({
  name:
    "attachTo: the shared thread idles for the longest idle of its rings; one attached by default changes nothing",
  ignore: skipKernel(),
  fn() {
    const spin = (ms: number) => {
      for (const t = performance.now(); performance.now() - t < ms;);
    };
    /** Whether the SQ thread slept within `ms` of `ring`'s last completion (a wakeup was needed). */
    const sleptWithin = (ring: IoUring, ms: number) => {
      prepNop(ring.getSqe()!).setUserData(1);
      ring.submitAndWait(1);
      ring.cqAdvance(ring.cqReady());
      spin(ms);
      const wakeups = ring.stats.wakeup;
      prepNop(ring.getSqe()!).setUserData(2);
      ring.submitAndWait(1);
      ring.cqAdvance(ring.cqReady());
      return ring.stats.wakeup > wakeups;
    };
    using first = new IoUring(8, { sqpoll: { idleMs: 10 } });
    if (!first.sqpoll) return;
    // Attached with the defaults, this ring asks for the first one's idle time (it asked for 50 ms,
    // and the thread took the longer: 10 ms became 50).
    using attached = new IoUring(8, { attachTo: first });
    assert.equal(attached.params.sqThreadIdle, 10);
    let slept = false;
    for (let attempt = 0; attempt < 5 && !slept; attempt++) slept = sleptWithin(first, 30);
    assert.ok(slept, "the thread still sleeps 10 ms after the last work");
    // A ring attached with a longer idle time keeps the thread awake that long for all.
    using longer = new IoUring(8, { attachTo: first, sqpoll: { idleMs: 2000 } });
    assert.equal(sleptWithin(first, 30), false);
    assert.equal(longer.sqpoll, true);
    assert.throws(() => new IoUring(8, { attachTo: first, sqpoll: { cpu: 0 } }), /sqpoll.cpu cannot apply/);
  },
});

Deno.test({
  name: "Uring attachTo: a chain behind other SQEs is not cut by the shared SQ thread's 8-SQE passes",
  ignore: skipKernel(),
  fn: async () => {
    // An SQ thread serving two rings takes 8 SQEs of each per pass and ran a chain it cut as two:
    // the write after a failed read went through (in about half of these rounds), and the Uring
    // lost track of the chain's completions.
    const dir = Deno.makeTempDirSync({ prefix: "uring-attach-" });
    try {
      const path = `${dir}/f`;
      for (let round = 0; round < 20; round++) {
        await using first = new Uring({ sqpoll: true });
        await using second = new Uring({ attachTo: first });
        assert.ok(first.ring.sharesSqThread && second.ring.sharesSqThread);
        for (const uring of [first, second]) {
          Deno.writeFileSync(path, new Uint8Array());
          await using file = await uring.open(path, { write: true });
          const nops = Array.from({ length: 7 }, () => uring.nop());
          const chain = uring.chain((c) => {
            c.read(987654, new Uint8Array(4), 0); // EBADF
            c.write(file.fd, new TextEncoder().encode("X"), 0);
          });
          await Promise.all(nops);
          const results = await chain;
          assert.deepEqual(
            results.map((r) => r.ok ? "ok" : (r.error as { code?: string }).code),
            ["EBADF", "ECANCELED"],
            `round ${round}`,
          );
          assert.equal(
            Deno.readTextFileSync(path),
            "",
            `round ${round}: the write after the failed read ran`,
          );
        }
      }
      // Longer chains are refused there (any longer one would be cut).
      await using first = new Uring({ sqpoll: true });
      await using second = new Uring({ attachTo: first });
      await assert.rejects(
        first.chain((c) => {
          for (let i = 0; i < 9; i++) c.nop();
        }),
        /^RangeError: chain: 9 members on a Uring whose SQ thread serves other rings too \(attachTo\): at most 8/,
      );
      assert.equal(
        (await second.chain((c) => {
          for (let i = 0; i < 8; i++) c.nop();
        })).length,
        8,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

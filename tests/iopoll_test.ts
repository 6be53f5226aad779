import assert from "node:assert/strict";
import {
  alignedBuffer,
  AT_FDCWD,
  cstring,
  errno,
  iopollError,
  IORING_SETUP_IOPOLL,
  IORING_SETUP_SQPOLL,
  IoUring,
  IoUringError,
  O_DIRECT,
  O_RDONLY,
  O_RDWR,
  parseStatx,
  prepNop,
  prepOpenat,
  prepRead,
  prepStatx,
  prepWrite,
  STATX_BASIC_STATS,
  statxBuffer,
} from "../mod.ts";
import { assertErr, closeFd, describe, openFile, pattern, run } from "./_io.ts";
import { devicePolls, directTempDir, skipDirect } from "./_direct.ts";
import { CONFIGS, skipKernel } from "./_support.ts";

const EOPNOTSUPP = errno("EOPNOTSUPP");
const BACKENDS = ["helper", "libc"] as const;

/** Whether the block device holding `path` has poll queues (undefined: sysfs does not say). */
function pollsHere(ring: IoUring, path: string): boolean | undefined {
  const buf = statxBuffer();
  assert.equal(run(ring, (s) => prepStatx(s, AT_FDCWD, cstring(path), 0, STATX_BASIC_STATS, buf)), 0);
  const st = parseStatx(buf);
  return devicePolls(st.devMajor, st.devMinor);
}

for (const backend of BACKENDS) {
  Deno.test({
    name: `IOPOLL: the ring sets up, a NOP completes, and an empty CQ is polled with GETEVENTS [${backend}]`,
    ignore: skipKernel(),
    fn() {
      using ring = new IoUring(8, { sqpoll: false, iopoll: true, backend });
      assert.equal(ring.iopoll, true);
      assert.equal(ring.sqpoll, false);
      assert.equal(ring.params.flags & IORING_SETUP_IOPOLL, IORING_SETUP_IOPOLL);
      // No interrupts on a polled ring: peeking an empty CQ must enter the kernel to poll.
      const waits = ring.stats.wait;
      assert.equal(ring.peekCqe(), null);
      assert.equal(ring.stats.wait, waits + 1, "peekCqe polled once (io_uring_enter GETEVENTS)");
      assert.equal(run(ring, (s) => prepNop(s)), 0);
      // A plain ring does not enter on an empty peek.
      using plain = new IoUring(8, { sqpoll: false, backend });
      assert.equal(plain.peekCqe(), null);
      assert.equal(plain.stats.wait, 0);
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `IOPOLL without SQPOLL: waits with nothing in flight sleep between polls and last their timeout [${backend}]`,
    ignore: skipKernel(),
    async fn() {
      using ring = new IoUring(8, { sqpoll: false, iopoll: true, backend });
      // The kernel's polled wait returns at once with nothing on its poll list: before, waitCqe
      // entered it millions of times a second and waitAsync resolved at once.
      let waits = ring.stats.wait;
      let started = performance.now();
      assert.equal(ring.waitCqe({ timeoutMs: 200 }), null);
      assert.ok(performance.now() - started >= 199, "waitCqe lasted its timeout");
      const syncWaits = ring.stats.wait - waits;
      assert.ok(syncWaits < 2_000, `waitCqe polled ${syncWaits} times in 200 ms`);
      waits = ring.stats.wait;
      started = performance.now();
      await ring.waitAsync(200);
      assert.ok(performance.now() - started >= 199, "waitAsync lasted its timeout");
      const asyncWaits = ring.stats.wait - waits;
      assert.ok(asyncWaits < 2_000, `waitAsync polled ${asyncWaits} times in 200 ms`);
      // A completion is still seen: a NOP posts at once.
      prepNop(ring.getSqe()!).setUserData(3);
      ring.submit();
      assert.equal(ring.waitCqe({ timeoutMs: 1000 })?.userData, 3n);
    },
  });
}

for (const config of CONFIGS) {
  Deno.test({
    name: `IOPOLL: an O_DIRECT read on this disk gives the clear "no poll queues" error [${config.name}]`,
    ignore: skipDirect(),
    fn() {
      using dir = directTempDir();
      const file = `${dir.path}/f`;
      const data = pattern(4 * 4096, 5);
      Deno.writeFileSync(file, data);
      using plain = new IoUring(4, { sqpoll: false, backend: config.backend });
      const fd = openFile(plain, file, O_RDONLY | O_DIRECT);
      const polls = pollsHere(plain, file);
      using ring = new IoUring(8, { ...config.options, iopoll: true });
      assert.equal(ring.iopoll, true);
      assert.equal(ring.sqpoll, config.sqpoll);
      using buf = alignedBuffer(4096);
      const res = run(ring, (s) => prepRead(s, fd, buf.bytes, 4096));
      if (polls === true) {
        assert.equal(res, 4096, `the device has poll queues, so the read should work: ${describe(res)}`);
        assert.deepEqual(buf.bytes, data.subarray(4096, 8192));
      } else {
        if (polls === undefined) console.log("note: sysfs does not say whether this device polls");
        assert.equal(
          res,
          -EOPNOTSUPP,
          `expected EOPNOTSUPP from a device without poll queues: ${describe(res)}`,
        );
        const err = iopollError(res, { direct: true });
        assert.ok(err instanceof IoUringError);
        assert.equal(err.call, "read (IOPOLL)");
        assert.equal(err.code, "EOPNOTSUPP");
        assert.match(err.message, /read \(IOPOLL\) failed: EOPNOTSUPP/);
        assert.match(err.message, /the device has no poll queues/);
        assert.match(err.message, /file is open with O_DIRECT, so its device has no poll queues/);
      }
      closeFd(plain, fd);
    },
  });
}

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `SQPOLL + IOPOLL: the kernel thread polls, so an empty CQ is peeked without a system call [${backend}]`,
    ignore: skipKernel(),
    fn() {
      using ring = new IoUring(8, { sqpoll: true, iopoll: true, backend });
      const before = { ...ring.stats };
      for (let i = 0; i < 3; i++) assert.equal(ring.peekCqe(), null);
      assert.deepEqual(ring.stats, before, "no io_uring_enter for an empty peek");
      assert.equal(run(ring, (s) => prepNop(s)), 0);
    },
  });
}

// Teardown is checked in a fresh child process (with --allow-all, which Deno needs to read
// /proc/self): no other ring's SQ thread can blur the count there.
const TEARDOWN_SCRIPT = `
import { IoUring, prepNop } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const sqThreads = () => [...Deno.readDirSync("/proc/self/task")]
  .filter((t) => { try { return Deno.readTextFileSync(\`/proc/self/task/\${t.name}/comm\`).startsWith("iou-sqp-"); } catch { return false; } })
  .length;
const fdKind = (fd) => { try { return Deno.readLinkSync(\`/proc/self/fd/\${fd}\`); } catch { return null; } };
const threadsBefore = sqThreads();
const ring = new IoUring(8, { sqpoll: { idleMs: 10 }, iopoll: true, backend: Deno.args[0] });
const fd = ring.fd;
prepNop(ring.getSqe()).setUserData(7);
ring.submit();
const cqe = ring.waitCqe({ timeoutMs: 5000 });
const nop = cqe ? [cqe.userDataNumber, cqe.res] : null;
ring.cqAdvance(1);
const threadsDuring = sqThreads();
const fdDuring = fdKind(fd);
ring.close();
ring.close();
let threadsAfter = sqThreads();
for (const deadline = performance.now() + 5000; threadsAfter > threadsBefore && performance.now() < deadline;) {
  await new Promise((r) => setTimeout(r, 10));
  threadsAfter = sqThreads();
}
console.log(JSON.stringify({
  sqpoll: ring.sqpoll, iopoll: ring.iopoll, flags: ring.params.flags, nop,
  threadsBefore, threadsDuring, threadsAfter, fdDuring, fdAfter: fdKind(fd),
}));
`;

for (const backend of BACKENDS) {
  Deno.test({
    name: `SQPOLL + IOPOLL: the ring sets up, completes a NOP and tears down cleanly [${backend}]`,
    ignore: skipKernel(),
    async fn() {
      const dir = Deno.makeTempDirSync({ prefix: "uring-iopoll-" });
      try {
        const script = `${dir}/teardown.mjs`;
        Deno.writeTextFileSync(script, TEARDOWN_SCRIPT);
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "--quiet", "--allow-all", script, backend],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(out.stderr);
        assert.ok(out.success, `child failed (code ${out.code}, signal ${out.signal}): ${stderr}`);
        const r = JSON.parse(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!);
        assert.equal(r.sqpoll, true);
        assert.equal(r.iopoll, true);
        const both = IORING_SETUP_SQPOLL | IORING_SETUP_IOPOLL;
        assert.equal(r.flags & both, both);
        assert.deepEqual(r.nop, [7, 0], "a NOP completes on the polled SQPOLL ring");
        assert.equal(r.threadsBefore, 0);
        assert.equal(r.threadsDuring, 1, "one SQ poll thread while the ring is open");
        assert.equal(r.fdDuring, "anon_inode:[io_uring]");
        assert.equal(r.fdAfter, null, "the ring fd is closed");
        assert.equal(r.threadsAfter, 0, "the SQ poll thread exited after close()");
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

// A polled ring's kernel does not poll while any completion waits in the CQ (`io_iopoll_check`
// returns at once): a wait for more than are ready, with some ready, could never end. Before, the
// child's `submitAndWait(3)` after two NOPs spun a core for ever; and `submitAndWait(1)` with
// nothing in flight entered the kernel without pause. In a child, so the old code's spin is killed.
const PARTIAL_WAIT_SCRIPT = `
import { IoUring, prepNop } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
const ring = new IoUring(8, { sqpoll: false, iopoll: true, backend: Deno.args[0] });
const out = {};
const caught = (f) => { try { f(); return null; } catch (e) { return { name: e.name, message: e.message }; } };
prepNop(ring.getSqe()).setUserData(1);
prepNop(ring.getSqe()).setUserData(2);
out.submitAndWait = caught(() => ring.submitAndWait(3));
out.waitCqe = caught(() => ring.waitCqe({ count: 3 }));
out.waitCqeTimeout = caught(() => ring.waitCqe({ count: 3, timeoutMs: 10_000 }));
out.ready = ring.cqReady();
// Reaped, the ring waits again: a NOP, then a count it can reach.
ring.cqAdvance(2);
prepNop(ring.getSqe()).setUserData(3);
prepNop(ring.getSqe()).setUserData(4);
ring.submitAndWait(2);
out.after = ring.waitCqe({ count: 2 }).userDataNumber;
ring.cqAdvance(2);
console.log(JSON.stringify(out));
// Nothing in flight: the wait polls, sleeping between polls. A worker reports the process's CPU
// time (user + system ticks of /proc/self/stat, in 1/100 s) over 400 ms of it.
const worker = \`
const ticks = () => {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
};
setTimeout(() => {
  const before = ticks();
  setTimeout(() => console.log(JSON.stringify({ idleMs: (ticks() - before) * 10 })), 400);
}, 100);
\`;
new Worker("data:text/javascript," + encodeURIComponent(worker), { type: "module" });
ring.submitAndWait(1);
`;

for (const backend of BACKENDS) {
  Deno.test({
    name:
      `IOPOLL without SQPOLL: a wait for more completions than are ready throws Busy; an idle wait sleeps [${backend}]`,
    ignore: skipKernel(),
    async fn() {
      const dir = Deno.makeTempDirSync({ prefix: "uring-iopoll-" });
      const script = `${dir}/partial.mjs`;
      Deno.writeTextFileSync(script, PARTIAL_WAIT_SCRIPT);
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-all", script, backend],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      try {
        let text = "";
        const deadline = setTimeout(() => child.kill("SIGKILL"), 10_000);
        while (text.split("\n").length < 3) {
          const { value, done } = await reader.read();
          if (done) break;
          text += value;
        }
        clearTimeout(deadline);
        const lines = text.split("\n");
        assert.ok(lines.length >= 2, "the child answered (before, submitAndWait(3) spun for ever)");
        const r = JSON.parse(lines[0]);
        for (const what of ["submitAndWait", "waitCqe", "waitCqeTimeout"] as const) {
          assert.equal(r[what]?.name, "Busy", `${what}: ${JSON.stringify(r[what])}`);
          assert.match(r[what].message, /2 of the 3 completions waited for are ready/);
          assert.match(r[what].message, /does not poll the device while any completion waits in the CQ/);
        }
        assert.equal(r.ready, 2, "the refusals consumed nothing");
        assert.equal(r.after, 3, "after reaping, waits work again");
        assert.ok(lines.length >= 3, "the child's worker reported the idle wait's CPU time");
        const { idleMs } = JSON.parse(lines[1]);
        // (Before, the idle wait entered the kernel without pause: 300-310 ms of CPU in 400.)
        assert.ok(idleMs < 100, `the idle wait used ${idleMs} ms of CPU in 400 ms`);
      } finally {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
        await child.status;
        reader.releaseLock();
        await child.stdout.cancel().catch(() => {});
        await child.stderr.cancel();
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "IOPOLL flag validation: the kernel's answers for a buffered fd, openat and a polled write",
  ignore: skipDirect(),
  fn() {
    using dir = directTempDir();
    const file = `${dir.path}/f`;
    Deno.writeFileSync(file, pattern(2 * 4096));
    using plain = new IoUring(4, { sqpoll: false });
    using ring = new IoUring(8, { sqpoll: false, iopoll: true });
    using buf = alignedBuffer(4096);
    // A file not open with O_DIRECT: the kernel refuses the polled read with EOPNOTSUPP too.
    const buffered = openFile(plain, file, O_RDONLY);
    const res = run(ring, (s) => prepRead(s, buffered, buf.bytes, 0));
    assertErr(res, "EOPNOTSUPP", "polled read of a buffered fd");
    const err = iopollError(res, { direct: false });
    assert.match(err.message, /the file is not open with O_DIRECT, which a polled ring requires/);
    closeFd(plain, buffered);
    // Opcodes that cannot be polled (openat, close, statx, ...) are refused with EINVAL.
    assertErr(
      run(ring, (s) => prepOpenat(s, AT_FDCWD, cstring(file), O_RDONLY)),
      "EINVAL",
      "openat on a polled ring",
    );
    // A polled O_DIRECT write: the kernel either polls it or refuses it like the read; on 6.18
    // with ext4 on virtio it completes (the block layer does not mark overwrites as polled).
    const direct = openFile(plain, file, O_RDWR | O_DIRECT);
    buf.bytes.set(pattern(4096, 8));
    const w = run(ring, (s) => prepWrite(s, direct, buf.bytes, 4096));
    assert.ok(w === 4096 || w === -EOPNOTSUPP, `polled write: ${describe(w)}`);
    if (w === 4096) assert.deepEqual(Deno.readFileSync(file).subarray(4096), pattern(4096, 8));
    else {assert.match(
        iopollError(w, { op: "write", direct: true }).message,
        /write \(IOPOLL\).*no poll queues/,
      );}
    closeFd(plain, direct);
  },
});

Deno.test("iopollError: other errnos keep their name without the poll-queue hint; bad res is a RangeError", () => {
  const badf = iopollError(-errno("EBADF"));
  assert.equal(badf.call, "read (IOPOLL)");
  assert.equal(badf.code, "EBADF");
  assert.equal(badf.hint, undefined);
  const write = iopollError(-EOPNOTSUPP, { op: "write" });
  assert.equal(write.call, "write (IOPOLL)");
  assert.match(write.hint!, /no poll queues/);
  assert.doesNotMatch(write.message, /Operation not supported \(/, "no claim about O_DIRECT when unknown");
  for (const res of [0, 5, 1.5, NaN]) assert.throws(() => iopollError(res), RangeError);
});

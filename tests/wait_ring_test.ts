/**
 * The waiting opcodes through a real ring, in every ring configuration: futex wait and wake
 * (woken only by a matching wake, `-EAGAIN` on a stale value, cancelled by a cancel or a linked
 * timeout), futex waitv, waitid on a child spawned behind Deno's back, and epoll_ctl/epoll_wait
 * over a pipe. Also the kernel's own refusals of the fields the preps refuse to set.
 */

import assert from "node:assert/strict";
import {
  alignedBuffer,
  CLD_EXITED,
  CLD_KILLED,
  CLD_STOPPED,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EpollEvents,
  EPOLLIN,
  EPOLLOUT,
  FUTEX2_NUMA,
  FUTEX2_PRIVATE,
  FUTEX2_SIZE_U32,
  FUTEX_BITSET_MATCH_ANY,
  FUTEX_NO_NODE,
  FutexWaitv,
  IORING_OP_EPOLL_CTL,
  IORING_OP_EPOLL_WAIT,
  IORING_OP_FUTEX_WAIT,
  IORING_OP_FUTEX_WAITV,
  IORING_OP_FUTEX_WAKE,
  IORING_OP_WAITID,
  IOSQE_IO_LINK,
  IoUring,
  P_PID,
  prepCancel,
  prepEpollCtl,
  prepEpollWait,
  prepFutexWait,
  prepFutexWaitv,
  prepFutexWake,
  prepLinkTimeout,
  prepWaitid,
  SIGCHLD,
  Siginfo,
  type Sqe,
  Timespec,
  WEXITED,
  WNOHANG,
  WSTOPPED,
} from "../mod.ts";
import {
  assertErr,
  assertNoCompletion,
  describe,
  pipe,
  reap,
  run,
  sysClose,
  sysRead,
  sysWrite,
} from "./_io.ts";
import { epollCreate, futexWakeFromWorker, kill, reapQuietly, SIGKILL, spawnShell } from "./_libc.ts";
import { lacks, ringTest } from "./_support.ts";

const PRIVATE_U32 = FUTEX2_SIZE_U32 | FUTEX2_PRIVATE;
/** `SIGSTOP` and `SIGCONT` (19 and 18 on x86_64 and aarch64). */
const SIGSTOP = 19, SIGCONT = 18;

/** What a successful cancel of a futex or waitid request completes with: 0, or 1 on 6.18 (a count). */
const CANCELLED = [0, 1];

/**
 * Asserts the result of a link timeout that fired and cancelled a futex wait or a waitid: `-ETIME`
 * as for any other request, or, on 6.18, 1: the link timeout completes with what the cancel
 * returned when that is not 0 (`ret ?: -ETIME` in io_req_task_link_timeout), and the futex and
 * waitid cancel paths return a count.
 */
function assertLinkTimeoutFired(res: number): void {
  assert.ok(res === 1 || res === -62, `the link timeout: ${describe(res)}, want -ETIME (or 1)`);
}

/** Gets an SQE, fills it with `prep`, tags it with `userData` (and `flags`), without submitting. */
function queue(ring: IoUring, userData: number, prep: (sqe: Sqe) => void, flags = 0): void {
  const sqe = ring.getSqe();
  assert.ok(sqe, "the SQ should have room");
  prep(sqe);
  sqe.setUserData(userData).addFlags(flags);
}

/** Reaps `n` completions and returns each `res` by user_data (as a number). */
function results(ring: IoUring, n: number): Map<number, number> {
  return new Map([...reap(ring, n)].map(([ud, d]) => [Number(ud), d.res]));
}

/** Three kinds of memory for a futex word: a plain ArrayBuffer, a SharedArrayBuffer, an AlignedBuffer. */
function futexMemories(): Array<[string, Uint32Array, () => void]> {
  const aligned = alignedBuffer(4096);
  return [
    ["ArrayBuffer", new Uint32Array(4), () => {}],
    ["SharedArrayBuffer", new Uint32Array(new SharedArrayBuffer(16)), () => {}],
    ["AlignedBuffer", new Uint32Array(aligned.bytes.buffer, 64, 4), () => aligned.free()],
  ];
}

ringTest("futex wait completes only after a wake through the ring; the wake reports 1 woken", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_FUTEX_WAIT, IORING_OP_FUTEX_WAKE)) return;
  for (const [name, words, free] of futexMemories()) {
    try {
      const word = words.subarray(1, 2); // not the buffer's first word
      word[0] = 0x1234;
      queue(ring, 1, (s) => prepFutexWait(s, word, 0x1234, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
      ring.submit();
      assertNoCompletion(ring, 50); // nobody woke it
      // A wake of the next word wakes no one.
      assert.equal(
        run(ring, (s) => prepFutexWake(s, words.subarray(2, 3), 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32)),
        0,
      );
      assertNoCompletion(ring, 20);
      queue(ring, 2, (s) => prepFutexWake(s, word, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
      ring.submit();
      const done = results(ring, 2);
      assert.deepEqual([done.get(1), done.get(2)], [0, 1], `${name}: wait 0 and wake 1, got ${[...done]}`);
      // Nobody waits any more.
      assert.equal(run(ring, (s) => prepFutexWake(s, word, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32)), 0, name);
    } finally {
      free();
    }
  }
});

ringTest(
  "futex wait through the ring is woken by futex(2) from another thread; private and shared keys differ",
  async (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_FUTEX_WAIT, IORING_OP_FUTEX_WAKE)) return;
    const memory = new SharedArrayBuffer(16);
    const word = new Uint32Array(memory, 8, 1);
    queue(ring, 1, (s) => prepFutexWait(s, word, 0, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
    ring.submit();
    assertNoCompletion(ring, 30);
    assert.equal(await futexWakeFromWorker(memory, 2), 1, "the Worker's futex(FUTEX_WAKE_PRIVATE) woke one");
    assert.equal(results(ring, 1).get(1), 0);

    // A shared (not FUTEX2_PRIVATE) wait is keyed apart from private wakes of the same word.
    queue(ring, 2, (s) => prepFutexWait(s, word, 0, FUTEX_BITSET_MATCH_ANY, FUTEX2_SIZE_U32));
    ring.submit();
    assertNoCompletion(ring, 20);
    assert.equal(run(ring, (s) => prepFutexWake(s, word, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32)), 0);
    assert.equal(await futexWakeFromWorker(memory, 2), 0, "a private futex(2) wake does not reach it either");
    queue(ring, 3, (s) => prepFutexWake(s, word, 1, FUTEX_BITSET_MATCH_ANY, FUTEX2_SIZE_U32));
    ring.submit();
    const done = results(ring, 2);
    assert.deepEqual([done.get(2), done.get(3)], [0, 1], `${[...done]}`);
  },
);

ringTest(
  "futex wait: a stale value completes at once with -EAGAIN; an Int32Array's negative value is its u32",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_FUTEX_WAIT)) return;
    const word = new Int32Array(1);
    word[0] = 5;
    assertErr(run(ring, (s) => prepFutexWait(s, word, 6, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32)), "EAGAIN");
    word[0] = -2;
    // -2 and 0xfffffffe name the same 32 bits: both wait; -3 does not.
    assertErr(run(ring, (s) => prepFutexWait(s, word, -3, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32)), "EAGAIN");
    for (const value of [-2, 0xffff_fffe, 0xffff_fffen]) {
      queue(ring, 1, (s) => prepFutexWait(s, word, value, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
      ring.submit();
      assertNoCompletion(ring, 20);
      queue(ring, 2, (s) => prepFutexWake(s, word, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
      ring.submit();
      const done = results(ring, 2);
      assert.deepEqual([done.get(1), done.get(2)], [0, 1], `value ${value}`);
    }
  },
);

ringTest("futex masks: a wake reaches only waiters whose mask shares a bit with its own", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_FUTEX_WAIT, IORING_OP_FUTEX_WAKE)) return;
  const word = new Uint32Array(1);
  queue(ring, 1, (s) => prepFutexWait(s, word, 0, 0b01, PRIVATE_U32));
  queue(ring, 2, (s) => prepFutexWait(s, word, 0, 0b10n, PRIVATE_U32));
  ring.submit();
  assertNoCompletion(ring, 30);
  // count 2, mask 0b10: only waiter 2 matches.
  queue(ring, 3, (s) => prepFutexWake(s, word, 2, 0b10, PRIVATE_U32));
  ring.submit();
  let done = results(ring, 2);
  assert.deepEqual([done.get(2), done.get(3)], [0, 1], `${[...done]}`);
  assertNoCompletion(ring, 20); // waiter 1 still waits
  queue(ring, 4, (s) => prepFutexWake(s, word, 0x7fff_ffff, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
  ring.submit();
  done = results(ring, 2);
  assert.deepEqual([done.get(1), done.get(4)], [0, 1], `${[...done]}`);
});

ringTest("futex wait is cancelled by prepCancel and by a linked timeout (-ECANCELED)", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_FUTEX_WAIT)) return;
  const word = new Uint32Array(1);
  queue(ring, 1, (s) => prepFutexWait(s, word, 0, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
  ring.submit();
  assertNoCompletion(ring, 20);
  queue(ring, 2, (s) => prepCancel(s, 1));
  ring.submit();
  let done = results(ring, 2);
  assertErr(done.get(1)!, "ECANCELED", "the cancelled wait");
  // The cancel succeeds with 1 on 6.18, not the usual 0: the futex cancel path returns how many
  // requests it cancelled (io_futex_cancel), and io_async_cancel passes that on.
  assert.ok(CANCELLED.includes(done.get(2)!), `cancel: ${describe(done.get(2)!)}`);

  const ts = new Timespec(20);
  queue(ring, 3, (s) => prepFutexWait(s, word, 0, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32), IOSQE_IO_LINK);
  queue(ring, 4, (s) => prepLinkTimeout(s, ts));
  ring.submit();
  done = results(ring, 2);
  assertErr(done.get(3)!, "ECANCELED", "the timed-out wait");
  assertLinkTimeoutFired(done.get(4)!);
});

ringTest(
  "futex wait with FUTEX2_NUMA: the kernel writes the node id after the word; a NUMA wake wakes it",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_FUTEX_WAIT, IORING_OP_FUTEX_WAKE)) return;
    const pair = new Int32Array(4).subarray(2, 4); // 8-byte aligned: the word, then its node
    pair[1] = FUTEX_NO_NODE;
    const flags = PRIVATE_U32 | FUTEX2_NUMA;
    queue(ring, 1, (s) => prepFutexWait(s, pair, 0, FUTEX_BITSET_MATCH_ANY, flags));
    ring.submit();
    const early = ring.waitCqe({ timeoutMs: 30 });
    if (early !== null && early.res === -22) { // EINVAL: before 6.16
      ring.cqAdvance(1);
      console.log(`SKIP [${config.name}]: this kernel refuses FUTEX2_NUMA (6.16+)`);
      return;
    }
    assert.equal(early, null, `the NUMA wait completed early: ${early && describe(early.res)}`);
    assert.ok(pair[1] >= 0, `the kernel should have written a node id over FUTEX_NO_NODE, got ${pair[1]}`);
    queue(ring, 2, (s) => prepFutexWake(s, pair, 1, FUTEX_BITSET_MATCH_ANY, flags));
    ring.submit();
    const done = results(ring, 2);
    assert.deepEqual([done.get(1), done.get(2)], [0, 1], `${[...done]}`);
  },
);

ringTest(
  "futex waitv: woken on its second futex, it completes with index 1; a stale value gives -EAGAIN",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_FUTEX_WAITV, IORING_OP_FUTEX_WAKE)) return;
    const aligned = alignedBuffer(4096);
    try {
      const a = new Uint32Array(2); // plain memory
      const b = new Uint32Array(aligned.bytes.buffer, 128, 1); // an AlignedBuffer's
      const c = new Uint32Array(new SharedArrayBuffer(4));
      a[1] = 10;
      b[0] = 20;
      c[0] = 30;
      const waitv = new FutexWaitv(3)
        .set(0, a.subarray(1), 10, PRIVATE_U32)
        .set(1, b, 20, PRIVATE_U32)
        .set(2, c, 30n, PRIVATE_U32);
      queue(ring, 1, (s) => prepFutexWaitv(s, waitv));
      ring.submit();
      assertNoCompletion(ring, 30);
      queue(ring, 2, (s) => prepFutexWake(s, b, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
      ring.submit();
      let done = results(ring, 2);
      assert.deepEqual([done.get(1), done.get(2)], [1, 1], `waitv, wake: ${[...done]}`);

      // Only the first two entries: a wake of the third reaches no one.
      queue(ring, 3, (s) => prepFutexWaitv(s, waitv, 2));
      ring.submit();
      assertNoCompletion(ring, 20);
      assert.equal(run(ring, (s) => prepFutexWake(s, c, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32)), 0);
      queue(ring, 4, (s) => prepFutexWake(s, a.subarray(1), 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32));
      ring.submit();
      done = results(ring, 2);
      assert.deepEqual([done.get(3), done.get(4)], [0, 1], `waitv of 2 woken on entry 0: ${[...done]}`);

      c[0] = 31; // entry 2 no longer holds its value
      assertErr(run(ring, (s) => prepFutexWaitv(s, waitv)), "EAGAIN");
    } finally {
      aligned.free();
    }
  },
);

ringTest("waitid on a child Deno does not track: exit status 7, CLD_EXITED, its pid", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_WAITID)) return;
  const pid = spawnShell("exit 7");
  try {
    const info = new Siginfo();
    assert.equal(run(ring, (s) => prepWaitid(s, P_PID, pid, info, WEXITED)), 0);
    assert.equal(info.signo, SIGCHLD);
    assert.equal(info.code, CLD_EXITED);
    assert.equal(info.pid, pid);
    assert.equal(info.status, 7);
    assert.equal(info.uid, Deno.uid());
    // Reaped: no such child any more.
    assertErr(run(ring, (s) => prepWaitid(s, P_PID, pid, null, WEXITED)), "ECHILD");
  } finally {
    reapQuietly(pid);
  }
  // Process 1 is nobody's child here.
  assertErr(run(ring, (s) => prepWaitid(s, P_PID, 1, null, WEXITED)), "ECHILD");
});

ringTest(
  "waitid waits: a stopped child reports CLD_STOPPED, WNOHANG finds nothing, the exit comes after SIGCONT",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_WAITID)) return;
    const pid = spawnShell("kill -STOP $$; exit 3");
    try {
      const info = new Siginfo();
      assert.equal(run(ring, (s) => prepWaitid(s, P_PID, pid, info, WSTOPPED)), 0);
      assert.deepEqual([info.signo, info.code, info.pid, info.status], [SIGCHLD, CLD_STOPPED, pid, SIGSTOP]);

      // Stopped, it cannot exit: WNOHANG reports nothing (0, and a zeroed report).
      info.bytes.fill(0xee);
      assert.equal(run(ring, (s) => prepWaitid(s, P_PID, pid, info, WEXITED | WNOHANG)), 0);
      assert.deepEqual([info.signo, info.pid], [0, 0]);

      // A waiting waitid is cancelled by its linked timeout.
      const ts = new Timespec(20);
      queue(ring, 1, (s) => prepWaitid(s, P_PID, pid, info, WEXITED), IOSQE_IO_LINK);
      queue(ring, 2, (s) => prepLinkTimeout(s, ts));
      ring.submit();
      const done = results(ring, 2);
      assertErr(done.get(1)!, "ECANCELED", "the timed-out waitid");
      assertLinkTimeoutFired(done.get(2)!);

      // And one left waiting completes only once the child goes on and exits.
      info.clear();
      queue(ring, 3, (s) => prepWaitid(s, P_PID, pid, info, WEXITED));
      ring.submit();
      assertNoCompletion(ring, 50);
      assert.equal(kill(pid, SIGCONT), 0);
      assert.equal(results(ring, 1).get(3), 0);
      assert.deepEqual([info.signo, info.code, info.pid, info.status], [SIGCHLD, CLD_EXITED, pid, 3]);
    } finally {
      reapQuietly(pid);
    }
  },
);

ringTest("waitid reports a child killed by a signal: CLD_KILLED with the signal in si_status", (config) => {
  using ring = new IoUring(8, config.options);
  if (lacks(ring, config, IORING_OP_WAITID)) return;
  const pid = spawnShell("exec sleep 30");
  try {
    const info = new Uint8Array(160); // a plain buffer works as well as a Siginfo
    queue(ring, 1, (s) => prepWaitid(s, P_PID, pid, info, WEXITED));
    ring.submit();
    assertNoCompletion(ring, 30);
    assert.equal(kill(pid, SIGKILL), 0);
    assert.equal(results(ring, 1).get(1), 0);
    const v = new DataView(info.buffer);
    // si_signo 0, si_code 8, si_pid 16, si_status 24 (64-bit siginfo_t)
    assert.deepEqual(
      [v.getInt32(0, true), v.getInt32(8, true), v.getInt32(16, true), v.getInt32(24, true)],
      [SIGCHLD, CLD_KILLED, pid, SIGKILL],
    );
  } finally {
    reapQuietly(pid);
  }
});

ringTest(
  "epoll through the ring: ADD a pipe, a wait gets its event and data; after DEL a wait sees nothing",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_EPOLL_CTL, IORING_OP_EPOLL_WAIT)) return;
    const epfd = epollCreate();
    const [r, w] = pipe();
    try {
      const interest = new EpollEvents().set(0, EPOLLIN, 0xfedc_ba98_7654_3210n);
      assert.equal(run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_ADD, r, interest)), 0);
      assertErr(run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_ADD, r, interest)), "EEXIST");

      const events = new EpollEvents(4);
      queue(ring, 1, (s) => prepEpollWait(s, epfd, events));
      ring.submit();
      assertNoCompletion(ring, 30); // the pipe is empty
      assert.equal(sysWrite(w, new Uint8Array([1])), 1);
      assert.equal(results(ring, 1).get(1), 1, "one event");
      assert.equal(events.events(0), EPOLLIN);
      assert.equal(events.data(0), 0xfedc_ba98_7654_3210n);

      // MOD to a number, then a level-triggered wait reports the byte still there, with it.
      interest.set(0, EPOLLIN, 0x1_2345_6789);
      assert.equal(run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_MOD, r, interest)), 0);
      assert.equal(run(ring, (s) => prepEpollWait(s, epfd, events, 1)), 1);
      assert.equal(events.dataNumber(0), 0x1_2345_6789);

      // After DEL the readable pipe is not reported: the wait runs into its linked timeout.
      assert.equal(run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_DEL, r, null)), 0);
      assertErr(run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_DEL, r, null)), "ENOENT");
      const ts = new Timespec(30);
      queue(ring, 2, (s) => prepEpollWait(s, epfd, events), IOSQE_IO_LINK);
      queue(ring, 3, (s) => prepLinkTimeout(s, ts));
      ring.submit();
      const done = results(ring, 2);
      assertErr(done.get(2)!, "ECANCELED", "the epoll wait after DEL");
      assertErr(done.get(3)!, "ETIME", "the link timeout");

      // Two fds ready at once: both reported, in one completion.
      assert.equal(run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_ADD, r, interest.set(0, EPOLLIN, 1))), 0);
      assert.equal(
        run(ring, (s) => prepEpollCtl(s, epfd, EPOLL_CTL_ADD, w, interest.set(0, EPOLLOUT, 2))),
        0,
      );
      assert.equal(run(ring, (s) => prepEpollWait(s, epfd, events)), 2);
      const got = [0, 1].map((i) => [events.dataNumber(i), events.events(i)]).sort();
      assert.deepEqual(got, [[1, EPOLLIN], [2, EPOLLOUT]]);
      assert.equal(sysRead(r, new Uint8Array(8)), 1);
    } finally {
      sysClose(r);
      sysClose(w);
      sysClose(epfd);
    }
  },
);

ringTest(
  "the kernel refuses what the preps refuse to write: reserved flags, other futex sizes, mask 0, unaligned words",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (
      lacks(ring, config, IORING_OP_FUTEX_WAIT, IORING_OP_FUTEX_WAKE, IORING_OP_WAITID, IORING_OP_EPOLL_WAIT)
    ) {
      return;
    }
    const word = new Uint32Array(4);
    const events = new EpollEvents(1);
    const epfd = epollCreate();
    // SQE word indexes (u32) from struct io_uring_sqe: fd 1, off 2-3, addr 4-5, op flags 7, addr3 12-13.
    const W = { fd: 1, offHi: 3, addrLo: 4, opFlags: 7, addr3Lo: 12 };
    const wake = (s: Sqe) => prepFutexWake(s, word, 1, FUTEX_BITSET_MATCH_ANY, PRIVATE_U32);
    const poke = (s: Sqe, wordIndex: number, value: number) => s.u32[s.base + wordIndex] = value;
    const cases: Array<[string, (s: Sqe) => void]> = [
      ["futex_flags 1", (s) => poke((wake(s), s), W.opFlags, 1)],
      ["futex2 size U8", (s) => poke((wake(s), s), W.fd, FUTEX2_PRIVATE)],
      ["futex2 size U64", (s) => poke((wake(s), s), W.fd, FUTEX2_PRIVATE | 3)],
      ["mask 0", (s) => poke((wake(s), s), W.addr3Lo, 0)],
      ["unaligned word", (s) => poke((wake(s), s), W.addrLo, s.u32[s.base + W.addrLo] + 2)],
      ["count 2^32", (s) => poke((wake(s), s), W.offHi, 1)],
      ["waitid_flags 1", (s) => poke((prepWaitid(s, P_PID, 1, null, WEXITED), s), W.opFlags, 1)],
      ["epoll_wait flags 1", (s) => poke((prepEpollWait(s, epfd, events), s), W.opFlags, 1)],
    ];
    try {
      for (const [name, prep] of cases) assertErr(run(ring, prep), "EINVAL", name);
      // (The same SQEs unpoked are accepted: the refusals come from the poked fields.)
      assert.equal(run(ring, wake), 0);
      assertErr(run(ring, (s) => prepWaitid(s, P_PID, 1, null, WEXITED)), "ECHILD");
    } finally {
      sysClose(epfd);
    }
  },
);

/**
 * The Uring's internal raw channel (`rawRing`): SQEs a client writes itself share the ring, the
 * pump, the in-flight limit and `close()` with the Uring's own operations.
 */

import assert from "node:assert/strict";
import { prepCancelFd, prepNop, prepRead, Uring } from "../mod.ts";
import { type RawClient, rawRing } from "../src/uring.ts";
import { ringTest, skipKernel } from "./_support.ts";
import { pipe, spinUntilReady, sysClose, sysWrite } from "./_io.ts";
import { sleep, uringOptions } from "./uring_support.ts";

/** A client that records what it is handed. */
class Recorder implements RawClient {
  readonly done: [number, number][] = [];
  failed: unknown = undefined;
  #waiter: (() => void) | null = null;
  #want = 0;
  complete(tag: number, res: number): void {
    this.done.push([tag, res]);
    if (this.done.length >= this.#want) this.#waiter?.();
  }
  fail(error: unknown): void {
    this.failed = error;
  }
  /** Resolves once `n` CQEs in all were handed over. */
  until(n: number): Promise<void> {
    this.#want = n;
    if (this.done.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiter = resolve);
  }
}

ringTest(
  "rawRing: a client's SQEs go out with the Uring's own, and its CQEs come back by tag",
  async (config) => {
    await using uring = new Uring(uringOptions(config, { entries: 8 }));
    const raw = rawRing(uring);
    assert.equal(rawRing(uring), raw, "one raw ring per Uring");
    const a = new Recorder(), b = new Recorder();
    const ida = raw.attach(a), idb = raw.attach(b);
    assert.notEqual(ida, idb);
    const before = uring.stats.sqes;
    assert.ok(raw.room(3, 3));
    prepNop(raw.sqe(ida, 7));
    prepNop(raw.sqe(idb, 0xffffffff)); // any u32 is a tag
    prepNop(raw.sqe(ida, 8));
    raw.commit(3, 3, 0);
    assert.equal(uring.pending, 3, "CQEs still to come count as pending");
    const own = uring.nop(); // an operation of the Uring's own, in the same batch
    await Promise.all([a.until(2), b.until(1), own]);
    assert.deepEqual(a.done.sort(), [[7, 0], [8, 0]]);
    assert.deepEqual(b.done, [[0xffffffff, 0]]);
    assert.equal(uring.stats.sqes - before, 4);
    assert.equal(uring.pending, 0);

    // A detached client's late CQEs are dropped, not misdelivered.
    prepNop(raw.sqe(idb, 1));
    raw.commit(1, 1, 0);
    raw.detach(idb);
    await uring.nop();
    await sleep(5);
    assert.equal(b.done.length, 1);
  },
);

ringTest(
  "rawRing: room() respects the in-flight limit and the Uring's queue, and closes with it",
  async (config) => {
    const uring = new Uring(uringOptions(config, { entries: 4 })); // 8 CQEs in flight at most
    const raw = rawRing(uring);
    const client = new Recorder();
    const id = raw.attach(client);
    assert.equal(raw.room(4, 9), false, "more CQEs than the CQ may hold in flight");
    assert.equal(raw.room(5, 1), false, "more SQEs than the SQ has");
    // Reads of an empty pipe stay in flight until the Uring closes and cancels them.
    const [r, w] = pipe();
    const buf = new Uint8Array(1);
    assert.ok(raw.room(2, 2));
    prepRead(raw.sqe(id, 1), r, buf, 0);
    prepRead(raw.sqe(id, 2), r, buf, 0);
    raw.commit(2, 2, 0);
    await sleep(20);
    assert.equal(client.done.length, 0);
    assert.equal(uring.pending, 2);
    const closing = uring.close();
    assert.equal(raw.room(1, 1), false, "a closing Uring takes nothing more");
    await closing;
    assert.deepEqual(client.done.map(([tag]) => tag).sort(), [1, 2]);
    for (const [, res] of client.done) assert.ok(res === -125 || res === -4, `cancelled: ${res}`); // ECANCELED (EINTR)
    assert.equal(client.failed, undefined);
    assert.throws(() => raw.attach(new Recorder()), /closed/i);
    sysClose(r);
    sysClose(w);
  },
);

Deno.test({
  name: "rawRing: under SQPOLL a commit publishes the SQEs at once, before the pump runs",
  ignore: skipKernel(),
  async fn() {
    await using uring = new Uring({ sqpoll: { idleMs: 1000 } });
    await uring.nop(); // the SQ thread is running and awake for the next second
    const raw = rawRing(uring);
    const client = new Recorder();
    const id = raw.attach(client);
    const before = { ...uring.ring.stats };
    prepNop(raw.sqe(id, 1));
    prepNop(raw.sqe(id, 2));
    raw.commit(2, 2, 0);
    // No microtask has run, so the pump has not submitted: only commit's tail store can have
    // shown the NOPs to the kernel thread.
    spinUntilReady(uring.ring, 2, "the committed NOPs were not published");
    assert.deepEqual({ ...uring.ring.stats }, before, "no io_uring_enter was needed");
    await client.until(2);
    assert.deepEqual(client.done.sort(), [[1, 0], [2, 0]]);
  },
});

ringTest(
  "Uring: an operation the kernel cancels unasked is issued again, up to 3 times, then rejects",
  async (config) => {
    await using uring = new Uring(uringOptions(config, { entries: 8 }));
    // A raw client stands in for the kernel dropping work (as io-wq does when it cannot start a
    // worker): it cancels the Uring's pending pipe read by fd, behind the Uring's back.
    const raw = rawRing(uring);
    const canceller = new Recorder();
    const id = raw.attach(canceller);
    const [r, w] = pipe();
    try {
      let cancels = 0;
      const cancelRead = async () => {
        prepCancelFd(raw.sqe(id, ++cancels), r);
        raw.commit(1, 1, 0);
        await canceller.until(cancels);
        assert.equal(canceller.done[cancels - 1][1], 0, "the cancel found the read");
        await sleep(20); // the read's ECANCELED comes in and the read goes out again
      };
      const buf = new Uint8Array(8);
      const read = uring.read(r, buf, 0);
      await sleep(20); // the read waits in the kernel: the pipe is empty
      await cancelRead();
      assert.equal(uring.stats.reissued, 1);
      assert.equal(uring.pending, 1, "the read is in flight again");
      assert.equal(sysWrite(w, new Uint8Array([1, 2, 3])), 3);
      assert.equal(await read, 3, "the reissued read completes normally");
      assert.deepEqual([...buf.subarray(0, 3)], [1, 2, 3]);

      // Dropped three times it is issued again each time; the fourth cancellation is reported.
      const doomed = uring.read(r, buf, 0);
      const outcome = doomed.then(() => "resolved", (e) => e as Error & { code?: string });
      await sleep(20);
      for (let i = 0; i < 4; i++) await cancelRead();
      const final = await outcome;
      assert.equal(typeof final === "string" ? final : final.code, "ECANCELED");
      // It says why (a probe: under `ulimit -u 10` operations failed with a bare ECANCELED).
      assert.match(String(final), /dropped it 4 times before it ran: io-wq could not start .*ulimit -u/);
      assert.equal(uring.stats.reissued, 4);

      // An operation aborted through its signal is not issued again: it rejects with the reason.
      const controller = new AbortController();
      const aborted = uring.read(r, buf, 0, { signal: controller.signal });
      await sleep(20);
      controller.abort(new Error("stop"));
      await assert.rejects(aborted, /stop/);
      assert.equal(uring.stats.reissued, 4);

      // A chain's member is not issued again, but says why (a re-check: a bare ECANCELED); the
      // member after it, cancelled by the link, says nothing of the kind.
      const chain = uring.chain((c) => c.read(r, buf, 0).nop());
      await sleep(20);
      await cancelRead();
      const [first, second] = await chain;
      // (Its members post no CQE on success: the one CQE cannot tell a drop from a later member
      // the kernel refused as the chain was submitted, and says both.)
      assert.ok(
        !first.ok &&
          /cancelled before it ran: .*the kernel dropped it .*io-wq could not start/.test(
            String(first.error),
          ),
        String(!first.ok && first.error),
      );
      assert.ok(!second.ok && (second.error as { code?: string }).code === "ECANCELED");
      assert.doesNotMatch(String(second.error), /dropped/);
    } finally {
      sysClose(r);
      sysClose(w);
    }
  },
);

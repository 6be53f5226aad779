/**
 * Load: 200,000 operations through a 64-entry ring, issued in bursts far larger than the SQ and
 * CQ, so most of them wait in the JavaScript FIFO. Everything settles, nothing leaks (fds), and
 * Deno's sanitizers stay on.
 */

import assert from "node:assert/strict";
import { Uring } from "../mod.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";
import { fdCount, MOD_URL, Prng, runDeno, Tracker, uringOptions } from "./uring_support.ts";

const TOTAL = 200_000;

ringTest("Uring load: 200,000 operations on a 64-entry ring all settle, no fd leaks", async (config) => {
  using dir = tempDir();
  const path = `${dir.path}/data`;
  const content = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
  Deno.writeFileSync(path, content);
  const fdsBefore = fdCount();
  const uring = new Uring(uringOptions(config, { entries: 64 }));
  assert.equal(uring.ring.sqEntries, 64);
  const rng = new Prng(0x10ad);
  const tracker = new Tracker();
  const file = await uring.open(path, { read: true, write: true });
  let issued = 0;
  let maxPending = 0;
  let opened = 0;
  let wrong = 0;
  while (issued < TOTAL) {
    const burst = Math.min(TOTAL - issued, rng.range(1, 20_000));
    const outcomes: Promise<unknown>[] = [];
    for (let i = 0; i < burst; i++) {
      const k = rng.int(100);
      if (k < 40) {
        outcomes.push(tracker.track(uring.nop()));
      } else if (k < 75) {
        const off = rng.int(content.length - 512);
        const buf = new Uint8Array(512);
        outcomes.push(
          tracker.track(file.readAt(buf, off)).then((r) => {
            if (!r.ok || r.value !== 512 || buf[100] !== content[off + 100]) wrong++;
          }),
        );
      } else if (k < 85) {
        // Rewrite bytes with their own value: the content stays known.
        const off = rng.int(content.length - 64);
        outcomes.push(
          tracker.track(uring.write(file.fd, content.subarray(off, off + 64), off)).then((r) => {
            if (!r.ok || r.value !== 64) wrong++;
          }),
        );
      } else if (k < 92) {
        outcomes.push(tracker.track(uring.timeout(0)));
      } else if (k < 96) {
        outcomes.push(
          tracker.track(uring.statx(path)).then((r) => {
            if (!r.ok || r.value.size !== content.length) wrong++;
          }),
        );
      } else {
        opened++;
        outcomes.push(tracker.track(uring.open(path).then((f) => f.close())));
      }
    }
    issued += burst;
    maxPending = Math.max(maxPending, uring.pending);
    await Promise.all(outcomes);
    assert.equal(uring.pending, 0);
  }
  tracker.assertAllSettledOnce();
  assert.equal(tracker.issued, TOTAL);
  assert.equal(wrong, 0, `${wrong} operations gave a wrong result`);
  assert.ok(maxPending > uring.ring.cqEntries, "bursts exceeded what the ring holds");
  assert.ok(opened > 1000);
  await file.close();
  await uring.close();
  assert.equal(fdCount(), fdsBefore, "file descriptors leaked");
  assert.deepEqual(Deno.readFileSync(path), content);
});

ringTest(
  "Uring load: bursts of cached reads and nops far larger than the ring never stall",
  async (config) => {
    // Regression: under SQPOLL the kernel posts a batch's CQEs before it advances the SQ head, so
    // after reaping everything the SQ can still look full for a moment. With nothing in flight
    // and no wait parked, the queued work must still go in (it once stalled forever here).
    using dir = tempDir();
    const path = `${dir.path}/data`;
    Deno.writeFileSync(path, new Uint8Array(1 << 20).fill(9));
    await using uring = new Uring(uringOptions(config, { entries: 64 }));
    await using file = await uring.open(path);
    for (let round = 0; round < 10; round++) {
      const reads = Array.from(
        { length: 10_000 },
        (_, i) => file.readAt(new Uint8Array(512), (i * 4096) % (1 << 20)),
      );
      assert.ok((await Promise.all(reads)).every((n) => n === 512));
      await Promise.all(Array.from({ length: 10_000 }, () => uring.nop()));
    }
    assert.equal(uring.pending, 0);
  },
);

Deno.test({
  name: "Uring load: a CQ of one entry (or a chain as long as the CQ) never spins the pump forever",
  ignore: skipKernel(),
  async fn() {
    // With `cqEntries: 1` the wake-up no-op left for a parked wait took the whole in-flight limit:
    // the pump saw SQ room, retried, and could not reap that no-op, forever, on the event loop's
    // thread (4 of 4 runs hung, with SQPOLL and without). A child process, so a hang is a timeout.
    for (const sqpoll of [true, false]) {
      const out = await runDeno(
        `import { Uring } from ${JSON.stringify(MOD_URL)};
        const u = new Uring({ entries: 1, cqEntries: 1, sqpoll: ${sqpoll} });
        for (let i = 0; i < 50; i++) {
          const p = u.timeout(1); // parks a wait on the thread pool
          const q = new Promise((r) => setTimeout(() => u.nop().then(r, r), 1)); // queued as it ends
          await Promise.all([p, q]);
        }
        const v = new Uring({ entries: 4, cqEntries: 4, sqpoll: ${sqpoll} });
        for (let i = 0; i < 50; i++) {
          const p = v.timeout(1);
          const q = new Promise((r) => setTimeout(() => v.chain((c) => { c.nop(); c.nop(); c.nop(); c.nop(); }).then(r, r), 1));
          await Promise.all([p, q]);
        }
        await u.close();
        await v.close();
        console.log("done");`,
        ["--allow-all"],
        { timeoutMs: 20_000 },
      );
      assert.equal(out.timedOut, false, `sqpoll ${sqpoll}: hung`);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout.trim(), "done");
    }
  },
});

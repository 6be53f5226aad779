import assert from "node:assert/strict";
import { IoUring, prepNop } from "../mod.ts";
import { ringTest } from "./_support.ts";

ringTest("nop round trip carries user_data 0, 2^53+1 and 2^64-1", (config) => {
  using ring = new IoUring(8, config.options);
  assert.equal(ring.sqpoll, config.sqpoll);
  assert.equal(ring.backend, config.backend);
  const values = [0n, 2n ** 53n + 1n, 2n ** 64n - 1n];
  for (const v of values) prepNop(ring.getSqe()!).setUserData(v);
  assert.equal(ring.submitAndWait(values.length), values.length);
  const seen: bigint[] = [];
  for (const cqe of ring.completions()) {
    assert.equal(cqe.res, 0);
    seen.push(cqe.userData);
  }
  assert.deepEqual(seen.sort(), [...values].sort());
  assert.equal(ring.cqReady(), 0);
});

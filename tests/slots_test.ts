/**
 * The promise layer's backlog of operations waiting for SQ space (`SlotQueue`): order, and entries
 * gone stale (an operation aborted while it waited) dropped.
 */

import assert from "node:assert/strict";
import { QUEUED, Slot, SlotQueue } from "../src/slots.ts";

/** A slot waiting in the backlog (generation `gen`). */
function queued(index: number, gen = 1): Slot {
  const slot = new Slot(index, () => {});
  slot.gen = gen;
  slot.state = QUEUED;
  return slot;
}

Deno.test("SlotQueue: first in, first out; stale entries are skipped", () => {
  const queue = new SlotQueue();
  const slots = Array.from({ length: 40 }, (_, i) => queued(i));
  for (const slot of slots) queue.push(slot);
  slots[0].gen++; // settled and used again: this entry is stale
  slots[1].state = 0; // freed
  for (let i = 2; i < 40; i++) {
    assert.equal(queue.peek(), slots[i]);
    queue.shift();
  }
  assert.equal(queue.peek(), null);
});

Deno.test("SlotQueue: behind a live head, aborted entries do not pile up", () => {
  // A ring kept full by long reads, one operation aborted after another behind them: each left an
  // entry until the head reached it (2 million: 22.7 MB in the probe).
  const queue = new SlotQueue();
  const head = queued(0);
  queue.push(head);
  for (let i = 1; i <= 100_000; i++) {
    const slot = queued(i);
    queue.push(slot);
    slot.state = 0; // aborted while it waited
  }
  assert.ok(queue.size <= 64, `${queue.size} entries queued for 1 live one`);
  const last = queued(7);
  queue.push(last);
  assert.equal(queue.peek(), head);
  queue.shift();
  assert.equal(queue.peek(), last, "order kept");
});

/**
 * The handle-free fast path of IoUring: `queueNop`/`queueRead`/`queueWrite` (get an SQE and
 * prepare it in one call) and `forEachCompletion` (reap without a `Cqe` handle). Each queue call
 * must write exactly the bytes of `getSqe()` + `prep*` + `setUserData`, refuse bad input before
 * a slot is taken, and behave like `getSqe` when the SQ is full or the ring is closed.
 */

import assert from "node:assert/strict";
import {
  ClosedError,
  IORING_OP_READ,
  IORING_OP_WRITE,
  IOSQE_IO_LINK,
  IoUring,
  O_CREAT,
  O_RDWR,
  type Offset,
  prepNop,
  prepRead,
  prepWrite,
  Sqe,
} from "../mod.ts";
import { closeFd, openFile } from "./_io.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";
import { MOD_URL, runDeno } from "./uring_support.ts";

type UserData = number | bigint;

/** `RWF_NOWAIT` from linux/fs.h: any non-zero per-op flag will do here (the SQEs are compared). */
const RWF_NOWAIT = 8;

const USER_DATA: readonly UserData[] = [
  0,
  1,
  0x7fff_ffff,
  0xffff_ffff,
  2 ** 32,
  2 ** 53 - 1,
  0n,
  5n,
  2n ** 64n - 1n,
];
const OFFSETS: readonly Offset[] = [0, 4096, 0xffff_ffff, 2 ** 32 + 512, 2 ** 53 - 1, 7n, 2n ** 63n - 1n];

/** The bytes `make` leaves in a fresh SQE of a new ring (the ring is closed after). */
function sqeBytes(make: (ring: IoUring) => Sqe | null): Uint8Array {
  using ring = new IoUring(4, { sqpoll: false });
  const sqe = make(ring);
  assert.ok(sqe, "the SQ of a new ring has room");
  return sqe.bytes();
}

/** An Sqe over plain memory: the reference preps run on it to learn which error they throw. */
function plainSqe(): Sqe {
  const u32 = new Uint32Array(16);
  return new Sqe(u32, new Uint8Array(u32.buffer), 0);
}

function detached(): Uint8Array {
  const view = new Uint8Array(16);
  view.buffer.transfer();
  return view;
}

/** The error `fn` throws (fails when it returns). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected an exception");
}

Deno.test({
  name: "queueNop writes the bytes of getSqe + prepNop + setUserData, for every kind of user_data",
  ignore: skipKernel(),
  fn() {
    for (const ud of USER_DATA) {
      const want = sqeBytes((r) => prepNop(r.getSqe()!).setUserData(ud));
      assert.deepEqual(sqeBytes((r) => r.queueNop(ud)), want, `user_data ${ud}`);
    }
    // The returned handle is the SQE just written: flags added through it land in the same bytes.
    const want = sqeBytes((r) => prepNop(r.getSqe()!).setUserData(9).addFlags(IOSQE_IO_LINK));
    assert.deepEqual(sqeBytes((r) => r.queueNop(9)!.addFlags(IOSQE_IO_LINK)), want);
  },
});

Deno.test({
  name: "queueRead/queueWrite write the bytes of getSqe + prepRead/prepWrite + setUserData",
  ignore: skipKernel(),
  fn() {
    const bufs = [
      new Uint8Array(4096),
      new Uint8Array(new ArrayBuffer(8192), 100, 333),
      new DataView(new ArrayBuffer(0)),
    ];
    for (const buf of bufs) {
      for (const offset of OFFSETS) {
        for (const ud of [3, 2 ** 40 + 1, 2n ** 64n - 1n]) {
          for (const rwFlags of [0, RWF_NOWAIT]) {
            const what = `buf ${buf.byteLength}, offset ${offset}, user_data ${ud}, rwFlags ${rwFlags}`;
            const read = sqeBytes((r) => prepRead(r.getSqe()!, 7, buf, offset, rwFlags).setUserData(ud));
            assert.deepEqual(
              sqeBytes((r) => r.queueRead(ud, 7, buf, offset, rwFlags)),
              read,
              `read: ${what}`,
            );
            const write = sqeBytes((r) => prepWrite(r.getSqe()!, 7, buf, offset, rwFlags).setUserData(ud));
            assert.deepEqual(
              sqeBytes((r) => r.queueWrite(ud, 7, buf, offset, rwFlags)),
              write,
              `write: ${what}`,
            );
            assert.equal(read[0], IORING_OP_READ);
            assert.equal(write[0], IORING_OP_WRITE);
          }
        }
      }
    }
    // rwFlags defaults to 0, as in the prep helpers.
    const buf = new Uint8Array(64);
    assert.deepEqual(
      sqeBytes((r) => r.queueRead(1, 3, buf, 0)),
      sqeBytes((r) => prepRead(r.getSqe()!, 3, buf, 0).setUserData(1)),
    );
  },
});

Deno.test({
  name: "a reused slot holds no bytes of the operation it carried before",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(1, { sqpoll: false });
    const buf = new Uint8Array(new ArrayBuffer(64), 8, 16);
    const cases: Array<[string, (r: IoUring) => Sqe | null]> = [
      ["nop", (r) => r.queueNop(4)],
      ["read", (r) => r.queueRead(4, 0, buf, 8)],
      ["write", (r) => r.queueWrite(4, 1, buf, 8)],
    ];
    for (const [name, make] of cases) {
      // Every byte of the one slot set, save opcode (NOP) and flags: the kernel completes it
      // (with an error, which does not matter here) and the slot comes round again dirty.
      const stale = ring.getSqe()!;
      stale.u32.fill(0xffff_ffff, stale.base, stale.base + 16);
      stale.u8[stale.base * 4] = 0;
      stale.u8[stale.base * 4 + 1] = 0;
      ring.submitAndWait(1);
      ring.cqAdvance(1);
      const sqe = make(ring);
      assert.ok(sqe);
      assert.equal(sqe.slot, stale.slot, "a one-entry ring reuses its slot");
      assert.deepEqual(sqe.bytes(), sqeBytes(make), `${name}: stale bytes left in the slot`);
      sqe.u8[sqe.base * 4] = 0; // submit it as a NOP: fds 0 and 1 are the test runner's
      ring.submitAndWait(1);
      ring.cqAdvance(1);
    }
  },
});

ringTest("SQ full: queue calls return null and neither write nor move the tail", (config) => {
  using ring = new IoUring(4, config.options);
  const buf = new Uint8Array(512);
  const sqes = [
    ring.queueNop(100),
    ring.queueRead(101, 0, buf, 0),
    ring.queueWrite(102, 1, buf, 0),
    ring.queueNop(103),
  ];
  sqes.forEach((s, i) => assert.ok(s, `SQE ${i}`));
  const before = sqes.map((s) => s!.bytes());
  assert.equal(new Set(sqes.map((s) => s!.slot)).size, 4);
  assert.equal(ring.sqReady(), 4);
  assert.equal(ring.queueNop(200), null);
  assert.equal(ring.queueRead(201, 0, buf, 0), null);
  assert.equal(ring.queueWrite(202, 1, buf, 0), null);
  assert.equal(ring.getSqe(), null, "getSqe agrees: still full");
  assert.equal(ring.sqReady(), 4, "a refused call moved the tail");
  sqes.forEach((s, i) => assert.deepEqual(s!.bytes(), before[i], `SQE ${i} was overwritten`));
  // Only the four are published. (The read and write are turned into NOPs first: fds 0 and 1
  // are whatever the test runner has, and only the count matters here.)
  sqes[1]!.u8[sqes[1]!.base * 4] = 0;
  sqes[2]!.u8[sqes[2]!.base * 4] = 0;
  assert.equal(ring.submitAndWait(4), 4);
  const seen: number[] = [];
  assert.equal(ring.forEachCompletion((ud) => seen.push(ud)), 4);
  assert.deepEqual(seen.sort(), [100, 101, 102, 103]);
  assert.ok(ring.queueNop(300), "room again once the kernel consumed the SQEs");
});

Deno.test({
  name: "a closed ring: the queue calls and forEachCompletion throw getSqe's ClosedError",
  ignore: skipKernel(),
  fn() {
    const ring = new IoUring(4, { sqpoll: false });
    ring.close();
    const expected = thrown(() => ring.getSqe());
    assert.ok(expected instanceof ClosedError);
    const buf = new Uint8Array(8);
    const calls: Record<string, () => unknown> = {
      queueNop: () => ring.queueNop(1),
      queueRead: () => ring.queueRead(1, 0, buf, 0),
      queueWrite: () => ring.queueWrite(1, 1, buf, 0),
      forEachCompletion: () => ring.forEachCompletion(() => {}),
    };
    for (const [name, call] of Object.entries(calls)) {
      const e = thrown(call);
      assert.ok(e instanceof ClosedError, `${name}: expected ClosedError, got ${e}`);
      assert.equal(e.message, expected.message, name);
    }
  },
});

Deno.test({
  name: "bad input is refused before a slot is taken, with the error the prep helpers give",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(4, { sqpoll: false });
    const buf = new Uint8Array(64);
    const notABuffer = [1, 2] as unknown as Uint8Array;
    const badUserData = [-1, 1.5, NaN, Infinity, 2 ** 53, -1n, 2n ** 64n, "1", null, undefined] as unknown[];
    const badFds = [-1, -2, 1.5, NaN, 2 ** 31, "3", null, 3n] as unknown[];
    const badBuffers: Array<[string, unknown]> = [
      ["detached", detached()],
      ["an array", notABuffer],
      ["an ArrayBuffer", new ArrayBuffer(8)],
      ["null", null],
    ];
    // (-1 and -1n are the file's position: allowed.)
    const badOffsets = [-2, -4096, 1.5, -1.5, NaN, 2 ** 53, -2n, 2n ** 63n, "0", null] as unknown[];
    // [what, the queue call, the reference call on a plain SQE]
    const cases: Array<[string, () => unknown, () => unknown]> = [];
    for (const ud of badUserData) {
      const u = ud as number;
      cases.push([
        `queueNop user_data ${String(ud)}`,
        () => ring.queueNop(u),
        () => plainSqe().setUserData(u),
      ]);
      cases.push([
        `queueRead user_data ${String(ud)}`,
        () => ring.queueRead(u, 3, buf, 0),
        () => plainSqe().setUserData(u),
      ]);
      cases.push([
        `queueWrite user_data ${String(ud)}`,
        () => ring.queueWrite(u, 3, buf, 0),
        () => plainSqe().setUserData(u),
      ]);
    }
    for (
      const [name, queue, prep] of [
        ["queueRead", ring.queueRead.bind(ring), prepRead],
        ["queueWrite", ring.queueWrite.bind(ring), prepWrite],
      ] as const
    ) {
      for (const fd of badFds) {
        cases.push([
          `${name} fd ${String(fd)}`,
          () => queue(1, fd as number, buf, 0),
          () => prep(plainSqe(), fd as number, buf, 0),
        ]);
      }
      for (const [kind, b] of badBuffers) {
        cases.push([
          `${name} buffer ${kind}`,
          () => queue(1, 3, b as Uint8Array, 0),
          () => prep(plainSqe(), 3, b as Uint8Array, 0),
        ]);
      }
      for (const off of badOffsets) {
        cases.push([
          `${name} offset ${String(off)}`,
          () => queue(1, 3, buf, off as number),
          () => prep(plainSqe(), 3, buf, off as number),
        ]);
      }
    }
    for (const [what, queue, reference] of cases) {
      const want = thrown(reference);
      const got = thrown(queue);
      assert.equal(got.constructor, want.constructor, `${what}: ${got}`);
      assert.equal(got.message, want.message, what);
      assert.equal(ring.sqReady(), 0, `${what}: a slot was taken`);
    }
    // rwFlags must be a u32, as the prep helpers require.
    for (const flags of [-1, 1.5, 2 ** 32, "1", 1n] as unknown[]) {
      const type = typeof flags === "number" ? RangeError : TypeError; // (not a number at all)
      assert.throws(
        () => ring.queueRead(1, 3, buf, 0, flags as number),
        type,
        `rwFlags ${String(flags)}`,
      );
      assert.throws(
        () => ring.queueWrite(1, 3, buf, 0, flags as number),
        type,
        `rwFlags ${String(flags)}`,
      );
    }
    assert.equal(ring.sqReady(), 0);
    // The same ring still hands out slot 0, zeroed: nothing was written by the refused calls.
    const sqe = ring.getSqe()!;
    assert.equal(sqe.slot, 0);
    assert.ok(sqe.bytes().every((b) => b === 0));
  },
});

ringTest("round trip: queued NOPs, a write and a read complete with their user_data", (config) => {
  using tmp = tempDir();
  using ring = new IoUring(8, config.options);
  const path = `${tmp.path}/data`;
  const fd = openFile(ring, path, O_RDWR | O_CREAT);
  const data = new TextEncoder().encode("hello, queued ring");
  // A write linked to the read that follows it, so the read sees the written bytes.
  assert.ok(ring.queueWrite(0xffff_ffff, fd, data, 4096)!.addFlags(IOSQE_IO_LINK));
  const got = new Uint8Array(data.length + 8); // asks for more than the file holds: a short read
  assert.ok(ring.queueRead(2 ** 40 + 7, fd, got, 4096));
  for (const ud of [0, 1, 2 ** 32, 2 ** 53 - 1]) assert.ok(ring.queueNop(ud));
  assert.equal(ring.submitAndWait(6), 6);
  const results = new Map<number, [number, number]>();
  let n = 0;
  const deadline = performance.now() + 5000;
  while (n < 6) {
    n += ring.forEachCompletion((ud, res, flags) => {
      assert.ok(!results.has(ud), `user_data ${ud} twice`);
      results.set(ud, [res, flags]);
    });
    if (n < 6) {
      assert.ok(performance.now() < deadline, `only ${n} of 6 completions`);
      ring.submitAndWait(1);
    }
  }
  assert.equal(ring.cqReady(), 0, "forEachCompletion advanced the CQ head");
  assert.deepEqual(results.get(0xffff_ffff), [data.length, 0], "write");
  assert.deepEqual(results.get(2 ** 40 + 7), [data.length, 0], "read");
  for (const ud of [0, 1, 2 ** 32, 2 ** 53 - 1]) assert.deepEqual(results.get(ud), [0, 0], `nop ${ud}`);
  assert.deepEqual(got.subarray(0, data.length), data);
  assert.deepEqual(Deno.readFileSync(path).subarray(4096), data);

  // A bigint user_data comes back whole through forEachCqe.
  assert.ok(ring.queueNop(2n ** 64n - 2n));
  ring.submitAndWait(1);
  const wide: bigint[] = [];
  assert.equal(ring.forEachCqe((c) => wide.push(c.userData)), 1);
  assert.deepEqual(wide, [2n ** 64n - 2n]);
  closeFd(ring, fd);
});

ringTest(
  "forEachCompletion: nothing ready returns 0; a throwing callback keeps what it consumed",
  (config) => {
    using ring = new IoUring(4, config.options);
    assert.equal(ring.forEachCompletion(() => assert.fail("no completion is ready")), 0);
    for (let i = 0; i < 3; i++) ring.queueNop(10 + i);
    ring.submitAndWait(3);
    while (ring.cqReady() < 3) ring.submitAndWait(3);
    const seen: number[] = [];
    assert.throws(
      () =>
        ring.forEachCompletion((ud) => {
          seen.push(ud);
          if (seen.length === 2) throw new Error("stop");
        }),
      /stop/,
    );
    assert.equal(ring.cqReady(), 1, "the two completions handed out stay consumed");
    assert.equal(ring.forEachCompletion((ud) => seen.push(ud)), 1);
    assert.deepEqual(seen.sort(), [10, 11, 12]);
  },
);

Deno.test({
  name: "the raw hot paths allocate nothing per operation (young-generation collections over 1M calls)",
  ignore: skipKernel(),
  async fn() {
    // The buffer address (a double above the small-integer range) travelled between functions as a
    // number: a 16-byte heap number per queueRead/prepRead; waitCqe() made a `{}` per call.
    // Counted as scavenges of a 1 MiB young generation, against the queueNop loop.
    const N = 1_000_000;
    const code = (kind: string) =>
      `import { IoUring, prepRead, prepWrite } from ${JSON.stringify(MOD_URL)};
      import { openSync } from "node:fs";
      const ring = new IoUring(64, { sqpoll: false });
      const zero = openSync("/dev/zero", "r"), sink = openSync("/dev/null", "w");
      const buf = new Uint8Array(4096);
      const position = -1n; // (made once: \`-1n\` in the loop would make a BigInt each time)
      for (let i = 0; i < ${N}; i++) {
        if ("${kind}" === "queueNop") ring.queueNop(i & 0xffff);
        else if ("${kind}" === "queueRead") ring.queueRead(i & 0xffff, zero, buf, 0);
        else if ("${kind}" === "queueWrite") ring.queueWrite(i & 0xffff, sink, buf, 0);
        else if ("${kind}" === "prepRead") prepRead(ring.getSqe(), zero, buf, 0).setUserData(i & 0xffff);
        else if ("${kind}" === "prepWrite") prepWrite(ring.getSqe(), sink, buf, 0).setUserData(i & 0xffff);
        // -1n, the file's position: all ones, written without bigint arithmetic.
        else if ("${kind}" === "queueRead -1n") ring.queueRead(i & 0xffff, zero, buf, position);
        else if ("${kind}" === "prepRead -1n") prepRead(ring.getSqe(), zero, buf, position).setUserData(i & 0xffff);
        else { ring.queueNop(1); ring.submit(); ring.waitCqe(); ring.cqAdvance(1); continue; } // waitCqe
        if ((i & 63) === 63) {
          ring.submitAndWait(64);
          ring.cqAdvance(ring.cqReady());
        }
      }`;
    const scavenges = async (kind: string) => {
      const out = await runDeno(code(kind), [
        "--allow-all",
        "--v8-flags=--trace-gc,--semi-space-growth-factor=1,--max-semi-space-size=1,--min-semi-space-size=1",
      ]);
      assert.equal(out.code, 0, out.stderr);
      return out.stdout.split("\n").filter((line) => line.includes("Scavenge")).length;
    };
    const base = await scavenges("queueNop");
    for (
      const kind of [
        "queueRead",
        "queueWrite",
        "prepRead",
        "prepWrite",
        "queueRead -1n",
        "prepRead -1n",
        "waitCqe",
      ]
    ) {
      // 16 bytes a call would be ~15 more collections; allow a few for the warm-up.
      assert.ok((await scavenges(kind)) <= base + 3, `${kind}: more collections than queueNop's ${base}`);
    }
  },
});

/**
 * Kernel-free tests of the waiting-opcode preps (futex wait/wake/waitv, waitid, epoll_ctl and
 * epoll_wait) and their structs: every field each writes, byte for byte, over a fresh and a dirty
 * SQE, against layouts written out here from the kernel's headers with literal numbers
 * (include/uapi/linux/io_uring.h in tests/_sqe_image.ts; futex.h, siginfo.h, eventpoll.h here),
 * not from src/abi.ts; and every argument they refuse, refused before anything is written.
 */

import assert from "node:assert/strict";
import {
  EpollEvents,
  FutexWaitv,
  prepEpollCtl,
  prepEpollWait,
  prepFutexWait,
  prepFutexWaitv,
  prepFutexWake,
  prepWaitid,
  Siginfo,
  type Sqe,
} from "../mod.ts";
import {
  assertSqe,
  dirtySqe,
  type Expect,
  freshSqe,
  hex,
  ptr,
  STALE_FLAGS_AFTER_PREP,
} from "./_sqe_image.ts";

/** Opcode numbers from `enum io_uring_op`. */
const OP = { EPOLL_CTL: 29, WAITID: 50, FUTEX_WAIT: 51, FUTEX_WAKE: 52, FUTEX_WAITV: 53, EPOLL_WAIT: 59 };
// include/uapi/linux/futex.h: FUTEX2_SIZE_U32 0x02, FUTEX2_NUMA 0x04, FUTEX2_MPOL 0x08,
// FUTEX2_PRIVATE 128 (FUTEX_PRIVATE_FLAG), FUTEX_BITSET_MATCH_ANY 0xffffffff.
const U32 = 0x02, NUMA = 0x04, MPOL = 0x08, PRIVATE = 128, ANY = 0xffffffff;
// include/uapi/linux/wait.h
const P_ALL = 0, P_PID = 1, P_PGID = 2, P_PIDFD = 3;
const WNOHANG = 1, WSTOPPED = 2, WEXITED = 4, WCONTINUED = 8, WNOWAIT = 0x01000000, WALL = 0x40000000;
// include/uapi/linux/eventpoll.h
const CTL_ADD = 1, CTL_DEL = 2, CTL_MOD = 3, EPOLLIN = 1, EPOLLET = 0x80000000;

/** A dirty SQE's fields no prep writes: flags, ioprio, user_data and personality stay all ones. */
const KEPT: Partial<Expect> = {
  flags: STALE_FLAGS_AFTER_PREP,
  ioprio: 0xffff,
  userData: 0xffff_ffff_ffff_ffffn,
  personality: 0xffff,
};

/** Runs `prep` over a fresh and a dirty SQE; each must equal the image of `f` (+ `KEPT` when dirty). */
function assertImage(prep: (sqe: Sqe) => Sqe, f: Expect): void {
  const fresh = freshSqe();
  assert.equal(prep(fresh), fresh, "the prep returns its SQE");
  assertSqe(fresh, f);
  const dirty = dirtySqe();
  prep(dirty);
  assertSqe(dirty, { ...f, ...KEPT });
}

/** Asserts `prep` throws `type` (matching `message`, if given) and leaves a dirty SQE as it was. */
/** The class a refused number argument throws: a `TypeError` for what is not a number at all. */
const refusedAs = (v: unknown) => typeof v === "number" ? RangeError : TypeError;

function assertRefused(
  prep: (sqe: Sqe) => unknown,
  type: typeof TypeError | typeof RangeError,
  message?: RegExp,
) {
  const sqe = dirtySqe();
  const before = hex(sqe.bytes());
  assert.throws(() => prep(sqe), (e: unknown) => {
    assert.ok(e instanceof type, `${e} should be a ${type.name}`);
    if (message) assert.match((e as Error).message, message);
    return true;
  });
  assert.equal(hex(sqe.bytes()), before, "a refused prep wrote to the SQE");
}

/** A view of 4 (or `size`) bytes of a fresh buffer whose address is `rest` modulo `modulus`. */
function wordAt(modulus: number, rest: number, size = 4): Uint8Array {
  const whole = new Uint8Array(new ArrayBuffer(64)); // off the V8 heap: its address stays
  const base = Number(ptr(whole));
  const offset = (((rest - base) % modulus) + modulus) % modulus;
  return whole.subarray(offset, offset + size);
}

// --- futex -------------------------------------------------------------------------------------

Deno.test("prepFutexWait: word in addr, value in addr2 (off), mask in addr3, futex2 flags in fd", () => {
  const words = new Uint32Array(4);
  const word = words.subarray(2, 3);
  assertImage((s) => prepFutexWait(s, word, 0x89ab_cdef, ANY, U32 | PRIVATE), {
    opcode: OP.FUTEX_WAIT,
    fd: U32 | PRIVATE,
    addr: ptr(word),
    off: 0x89ab_cdefn,
    addr3: 0xffff_ffffn,
  });
  // A negative value (as an Int32Array holds the word) is its 32 bits; bigints as numbers.
  const signed = new Int32Array(1);
  assertImage((s) => prepFutexWait(s, signed, -1, 0b101n, U32), {
    opcode: OP.FUTEX_WAIT,
    fd: U32,
    addr: ptr(signed),
    off: 0xffff_ffffn,
    addr3: 5n,
  });
  assertImage((s) => prepFutexWait(s, signed, 7n, -1, U32 | MPOL), {
    opcode: OP.FUTEX_WAIT,
    fd: U32 | MPOL,
    addr: ptr(signed),
    off: 7n,
    addr3: 0xffff_ffffn,
  });
  // FUTEX2_NUMA: 8 bytes (word, node), 8-byte aligned.
  const pair = wordAt(8, 0, 8);
  assertImage((s) => prepFutexWait(s, pair, 1, ANY, U32 | NUMA | PRIVATE), {
    opcode: OP.FUTEX_WAIT,
    fd: U32 | NUMA | PRIVATE,
    addr: ptr(pair),
    off: 1n,
    addr3: 0xffff_ffffn,
  });
  // Any view works: a DataView over the word.
  const dv = new DataView(words.buffer, 12, 4);
  assertImage((s) => prepFutexWait(s, dv, 0, ANY, U32), {
    opcode: OP.FUTEX_WAIT,
    fd: U32,
    addr: ptr(words) + 12n,
    addr3: 0xffff_ffffn,
  });
});

Deno.test("prepFutexWake: the count in addr2 (off), the rest as prepFutexWait", () => {
  const word = new Uint32Array(1);
  assertImage((s) => prepFutexWake(s, word, 1, ANY, U32 | PRIVATE), {
    opcode: OP.FUTEX_WAKE,
    fd: U32 | PRIVATE,
    addr: ptr(word),
    off: 1n,
    addr3: 0xffff_ffffn,
  });
  assertImage((s) => prepFutexWake(s, word, 0x7fff_ffff, 0x10, U32), {
    opcode: OP.FUTEX_WAKE,
    fd: U32,
    addr: ptr(word),
    off: 0x7fff_ffffn,
    addr3: 0x10n,
  });
  assertImage((s) => prepFutexWake(s, word, 0, ANY, U32), {
    opcode: OP.FUTEX_WAKE,
    fd: U32,
    addr: ptr(word),
    addr3: 0xffff_ffffn,
  });
});

Deno.test("prepFutexWait / prepFutexWake refuse bad words, values, masks, flags and counts before writing", () => {
  const word = new Uint32Array(2);
  const wait =
    (futex: unknown, value: unknown, mask: unknown, flags: unknown, reserved: unknown = 0) => (s: Sqe) =>
      prepFutexWait(
        s,
        futex as ArrayBufferView,
        value as number,
        mask as number,
        flags as number,
        reserved as number,
      );
  // The word: a view of at least 4 bytes (8 with NUMA), aligned to that size, not detached.
  assertRefused(wait(null, 0, ANY, U32), TypeError, /futex must be a typed array/);
  assertRefused(wait(word.buffer, 0, ANY, U32), TypeError, /futex must be a typed array/);
  assertRefused(wait([0], 0, ANY, U32), TypeError);
  assertRefused(wait(new Uint8Array(3), 0, ANY, U32), RangeError, /4-byte futex word, got 3/);
  assertRefused(wait(wordAt(4, 2), 0, ANY, U32), RangeError, /4-byte aligned/);
  assertRefused(wait(wordAt(4, 1), 0, ANY, U32), RangeError, /4-byte aligned/);
  assertRefused(wait(new Uint32Array(1), 0, ANY, U32 | NUMA), RangeError, /8 bytes with FUTEX2_NUMA/);
  assertRefused(wait(wordAt(8, 4, 8), 0, ANY, U32 | NUMA), RangeError, /8-byte aligned/);
  const gone = new Uint32Array(new ArrayBuffer(8));
  gone.buffer.transfer();
  assertRefused(wait(gone, 0, ANY, U32), TypeError, /detached/);
  // The value: 32 bits.
  for (const value of [2 ** 32, -(2 ** 31) - 1, 1.5, NaN, 2n ** 32n, -1n, "1", null, undefined]) {
    assertRefused(wait(word, value, ANY, U32), RangeError, /value must fit the 32-bit futex word/);
  }
  // The mask: 32 bits, not 0.
  for (const mask of [0, 0n]) assertRefused(wait(word, 0, mask, U32), RangeError, /mask must not be 0/);
  for (const mask of [2 ** 32, 2n ** 32n, 0.5, "1"]) {
    assertRefused(wait(word, 0, mask, U32), RangeError, /mask must fit/);
  }
  // futex2 flags: size U32, then only PRIVATE, NUMA and MPOL.
  for (const flags of [0, PRIVATE, 1 | PRIVATE, 3]) {
    assertRefused(wait(word, 0, ANY, flags), RangeError, /FUTEX2_SIZE_U32/);
  }
  for (const flags of [U32 | 0x10, U32 | 0x100, (U32 | 0x8000_0000) >>> 0]) {
    assertRefused(wait(word, 0, ANY, flags), RangeError, /bits other than/);
  }
  for (const flags of [-1, U32 | 0x8000_0000, 1.5, 2 ** 32, "2"]) {
    assertRefused(wait(word, 0, ANY, flags), refusedAs(flags));
  }
  // The SQE's futex_flags: reserved.
  for (const reserved of [1, -1, 0x8000_0000, "0", null]) {
    assertRefused(wait(word, 0, ANY, U32, reserved), RangeError, /flags must be 0/);
  }
  // The wake's count: the kernel's int.
  const wake = (count: unknown) => (s: Sqe) => prepFutexWake(s, word, count as number, ANY, U32);
  for (const count of [-1, 2 ** 31, 2 ** 32, 1.5, 1n, "1"]) {
    assertRefused(wake(count), refusedAs(count), /count/);
  }
  assertRefused((s) => prepFutexWake(s, word, 1, 0, U32), RangeError, /mask must not be 0/);
  // Not an SQE.
  assert.throws(() => prepFutexWait(null as unknown as Sqe, word, 0, ANY, U32), TypeError);
});

Deno.test("FutexWaitv: struct futex_waitv is 24 bytes: val u64 at 0, uaddr u64 at 8, flags u32 at 16, __reserved", () => {
  const a = new Uint32Array(1), b = new Int32Array(3).subarray(2);
  const waitv = new FutexWaitv(2).set(0, a, 0xffff_fffe, U32 | PRIVATE).set(1, b, -1, U32);
  assert.equal(waitv.length, 2);
  assert.equal(waitv.bytes.byteLength, 48);
  const v = new DataView(waitv.bytes.buffer);
  assert.deepEqual(
    [v.getBigUint64(0, true), v.getBigUint64(8, true), v.getUint32(16, true), v.getUint32(20, true)],
    [0xffff_fffen, ptr(a), U32 | PRIVATE, 0],
  );
  assert.deepEqual(
    [v.getBigUint64(24, true), v.getBigUint64(32, true), v.getUint32(40, true), v.getUint32(44, true)],
    [0xffff_ffffn, ptr(b), U32, 0],
  );
  assert.equal(waitv.futex(1), b);
  // Set again: the entry is replaced whole.
  waitv.set(1, a, 3n, U32 | PRIVATE);
  assert.deepEqual(
    [v.getBigUint64(24, true), v.getBigUint64(32, true), v.getUint32(40, true)],
    [3n, ptr(a), U32 | PRIVATE],
  );

  assertImage((s) => prepFutexWaitv(s, waitv), { opcode: OP.FUTEX_WAITV, addr: ptr(waitv.bytes), len: 2 });
  assertImage((s) => prepFutexWaitv(s, waitv, 1), { opcode: OP.FUTEX_WAITV, addr: ptr(waitv.bytes), len: 1 });
});

Deno.test("FutexWaitv and prepFutexWaitv refuse bad sizes, entries, and futexes gone since", () => {
  for (const n of [0, 129, -1, 1.5, "2"]) assert.throws(() => new FutexWaitv(n as number), refusedAs(n));
  assert.equal(new FutexWaitv(128).bytes.byteLength, 128 * 24);
  const waitv = new FutexWaitv(2);
  const word = new Uint32Array(1);
  assert.throws(() => waitv.set(2, word, 0, U32), RangeError);
  assert.throws(() => waitv.set(0, new Uint8Array(2), 0, U32), RangeError);
  assert.throws(() => waitv.set(0, wordAt(4, 2), 0, U32), /4-byte aligned/);
  assert.throws(() => waitv.set(0, word, 2 ** 32, U32), /value/);
  assert.throws(() => waitv.set(0, word, 0, PRIVATE), /FUTEX2_SIZE_U32/);
  assert.ok(waitv.bytes.every((x) => x === 0), "a refused set wrote to the array");
  waitv.set(0, word, 0, U32);
  // Entry 1 not set: the whole array is refused, the first entry alone is fine.
  assertRefused((s) => prepFutexWaitv(s, waitv), TypeError, /entry 1 is not set/);
  prepFutexWaitv(freshSqe(), waitv, 1);
  for (const count of [0, 3, -1, 1.5, "1"]) {
    assertRefused((s) => prepFutexWaitv(s, waitv, count as number), refusedAs(count), /count/);
  }
  assertRefused((s) => prepFutexWaitv(s, waitv, 1, 1), RangeError, /flags must be 0/);
  assertRefused((s) => prepFutexWaitv(s, { length: 1 } as unknown as FutexWaitv), TypeError, /FutexWaitv/);
  // The memory of entry 0 transferred away: refused (the address recorded is no longer its memory).
  const moving = new Uint32Array(new ArrayBuffer(4));
  waitv.set(1, moving, 0, U32);
  prepFutexWaitv(freshSqe(), waitv);
  moving.buffer.transfer();
  assertRefused((s) => prepFutexWaitv(s, waitv), TypeError, /entry 1: its futex buffer was detached/);
  assert.equal(waitv.unusable(1), -1);
  assert.equal(waitv.unusable(), 1);
});

// --- waitid ------------------------------------------------------------------------------------

Deno.test("prepWaitid: id in fd, idtype in len, infop in addr2 (off), options in file_index", () => {
  const info = new Siginfo();
  assertImage((s) => prepWaitid(s, P_PID, 4321, info, WEXITED), {
    opcode: OP.WAITID,
    fd: 4321,
    len: P_PID,
    off: ptr(info.bytes),
    spliceFdIn: WEXITED,
  });
  assertImage(
    (s) => prepWaitid(s, P_ALL, 0, null, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT | WALL),
    {
      opcode: OP.WAITID,
      len: P_ALL,
      spliceFdIn: WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT | WALL,
    },
  );
  const raw = new Uint8Array(200).subarray(8, 136);
  assertImage((s) => prepWaitid(s, P_PGID, 0, raw, WSTOPPED), {
    opcode: OP.WAITID,
    len: P_PGID,
    off: ptr(raw),
    spliceFdIn: WSTOPPED,
  });
  assertImage((s) => prepWaitid(s, P_PIDFD, 7, null, WEXITED), {
    opcode: OP.WAITID,
    fd: 7,
    len: P_PIDFD,
    spliceFdIn: WEXITED,
  });
});

Deno.test("prepWaitid refuses bad idtypes, ids, options, infop and flags before writing", () => {
  const w =
    (idtype: unknown, id: unknown, infop: unknown, options: unknown, flags: unknown = 0) => (s: Sqe) =>
      prepWaitid(s, idtype as number, id as number, infop as Siginfo, options as number, flags as number);
  for (const idtype of [4, -1, 1.5, "1"]) {
    assertRefused(w(idtype, 1, null, WEXITED), refusedAs(idtype), /idtype/);
  }
  assertRefused(w(P_ALL, 5, null, WEXITED), RangeError, /id must be 0 with P_ALL/);
  assertRefused(w(P_PID, 0, null, WEXITED), RangeError, /pid \(> 0\)/);
  for (const id of [-1, 2 ** 31, 1.5, "1"]) assertRefused(w(P_PID, id, null, WEXITED), refusedAs(id), /id/);
  assertRefused(w(P_PIDFD, -1, null, WEXITED), RangeError, /id must not be negative/);
  assertRefused(w(P_PID, 1, null, 0), RangeError, /WEXITED, WSTOPPED or WCONTINUED/);
  assertRefused(w(P_PID, 1, null, WNOHANG), RangeError, /WEXITED, WSTOPPED or WCONTINUED/);
  assertRefused(w(P_PID, 1, null, WEXITED | 0x10), RangeError, /bits waitid does not know: 0x10/);
  assertRefused(w(P_PID, 1, null, -1), RangeError);
  assertRefused(w(P_PID, 1, new Uint8Array(127), WEXITED), RangeError, /128-byte siginfo_t, got 127/);
  assertRefused(w(P_PID, 1, {}, WEXITED), TypeError, /infop/);
  assertRefused(w(P_PID, 1, null, WEXITED, 1), RangeError, /flags must be 0/);
});

Deno.test("Siginfo reads si_signo 0, si_errno 4, si_code 8, si_pid 16, si_uid 20, si_status 24 (64-bit siginfo_t)", () => {
  const info = new Siginfo();
  assert.equal(info.bytes.byteLength, 128);
  const v = new DataView(info.bytes.buffer);
  v.setInt32(0, 17, true);
  v.setInt32(4, 0, true);
  v.setInt32(8, 1, true);
  v.setInt32(12, -1, true); // padding before the union: not a field
  v.setInt32(16, 4242, true);
  v.setUint32(20, 0xffff_fffe, true);
  v.setInt32(24, 7, true);
  assert.deepEqual(
    [info.signo, info.errno, info.code, info.pid, info.uid, info.status],
    [17, 0, 1, 4242, 0xffff_fffe, 7],
  );
  assert.equal(info.clear(), info);
  assert.ok(info.bytes.every((b) => b === 0));
});

// --- epoll -------------------------------------------------------------------------------------

Deno.test("EpollEvents: struct epoll_event is packed on x86-64 (12 bytes, data at 4), 16 bytes elsewhere", () => {
  const x86 = Deno.build.arch === "x86_64";
  const size = x86 ? 12 : 16, data = x86 ? 4 : 8; // EPOLL_PACKED is __x86_64__ only
  const ev = new EpollEvents(3).set(1, EPOLLIN | EPOLLET, 0x0102_0304_0506_0708n).set(2, 4, 2 ** 53 - 1);
  assert.equal(ev.length, 3);
  assert.equal(ev.bytes.byteLength, 3 * size);
  const v = new DataView(ev.bytes.buffer);
  assert.equal(v.getUint32(size, true), 0x8000_0001);
  assert.equal(v.getBigUint64(size + data, true), 0x0102_0304_0506_0708n);
  assert.equal(v.getUint32(2 * size, true), 4);
  assert.equal(v.getBigUint64(2 * size + data, true), 2n ** 53n - 1n);
  assert.ok(ev.bytes.subarray(0, size).every((b) => b === 0), "entry 0 untouched");
  assert.deepEqual([ev.events(1), ev.data(1), ev.dataNumber(2)], [
    0x8000_0001,
    0x0102_0304_0506_0708n,
    2 ** 53 - 1,
  ]);
  assert.equal(ev.dataNumber(1), 0x0102_0304_0506_0708 /* rounded: exact only below 2^53 */);
  ev.set(1, 0x8000_0000, 0xffff_ffff_ffff_ffffn);
  assert.deepEqual([ev.events(1), ev.data(1)], [0x8000_0000, 0xffff_ffff_ffff_ffffn]);
  for (const bad of [0, -1, 1.5, "1"]) assert.throws(() => new EpollEvents(bad as number), refusedAs(bad));
  assert.throws(() => ev.set(3, EPOLLIN, 0), RangeError);
  assert.throws(() => ev.set(0, 2 ** 32, 0), RangeError);
  for (const d of [-1, 2 ** 53, 1.5, -1n, 2n ** 64n, "1"]) {
    assert.throws(() => ev.set(0, EPOLLIN, d as number), /data must be/);
  }
  assert.ok(ev.bytes.subarray(0, size).every((b) => b === 0), "a refused set wrote to entry 0");
  assert.throws(() => ev.events(3), RangeError);
  assert.throws(() => ev.data(-1), RangeError);
});

Deno.test("prepEpollCtl: epfd in fd, the event in addr, op in len, the fd in off", () => {
  const ev = new EpollEvents().set(0, EPOLLIN, 9);
  assertImage((s) => prepEpollCtl(s, 5, CTL_ADD, 6, ev), {
    opcode: OP.EPOLL_CTL,
    fd: 5,
    addr: ptr(ev.bytes),
    len: CTL_ADD,
    off: 6n,
  });
  assertImage((s) => prepEpollCtl(s, 5, CTL_MOD, 0x7fff_ffff, ev), {
    opcode: OP.EPOLL_CTL,
    fd: 5,
    addr: ptr(ev.bytes),
    len: CTL_MOD,
    off: 0x7fff_ffffn,
  });
  assertImage((s) => prepEpollCtl(s, 5, CTL_DEL, 6, null), {
    opcode: OP.EPOLL_CTL,
    fd: 5,
    len: CTL_DEL,
    off: 6n,
  });
  const ctl = (epfd: unknown, op: unknown, fd: unknown, event: unknown) => (s: Sqe) =>
    prepEpollCtl(s, epfd as number, op as number, fd as number, event as EpollEvents);
  for (const op of [0, 4, -1, "1"]) assertRefused(ctl(5, op, 6, ev), refusedAs(op), /op/);
  assertRefused(ctl(-1, CTL_ADD, 6, ev), RangeError, /epfd/);
  assertRefused(ctl(5, CTL_ADD, -1, ev), RangeError, /fd/);
  assertRefused(ctl(5, CTL_ADD, 6, null), TypeError, /event is needed/);
  assertRefused(ctl(5, CTL_MOD, 6, null), TypeError, /event is needed/);
  assertRefused(ctl(5, CTL_ADD, 6, new Uint8Array(12)), TypeError, /EpollEvents/);
});

Deno.test("prepEpollWait: epfd in fd, the events in addr, maxEvents in len", () => {
  const ev = new EpollEvents(8);
  assertImage((s) => prepEpollWait(s, 5, ev), { opcode: OP.EPOLL_WAIT, fd: 5, addr: ptr(ev.bytes), len: 8 });
  assertImage((s) => prepEpollWait(s, 5, ev, 3), {
    opcode: OP.EPOLL_WAIT,
    fd: 5,
    addr: ptr(ev.bytes),
    len: 3,
  });
  for (const n of [0, 9, -1, 1.5, "1"]) {
    assertRefused((s) => prepEpollWait(s, 5, ev, n as number), refusedAs(n), /maxEvents/);
  }
  assertRefused((s) => prepEpollWait(s, 5, ev, 8, 1), RangeError, /flags must be 0/);
  assertRefused((s) => prepEpollWait(s, -1, ev), RangeError, /epfd/);
  assertRefused(
    (s) => prepEpollWait(s, 5, new Uint8Array(12) as unknown as EpollEvents),
    TypeError,
    /EpollEvents/,
  );
});

Deno.test("a wait prep over another prep's SQE leaves nothing of it behind", () => {
  const word = new Uint32Array(1);
  const info = new Siginfo();
  const ev = new EpollEvents();
  const waitv = new FutexWaitv(1).set(0, word, 0, U32);
  const preps: Array<[string, (s: Sqe) => unknown]> = [
    ["futexWait", (s) => prepFutexWait(s, word, 1, ANY, U32)],
    ["futexWake", (s) => prepFutexWake(s, word, 1, ANY, U32)],
    ["futexWaitv", (s) => prepFutexWaitv(s, waitv)],
    ["waitid", (s) => prepWaitid(s, P_PID, 3, info, WEXITED)],
    ["epollCtl", (s) => prepEpollCtl(s, 3, CTL_ADD, 4, ev)],
    ["epollWait", (s) => prepEpollWait(s, 3, ev)],
  ];
  for (const [name, prep] of preps) {
    const clean = freshSqe();
    prep(clean);
    for (const [other, before] of preps) {
      const reused = freshSqe();
      before(reused);
      prep(reused);
      assert.equal(hex(reused.bytes()), hex(clean.bytes()), `${name} over ${other}: a stale field survived`);
    }
  }
});

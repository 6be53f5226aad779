/**
 * Bad input gets a clear error before the kernel sees it, a closed ring refuses every call with
 * ClosedError, and system call failures are IoUringError with the call, errno name, number and
 * a hint. The prep checks run without a kernel (an Sqe over plain memory).
 */

import assert from "node:assert/strict";
import {
  alignedBuffer,
  AT_FDCWD,
  ClosedError,
  type Cqe,
  cstring,
  directAlignment,
  FixedBufferPool,
  getSys,
  iopollError,
  IORING_OP_READ,
  IORING_OP_READV,
  IORING_SETUP_CLAMP,
  IORING_SETUP_COOP_TASKRUN,
  IORING_SETUP_CQE_MIXED,
  IORING_SETUP_DEFER_TASKRUN,
  IORING_SETUP_HYBRID_IOPOLL,
  IORING_SETUP_NO_MMAP,
  IORING_SETUP_SINGLE_ISSUER,
  IORING_SETUP_TASKRUN_FLAG,
  IoUring,
  IoUringError,
  type IoUringOptions,
  Iovecs,
  MAX_ENTRIES,
  openHow,
  prepCancel,
  prepClose,
  prepFallocate,
  prepNop,
  prepOpenat,
  prepOpenat2,
  prepPollRemove,
  prepRead,
  prepReadFixed,
  prepReadv,
  prepRw,
  prepSplice,
  prepStatx,
  prepTimeoutRemove,
  prepUnlinkat,
  prepWrite,
  prepWriteFixed,
  prepWritev,
  Sqe,
  statxBuffer,
  Timespec,
} from "../mod.ts";
import { freeDescriptors } from "../src/copy_context.ts";
import { RESERVED_DESCRIPTORS } from "../src/copy_engine.ts";
import { errno } from "../src/errno.ts";
import { RENAME_NOREPLACE } from "../src/abi.ts";
import { CONFIGS, skipKernel, straceWorks, tempDir } from "./_support.ts";
import { eventfd, sysClose } from "./_io.ts";
import { runDeno } from "./uring_support.ts";

function plainSqe(): Sqe {
  const mem = new ArrayBuffer(64);
  return new Sqe(new Uint32Array(mem), new Uint8Array(mem), 0);
}

/** Detaches `buf`'s memory, as a transfer to a worker would. */
function detached(): Uint8Array {
  const buf = new Uint8Array(16);
  structuredClone(buf.buffer, { transfer: [buf.buffer] });
  assert.equal(buf.byteLength, 0);
  return buf;
}

/** Asserts `fn` throws an error of class `type` whose message matches `pattern`. */
function rejects(fn: () => unknown, type: new (...a: never[]) => Error, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.match((e as Error).message, pattern);
    return true;
  });
}

/** The SQE stays untouched (all zero) when a prep helper rejects its arguments. */
function untouched(sqe: Sqe): void {
  assert.ok(sqe.bytes().every((b) => b === 0), "a rejected prep wrote into the SQE");
}

// --- Prep arguments (no kernel) ----------------------------------------------------------------

Deno.test("prepReadv/prepWritev refuse an Iovecs whose buffer was detached or shrunk after it was built", () => {
  const sqe = plainSqe();
  const moved = new Uint8Array(16);
  const iovecs = new Iovecs([new Uint8Array(8), moved]);
  moved.buffer.transfer(); // the memory moves to a new ArrayBuffer: the recorded address is stale
  rejects(() => prepReadv(sqe, 3, iovecs, 0), TypeError, /prepReadv: iovecs buffer 1 was detached or shrunk/);
  rejects(
    () => prepWritev(sqe, 3, iovecs, 0),
    TypeError,
    /prepWritev: iovecs buffer 1 was detached or shrunk/,
  );
  const resizable = new ArrayBuffer(32, { maxByteLength: 64 });
  const tracking = new Iovecs([new Uint8Array(resizable)]);
  resizable.resize(16);
  rejects(() => prepReadv(sqe, 3, tracking, 0), TypeError, /iovecs buffer 0 was detached or shrunk/);
  untouched(sqe);
  resizable.resize(64); // grown past the recorded 32 bytes: those stay valid, the kernel uses them
  prepReadv(sqe, 3, tracking, 0);
  assert.equal(sqe.opcode, IORING_OP_READV);
});

Deno.test("detached buffers are refused", () => {
  const sqe = plainSqe();
  rejects(() => prepRead(sqe, 3, detached(), 0), TypeError, /detached/);
  rejects(() => prepWrite(sqe, 3, detached(), 0), TypeError, /detached/);
  rejects(() => prepReadFixed(sqe, 3, detached(), 0, 0), TypeError, /detached/);
  rejects(() => prepWriteFixed(sqe, 3, detached(), 0, 0), TypeError, /detached/);
  rejects(() => new Iovecs([new Uint8Array(4), detached()]), TypeError, /detached/);
  rejects(() => prepStatx(sqe, AT_FDCWD, cstring("x"), 0, 0, detached()), TypeError, /detached/);
  untouched(sqe);
});

Deno.test("a buffer that is not a typed array or DataView is refused", () => {
  const sqe = plainSqe();
  const notABuffer = [1, 2, 3] as unknown as Uint8Array;
  rejects(() => prepRead(sqe, 3, notABuffer, 0), TypeError, /typed array/);
  rejects(() => prepWrite(sqe, 3, new ArrayBuffer(8) as unknown as Uint8Array, 0), TypeError, /typed array/);
  rejects(() => new Iovecs([]), TypeError, /non-empty/);
  rejects(() => new Iovecs(Array.from({ length: 1025 }, () => new Uint8Array(1))), RangeError, /1024/);
  untouched(sqe);
});

Deno.test("statx buffer too small; open_how of the wrong size", () => {
  const sqe = plainSqe();
  rejects(
    () => prepStatx(sqe, AT_FDCWD, cstring("x"), 0, 0x7ff, new Uint8Array(255)),
    RangeError,
    /too small/,
  );
  rejects(() => prepOpenat2(sqe, AT_FDCWD, cstring("x"), new Uint8Array(16)), RangeError, /24 bytes/);
  untouched(sqe);
  prepStatx(sqe, AT_FDCWD, cstring("x"), 0, 0x7ff, statxBuffer());
  prepOpenat2(sqe, AT_FDCWD, cstring("x"), openHow({ flags: 0 }));
});

Deno.test("negative, non-integer, unsafe or non-number offsets are refused", () => {
  const sqe = plainSqe();
  const buf = new Uint8Array(8);
  rejects(
    () => prepRead(sqe, 3, buf, -2),
    RangeError,
    /must be -1 \(the fd's position\) or a file offset from 0, got -2$/,
  );
  rejects(
    () => prepRead(sqe, 3, buf, -2n),
    RangeError,
    /must be -1 \(the fd's position\) or a file offset from 0, got -2$/,
  );
  // (A number that is no file offset is a RangeError; what is no number at all a TypeError.)
  rejects(() => prepWrite(sqe, 3, buf, -1.5), RangeError, /safe integer/);
  rejects(() => prepRead(sqe, 3, buf, 1.5), RangeError, /safe integer/);
  rejects(() => prepRead(sqe, 3, buf, NaN), RangeError, /safe integer/);
  rejects(() => prepRead(sqe, 3, buf, Infinity), RangeError, /safe integer/);
  rejects(() => prepRead(sqe, 3, buf, 2 ** 53), RangeError, /safe integer/);
  rejects(() => prepWrite(sqe, 3, buf, 2n ** 63n), RangeError, /out of range/);
  rejects(() => prepWrite(sqe, 3, buf, "0" as unknown as number), TypeError, /number or a bigint/);
  rejects(
    () => prepReadv(sqe, 3, new Iovecs([buf]), -4096),
    RangeError,
    /or a file offset from 0, got -4096$/,
  );
  rejects(() => prepFallocate(sqe, 3, 0, 0, -1), RangeError, /length/);
  rejects(() => prepSplice(sqe, 3, -2, 4, 0, 10), RangeError, /offIn/);
  untouched(sqe);
  // The edges that are allowed; -1 is the file's position.
  prepRead(sqe, 3, buf, -1);
  prepWrite(sqe, 3, buf, -1n);
  prepRead(sqe, 3, buf, 2 ** 53 - 1);
  prepRead(sqe, 3, buf, 2n ** 63n - 1n);
  prepSplice(sqe, 3, -1, 4, -1, 10);
});

Deno.test("fds that are not non-negative integers are refused", () => {
  const sqe = plainSqe();
  const buf = new Uint8Array(8);
  for (const fd of ["3", null, undefined, 3.5, NaN, {}, 3n] as unknown[]) {
    const type = typeof fd === "number" ? RangeError : TypeError; // (TypeError: no number at all)
    rejects(() => prepRead(sqe, fd as number, buf, 0), type, /integer file descriptor/);
  }
  rejects(() => prepRead(sqe, -1, buf, 0), RangeError, /negative/);
  rejects(() => prepClose(sqe, -5), RangeError, /negative/);
  rejects(() => prepWrite(sqe, 2 ** 31, buf, 0), RangeError, /out of range/);
  rejects(() => prepOpenat(sqe, "." as unknown as number, cstring("x"), 0), TypeError, /dfd/);
  rejects(() => prepSplice(sqe, 3, 0, -3, 0, 1), RangeError, /fdOut/);
  // AT_FDCWD (-100) names the directory paths are resolved in: no file to read, write or close.
  rejects(() => prepRead(sqe, AT_FDCWD, buf, 0), RangeError, /fd must not be negative, got -100 \(AT_FDCWD/);
  rejects(() => prepClose(sqe, AT_FDCWD), RangeError, /AT_FDCWD names a directory for paths only/);
  rejects(() => prepOpenat(sqe, -2, cstring("x"), 0), RangeError, /dfd must not be negative, got -2$/);
  untouched(sqe);
  prepOpenat(sqe, AT_FDCWD, cstring("x"), 0); // where it belongs
});

Deno.test("paths must be NUL-terminated Uint8Arrays", () => {
  const sqe = plainSqe();
  rejects(() => prepOpenat(sqe, AT_FDCWD, new TextEncoder().encode("/tmp/x"), 0), TypeError, /NUL/);
  rejects(() => prepOpenat(sqe, AT_FDCWD, "/tmp/x" as unknown as Uint8Array, 0), TypeError, /NUL-terminated/);
  rejects(() => prepOpenat(sqe, AT_FDCWD, new Uint8Array(0), 0), TypeError, /NUL/);
  rejects(() => prepUnlinkat(sqe, AT_FDCWD, new Uint8Array([0x61])), TypeError, /NUL/);
  rejects(() => cstring("a\0b"), TypeError, /NUL byte/);
  untouched(sqe);
  assert.deepEqual([...cstring("ü/x")], [0xc3, 0xbc, 0x2f, 0x78, 0]);
});

Deno.test("user_data outside [0, 2^64) or not an integer is refused", () => {
  const sqe = plainSqe();
  for (const v of [-1, 1.5, NaN, Infinity, 2 ** 53, -1n, 2n ** 64n, "1", null] as unknown[]) {
    // A TypeError for what is neither a number nor a bigint, a RangeError for the wrong one.
    const type = typeof v === "number" || typeof v === "bigint" ? RangeError : TypeError;
    rejects(() => sqe.setUserData(v as number), type, /user_data/);
    rejects(() => prepCancel(sqe, v as number), type, /user_data/);
    rejects(() => prepTimeoutRemove(sqe, v as number), type, /user_data/);
    rejects(() => prepPollRemove(sqe, v as number), type, /user_data/);
  }
  // The messages say what is wrong with the value, and a string is not shown as a number.
  rejects(
    () => sqe.setUserData(2 ** 53),
    RangeError,
    /at most 2\^53-1 \(Number.MAX_SAFE_INTEGER\), got 9007199254740992: pass a bigint/,
  );
  rejects(() => sqe.setUserData("1" as unknown as number), TypeError, /got "1" \(a string\)$/);
  rejects(() => sqe.setFlags("2" as unknown as number), TypeError, /got "2" \(a string\)$/);
  rejects(() => sqe.setIoprio(3n as unknown as number), TypeError, /got 3n \(a bigint\)$/);
  assert.equal(sqe.userData, 0n);
});

Deno.test("other bounded arguments: bufIndex, timespec", () => {
  const sqe = plainSqe();
  const buf = new Uint8Array(8);
  rejects(() => prepReadFixed(sqe, 3, buf, 0, 65536), RangeError, /bufIndex/);
  rejects(() => prepReadFixed(sqe, 3, buf, 0, -1), RangeError, /bufIndex/);
  rejects(() => new Timespec(-1), RangeError, /timeout/);
  rejects(() => new Timespec(NaN), RangeError, /timeout/);
  untouched(sqe);
  prepNop(sqe);
});

Deno.test("getSys rejects an unknown backend name", () => {
  rejects(() => getSys("uring" as "libc"), TypeError, /^backend must be "helper" or "libc", got "uring"$/);
});

Deno.test({
  name:
    "io_uring_enter's failures come back as -errno from both backends (the helper's is one syscall instruction)",
  ignore: skipKernel(),
  fn() {
    const pipe = new Int32Array(2);
    for (const backend of ["helper", "libc"] as const) {
      const sys = getSys(backend);
      assert.equal(sys.enter(-1, 0, 0, 0), -errno("EBADF"), `${backend}: fd -1`);
      assert.ok(sys.pipe(pipe) >= 0, "pipe");
      try {
        assert.equal(sys.enter(pipe[0], 0, 0, 0), -errno("EOPNOTSUPP"), `${backend}: a pipe is not a ring`);
        // An unknown flag is refused before anything else.
        using ring = new IoUring(4, { sqpoll: false, backend });
        assert.equal(sys.enter(ring.fd, 0, 0, 1 << 30), -errno("EINVAL"), `${backend}: unknown flag`);
        assert.equal(sys.enter(ring.fd, 0, 0, 0), 0, `${backend}: an empty enter`);
      } finally {
        // Through the Sys that made it: the helper lists the pipe for release at thread exit,
        // and a close elsewhere would leave it listed (closed twice, as someone else's fd, then).
        sys.close(pipe[0]);
        sys.close(pipe[1]);
      }
    }
  },
});

Deno.test({
  name:
    "Sys: calls that take a buffer refuse one too small, whatever its own byteLength says (memory past it was written)",
  ignore: skipKernel(),
  fn() {
    using dir = tempDir();
    Deno.symlinkSync("t".repeat(200), `${dir.path}/link`);
    for (const backend of ["helper", "libc"] as const) {
      const sys = getSys(backend);
      const lying = (view: Uint8Array, claims: number) => {
        Object.defineProperty(view, "byteLength", { value: claims });
        return view;
      };
      // readlink wrote 192 bytes past an 8-byte view that claimed 4096; now it fills the 8 it has.
      const backing = new Uint8Array(64);
      assert.equal(
        sys.readlink(cstring(`${dir.path}/link`), lying(backing.subarray(0, 8), 4096)),
        8,
        backend,
      );
      assert.deepEqual([...backing.subarray(8)], new Array(56).fill(0), `${backend}: nothing past the view`);
      const small = lying(new Uint8Array(16), 4096);
      rejects(
        () => sys.realpath(cstring(dir.path), small),
        RangeError,
        /^out must be a Uint8Array of at least 4096 bytes$/,
      );
      rejects(
        () => sys.pipe(new Int32Array(4).subarray(0, 1)),
        RangeError,
        /^fds must be an Int32Array of at least 2 elements$/,
      );
      rejects(
        () => sys.setup(4, lying(new Uint8Array(16), 120)),
        RangeError,
        /^params must be a Uint8Array of at least 120 bytes$/,
      );
      rejects(() => sys.utimens(cstring(dir.path), new Uint8Array(16)), RangeError, /^times must be/);
      rejects(() => sys.statx(cstring(dir.path), 0, 0x7ff, new Uint8Array(255)), RangeError, /^out must be/);
      rejects(
        () => sys.readlink(new TextEncoder().encode("no-nul"), new Uint8Array(8)),
        TypeError,
        /^path must end with a NUL byte/,
      );
    }
  },
});

Deno.test({
  name: "Sys.chmod: fchmodat on this thread, through either backend; -errno on failure, bad modes refused",
  ignore: skipKernel(),
  fn() {
    using dir = tempDir();
    const path = `${dir.path}/f`;
    Deno.writeTextFileSync(path, "x");
    for (const backend of ["helper", "libc"] as const) {
      const sys = getSys(backend);
      for (const mode of [0o600, 0o4755, 0o640]) {
        assert.equal(sys.chmod(cstring(path), mode), 0, backend);
        assert.equal(Deno.statSync(path).mode! & 0o7777, mode, backend);
      }
      assert.equal(sys.chmod(cstring(`${dir.path}/missing`), 0o600), -2, `${backend}: ENOENT`);
      assert.throws(
        () => sys.chmod(cstring(path), 0o10000),
        /^RangeError: mode must be an integer from 0 to 0o7777/,
      );
      assert.throws(
        () => sys.chmod(new TextEncoder().encode("no-nul"), 0o600),
        /path must end with a NUL byte/,
      );
    }
  },
});

Deno.test({
  name: "Sys.rename: renameat2 on this thread, through either backend; RENAME_NOREPLACE; -errno on failure",
  ignore: skipKernel(),
  fn() {
    using dir = tempDir();
    const [a, b] = [`${dir.path}/a`, `${dir.path}/b`];
    for (const backend of ["helper", "libc"] as const) {
      const sys = getSys(backend);
      Deno.writeTextFileSync(a, backend);
      Deno.writeTextFileSync(b, "old");
      assert.equal(sys.rename(cstring(a), cstring(b), RENAME_NOREPLACE), -errno("EEXIST"), backend);
      assert.equal(Deno.readTextFileSync(b), "old", `${backend}: nothing replaced`);
      assert.equal(sys.rename(cstring(a), cstring(b), 0), 0, backend);
      assert.equal(Deno.readTextFileSync(b), backend, backend);
      assert.throws(() => Deno.statSync(a), Deno.errors.NotFound);
      assert.equal(sys.rename(cstring(a), cstring(b), 0), -errno("ENOENT"), `${backend}: ENOENT`);
      assert.equal(sys.rename(cstring(b), cstring(a), RENAME_NOREPLACE), 0, `${backend}: to a free name`);
      assert.equal(Deno.readTextFileSync(a), backend, backend);
      assert.throws(
        () => sys.rename(cstring(a), cstring(b), 2),
        /^RangeError: flags must be 0 or RENAME_NOREPLACE/,
      );
      assert.throws(
        () => sys.rename(new TextEncoder().encode("no-nul"), cstring(b), 0),
        /path must end with a NUL byte/,
      );
      Deno.removeSync(a);
    }
  },
});

// --- Ring arguments --------------------------------------------------------------------------

Deno.test({
  name: "IoUring: each option is read once (a getter cannot pass the checks, then set a layout flag)",
  ignore: skipKernel(),
  fn() {
    // `flags` answered 0 to the checks and IORING_SETUP_CQE32 to the kernel: the ring's 32-byte
    // completions were then read as 16-byte ones (two of four NOPs misread, two never seen).
    let reads = 0;
    const options = {
      sqpoll: false,
      get flags() {
        return reads++ === 0 ? 0 : 0x800; // IORING_SETUP_CQE32
      },
    };
    using ring = new IoUring(4, options);
    assert.equal(reads, 1);
    assert.equal(ring.params.flags & 0x800, 0);
    for (let i = 1; i <= 4; i++) prepNop(ring.getSqe()!).setUserData(100 + i);
    ring.submitAndWait(4);
    const seen: number[] = [];
    ring.forEachCqe((cqe) => seen.push(cqe.userDataLo));
    assert.deepEqual(seen, [101, 102, 103, 104]);
    // The same for a nested option: sqpoll.idleMs checked as 10, then sent as 2^32-1.
    let idleReads = 0;
    const sqpoll = {
      get idleMs() {
        return idleReads++ === 0 ? 10 : 0xffffffff;
      },
    };
    using polled = new IoUring(4, { sqpoll });
    assert.equal(idleReads, 1);
    if (polled.sqpoll) assert.equal(polled.params.sqThreadIdle, 10);
  },
});

Deno.test("IoUring: sqpoll.idleMs 0 is refused (the kernel takes it as its default: a second of spinning)", () => {
  rejects(
    () => new IoUring(4, { sqpoll: { idleMs: 0 } }),
    RangeError,
    /^sqpoll.idleMs must be an integer from 1 to 4294967295 \(the kernel takes 0 as its default, 1000 ms\), got 0$/,
  );
  // (A probe: -1 was told "from 0 to 4294967295", though 0 is refused too.)
  for (const idleMs of [-1, 1.5, 2 ** 32, "10"] as unknown[]) {
    rejects(
      () => new IoUring(4, { sqpoll: { idleMs: idleMs as number } }),
      typeof idleMs === "number" ? RangeError : TypeError,
      /^sqpoll.idleMs must be an integer from 1 to 4294967295, got /,
    );
  }
});

Deno.test("IoUring: entries 0, 32769, 1.5, NaN and non-numbers; cqEntries < entries; bad options", () => {
  for (const entries of [0, MAX_ENTRIES + 1, 1.5, -8, NaN, Infinity, "8", 8n] as unknown[]) {
    rejects(
      () => new IoUring(entries as number, { sqpoll: false }),
      typeof entries === "number" ? RangeError : TypeError, // (TypeError: not a number at all)
      /entries must be an integer from 1 to 32768/,
    );
  }
  // One message names the whole range: 0 is not offered as valid.
  const range = /cqEntries must be an integer from 8 \(at least entries\) to 65536, got /;
  rejects(() => new IoUring(8, { sqpoll: false, cqEntries: 4 }), RangeError, range);
  rejects(() => new IoUring(8, { sqpoll: false, cqEntries: 0 }), RangeError, range);
  rejects(() => new IoUring(8, { sqpoll: false, cqEntries: 8.5 }), RangeError, range);
  rejects(() => new IoUring(8, { sqpoll: false, cqEntries: 65537 }), RangeError, range);
  rejects(() => new IoUring(8, { sqpoll: { idleMs: -1 } }), RangeError, /idleMs/);
  rejects(() => new IoUring(8, { sqpoll: { cpu: 1.5 } }), RangeError, /cpu/);
  rejects(() => new IoUring(8, { sqpoll: false, flags: -1 }), RangeError, /flags/);
  // Flag combinations the kernel always refuses are refused first, saying which flag is missing.
  rejects(
    () => new IoUring(8, { sqpoll: false, flags: IORING_SETUP_TASKRUN_FLAG }),
    RangeError,
    /TASKRUN_FLAG needs IORING_SETUP_COOP_TASKRUN or IORING_SETUP_DEFER_TASKRUN/,
  );
  rejects(
    () => new IoUring(8, { sqpoll: false, flags: IORING_SETUP_DEFER_TASKRUN }),
    RangeError,
    /DEFER_TASKRUN needs IORING_SETUP_SINGLE_ISSUER/,
  );
  rejects(
    () => new IoUring(8, { sqpoll: false, flags: IORING_SETUP_HYBRID_IOPOLL }),
    RangeError,
    /HYBRID_IOPOLL needs a polled ring \(iopoll: true\)/,
  );
  // IORING_SETUP_CLAMP makes sizes past the largest the largest, as the kernel does.
  {
    using clamped = new IoUring(65536, { sqpoll: false, flags: IORING_SETUP_CLAMP, cqEntries: 1 << 20 });
    assert.deepEqual([clamped.sqEntries, clamped.cqEntries], [32768, 65536]);
  }
  rejects(() => new IoUring(65536, { sqpoll: false }), RangeError, /any larger with IORING_SETUP_CLAMP/);
  for (const flags of [IORING_SETUP_CQE_MIXED, IORING_SETUP_NO_MMAP]) {
    rejects(
      () => new IoUring(8, { sqpoll: false, flags }),
      RangeError,
      /are not supported: this ring has SQEs/,
    );
  }
  for (const sqpoll of [true, { idleMs: 10 }]) {
    rejects(
      () => new IoUring(8, { sqpoll, flags: IORING_SETUP_COOP_TASKRUN }),
      RangeError,
      /sqpoll cannot be combined with flags 0x100 \(COOP_TASKRUN, TASKRUN_FLAG or DEFER_TASKRUN\)/,
    );
  }
});

Deno.test({
  name: "IoUring: task-work flags turn a default SQPOLL off and say so; coopTaskrun supplies COOP_TASKRUN",
  ignore: skipKernel(),
  async fn() {
    const coop = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    {
      using ring = new IoUring(8, { flags: coop });
      assert.equal(ring.sqpoll, false);
      assert.equal(ring.params.flags & coop, coop);
      assert.match(
        ring.sqpollFallbackReason ?? "",
        /EINVAL.*\(asked for flags 0x300 \(COOP_TASKRUN, TASKRUN_FLAG or DEFER_TASKRUN\), which the kernel refuses/,
      );
    }
    {
      using ring = new IoUring(8, { flags: IORING_SETUP_TASKRUN_FLAG, coopTaskrun: true });
      assert.equal(ring.sqpoll, false);
      assert.equal(ring.params.flags & coop, coop);
    }
    {
      const defer = IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER;
      for (const backend of ["helper", "libc"] as const) {
        using ring = new IoUring(8, { sqpoll: false, flags: defer, backend });
        assert.equal(ring.params.flags & defer, defer);
        // Only the submitting thread may wait there: waitAsync (the thread pool) says so at once.
        // (On libc, which cannot read the pool thread's errno, it had retried without end.)
        await assert.rejects(ring.waitAsync(-1), (e: unknown) => {
          assert.ok(e instanceof IoUringError && e.code === "EEXIST", String(e));
          assert.match((e as Error).message, /only the thread that submits/);
          return true;
        });
      }
    }
  },
});

// --- With the kernel -------------------------------------------------------------------------

Deno.test({
  name:
    "io_uring_setup: unknown flag bits are refused before the kernel (with sqpoll.cpu set, no CPU is blamed)",
  fn() {
    // Bits past IORING_SETUP_SQ_REWIND (bit 20): the kernel's EINVAL, which with sqpoll.cpu set was
    // reported as a CPU that is not online (probe praw5: CPU 0, online).
    for (const flags of [1 << 21, 1 << 30, 2 ** 31]) {
      for (const options of [{ sqpoll: false }, { sqpoll: { cpu: 0 } }]) {
        assert.throws(() => new IoUring(4, { ...options, flags }), {
          name: "RangeError",
          message:
            `flags 0x${flags.toString(16)} are no IORING_SETUP_* flags this ring knows (bits 0 to 20, ` +
            "IORING_SETUP_IOPOLL to IORING_SETUP_SQ_REWIND): one it does not know may change the ring's layout",
        });
      }
    }
  },
});

Deno.test({
  name: "IoUringError from the kernel: io_uring_setup's EINVAL (a CPU it refuses) carries a hint",
  ignore: skipKernel(),
  fn() {
    for (const config of CONFIGS.filter((c) => !c.sqpoll)) {
      const options = { backend: config.options.backend, sqpoll: { cpu: 4095 } };
      assert.throws(() => new IoUring(4, options), (e: unknown) => {
        assert.ok(e instanceof IoUringError);
        assert.equal(e.name, "IoUringError");
        assert.equal(e.call, "io_uring_setup");
        assert.equal(e.code, "EINVAL");
        assert.equal(e.errno, 22);
        assert.ok(e.hint && /entries, cqEntries or flags/.test(e.hint), e.hint);
        assert.match(e.message, /^io_uring_setup failed: EINVAL: Invalid argument/);
        assert.match(e.message, /hint: /);
        return true;
      });
    }
  },
});

Deno.test({
  name: "IoUringError: SQPOLL on a CPU that does not exist, when insisted on, is not silently dropped",
  ignore: skipKernel(),
  fn() {
    assert.throws(() => new IoUring(4, { sqpoll: { cpu: 4095 } }), (e: unknown) => {
      assert.ok(e instanceof IoUringError, String(e));
      assert.equal(e.call, "io_uring_setup");
      assert.equal(e.code, "EINVAL");
      assert.match(e.message, /SQPOLL/);
      return true;
    });
  },
});

Deno.test({
  name:
    "IoUringError: a file table larger than the kernel allows (EMFILE) says which limit, `ulimit -n` with its value",
  ignore: skipKernel(),
  async fn() {
    using ring = new IoUring(2, { sqpoll: false });
    // Past IORING_MAX_FIXED_FILES (2^20), whatever RLIMIT_NOFILE is.
    rejects(
      () => ring.registerFilesSparse(2 ** 20 + 1),
      IoUringError,
      /EMFILE.*hint: a file table holds at most 1048576 entries \(IORING_MAX_FIXED_FILES\)$/,
    );
    assert.equal(ring.registeredFileCount, 0);
    // Past RLIMIT_NOFILE: in a child whose `ulimit -n` is 64, a sparse table and a table of fds.
    const code = `
      import { IoUring } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
      using ring = new IoUring(2, { sqpoll: false });
      for (const register of [() => ring.registerFilesSparse(65), () => ring.registerFiles(new Array(65).fill(0))]) {
        try { register(); console.log("registered"); } catch (e) { console.log(e.message); }
      }
      ring.registerFilesSparse(64); // (the limit itself fits)
      console.log(ring.registeredFileCount);`;
    const out = await new Deno.Command("sh", {
      args: ["-c", 'ulimit -n 64 && exec "$0" eval "$1"', Deno.execPath(), code],
      stdin: "null",
    }).output();
    const text = new TextDecoder();
    assert.ok(out.success, text.decode(out.stderr));
    assert.deepEqual(text.decode(out.stdout).trim().split("\n"), [
      "io_uring_register failed: EMFILE: Too many open files (IORING_REGISTER_FILES2 (65 sparse)); hint: a " +
      "file table holds at most RLIMIT_NOFILE entries (`ulimit -n`, 64 here), and 65 were asked for: " +
      "register fewer or raise the limit",
      "io_uring_register failed: EMFILE: Too many open files (IORING_REGISTER_FILES (65)); hint: a file " +
      "table holds at most RLIMIT_NOFILE entries (`ulimit -n`, 64 here), and 65 were asked for: register " +
      "fewer or raise the limit",
      "64",
    ]);
  },
});

Deno.test({
  name: "IoUringError from io_uring_register: an fd that is not an eventfd, an fd that is not open",
  ignore: skipKernel(),
  fn() {
    for (const config of CONFIGS) {
      using ring = new IoUring(2, config.options);
      assert.throws(() => ring.registerEventfd(ring.fd), (e: unknown) => {
        assert.ok(e instanceof IoUringError);
        assert.equal(e.call, "io_uring_register");
        assert.equal(e.code, "EINVAL");
        assert.equal(e.errno, 22);
        assert.match(e.message, /IORING_REGISTER_EVENTFD/);
        assert.equal(e.hint, "the fd is not an eventfd (the kernel signals only an eventfd(2) descriptor)");
        return true;
      });
      assert.throws(() => ring.registerEventfd(0x7ffffff0), (e: unknown) => {
        assert.ok(e instanceof IoUringError);
        assert.equal(e.code, "EBADF");
        assert.equal(e.errno, 9);
        return true;
      });
      assert.throws(
        () => ring.registerFiles([0x7ffffff0]),
        (e) => e instanceof IoUringError && e.code === "EBADF",
      );
      // The kernel refuses a ring's fd in a file table with EBADF too: the hint says so.
      const ringFdRefused = (e: unknown) => {
        assert.ok(e instanceof IoUringError, String(e));
        assert.equal(e.code, "EBADF");
        assert.equal(
          e.hint,
          "an fd that is not open, or an io_uring ring's fd: the kernel refuses rings in a file table",
        );
        return true;
      };
      assert.throws(() => ring.registerFiles([ring.fd]), ringFdRefused);
      ring.registerFiles([-1]);
      assert.throws(() => ring.registerFilesUpdate(0, [ring.fd]), ringFdRefused);
      ring.unregisterFiles();
      assert.throws(() => ring.unregisterEventfd(), (e) => e instanceof IoUringError && e.code === "ENXIO");
      // A bad argument is caught before the kernel.
      rejects(() => ring.registerEventfd(-3), RangeError, /eventfd/);
      // `async` is a boolean: a truthy string would have asked for IORING_REGISTER_EVENTFD_ASYNC.
      rejects(
        () => ring.registerEventfd(0, { async: "no" as never }),
        TypeError,
        /^async must be true or false, got "no" \(a string\)$/,
      );
      rejects(() => ring.registerEventfd(0, { async: 1 as never }), TypeError, /async must be true or false/);
      rejects(() => ring.registerFiles([]), TypeError, /non-empty/);
      rejects(() => ring.registerFiles([1.5]), RangeError, /fds\[0\]/); // (a number: RangeError)
      rejects(() => ring.registerFiles(["3" as unknown as number]), TypeError, /fds\[0\]/);
      rejects(() => ring.registerFilesUpdate(0, [1]), RangeError, /outside the table/);
      rejects(() => ring.registerBuffers([detached()]), TypeError, /detached/);
    }
  },
});

Deno.test("hints exist for EPERM and ENOSYS from io_uring_setup, and for EBUSY from enter", () => {
  const eperm = new IoUringError("io_uring_setup", 1);
  assert.equal(eperm.code, "EPERM");
  assert.equal(eperm.errno, 1);
  assert.match(eperm.hint!, /io_uring_disabled/);
  assert.match(eperm.hint!, /seccomp/);
  const enosys = new IoUringError("io_uring_setup", 38);
  assert.equal(enosys.code, "ENOSYS");
  assert.match(enosys.hint!, /5\.1/);
  assert.match(enosys.hint!, /seccomp/);
  const enomem = new IoUringError("io_uring_setup", 12);
  assert.match(enomem.hint!, /memlock|MEMLOCK/);
  assert.match(new IoUringError("io_uring_enter", 16).hint!, /overflow/);
  // (A probe: EACCES from setup is an LSM or seccomp; enter refused after setup is seccomp.)
  assert.match(new IoUringError("io_uring_setup", 13).hint!, /SELinux/);
  for (const errno of [1, 13, 38]) assert.match(new IoUringError("io_uring_enter", errno).hint!, /seccomp/);
  const plain = new IoUringError("io_uring_enter", 2, "detail here");
  assert.equal(plain.hint, undefined);
  assert.equal(plain.message, "io_uring_enter failed: ENOENT: No such file or directory (detail here)");
  assert.ok(plain instanceof Error);
});

Deno.test({
  name: "ring call arguments: submitAndWait beyond the CQ, cqAdvance beyond ready, waitCqe timeouts",
  ignore: skipKernel(),
  fn() {
    for (const config of CONFIGS) {
      using ring = new IoUring(4, config.options);
      rejects(() => ring.submitAndWait(ring.cqEntries + 1), RangeError, /waitNr/);
      rejects(() => ring.submitAndWait(-1), RangeError, /waitNr/);
      rejects(() => ring.cqAdvance(1), RangeError, /only 0 completions are ready/);
      prepNop(ring.getSqe()!).setUserData(1);
      prepNop(ring.getSqe()!).setUserData(2);
      ring.submitAndWait(2);
      assert.equal(ring.cqReady(), 2);
      rejects(() => ring.cqAdvance(3), RangeError, /only 2 completions are ready/);
      // A bad count is named as such, not as "only 2 completions are ready".
      rejects(() => ring.cqAdvance(-1), RangeError, /n must be an integer ≥ 0, got -1$/);
      rejects(() => ring.cqAdvance(1.5), RangeError, /n must be an integer ≥ 0, got 1.5$/);
      rejects(() => ring.cqAdvance(NaN), RangeError, /n must be an integer ≥ 0, got NaN$/);
      rejects(() => ring.cqAdvance("1" as never), TypeError, /got "1" \(a string\)$/);
      assert.equal(ring.cqReady(), 2, "a refused cqAdvance consumed nothing");
      ring.cqAdvance(0);
      ring.cqAdvance(2);
      rejects(() => ring.waitCqe({ timeoutMs: -1 }), RangeError, /timeoutMs/);
      rejects(() => ring.waitCqe({ timeoutMs: NaN }), RangeError, /timeoutMs/);
      rejects(() => ring.waitCqe({ timeoutMs: Infinity }), RangeError, /timeoutMs/);
      // A timeout given bare (or in an array) is refused, not read as "wait without a limit".
      rejects(() => ring.waitCqe(100 as never), TypeError, /waitCqe takes an options object .*, got 100$/);
      rejects(() => ring.waitCqe([100] as never), TypeError, /got an array$/);
      rejects(() => ring.registerFilesUpdate(-1, [0]), RangeError, /offset/);
      for (const fds of [null, [], "3"]) {
        rejects(() => ring.registerFilesUpdate(0, fds as never), TypeError, /a non-empty array of fds/);
      }
    }
  },
});

Deno.test({
  name: "a closed ring: every method throws ClosedError; close() twice is harmless",
  ignore: skipKernel(),
  async fn() {
    for (const config of CONFIGS) {
      const ring = new IoUring(4, config.options);
      const stale = ring.getSqe()!; // a handle kept past close
      const efd = eventfd();
      ring.close();
      ring.close();
      ring[Symbol.dispose]();
      assert.equal(ring.closed, true);
      const out: Cqe[] = [];
      const calls: Record<string, () => unknown> = {
        getSqe: () => ring.getSqe(),
        submit: () => ring.submit(),
        flushSq: () => ring.flushSq(),
        submitAndWait: () => ring.submitAndWait(1),
        sqReady: () => ring.sqReady(),
        sqSpaceLeft: () => ring.sqSpaceLeft(),
        cqReady: () => ring.cqReady(),
        peekCqe: () => ring.peekCqe(),
        waitCqe: () => ring.waitCqe({ timeoutMs: 1 }),
        cqAdvance: () => ring.cqAdvance(1),
        cqAdvance0: () => ring.cqAdvance(0),
        peekBatch: () => ring.peekBatch(out),
        forEachCqe: () => ring.forEachCqe(() => {}),
        completions: () => [...ring.completions()],
        sqFlags: () => ring.sqFlags,
        sqDropped: () => ring.sqDropped,
        cqOverflow: () => ring.cqOverflow,
        probe: () => ring.probe(),
        registerBuffers: () => ring.registerBuffers([new Uint8Array(4096)]),
        unregisterBuffers: () => ring.unregisterBuffers(),
        registerFiles: () => ring.registerFiles([efd]),
        registerFilesUpdate: () => ring.registerFilesUpdate(0, [efd]),
        unregisterFiles: () => ring.unregisterFiles(),
        registerEventfd: () => ring.registerEventfd(efd),
        unregisterEventfd: () => ring.unregisterEventfd(),
      };
      for (const [name, call] of Object.entries(calls)) {
        assert.throws(call, (e: unknown) => {
          assert.ok(e instanceof ClosedError, `${name}: expected ClosedError, got ${e}`);
          assert.equal((e as Error).message, "IoUring is closed");
          return true;
        }, name);
      }
      await assert.rejects(ring.waitAsync(1), ClosedError);
      // A handle kept from before close: a prep, a setter or a getter says the ring is closed
      // (the setters wrote nowhere silently; the getters gave undefined or V8's BigInt error).
      assert.equal(stale.u8.byteLength, 0, "the SQE memory is detached");
      const members: Record<string, () => unknown> = {
        prepNop: () => prepNop(stale),
        prepRead: () => prepRead(stale, 0, new Uint8Array(4), 0),
        setUserData: () => stale.setUserData(5),
        setUserDataBig: () => stale.setUserData(2n ** 40n),
        setFlags: () => stale.setFlags(1),
        addFlags: () => stale.addFlags(1),
        setIoprio: () => stale.setIoprio(1),
        setPersonality: () => stale.setPersonality(1),
        clear: () => stale.clear(),
        opcode: () => stale.opcode,
        flags: () => stale.flags,
        userData: () => stale.userData,
        bytes: () => stale.bytes(),
      };
      for (const [name, member] of Object.entries(members)) {
        assert.throws(member, /^ClosedError: the ring of this Sqe .* is closed$/, name);
      }
      // A closed ring gets no buffer pool either.
      assert.throws(() => new FixedBufferPool(ring, { count: 1, size: 4096 }), ClosedError);
      sysClose(efd);
    }
  },
});

Deno.test({
  name: "wrong types in ring options, open_how, worker counts and preps are refused with the reason",
  ignore: skipKernel(),
  fn() {
    for (const name of ["iopoll", "sqArray", "registerRing", "coopTaskrun"]) {
      for (const value of ["false", 0, 1, null]) {
        assert.throws(
          () => new IoUring(4, { sqpoll: false, [name]: value }),
          new RegExp(`${name} must be true or false, got`),
          `${name}: ${value}`,
        );
      }
    }
    for (const sqpoll of [0, "no", 1n, []]) {
      assert.throws(
        () => new IoUring(4, { sqpoll: sqpoll as unknown as boolean }),
        /sqpoll must be true, false/,
      );
    }
    assert.throws(() => new IoUring(4, 5 as unknown as IoUringOptions), /options must be an object, got 5/);
    assert.throws(
      () => new IoUring(4, [] as unknown as IoUringOptions),
      /options must be an object, got an array/,
    );
    // Every options parameter follows one rule: an object that is not an array, or nothing.
    for (
      const [call, got] of [
        [() => alignedBuffer(4096, 4096, 5 as never), /^TypeError: options must be an object, got 5$/],
        [() => alignedBuffer(4096, 4096, [] as never), /got an array$/],
        [() => directAlignment("/", [] as never), /^TypeError: options must be an object, got an array$/],
        [() => iopollError(-95, "read" as never), /^TypeError: options must be an object, got "read"/],
      ] as const
    ) assert.throws(call, got);
    const how = (h: unknown) => openHow(h as { flags: number });
    assert.throws(() => how({ flags: 2 ** 32 + 1 }), /how.flags must be an integer from 0 to 4294967295/);
    assert.throws(() => how({ flags: "0x41" }), /how.flags/);
    assert.throws(() => how({ flags: 0, mode: -1 }), /how.mode must be an integer from 0 to 4095/);
    assert.throws(() => how({ flags: 0, mode: 0o10000 }), /how.mode/);
    assert.throws(() => how({ flags: 0, resolve: 2 ** 70 }), /how.resolve/);
    // The kernel fails an openat2 with a mode and nothing to create (EINVAL).
    assert.throws(
      () => how({ flags: 2, mode: 0o644 }),
      /^RangeError: how.mode must be 0 unless how.flags has O_CREAT or O_TMPFILE, got 0o644$/,
    );
    how({ flags: 0o20200002, mode: 0o600 }); // O_TMPFILE | O_RDWR
    how({ flags: 0o100, mode: 0o600 }); // O_CREAT
    assert.throws(() => how(null), /how must be an object/);
    assert.throws(
      () => prepNop(null as unknown as Sqe),
      /sqe is null: getSqe\(\) returns null when the SQ is full/,
    );
    using ring = new IoUring(4, { sqpoll: false });
    assert.throws(
      () => ring.registerIowqMaxWorkers(2 ** 31, 0),
      /bounded must be an integer from 0 to 2147483647/,
    );
    const efd = eventfd();
    try {
      ring.registerEventfd(efd, null as unknown as { async?: boolean }); // null: the defaults
      ring.unregisterEventfd();
    } finally {
      sysClose(efd);
    }
  },
});

Deno.test({
  name: "without io_uring (ENOSYS injected by strace) the kernel tests skip with one clear line",
  ignore: skipKernel() || !straceWorks(),
  async fn() {
    const ringTests = new URL("./ring_test.ts", import.meta.url).pathname;
    const out = await new Deno.Command("strace", {
      args: [
        "-f",
        "-o",
        "/dev/null",
        "-e",
        "trace=io_uring_setup",
        "-e",
        "inject=io_uring_setup:error=ENOSYS",
        Deno.execPath(),
        "test",
        "--no-lock",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run",
        "--allow-sys",
        ringTests,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    if (!out.success && /PTRACE|ptrace/.test(text)) {
      console.log("SKIP: strace cannot trace here");
      return;
    }
    assert.ok(out.success, text);
    const skips = text.split("\n").filter((l) =>
      l.startsWith("SKIP kernel tests: io_uring is unavailable here")
    );
    assert.equal(skips.length, 1, text);
    assert.match(skips[0], /ENOSYS/);
    assert.match(text, /ok \| 0 passed \| 0 failed \| \d+ ignored/);
  },
});

Deno.test("Sys.fileLimit: both backends read the same soft RLIMIT_NOFILE", () => {
  const helper = getSys("helper").fileLimit(), libc = getSys("libc").fileLimit();
  assert.equal(helper, libc);
  assert.ok(Number.isInteger(helper) && helper > 0 && helper <= 0x7fff_ffff, String(helper));
});

Deno.test("Sys.openFiles: counts the process's open descriptors as they come and go", () => {
  const helper = getSys("helper"), libc = getSys("libc");
  const path = Deno.makeTempFileSync();
  try {
    const before = helper.openFiles();
    assert.ok(before >= 3, `stdin, stdout, stderr and Deno's own: ${before}`);
    // The libc backend lists /proc/self/fd through Deno, which allows that only with --allow-all.
    const all = libc.openFiles() === before;
    if (!all) assert.equal(libc.openFiles(), -errno("EIO"));
    const files = Array.from({ length: 50 }, () => Deno.openSync(path));
    try {
      assert.equal(helper.openFiles(), before + 50);
      if (all) assert.equal(libc.openFiles(), before + 50);
    } finally {
      for (const f of files) f.close();
    }
    assert.equal(helper.openFiles(), before);
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("freeDescriptors: the limit less those open less the reserve; none when none is free", () => {
  const sys = (limit: number, open: number) => ({ fileLimit: () => limit, openFiles: () => open });
  assert.equal(freeDescriptors(sys(1024, 30)), 1024 - 30 - RESERVED_DESCRIPTORS);
  assert.equal(freeDescriptors(sys(1024, 984)), 0, "40 free: all of them left to the rest of the process");
  assert.equal(freeDescriptors(sys(1024, -errno("EMFILE"))), 0, "not one free to count with");
  assert.equal(
    freeDescriptors(sys(1024, -errno("EACCES"))),
    1024 - RESERVED_DESCRIPTORS,
    "uncounted: the limit",
  );
  assert.equal(freeDescriptors(sys(-errno("EPERM"), 30)), Infinity, "no limit known");
});

Deno.test({
  name: "prepRw checks what it writes; a prep handed something that is not an Sqe says so",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(4, { sqpoll: false });
    const sqe = ring.getSqe()!;
    // prepRw wrote any number into any field: opcode 0x116 set IOSQE_FIXED_FILE, a length of
    // 2^32 + 8 became 8, an offset of -5 became 2^64 - 5.
    for (
      const [args, message] of [
        [[0x116, 0, 0, 0, 0], /^RangeError: opcode must be an integer from 0 to 255, got 278$/],
        [[-1, 0, 0, 0, 0], /^RangeError: opcode must be/],
        [[0, NaN, 0, 0, 0], /^RangeError: fd must be a 32-bit integer, got NaN$/],
        [[0, 2 ** 31, 0, 0, 0], /^RangeError: fd must be a 32-bit integer/],
        [[0, 0, 1.5, 0, 0], /^RangeError: addr must be an address/],
        [[0, 0, 0, 2 ** 32 + 8, 0], /^RangeError: len must be an integer from 0 to 4294967295/],
        [[0, 0, 0, "3", 0], /^TypeError: len must be/],
        [
          [0, 0, 0, 0, -5],
          /^RangeError: offset must be -1 \(the fd's position\) or a file offset from 0, got -5$/,
        ],
      ] as const
    ) {
      assert.throws(
        () => prepRw(sqe, ...(args as unknown as [number, number, number, number, number])),
        message,
      );
    }
    const u32 = sqe.u32, b = sqe.base;
    assert.deepEqual([...u32.subarray(b, b + 16)], new Array(16).fill(0), "nothing was written");
    prepRw(sqe, IORING_OP_READ, -100, 4096, 8, -1); // -1: the file's position (all ones)
    assert.deepEqual([u32[b] & 0xff, u32[b + 1], u32[b + 2], u32[b + 3]], [
      IORING_OP_READ,
      0xffffff9c,
      0xffffffff,
      0xffffffff,
    ]);
    u32[b + 2] = u32[b + 3] = 0;
    prepRw(sqe, IORING_OP_READ, -100, 4096, 8, -1n); // -1n too (it was refused as "out of range")
    assert.deepEqual([u32[b + 2], u32[b + 3]], [0xffffffff, 0xffffffff]);
    assert.throws(() => prepRw(sqe, IORING_OP_READ, 0, 0, 0, 2n ** 63n), /offset is out of range/);
    // An Sqe is frozen: a getter put in place of `u32` ran in the middle of a prep, between the
    // buffer's address being taken and stored (another buffer's address went into the SQE).
    assert.throws(
      () => Object.defineProperty(sqe, "u32", { get: () => u32 }),
      /^TypeError: Cannot redefine property/,
    );
    // Nor can a proxy of one, or a look-alike with its fields: their getters ran in the same place.
    const proxy = new Proxy(sqe, {});
    const lookAlike = { u32, base: b };
    for (const fake of [proxy, lookAlike]) {
      assert.throws(() => prepRead(fake as Sqe, 0, new Uint8Array(8), 0), /^TypeError: sqe must be an Sqe/);
    }
    // Anything but an Sqe: "Cannot read properties of undefined (reading 'NaN')" before.
    for (const [value, shown] of [[undefined, "undefined"], [42, "42"], [ring, "an object"]] as const) {
      assert.throws(
        () => prepRead(value as unknown as Sqe, 0, new Uint8Array(8), 0),
        { name: "TypeError", message: `sqe must be an Sqe from ring.getSqe(), got ${shown}` },
      );
      assert.throws(
        () => prepNop(value as unknown as Sqe),
        /^TypeError: sqe must be an Sqe from ring.getSqe\(\)/,
      );
    }
  },
});

Deno.test({
  name: "peekBatch: code run by the array it fills cannot advance or close the ring under it",
  ignore: skipKernel(),
  fn() {
    using ring = new IoUring(8, { sqpoll: false });
    for (let i = 1; i <= 4; i++) prepNop(ring.getSqe()!).setUserData(i);
    ring.submitAndWait(4);
    // A setter that advanced the CQ made the batch skip a completion and count slots past the tail.
    const out: Cqe[] = [];
    Object.defineProperty(out, 1, { set: () => ring.cqAdvance(1), configurable: true });
    assert.throws(() => ring.peekBatch(out), /^Busy: cqAdvance cannot be called from inside/);
    assert.equal(ring.cqReady(), 4, "nothing consumed");
    // Nor can the array's length (a proxy's getter): it was read before the batch began.
    const proxied = new Proxy([] as Cqe[], {
      get: (target, key) => key === "length" ? (ring.cqAdvance(2), 4) : Reflect.get(target, key),
    });
    assert.throws(() => ring.peekBatch(proxied), /^Busy: cqAdvance cannot be called from inside/);
    assert.equal(ring.cqReady(), 4, "nothing consumed");
    // A setter that closes the ring: the close waits for the batch to end.
    const closing: Cqe[] = new Array(4);
    Object.defineProperty(closing, 0, { set: () => ring.close(), configurable: true });
    assert.equal(ring.peekBatch(closing), 4);
    assert.equal(ring.closed, true);
  },
});

Deno.test({
  name:
    "A ring the garbage collector released: its Sqe handles throw ClosedError, its buffer pins are let go",
  ignore: skipKernel(),
  async fn() {
    // setUserData and setFlags wrote nowhere, silently: only close() marked the handles stale.
    const out = await runDeno(
      `import { alignedBuffer, IoUring, prepNop } from ${
        JSON.stringify(new URL("../mod.ts", import.meta.url).href)
      };
      let kept;
      (() => { kept = new IoUring(8, { sqpoll: false }).getSqe(); })();
      for (let i = 0; i < 100 && kept.u8.length > 0; i++) {
        globalThis.gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const results = [kept.u8.length];
      for (const f of [() => kept.setUserData(5), () => kept.setFlags(1), () => kept.setIoprio(1), () => prepNop(kept)]) {
        try { f(); results.push("no error"); } catch (e) { results.push(e.name); }
      }
      // An aligned buffer registered with a ring the garbage collector released: its pin went with
      // the ring (before, only close() and unregisterBuffers() let go: free() never unmapped it).
      const buf = alignedBuffer(4096);
      (() => { new IoUring(8, { sqpoll: false }).registerBuffers([buf.bytes]); })();
      results.push(buf.pins);
      for (let i = 0; i < 100 && buf.pins > 0; i++) {
        globalThis.gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      results.push(buf.pins);
      console.log(JSON.stringify(results));`,
      ["--allow-all", "--v8-flags=--expose-gc"],
    );
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), [
      0,
      "ClosedError",
      "ClosedError",
      "ClosedError",
      "ClosedError",
      1,
      0,
    ]);
  },
});

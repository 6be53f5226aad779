/**
 * `Uring` called the way a first-time user gets it wrong: arguments of the wrong shape, Deno's
 * option names, an fd that belongs to a `UringFile`. Each case once did something other than
 * what the user meant, silently (closed the whole Uring, ignored the options, closed a reused fd).
 */

import assert from "node:assert/strict";
import { alignedBuffer, AlignmentError, ClosedError, Uring, type UringFile } from "../mod.ts";
import { mkfifo, pipe, sysClose, sysWrite } from "./_io.ts";
import { skipKernel, tempDir } from "./_support.ts";
import { fdCount } from "./uring_support.ts";

Deno.test({
  name: "Uring: close(undefined) (a missing fd) rejects and leaves the Uring open; close() closes it",
  ignore: skipKernel(),
  fn: async () => {
    const uring = new Uring({ sqpoll: false });
    const fds: Record<string, number> = {};
    await assert.rejects(
      uring.close(fds["missing"]),
      /^TypeError: close: fd must be an integer file descriptor, got undefined/,
    );
    assert.equal(uring.closed, false);
    await uring.nop();
    await uring.close();
    assert.equal(uring.closed, true);
  },
});

for (const iopoll of [false, true]) {
  Deno.test({
    name: `Uring${
      iopoll ? " (iopoll)" : ""
    }: close(fd) of a UringFile's fd is refused, also in a chain and while the file's close runs`,
    ignore: skipKernel(),
    fn: async () => {
      using dir = tempDir();
      Deno.writeTextFileSync(`${dir.path}/a`, "a".repeat(4096));
      await using uring = new Uring({ sqpoll: false, iopoll });
      const direct = iopoll ? { direct: true } : {};
      const file = await uring.open(`${dir.path}/a`, direct);
      const refused =
        /^TypeError: (chain: )?close\(\d+\): the fd belongs to a UringFile \('.*\/a'\): call its close\(\)$/;
      await assert.rejects(uring.close(file.fd), refused);
      // A chain's close member is refused too (it got past the check, and the file's own close
      // then closed whatever had reused the number).
      await assert.rejects(uring.chain((c) => c.close(file.fd)), refused);
      if (!iopoll) assert.equal(await file.readAt(new Uint8Array(1), 0), 1, "the file's fd still open");
      // While the file's close is in flight the number is still the file's.
      const closing = file.close();
      await assert.rejects(uring.close(file.fd), refused);
      await closing;
      // An fd the Uring does not own as a file closes as before, even a reused number.
      const fd = await uring.openFd(`${dir.path}/a`, 0);
      await uring.close(fd);
    },
  });
}

Deno.test({
  name: "Uring.open: Deno's createNew creates exclusively (it was ignored: an existing file opened)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await using uring = new Uring({ sqpoll: false });
    const path = `${dir.path}/new`;
    const file = await uring.open(path, { write: true, createNew: true });
    await file.writeAll(new TextEncoder().encode("first"), 0);
    await file.close();
    await assert.rejects(uring.open(path, { write: true, createNew: true }), Deno.errors.AlreadyExists);
    assert.equal(Deno.readTextFileSync(path), "first");
    await assert.rejects(
      uring.open(`${dir.path}/other`, { createNew: true }),
      /^TypeError: open: create, truncate, exclusive and createNew need write or append$/,
    );
  },
});

Deno.test({
  name: "Uring.open: truncate with append is refused, as Deno.open refuses it (it emptied the file)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await using uring = new Uring({ sqpoll: false });
    const path = `${dir.path}/log`;
    Deno.writeTextFileSync(path, "kept");
    for (const options of [{ append: true, truncate: true }, { write: true, append: true, truncate: true }]) {
      const sqes = uring.stats.sqes;
      await assert.rejects(
        uring.open(path, options),
        /^TypeError: open: truncate cannot be combined with append \(Deno.open refuses it too\)$/,
      );
      assert.equal(uring.stats.sqes, sqes, "nothing reached the kernel");
      assert.throws(() => Deno.openSync(path, options)); // Deno's own answer
    }
    assert.equal(Deno.readTextFileSync(path), "kept");
    // With createNew the file is new: nothing to truncate, and Deno allows it.
    const file = await uring.open(`${dir.path}/new`, { append: true, truncate: true, createNew: true });
    await file.close();
  },
});

Deno.test({
  name:
    "Uring: options that are not an object are refused (new Uring(64), open(p, 'r'), a number as options)",
  ignore: skipKernel(),
  fn: async () => {
    assert.throws(
      () => new Uring([] as never),
      /^TypeError: Uring takes an options object .*, got an array$/,
    );
    assert.throws(
      () => new Uring(64 as never),
      /^TypeError: Uring takes an options object \(e\.g\. new Uring\(\{ entries: 64 \}\)\), got 64$/,
    );
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "abc");
    await using uring = new Uring({ sqpoll: false });
    await assert.rejects(
      uring.open(`${dir.path}/a`, "r" as never),
      /^TypeError: open takes an options object/,
    );
    const file = await uring.open(`${dir.path}/a`, { read: true, write: true });
    // What fallocate(2) refuses whatever the file: an empty range (EINVAL), one past the largest
    // offset (EFBIG). They reached the kernel.
    await assert.rejects(
      uring.fallocate(file.fd, 0, 0),
      /^RangeError: fallocate: length must be at least 1 \(fallocate\(2\) refuses an empty range\)$/,
    );
    await assert.rejects(
      uring.fallocate(file.fd, 2n ** 63n - 10n, 100),
      /^RangeError: fallocate: offset \+ length must be at most 2\^63 - 1 .*, got 9223372036854775798 \+ 100$/,
    );
    await assert.rejects(
      uring.chain((c) => c.fallocate(file.fd, 0, 0)),
      /^RangeError: (chain: )?fallocate: length/,
    );
    // liburing's fallocate(fd, mode, offset, length) order puts a number where the options go.
    await assert.rejects(
      uring.fallocate(file.fd, 0, 0, 4096 as never),
      /^TypeError: fallocate: options must be an object, got 4096$/,
    );
    await assert.rejects(file.readAt(new Uint8Array(1), 0, "fast" as never), /options must be an object/);
    // An array is no options object either, here as for the constructor and open().
    await assert.rejects(
      file.readAt(new Uint8Array(1), 0, [] as never),
      /^TypeError: read: options must be an object, got an array$/,
    );
    await assert.rejects(uring.nop([] as never), /^TypeError: nop: options must be an object, got an array$/);
    // A chain member's options follow the same rule (null: the defaults).
    await assert.rejects(
      uring.chain((c) => c.fsync(file.fd, [] as never)),
      /^TypeError: fsync: options must be an object, got an array$/,
    );
    await assert.rejects(uring.chain((c) => c.fsync(file.fd, 5 as never)), /got 5$/);
    assert.deepEqual(await uring.chain((c) => c.fsync(file.fd, null as never)), [{ ok: true, value: 0 }]);
    await file.close();
    assert.equal(Deno.statSync(`${dir.path}/a`).size, 3, "nothing reached the kernel");
  },
});

Deno.test({
  name: "Uring: a Map, Set, promise, buffer or bare AbortSignal is no options object (it was read as one)",
  ignore: skipKernel(),
  fn: async () => {
    // A Map's `entries` method was taken for the entries option ("got a function").
    assert.throws(
      () => new Uring(new Map([["entries", 8]]) as never),
      /^TypeError: Uring takes an options object .*, got a Map \(pass a plain object\)$/,
    );
    assert.throws(() => new Uring(new Set() as never), /got a Set$/);
    assert.throws(() => new Uring(Promise.resolve({}) as never), /got a Promise \(await it first\)$/);
    assert.throws(() => new Uring(new Uint8Array(8) as never), /got a buffer$/);
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "abc");
    await using uring = new Uring({ sqpoll: false });
    const file = await uring.open(`${dir.path}/a`, { read: true, write: true });
    // The signal given bare was read as options without a `signal`: nothing could abort the call.
    const controller = new AbortController();
    const bare = controller.signal as never;
    const refused = /^TypeError: .*options .*, got an AbortSignal \(pass \{ signal \}\)$/;
    await assert.rejects(file.readAt(new Uint8Array(1), 0, bare), refused);
    await assert.rejects(uring.nop(bare), refused);
    await assert.rejects(uring.statx(`${dir.path}/a`, bare), refused);
    await assert.rejects(uring.open(`${dir.path}/a`, bare), refused);
    await assert.rejects(uring.chain((c) => c.fsync(file.fd, bare)), refused);
    // In an object it is the signal, as always.
    controller.abort();
    await assert.rejects(file.readAt(new Uint8Array(1), 0, { signal: controller.signal }), {
      name: "AbortError",
    });
    await file.close();
  },
});

Deno.test({
  name: "Uring: a Deno.FsFile or a UringFile where an fd belongs: the error says what to pass",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "abc");
    await using uring = new Uring({ sqpoll: false });
    using denoFile = Deno.openSync(`${dir.path}/a`);
    await assert.rejects(
      uring.read(denoFile as never, new Uint8Array(1), 0),
      /got an object \(a Deno\.FsFile has no fd to give: open the file with Uring\.open\(\) or Uring\.openFd\(\)\)/,
    );
    const file = await uring.open(`${dir.path}/a`);
    await assert.rejects(
      uring.read(file as never, new Uint8Array(1), 0),
      new RegExp(`it has an fd, ${file.fd}: pass the number, or use the object's own methods\\)`),
    );
    await file.close();
  },
});

Deno.test({
  name: "Uring.openFd adds O_CLOEXEC: a child process does not inherit the fd (as with Deno.open)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "a");
    await using uring = new Uring({ sqpoll: false });
    const fd = await uring.openFd(`${dir.path}/a`, 0);
    try {
      const out = await new Deno.Command("sh", {
        args: ["-c", `[ -e /proc/self/fd/${fd} ] && echo inherited || echo not`],
        stdout: "piped",
      }).output();
      assert.equal(new TextDecoder().decode(out.stdout).trim(), "not");
    } finally {
      await uring.close(fd);
    }
  },
});

Deno.test({
  name: "Uring: an argument refused before anything is queued names the operation that refused it",
  ignore: skipKernel(),
  fn: async () => {
    // They said only `position is out of range: -1`, `path must not be empty`: not which call.
    await using uring = new Uring({ entries: 8, sqpoll: false });
    const detached = new Uint8Array(4);
    detached.buffer.transfer();
    const cases: [() => Promise<unknown>, RegExp][] = [
      [() => uring.read(0, new Uint8Array(4), -1n), /^RangeError: read: position is out of range: -1$/],
      [() => uring.read(2 ** 31, new Uint8Array(4), 0), /^RangeError: read: fd is out of range/],
      [() => uring.write(1, detached, 0), /^TypeError: write: buffer is detached$/],
      [() => uring.readv(0, [new Uint8Array(4)], -1), /^RangeError: readv: position must not be negative/],
      [() => uring.fsync(1.5), /^(Type|Range)Error: fsync: fd /],
      [() => uring.ftruncate(1, -1), /^RangeError: ftruncate: length must not be negative/],
      [
        () => uring.splice(0, -2, 1, -1, 1),
        /^RangeError: splice: offIn must be -1 \(the fd's position\) or a file offset from 0, got -2$/,
      ],
      [() => uring.open(""), /^TypeError: open: path must not be empty$/],
      [() => uring.open("x", { create: true }), /^TypeError: open: create, truncate/],
      [() => uring.statx(""), /^TypeError: statx: path must not be empty$/],
      [() => uring.unlink(""), /^TypeError: unlink: path must not be empty$/],
      [() => uring.timeout(-1), /^RangeError: timeout must be a finite number of milliseconds/],
      // (a re-check found these still nameless: checks before the operation's own)
      [() => uring.openFd("x", -1), /^RangeError: open: flags must be an integer/],
      [() => uring.mkdir("x", { mode: -1 }), /^RangeError: mkdir: mode must be an integer/],
      [() => uring.symlink("", "x"), /^TypeError: symlink: target must be a non-empty string$/],
      [() => uring.nop(5 as never), /^TypeError: nop: options must be an object, got 5$/],
      [
        () => uring.read(0, new Uint8Array(4), 0, { signal: {} as never }),
        /^TypeError: read: signal must be/,
      ],
      [() => uring.fallocate(1, 0, 0, 4096 as never), /^TypeError: fallocate: options must be an object/],
      [
        () => uring.chain((c) => void c.read(0, new Uint8Array(4), -1)),
        /^RangeError: read: position must not/,
      ],
      [() => uring.chain((c) => void c.openDirect("x", -1)), /^RangeError: open: index must be/],
    ];
    for (const [call, expected] of cases) await assert.rejects(call(), expected);
    // A DataView outside its shrunk resizable buffer: the engine's own words named
    // `DataView.prototype.byteLength`, not the operation, nor what was wrong.
    using scratch = tempDir();
    Deno.writeTextFileSync(`${scratch.path}/f`, "hello");
    await using file = await uring.open(`${scratch.path}/f`, { read: true, write: true });
    const resizable = new ArrayBuffer(64, { maxByteLength: 128 });
    const outside = new DataView(resizable, 32, 16);
    // Typed arrays out of bounds read a length of 0, as empty ones do: they were taken for empty
    // (readFull resolved 0, "end of file", of a file with data; writeAll wrote nothing).
    const outsideTracking = new Uint8Array(resizable, 32);
    const outsideFixed = new BigInt64Array(resizable, 24, 2);
    resizable.resize(16);
    const outsideWords =
      /^TypeError: (read|write): buffer is out of bounds: its resizable ArrayBuffer shrank below/;
    for (const view of [outside, outsideTracking, outsideFixed]) {
      for (
        const call of [
          () => file.readAt(view, 0),
          () => file.readFull(view, 0),
          () => file.writeAt(view, 0),
          () => file.writeAll(view, 0),
          () => uring.read(file.fd, view, 0),
        ]
      ) {
        await assert.rejects(call(), outsideWords, view.constructor.name);
      }
    }
    // (An empty view is no such thing: it reads 0 bytes.)
    assert.equal(await file.readAt(new Uint8Array(new ArrayBuffer(8, { maxByteLength: 8 }), 8), 0), 0);
    const cause = await uring.statx("").catch((e) => e.cause);
    assert.match(String(cause), /^TypeError: path must not be empty$/, "the original is the cause");
    // What a getter threw, and an abort's reason, go out as they were.
    const thrown = new TypeError("from a getter");
    const getter = {
      get signal(): AbortSignal {
        throw thrown;
      },
    };
    assert.equal(await uring.nop(getter).catch((e) => e), thrown);
    // (also from other arguments' getters: the error is the caller's, not an argument refused)
    const mode = {
      get mode(): number {
        throw thrown;
      },
    };
    assert.equal(await uring.mkdir("x", mode).catch((e) => e), thrown);
    const bufs = [new Uint8Array(4)];
    Object.defineProperty(bufs, 0, {
      get: () => {
        throw thrown;
      },
    });
    assert.equal(await uring.readv(0, bufs, 0).catch((e) => e), thrown);
    assert.equal(await uring.chain((c) => void c.readv(0, bufs, 0)).catch((e) => e), thrown);
    const reason = new TypeError("the reason");
    assert.equal(await uring.nop({ signal: AbortSignal.abort(reason) }).catch((e) => e), reason);
    // An O_DIRECT file's plain argument errors read as a plain file's; a misalignment stays an AlignmentError.
    using dir = tempDir();
    Deno.writeFileSync(`${dir.path}/d`, new Uint8Array(8192));
    await using direct = await uring.open(`${dir.path}/d`, { read: true, direct: true }).catch(() => null);
    if (direct !== null && direct.alignment !== null) {
      using aligned = alignedBuffer(4096);
      await assert.rejects(
        direct.readAt(aligned.bytes, -1),
        /^RangeError: read: position must not be negative/,
      );
      await assert.rejects(direct.readAt(aligned.bytes, 1), AlignmentError);
    }
    // After close, ClosedError comes first, whatever the arguments.
    await uring.close();
    for (
      const call of [() => uring.openFd("x", -1), () => uring.mkdir("x", { mode: -1 }), () => uring.open("")]
    ) {
      await assert.rejects(call(), ClosedError);
    }
  },
});

for (const sqpoll of [false, true]) {
  Deno.test({
    name: `Uring (sqpoll ${sqpoll}): a readv/writev DataView detached or shrunk fails that operation alone`,
    ignore: skipKernel(),
    fn: async () => {
      // Its check threw (a DataView over a detached buffer throws from byteLength) in the pump:
      // the whole Uring failed, and operations whose data had arrived lost it.
      await using uring = new Uring({ sqpoll, entries: 8 });
      const [r1, w1] = pipe();
      const [r2, w2] = pipe();
      try {
        const view = new DataView(new ArrayBuffer(8));
        const misused = uring.readv(r1, [view], 0);
        const bystander = uring.read(r2, new Uint8Array(8), 0);
        await new Promise((r) => setTimeout(r, 20));
        const kept = view.buffer.transfer(); // (same length: the memory moves, nothing is freed)
        assert.equal(sysWrite(w1, new Uint8Array([1, 2, 3])), 3);
        await assert.rejects(misused, /readv: a buffer was detached or shrunk while the operation ran/);
        assert.equal(uring.closed, false, "the Uring lives on");
        assert.equal(sysWrite(w2, new Uint8Array([4, 5])), 2);
        assert.equal(await bystander, 2);
        void kept;
        // One still waiting in the backlog: a resizable buffer shrunk under its DataView.
        const small = new Uring({ sqpoll, entries: 1, cqEntries: 2 });
        try {
          const blockers = [0, 1].map(() => small.read(r1, new Uint8Array(1), 0));
          const resizable = new ArrayBuffer(64, { maxByteLength: 64 });
          const queued = assert.rejects(
            small.writev(w2, [new DataView(resizable, 0, 32)], 0),
            /writev: a buffer was detached/,
          );
          resizable.resize(8);
          assert.equal(sysWrite(w1, new Uint8Array([6, 7])), 2);
          assert.deepEqual(await Promise.all(blockers), [1, 1], "the reads ahead of it keep their data");
          await queued;
          assert.equal(small.closed, false);
        } finally {
          await small.close();
        }
      } finally {
        for (const fd of [r1, w1, r2, w2]) sysClose(fd);
      }
    },
  });
}

Deno.test({
  name:
    "Uring: an operation on a file closed by the caller's own code meanwhile never reaches the fd's next file",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    for (const sqpoll of [false, true]) {
      await using uring = new Uring({ sqpoll, entries: 8 });
      const data = new TextEncoder().encode("meant for a");
      Deno.writeTextFileSync(`${dir.path}/a`, "");
      Deno.writeTextFileSync(`${dir.path}/b`, "");
      // A signal getter that closes the file and opens another, which gets the same number.
      let a = await uring.open(`${dir.path}/a`, { write: true });
      let b: Promise<UringFile> | undefined;
      const sneaky = {
        get signal() {
          void a.close();
          b = uring.open(`${dir.path}/b`, { write: true });
          return undefined;
        },
      };
      await assert.rejects(a.writeAt(data, 0, sneaky), Deno.errors.BadResource);
      let other = await b!;
      await other.close();
      // A chain whose build function closes the file a member writes.
      a = await uring.open(`${dir.path}/a`, { write: true });
      const fd = a.fd;
      await assert.rejects(
        uring.chain((c) => {
          c.write(fd, data, 0);
          void a.close();
          b = uring.open(`${dir.path}/b`, { write: true });
        }),
        (e) => e instanceof Deno.errors.BadResource && /chain: write\(\d+\): .* being closed/.test(e.message),
      );
      other = await b!;
      // A raw operation on the number while the file's close is under way.
      a = await uring.open(`${dir.path}/a`, { write: true });
      const [r, w] = pipe();
      try {
        // Raw operations on the number while the file's close is under way (a splice into it too),
        // all issued before the close can complete.
        const closing = a.close();
        const refusals = [
          assert.rejects(
            uring.write(a.fd, data, 0),
            /write\(\d+\): the fd belongs to a UringFile .* being closed/,
          ),
          assert.rejects(uring.splice(r, -1, a.fd, 0, 4), /splice\(\d+\): the fd belongs to a UringFile/),
          assert.rejects(
            uring.chain((c) => c.splice(r, -1, a.fd, 0, 4)),
            /chain: splice\(\d+\): the fd belongs to a UringFile/,
          ),
        ];
        await Promise.all(refusals);
        await closing;
      } finally {
        sysClose(r);
        sysClose(w);
      }
      await other.close();
      assert.equal(Deno.readTextFileSync(`${dir.path}/b`), "", `sqpoll ${sqpoll}: b got a's data`);
      assert.equal(Deno.readTextFileSync(`${dir.path}/a`), "");
    }
  },
});

Deno.test({
  name: "Uring: an openFd that completes while the Uring closes is closed again (its fd would leak)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/f`, "x");
    for (const sqpoll of [false, true]) {
      const before = fdCount();
      const uring = new Uring({ sqpoll, entries: 8 });
      const opened = uring.openFd(`${dir.path}/f`, 0);
      const closed = uring.close();
      await assert.rejects(opened, /open '.*\/f': .*ECANCELED.*the Uring was closed/);
      await closed;
      assert.equal(fdCount(), before, `sqpoll ${sqpoll}: an fd leaked`);
    }
  },
});

Deno.test({
  name:
    "Uring.open: direct with append is refused (O_APPEND writes at an end O_DIRECT needs aligned: a bare EINVAL)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await using uring = new Uring({ sqpoll: false });
    Deno.writeTextFileSync(`${dir.path}/f`, "x".repeat(1000));
    await assert.rejects(
      uring.open(`${dir.path}/f`, { direct: true, append: true }),
      /^TypeError: open: direct cannot be combined with append/,
    );
    assert.equal(Deno.readTextFileSync(`${dir.path}/f`).length, 1000);
  },
});

Deno.test({
  name:
    "Uring: a file that gets a closing file's number once its close is done is not refused as the old file",
  ignore: skipKernel(),
  fn: async () => {
    // A FIFO's close waits for its pending read's cancel; a file opened from the read's rejection
    // got the number, and its own writes were refused for the FIFO's close.
    using dir = tempDir();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    Deno.writeTextFileSync(`${dir.path}/b`, "");
    let reused = 0;
    for (let round = 0; round < 20; round++) {
      await using uring = new Uring({ entries: 8 });
      const a = await uring.open(fifo, { read: true, write: true });
      let opened: Promise<UringFile> | undefined;
      const pending = a.readAt(new Uint8Array(8), 0).catch(() => {
        opened = uring.open(`${dir.path}/b`, { write: true });
      });
      const closing = a.close();
      await pending;
      await using b = await opened!;
      if (b.fd === a.fd) reused++;
      assert.equal(await b.writeAt(new TextEncoder().encode("x"), 0), 1, `round ${round}`);
      await closing;
    }
    assert.ok(reused > 0, "the new file never got the old number: nothing shown");
  },
});

Deno.test({
  name:
    "Uring.chain: a direct descriptor index nobody reserved is refused (a fixed file's index was replaced)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "");
    Deno.writeTextFileSync(`${dir.path}/b`, "");
    await using uring = new Uring({ sqpoll: false });
    await using a = await uring.open(`${dir.path}/a`, { write: true, fixed: true });
    assert.ok(a.fixedIndex >= 0, "a is registered");
    const refused = /direct descriptor \d+ was not reserved with reserveFileIndex\(\)/;
    await assert.rejects(
      uring.chain((c) => c.openDirect(`${dir.path}/b`, a.fixedIndex, { flags: 1 /* O_WRONLY */ })),
      refused,
    );
    await assert.rejects(uring.chain((c) => c.closeDirect(a.fixedIndex)), refused);
    await assert.rejects(uring.chain((c) => c.writeDirect(a.fixedIndex, new Uint8Array(1), 0)), refused);
    assert.equal(await a.writeAt(new TextEncoder().encode("for a"), 0), 5);
    assert.equal(Deno.readTextFileSync(`${dir.path}/a`), "for a");
    assert.equal(Deno.readTextFileSync(`${dir.path}/b`), "");
    // A reserved index works as before.
    const index = uring.reserveFileIndex();
    const results = await uring.chain((c) =>
      c.openDirect(`${dir.path}/b`, index, { flags: 1 }).writeDirect(index, new Uint8Array([98]), 0)
        .closeDirect(index)
    );
    assert.ok(results.every((r) => r.ok));
    uring.releaseFileIndex(index);
    assert.equal(Deno.readTextFileSync(`${dir.path}/b`), "b");
  },
});

Deno.test({
  name: "Uring.open with direct where O_DIRECT is refused: the EINVAL says O_DIRECT is why",
  ignore: skipKernel(),
  fn: async () => {
    await using uring = new Uring({ sqpoll: false });
    await assert.rejects(
      uring.open("/dev/null", { direct: true }),
      /^TypeError: open '\/dev\/null': Invalid argument \(EINVAL\): opened with O_DIRECT \(direct: true\), which this file or its file system refuses$/,
    );
  },
});

Deno.test({
  name: "Uring: a NUL byte in a path is refused naming the argument it is in",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const uring = new Uring({ sqpoll: false });
    try {
      const ok = `${dir.path}/ok`;
      Deno.writeTextFileSync(ok, "x");
      const bad = `${dir.path}/x\0y`;
      await assert.rejects(uring.open(bad), /^TypeError: \w+: path contains a NUL byte/);
      await assert.rejects(uring.rename(ok, bad), /^TypeError: \w+: newPath contains a NUL byte/);
      await assert.rejects(uring.rename(bad, ok), /^TypeError: \w+: oldPath contains a NUL byte/);
      await assert.rejects(uring.link(ok, bad), /^TypeError: \w+: newPath contains a NUL byte/);
      await assert.rejects(
        uring.symlink("a\0b", `${dir.path}/l`),
        /^TypeError: \w+: target contains a NUL byte/,
      );
      await assert.rejects(uring.symlink("t", bad), /^TypeError: \w+: path contains a NUL byte/);
    } finally {
      await uring.close();
    }
  },
});

Deno.test({
  name: "Uring: a read or write that would end past the largest file offset is refused before the kernel",
  ignore: skipKernel(),
  async fn() {
    // The kernel answered a bare EINVAL.
    using dir = tempDir();
    await using uring = new Uring({ sqpoll: false });
    await using file = await uring.open(`${dir.path}/f`, { read: true, write: true, create: true });
    const buf = new Uint8Array(16);
    await assert.rejects(
      file.writeAt(buf, 2n ** 63n - 1n),
      /^RangeError: .*position \+ length must be at most 2\^63 - 1 \(the largest file offset\), got 9223372036854775807 \+ 16$/,
    );
    await assert.rejects(
      uring.readv(file.fd, [buf, buf], 2n ** 63n - 20n),
      /position \+ length must be at most/,
    );
    // The same for a splice's offsets; -1 as a bigint is the fd's own position, as -1 is.
    const [r, w] = pipe();
    try {
      await assert.rejects(
        uring.splice(file.fd, 2n ** 63n - 16n, w, -1, 100),
        /offIn \+ length|position \+ length must be at most/,
      );
      sysWrite(w, new Uint8Array(3));
      assert.equal(await uring.splice(r, -1n, file.fd, 0, 3), 3);
    } finally {
      sysClose(r);
      sysClose(w);
    }
    // (Before any index was reserved, a release was ignored.)
    const fresh = new Uring({ sqpoll: false });
    try {
      assert.throws(() => fresh.releaseFileIndex(0), /^RangeError: file index 0 is not reserved$/);
    } finally {
      await fresh.close();
    }
  },
});

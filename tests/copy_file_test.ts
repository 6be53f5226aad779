import assert from "node:assert/strict";
import {
  copyFile,
  type CopyProgress,
  copyTree,
  cstring,
  getSys,
  IORING_FEAT_CQE_SKIP,
  IORING_FEAT_LINKED_FILE,
  IORING_OP_MKDIRAT,
  IoUring,
  IoUringError,
  type IoUringOptions,
  type Probe,
  Uring,
  type UringOptions,
} from "../mod.ts";
import { memoryDiesWithThread } from "../src/ring.ts";
import { ringTest, runAsNobody, skipKernel, tempDir, whyNoNobodyChild } from "./_support.ts";
import { mkfifo } from "./_io.ts";
import { createCopyUring, isUnavailableError, missingForCopies } from "../src/copy_context.ts";
import { copyFailure, tagStage } from "../src/copy_errors.ts";
import { entryFromFileInfo, STEPS_AT_ONCE } from "../src/copy_deno_engine.ts";
import { entryFromStatx, makedev } from "../src/copy_uring_engine.ts";
import { childResults, fdCount, MOD_URL, runDeno, uringOptions } from "./uring_support.ts";
import { KEPT_LANES, LINGER_MS, sharedCopyRing } from "../src/copy_shared_ring.ts";
import {
  fingerprint,
  permOf,
  randomFile,
  sha256File,
  sharedRingClosed,
  sparseFile,
  tempLeftovers,
  withTmpfs,
} from "./copy_support.ts";

const BS = 64 * 1024;
const SIZES = [0, 1, 4095, 4096, 4097, BS - 1, BS, BS + 1, 3 * BS + 1];

ringTest(
  "copyFile: sizes around the page and block size are byte-identical and keep the mode",
  async (config) => {
    using dir = tempDir();
    await using uring = new Uring(uringOptions(config, { entries: 64 }));
    const modes = [0o644, 0o600, 0o755, 0o640, 0o444, 0o751, 0o700, 0o604, 0o4755];
    for (let i = 0; i < SIZES.length; i++) {
      const size = SIZES[i];
      const mode = modes[i % modes.length];
      const src = `${dir.path}/src-${size}`;
      const dst = `${dir.path}/dst-${size}`;
      const hash = await randomFile(src, size, mode);
      const seen: CopyProgress[] = [];
      const result = await copyFile(src, dst, {
        uring,
        blockSize: BS,
        queueDepth: 4,
        onProgress: (p) => seen.push(p),
      });
      assert.equal(result.files, 1);
      assert.equal(result.bytes, size);
      assert.equal(result.dirs, 0);
      assert.equal(result.engine, "io_uring");
      assert.ok(result.ms >= 0);
      assert.equal(await sha256File(dst), hash, `content of a ${size}-byte copy`);
      assert.equal(Deno.statSync(dst).size, size);
      // (Setuid and setgid are not copied: the copy is the copier's, not the source owner's.)
      assert.equal(permOf(dst).toString(8), (mode & ~0o6000).toString(8), `mode of a ${size}-byte copy`);
      const last = seen[seen.length - 1];
      assert.deepEqual(
        { bytes: last.bytes, files: last.files, totalBytes: last.totalBytes, totalFiles: last.totalFiles },
        { bytes: size, files: 1, totalBytes: size, totalFiles: 1 },
      );
    }
    assert.deepEqual(tempLeftovers(dir.path), []);
    assert.equal(uring.pending, 0);
  },
);

ringTest("copyFile: 64 MiB of random bytes, default options and a small queue", async (config) => {
  using dir = tempDir();
  const src = `${dir.path}/big`;
  const hash = await randomFile(src, 64 * 1024 * 1024, 0o640);
  await using uring = new Uring(uringOptions(config, { entries: 128 }));
  const a = await copyFile(src, `${dir.path}/copy-a`, { uring });
  assert.equal(a.bytes, 64 * 1024 * 1024);
  assert.equal(await sha256File(`${dir.path}/copy-a`), hash);
  assert.equal(permOf(`${dir.path}/copy-a`), 0o640);
  // Odd block size (not a power of two) and queue depth 1: the same bytes.
  await copyFile(src, `${dir.path}/copy-b`, { uring, queueDepth: 1, blockSize: 1000 * 1000 + 7 });
  assert.equal(await sha256File(`${dir.path}/copy-b`), hash);
});

Deno.test({
  name: "copyFile: makes and closes its own ring; URL paths; symlinked source is followed",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const hash = await randomFile(`${dir.path}/src`, 300_000, 0o600);
    Deno.symlinkSync(`${dir.path}/src`, `${dir.path}/link`);
    const result = await copyFile(new URL(`file://${dir.path}/link`), new URL(`file://${dir.path}/dst`));
    assert.equal(result.bytes, 300_000);
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
    assert.ok(Deno.lstatSync(`${dir.path}/dst`).isFile, "the copy is a file, not a link");
    assert.equal(permOf(`${dir.path}/dst`), 0o600);
  },
});

/** A Uring whose writes move at most 777 bytes (odd sizes, as a slow device might); counts them. */
class ShortWrites extends Uring {
  shortWrites = 0;
  override write(
    fd: number,
    buf: ArrayBufferView,
    position: number | bigint,
    options?: { signal?: AbortSignal },
  ) {
    if (buf.byteLength > 777) {
      this.shortWrites++;
      buf = new Uint8Array(buf.buffer, buf.byteOffset, 777);
    }
    return super.write(fd, buf, position, options);
  }
}

/** {@link ShortWrites} whose reads also move at most 1000 bytes. */
class ShortReadsAndWrites extends ShortWrites {
  shortReads = 0;
  override read(
    fd: number,
    buf: ArrayBufferView,
    position: number | bigint,
    options?: { signal?: AbortSignal },
  ) {
    if (buf.byteLength > 1000) {
      this.shortReads++;
      buf = new Uint8Array(buf.buffer, buf.byteOffset, 1000);
    }
    return super.read(fd, buf, position, options);
  }
}

Deno.test({
  name: "copyFile: short reads and writes are resumed until the block is done",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await using uring = new ShortReadsAndWrites({ sqpoll: false });
    const hash = await randomFile(`${dir.path}/src`, 3 * 16384 + 5, 0o644);
    const result = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, {
      uring,
      splice: false, // the buffered block path (by default the data moves by splice)
      blockSize: 16384,
      queueDepth: 3,
    });
    assert.equal(result.bytes, 3 * 16384 + 5);
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
    assert.ok(uring.shortReads > 0 && uring.shortWrites > 0, "the wrapper really shortened operations");
  },
});

Deno.test({
  name: "copyFile: a sparse source with 1 MiB blocks keeps its holes around little data; short writes resume",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    // Writes move at most 777 bytes: each run of data is written in many resumed pieces.
    await using uring = new ShortWrites({ sqpoll: false });
    const MiB = 1024 * 1024;
    const size = 4 * MiB + 123;
    const src = `${dir.path}/src`;
    // Data straddling a 64 KiB boundary inside the second 1 MiB block, and at the very end.
    if (!sparseFile(src, size, [[MiB + 64 * 1024 - 1500, 3000], [size - 5, 5]])) return;
    const result = await copyFile(src, `${dir.path}/dst`, { uring, blockSize: MiB, queueDepth: 4 });
    assert.equal(result.bytes, size);
    assert.equal(await sha256File(`${dir.path}/dst`), await sha256File(src));
    assert.ok(uring.shortWrites > 0, "the wrapper really shortened writes");
    const blocks = Deno.statSync(`${dir.path}/dst`).blocks!;
    // Three 64 KiB grains hold data; a copy that wrote whole 1 MiB blocks would allocate 2 MiB.
    assert.ok(blocks * 512 <= 512 * 1024, `the copy keeps its holes (${blocks} blocks allocated)`);
  },
});

Deno.test({
  name: "copyFile: a sparse source's holes are skipped (SEEK_DATA/SEEK_HOLE), not read",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const MiB = 1024 * 1024;
    const size = 64 * MiB + 7;
    const src = `${dir.path}/src`;
    if (!sparseFile(src, size, [[3 * MiB + 5, 100_000], [40 * MiB, 2 * MiB + 3], [size - 2, 2]])) return;
    await using uring = new Uring({ sqpoll: false });
    let read = 0;
    const { read: plainRead } = uring;
    uring.read = (...args: Parameters<typeof plainRead>) => {
      read += args[1].byteLength;
      return plainRead.apply(uring, args);
    };
    let progress = 0;
    const result = await copyFile(src, `${dir.path}/dst`, { uring, onProgress: (p) => progress = p.bytes });
    assert.equal(result.bytes, size);
    assert.equal(progress, size, "the holes count as copied");
    assert.equal(await sha256File(`${dir.path}/dst`), await sha256File(src));
    // The data is ~2.2 MiB in three places; reading every 1 MiB block would ask for 64 MiB.
    assert.ok(read <= 8 * MiB, `${read} bytes asked for`);
    assert.ok(Deno.statSync(`${dir.path}/dst`).blocks! * 512 <= 8 * MiB, "the copy keeps its holes");
  },
});

Deno.test({
  name: "copyFile: preserve keeps access and modification times (to the millisecond at least)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await randomFile(src, 10_000, 0o644);
    const atime = new Date("2001-02-03T04:05:06.789Z");
    const mtime = new Date("1999-12-31T23:59:58.123Z");
    Deno.utimeSync(src, atime, mtime);
    await copyFile(src, `${dir.path}/kept`, { preserve: true });
    const kept = Deno.statSync(`${dir.path}/kept`);
    assert.equal(kept.mtime?.getTime(), mtime.getTime());
    assert.equal(kept.atime?.getTime(), atime.getTime());
    await copyFile(src, `${dir.path}/fresh`);
    const fresh = Deno.statSync(`${dir.path}/fresh`);
    assert.ok(fresh.mtime!.getTime() > mtime.getTime() + 1000, "without preserve the copy is new");
  },
});

Deno.test({
  name: "copyFile/copyTree: preserve keeps times to the nanosecond (utimensat), files and directories",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/tree/sub`, { recursive: true });
    await randomFile(`${dir.path}/tree/sub/f`, 5000);
    // Times with nanoseconds (Deno.utime keeps milliseconds): set with the system layer itself.
    const set = (path: string, atime: [number, number], mtime: [number, number]) => {
      const times = new BigInt64Array([atime, mtime].flat().map(BigInt));
      assert.equal(getSys().utimens(cstring(path), new Uint8Array(times.buffer)), 0);
    };
    set(`${dir.path}/tree/sub/f`, [1000000001, 123456789], [999999999, 987654321]);
    set(`${dir.path}/tree/sub`, [1000000002, 5], [999999998, 999999999]);
    await using uring = new Uring({ sqpoll: false });
    const times = async (path: string) => {
      const s = await uring.statx(path);
      return [s.atime.sec, s.atime.nsec, s.mtime.sec, s.mtime.nsec];
    };
    // (Reading the source may move its access time afterwards: compare with what was set.)
    await copyFile(`${dir.path}/tree/sub/f`, `${dir.path}/f2`, { preserve: true });
    assert.deepEqual(await times(`${dir.path}/f2`), [1000000001, 123456789, 999999999, 987654321]);
    set(`${dir.path}/tree/sub/f`, [1000000001, 123456789], [999999999, 987654321]);
    await copyTree(`${dir.path}/tree`, `${dir.path}/copy`, { preserve: true });
    assert.deepEqual(await times(`${dir.path}/copy/sub/f`), [1000000001, 123456789, 999999999, 987654321]);
    assert.deepEqual(await times(`${dir.path}/copy/sub`), [1000000002, 5, 999999998, 999999999]);
  },
});

Deno.test({
  name: "copyFile: overwrite replaces an existing file atomically; the source is untouched",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    const hash = await randomFile(src, 200_000, 0o640);
    const before = await fingerprint(src);
    Deno.writeTextFileSync(`${dir.path}/dst`, "old content");
    Deno.chmodSync(`${dir.path}/dst`, 0o600);
    await copyFile(src, `${dir.path}/dst`, { overwrite: true });
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
    assert.equal(permOf(`${dir.path}/dst`), 0o640);
    // A destination symlink is replaced by the file (not written through).
    Deno.writeTextFileSync(`${dir.path}/target`, "target stays");
    Deno.symlinkSync(`${dir.path}/target`, `${dir.path}/via-link`);
    await copyFile(src, `${dir.path}/via-link`, { overwrite: true });
    assert.ok(Deno.lstatSync(`${dir.path}/via-link`).isFile);
    assert.equal(Deno.readTextFileSync(`${dir.path}/target`), "target stays");
    assert.equal(await fingerprint(src), before);
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name: "copyFile: a sparse file past 4 GiB keeps its size, its bytes past 4 GiB, and its holes",
  ignore: skipKernel(),
  fn: async () => {
    using scratch = tempDir();
    // On a small tmpfs holes read fast, and a copy that did not keep them would not fit.
    await withTmpfs(scratch.path, "64m", async (mount) => {
      if (mount.skip) console.log(`  (no tmpfs: ${mount.skip}; using ${scratch.path})`);
      const dir = mount.path ?? scratch.path;
      const src = `${dir}/sparse`;
      const size = 4 * 1024 ** 3 + 12345;
      const markers: Array<[number, string]> = [
        [0, "start"],
        [2 ** 32 - 3, "across-4GiB"], // straddles the 32-bit boundary
        [2 ** 32 + 100, "past-4GiB"],
        [2 ** 32 + 8192 + 17, "page-edge"],
        [size - 7, "the-end"],
      ];
      {
        using f = Deno.openSync(src, { write: true, create: true, truncate: true, mode: 0o640 });
        f.truncateSync(size);
        for (const [at, text] of markers) {
          f.seekSync(at, Deno.SeekMode.Start);
          const bytes = new TextEncoder().encode(text);
          let done = 0;
          while (done < bytes.length) done += f.writeSync(bytes.subarray(done));
        }
      }
      Deno.chmodSync(src, 0o640);
      const t0 = performance.now();
      const result = await copyFile(src, `${dir}/copy`);
      const ms = performance.now() - t0;
      console.log(
        `  sparse ${(size / 1024 ** 3).toFixed(2)} GiB copy on ${mount.path ? "tmpfs" : "disk"}: ${
          ms.toFixed(0)
        } ms`,
      );
      assert.equal(result.bytes, size);
      const info = Deno.statSync(`${dir}/copy`);
      assert.equal(info.size, size);
      assert.equal(info.mode! & 0o777, 0o640);
      assert.ok(info.blocks! * 512 < 64 * 1024 * 1024, `the copy stays sparse (${info.blocks} blocks)`);
      using f = Deno.openSync(`${dir}/copy`, { read: true });
      for (const [at, text] of markers) {
        f.seekSync(at, Deno.SeekMode.Start);
        const buf = new Uint8Array(text.length + 2);
        let got = 0;
        while (got < buf.length) {
          const n = f.readSync(buf.subarray(got));
          if (n === null) break;
          got += n;
        }
        const expected = new TextEncoder().encode(text);
        assert.deepEqual(buf.subarray(0, text.length), expected, `bytes at ${at}`);
        // The bytes right after a marker are zeros from the hole (or the end of the file).
        for (let i = text.length; i < got; i++) assert.equal(buf[i], 0, `zero after marker at ${at}`);
      }
    });
  },
});

Deno.test("a copy that fails in the ring's own system call says so, not that a file is unreadable", () => {
  // A probe: with io_uring_enter refused by seccomp (EPERM), copies said "source 'big' is not
  // readable (permission denied)": the plain words were picked by errno alone. The ring's call
  // says nothing about the files: the error keeps its class, its call, and its hint.
  for (const stage of ["open-source", "create", "stat-source"] as const) {
    const cause = tagStage(new IoUringError("io_uring_enter", 1), stage);
    const error = copyFailure(cause, "big", "/x/big");
    const fields = error as { code?: string; syscall?: string };
    assert.ok(error instanceof IoUringError, `${stage}: ${error.name}`);
    assert.doesNotMatch(error.message, /not readable|not writable|permission denied\)/);
    assert.match(error.message, /^cannot copy 'big' to '\/x\/big': .* failed: io_uring_enter failed: EPERM/);
    assert.match(error.message, /seccomp/);
    assert.equal(error.call, "io_uring_enter"); // (a re-check: the class kept, its fields were not)
    assert.match(error.hint!, /seccomp/);
    assert.equal(fields.code, "EPERM");
    assert.equal(fields.syscall, "io_uring_enter");
    assert.equal(error.cause, cause);
  }
  // (A file operation's EPERM still gets its plain words.)
  const fileError = Object.assign(new Error("open: Operation not permitted"), { code: "EPERM" });
  assert.match(copyFailure(tagStage(fileError, "open-source"), "a", "b").message, /is not readable/);
});

Deno.test("the fallback's whole-file copy (one call that reads and writes) blames neither side by stage", () => {
  // A probe: the fallback's EIO reading /proc/self/mem said "writing the destination failed".
  const eio = Object.assign(new Error("Input/output error (os error 5): copy 'a' -> 'b'"), { code: "EIO" });
  const error = copyFailure(tagStage(eio, "copy-data"), "a", "b");
  assert.match(
    error.message,
    /^cannot copy 'a' to 'b': copying the data failed: Input\/output error \(EIO\)/,
  );
  const full = Object.assign(new Error("No space left on device (os error 28)"), { code: "ENOSPC" });
  assert.match(
    copyFailure(tagStage(full, "copy-data"), "a", "b").message,
    /no space left on the destination/,
  );
});

Deno.test("copies fall back for io_uring refused, missing, too old for them or out of locked memory; not for other failures", () => {
  const ENOSYS = 38, EPERM = 1, EINVAL = 22, ENOMEM = 12, EACCES = 13;
  assert.equal(isUnavailableError(new IoUringError("io_uring_setup", EPERM)), true);
  assert.equal(isUnavailableError(new IoUringError("io_uring_setup", EACCES)), true); // an LSM (a probe)
  assert.equal(isUnavailableError(new IoUringError("io_uring_setup", ENOSYS)), true);
  assert.equal(isUnavailableError(new IoUringError("io_uring", ENOSYS, "too old")), true);
  assert.equal(isUnavailableError(new IoUringError("io_uring_setup", EINVAL)), false);
  assert.equal(isUnavailableError(new IoUringError("io_uring_setup", ENOMEM)), true);
  assert.equal(isUnavailableError(new IoUringError("io_uring_register", ENOMEM)), false);
  assert.equal(isUnavailableError(new IoUringError("io_uring", ENOMEM)), false);
  assert.equal(isUnavailableError(new IoUringError("io_uring_enter", ENOSYS)), false);
  assert.equal(isUnavailableError(new Error("io_uring_setup")), false);
});

Deno.test({
  name: "createCopyUring: this kernel's io_uring has what copies need (a Uring, mkdirat, direct descriptors)",
  ignore: skipKernel(),
  fn: async () => {
    const uring = createCopyUring(8, false);
    assert.ok(uring instanceof Uring);
    await uring.close();
  },
});

Deno.test({
  name:
    "copyFile/copyTree: setuid and setgid are not copied (the copy is the copier's), on io_uring and the fallback",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/tree`);
    // (chmod after writing: a write by anyone without CAP_FSETID clears the bits)
    for (const [name, size] of [["small", 100], ["big", 3 << 20]] as const) {
      await randomFile(`${dir.path}/tree/${name}`, size);
      Deno.chmodSync(`${dir.path}/tree/${name}`, 0o6755);
    }
    Deno.chmodSync(`${dir.path}/tree`, 0o2755); // a directory's setgid is kept, as before
    const cases = [["io_uring", undefined], ["deno", "1"]] as const;
    for (const [engine, force] of cases) {
      if (force) Deno.env.set("URING_FORCE_UNAVAILABLE", force);
      try {
        for (const name of ["small", "big"]) {
          const dst = `${dir.path}/${engine}-${name}`;
          const r = await copyFile(`${dir.path}/tree/${name}`, dst, { preserve: true });
          assert.equal(r.engine, engine);
          assert.equal(permOf(dst).toString(8), "755", `${engine}, ${name}`);
        }
        const r = await copyTree(`${dir.path}/tree`, `${dir.path}/${engine}-tree`);
        assert.equal(r.engine, engine);
        assert.equal(permOf(`${dir.path}/${engine}-tree`).toString(8), "2755");
        for (const name of ["small", "big"]) {
          assert.equal(
            permOf(`${dir.path}/${engine}-tree/${name}`).toString(8),
            "755",
            `${engine} tree, ${name}`,
          );
        }
      } finally {
        Deno.env.delete("URING_FORCE_UNAVAILABLE");
      }
    }
  },
});

Deno.test({
  name:
    "copyFile on Deno's engine: one thread-pool round trip a file (Deno.copyFile), the looks and the rename at once",
  ignore: skipKernel(),
  fn: async () => {
    // A small file's copy on the fallback made eight asynchronous calls (stat, two opens, copyFile,
    // stat, chmod, link, remove), each a round trip through Deno's thread pool: 308 µs a file one
    // after another, against 70 µs for Deno.copyFile alone. Only the data goes off the thread now.
    using dir = tempDir();
    for (let i = 0; i < 5; i++) Deno.writeTextFileSync(`${dir.path}/f${i}`, "x".repeat(100 + i));
    Deno.writeTextFileSync(`${dir.path}/taken`, "keep me");
    const names = ["stat", "lstat", "open", "link", "remove", "rename", "chmod", "copyFile"] as const;
    const calls: Record<string, number> = {};
    const originals = names.map((name) => [name, Deno[name]] as const);
    for (const [name, original] of originals) {
      calls[name] = 0;
      // deno-lint-ignore no-explicit-any
      (Deno as any)[name] = (...args: unknown[]) => (calls[name]++, (original as any)(...args));
    }
    Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
    try {
      for (let i = 0; i < 5; i++) {
        const r = await copyFile(`${dir.path}/f${i}`, `${dir.path}/c${i}`);
        assert.equal(r.engine, "deno");
        assert.equal(r.bytes, 100 + i);
      }
      // Still refused without clobbering (the link fails with EEXIST), with nothing left behind.
      await assert.rejects(copyFile(`${dir.path}/f0`, `${dir.path}/taken`), Deno.errors.AlreadyExists);
    } finally {
      Deno.env.delete("URING_FORCE_UNAVAILABLE");
      for (const [name, original] of originals) {
        // deno-lint-ignore no-explicit-any
        (Deno as any)[name] = original;
      }
    }
    assert.deepEqual(calls, {
      stat: 0,
      lstat: 0,
      open: 0,
      link: 0,
      remove: 0,
      rename: 0,
      chmod: 0,
      copyFile: 5,
    });
    for (let i = 0; i < 5; i++) {
      assert.equal(Deno.readTextFileSync(`${dir.path}/c${i}`), "x".repeat(100 + i));
      assert.equal(permOf(`${dir.path}/c${i}`), permOf(`${dir.path}/f${i}`));
    }
    assert.equal(Deno.readTextFileSync(`${dir.path}/taken`), "keep me");
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name:
    "copyFile on Deno's engine: a source that became a FIFO waits for a writer off the main thread, then fails",
  ignore: skipKernel(),
  fn: async () => {
    // The fallback makes its looks and creations at once on this thread, but opens no source
    // there: one swapped for a FIFO after it was looked at waits for a writer, and nothing
    // (timers, signals, Ctrl-C) would run until then. Deno.copyFile then refuses it; the copy
    // fails (it hung before: the source's first open took the writer, the second waited for another).
    using dir = tempDir();
    const fifo = `${dir.path}/fifo`;
    mkfifo(fifo);
    const statSync = Deno.statSync;
    // Looked at before the swap (once): a regular file of 5 bytes.
    Deno.statSync = (path) => {
      const info = statSync(path);
      if (String(path) !== fifo) return info;
      Deno.statSync = statSync;
      return { ...info, isFile: true, isFifo: false, size: 5 };
    };
    // (Deno.copyFile opens its source twice: a writer for each, the second given up after 3 s.)
    const writes = `printf data > '${fifo}'; timeout 3 sh -c "printf more > '${fifo}'"`;
    const writer = new Deno.Command("sh", { args: ["-c", `sleep 1; ${writes}`] }).spawn();
    Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
    const started = performance.now();
    let firedAt = Infinity;
    const timer = setTimeout(() => firedAt = performance.now() - started, 50);
    try {
      await assert.rejects(copyFile(fifo, `${dir.path}/dst`), (e: Error & { path?: string }) => {
        assert.match(e.message, /^cannot copy '.*\/fifo' to '.*\/dst': .*regular file/, String(e));
        assert.equal(e.path, fifo);
        return true;
      });
    } finally {
      clearTimeout(timer);
      Deno.env.delete("URING_FORCE_UNAVAILABLE");
      Deno.statSync = statSync;
      await writer.status;
    }
    assert.ok(firedAt < 900, `a 50 ms timer ran at ${firedAt.toFixed(0)} ms, while the open waited`);
    assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["fifo"]);
  },
});

Deno.test({
  name: "copyFile on Deno's engine: many copies started at once let the event loop turn between their steps",
  ignore: skipKernel(),
  fn: async () => {
    // The fallback makes its looks and creates at once on this thread; 5,000 copies started together
    // made all their creates in one turn of the event loop (3.8 s in one ext4 directory), and no
    // timer, signal or abort ran meanwhile. Past STEPS_AT_ONCE steps between two of its thread-pool
    // calls settling, it makes them on the pool. Here each create takes ~1 ms on this thread: a
    // timer due at once must run long before the 300th.
    using dir = tempDir();
    for (let i = 0; i < 300; i++) Deno.writeTextFileSync(`${dir.path}/f${i}`, "x");
    const openSync = Deno.openSync, open = Deno.open;
    let creates = 0, createsBeforeTimer = -1;
    const isTemp = (path: string | URL) => String(path).includes(".uring-tmp-");
    Deno.openSync = (path, options) => {
      if (isTemp(path)) {
        for (const until = performance.now() + 1; performance.now() < until;) { /* a slow file system */ }
      }
      const file = openSync(path, options);
      if (isTemp(path)) creates++;
      return file;
    };
    Deno.open = async (path, options) => {
      const file = await open(path, options);
      if (isTemp(path)) creates++;
      return file;
    };
    Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
    try {
      setTimeout(() => createsBeforeTimer = creates, 0);
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => copyFile(`${dir.path}/f${i}`, `${dir.path}/c${i}`)),
      );
      assert.ok(results.every((r) => r.engine === "deno" && r.bytes === 1));
    } finally {
      Deno.env.delete("URING_FORCE_UNAVAILABLE");
      Deno.openSync = openSync;
      Deno.open = open;
    }
    assert.equal(creates, 300);
    assert.ok(
      createsBeforeTimer >= 0 && createsBeforeTimer <= STEPS_AT_ONCE + 40,
      `the timer ran after ${createsBeforeTimer} of the 300 creates`,
    );
  },
});

Deno.test("missingForCopies: names mkdirat (5.15) and IORING_FEAT_LINKED_FILE (5.17) when a kernel lacks them", () => {
  const ring = (features: number, mkdirat: boolean) => ({
    hasFeature: (f: number) => (features & f) === f,
    probe: () => ({ supports: (op: number) => op === IORING_OP_MKDIRAT && mkdirat }) as Probe,
  });
  // Before 5.15: neither (a kernel with the feature has mkdirat).
  assert.deepEqual(
    missingForCopies(ring(~IORING_FEAT_LINKED_FILE, false)),
    { what: "IORING_OP_MKDIRAT", version: "5.15" },
  );
  // 5.15 and 5.16: mkdirat, but a chain's later members looked their files up at submission.
  const linked = missingForCopies(ring(~IORING_FEAT_LINKED_FILE, true));
  assert.equal(linked?.version, "5.17");
  assert.match(linked?.what ?? "", /^IORING_FEAT_LINKED_FILE/);
  assert.equal(missingForCopies(ring(~0, true)), null);
});

Deno.test({
  name:
    "copyFile on a caller's Uring whose kernel lacks IORING_FEAT_LINKED_FILE falls back, or fails as asked",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const hash = await randomFile(`${dir.path}/src`, 10_000, 0o640);
    await using uring = new Uring({ sqpoll: false });
    // A 5.15/5.16 kernel, as far as the copy can tell.
    const real = uring.ring.hasFeature.bind(uring.ring);
    uring.ring.hasFeature = (f: number) => f !== IORING_FEAT_LINKED_FILE && real(f);
    const result = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, { uring });
    assert.equal(result.engine, "deno");
    assert.match(result.fallbackReason ?? "", /IORING_FEAT_LINKED_FILE.*Linux 5\.17/);
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
    await assert.rejects(
      copyFile(`${dir.path}/src`, `${dir.path}/dst2`, { uring, fallback: false }),
      (e: unknown) => e instanceof IoUringError && e.code === "ENOSYS" && /5\.17/.test(e.message),
    );
    assert.throws(() => Deno.lstatSync(`${dir.path}/dst2`), Deno.errors.NotFound);
  },
});

const noMemlockTest = skipKernel() ? "no io_uring" : whyNoNobodyChild();
if (noMemlockTest !== null) console.log(`skipping the RLIMIT_MEMLOCK copy test: ${noMemlockTest}`);

Deno.test({
  name:
    "copyFile: copies straight after each other under a small RLIMIT_MEMLOCK wait for the last ring's charge",
  ignore: noMemlockTest !== null,
  fn: async () => {
    // Without CAP_IPC_LOCK, a ring's memory counts against RLIMIT_MEMLOCK, and a closed ring's
    // charge goes back only when the kernel has torn it down (~20 ms): at 64 KiB, every copy but
    // the first failed with ENOMEM.
    const out = await runAsNobody(
      ["--memlock=65536:65536"],
      `import { copyFile } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
Deno.writeTextFileSync("src", "x".repeat(10_000));
const results = [];
for (let i = 0; i < 5; i++) {
  try {
    const r = await copyFile("src", "dst" + i, { fallback: false });
    results.push(r.engine + " " + r.bytes);
  } catch (e) {
    results.push(String(e.message));
  }
}
console.log(JSON.stringify(results));
`,
    );
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), Array(5).fill("io_uring 10000"));
  },
});

Deno.test({
  name:
    "copyFile and cp: with no locked memory for a ring (RLIMIT_MEMLOCK 0), copies fall back to Deno's APIs",
  ignore: noMemlockTest !== null,
  fn: async () => {
    // io_uring_setup fails with ENOMEM for every ring there (on 6.18 a ring's memory counts
    // against RLIMIT_MEMLOCK without CAP_IPC_LOCK), while Deno's file APIs need none.
    const out = await runAsNobody(
      ["--memlock=0:0"],
      `import { copyFile, copyTree } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
import { main } from ${JSON.stringify(new URL("../src/cli/cp.ts", import.meta.url).href)};
Deno.writeTextFileSync("src", "x".repeat(10_000));
Deno.mkdirSync("tree/sub", { recursive: true });
Deno.writeTextFileSync("tree/sub/f", "y".repeat(5_000));
const results = [];
const r = await copyFile("src", "dst");
results.push([r.engine, r.bytes, /ENOMEM/.test(r.fallbackReason ?? ""), Deno.readTextFileSync("dst").length]);
const t = await copyTree("tree", "tree2");
results.push([t.engine, t.files, Deno.readTextFileSync("tree2/sub/f").length]);
try {
  await copyFile("src", "dst-strict", { fallback: false });
  results.push("copied");
} catch (e) {
  results.push([e.constructor.name, e.call, e.code]);
}
const err = [];
const io = { out: () => {}, err: (t) => err.push(t), isTerminal: false, columns: 80 };
results.push([await main(["src", "dst-cli"], io), Deno.readTextFileSync("dst-cli").length, err.join("")]);
console.log(JSON.stringify(results));
`,
    );
    assert.equal(out.code, 0, out.stderr);
    const [file, tree, strict, cli] = JSON.parse(out.stdout);
    assert.deepEqual(file, ["deno", 10_000, true, 10_000]);
    assert.deepEqual(tree, ["deno", 1, 5_000]);
    assert.deepEqual(strict, ["IoUringError", "io_uring_setup", "ENOMEM"]);
    assert.equal(cli[0], 0);
    assert.equal(cli[1], 10_000);
    assert.match(cli[2], /^cp: io_uring is unavailable \(ENOMEM\), copying with Deno's file APIs instead/);
  },
});

Deno.test({
  name: "missingForCopies: this kernel's ring has everything",
  ignore: skipKernel(),
  fn: () => {
    using ring = new IoUring(4, { sqpoll: false });
    assert.equal(missingForCopies(ring), null);
  },
});

Deno.test({
  name: "copyFile: falls back to Deno's APIs when io_uring is unavailable (URING_FORCE_UNAVAILABLE=1)",
  fn: async () => {
    using dir = tempDir();
    const hash = await randomFile(`${dir.path}/src`, 100_000, 0o604);
    Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
    try {
      const result = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, { preserve: true });
      assert.equal(result.engine, "deno");
      assert.match(result.fallbackReason ?? "", /io_uring_setup failed: EPERM/);
      assert.equal(result.bytes, 100_000);
      assert.equal(await sha256File(`${dir.path}/dst`), hash);
      assert.equal(permOf(`${dir.path}/dst`), 0o604);
      assert.equal(
        Deno.statSync(`${dir.path}/dst`).mtime?.getTime(),
        Deno.statSync(`${dir.path}/src`).mtime?.getTime(),
      );
      // The same failure rules hold on the fallback.
      await assert.rejects(
        copyFile(`${dir.path}/src`, `${dir.path}/dst`),
        (e: Error & { code?: string }) =>
          e instanceof Deno.errors.AlreadyExists && e.code === "EEXIST" &&
          e.message.includes(`${dir.path}/dst`),
      );
      await assert.rejects(
        copyFile(`${dir.path}/src`, `${dir.path}/dst`, { fallback: false }),
        (e: IoUringError) => e instanceof IoUringError && e.code === "EPERM" && e.call === "io_uring_setup",
      );
      assert.deepEqual(tempLeftovers(dir.path), []);
    } finally {
      Deno.env.delete("URING_FORCE_UNAVAILABLE");
    }
  },
});

Deno.test("copyFile: bad options are rejected before any I/O", async () => {
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ queueDepth: 0 }, /queueDepth must be an integer from 1/],
    [{ queueDepth: 1.5 }, /queueDepth/],
    [{ blockSize: 100 }, /blockSize must be an integer from 512/],
    [{ blockSize: 2 ** 30 }, /blockSize/],
    [{ onProgress: 5 }, /onProgress must be a function/],
    [{ signal: {} }, /signal must be an AbortSignal/],
    [{ direct: "yes" }, /direct must be a boolean/],
    [{ queueDepth: "8" }, /queueDepth must be an integer from 1 to \d+, got "8" \(a string\)$/],
    [{ overwrite: "no" }, /overwrite must be a boolean, got "no" \(a string\)$/],
    [{ preserve: 1 }, /preserve must be a boolean/],
    [{ sqpoll: "true" }, /sqpoll must be a boolean/],
    [{ fallback: 0 }, /fallback must be a boolean/],
    [{ continueOnError: "yes" }, /continueOnError must be a boolean/],
    [{ uring: {} }, /uring must be a Uring/],
    [[] as unknown as Record<string, unknown>, /^TypeError: options must be an object, got an array$/],
    [64 as unknown as Record<string, unknown>, /^TypeError: options must be an object, got 64$/],
  ];
  for (const [options, message] of bad) {
    await assert.rejects(copyFile("/nonexistent/a", "/nonexistent/b", options), message);
  }
  await assert.rejects(copyFile("", "/x"), /src must not be empty/);
});

Deno.test({
  name: "copyFile: a one-block file that changes size before its chain runs is redone by the block path",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    let chains = 0;
    // A Uring that changes the source right before the one-block chain is queued (the copy takes
    // the chain's two file-table indexes just before): the chain's read comes back short
    // (shrunk) and the block path redoes the file from scratch.
    let change: (() => void) | null = null;
    class ChangingUring extends Uring {
      override reserveFileIndex() {
        change?.();
        change = null;
        return super.reserveFileIndex();
      }
      override chain(...args: Parameters<Uring["chain"]>) {
        chains++;
        return super.chain(...args);
      }
    }
    await using uring = new ChangingUring({ sqpoll: false });
    // With CQE skipping (5.17) the one-block chain goes straight into the ring, not by chain().
    const direct = uring.ring.hasFeature(IORING_FEAT_CQE_SKIP) ? 0 : 1;
    await randomFile(`${d}/shrinks`, 50_000, 0o644);
    change = () => Deno.truncateSync(`${d}/shrinks`, 12_345);
    let fixed = uring.stats.fixedFiles;
    const shrunk = await copyFile(`${d}/shrinks`, `${d}/shrinks.copy`, {
      uring,
      blockSize: BS,
      queueDepth: 8,
    });
    // The copy's chain failed short, so its closes were cancelled: one chain more for each file.
    assert.equal(uring.stats.fixedFiles - fixed, 2, "the chain's read and write were queued");
    // Then the block path splices: one chain comes back short with the 12,345 bytes, the next
    // finds the end of the file.
    assert.equal(
      chains,
      direct + 2 + 2,
      "the one-block chain ran, then two closes of what it had opened, then two splice chains",
    );
    assert.equal(shrunk.bytes, 12_345);
    assert.equal(await sha256File(`${d}/shrinks.copy`), await sha256File(`${d}/shrinks`));

    await randomFile(`${d}/grows`, 40_000, 0o600);
    const grown = Deno.readFileSync(`${d}/grows`);
    change = () => Deno.writeFileSync(`${d}/grows`, new Uint8Array(10_000).fill(7), { append: true });
    chains = 0;
    fixed = uring.stats.fixedFiles;
    const result = await copyFile(`${d}/grows`, `${d}/grows.copy`, { uring, blockSize: BS, queueDepth: 8 });
    // The size looked at is what is copied (as the block path does): the first 40,000 bytes.
    assert.equal(uring.stats.fixedFiles - fixed, 2, "the chain's read and write were queued");
    assert.equal(chains, direct, "the chain alone did it");
    assert.equal(result.bytes, 40_000);
    assert.deepEqual(Deno.readFileSync(`${d}/grows.copy`), grown);
    assert.equal(permOf(`${d}/grows.copy`), 0o600);
    assert.deepEqual(tempLeftovers(d), []);
    // Nothing stays open in the file table: every index can be reserved again.
    const taken: number[] = [];
    for (let i = uring.reserveFileIndex(); i >= 0; i = uring.reserveFileIndex()) taken.push(i);
    assert.equal(taken.length, 64);
    for (const i of taken) uring.releaseFileIndex(i);

    // Gone before its chain ran: the open fails, naming the file, and no destination is left.
    await randomFile(`${d}/vanishes`, 1000, 0o644);
    change = () => Deno.removeSync(`${d}/vanishes`);
    await assert.rejects(
      copyFile(`${d}/vanishes`, `${d}/vanishes.copy`, { uring, blockSize: BS, queueDepth: 8 }),
      (e: Error) => e instanceof Deno.errors.NotFound && e.message.includes(`${d}/vanishes`),
    );
    assert.throws(() => Deno.lstatSync(`${d}/vanishes.copy`), Deno.errors.NotFound);
    assert.deepEqual(tempLeftovers(d), []);
  },
});

Deno.test({
  name: "copyFile/copyTree: without CQE skipping (before 5.17) one-block files go through Uring.chain",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    let chains = 0;
    class CountingUring extends Uring {
      override chain(...args: Parameters<Uring["chain"]>) {
        chains++;
        return super.chain(...args);
      }
    }
    await using uring = new CountingUring({ sqpoll: false });
    // As a kernel without IORING_FEAT_CQE_SKIP reports itself.
    const ring = uring.ring;
    const real = ring.hasFeature.bind(ring);
    ring.hasFeature = (feature: number) => feature !== IORING_FEAT_CQE_SKIP && real(feature);
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    const hashes: string[] = [];
    for (const [i, path] of ["a", "sub/b", "sub/c"].entries()) {
      hashes.push(await randomFile(`${d}/src/${path}`, 1000 + i * 20_000, 0o640));
    }
    const result = await copyTree(`${d}/src`, `${d}/dst`, { uring, blockSize: BS });
    assert.equal(result.files, 3);
    assert.equal(chains, 3, "one chain per file");
    assert.equal(uring.stats.fixedFiles, 6, "each read and write on direct descriptors");
    for (const [i, path] of ["a", "sub/b", "sub/c"].entries()) {
      assert.equal(await sha256File(`${d}/dst/${path}`), hashes[i]);
      assert.equal(permOf(`${d}/dst/${path}`), 0o640);
    }
  },
});

Deno.test({
  name:
    "copyFile/copyTree on a caller's Uring smaller than a chain: one-block files and splice lanes step aside",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/src`);
    const hashes = new Map<string, string>();
    // One-block files (their chain has six members) and a file of three blocks (splice lanes: two
    // members per chunk).
    for (
      const [name, size] of [["a", 1], ["b", 5000], ["c", 70_000], ["big", 3 * 1024 * 1024 + 5]] as const
    ) {
      hashes.set(name, await randomFile(`${dir.path}/src/${name}`, size));
    }
    for (const entries of [1, 2, 4]) {
      await using uring = new Uring({ entries, sqpoll: false });
      assert.ok(uring.ring.sqEntries < 6, `a ring of ${uring.ring.sqEntries} SQEs`);
      const one = await copyFile(`${dir.path}/src/b`, `${dir.path}/b-${entries}`, { uring });
      assert.equal(one.bytes, 5000);
      assert.equal(await sha256File(`${dir.path}/b-${entries}`), hashes.get("b"));
      const tree = await copyTree(`${dir.path}/src`, `${dir.path}/dst-${entries}`, { uring });
      assert.equal(tree.files, hashes.size);
      for (const [name, hash] of hashes) {
        assert.equal(
          await sha256File(`${dir.path}/dst-${entries}/${name}`),
          hash,
          `${entries} entries: ${name}`,
        );
      }
    }
  },
});

Deno.test({
  name: "copyFile: a file that says it is empty but has content (/proc) is copied to its end, as cp does",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    // Deno opens files under /proc only with --allow-all, and so does the copy: run it in a child.
    const mod = new URL("../mod.ts", import.meta.url).href;
    const script = `
      const { copyFile } = await import(${JSON.stringify(mod)});
      const dir = ${JSON.stringify(dir.path)};
      Deno.writeFileSync(dir + "/empty", new Uint8Array());
      const results = [];
      for (const [src, dst] of [["/proc/version", "version"], ["/proc/self/limits", "limits"], [dir + "/empty", "empty2"]]) {
        const { bytes } = await copyFile(src, dir + "/" + dst);
        results.push(bytes);
      }
      console.log(JSON.stringify({
        results,
        versionSize: Deno.statSync("/proc/version").size,
        version: Deno.readTextFileSync("/proc/version"),
      }));
    `;
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--quiet", "-A", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(code, 0, dec.decode(stderr));
    const out = JSON.parse(dec.decode(stdout));
    const [version, limits, empty] = out.results as number[];
    assert.equal(out.versionSize, 0, "/proc/version says it is empty");
    assert.ok(version > 0 && limits > 0, `copied ${version} and ${limits} bytes`);
    assert.equal(Deno.readTextFileSync(`${dir.path}/version`), out.version);
    assert.equal(Deno.statSync(`${dir.path}/version`).size, version);
    assert.match(Deno.readTextFileSync(`${dir.path}/limits`), /^Limit +Soft Limit/);
    assert.equal(empty, 0);
    assert.equal(Deno.statSync(`${dir.path}/empty2`).size, 0);
  },
});

Deno.test({
  name: "copyFile: a regular file named with a trailing slash is refused as not a directory, as cp does",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    await randomFile(`${dir.path}/src`, 100);
    await assert.rejects(
      copyFile(`${dir.path}/src/`, `${dir.path}/dst`),
      (e: Error & { code?: string }) =>
        e.code === "ENOTDIR" && /source '.*\/src\/' is not a directory/.test(e.message),
    );
    assert.throws(() => Deno.statSync(`${dir.path}/dst`), Deno.errors.NotFound);
    assert.deepEqual(tempLeftovers(dir.path), []);
    assert.equal((await copyFile(`${dir.path}/src`, `${dir.path}/dst`)).bytes, 100);
  },
});

Deno.test({
  name: "copyFile/copyTree on a polled Uring without direct: true are refused before any I/O",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    await randomFile(`${dir.path}/src`, 100);
    await using uring = new Uring({ iopoll: true, sqpoll: false });
    for (const copy of [copyFile, copyTree]) {
      await assert.rejects(
        copy(`${dir.path}/src`, `${dir.path}/dst`, { uring }),
        (e: Error) => e instanceof TypeError && /iopoll: true.*direct: true/.test(e.message),
      );
    }
    assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["src"]);
  },
});

Deno.test({
  name:
    "copy ids: statx's device numbers (makedev) give the same id as Deno.lstat's, on several file systems",
  ignore: skipKernel(),
  fn: async () => {
    assert.equal(makedev(8, 1), 0x801);
    assert.equal(makedev(0, 300), 0x100000 * 1 + 44); // minor above 255: glibc's layout
    assert.equal(makedev(4097, 2), 2 ** 44 + 0x100 + 2);
    await using uring = new Uring({ sqpoll: false });
    using dir = tempDir();
    Deno.symlinkSync("nowhere", `${dir.path}/link`);
    for (const path of ["/", Deno.execPath(), dir.path, `${dir.path}/link`]) {
      const viaStatx = entryFromStatx(await uring.statx(path, { followSymlinks: false }));
      assert.equal(viaStatx.id, entryFromFileInfo(Deno.lstatSync(path)).id, path);
    }
  },
});

Deno.test({
  name:
    "copyFile without a uring: copies at once and one after another share one ring, closed after the last",
  ignore: skipKernel(),
  fn: async () => {
    // Each copy made a ring of its own (set-up, mappings, registrations, tear-down): 4,000 small
    // files 32 at a time took 1.3 s, 4.5 times as long as on one ring.
    using dir = tempDir();
    for (let i = 0; i < 48; i++) Deno.writeTextFileSync(`${dir.path}/f${i}`, "x".repeat(100 + i));
    assert.ok(await sharedRingClosed(), "an earlier test's shared ring closes");
    const fds = fdCount();
    const rings = new Set<Uring | undefined>();
    const copy = async (i: number) => {
      const r = await copyFile(`${dir.path}/f${i}`, `${dir.path}/c${i}`, {
        onProgress: () => void rings.add(sharedCopyRing()),
      });
      assert.equal(r.engine, "io_uring");
      assert.equal(r.bytes, 100 + i);
    };
    await Promise.all(Array.from({ length: 32 }, (_, i) => copy(i)));
    for (let i = 32; i < 48; i++) await copy(i);
    assert.equal(rings.size, 1, "one ring for all 48 copies");
    const [ring] = rings;
    assert.ok(ring instanceof Uring && !ring.closed, "the ring stays open a little after the last copy");
    const kept = fdCount() - fds - 1; // (besides its own: the pipes of the lanes it keeps for the next copies)
    assert.ok(
      kept >= 0 && kept % 2 === 0 && kept <= 2 * KEPT_LANES,
      `its descriptor and ${kept} of kept lanes' pipes`,
    );
    assert.ok(await sharedRingClosed(), `closed ~${LINGER_MS} ms after the last copy`);
    for (let i = 0; i < 100 && !ring.closed; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.ok(ring.closed);
    for (let i = 0; i < 100 && fdCount() !== fds; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(fdCount(), fds, "nothing left open");
    for (let i = 0; i < 48; i++) {
      assert.equal(Deno.readTextFileSync(`${dir.path}/c${i}`), "x".repeat(100 + i));
    }
  },
});

Deno.test({
  name: "copyFile: copies sharing one long-lived signal do not stay reachable from it",
  ignore: skipKernel(),
  fn: async () => {
    // Each copy listens to a signal derived from the caller's for its stop; a listener left on it
    // kept every finished copy (its engine, chains and buffers: ~46 KB) as long as the caller's
    // signal lived.
    const results = await childResults(
      `
import { copyFile } from ${JSON.stringify(MOD_URL)};
const dir = Deno.makeTempDirSync();
Deno.writeTextFileSync(dir + "/src", "x".repeat(100));
const controller = new AbortController();
const heap = () => { gc(); gc(); return Deno.memoryUsage().heapUsed; };
const copies = async (n) => {
  for (let i = 0; i < n; i++) await copyFile(dir + "/src", dir + "/dst", { overwrite: true, signal: controller.signal });
};
await copies(50);
const before = heap();
await copies(400);
const grown = heap() - before;
Deno.removeSync(dir, { recursive: true });
console.log(JSON.stringify({ grown: String(grown) }));
`,
      ["--allow-all", "--v8-flags=--expose-gc"],
    );
    // (400 copies held ~18 MiB before; a heap that merely fluctuates moves by far less.)
    assert.ok(
      Number(results.grown) < 4 * 1024 * 1024,
      `the heap grew by ${results.grown} bytes over 400 copies`,
    );
  },
});

Deno.test({
  name: "copyFile does not count the process's open descriptors (copyTree does, once)",
  ignore: skipKernel(),
  fn: async () => {
    // Counting lists /proc/self/fd: 14 ms per copy with 15,000 descriptors open.
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/tree`);
    for (let i = 0; i < 5; i++) Deno.writeTextFileSync(`${dir.path}/tree/f${i}`, "x".repeat(100));
    await using uring = new Uring({ sqpoll: false });
    const sys = getSys(uring.ring.backend);
    const openFiles = sys.openFiles;
    let counts = 0;
    sys.openFiles = () => (counts++, openFiles());
    try {
      for (let i = 0; i < 5; i++) await copyFile(`${dir.path}/tree/f${i}`, `${dir.path}/c${i}`, { uring });
      assert.equal(counts, 0, "one-file copies");
      await copyTree(`${dir.path}/tree`, `${dir.path}/copy`, { uring });
      assert.equal(counts, 1, "a tree copy");
    } finally {
      sys.openFiles = openFiles;
    }
  },
});

Deno.test({
  name:
    "copyFile in a Worker: copies one after another and at once share one ring, which lingers, then closes",
  ignore: skipKernel(),
  fn: async () => {
    // A ring per copy (what a Worker had, so that a terminated one left nothing open) made 4,000
    // small files take 11 times as long as Deno.copyFile 32 at a time, 5 times one after another.
    using dir = tempDir();
    for (let i = 0; i < 6; i++) Deno.writeTextFileSync(`${dir.path}/f${i}`, "w".repeat(200 + i));
    const code = `
import { copyFile } from ${JSON.stringify(MOD_URL)};
import { LINGER_MS, sharedCopyRing } from ${
      JSON.stringify(new URL("../src/copy_shared_ring.ts", import.meta.url).href)
    };
const dir = ${JSON.stringify(dir.path)};
const ringsSeen = new Set();
const onProgress = () => { const ring = sharedCopyRing(); if (ring !== undefined) ringsSeen.add(ring); };
const engines = [];
for (let i = 0; i < 2; i++) {
  engines.push((await copyFile(dir + "/f" + i, dir + "/c" + i, { onProgress })).engine);
}
const results = await Promise.all([2, 3, 4, 5].map((i) => copyFile(dir + "/f" + i, dir + "/c" + i, { onProgress })));
const lingering = sharedCopyRing() !== undefined;
await new Promise((resolve) => setTimeout(resolve, 3 * LINGER_MS + 20));
postMessage({
  engines: [...engines, ...results.map((r) => r.engine)],
  rings: ringsSeen.size,
  lingering,
  closedLater: sharedCopyRing() === undefined,
});
`;
    const url = URL.createObjectURL(new Blob([code], { type: "text/javascript" }));
    const worker = new Worker(url, { type: "module" });
    try {
      const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => {
          e.preventDefault();
          reject(new Error(e.message));
        };
      });
      assert.deepEqual(reply, {
        engines: Array(6).fill("io_uring"),
        rings: 1, // one after another and at once: one ring
        lingering: true,
        closedLater: true,
      });
    } finally {
      worker.terminate();
      URL.revokeObjectURL(url);
    }
    for (let i = 0; i < 6; i++) assert.equal(Deno.readTextFileSync(`${dir.path}/c${i}`), "w".repeat(200 + i));
  },
});

Deno.test({
  name:
    "copyFile in a Worker (Deno's, or node:worker_threads') terminated while its ring lingers leaves no ring, mapping or pipe open (both backends)",
  ignore: skipKernel(),
  fn: async () => {
    // Nothing runs a terminated Worker's JavaScript: the helper closes the ring's and the lanes'
    // fds and unmaps the ring's memory as the Worker's thread exits. Without the helper (the libc
    // backend) the ring closes before the last copy settles, and there is nothing to linger.
    // (`fallback: false`: else a Worker without the helper copies with Deno's APIs, no ring at all.)
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x".repeat(3000));
    Deno.writeTextFileSync(
      `${dir.path}/node_worker.mjs`,
      `import { parentPort } from "node:worker_threads";
import { copyFile } from ${JSON.stringify(MOD_URL)};
const dir = ${JSON.stringify(dir.path)};
parentPort.on("message", async () => {
  for (let i = 0; i < 3; i++) await copyFile(dir + "/src", dir + "/n" + Math.random(), { fallback: false });
  parentPort.postMessage("done");
});
`,
    );
    const worker = `
import { copyFile } from ${JSON.stringify(MOD_URL)};
const dir = ${JSON.stringify(dir.path)};
self.onmessage = async () => {
  const options = { fallback: false };
  for (let i = 0; i < 3; i++) await copyFile(dir + "/src", dir + "/c" + Math.random(), options);
  await Promise.all(Array.from({ length: 4 }, () => copyFile(dir + "/src", dir + "/c" + Math.random(), options)));
  postMessage("done");
};
`;
    const code = `
const count = () => {
  let ring = 0, pipes = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const link = Deno.readLinkSync("/proc/self/fd/" + e.name);
      if (link.includes("io_uring")) ring++;
      if (link.startsWith("pipe:")) pipes++;
    } catch { /* closed meanwhile */ }
  }
  const maps = Deno.readTextFileSync("/proc/self/maps").split("\\n").filter((l) => l.includes("io_uring")).length;
  return { ring, pipes, maps };
};
const url = URL.createObjectURL(new Blob([${JSON.stringify(worker)}], { type: "text/javascript" }));
const before = count();
let lingering;
for (let i = 0; i < 4; i++) {
  const w = new Worker(url, { type: "module" });
  w.postMessage(null);
  await new Promise((resolve) => (w.onmessage = resolve));
  if (i === 0) lingering = count();
  w.terminate();
}
// node:worker_threads' Workers, which have no WorkerGlobalScope (they lingered on an ordinary
// mapping, which their exit left behind).
const { Worker: NodeWorker } = await import("node:worker_threads");
for (let i = 0; i < 4; i++) {
  const w = new NodeWorker(${JSON.stringify(`${dir.path}/node_worker.mjs`)});
  w.postMessage(null);
  await new Promise((resolve) => w.once("message", resolve));
  await w.terminate();
}
await new Promise((resolve) => setTimeout(resolve, 200));
const after = count();
console.log(JSON.stringify({ lingeringRings: lingering.ring - before.ring, left: {
  ring: after.ring - before.ring, pipes: after.pipes - before.pipes, maps: after.maps - before.maps } }));
`;
    for (const backend of ["helper", "libc"]) {
      // (The backend is chosen by the environment: see sys.ts. `deno eval` has every permission,
      // which reading /proc/self needs.)
      const env: Record<string, string> = backend === "libc" ? { URING_BACKEND: "libc" } : {};
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["eval", "--quiet", code],
        env,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(60_000),
      }).output();
      const stderr = new TextDecoder().decode(r.stderr);
      assert.ok(r.success, `${backend}: ${stderr}`);
      const result = JSON.parse(new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!);
      assert.deepEqual(result, {
        lingeringRings: backend === "helper" ? 1 : 0,
        left: { ring: 0, pipes: 0, maps: 0 },
      }, backend);
    }
  },
});

Deno.test({
  name:
    "IoUring and Uring: no options object, not even a proxy that answers every key, makes a ring's memory go with its thread",
  ignore: skipKernel(),
  fn: async () => {
    // The flag was a symbol-keyed option: a proxy answering `true` for any key got it, and the
    // ring's memory (which a caller can transfer to another thread) was unmapped as a Worker
    // exited, under the thread it went to (a segfault; probe pworker2).
    const anything = new Proxy({}, { get: (_target, key) => typeof key === "symbol" ? true : undefined });
    const ring = new IoUring(8, anything as IoUringOptions);
    try {
      assert.equal(memoryDiesWithThread(ring), false);
    } finally {
      ring.close();
    }
    const uring = new Uring(anything as UringOptions);
    try {
      assert.equal(memoryDiesWithThread(uring.ring), false);
    } finally {
      await uring.close();
    }
    // The copies' own ring is made so (with the helper): nothing outside the module sees its memory.
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x");
    let copyRing: IoUring | undefined;
    const onProgress = () => void (copyRing ??= sharedCopyRing()?.ring);
    await copyFile(`${dir.path}/src`, `${dir.path}/dst`, { onProgress });
    assert.ok(copyRing !== undefined);
    assert.equal(memoryDiesWithThread(copyRing), getSys(copyRing.backend).mmapHeld !== undefined);
  },
});

Deno.test({
  name: "copyFile: a copy refused as it starts (a look-alike signal) leaves no hold on the shared ring",
  ignore: skipKernel(),
  fn: async () => {
    // AbortSignal.any threw after the copy had taken the shared ring: it stayed open for good.
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x");
    assert.ok(await sharedRingClosed(), "an earlier test's shared ring closes");
    const signal = Object.create(AbortSignal.prototype, { aborted: { value: false } }) as AbortSignal;
    await assert.rejects(copyFile(`${dir.path}/src`, `${dir.path}/dst`, { signal }), TypeError);
    await copyFile(`${dir.path}/src`, `${dir.path}/dst`); // (a ring to close, if one was held)
    assert.ok(await sharedRingClosed(), "the shared ring closes after the last copy");
  },
});

Deno.test({
  name: "copyFile: copies awaited one after another arm the shared ring's linger once, not once a copy",
  ignore: skipKernel(),
  fn: async () => {
    // A timer a copy (armed as each ended, cleared as the next began) cost ~2.5 µs of the ~120 µs
    // of a small file copied after another. One timer now serves the run: when it fires, it waits
    // again if copies came meanwhile, so it is armed at most once per LINGER_MS of the run.
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x".repeat(100));
    assert.ok(await sharedRingClosed(), "an earlier test's shared ring closes");
    const unref = Deno.unrefTimer;
    let armed = 0;
    Deno.unrefTimer = (id: Parameters<typeof unref>[0]) => (armed++, unref(id));
    let elapsed: number;
    try {
      const started = performance.now();
      for (let i = 0; i < 100; i++) await copyFile(`${dir.path}/src`, `${dir.path}/c${i}`);
      elapsed = performance.now() - started;
      const ring = sharedCopyRing();
      assert.ok(ring !== undefined, "the ring is open right after the last copy");
      assert.ok(await sharedRingClosed(), "and closes after it");
    } finally {
      Deno.unrefTimer = unref;
    }
    assert.ok(
      armed >= 1 && armed <= 2 + elapsed / LINGER_MS,
      `armed ${armed} times for 100 copies in ${elapsed.toFixed(1)} ms`,
    );
    for (let i = 0; i < 100; i++) assert.equal(Deno.readTextFileSync(`${dir.path}/c${i}`), "x".repeat(100));
  },
});

Deno.test({
  name: "copyFile: the shared ring closes after its last copy under a fake clock too",
  ignore: skipKernel(),
  fn: async () => {
    // A fake clock (as @std/testing's FakeTime installs) took the linger timer and dropped it when
    // restored: the ring stayed open.
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x");
    assert.ok(await sharedRingClosed(), "an earlier test's shared ring closes");
    const real = globalThis.setTimeout;
    globalThis.setTimeout = ((() => 0) as unknown) as typeof setTimeout; // a clock that never runs
    try {
      await copyFile(`${dir.path}/src`, `${dir.path}/dst`);
    } finally {
      globalThis.setTimeout = real;
    }
    assert.ok(await sharedRingClosed(), "closed after the last copy");
  },
});

Deno.test({
  name: "copyFile reads the file limit at most once a second, not once a copy",
  ignore: skipKernel(),
  fn: async () => {
    // getrlimit cost ~5 µs of a one-block copy's ~70 µs of main thread, many copies at once.
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/src`, "x".repeat(100));
    await using uring = new Uring({ sqpoll: false });
    const sys = getSys(uring.ring.backend);
    const fileLimit = sys.fileLimit;
    let reads = 0;
    sys.fileLimit = () => (reads++, fileLimit());
    try {
      const started = performance.now();
      for (let i = 0; i < 20; i++) await copyFile(`${dir.path}/src`, `${dir.path}/c${i}`, { uring });
      const seconds = Math.ceil((performance.now() - started) / 1000);
      assert.ok(reads <= seconds, `${reads} reads for 20 copies in under ${seconds} s`);
    } finally {
      sys.fileLimit = fileLimit;
    }
  },
});

Deno.test({
  name: "copyFile: a source replaced after it was looked at is copied whole, with the new file's mode",
  ignore: skipKernel(),
  fn: async () => {
    // The first progress report (the size known, nothing opened yet) stands in for the race. The
    // copy was the new file cut to the old one's 100 bytes, with the old file's mode: a private
    // file renamed over a public one came out world-readable.
    using dir = tempDir();
    const src = `${dir.path}/src`;
    for (const options of [{}, { splice: false }, { blockSize: 4096 }]) {
      Deno.writeFileSync(src, new Uint8Array(100).fill(0x41), { mode: 0o644 });
      Deno.chmodSync(src, 0o644);
      const dst = `${dir.path}/dst`;
      let swapped = false;
      const result = await copyFile(src, dst, {
        ...options,
        onProgress: () => {
          if (swapped) return;
          swapped = true;
          Deno.writeFileSync(`${dir.path}/staged`, new Uint8Array(3 << 20).fill(0x42), { mode: 0o600 });
          Deno.chmodSync(`${dir.path}/staged`, 0o600);
          Deno.renameSync(`${dir.path}/staged`, src);
        },
      });
      const copy = Deno.readFileSync(dst);
      const label = JSON.stringify(options);
      assert.deepEqual([copy.length, copy[0], copy[copy.length - 1]], [3 << 20, 0x42, 0x42], label);
      assert.equal(result.bytes, 3 << 20, label);
      assert.equal(Deno.statSync(dst).mode! & 0o777, 0o600, label);
      Deno.removeSync(dst);
    }
  },
});

Deno.test({
  name: "copyFile/copyTree: a source removed or moved away after it was opened is still copied, whole",
  ignore: skipKernel(),
  fn: async () => {
    // The check for a replaced source looked the path up again, found nothing, removed the
    // finished copy and failed ("does not exist"); every byte came from the one file opened, and
    // GNU cp copies it. /proc/thread-self names another file from the kernel's worker threads: its
    // files failed as "replaced 4 times in a row".
    using dir = tempDir();
    const data = new Uint8Array(8 << 20);
    for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 0xff;
    for (const how of ["remove", "move"]) {
      for (const tree of [false, true]) {
        const from = tree ? `${dir.path}/tree-${how}` : `${dir.path}/src-${how}`;
        const file = tree ? `${from}/big` : from;
        if (tree) Deno.mkdirSync(from);
        Deno.writeFileSync(file, data);
        let gone = false;
        const onProgress = (p: { bytes: number }) => {
          if (gone || p.bytes === 0) return;
          gone = true;
          if (how === "move") Deno.renameSync(file, `${file}.moved`);
          else Deno.removeSync(file);
        };
        const to = `${from}.copy`;
        const options = { onProgress, splice: false, blockSize: 1 << 20 };
        const result = tree ? await copyTree(from, to, options) : await copyFile(from, to, options);
        assert.ok(gone, `${how}: the source went during the copy`);
        assert.equal(result.bytes, data.length, `${how}, tree ${tree}`);
        assert.deepEqual(Deno.readFileSync(tree ? `${to}/big` : to), data, `${how}, tree ${tree}`);
      }
    }
    // (/proc needs --allow-all: in a child.)
    const out = await runDeno(
      `import { copyFile } from ${JSON.stringify(MOD_URL)};
      const r = await copyFile("/proc/thread-self/status", ${JSON.stringify(`${dir.path}/status`)});
      console.log(JSON.stringify([r.bytes > 0, Deno.readTextFileSync(${
        JSON.stringify(`${dir.path}/status`)
      }).includes("Name:")]));`,
      ["--allow-all"],
    );
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), [true, true]);
  },
});

Deno.test({
  name: "copyFile/copyTree keep modes in a directory with a default POSIX ACL (it replaces the umask)",
  ignore: skipKernel(),
  fn: async () => {
    // The copy skipped the chmod when the umask (Deno.umask(), or a probe cached for the process)
    // left the mode alone; a default ACL (group r-x, other ---) gave the copies 0640 instead of the
    // source's 0644, also with preserve (GNU cp -p: 0644).
    const libc = Deno.dlopen("libc.so.6", {
      setxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
    });
    try {
      using dir = tempDir();
      const acl = `${dir.path}/acl`;
      Deno.mkdirSync(acl);
      // system.posix_acl_default: version 2, then (tag, perm, id) entries: USER_OBJ rwx,
      // GROUP_OBJ r-x, OTHER ---.
      const value = new Uint8Array(4 + 3 * 8);
      const v = new DataView(value.buffer);
      v.setUint32(0, 2, true);
      for (const [i, [tag, perm]] of [[1, 7], [4, 5], [0x20, 0]].entries()) {
        v.setUint16(4 + i * 8, tag, true);
        v.setUint16(6 + i * 8, perm, true);
        v.setUint32(8 + i * 8, 0xffffffff, true);
      }
      const name = new TextEncoder().encode("system.posix_acl_default\0");
      const set = libc.symbols.setxattr(
        new TextEncoder().encode(`${acl}\0`),
        name,
        value,
        BigInt(value.length),
        0,
      );
      if (set !== 0) {
        console.log("skipping the default ACL test: this file system takes no POSIX ACL");
        return;
      }
      const src = `${dir.path}/src`;
      Deno.mkdirSync(`${src}/sub`, { recursive: true });
      for (const f of [`${src}/f`, `${src}/sub/g`]) {
        Deno.writeTextFileSync(f, "data\n");
        Deno.chmodSync(f, 0o644);
      }
      Deno.writeTextFileSync(`${acl}/probe`, "");
      assert.equal(Deno.statSync(`${acl}/probe`).mode! & 0o777, 0o640, "the ACL masks new files");
      const mode = (p: string) => (Deno.statSync(p).mode! & 0o777).toString(8);
      await copyFile(`${src}/f`, `${acl}/plain`);
      await copyFile(`${src}/f`, `${acl}/kept`, { preserve: true });
      await copyTree(src, `${acl}/tree`);
      Deno.mkdirSync(`${acl}/merged/sub`, { recursive: true });
      await copyTree(src, `${acl}/merged`, { preserve: true });
      // A merge into a plain directory whose existing subdirectory has the ACL: the probe of the
      // top saw none, and a directory made inside that subdirectory inherits it.
      Deno.mkdirSync(`${dir.path}/plain/sub`, { recursive: true });
      Deno.renameSync(acl, `${dir.path}/plain/sub/acl`); // keeps its default ACL
      Deno.mkdirSync(`${src}/sub/acl/newdir`, { recursive: true });
      Deno.writeTextFileSync(`${src}/sub/acl/newdir/h`, "data\n");
      Deno.chmodSync(`${src}/sub/acl/newdir/h`, 0o644);
      await copyTree(src, `${dir.path}/plain`, { overwrite: true });
      const moved = `${dir.path}/plain/sub/acl`;
      assert.deepEqual(
        [`plain`, `kept`, `tree/f`, `tree/sub/g`, `merged/f`, `merged/sub/g`, "newdir/h"].map((p) =>
          mode(`${moved}/${p}`)
        ),
        ["644", "644", "644", "644", "644", "644", "644"],
      );
    } finally {
      libc.close();
    }
  },
});

for (const tree of [false, true]) {
  Deno.test({
    name: `${tree ? "copyTree" : "copyFile"}: a source another process keeps saving by rename is always ` +
      "copied whole (ext4 reuses inodes)",
    ignore: skipKernel(),
    fn: async () => {
      // On ext4 a save often gets the inode number a save before freed, within the same
      // millisecond as the version the copy looked at: compared to the millisecond, it passed for
      // the same file, and the copy was the new version cut to the old size (copyFile: 108-132 of
      // 3,000 copies; a tree's walk, which looked with Deno's lstat: 3-6 of 530-720 in 4 s). Both looks are
      // a statx now, so the one-block chain compares the birth time to the nanosecond.
      using dir = tempDir();
      const from = `${dir.path}/from`;
      Deno.mkdirSync(from);
      Deno.mkdirSync(`${dir.path}/to`);
      const src = `${from}/f`;
      Deno.writeTextFileSync(src, "a".repeat(3000));
      const staged = `${dir.path}/staged`;
      const writer = new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          `const end = Date.now() + 20_000;
          for (let i = 0; Date.now() < end; i++) {
            Deno.writeTextFileSync(${
            JSON.stringify(staged)
          }, (i % 2 ? "b" : "a").repeat(i % 2 ? 20_000 : 3000));
            Deno.renameSync(${JSON.stringify(staged)}, ${JSON.stringify(src)});
          }`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
      let torn = 0, copied = 0;
      try {
        const until = performance.now() + 4000;
        while (performance.now() < until) {
          try {
            if (tree) await copyTree(from, `${dir.path}/to`, { overwrite: true });
            else await copyFile(src, `${dir.path}/to/f`, { overwrite: true });
          } catch {
            continue; // replaced four times in a row (EAGAIN): nothing written
          }
          copied++;
          const copy = Deno.readTextFileSync(`${dir.path}/to/f`);
          if (!(copy === "a".repeat(3000) || copy === "b".repeat(20_000))) torn++;
        }
      } finally {
        writer.kill();
        await writer.status;
      }
      assert.ok(copied > 0, "some copies went through");
      assert.equal(torn, 0, `copies that were a version cut to another's size, of ${copied}`);
    },
  });
}

Deno.test({
  name: "copyFile: a destination whose temporary file cannot fit PATH_MAX says so (not a path never given)",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/f`, "data");
    let deep = dir.path;
    while (deep.length < 4076) deep += "/" + "d".repeat(Math.min(200, 4076 - deep.length - 1));
    Deno.mkdirSync(deep, { recursive: true });
    // The destination (4,078 bytes) fits; ".f.uring-tmp-XXXXXXXX" next to it does not.
    await assert.rejects(
      copyFile(`${dir.path}/f`, `${deep}/f`),
      /the temporary file next to destination '.*\/f' would have a path longer than the system's limit \(PATH_MAX/,
    );
  },
});

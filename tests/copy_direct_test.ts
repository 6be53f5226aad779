/**
 * O_DIRECT copies (`direct: true`, `cp --direct`) on a disk file system: byte-identical copies of
 * sizes around the alignment, modes kept, no page of the destination left in the page cache,
 * sparse sources, copyTree, the failure rules of issue 4 (abort, ENOSPC), and a file system that
 * refuses O_DIRECT (ramfs).
 */

import assert from "node:assert/strict";
import {
  copyFile,
  copyTree,
  CopyTreeError,
  directAlignment,
  O_CREAT,
  O_DIRECT,
  O_WRONLY,
  Uring,
} from "../mod.ts";
import { directTempDir, skipDirect } from "./_direct.ts";
import { cachestat, pagesCached, residencyInstrument, skipResidency } from "./_cachestat.ts";
import {
  assertSameTree,
  permOf,
  randomBytes,
  randomFile,
  runCp,
  sha256,
  sha256File,
  tempLeftovers,
  withTmpfs,
} from "./copy_support.ts";

const MiB = 1024 * 1024;

/** Asserts `dst` is a byte-identical copy of `src` (SHA-256, size) with its mode less setuid/setgid. */
async function assertSameFile(src: string, dst: string, what: string): Promise<void> {
  assert.equal(Deno.statSync(dst).size, Deno.statSync(src).size, `${what}: size`);
  assert.equal(await sha256File(dst), await sha256File(src), `${what}: content`);
  assert.equal(permOf(dst), permOf(src) & ~0o6000, `${what}: mode`);
}

/** Asserts no page of `path` is in the page cache (checked before anything reads it). */
function assertNotCached(path: string, what: string): void {
  assert.equal(pagesCached(path), 0, `${what}: pages of the destination left in the page cache`);
}

/** The O_DIRECT alignment of a file in `dir` (statx, or 4096). */
function unitIn(dir: string): number {
  const probe = `${dir}/.probe`;
  Deno.writeFileSync(probe, new Uint8Array(1));
  try {
    const a = directAlignment(probe);
    assert.ok(a !== null, "the test directory supports O_DIRECT");
    return Math.max(a.memory, a.offset);
  } finally {
    Deno.removeSync(probe);
  }
}

const ignore = skipDirect();

Deno.test({
  name:
    "copyFile direct: sizes 0 … 1 MiB + 1 and around the alignment are identical, keep modes, leave 0 pages",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    const unit = unitIn(d);
    const sizes = [...new Set([0, 1, unit - 1, unit, unit + 1, 4095, 4096, 4097, 8191, 8193, MiB + 1])];
    const modes = [0o640, 0o755, 0o600, 0o4750];
    for (const [i, size] of sizes.entries()) {
      const src = `${d}/src-${size}`;
      const dst = `${d}/dst-${size}`;
      const mode = modes[i % modes.length];
      await randomFile(src, size, mode);
      const result = await copyFile(src, dst, { direct: true });
      assert.equal(result.bytes, size);
      assert.equal(result.engine, "io_uring");
      if (!skipResidency()) assertNotCached(dst, `size ${size}`);
      await assertSameFile(src, dst, `size ${size}`);
    }
    assert.deepEqual(tempLeftovers(d), []);
  },
});

Deno.test({
  name: "copyFile direct: 64 MiB is identical and leaves no page of the destination cached",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    const size = 64 * MiB;
    await randomFile(`${d}/big`, size, 0o644);
    const result = await copyFile(`${d}/big`, `${d}/big-copy`, {
      direct: true,
      blockSize: MiB,
      queueDepth: 8,
    });
    assert.equal(result.bytes, size);
    if (!skipResidency()) assertNotCached(`${d}/big-copy`, "64 MiB");
    await assertSameFile(`${d}/big`, `${d}/big-copy`, "64 MiB");
  },
});

Deno.test({
  name: "copyFile direct: the residency check sees what a buffered copy leaves cached (control)",
  ignore: ignore || skipResidency(),
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, MiB + 1);
    await copyFile(`${d}/src`, `${d}/buffered`);
    // Dirty pages stay until writeback (tens of seconds): a buffered copy leaves them all.
    assert.ok(pagesCached(`${d}/buffered`) > 0, `${residencyInstrument()} sees a buffered copy's pages`);
    await copyFile(`${d}/src`, `${d}/direct`, { direct: true });
    assert.equal(pagesCached(`${d}/direct`), 0);
    // A cut inside a block leaves a dirty page that only cachestat sees: the copy must drop it.
    const cs = cachestat(`${d}/direct`);
    if (cs !== null) assert.deepEqual(cs, { cache: 0, dirty: 0, writeback: 0 });
  },
});

Deno.test({
  name: "copyFile direct: several blocks in flight, block sizes off the alignment",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    const unit = unitIn(d);
    const cases: Array<[number, number, number]> = [
      // [size, blockSize, queueDepth]
      [3 * 8192 + 1, 8192, 4],
      [8192 - 1, 8192, 4],
      [8192, 8192, 4],
      [8192 + 1, 8192, 1],
      [5 * 4096 + 100, 1000, 3], // 1000 is rounded up to a page
      [20_000, unit + 512, 2],
    ];
    for (const [size, blockSize, queueDepth] of cases) {
      const what = `${size} bytes in blocks of ${blockSize}, ${queueDepth} in flight`;
      await randomFile(`${d}/s`, size, 0o604);
      await copyFile(`${d}/s`, `${d}/t`, { direct: true, blockSize, queueDepth, overwrite: true });
      if (!skipResidency()) assertNotCached(`${d}/t`, what);
      await assertSameFile(`${d}/s`, `${d}/t`, what);
    }
  },
});

Deno.test({
  name: "copyFile direct: a source that shrinks during the copy is copied up to its new end",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    const original = randomBytes(40_000);
    Deno.writeFileSync(`${d}/s`, original);
    let cut = false;
    const result = await copyFile(`${d}/s`, `${d}/t`, {
      direct: true,
      blockSize: 8192,
      queueDepth: 1, // one block at a time: the cut lands between the first and second block
      onProgress: (p) => {
        if (p.bytes > 0 && !cut) {
          cut = true;
          Deno.truncateSync(`${d}/s`, 10_000); // inside the second block, off the alignment
        }
      },
    });
    assert.ok(cut);
    assert.equal(result.bytes, 10_000);
    if (!skipResidency()) assertNotCached(`${d}/t`, "shrunk source");
    assert.equal(await sha256File(`${d}/t`), await sha256(original.subarray(0, 10_000)));
  },
});

Deno.test({
  name: "copyFile direct: a sparse source's holes are skipped, not read (SEEK_DATA), data and holes kept",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    const src = `${d}/huge-sparse`;
    const head = randomBytes(5_000), tail = randomBytes(3_000);
    {
      using f = Deno.openSync(src, { write: true, create: true });
      f.truncateSync(1024 * MiB + 77);
      f.writeSync(head); // data at the start, then a hole of almost 1 GiB, then data near the end
      f.seekSync(1024 * MiB - 3_000, Deno.SeekMode.Start);
      f.writeSync(tail);
    }
    await using uring = new Uring({ sqpoll: false });
    const before = uring.stats.sqes;
    await copyFile(src, `${d}/copy`, { direct: true, uring });
    const sqes = uring.stats.sqes - before;
    // Reading the hole would take 1,024 reads of 1 MiB; the data needs a handful.
    assert.ok(sqes < 100, `${sqes} SQEs for 8 KB of data in a 1 GiB file`);
    const copy = await Deno.open(`${d}/copy`);
    try {
      assert.equal((await copy.stat()).size, 1024 * MiB + 77);
      const got = new Uint8Array(5_000);
      assert.equal(await copy.read(got), 5_000);
      assert.deepEqual(got, head);
      await copy.seek(1024 * MiB - 3_000, Deno.SeekMode.Start);
      const end = new Uint8Array(3_000);
      assert.equal(await copy.read(end), 3_000);
      assert.deepEqual(end, tail);
    } finally {
      copy.close();
    }
    assert.ok(Deno.statSync(`${d}/copy`).blocks! * 512 < MiB, "the copy keeps its holes");
  },
});

Deno.test({
  name: "copyFile direct: a sparse source keeps its size, its data and its holes",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    const src = `${d}/sparse`;
    const data = randomBytes(10_000);
    {
      using f = Deno.openSync(src, { write: true, create: true });
      f.truncateSync(8 * MiB + 123); // trailing hole, unaligned size
      f.seekSync(2 * MiB + 5, Deno.SeekMode.Start);
      f.writeSync(data);
    }
    await copyFile(src, `${d}/copy`, { direct: true });
    if (!skipResidency()) assertNotCached(`${d}/copy`, "sparse");
    const copy = Deno.readFileSync(`${d}/copy`);
    assert.equal(copy.length, 8 * MiB + 123);
    assert.equal(await sha256(copy), await sha256File(src));
    const blocks = Deno.statSync(`${d}/copy`).blocks!;
    assert.ok(blocks * 512 < 1 * MiB, `the copy keeps its holes (${blocks} blocks allocated)`);
  },
});

Deno.test({
  name: "copyTree direct: files of every size around the alignment, symlinks, modes; 0 pages cached",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/tree/sub/deeper`, { recursive: true });
    const sizes = [0, 1, 511, 4095, 4096, 4097, 70_000, 3 * 131072 + 7];
    for (const [i, size] of sizes.entries()) {
      await randomFile(`${d}/tree/${i % 2 ? "sub/" : "sub/deeper/"}f${size}`, size, i % 2 ? 0o640 : 0o700);
    }
    Deno.symlinkSync("sub/f1", `${d}/tree/link`);
    Deno.mkdirSync(`${d}/tree/empty`);
    const result = await copyTree(`${d}/tree`, `${d}/copy`, { direct: true, queueDepth: 8 });
    assert.equal(result.files, sizes.length + 1);
    if (!skipResidency()) {
      for (const [i, size] of sizes.entries()) {
        assertNotCached(`${d}/copy/${i % 2 ? "sub/" : "sub/deeper/"}f${size}`, `tree file of ${size} bytes`);
      }
    }
    await assertSameTree(`${d}/tree`, `${d}/copy`);
  },
});

Deno.test({
  name: "cp --direct: copies a file byte for byte with its mode and leaves 0 pages cached",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, MiB + 1, 0o751);
    const r = await runCp(["--direct", "--block-size", "64k", "src", "dst"], { cwd: d });
    assert.deepEqual(r, { code: 0, stdout: "", stderr: "" });
    if (!skipResidency()) assertNotCached(`${d}/dst`, "cp --direct");
    await assertSameFile(`${d}/src`, `${d}/dst`, "cp --direct");
  },
});

Deno.test({
  name: "copyFile direct: an abort stops the copy and removes the partial destination",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, 16 * MiB);
    const controller = new AbortController();
    let progressed = 0;
    await assert.rejects(
      copyFile(`${d}/src`, `${d}/dst`, {
        direct: true,
        blockSize: 65536,
        queueDepth: 2,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.bytes > 0 && progressed++ === 0) controller.abort();
        },
      }),
      (e: Error) => e.name === "AbortError" && /partial copies were removed/.test(e.message),
    );
    assert.ok(progressed > 0);
    assert.deepEqual([...Deno.readDirSync(d)].map((e) => e.name), ["src"]);
  },
});

/**
 * Runs `fn` in an ext4 image mounted `data=journal` (where statx reports no direct I/O and
 * O_DIRECT is quietly buffered), or returns why it cannot here (no mkfs.ext4, mount refused).
 */
async function withDataJournal(parent: string, fn: (path: string) => Promise<void>): Promise<string | null> {
  const image = `${parent}/journal.img`, path = `${parent}/journal`;
  await Deno.mkdir(path);
  Deno.writeFileSync(image, new Uint8Array(0));
  Deno.truncateSync(image, 16 * MiB);
  const run = async (cmd: string, args: string[]) => {
    try {
      const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
      return out.success ? null : `${cmd}: ${new TextDecoder().decode(out.stderr).trim()}`;
    } catch (e) {
      return `cannot run ${cmd}: ${(e as Error).message}`;
    }
  };
  const made = await run("mkfs.ext4", ["-q", "-F", image]);
  if (made !== null) return made;
  const mounted = await run("mount", ["-o", "loop,data=journal", image, path]);
  if (mounted !== null) return mounted;
  try {
    await fn(path);
  } finally {
    if (await run("umount", [path]) !== null) await run("umount", ["-l", path]);
  }
  return null;
}

Deno.test({
  name:
    "direct copies and Uring.open refuse a file statx says does no direct I/O (data=journal), naming statx",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, 100_000);
    const skipped = await withDataJournal(d, async (journal) => {
      await randomFile(`${journal}/src`, 100_000);
      if (directAlignment(`${journal}/src`) !== null) {
        console.log("SKIP: statx reports direct I/O on data=journal here");
        return;
      }
      for (
        const [src, dst, side] of [
          [`${journal}/src`, `${d}/dst`, /opening the source failed: source '.*journal\/src': statx/],
          [`${d}/src`, `${journal}/dst`, /the destination directory '.*journal': statx/],
        ] as const
      ) {
        await assert.rejects(
          copyFile(src, dst, { direct: true }),
          (e: Error & { code?: string; syscall?: string }) => {
            assert.match(e.message, side);
            assert.match(e.message, /STATX_DIOALIGN\) reports no direct I\/O/);
            assert.doesNotMatch(e.message, /EINVAL/, "no system call failed");
            assert.equal(e.syscall, undefined);
            return true;
          },
        );
        assert.deepEqual(tempLeftovers(journal), []);
      }
      // Uring.open with direct: refused the same way, the file closed again; one it would have
      // truncated keeps its data, and one it would have created is not left behind.
      await using uring = new Uring({ sqpoll: false });
      const before = await sha256File(`${journal}/src`);
      for (
        const options of [
          { write: true, truncate: true },
          { write: true, create: true, truncate: true },
        ]
      ) {
        await assert.rejects(
          uring.open(`${journal}/src`, { ...options, direct: true }),
          Deno.errors.NotSupported,
        );
        assert.equal(await sha256File(`${journal}/src`), before, JSON.stringify(options));
      }
      for (const options of [{ write: true, create: true }, { write: true, createNew: true }]) {
        await assert.rejects(
          uring.open(`${journal}/new`, { ...options, direct: true }),
          Deno.errors.NotSupported,
        );
        assert.throws(() => Deno.statSync(`${journal}/new`), Deno.errors.NotFound, JSON.stringify(options));
      }
      await assert.rejects(
        uring.open(`${journal}/src`, { direct: true }),
        (e: Error) =>
          e instanceof Deno.errors.NotSupported && /STATX_DIOALIGN\) reports no direct I\/O/.test(e.message),
      );
    });
    if (skipped !== null) console.log(`SKIP data=journal: ${skipped}`);
  },
});

Deno.test({
  name: "copyFile direct: ENOSPC on a full file system names the cause and leaves nothing behind",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, 3 * MiB);
    await withTmpfs(d, "1m", async (mount) => {
      if (mount.skip !== undefined) {
        console.log(`SKIP ENOSPC with O_DIRECT: ${mount.skip}`);
        return;
      }
      const uring = new Uring({ sqpoll: false });
      try {
        // tmpfs takes O_DIRECT since 6.6; where it does not, the copy must say so instead.
        let tmpfsDirect = true;
        try {
          await uring.close(await uring.openFd(`${mount.path}/probe`, O_WRONLY | O_CREAT | O_DIRECT, 0o600));
        } catch (e) {
          if ((e as { code?: string }).code !== "EINVAL") throw e;
          tmpfsDirect = false;
        }
        Deno.removeSync(`${mount.path}/probe`);
        await assert.rejects(
          copyFile(`${d}/src`, `${mount.path}/dst`, { direct: true, uring }),
          (e: Error & { code?: string }) =>
            tmpfsDirect
              ? e.code === "ENOSPC" && /no space left on the destination's device/.test(e.message)
              : e.code === "EINVAL" && /O_DIRECT/.test(e.message),
        );
      } finally {
        await uring.close();
      }
      assert.deepEqual([...Deno.readDirSync(mount.path)], []);
    });
  },
});

/** Mounts a ramfs (which refuses O_DIRECT) under `parent` for `fn`; `null` when it cannot. */
async function withRamfs(parent: string, fn: (path: string) => Promise<void>): Promise<string | null> {
  const path = `${parent}/ramfs`;
  Deno.mkdirSync(path);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("mount", { args: ["-t", "ramfs", "ramfs", path], stderr: "piped" }).output();
  } catch (e) {
    return `cannot run mount: ${(e as Error).message}`;
  }
  if (!out.success) {
    return `mount -t ramfs is not permitted here: ${new TextDecoder().decode(out.stderr).trim()}`;
  }
  try {
    await fn(path);
  } finally {
    const umount = await new Deno.Command("umount", { args: [path] }).output();
    if (!umount.success) await new Deno.Command("umount", { args: ["-l", path] }).output();
  }
  return null;
}

Deno.test({
  name:
    "copyFile direct: a file system that refuses O_DIRECT (ramfs) is an error naming the file and O_DIRECT",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/disk-file`, 5000);
    const skipped = await withRamfs(d, async (ram) => {
      await randomFile(`${ram}/ram-file`, 5000);
      // Source on ramfs.
      await assert.rejects(
        copyFile(`${ram}/ram-file`, `${d}/out`, { direct: true }),
        (e: Error & { code?: string; path?: string }) => {
          assert.equal(
            e.message,
            `cannot copy '${ram}/ram-file' to '${d}/out': opening the source failed: source '${ram}/ram-file' ` +
              "cannot be opened with O_DIRECT: its file system refuses direct I/O (EINVAL); copy without direct / --direct",
          );
          assert.equal(e.code, "EINVAL");
          assert.equal(e.path, `${ram}/ram-file`);
          return true;
        },
      );
      assert.deepEqual([...Deno.readDirSync(d)].map((e) => e.name).sort(), ["disk-file", "ramfs"]);
      // Destination on ramfs: the refused exclusive create made a file, which is removed.
      await assert.rejects(
        copyFile(`${d}/disk-file`, `${ram}/out`, { direct: true }),
        (e: Error & { code?: string }) =>
          e.code === "EINVAL" &&
          e.message.includes(`the destination directory '${ram}' does not support O_DIRECT`),
      );
      assert.deepEqual([...Deno.readDirSync(ram)].map((e) => e.name), ["ram-file"]);
      // The same through the CLI: one line, exit status 1.
      const r = await runCp(["--direct", `${ram}/ram-file`, `${d}/cli-out`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^cp: cannot copy '.*ram-file' to '.*cli-out': .*O_DIRECT.*\n$/);
      // Without direct the same copies work.
      await copyFile(`${ram}/ram-file`, `${d}/out`);
      await assertSameFile(`${ram}/ram-file`, `${d}/out`, "buffered copy from ramfs");
      // A tree: the first refusal stops the copy, even with continueOnError (every file would be
      // refused the same way), and the CLI says it once.
      Deno.mkdirSync(`${d}/tree`);
      for (let i = 0; i < 6; i++) await randomFile(`${d}/tree/f${i}`, 3000);
      await assert.rejects(
        copyTree(`${d}/tree`, `${ram}/tree`, { direct: true, continueOnError: true }),
        (e: Error & { code?: string }) =>
          !(e instanceof CopyTreeError) && e.code === "EINVAL" && /does not support O_DIRECT/.test(e.message),
      );
      const tree = await runCp(["-r", "--direct", `${d}/tree`, `${ram}/tree-cli`]);
      assert.equal(tree.code, 1);
      assert.equal(tree.stderr.trim().split("\n").length, 1, tree.stderr);
    });
    if (skipped !== null) console.log(`SKIP O_DIRECT refusal: ${skipped}`);
  },
});

Deno.test({
  name:
    "copyTree direct, continueOnError: a source subtree on a file system that refuses O_DIRECT fails file by file; the rest is copied",
  ignore,
  fn: async () => {
    // The first refusal stopped the whole tree (taken as the destination's file system refusing
    // every file), so with a ramfs mounted inside the source only part of the tree was copied.
    using dir = directTempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/mixed`);
    for (let i = 0; i < 4; i++) await randomFile(`${d}/mixed/f${i}`, 3000 + i);
    const skipped = await withRamfs(`${d}/mixed`, async (ram) => {
      for (let i = 0; i < 2; i++) await randomFile(`${ram}/r${i}`, 2000 + i);
      const failure = await copyTree(`${d}/mixed`, `${d}/out`, { direct: true, continueOnError: true }).then(
        () => null,
        (e) => e,
      );
      assert.ok(failure instanceof CopyTreeError, `a CopyTreeError, got ${failure}`);
      assert.deepEqual(
        failure.errors.map((e: Error & { path?: string }) => e.path).sort(),
        [`${ram}/r0`, `${ram}/r1`],
      );
      for (let i = 0; i < 4; i++) await assertSameFile(`${d}/mixed/f${i}`, `${d}/out/f${i}`, `f${i}`);
      assert.deepEqual([...Deno.readDirSync(`${d}/out/ramfs`)], [], "nothing of the refused files");
    });
    if (skipped !== null) console.log(`SKIP a ramfs inside the source: ${skipped}`);
  },
});

Deno.test({
  name:
    "Uring.open direct on a file system that refuses O_DIRECT: a file the open created is removed, one there stays",
  ignore,
  fn: async () => {
    // The kernel makes the file before it refuses O_DIRECT: create and createNew left it behind.
    using dir = directTempDir();
    const skipped = await withRamfs(dir.path, async (ram) => {
      Deno.writeFileSync(`${ram}/there`, new Uint8Array(0));
      await using uring = new Uring({ sqpoll: false });
      for (
        const options of [
          { write: true, create: true },
          { write: true, createNew: true },
          { write: true, create: true, truncate: true },
        ]
      ) {
        await assert.rejects(uring.open(`${ram}/new`, { ...options, direct: true }), { code: "EINVAL" });
        assert.deepEqual([...Deno.readDirSync(ram)].map((e) => e.name), ["there"], JSON.stringify(options));
        await assert.rejects(uring.open(`${ram}/there`, { ...options, direct: true }));
        assert.ok(Deno.statSync(`${ram}/there`).isFile, "a file that was there stays");
      }
    });
    if (skipped !== null) console.log(`SKIP O_DIRECT refusal at open: ${skipped}`);
  },
});

Deno.test({
  name: "copyFile direct: without io_uring the Deno fallback copies through the page cache and says so",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, 5000, 0o640);
    Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
    try {
      const result = await copyFile(`${d}/src`, `${d}/dst`, { direct: true });
      assert.equal(result.engine, "deno");
      assert.match(result.fallbackReason ?? "", /without O_DIRECT/);
      await assertSameFile(`${d}/src`, `${d}/dst`, "fallback");
    } finally {
      Deno.env.delete("URING_FORCE_UNAVAILABLE");
    }
  },
});

Deno.test({
  name: "copyFile direct: buffers go as READ_FIXED/WRITE_FIXED through a pool registered for the copy",
  ignore,
  fn: async () => {
    using dir = directTempDir();
    const d = dir.path;
    // (At least 16 times the pool's 4 × 64 KiB: a smaller copy does not pay for registering it.)
    await randomFile(`${d}/src`, 64 * 65536 + 1, 0o640);
    await randomFile(`${d}/small`, 3 * 65536 + 1, 0o640);
    const uring = new Uring({ sqpoll: false });
    try {
      await copyFile(`${d}/small`, `${d}/small-copy`, {
        direct: true,
        uring,
        blockSize: 65536,
        queueDepth: 4,
      });
      assert.equal(uring.stats.fixedBuffers, 0, "a 196 KiB copy registered buffers");
      await assertSameFile(`${d}/small`, `${d}/small-copy`, "plain aligned buffers for a small copy");
      await copyFile(`${d}/src`, `${d}/dst`, { direct: true, uring, blockSize: 65536, queueDepth: 4 });
      // 65 blocks: each one read and one write through a registered buffer.
      assert.ok(uring.stats.fixedBuffers >= 130, `fixed-buffer SQEs: ${uring.stats.fixedBuffers}`);
      assert.equal(uring.bufferPool, null, "the copy's pool is unregistered when it ends");
      await assertSameFile(`${d}/src`, `${d}/dst`, "fixed buffers");
      // A Uring that already has a pool keeps it; the copy uses plain aligned buffers.
      const mine = uring.registerBufferPool({ count: 2, size: 4096 });
      const before = uring.stats.fixedBuffers;
      await copyFile(`${d}/src`, `${d}/dst2`, { direct: true, uring, blockSize: 65536, queueDepth: 4 });
      assert.equal(uring.stats.fixedBuffers, before);
      assert.equal(uring.bufferPool, mine);
      if (!skipResidency()) assertNotCached(`${d}/dst2`, "plain aligned buffers");
      await assertSameFile(`${d}/src`, `${d}/dst2`, "plain aligned buffers");
    } finally {
      await uring.close();
    }
  },
});

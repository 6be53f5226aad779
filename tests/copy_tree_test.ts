import assert from "node:assert/strict";
import { copyFile, type CopyProgress, copyTree, CopyTreeError, Uring } from "../mod.ts";
import { skipKernel, tempDir } from "./_support.ts";
import { statNow } from "../src/copy_uring_engine.ts";
import { getSys } from "../src/sys.ts";
import { createRawName, mkfifo } from "./_io.ts";
import { childResults, MOD_URL, runDeno } from "./uring_support.ts";
import {
  assertSameTree,
  fingerprint,
  listTree,
  makeTree,
  randomFile,
  tempLeftovers,
} from "./copy_support.ts";

Deno.test({
  name: "copyTree: 3,000 files with awkward names, symlinks and empty dirs match entry for entry",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/source tree`;
    const stats = await makeTree(src, 3000);
    const before = await listTree(src);
    const seen: CopyProgress[] = [];
    const result = await copyTree(src, `${dir.path}/copy`, { onProgress: (p) => seen.push(p) });
    const entries = await assertSameTree(src, `${dir.path}/copy`);
    assert.equal(entries.size, stats.files + stats.dirs + stats.symlinks);
    assert.equal(result.files, stats.files + stats.symlinks);
    assert.equal(result.bytes, stats.bytes);
    assert.equal(result.dirs, stats.dirs + 1, "every directory, the top one included");
    assert.equal(result.engine, "io_uring");
    // Symlinks are links in the copy, with the same (even dangling or self-referencing) target.
    assert.equal(Deno.readLinkSync(`${dir.path}/copy/dangling link`), "does/not/exist");
    assert.ok(Deno.lstatSync(`${dir.path}/copy/link to dir ü`).isSymlink);
    // The read-only directory got its mode back after its contents were written.
    assert.equal(Deno.statSync(`${dir.path}/copy/read-only dir`).mode! & 0o777, 0o555);
    // Progress: totals grew during the scan, ended exact, and bytes never went backwards.
    const last = seen[seen.length - 1];
    assert.equal(last.scanning, false);
    assert.equal(last.totalFiles, stats.files + stats.symlinks);
    assert.equal(last.totalBytes, stats.bytes);
    assert.equal(last.files, stats.files + stats.symlinks);
    assert.equal(last.bytes, stats.bytes);
    assert.ok(seen.some((p) => p.scanning), "some reports came while scanning");
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].bytes >= seen[i - 1].bytes);
    assert.deepEqual(await listTree(src), before, "the source is unchanged");
    assert.deepEqual(tempLeftovers(`${dir.path}/copy`), []);
  },
});

Deno.test({
  name: "copyTree: many small files overlap under one global budget (queueDepth 1 and 64 give the same tree)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await makeTree(src, 300, 7);
    await using uring = new Uring({ sqpoll: false, entries: 256 });
    let maxPending = 0;
    const onProgress = () => {
      maxPending = Math.max(maxPending, uring.pending);
    };
    await copyTree(src, `${dir.path}/qd1`, { uring, queueDepth: 1, onProgress });
    assert.ok(maxPending <= 1, `queueDepth 1 keeps one operation in flight (saw ${maxPending})`);
    maxPending = 0;
    await copyTree(src, `${dir.path}/qd64`, { uring, queueDepth: 64, blockSize: 4096, onProgress });
    assert.ok(maxPending > 1, `queueDepth 64 overlaps operations (saw ${maxPending} at once)`);
    assert.ok(maxPending <= 64, `and never exceeds the budget (saw ${maxPending})`);
    await assertSameTree(src, `${dir.path}/qd1`);
    await assertSameTree(src, `${dir.path}/qd64`);
  },
});

Deno.test({
  name: "copyTree: the one-block chains (spliced or read and written) give the same tree under SQPOLL",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await makeTree(src, 300, 11);
    await using uring = new Uring({ entries: 256, fixedFiles: 128 });
    if (!uring.sqpoll) {
      console.log(`  skipped: no SQPOLL here (${uring.ring.sqpollFallbackReason})`);
      return;
    }
    const result = await copyTree(src, `${dir.path}/copy`, { uring, blockSize: 128 * 1024 });
    assert.equal(result.engine, "io_uring");
    await assertSameTree(src, `${dir.path}/copy`);
  },
});

Deno.test({
  name: "copyTree: preserve keeps the times of files and directories",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(`${src}/sub`, { recursive: true });
    await randomFile(`${src}/sub/f`, 5000);
    const t = new Date("2010-01-01T00:00:00.5Z");
    Deno.utimeSync(`${src}/sub/f`, t, t);
    Deno.utimeSync(`${src}/sub`, t, t);
    await copyTree(src, `${dir.path}/dst`, { preserve: true });
    assert.equal(Deno.statSync(`${dir.path}/dst/sub/f`).mtime?.getTime(), t.getTime());
    assert.equal(Deno.statSync(`${dir.path}/dst/sub`).mtime?.getTime(), t.getTime());
  },
});

Deno.test({
  name: "copyTree: merges into an existing directory; existing files are errors unless overwrite",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(`${src}/sub`, { recursive: true });
    await randomFile(`${src}/a`, 100);
    await randomFile(`${src}/sub/b`, 100);
    Deno.symlinkSync("a", `${src}/l`);
    Deno.mkdirSync(`${dir.path}/dst/sub`, { recursive: true });
    Deno.writeTextFileSync(`${dir.path}/dst/sub/b`, "old");
    Deno.writeTextFileSync(`${dir.path}/dst/keep`, "mine");
    await assert.rejects(copyTree(src, `${dir.path}/dst`), (e: Error & { code?: string; path?: string }) => {
      assert.ok(e instanceof Deno.errors.AlreadyExists, String(e));
      assert.equal(e.code, "EEXIST");
      assert.equal(e.path, `${dir.path}/dst/sub/b`);
      assert.match(e.message, /already exists \(use overwrite/);
      return true;
    });
    assert.equal(Deno.readTextFileSync(`${dir.path}/dst/sub/b`), "old", "not clobbered");
    Deno.symlinkSync("elsewhere", `${dir.path}/dst/l2`);
    const result = await copyTree(src, `${dir.path}/dst`, { overwrite: true });
    assert.equal(result.files, 3);
    assert.equal(Deno.readTextFileSync(`${dir.path}/dst/keep`), "mine", "other files stay");
    assert.equal(Deno.readFileSync(`${dir.path}/dst/sub/b`).length, 100);
    assert.equal(Deno.readLinkSync(`${dir.path}/dst/l`), "a");
    // overwrite replaces an existing symlink too
    Deno.removeSync(`${dir.path}/dst/l`);
    Deno.symlinkSync("old-target", `${dir.path}/dst/l`);
    await copyTree(src, `${dir.path}/dst`, { overwrite: true });
    assert.equal(Deno.readLinkSync(`${dir.path}/dst/l`), "a");
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name: "copyTree: continueOnError copies everything else and reports every failure in a CopyTreeError",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(`${src}/d1`, { recursive: true });
    Deno.mkdirSync(`${src}/d2`);
    for (const f of ["d1/x", "d1/y", "d2/x", "d2/y", "top"]) await randomFile(`${src}/${f}`, 3000);
    Deno.mkdirSync(`${dir.path}/dst/d1`, { recursive: true });
    Deno.mkdirSync(`${dir.path}/dst/d2`);
    Deno.writeTextFileSync(`${dir.path}/dst/d1/x`, "in the way");
    Deno.mkdirSync(`${dir.path}/dst/d2/y`); // a directory where a file should go
    // A FIFO is neither file, directory nor symlink: a failure, not a hang.
    const mkfifo = await new Deno.Command("mkfifo", { args: [`${src}/fifo`] }).output();
    const before = await fingerprint(`${src}/top`);
    let error: unknown;
    try {
      await copyTree(src, `${dir.path}/dst`, { continueOnError: true });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof CopyTreeError, String(error));
    assert.ok(error instanceof AggregateError);
    const messages = error.errors.map((e: Error) => e.message).sort();
    assert.equal(messages.length, mkfifo.success ? 3 : 2, messages.join("\n"));
    assert.ok(messages.some((m) => m.includes(`'${dir.path}/dst/d1/x' already exists`)), messages.join("\n"));
    assert.ok(messages.some((m) => m.includes(`'${dir.path}/dst/d2/y' is a directory`)), messages.join("\n"));
    if (mkfifo.success) {
      const special = error.errors.find((e: Error) =>
        e.message.includes("is not a regular file, directory or symlink")
      );
      assert.ok(
        special instanceof Deno.errors.NotSupported && (special as { code?: string }).code === "EOPNOTSUPP",
        String(special),
      );
    }
    assert.equal(error.result.files, 3, "the other files were copied");
    assert.match(error.message, /entries failed \(3 files copied\)/);
    assert.equal(Deno.readFileSync(`${dir.path}/dst/d1/y`).length, 3000);
    assert.equal(Deno.readFileSync(`${dir.path}/dst/d2/x`).length, 3000);
    assert.equal(Deno.readFileSync(`${dir.path}/dst/top`).length, 3000);
    assert.equal(Deno.readTextFileSync(`${dir.path}/dst/d1/x`), "in the way");
    assert.equal(await fingerprint(`${src}/top`), before);
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name: "copyTree: a file replaced by a symlink after the walk looked at it is not copied through it",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    Deno.writeFileSync(`${d}/src/a`, new Uint8Array(8 << 20).fill(1)); // slow: one block at a time
    Deno.writeTextFileSync(`${d}/src/sub/b`, "plain b");
    Deno.writeTextFileSync(`${d}/secret`, "SECRET"); // what a symlink swapped in points at
    // One file at a time: sub/b is looked at (lstat), then waits while `a` is copied; the first
    // progress report of `a` swaps it for a symlink. Opened following it, the copy of a tree the
    // caller may not trust (root copying a user's files) wrote the secret into the destination.
    let swapped = false;
    const error = await copyTree(`${d}/src`, `${d}/out`, {
      queueDepth: 1,
      blockSize: 4096,
      continueOnError: true,
      onProgress: (p) => {
        if (swapped || p.bytes === 0 || p.totalFiles < 2) return;
        swapped = true;
        Deno.removeSync(`${d}/src/sub/b`);
        Deno.symlinkSync(`${d}/secret`, `${d}/src/sub/b`);
      },
    }).then(() => null, (e) => e);
    assert.ok(swapped, "the swap never ran");
    assert.ok(error instanceof CopyTreeError, String(error));
    assert.equal(error.errors.length, 1);
    assert.match(error.errors[0].message, /src\/sub\/b' is a symlink loop, or was replaced by a symlink/);
    assert.ok(!existsPath(`${d}/out/sub/b`), "the file was copied through the symlink");
    assert.equal(Deno.statSync(`${d}/out/a`).size, 8 << 20);
  },
});

/** Whether `path` exists (not following a final symlink). */
function existsPath(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "copyTree: a copy into itself through a bind mount is refused (device and inode, not the path)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`, view = `${dir.path}/view`;
    Deno.mkdirSync(`${src}/a`, { recursive: true });
    Deno.writeTextFileSync(`${src}/a/f`, "f");
    Deno.mkdirSync(view);
    const mount = await new Deno.Command("mount", { args: ["--bind", `${src}/a`, view], stderr: "piped" })
      .output().catch((e: Error) => ({ success: false, stderr: new TextEncoder().encode(e.message) }));
    if (!mount.success) {
      console.log(
        `skipped: mount --bind is not permitted here (${new TextDecoder().decode(mount.stderr).trim()})`,
      );
      return;
    }
    try {
      // view/inner is src/a/inner: the walk reaches its own output (it went on until ENAMETOOLONG,
      // 4,095-byte paths). It stops there, as GNU cp does, after copying what came before.
      await assert.rejects(copyTree(src, `${view}/inner`), /cannot copy a directory into itself/);
      assert.ok(!existsPath(`${src}/a/inner/a/inner/a`), "the copy went on into its own output");
      Deno.removeSync(`${src}/a/inner`, { recursive: true });
      // Merging into view, which is src/a.
      await assert.rejects(copyTree(src, view, { overwrite: true }), /cannot copy a directory into itself/);
      // The source through the bind mount, into a directory under its real self: refused up front.
      await assert.rejects(copyTree(view, `${src}/a/x`), /cannot copy a directory into itself/);
      assert.ok(!existsPath(`${src}/a/x`));
    } finally {
      await new Deno.Command("umount", { args: [view] }).output();
    }
  },
});

Deno.test({
  name: "copyTree: refuses a source that is not a directory, a destination file, and a copy into itself",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(`${src}/sub`, { recursive: true });
    Deno.writeTextFileSync(`${dir.path}/file`, "x");
    await assert.rejects(
      copyTree(`${dir.path}/file`, `${dir.path}/out`),
      (e: Error) =>
        e instanceof Deno.errors.NotADirectory && /source '.*\/file' is not a directory/.test(e.message),
    );
    await assert.rejects(
      copyTree(src, `${dir.path}/file`),
      (e: Error) =>
        e instanceof Deno.errors.NotADirectory &&
        /destination '.*\/file' exists and is not a directory/.test(e.message),
    );
    await assert.rejects(copyTree(src, `${src}/sub/inside`), /cannot copy a directory into itself/);
    await assert.rejects(copyTree(src, src), /cannot copy a directory into itself/);
    await assert.rejects(
      copyTree(`${dir.path}/missing`, `${dir.path}/out`),
      (e: Error) =>
        e instanceof Deno.errors.NotFound && /source '.*\/missing' does not exist/.test(e.message),
    );
    await assert.rejects(
      copyTree(src, `${dir.path}/no/such/parent/out`),
      (e: Error) =>
        e instanceof Deno.errors.NotFound &&
        /destination directory '.*\/no\/such\/parent' does not exist/.test(e.message),
    );
    assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name).sort(), ["file", "src"]);
    // A destination (or a directory in a merged one) that is a symlink to nothing.
    Deno.symlinkSync("nowhere", `${dir.path}/dangling`);
    const toNothing = (name: string) => (e: Error) =>
      e instanceof Deno.errors.AlreadyExists &&
      new RegExp(`destination '.*/${name}' is a symlink to nothing, not a directory`).test(e.message);
    await assert.rejects(copyTree(src, `${dir.path}/dangling`), toNothing("dangling"));
    Deno.mkdirSync(`${dir.path}/merged`);
    Deno.symlinkSync("nowhere", `${dir.path}/merged/sub`);
    await assert.rejects(copyTree(src, `${dir.path}/merged`), toNothing("merged/sub"));
  },
});

Deno.test({
  name:
    "copyTree: directories keep setgid, setuid and sticky bits without preserve (mkdir ignores the first two)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    // t: sticky with modes the umask (022) leaves alone, so no chmod is needed to get them.
    const modes: Record<string, number> = { g: 0o2755, u: 0o4750, s: 0o1777, t: 0o1755, plain: 0o750 };
    for (const [name, mode] of Object.entries(modes)) {
      Deno.mkdirSync(`${src}/${name}`, { recursive: true });
      Deno.chmodSync(`${src}/${name}`, mode);
    }
    // Both engines: io_uring's mkdirat keeps the sticky bit, the fallback's Deno.mkdir does not.
    for (const engine of ["io_uring", "deno"]) {
      if (engine === "deno") Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
      try {
        const result = await copyTree(src, `${dir.path}/dst-${engine}`);
        assert.equal(result.engine, engine);
      } finally {
        Deno.env.delete("URING_FORCE_UNAVAILABLE");
      }
      for (const [name, mode] of Object.entries(modes)) {
        const got = Deno.statSync(`${dir.path}/dst-${engine}/${name}`).mode! & 0o7777;
        assert.equal(got.toString(8), mode.toString(8), `${engine}: ${name}`);
      }
    }
  },
});

Deno.test({
  name: "copyTree: a file name that is not valid UTF-8 is a failure that says so, never a silent skip",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(src);
    const enc = new TextEncoder();
    // "bad\xff" alone; and "x\xff" beside "x\uFFFD", the name Deno shows for it.
    createRawName(new Uint8Array([...enc.encode(`${src}/bad`), 0xff]));
    createRawName(new Uint8Array([...enc.encode(`${src}/x`), 0xff]));
    Deno.writeTextFileSync(`${src}/x\uFFFD`, "valid");
    // 100 bytes that are not UTF-8: 300 bytes as U+FFFD, past the limit of a name (ENAMETOOLONG).
    createRawName(new Uint8Array([...enc.encode(`${src}/`), ...Array(100).fill(0xff)]));
    Deno.writeTextFileSync(`${src}/plain`, "plain");
    for (const preserve of [false, true]) {
      const dst = `${dir.path}/dst-${preserve}`;
      await assert.rejects(
        copyTree(src, dst, { overwrite: true, continueOnError: true, preserve }),
        (e: Error) => {
          assert.ok(e instanceof CopyTreeError, String(e));
          assert.equal(e.errors.length, 3, e.errors.map(String).join("\n"));
          for (const one of e.errors) {
            assert.equal((one as Error & { code?: string }).code, "EILSEQ");
            assert.match(one.message, /is not valid UTF-8 .* cannot name it/);
          }
          return true;
        },
      );
      assert.deepEqual([...Deno.readDirSync(dst)].map((e) => e.name).sort(), ["plain", "x\uFFFD"]);
      assert.equal(Deno.readTextFileSync(`${dst}/x\uFFFD`), "valid");
    }
  },
});

Deno.test({
  name:
    "copyTree: merging with overwrite never copies a file onto itself (a destination symlink into the source, a hard link)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(`${src}/sub`, { recursive: true });
    Deno.writeTextFileSync(`${src}/sub/f`, "data");
    Deno.linkSync(`${src}/sub/f`, `${dir.path}/other name of f`);
    const inode = () => Deno.statSync(`${src}/sub/f`).ino;
    const before = inode();
    // preserve: entries are looked at by statx instead of lstat, the ids must agree either way.
    for (const preserve of [false, true]) {
      // The destination's `sub` leads back to the source's: merging through it would replace
      // src/sub/f by a copy of itself (a new inode, the hard link split off).
      Deno.mkdirSync(`${dir.path}/dst`);
      Deno.symlinkSync("../src/sub", `${dir.path}/dst/sub`);
      await assert.rejects(
        copyTree(src, `${dir.path}/dst`, { overwrite: true, preserve }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "EINVAL", String(e));
          assert.match(e.message, /'.*\/src\/sub' and '.*\/dst\/sub' are the same directory/);
          return true;
        },
      );
      assert.equal(inode(), before, `preserve ${preserve}: the source file is the same file`);
      assert.equal(Deno.statSync(`${dir.path}/other name of f`).nlink, 2);
      assert.equal(Deno.readTextFileSync(`${src}/sub/f`), "data");
      Deno.removeSync(`${dir.path}/dst`, { recursive: true });
      // A file of the destination that is a hard link to the source's file.
      Deno.mkdirSync(`${dir.path}/dst/sub`, { recursive: true });
      Deno.linkSync(`${src}/sub/f`, `${dir.path}/dst/sub/f`);
      await assert.rejects(
        copyTree(src, `${dir.path}/dst`, { overwrite: true, preserve }),
        (e: Error & { code?: string }) => {
          assert.equal(e.code, "EINVAL", String(e));
          assert.match(e.message, /'.*\/src\/sub\/f' and '.*\/dst\/sub\/f' are the same file/);
          return true;
        },
      );
      assert.equal(inode(), before, `preserve ${preserve}: the source file is the same file`);
      assert.equal(Deno.statSync(`${src}/sub/f`).nlink, 3);
      Deno.removeSync(`${dir.path}/dst`, { recursive: true });
    }
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name: "copyTree: the fallback engine (URING_FORCE_UNAVAILABLE=1) makes the same tree",
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    const stats = await makeTree(src, 200, 3);
    Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
    try {
      const result = await copyTree(src, `${dir.path}/dst`);
      assert.equal(result.engine, "deno");
      assert.equal(result.files, stats.files + stats.symlinks);
      await assertSameTree(src, `${dir.path}/dst`);
    } finally {
      Deno.env.delete("URING_FORCE_UNAVAILABLE");
    }
  },
});

Deno.test({
  name:
    "copyTree: two copies into the same new destination with overwrite both succeed (the later one merges)",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/src/sub`, { recursive: true });
    for (let i = 0; i < 10; i++) await randomFile(`${dir.path}/src/sub/f${i}`, 100 + i);
    Deno.symlinkSync("f0", `${dir.path}/src/sub/link`);
    Deno.mkdirSync(`${dir.path}/src/sub/deeper`);
    await randomFile(`${dir.path}/src/sub/deeper/g`, 5000);
    for (let round = 0; round < 5; round++) {
      const dst = `${dir.path}/dst${round}`;
      const [a, b] = await Promise.allSettled([
        copyTree(`${dir.path}/src`, dst, { overwrite: true }),
        copyTree(`${dir.path}/src`, dst, { overwrite: true }),
      ]);
      assert.equal(a.status, "fulfilled", a.status === "rejected" ? String(a.reason) : "");
      assert.equal(b.status, "fulfilled", b.status === "rejected" ? String(b.reason) : "");
      await assertSameTree(`${dir.path}/src`, dst);
    }
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name:
    "copyTree: when the rest of the process holds most descriptors, files wait for others' (EMFILE) instead of failing",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const source = `${dir.path}/src`;
    Deno.mkdirSync(source);
    for (let i = 0; i < 150; i++) await randomFile(`${source}/f${i}`, [100, 70_000, 1_500_000][i % 3]);
    // The child lowers its own limit, then holds descriptors: the copy sizes itself to what is
    // free, and still meets EMFILE if the process opens more meanwhile. 256 holding 160: files in progress wait for each other.
    // 1024 holding all but 40: the pipes it keeps between files must go too.
    // The second tree: many small files (a lane's pipe each) and a few of several blocks.
    const many = `${dir.path}/many`;
    for (let d = 0; d < 4; d++) {
      Deno.mkdirSync(`${many}/d${d}`, { recursive: true });
      for (let i = 0; i < 50; i++) await randomFile(`${many}/d${d}/f${i}`, 5000 + i * 3000);
      await randomFile(`${many}/d${d}/big`, 2 << 20);
    }
    // (Deno's engine, io_uring forced unavailable, took every free descriptor: it sized itself to none.)
    for (
      const [limit, free, src, denoEngine] of [[256, 96, source, false], [1024, 40, many, false], [
        1024,
        40,
        many,
        true,
      ]] as const
    ) {
      const dst = `${dir.path}/dst-${limit}-${denoEngine}`;
      const results = await childResults(
        `
${denoEngine ? 'Deno.env.set("URING_FORCE_UNAVAILABLE", "1");' : ""}
const { copyTree } = await import(${JSON.stringify(MOD_URL)});
const libc = Deno.dlopen("libc.so.6", { setrlimit: { parameters: ["i32", "buffer"], result: "i32" } });
const limit = ${limit}n;
if (libc.symbols.setrlimit(7, new Uint8Array(new BigUint64Array([limit, limit]).buffer)) !== 0) throw new Error("setrlimit");
const held = [];
try {
  for (;;) held.push(Deno.openSync(${JSON.stringify(`${source}/f0`)}));
} catch { /* EMFILE: every descriptor taken */ }
for (let i = 0; i < ${free}; i++) held.pop().close();
// The fewest descriptors left free while the copy runs, sampled between its turns.
let least = Infinity;
const sampler = setInterval(() => {
  try {
    let open = -1; // (the directory's own descriptor)
    for (const _ of Deno.readDirSync("/proc/self/fd")) open++;
    least = Math.min(least, ${limit} - open);
  } catch {
    least = 0; // not even one free to look with
  }
}, 0);
const r = await copyTree(${JSON.stringify(src)}, ${JSON.stringify(dst)});
clearInterval(sampler);
for (const f of held) f.close();
console.log(JSON.stringify({ files: String(r.files), least: String(least), engine: r.engine }));
`,
        ["--allow-all"], // (Deno lists /proc/self/fd for a program with every permission only)
      );
      assert.equal(results.files, src === source ? "150" : "204", `limit ${limit}, ${free} free`);
      assert.equal(results.engine, denoEngine ? "deno" : "io_uring");
      // The copy sizes itself to the descriptors free when it starts, less a reserve, so the rest
      // of the process can still open some: holding all but 40, the copy took them all (Deno
      // itself then panicked making the socket pair of its signal handling).
      assert.ok(
        Number(results.least) >= 16,
        `limit ${limit}, ${free} free: ${results.least} left at the least`,
      );
      await assertSameTree(src, dst);
    }
  },
});

/** Six files of a few blocks each in `source`. */
async function sixFiles(source: string): Promise<void> {
  for (let i = 0; i < 6; i++) await randomFile(`${source}/b${i}`, 3_000_000);
}

/**
 * Copies `source` with `copyTree` (continueOnError) in a child under `ulimit -n 64` that, once the
 * copy has sized itself, holds every descriptor but `spare`; resolves to "copied N" or the copy's
 * error message ("hung" when the child had not finished after 30 s). `denoEngine`: with Deno's
 * file APIs (io_uring forced unavailable); `continueOnError` false: the copy stops at its first
 * failure.
 */
async function copyWithSpareDescriptors(
  source: string,
  dst: string,
  spare: number,
  { denoEngine = false, continueOnError = true } = {},
): Promise<string> {
  const out = await runDeno(
    `
${denoEngine ? 'Deno.env.set("URING_FORCE_UNAVAILABLE", "1");' : ""}
// (Deno makes its signal socket pair by itself a while after start: with no descriptor free then
// it panics. A listener now makes it at once.)
Deno.addSignalListener("SIGUSR2", () => {});
const { copyTree } = await import(${JSON.stringify(MOD_URL)});
const libc = Deno.dlopen("libc.so.6", { setrlimit: { parameters: ["i32", "buffer"], result: "i32" } });
if (libc.symbols.setrlimit(7, new Uint8Array(new BigUint64Array([64n, 64n]).buffer)) !== 0) throw new Error("setrlimit");
const copying = copyTree(${JSON.stringify(source)}, ${
      JSON.stringify(dst)
    }, { continueOnError: ${continueOnError} });
const held = []; // taken once the copy has sized itself
try {
  for (;;) held.push(Deno.openSync("/dev/null"));
} catch { /* EMFILE */ }
for (let i = 0; i < ${spare}; i++) held.pop().close();
let outcome;
try {
  outcome = "copied " + (await copying).files;
} catch (e) {
  outcome = e.message;
}
for (const f of held) f.close();
console.log(JSON.stringify({ outcome }));
`,
    ["--allow-read", "--allow-write", "--allow-ffi", "--allow-env"],
    { timeoutMs: 30_000 },
  );
  if (out.timedOut) return "hung";
  assert.equal(out.code, 0, out.stderr);
  return JSON.parse(out.stdout).outcome;
}

Deno.test({
  name: "copyTree: two files that meet EMFILE at once with descriptors for one: both wait their turn",
  ignore: skipKernel(),
  fn: async () => {
    // The second to fail saw no other file running (the first was waiting for a slot) and gave up,
    // although the first's failure had freed descriptors while it ran: one file of six was lost.
    using dir = tempDir();
    const source = `${dir.path}/src`;
    Deno.mkdirSync(source);
    const dst = `${dir.path}/dst`;
    await sixFiles(source);
    assert.equal(await copyWithSpareDescriptors(source, dst, 2), "copied 6");
    await assertSameTree(source, dst);
  },
});

Deno.test({
  name: "copyTree: descriptors for one file, a subdirectory: a listing's EMFILE does not make a file give up",
  ignore: skipKernel(),
  fn: async () => {
    // The walk's EMFILE withheld a file slot it had not got yet: a file that met EMFILE while
    // another still ran counted no other file running and gave up (8 of 8 runs in the probe).
    using dir = tempDir();
    const source = `${dir.path}/src`;
    Deno.mkdirSync(`${source}/sub`, { recursive: true });
    for (const p of ["f0", "f1", "sub/f2"]) await randomFile(`${source}/${p}`, 3_000_000);
    const dst = `${dir.path}/dst`;
    assert.equal(await copyWithSpareDescriptors(source, dst, 2, { continueOnError: false }), "copied 3");
    await assertSameTree(source, dst);
  },
});

Deno.test({
  name: "copyTree (Deno's file APIs): descriptors for one file, many directories: no file gives up",
  ignore: skipKernel(),
  fn: async () => {
    // A file that met EMFILE while only a directory listing held descriptors gave up (5–16 of 60
    // lost in every run of the probe): it now waits for the listing to end.
    using dir = tempDir();
    const source = `${dir.path}/src`;
    let n = 0;
    for (let a = 0; a < 6; a++) {
      for (let b = 0; b < 6; b++) {
        const d = `${source}/d${a}/d${b}`;
        Deno.mkdirSync(d, { recursive: true });
        Deno.writeTextFileSync(`${d}/f${n++}`, "x");
        Deno.writeTextFileSync(`${d}/g${n++}`, "y");
      }
    }
    const dst = `${dir.path}/dst`;
    assert.equal(await copyWithSpareDescriptors(source, dst, 2, { denoEngine: true }), `copied ${n}`);
    await assertSameTree(source, dst);
  },
});

Deno.test({
  name:
    "copyTree (Deno's file APIs): a file that cannot be opened for want of descriptors says so, not 'writing'",
  ignore: skipKernel(),
  fn: async () => {
    // Deno.copyFile opens both files itself: its EMFILE was reported as the copy's writing failing.
    using dir = tempDir();
    const source = `${dir.path}/src`;
    Deno.mkdirSync(source);
    await sixFiles(source);
    const outcome = await copyWithSpareDescriptors(source, `${dir.path}/dst`, 1, { denoEngine: true });
    assert.match(outcome, /Too many open files \(EMFILE\)/);
    assert.doesNotMatch(outcome, /writing the destination failed/);
  },
});

Deno.test({
  name: "copyTree (Deno's file APIs): two listings out of descriptors do not retry each other for ever",
  ignore: skipKernel(),
  async fn() {
    // Each failed listing counted as giving descriptors back and woke the other: 30,000-47,000
    // listings while the program held the last descriptor for 2 s (4 of 10 runs in the probe).
    using dir = tempDir();
    for (const s of ["s0", "s1"]) Deno.mkdirSync(`${dir.path}/src/${s}`, { recursive: true });
    const out = await runDeno(
      `
Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
Deno.addSignalListener("SIGUSR2", () => {}); // (see copyWithSpareDescriptors)
let readDirs = 0, holder;
const readDir = Deno.readDir;
Deno.readDir = (p) => {
  readDirs++;
  const listing = readDir(p);
  if (readDirs !== 1) return listing;
  // The top listing: once it has given its descriptor back, this program takes it for 2 s.
  return (async function* () {
    for await (const e of listing) yield e;
    holder = Deno.openSync("/dev/null");
    setTimeout(() => holder.close(), 2000);
  })();
};
const { copyTree } = await import(${JSON.stringify(MOD_URL)});
const libc = Deno.dlopen("libc.so.6", { setrlimit: { parameters: ["i32", "buffer"], result: "i32" } });
libc.symbols.setrlimit(7, new Uint8Array(new BigUint64Array([64n, 64n]).buffer));
const copying = copyTree(${JSON.stringify(`${dir.path}/src`)}, ${
        JSON.stringify(`${dir.path}/dst`)
      }, { continueOnError: true });
const held = [];
try {
  for (;;) held.push(Deno.openSync("/dev/null"));
} catch { /* EMFILE */ }
held.pop().close(); // one spare: the top listing's
let outcome;
try {
  outcome = "copied " + (await copying).files;
} catch (e) {
  outcome = e.message;
}
console.log(JSON.stringify({ outcome, readDirs }));
Deno.exit(0);
`,
      ["--allow-all"],
      { timeoutMs: 30_000 },
    );
    assert.equal(out.code, 0, out.stderr);
    const { outcome, readDirs } = JSON.parse(out.stdout);
    assert.match(outcome, /EMFILE/);
    assert.ok(readDirs <= 8, `${readDirs} listings`);
  },
});

Deno.test({
  name: "copyTree: with no descriptor to spare, the files give up with EMFILE (no endless retrying)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const source = `${dir.path}/src`;
    Deno.mkdirSync(source);
    await sixFiles(source);
    const outcome = await copyWithSpareDescriptors(source, `${dir.path}/dst`, 1); // (one: the listing)
    assert.match(outcome, /EMFILE/);
  },
});

Deno.test({
  name: "copyTree: a listing that fails with EMFILE names the errno (Deno's own message says 'os error 24')",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const source = `${dir.path}/src`;
    Deno.mkdirSync(source);
    await sixFiles(source);
    const outcome = await copyWithSpareDescriptors(source, `${dir.path}/dst`, 0);
    assert.match(outcome, /listing the source directory failed: Too many open files \(EMFILE\)/);
    assert.doesNotMatch(outcome, /os error/);
  },
});

Deno.test({
  name:
    "copyFile/copyTree: a FIFO (or device) at the destination is refused, also with overwrite, never replaced",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    Deno.writeTextFileSync(`${d}/f`, "hello");
    mkfifo(`${d}/fifo`);
    Deno.mkdirSync(`${d}/src`);
    Deno.writeTextFileSync(`${d}/src/x`, "x");
    Deno.symlinkSync("f", `${d}/src/link`);
    Deno.mkdirSync(`${d}/dst/src`, { recursive: true });
    mkfifo(`${d}/dst/src/x`);
    mkfifo(`${d}/dst/src/link`);
    // (A rename over the name deleted the node: as root, `cp -f x /dev/null` made /dev/null a file.)
    for (const overwrite of [false, true]) {
      await assert.rejects(
        copyFile(`${d}/f`, `${d}/fifo`, { overwrite }),
        (e: Error & { code?: string }) =>
          e instanceof Deno.errors.AlreadyExists && e.code === "EEXIST" &&
          /is a device, FIFO or socket/.test(e.message),
      );
      await assert.rejects(
        copyTree(`${d}/src`, `${d}/dst/src`, { overwrite, continueOnError: true }),
        (e) => {
          assert.ok(e instanceof CopyTreeError);
          assert.equal(e.errors.length, 2, e.message);
          for (const error of e.errors) assert.match(error.message, /is a device, FIFO or socket/);
          return true;
        },
      );
      for (const path of [`${d}/fifo`, `${d}/dst/src/x`, `${d}/dst/src/link`]) {
        assert.ok(Deno.lstatSync(path).isFifo, `${path} is still a FIFO (overwrite: ${overwrite})`);
      }
    }
  },
});

Deno.test({
  name: "copyTree: a symlink to a directory inside an existing destination is not merged through",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    Deno.writeTextFileSync(`${d}/src/sub/f`, "f");
    Deno.writeTextFileSync(`${d}/src/top`, "top");
    Deno.mkdirSync(`${d}/outside`);
    Deno.mkdirSync(`${d}/dst`);
    Deno.symlinkSync(`${d}/outside`, `${d}/dst/sub`); // someone who can write to dst put it there
    for (const overwrite of [false, true]) {
      await assert.rejects(copyTree(`${d}/src`, `${d}/dst`, { overwrite, continueOnError: true }), (e) => {
        assert.ok(e instanceof CopyTreeError);
        assert.equal(e.errors.length, 1, e.message);
        assert.ok(e.errors[0] instanceof Deno.errors.NotADirectory, String(e.errors[0]));
        assert.match(e.errors[0].message, /is a symlink, not a directory/);
        return true;
      });
      assert.deepEqual([...Deno.readDirSync(`${d}/outside`)], [], "nothing written through the link");
      assert.ok(Deno.lstatSync(`${d}/dst/sub`).isSymlink);
      assert.equal(Deno.readTextFileSync(`${d}/dst/top`), "top"); // the rest was copied
    }
    // The destination the caller names may itself be a symlink to a directory: merged into.
    Deno.symlinkSync(`${d}/outside`, `${d}/named`);
    await copyTree(`${d}/src`, `${d}/named`);
    assert.equal(Deno.readTextFileSync(`${d}/outside/sub/f`), "f");
  },
});

// One victim; and four with room for one chain at a time, so chains wait for permits when the
// stop comes (they must not start after it, missing its cancel).
// And on a caller's Uring smaller than the copy's budget, where some files go through Uring.chain.
for (
  const [victims, queueDepth, others, entries] of [[1, undefined, 200, 0], [4, 6, 0, 0], [
    12,
    48,
    0,
    8,
  ]] as const
) {
  Deno.test({
    name: `copyTree: an abort ends a copy stuck opening FIFOs that replaced source files after the walk ` +
      `(${victims}, queue depth ${queueDepth ?? "default"}${
        entries ? `, on a Uring of ${entries} entries` : ""
      })`,
    ignore: skipKernel(),
    fn: async () => {
      using dir = tempDir();
      const src = `${dir.path}/src`;
      const names = Array.from({ length: victims }, (_, i) => `zz_victim${i}`);
      await using uring = entries ? new Uring({ entries, sqpoll: false }) : undefined;
      const timers: ReturnType<typeof setTimeout>[] = [];
      const delay = (ms: number) => new Promise((resolve) => timers.push(setTimeout(resolve, ms)));
      let controller: AbortController;
      let copy: Promise<unknown>;
      // The swap must come before a victim's open: under load a victim may already be copied
      // (done), or be replaced mid-copy and then refused as a FIFO (failed). Such an attempt
      // shows nothing: the scenario is set up again, up to five times.
      for (let attempt = 1;; attempt++) {
        Deno.removeSync(dir.path, { recursive: true });
        Deno.mkdirSync(src, { recursive: true });
        for (let i = 0; i < others; i++) {
          Deno.writeTextFileSync(`${src}/f${String(i).padStart(4, "0")}`, "x".repeat(100));
        }
        for (const name of names) Deno.writeTextFileSync(`${src}/${name}`, "victim");
        const ac = new AbortController();
        controller = ac;
        let swapped = false;
        copy = copyTree(src, `${dir.path}/dst`, {
          signal: ac.signal,
          ...(queueDepth === undefined ? {} : { queueDepth }),
          ...(uring === undefined ? {} : { uring }),
          onProgress: (p) => {
            if (swapped || p.scanning) return;
            // The walk saw regular files; their opens now wait for a writer (in a kernel worker).
            swapped = true;
            for (const name of names) {
              mkfifo(`${dir.path}/fifo`);
              Deno.renameSync(`${dir.path}/fifo`, `${src}/${name}`);
            }
          },
        });
        const stuck = await Promise.race([
          copy.then(() => "done", () => "failed"),
          delay(500).then(() => "stuck"),
        ]);
        if (stuck === "stuck") break;
        assert.ok(
          attempt < 5,
          `the copy never waited on a FIFO in 5 attempts (${stuck}): this test shows nothing`,
        );
        ac.abort(); // (ends anything left of it)
        await copy.catch(() => {});
      }
      controller.abort();
      const ended = await Promise.race([
        copy.then(() => "done", (e) => e.name),
        delay(5000).then(() => "hung"),
      ]);
      for (const timer of timers) clearTimeout(timer);
      assert.equal(ended, "AbortError");
      assert.deepEqual(tempLeftovers(`${dir.path}/dst`), []);
      for (const name of names) { // copied whole before the swap, or not at all
        try {
          assert.equal(Deno.readTextFileSync(`${dir.path}/dst/${name}`), "victim");
        } catch (e) {
          assert.ok(e instanceof Deno.errors.NotFound, String(e));
        }
      }
    },
  });
}

for (
  const [preserve, saves, blocks] of [[false, 1, false], [true, 1, false], [false, 2, false], [
    false,
    1,
    true,
  ]] as const
) {
  Deno.test({
    name: `copyTree${preserve ? " (preserve)" : ""}: files replaced (renamed over${
      saves > 1 ? " twice: ext4 gives the first inode number back" : ""
    }) after the walk looked at them are copied whole, old or new${
      blocks ? " (files of several blocks)" : ""
    }`,
    ignore: skipKernel(),
    fn: async () => {
      // The copy took each file's size when it looked at it, and copied that many bytes of
      // whatever the path held when it opened it: the new file cut to the old size, reported as
      // copied (6 of 40 at queue depth 6, and 34 of 40 with preserve, every run). Saved twice, the
      // file got its first inode number back, and the inode alone said "same file" (6 of 40 torn):
      // the birth time tells.
      using dir = tempDir();
      const src = `${dir.path}/src`;
      Deno.mkdirSync(src);
      // (Several blocks: the block path, which counts each write's bytes as it goes.)
      const OLD = blocks ? "o".repeat(3 * 4096 + 5) : "old version\n";
      const NEW = "new version, longer: " + "x".repeat(blocks ? 5 * 4096 : 3000) + "\n";
      const N = 40;
      for (let i = 0; i < N; i++) Deno.writeTextFileSync(`${src}/f${i}`, OLD);
      let replaced = false;
      let last: CopyProgress | undefined;
      const result = await copyTree(src, `${dir.path}/dst`, {
        preserve,
        queueDepth: 6,
        ...(blocks ? { blockSize: 4096 } : {}),
        onProgress: (p) => {
          last = { ...p };
          if (replaced || p.files < 1) return;
          replaced = true; // the first file is done: replace every source file, as an editor saves
          // Not within the millisecond the walk looked at them in: a version born in that same
          // millisecond with the same (reused) inode number is not told apart (see the README).
          const later = performance.now() + 2;
          while (performance.now() < later) { /* wait */ }
          for (let i = 0; i < N; i++) {
            for (let save = 0; save < saves; save++) {
              Deno.writeTextFileSync(`${dir.path}/staged`, NEW);
              Deno.renameSync(`${dir.path}/staged`, `${src}/f${i}`);
            }
          }
        },
      });
      assert.ok(replaced);
      assert.equal(result.engine, "io_uring");
      let bytes = 0, fresh = 0;
      for (let i = 0; i < N; i++) {
        const copy = Deno.readTextFileSync(`${dir.path}/dst/f${i}`);
        assert.ok(
          copy === OLD || copy === NEW,
          `f${i}: ${copy.length} bytes, ${JSON.stringify(copy.slice(0, 12))}`,
        );
        bytes += copy.length;
        if (copy === NEW) fresh++;
      }
      assert.ok(fresh > 0, "some files were copied after they were replaced");
      assert.deepEqual([result.files, result.bytes], [N, bytes]);
      // A file copied anew counted its bytes twice against its size once (bytes > totalBytes).
      assert.equal(last?.bytes, last?.totalBytes, "progress: the redone files' bytes are in the total too");
      assert.deepEqual(Deno.readDirSync(`${dir.path}/dst`).toArray().length, N, "no temporary files left");
    },
  });
}

Deno.test({
  name:
    "copyTree's walk looks with statx under Deno's rules: `/`'s dev, proc and sys need --allow-all, as lstat",
  ignore: skipKernel(),
  fn() {
    // The walk's look at an entry skips the /dev, /proc, /sys rule (its directory passed it),
    // except for the three names that are such roots when the directory is `/`.
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/proc`, "x"); // a file named proc below a plain directory
    const sys = getSys();
    const allAccess = Deno.permissions.querySync({ name: "run" }).state === "granted" &&
      Deno.permissions.querySync({ name: "net" }).state === "granted";
    for (const name of ["dev", "proc", "sys"]) {
      if (allAccess) break; // (run with --allow-all: nothing to refuse)
      assert.throws(() => statNow(sys, `/${name}`, false, true), Deno.errors.NotCapable, name);
      assert.throws(() => Deno.lstatSync(`/${name}`), Deno.errors.NotCapable, `Deno: ${name}`);
    }
    assert.equal(statNow(sys, `${dir.path}/proc`, false, true).size, 1);
    assert.equal(statNow(sys, `${dir.path}/proc`, false).size, 1);
    assert.throws(() => statNow(sys, `${dir.path}/missing`, false, true), Deno.errors.NotFound);
  },
});

Deno.test({
  name: "copies: progress ends with bytes equal to totalBytes when a large file shrinks mid-copy",
  ignore: skipKernel(),
  fn: async () => {
    // Blocks read before the source was cut, past its new end, were counted in `bytes`; the copy
    // was cut to the new end and the total became it: the last report said 41.9 of 34.6 MB (a
    // probe: 3-5 of 6 copies).
    using dir = tempDir();
    const MiB = 1024 * 1024;
    const data = new Uint8Array(24 * MiB).fill(7);
    let bad = 0;
    const runs: string[] = [];
    for (const splice of [true, false]) {
      for (const tree of [false, true]) {
        for (let round = 0; round < 3; round++) {
          const src = `${dir.path}/src`;
          Deno.mkdirSync(src, { recursive: true });
          Deno.writeFileSync(`${src}/big`, data);
          const dst = `${dir.path}/dst`;
          let cut = false;
          let last: CopyProgress | undefined;
          const onProgress = (p: CopyProgress) => {
            last = { ...p };
            if (!cut && p.bytes >= 4 * MiB) {
              cut = true;
              Deno.truncateSync(`${src}/big`, 2 * MiB + 5); // in place: the same file, shorter
            }
          };
          const options = { splice, queueDepth: 16, blockSize: 256 * 1024, onProgress };
          const result = tree
            ? await copyTree(src, dst, options)
            : await copyFile(`${src}/big`, `${dst}`, options);
          const out = tree ? `${dst}/big` : dst;
          assert.ok(cut && last !== undefined);
          // (Blocks read before the cut are in the copy: it ends where a read first came short.)
          const size = Deno.statSync(out).size;
          assert.ok(size >= 2 * MiB + 5 && size < data.length, `cut short: ${size}`);
          assert.equal(result.bytes, size, "the result counts the copy's bytes");
          assert.ok(last.bytes >= result.bytes);
          runs.push(`${last.bytes}/${last.totalBytes}`);
          if (last.bytes !== last.totalBytes) bad++;
          Deno.removeSync(src, { recursive: true });
          Deno.removeSync(dst, { recursive: true });
        }
      }
    }
    assert.equal(bad, 0, `bytes and totalBytes met at the end: ${runs.join(", ")}`);
  },
});

Deno.test({
  name: "copyTree: progress ends with bytes equal to totalBytes when files grew or shrank after the walk",
  ignore: skipKernel(),
  fn: async () => {
    // A file looked at as empty is read to its end: its bytes went into `bytes` but never into
    // `totalBytes` (a probe: 41 of 300 copyFiles ended at 40000 of 0 bytes). One that shrank
    // copies what it has.
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(src);
    const N = 24;
    for (let i = 0; i < N; i++) Deno.writeFileSync(`${src}/f${i}`, new Uint8Array(i % 2 ? 5000 : 0).fill(1));
    let changed = false;
    let last: CopyProgress | undefined;
    const result = await copyTree(src, `${dir.path}/dst`, {
      queueDepth: 6,
      blockSize: 4096,
      onProgress: (p) => {
        last = { ...p };
        if (changed || p.files < 1) return;
        changed = true; // in place (same inode: not a replacement): empty ones grow, others shrink
        for (let i = 0; i < N; i++) {
          if (i % 2) Deno.truncateSync(`${src}/f${i}`, 100);
          else Deno.writeFileSync(`${src}/f${i}`, new Uint8Array(3000).fill(2));
        }
      },
    });
    assert.ok(changed);
    let onDisk = 0;
    for (let i = 0; i < N; i++) onDisk += Deno.statSync(`${dir.path}/dst/f${i}`).size;
    assert.equal(result.bytes, onDisk);
    assert.ok(last !== undefined && last.files === N);
    assert.equal(last.bytes, last.totalBytes, "bytes and totalBytes meet at the end");
    assert.equal(last.bytes, onDisk);
  },
});

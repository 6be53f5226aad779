import assert from "node:assert/strict";
import { ClosedError, copyFile, copyTree, CopyTreeError, OsError, Uring } from "../mod.ts";
import { makeFailure } from "../src/copy_errors.ts";
import { skipKernel, tempDir } from "./_support.ts";
import { mkfifo } from "./_io.ts";
import {
  assertSameTree,
  divertFirstChain,
  fingerprint,
  openUnder,
  randomFile,
  ROOT,
  runUnprivileged,
  tempLeftovers,
  unprivilegedUnavailable,
  withTmpfs,
} from "./copy_support.ts";
import { MOD_URL, runDeno } from "./uring_support.ts";

type CopyError = Error & { code?: string; path?: string; dest?: string };

const ECANCELED = 125;

function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

Deno.test({
  name: "copyFile failure: source missing / a directory / not a regular file",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await assert.rejects(copyFile(`${dir.path}/missing`, `${dir.path}/dst`), (e: CopyError) => {
      assert.ok(e instanceof Deno.errors.NotFound, String(e));
      assert.equal(e.code, "ENOENT");
      assert.equal(e.path, `${dir.path}/missing`);
      assert.equal(
        e.message,
        `cannot copy '${dir.path}/missing' to '${dir.path}/dst': source '${dir.path}/missing' does not exist`,
      );
      return true;
    });
    Deno.mkdirSync(`${dir.path}/adir`);
    await assert.rejects(
      copyFile(`${dir.path}/adir`, `${dir.path}/dst`),
      (e: CopyError) =>
        e instanceof Deno.errors.IsADirectory && /source '.*\/adir' is a directory/.test(e.message),
    );
    const fifo = await new Deno.Command("mkfifo", { args: [`${dir.path}/fifo`] }).output();
    if (fifo.success) {
      await assert.rejects(
        copyFile(`${dir.path}/fifo`, `${dir.path}/dst`),
        (e: Error & { code?: string }) =>
          e instanceof Deno.errors.NotSupported && e.code === "EOPNOTSUPP" &&
          /is not a regular file/.test(e.message),
      );
    }
    assert.deepEqual(names(dir.path), fifo.success ? ["adir", "fifo"] : ["adir"]);
  },
});

Deno.test({
  name:
    "copyFile failure: destination parent missing, parent is a file, destination is a directory or exists",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await randomFile(src, 50_000, 0o644);
    const before = await fingerprint(src);
    await assert.rejects(copyFile(src, `${dir.path}/nope/dst`), (e: CopyError) => {
      assert.ok(e instanceof Deno.errors.NotFound, String(e));
      assert.equal(e.path, `${dir.path}/nope/dst`);
      assert.match(e.message, /destination directory '.*\/nope' does not exist$/);
      return true;
    });
    await assert.rejects(
      copyFile(src, `${src}/dst`),
      (e: CopyError) => e instanceof Deno.errors.NotADirectory && /is not a directory/.test(e.message),
    );
    Deno.mkdirSync(`${dir.path}/adir`);
    for (const overwrite of [false, true]) {
      await assert.rejects(copyFile(src, `${dir.path}/adir`, { overwrite }), (e: CopyError) => {
        assert.ok(e instanceof Deno.errors.IsADirectory, String(e));
        assert.equal(e.code, "EISDIR");
        assert.match(e.message, /destination '.*\/adir' is a directory$/);
        return true;
      });
    }
    // `link/` of a link to a directory names the directory (it said "is not a directory"); of a
    // link to a file, it is not one.
    Deno.symlinkSync("adir", `${dir.path}/dirlink`);
    Deno.symlinkSync("src", `${dir.path}/filelink`);
    await assert.rejects(copyFile(src, `${dir.path}/dirlink/`), (e: CopyError) => {
      assert.ok(e instanceof Deno.errors.IsADirectory, String(e));
      assert.match(e.message, /destination '.*\/dirlink\/' is a directory$/);
      return true;
    });
    await assert.rejects(
      copyFile(src, `${dir.path}/filelink/`),
      (e: CopyError) =>
        e instanceof Deno.errors.NotADirectory && /'.*\/filelink\/' is not a directory/.test(e.message),
    );
    Deno.removeSync(`${dir.path}/dirlink`);
    Deno.removeSync(`${dir.path}/filelink`);
    Deno.writeTextFileSync(`${dir.path}/existing`, "keep me");
    await assert.rejects(copyFile(src, `${dir.path}/existing`), (e: CopyError) => {
      assert.ok(e instanceof Deno.errors.AlreadyExists, String(e));
      assert.equal(e.code, "EEXIST");
      assert.match(
        e.message,
        /destination '.*\/existing' already exists \(use overwrite: true to replace it\)/,
      );
      return true;
    });
    assert.equal(Deno.readTextFileSync(`${dir.path}/existing`), "keep me");
    await assert.rejects(copyFile(src, src, { overwrite: true }), /source and destination are the same file/);
    assert.equal(await fingerprint(src), before, "the source is never modified");
    assert.deepEqual(names(dir.path), ["adir", "existing", "src"]);
    assert.deepEqual(names(`${dir.path}/adir`), []);
  },
});

Deno.test({
  name: "copyFile/copyTree failure: out of space (tmpfs of 1 MiB) removes the partial copy",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await withTmpfs(dir.path, "1m", async (mount) => {
      if (mount.path === undefined) {
        console.log(`SKIP out-of-space test: ${mount.skip}`);
        return;
      }
      const mnt = mount.path;
      const src = `${dir.path}/big`;
      await randomFile(src, 3 * 1024 * 1024);
      const before = await fingerprint(src);
      await assert.rejects(copyFile(src, `${mnt}/big`), (e: CopyError) => {
        assert.ok(e instanceof OsError, String(e));
        assert.equal(e.code, "ENOSPC");
        assert.equal(e.path, `${mnt}/big`);
        assert.match(
          e.message,
          /^cannot copy '.*\/big' to '.*\/big': no space left on the destination's device/,
        );
        assert.match(e.message, /the partial copy was removed/);
        return true;
      });
      assert.deepEqual(names(mnt), [], "nothing left behind");
      // With overwrite, a failed copy leaves the old destination as it was.
      Deno.writeTextFileSync(`${mnt}/big`, "old");
      await assert.rejects(copyFile(src, `${mnt}/big`, { overwrite: true }), /no space left/);
      assert.equal(Deno.readTextFileSync(`${mnt}/big`), "old");
      Deno.removeSync(`${mnt}/big`);
      // A tree: the small files fit, the big one does not; continueOnError reports it.
      const tree = `${dir.path}/tree`;
      Deno.mkdirSync(tree);
      for (let i = 0; i < 5; i++) await randomFile(`${tree}/small-${i}`, 20_000);
      await randomFile(`${tree}/huge`, 2 * 1024 * 1024);
      await assert.rejects(
        copyTree(tree, `${mnt}/tree`, { continueOnError: true, queueDepth: 2 }),
        (e: CopyTreeError) => {
          assert.ok(e instanceof CopyTreeError, String(e));
          assert.equal(e.errors.length, 1);
          assert.match(e.errors[0].message, /'.*\/tree\/huge'.*no space left/);
          assert.equal(e.result.files, 5);
          return true;
        },
      );
      assert.deepEqual(names(`${mnt}/tree`), [0, 1, 2, 3, 4].map((i) => `small-${i}`));
      assert.deepEqual(tempLeftovers(mnt), []);
      assert.equal(await fingerprint(src), before);
      // Many one-block files (each one chain at the default queue depth) into too little room:
      // the files that fit are whole, the others are reported and leave nothing behind.
      Deno.removeSync(`${mnt}/tree`, { recursive: true });
      const many = `${dir.path}/many`;
      Deno.mkdirSync(many);
      for (let i = 0; i < 30; i++) await randomFile(`${many}/f${String(i).padStart(2, "0")}`, 64 * 1024);
      await assert.rejects(copyTree(many, `${mnt}/many`, { continueOnError: true }), (e: CopyTreeError) => {
        assert.ok(e instanceof CopyTreeError, String(e));
        assert.ok(
          e.errors.length > 0 && e.result.files > 0,
          `${e.errors.length} failed, ${e.result.files} copied`,
        );
        assert.equal(e.errors.length + e.result.files, 30);
        for (const err of e.errors) assert.match(err.message, /no space left/);
        return true;
      });
      for (const name of names(`${mnt}/many`)) {
        assert.deepEqual(
          Deno.readFileSync(`${mnt}/many/${name}`),
          Deno.readFileSync(`${many}/${name}`),
          name,
        );
      }
      assert.deepEqual(tempLeftovers(mnt), []);
    });
  },
});

Deno.test({
  name: "copyFile/copyTree: what is in the way of a small file is the failure, not a full disk",
  ignore: skipKernel(),
  fn: async () => {
    // A destination in the way is refused before any byte moves. (A version that looked at it only
    // after the copy, to spare the look's wait on the directory's lock, reported a full disk here;
    // it was dropped: a refused copy then wrote, counted bytes and touched the directory.)
    using dir = tempDir();
    await withTmpfs(dir.path, "1m", async (mount) => {
      if (mount.path === undefined) {
        console.log(`SKIP full-disk test: ${mount.skip}`);
        return;
      }
      const mnt = mount.path;
      const src = `${dir.path}/src`;
      await randomFile(src, 64 * 1024);
      Deno.mkdirSync(`${mnt}/adir`);
      mkfifo(`${mnt}/fifo`);
      Deno.writeTextFileSync(`${mnt}/existing`, "keep me");
      Deno.symlinkSync("nowhere", `${mnt}/dangling`);
      Deno.mkdirSync(`${mnt}/tree/f`, { recursive: true }); // a directory where the tree's file goes
      // Fill the disk: the copies' temporary files cannot take a byte.
      using filler = Deno.openSync(`${mnt}/filler`, { write: true, create: true });
      const block = new Uint8Array(64 * 1024);
      try {
        for (;;) filler.writeSync(block);
      } catch (e) {
        assert.ok(e instanceof Error && /ENOSPC|No space left|os error 28/.test(String(e)), String(e));
      }
      await assert.rejects(copyFile(src, `${mnt}/adir`), (e: CopyError) => {
        assert.ok(e instanceof Deno.errors.IsADirectory, String(e));
        assert.match(e.message, /destination '.*\/adir' is a directory$/);
        return true;
      });
      await assert.rejects(copyFile(src, `${mnt}/fifo`), (e: CopyError) => {
        assert.equal(e.code, "EEXIST", String(e));
        assert.match(e.message, /is a device, FIFO or socket/);
        return true;
      });
      for (const name of ["existing", "dangling"]) {
        await assert.rejects(copyFile(src, `${mnt}/${name}`), (e: CopyError) => {
          assert.ok(e instanceof Deno.errors.AlreadyExists, String(e));
          assert.match(e.message, new RegExp(`destination '.*/${name}' already exists \\(use overwrite`));
          return true;
        });
      }
      const tree = `${dir.path}/tree`;
      Deno.mkdirSync(tree);
      await randomFile(`${tree}/f`, 1000);
      await assert.rejects(copyTree(tree, `${mnt}/tree`), (e: CopyError) => {
        assert.ok(e instanceof Deno.errors.IsADirectory, String(e));
        assert.match(e.message, /destination '.*\/tree\/f' is a directory$/);
        return true;
      });
      assert.equal(Deno.readTextFileSync(`${mnt}/existing`), "keep me");
      assert.equal(Deno.readLinkSync(`${mnt}/dangling`), "nowhere");
      assert.ok(Deno.lstatSync(`${mnt}/fifo`).isFifo);
      assert.deepEqual(names(`${mnt}/adir`), []);
      assert.deepEqual(names(`${mnt}/tree/f`), []);
      assert.deepEqual(tempLeftovers(mnt), []);
    });
    // The source itself, by its own name or another link to it, without overwrite.
    const src = `${dir.path}/src`;
    const before = await fingerprint(src);
    Deno.linkSync(src, `${dir.path}/hard`);
    for (const to of [src, `${dir.path}/hard`]) {
      await assert.rejects(copyFile(src, to), (e: CopyError) => {
        assert.equal(e.code, "EINVAL", String(e));
        assert.match(e.message, /source and destination are the same file$/);
        return true;
      });
    }
    assert.equal(await fingerprint(src), before);
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name: "copyFile abort: a signal mid-copy rejects with AbortError naming the file; nothing is left",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await randomFile(src, 8 * 1024 * 1024);
    const before = await fingerprint(src);
    const controller = new AbortController();
    let reports = 0;
    await assert.rejects(
      copyFile(src, `${dir.path}/dst`, {
        signal: controller.signal,
        blockSize: 64 * 1024,
        queueDepth: 4,
        onProgress: (p) => {
          reports++;
          if (p.bytes > 0) controller.abort();
        },
      }),
      (e: Error) => {
        assert.equal(e.name, "AbortError");
        assert.ok(e instanceof DOMException);
        assert.match(e.message, /^copying '.*\/src' to '.*\/dst' was aborted.*partial copies were removed$/);
        return true;
      },
    );
    assert.ok(reports >= 2, "the copy was under way");
    assert.deepEqual(names(dir.path), ["src"]);
    assert.equal(await fingerprint(src), before);
    // An already-aborted signal: nothing is done at all; a timeout's reason keeps its name.
    await assert.rejects(copyFile(src, `${dir.path}/dst`, { signal: AbortSignal.abort() }), {
      name: "AbortError",
    });
    const timeout = AbortSignal.timeout(0);
    await new Promise((r) => setTimeout(r, 5));
    await assert.rejects(copyFile(src, `${dir.path}/dst`, { signal: timeout }), { name: "TimeoutError" });
    // A reason of the caller's own (an Error, a TypeError) is the cause of an AbortError: it was
    // a DOMException named "Error" or "TypeError", which code checking for an abort took for a
    // failure (a probe).
    for (const reason of [new Error("user cancelled"), new TypeError("odd"), "why"]) {
      for (const copy of [copyFile, copyTree]) {
        const error = await copy(src, `${dir.path}/dst`, { signal: AbortSignal.abort(reason) })
          .then(() => null, (e) => e);
        assert.ok(error instanceof DOMException, String(error));
        assert.equal(error.name, "AbortError", `${copy.name}, ${reason}`);
        assert.equal(error.cause, reason);
      }
    }
    assert.deepEqual(names(dir.path), ["src"]);
  },
});

Deno.test({
  name: "copyTree abort: a signal mid-copy stops everything, removes partial files",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(src);
    for (let i = 0; i < 40; i++) await randomFile(`${src}/f${i}`, 256 * 1024);
    const controller = new AbortController();
    await assert.rejects(
      copyTree(src, `${dir.path}/dst`, {
        signal: controller.signal,
        queueDepth: 4,
        blockSize: 16384,
        onProgress: (p) => {
          if (p.files >= 3) controller.abort();
        },
      }),
      (e: Error) => e.name === "AbortError" && /^copying '.*\/src' to '.*\/dst' was aborted/.test(e.message),
    );
    assert.deepEqual(tempLeftovers(dir.path), []);
    const copied = names(`${dir.path}/dst`);
    assert.ok(copied.length >= 3 && copied.length < 40, `stopped part way (${copied.length} files)`);
    for (const name of copied) assert.equal(Deno.statSync(`${dir.path}/dst/${name}`).size, 256 * 1024);
  },
});

Deno.test({
  name: "copyTree abort with continueOnError: the failures collected before it come with the AbortError",
  ignore: skipKernel(),
  fn: async () => {
    // They were dropped: an interrupted `cp -r` said only that it was interrupted (a probe).
    using dir = tempDir();
    const src = `${dir.path}/src`;
    Deno.mkdirSync(src);
    mkfifo(`${src}/a-fifo`); // refused, and found first: the files are one level down
    Deno.mkdirSync(`${src}/sub`);
    for (let i = 0; i < 40; i++) await randomFile(`${src}/sub/f${i}`, 256 * 1024);
    const controller = new AbortController();
    const error = await copyTree(src, `${dir.path}/dst`, {
      signal: controller.signal,
      continueOnError: true,
      queueDepth: 4,
      blockSize: 16384,
      onProgress: (p) => {
        if (p.files >= 3) controller.abort();
      },
    }).then(() => null, (e) => e);
    assert.equal(error?.name, "AbortError", String(error));
    const before = (error as { errors?: Error[] }).errors;
    assert.ok(Array.isArray(before) && before.length === 1, `errors: ${before}`);
    assert.match(before[0].message, /a-fifo/);
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

const PROBE = `
import { copyFile, copyTree } from ${JSON.stringify(`file://${ROOT}/mod.ts`)};
const [kind, src, dst] = Deno.args;
try {
  const r = kind === "tree" ? await copyTree(src, dst, { continueOnError: true }) : await copyFile(src, dst);
  console.log(JSON.stringify({ ok: true, files: r.files }));
} catch (e) {
  console.log(JSON.stringify({ name: e.name, cls: e.constructor.name, code: e.code, path: e.path,
    message: e.message, errors: e.errors?.map((x) => x.message), files: e.result?.files }));
}
`;

Deno.test({
  name: "copyFile/copyTree failure: an unreadable source (run as an unprivileged user)",
  ignore: skipKernel() || unprivilegedUnavailable() !== undefined,
  fn: async () => {
    using dir = tempDir();
    Deno.chmodSync(dir.path, 0o777);
    const denoDir = `${dir.path}/deno-dir`;
    Deno.mkdirSync(denoDir, { mode: 0o777 });
    Deno.chmodSync(denoDir, 0o777);
    const probe = `${dir.path}/probe.ts`;
    Deno.writeTextFileSync(probe, PROBE);
    Deno.chmodSync(probe, 0o644);
    const src = `${dir.path}/secret`;
    await randomFile(src, 1000, 0o000);
    const before = await fingerprint(src);
    const flags = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"];
    const file = await runUnprivileged([...flags, probe, "file", src, `${dir.path}/out`], denoDir);
    assert.equal(file.code, 0, file.stderr);
    const r = JSON.parse(file.stdout);
    assert.equal(r.cls, "PermissionDenied", file.stdout);
    assert.equal(r.code, "EACCES");
    assert.equal(r.path, src);
    assert.equal(
      r.message,
      `cannot copy '${src}' to '${dir.path}/out': source '${src}' is not readable (permission denied)`,
    );
    // A tree with an unreadable file and an unreadable directory: both reported, the rest copied.
    const tree = `${dir.path}/tree`;
    Deno.mkdirSync(`${tree}/closed`, { recursive: true });
    Deno.writeTextFileSync(`${tree}/closed/inside`, "x");
    Deno.writeTextFileSync(`${tree}/open`, "readable");
    await randomFile(`${tree}/secret`, 10, 0o000);
    Deno.chmodSync(tree, 0o755);
    Deno.chmodSync(`${tree}/open`, 0o644);
    Deno.chmodSync(`${tree}/closed`, 0o000);
    const t = await runUnprivileged([...flags, probe, "tree", tree, `${dir.path}/tree-out`], denoDir);
    assert.equal(t.code, 0, t.stderr);
    const tr = JSON.parse(t.stdout);
    assert.equal(tr.name, "CopyTreeError", t.stdout);
    assert.equal(tr.files, 1);
    const errors: string[] = tr.errors.sort();
    assert.equal(errors.length, 2, t.stdout);
    assert.match(
      errors[0],
      /'.*\/tree\/closed'.*source '.*\/tree\/closed' is not readable \(permission denied\)/,
    );
    assert.match(
      errors[1],
      /'.*\/tree\/secret'.*source '.*\/tree\/secret' is not readable \(permission denied\)/,
    );
    assert.equal(Deno.readTextFileSync(`${dir.path}/tree-out/open`), "readable");
    assert.equal(await fingerprint(src), before);
    assert.deepEqual(tempLeftovers(dir.path), []);
    Deno.chmodSync(`${tree}/closed`, 0o755);
  },
});

Deno.test({
  name:
    "copyFile abort: a timer-driven signal fires during a long copy of cached data (the event loop turns)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    // 8 MiB of cached data in 512-byte blocks, two at a time: ~16,000 reads that complete inside
    // the submitting system call (a sparse file's holes are skipped now, so they no longer do).
    const size = 8 * 1024 * 1024;
    await randomFile(`${dir.path}/huge`, size);
    let bytes = 0;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    await assert.rejects(
      copyFile(`${dir.path}/huge`, `${dir.path}/copy`, {
        blockSize: 512,
        queueDepth: 2,
        splice: false,
        signal: controller.signal,
        onProgress: (p) => {
          bytes = p.bytes;
          // Data is moving: a timer (an event-loop task, like a signal handler) is to stop it.
          if (p.bytes > 0 && timer === undefined) timer = setTimeout(() => controller.abort(), 50);
        },
      }),
      { name: "AbortError" },
    );
    clearTimeout(timer);
    assert.ok(bytes > 0 && bytes < size, `stopped part way (${bytes} bytes)`);
    assert.deepEqual(names(dir.path), ["huge"]);
  },
});

Deno.test({
  name: "copyFile/copyTree with a caller's Uring closed before the call: a ClosedError that says it once",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "hello");
    Deno.mkdirSync(`${dir.path}/t`);
    Deno.writeTextFileSync(`${dir.path}/t/x`, "x");
    const uring = new Uring({ sqpoll: false });
    await uring.close();
    const cases: [string, string, () => Promise<unknown>][] = [
      [`${dir.path}/a`, `${dir.path}/b`, () => copyFile(`${dir.path}/a`, `${dir.path}/b`, { uring })],
      [`${dir.path}/t`, `${dir.path}/t2`, () => copyTree(`${dir.path}/t`, `${dir.path}/t2`, { uring })],
    ];
    for (const [src, dst, copy] of cases) {
      await assert.rejects(copy(), (e: CopyError) => {
        assert.ok(e instanceof ClosedError, String(e));
        assert.ok(e.cause instanceof ClosedError);
        assert.equal(e.name, "ClosedError");
        assert.equal(
          e.message,
          `cannot copy '${src}' to '${dst}': looking up the source failed: Uring is closed`,
        );
        return true;
      });
    }
    assert.deepEqual(names(dir.path), ["a", "t"]);
  },
});

Deno.test("makeFailure keeps the cause's class and gives the error exactly its message", () => {
  class NoMessage extends Error {
    constructor(what: number) {
      super(`thing ${what.toFixed(0)} broke`); // a string argument throws here (no toFixed)
    }
  }
  const causes: [Error, new (...args: never[]) => Error][] = [
    [new ClosedError("Uring"), ClosedError],
    [new TypeError("bad"), TypeError],
    [new DOMException("stopped", "AbortError"), DOMException],
    [new NoMessage(3), NoMessage],
  ];
  for (const [cause, cls] of causes) {
    const e = makeFailure(undefined, "/s", "/d", "it failed", "/s", cause);
    assert.ok(e instanceof cls, `${cause.name}: ${e}`);
    assert.equal(e.name, cause.name);
    assert.equal(e.message, "cannot copy '/s' to '/d': it failed");
    assert.equal(e.cause, cause);
  }
});

Deno.test({
  name: "copyTree: a caller's Uring closed under the copy rejects it, leaving no incomplete file",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/src`);
    for (let i = 0; i < 300; i++) {
      Deno.writeFileSync(`${dir.path}/src/f${i}`, new Uint8Array(1000 + i).fill(i));
    }
    for (const delay of [0, 2, 5]) {
      const dst = `${dir.path}/dst${delay}`;
      const uring = new Uring({ sqpoll: false });
      const copying = copyTree(`${dir.path}/src`, dst, { uring });
      await new Promise((resolve) => setTimeout(resolve, delay));
      const closing = uring.close();
      let outcome: unknown = null;
      await copying.then(() => {}, (e) => outcome = e);
      await closing;
      // Fast enough, it may have finished first; otherwise it says why and stops.
      if (outcome !== null) assert.ok(outcome instanceof Error, String(outcome));
      let left: string[] = [];
      try {
        left = names(dst);
      } catch {
        // the destination directory was never made
      }
      for (const name of left) {
        assert.equal(
          Deno.statSync(`${dst}/${name}`).size,
          Deno.statSync(`${dir.path}/src/${name}`).size,
          name,
        );
      }
      assert.deepEqual(await openUnder(dir.path), [], `descriptors left open (close after ${delay} ms)`);
    }
  },
});

Deno.test({
  name: "copyFile: a caller's Uring closed during the block copy leaves no descriptor open on either file",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await randomFile(src, 4 << 20);
    for (const at of ["first block", "later block"]) {
      const uring = new Uring({ sqpoll: false });
      let closing: Promise<void> | undefined;
      // Progress is reported per written block, so this closes the Uring while the source and
      // the temporary destination are open through it and blocks are in flight.
      const onProgress = ({ bytes }: { bytes: number }) => {
        const due = at === "first block" ? bytes > 0 : bytes >= 1 << 20;
        if (due && closing === undefined) closing = uring.close();
      };
      const outcome = await copyFile(src, `${dir.path}/dst`, { uring, blockSize: 64 * 1024, onProgress })
        .then(() => null, (e) => e);
      await closing;
      assert.ok(closing !== undefined, "the Uring was closed during the copy");
      assert.ok(outcome instanceof Error, String(outcome));
      assert.deepEqual(await openUnder(dir.path), [], `descriptors left open (closed at the ${at})`);
      assert.deepEqual(names(dir.path), ["src"], "the incomplete file was removed");
    }
  },
});

Deno.test({
  name: "copyTree: a chain cut short after its create while the caller closes the Uring leaves no file",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
    Deno.mkdirSync(src);
    Deno.writeFileSync(`${src}/f`, new Uint8Array(3000).fill(7));
    const uring = new Uring({ sqpoll: false });
    let closing: Promise<void> | undefined;
    const cut = divertFirstChain(uring, (first, client) => {
      // As if the caller closed the Uring while the chain waited on io-wq after its create: the
      // file is there, empty, and the data member was cancelled.
      Deno.truncateSync(`${dst}/f`, 0);
      closing = uring.close();
      client.complete(first + 2, -ECANCELED);
    });
    const outcome = await copyTree(src, dst, { uring }).then(() => null, (e) => e);
    await closing;
    assert.equal(cut.diverted, 1, "the lane's chain was in use");
    assert.ok(outcome === null || outcome instanceof Error, String(outcome));
    assert.deepEqual(names(dst).filter((n) => Deno.statSync(`${dst}/${n}`).size !== 3000), []);
  },
});

Deno.test({
  name: "copyTree: a one-block file whose chain the kernel cancelled unasked is redone, not failed",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
    Deno.mkdirSync(src);
    for (let i = 0; i < 6; i++) await randomFile(`${src}/f${i}`, 1000 + i * 700);
    await using uring = new Uring({ sqpoll: false });
    // Stand in for io-wq dropping a chain before it ran (it cannot start a worker): the first
    // chain's one CQE comes back as its first member's ECANCELED. The kernel did run it, so the
    // redo must also cope with the temporary file that chain left.
    const rewritten = divertFirstChain(uring, (first, client) => client.complete(first, -ECANCELED));
    const result = await copyTree(src, dst, { uring });
    assert.equal(rewritten.diverted, 1, "the lanes' chains were in use");
    assert.equal(result.files, 6);
    await assertSameTree(src, dst);
    assert.deepEqual(tempLeftovers(dst), []);
  },
});

Deno.test({
  name: "copy: an onProgress that throws stops the copy, which rejects with it and leaves nothing unfinished",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const MiB = 1024 * 1024;
    Deno.mkdirSync(`${dir.path}/tree`);
    for (let i = 0; i < 20; i++) await randomFile(`${dir.path}/tree/f${i}`, 1000 + i * 3000);
    await randomFile(`${dir.path}/tree/big`, 3 * MiB + 1);
    await randomFile(`${dir.path}/one`, 1000); // one block: the six-operation chain
    await randomFile(`${dir.path}/big`, 5 * MiB + 3); // splice lanes
    const broke = new Error("progress bar broke");
    const throwOn = (n: number) => {
      let calls = 0;
      return () => {
        if (++calls === n) throw broke;
        if (calls > n) throw new Error(`onProgress called again after it threw (call ${calls})`);
      };
    };
    const cases: [string, () => Promise<unknown>][] = [
      [
        "one-block file",
        () => copyFile(`${dir.path}/one`, `${dir.path}/out-one`, { onProgress: throwOn(2) }),
      ],
      ["big file", () => copyFile(`${dir.path}/big`, `${dir.path}/out-big`, { onProgress: throwOn(3) })],
      ["tree", () => copyTree(`${dir.path}/tree`, `${dir.path}/out-tree`, { onProgress: throwOn(5) })],
      [
        "tree, continueOnError",
        () =>
          copyTree(`${dir.path}/tree`, `${dir.path}/out-tree2`, {
            onProgress: throwOn(5),
            continueOnError: true,
          }),
      ],
    ];
    for (const [what, copy] of cases) {
      const error = await copy().then(() => null, (e) => e);
      // The callback's own error, not one that blames a step the stop cancelled ("creating the
      // destination directory failed: progress bar broke", found by a probe).
      assert.equal(error, broke, `${what}: ${error}`);
      assert.equal(error.message, "progress bar broke", what);
    }
    // A callback that throws something that is not an Error: an Error that says what it was (it
    // was an AbortError, "The signal has been aborted", which the CLI took for a Ctrl-C).
    const odd: [unknown, string][] = [
      [undefined, "onProgress threw undefined"],
      ["no", 'onProgress threw "no"'],
      // Without a string form (no prototype), or one that throws: described, not converted.
      [Object.create(null), "onProgress threw an object"],
      [{ toString: () => assert.fail("toString ran") }, "onProgress threw an object"],
    ];
    for (const [i, [thrown, message]] of odd.entries()) {
      const error = await copyTree(`${dir.path}/tree`, `${dir.path}/out-odd-${i}`, {
        onProgress: () => {
          throw thrown;
        },
      }).then(() => null, (e) => e);
      assert.ok(error instanceof Error && error.name === "Error", String(error));
      assert.equal(error.message, message);
      assert.equal(error.cause, thrown);
    }
    assert.deepEqual(tempLeftovers(dir.path), [], "no temporary file left");
    for (const name of ["out-one", "out-big"]) {
      assert.throws(() => Deno.statSync(`${dir.path}/${name}`), Deno.errors.NotFound, `${name} was removed`);
    }
    assert.deepEqual(await openUnder(dir.path), [], "no descriptor left open");
  },
});

/** The child's `takeEveryDescriptor` (see {@link underFileLimit}). */
const TAKE_EVERY_DESCRIPTOR = `const takeEveryDescriptor = (path) => {
  const held = [];
  try { for (;;) held.push(Deno.openSync(path)); } catch { /* EMFILE: every descriptor taken */ }
  return held;
};`;

/**
 * Runs `body` (after `import { copyFile }`, and any more of the module's exports in `more`, and
 * `const dir`, the test's directory) in a child under `ulimit -n limit` (lowered by its shell),
 * and returns what its last line printed, parsed. Deno's update check is off: it needs descriptors
 * of its own, and panics without them. (So does Deno's own signal set-up, about a second after
 * start: a child that holds every descriptor waits for it first.) The body may call
 * `takeEveryDescriptor(path)`: opens `path` until EMFILE, returning the files it holds.
 */
function underFileLimit(
  limit: number,
  dir: string,
  body: string,
  ...more: string[]
): Promise<Record<string, unknown>> {
  return inChild(`ulimit -n ${limit}`, {}, dir, body, ...more);
}

/**
 * Runs `body` as {@link underFileLimit} does, after the shell command `shell` (`ulimit -f 4096`),
 * with `env` added to the child's environment.
 */
async function inChild(
  shell: string,
  env: Record<string, string>,
  dir: string,
  body: string,
  ...more: string[]
): Promise<Record<string, unknown>> {
  const script = `${dir}/child.ts`;
  Deno.writeTextFileSync(
    script,
    `import { ${["copyFile", ...more].join(", ")} } from "${MOD_URL}";\nconst dir = ${
      JSON.stringify(dir)
    };\n${TAKE_EVERY_DESCRIPTOR}\n${body}`,
  );
  const out = await new Deno.Command("sh", {
    args: ["-c", `${shell} && exec "$0" run --quiet --allow-all "$1"`, Deno.execPath(), script],
    env: { DENO_NO_UPDATE_CHECK: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  const last = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1);
  assert.ok(out.success && last, `the child failed: ${stderr}`);
  return JSON.parse(last);
}

for (const engine of ["io_uring", "fallback"]) {
  Deno.test({
    name:
      `copyFile (${engine} engine): past the file size limit (ulimit -f) fails with code EFBIG, and no partial copy`,
    ignore: engine === "io_uring" && skipKernel(),
    fn: async () => {
      // Deno's own file APIs throw a plain Error for EFBIG, its number only in the message ("File
      // too large (os error 27)"): the fallback's copy failed without a code.
      using dir = tempDir();
      Deno.writeFileSync(`${dir.path}/src`, new Uint8Array(8 << 20).fill(5)); // (before the limit)
      const r = await inChild(
        "ulimit -f 4096 && trap '' XFSZ", // 2 MiB in sh's 512-byte blocks; the signal ignored
        engine === "fallback" ? { URING_FORCE_UNAVAILABLE: "1" } : {},
        dir.path,
        `const result = {};
try { await copyFile(dir + "/src", dir + "/dst"); result.copied = true; }
catch (e) { Object.assign(result, { name: e.name, code: e.code, errno: e.errno, message: e.message }); }
result.left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
console.log(JSON.stringify(result));`,
      );
      assert.equal(r.copied, undefined, "the copy failed");
      assert.equal(r.code, "EFBIG", String(r.message));
      assert.equal(r.errno, 27);
      assert.equal(r.name, "OsError");
      assert.match(String(r.message), /ulimit -f/);
      assert.deepEqual(r.left, ["child.ts", "src"]);
    },
  });
}

Deno.test({
  name: "copyFile: many at once past the descriptor limit wait for each other instead of failing with EMFILE",
  ignore: skipKernel(),
  fn: async () => {
    // Each holds its own ring, pipes and two files (~11 descriptors): 100 at once under
    // `ulimit -n 256` failed 49 with EMFILE (a probe: 87 of 300 at 1024, where Deno.copyFile's
    // failed none). In a child, with the limit lowered by its shell.
    using dir = tempDir();
    const r = await underFileLimit(
      256,
      dir.path,
      `Deno.writeFileSync(dir + "/src", new Uint8Array(3_000_000).fill(3));
const rs = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => copyFile(dir + "/src", dir + "/o" + i)));
const failed = rs.filter((r) => r.status === "rejected");
let whole = 0;
for (let i = 0; i < 100; i++) try { if (Deno.statSync(dir + "/o" + i).size === 3_000_000) whole++; } catch { /* none */ }
console.log(JSON.stringify({ failed: failed.length, whole, first: failed[0]?.reason?.message ?? null }));`,
    );
    assert.equal(r.failed, 0, String(r.first ?? ""));
    assert.equal(r.whole, 100);
  },
});

Deno.test({
  name: "copyFile: the pipes kept for later copies leave the program its descriptors (ulimit -n 80)",
  ignore: skipKernel(),
  fn: async () => {
    // The shared ring kept the lanes of 32 finished copies with their pipes (64 descriptors): the
    // program's own open right after failed with EMFILE, and so did a lone copy of a bigger file
    // (re-check precheck8), where the code before the shared ring left them free.
    using dir = tempDir();
    const r = await underFileLimit(
      80,
      dir.path,
      `for (let i = 0; i < 32; i++) Deno.writeFileSync(dir + "/s" + i, new Uint8Array(3000).fill(i));
Deno.writeFileSync(dir + "/big", new Uint8Array(3 << 20).fill(7));
const results = {};
await Promise.all(Array.from({ length: 32 }, (_, i) => copyFile(dir + "/s" + i, dir + "/d" + i)));
try { Deno.openSync(dir + "/s1").close(); results.open = "ok"; } catch (e) { results.open = e.message; }
try { results.big = (await copyFile(dir + "/big", dir + "/big.copy")).bytes; } catch (e) { results.big = e.message; }
console.log(JSON.stringify(results));`,
    );
    assert.deepEqual(r, { open: "ok", big: 3 << 20 });
  },
});

Deno.test({
  name: "copyTree out of descriptors gives back the pipes kept on the shared ring, as copyFile does",
  ignore: skipKernel(),
  fn: async () => {
    // With copyFiles keeping the shared ring in use, a copyTree left 2 descriptors failed with
    // EMFILE (10 of 10) while the ring's kept lanes held 34–64 idle ones (re-check precheck9).
    using dir = tempDir();
    const r = await underFileLimit(
      200,
      dir.path,
      `await new Promise((r) => setTimeout(r, 1200)); // (Deno sets up its signal handling first)
for (let i = 0; i < 32; i++) Deno.writeFileSync(dir + "/s" + i, new Uint8Array(3000).fill(i));
Deno.mkdirSync(dir + "/tree");
Deno.writeFileSync(dir + "/tree/big", new Uint8Array(1_500_000).fill(9));
await Promise.all(Array.from({ length: 32 }, (_, i) => copyFile(dir + "/s" + i, dir + "/d" + i)));
let stop = false;
const loop = (async () => { while (!stop) await copyFile(dir + "/s1", dir + "/bg", { overwrite: true }); })();
const held = takeEveryDescriptor(dir + "/s0");
for (let i = 0; i < 2; i++) held.pop().close();
let result;
try { result = (await copyTree(dir + "/tree", dir + "/tree2")).files; } catch (e) { result = e.message; }
stop = true;
await loop;
for (const f of held) f.close();
console.log(JSON.stringify({ result }));`,
      "copyTree",
    );
    assert.deepEqual(r, { result: 1 });
  },
});

Deno.test({
  name:
    "copyFile/copyTree: a ring that cannot be set up (EMFILE) fails naming the files, still an IoUringError",
  ignore: skipKernel(),
  fn: async () => {
    // The context was made outside the copy's error handling: "io_uring_setup failed: EMFILE"
    // alone, no file named (re-check precheck9).
    using dir = tempDir();
    const r = await underFileLimit(
      80,
      dir.path,
      `await new Promise((r) => setTimeout(r, 1200)); // (Deno sets up its signal handling first)
Deno.writeTextFileSync(dir + "/src", "x");
Deno.mkdirSync(dir + "/t");
Deno.writeTextFileSync(dir + "/t/a", "y");
const held = takeEveryDescriptor(dir + "/src");
const out = {};
const attempt = async (name, f) => {
  try { await f(); out[name] = "copied"; } catch (e) { out[name] = [e.constructor.name, e.code, e.call, e.message]; }
};
await attempt("file", () => copyFile(dir + "/src", dir + "/dst", { fallback: false }));
await attempt("tree", () => copyTree(dir + "/t", dir + "/t2", { fallback: false }));
for (const f of held) f.close();
console.log(JSON.stringify(out));`,
      "copyTree",
    );
    const d = dir.path;
    for (const [name, src, dst] of [["file", `${d}/src`, `${d}/dst`], ["tree", `${d}/t`, `${d}/t2`]]) {
      const [cls, code, call, message] = r[name] as string[];
      assert.deepEqual([cls, code, call], ["IoUringError", "EMFILE", "io_uring_setup"], name);
      assert.ok(
        message.startsWith(`cannot copy '${src}' to '${dst}': io_uring_setup failed: EMFILE`),
        message,
      );
    }
  },
});

Deno.test({
  name:
    "copy: an async onProgress that rejects stops the copy as a throw does; later rejections stay the caller's",
  ignore: skipKernel(),
  fn: async () => {
    // Its rejection went unheard by the copy: the program ended on it mid-copy (an unhandled
    // rejection), leaving files half written under their own names (a probe: 18 of 50).
    using dir = tempDir();
    const MiB = 1024 * 1024;
    Deno.mkdirSync(`${dir.path}/tree`);
    for (let i = 0; i < 20; i++) await randomFile(`${dir.path}/tree/f${i}`, 1000 + i * 3000);
    await randomFile(`${dir.path}/tree/big`, 3 * MiB + 1);
    await randomFile(`${dir.path}/big`, 5 * MiB + 3);
    const broke = new Error("progress log broke");
    const rejectOn = (n: number, reason: unknown = broke) => {
      let calls = 0;
      return async () => {
        await Promise.resolve();
        if (++calls === n) throw reason;
      };
    };
    const file = await copyFile(`${dir.path}/big`, `${dir.path}/out-big`, { onProgress: rejectOn(2) })
      .then(() => null, (e) => e);
    assert.equal(file, broke, String(file));
    assert.throws(() => Deno.statSync(`${dir.path}/out-big`), Deno.errors.NotFound, "out-big was removed");
    const tree = await copyTree(`${dir.path}/tree`, `${dir.path}/out-tree`, { onProgress: rejectOn(5) })
      .then(() => null, (e) => e);
    assert.equal(tree, broke, String(tree));
    for (const entry of Deno.readDirSync(`${dir.path}/out-tree`)) {
      assert.deepEqual(
        Deno.readFileSync(`${dir.path}/out-tree/${entry.name}`),
        Deno.readFileSync(`${dir.path}/tree/${entry.name}`),
        `${entry.name} is whole, or not there`,
      );
    }
    const odd = await copyTree(`${dir.path}/tree`, `${dir.path}/out-odd`, { onProgress: rejectOn(3, "no") })
      .then(() => null, (e) => e);
    assert.ok(odd instanceof Error && odd.name === "Error", String(odd));
    assert.equal(odd.message, 'onProgress rejected with "no"');
    // A rejection that comes after the copy settled is the caller's own: unhandled, as without it.
    const late = new Error("too late");
    const unhandled: unknown[] = [];
    const onUnhandled = (e: PromiseRejectionEvent) => {
      unhandled.push(e.reason);
      e.preventDefault();
    };
    globalThis.addEventListener("unhandledrejection", onUnhandled);
    try {
      let release!: () => void;
      const gate = new Promise<void>((r) => release = r);
      await copyFile(`${dir.path}/big`, `${dir.path}/out-late`, {
        onProgress: async () => {
          await gate;
          throw late;
        },
      });
      release();
      for (let i = 0; i < 20 && unhandled.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(unhandled.length > 0 && unhandled.every((e) => e === late), String(unhandled));
    } finally {
      globalThis.removeEventListener("unhandledrejection", onUnhandled);
    }
    assert.deepEqual(tempLeftovers(dir.path), [], "no temporary file left");
    assert.deepEqual(await openUnder(dir.path), [], "no descriptor left open");
  },
});

Deno.test({
  name:
    "copyTree: Deno.exit() mid-copy removes the files being written; an error the program prevents leaves the copy whole",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    // Files of a tree go to a new directory under their own names (no temporary name): what the
    // exit interrupts must not stay there looking complete (it left 82 MB of a 300 MB file, and,
    // under SQPOLL, empty small files whose create the kernel ran after their removal).
    const src = `${dir.path}/src`;
    Deno.mkdirSync(src);
    const sizes = new Map<string, number>();
    for (let i = 0; i < 120; i++) {
      const size = i < 3 ? 24 << 20 : 5000 + i;
      await randomFile(`${src}/f${i}`, size);
      sizes.set(`f${i}`, size);
    }
    const copyThen = (dst: string, then: string, sqpoll = false) =>
      runDeno(
        `import { copyTree } from ${JSON.stringify(MOD_URL)};
        let started = false;
        const result = await copyTree(${JSON.stringify(src)}, ${JSON.stringify(dst)}, {
          sqpoll: ${sqpoll},
          onProgress(p) {
            if (p.bytes > 0 && !started) {
              started = true;
              ${then};
            }
          },
        });
        console.log(JSON.stringify(result.files));`,
        ["--allow-all"],
      );
    for (const sqpoll of [false, true, true, true]) {
      const dst = `${dir.path}/exit-${sqpoll}`;
      const exited = await copyThen(dst, "Deno.exit(7)", sqpoll);
      assert.equal(exited.code, 7, exited.stderr);
      const left = [...Deno.readDirSync(dst)].map((e) => e.name);
      for (const name of left) {
        assert.equal(
          Deno.statSync(`${dst}/${name}`).size,
          sizes.get(name),
          `sqpoll ${sqpoll}: ${name} incomplete`,
        );
      }
      assert.ok(left.length < sizes.size, `the program ended after the copy (${left.join()})`);
      Deno.removeSync(dst, { recursive: true });
    }
    // An unrelated error that a handler added later prevents: the program, and its copy, go on.
    // (Removing at the error event, before that handler ran, lost the copy's files.)
    const prevented = await copyThen(
      `${dir.path}/prevented`,
      `setTimeout(() => {
        globalThis.addEventListener("error", (e) => e.preventDefault());
        globalThis.addEventListener("unhandledrejection", (e) => e.preventDefault());
        Promise.reject(new Error("an unrelated rejection"));
        throw new Error("an unrelated bug");
      })`,
    );
    assert.equal(prevented.code, 0, prevented.stderr);
    assert.equal(prevented.stdout.trim(), String(sizes.size));
    await assertSameTree(src, `${dir.path}/prevented`);
  },
});

Deno.test({
  name:
    "copyFile: Deno.exit() while 40 copies share the caller's full Uring ends within seconds, leaving no temporary file",
  ignore: skipKernel(),
  fn: async () => {
    // Each copy's context drained the shared ring for its full second, one after another (38 s),
    // the ring's own cancel overflowing the full CQ where the drain never looked.
    using dir = tempDir();
    const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
    Deno.mkdirSync(src);
    Deno.mkdirSync(dst);
    for (let i = 0; i < 40; i++) await randomFile(`${src}/f${i}`, (4 << 20) + 1234);
    const started = performance.now();
    const out = await runDeno(
      `import { copyFile, Uring } from ${JSON.stringify(MOD_URL)};
      const uring = new Uring({ entries: 64, sqpoll: false });
      let fired = false;
      await Promise.all(Array.from({ length: 40 }, (_, i) =>
        copyFile(${JSON.stringify(src)} + "/f" + i, ${JSON.stringify(dst)} + "/f" + i, {
          uring,
          onProgress(p) {
            if (!fired && p.bytes > 0) {
              fired = true;
              Deno.exit(7);
            }
          },
        })
      ));`,
      ["--allow-all"],
      { timeoutMs: 30_000 },
    );
    const ms = performance.now() - started;
    assert.equal(out.code, 7, out.stderr);
    assert.ok(ms < 10_000, `the exit took ${Math.round(ms)} ms`);
    for (const name of Deno.readDirSync(dst)) {
      assert.ok(!name.name.includes(".uring-tmp-"), `a temporary file was left: ${name.name}`);
      assert.equal(Deno.statSync(`${dst}/${name.name}`).size, (4 << 20) + 1234, `${name.name} incomplete`);
    }
  },
});

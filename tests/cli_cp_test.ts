import assert from "node:assert/strict";
import { skipKernel, tempDir } from "./_support.ts";
import { getSys } from "../src/sys.ts";
import { main } from "../src/cli/cp.ts";
import { createRawName } from "./_io.ts";
import {
  assertSameTree,
  CP,
  CP_FLAGS,
  fingerprint,
  makeTree,
  permOf,
  randomFile,
  runCp,
  runUnprivileged,
  sha256File,
  tempLeftovers,
  unprivilegedUnavailable,
  withTmpfs,
} from "./copy_support.ts";

const CLEAR_LINE = "\x1b[K";

/** The file the second-Ctrl-C test copies: big enough to be interrupted mid-way. */
const SECOND_SIGINT_SIZE = 512 * 1024 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The size of file `path`, or -1 when there is none. */
function sizeOf(path: string): number {
  try {
    return Deno.statSync(path).size;
  } catch {
    return -1;
  }
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

Deno.test({
  name: "cp CLI: a name with a newline or other control characters stays on its error's one line",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const r = await runCp(["no\nsuch\tfile\x1b[31m", "dst"], { cwd: dir.path });
    assert.equal(r.code, 1);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^cp: .*'no\\nsuch\\tfile\\x1b\[31m'/);
  },
});

Deno.test({
  name: "cp CLI: a --cwd that cannot be entered is named on one line too",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const r = await runCp(["--cwd", `${dir.path}/no\nsuch\x1b[31m`, "a", "b"]);
    assert.equal(r.code, 2);
    assert.equal(lines(r.stderr).length, 1, r.stderr);
    assert.match(r.stderr, /^cp: cannot change to directory '.*\/no\\nsuch\\x1b\[31m': /);
  },
});

Deno.test({
  name: "cp CLI: a --cwd that is a file names the errno (ENOTDIR), not Deno's 'os error 20'",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/file`, "x");
    const r = await runCp(["--cwd", `${dir.path}/file`, "a", "b"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^cp: cannot change to directory '.*\/file': Not a directory \(ENOTDIR\)/);
    assert.doesNotMatch(r.stderr, /os error/);
  },
});

Deno.test({
  name: "cp CLI: SIGINT is heard while nobody reads its stderr (a full pipe)",
  ignore: skipKernel(),
  fn: async () => {
    // Its error lines were written with blocking writes on the main thread: once the pipe was
    // full, the signal listeners never ran, and only SIGKILL (which skips the clean-up) ended it.
    using dir = tempDir();
    const missing = Array.from({ length: 1500 }, (_, i) => `missing-${"x".repeat(60)}-${i}`);
    Deno.mkdirSync(`${dir.path}/dst`);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...CP_FLAGS, CP, ...missing, "dst"],
      cwd: dir.path,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped", // never read: the pipe fills (64 KiB) after ~600 lines
    }).spawn();
    try {
      await sleep(1500);
      child.kill("SIGINT");
      const ended = await Promise.race([child.status, sleep(5000).then(() => null)]);
      assert.ok(ended !== null, "the CLI was still running 5 s after SIGINT");
      assert.equal(ended.success, false);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* ended */ }
      await child.status;
      await child.stderr.cancel();
    }
  },
});

Deno.test("cp CLI: --help prints usage and exits 0; usage errors exit 2 with a hint", async () => {
  const help = await runCp(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: deno task cp \[OPTIONS\] SRC DST/);
  assert.match(help.stdout, /--queue-depth N/);
  assert.match(help.stdout, /URING|io_uring is unavailable/);
  assert.equal(help.stderr, "");
  for (
    const [args, message] of [
      [[], /^cp: missing source and destination$/],
      [["only-one"], /^cp: missing destination after "only-one"$/],
      [["--block-size", "7q", "a", "b"], /^cp: invalid size "7q"/],
      [["--queue-depth", "0", "a", "b"], /^cp: --queue-depth must be from 1 to 4096, got 0$/],
      [["--nope", "a", "b"], /^cp: unknown option '--nope' \(a file named '--nope' goes after '--'/],
    ] as Array<[string[], RegExp]>
  ) {
    const r = await runCp(args);
    assert.equal(r.code, 2, args.join(" "));
    const err = lines(r.stderr);
    assert.match(err[0], message);
    assert.equal(err[1], "Try 'deno task cp --help' for more information.");
    assert.equal(r.stdout, "");
  }
});

Deno.test({
  name:
    "cp CLI: copies a file, into a directory, several sources, and -r trees; modes kept; quiet by default",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    const hash = await randomFile(`${d}/a`, 300_000, 0o640);
    await randomFile(`${d}/b`, 10, 0o600);
    const one = await runCp(["a", "copy-a"], { cwd: d });
    assert.deepEqual(one, { code: 0, stdout: "", stderr: "" });
    assert.equal(await sha256File(`${d}/copy-a`), hash);
    assert.equal(permOf(`${d}/copy-a`), 0o640);
    Deno.mkdirSync(`${d}/into`);
    const many = await runCp(["a", "b", "into/"], { cwd: d });
    assert.equal(many.code, 0, many.stderr);
    assert.deepEqual([...Deno.readDirSync(`${d}/into`)].map((e) => e.name).sort(), ["a", "b"]);
    assert.equal(permOf(`${d}/into/b`), 0o600);
    // A tree: to a new name, then into an existing directory (as DIR/basename).
    await makeTree(`${d}/tree`, 120, 5);
    const r1 = await runCp(["-r", "--queue-depth", "8", "--block-size", "64k", "tree", "tree-copy"], {
      cwd: d,
    });
    assert.equal(r1.code, 0, r1.stderr);
    await assertSameTree(`${d}/tree`, `${d}/tree-copy`);
    const r2 = await runCp(["-r", "--no-sqpoll", "--preserve", `${d}/tree`, `${d}/into`]);
    assert.equal(r2.code, 0, r2.stderr);
    await assertSameTree(`${d}/tree`, `${d}/into/tree`);
    // --force replaces; without it an existing destination is an error.
    const again = await runCp(["b", "copy-a"], { cwd: d });
    assert.equal(again.code, 1);
    assert.equal(
      again.stderr,
      "cp: cannot copy 'b' to 'copy-a': destination 'copy-a' already exists (use -f/--force to replace it)\n",
    );
    assert.equal(await sha256File(`${d}/copy-a`), hash, "not replaced");
    // A file named with a trailing slash is not a directory, and --force is no cure for that.
    for (const flags of [[], ["--force"]]) {
      const slash = await runCp([...flags, "b", "copy-a/"], { cwd: d });
      assert.equal(slash.code, 1);
      assert.match(slash.stderr, /^cp: cannot copy 'b' to 'copy-a\/': .*not a directory\n$/, flags.join());
    }
    assert.equal(await sha256File(`${d}/copy-a`), hash, "not replaced");
    const forced = await runCp(["--force", "b", "copy-a"], { cwd: d });
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(Deno.statSync(`${d}/copy-a`).size, 10);
    assert.deepEqual(tempLeftovers(d), []);
  },
});

Deno.test({
  name: "cp CLI: a source named . or .. goes into DIR itself, never into DIR/.. (found by a probe)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/a/b`, { recursive: true });
    Deno.writeTextFileSync(`${d}/a/b/f`, "f");
    Deno.writeTextFileSync(`${d}/a/g`, "g");
    Deno.mkdirSync(`${d}/dest`);
    Deno.writeTextFileSync(`${d}/notes.txt`, "mine"); // beside dest: `dest/..` would replace it
    // From a/b, `..` is a: its contents go into dest (not into `dest/..`, which is d itself).
    const up = await runCp(["-r", "-f", "..", `${d}/dest`], { cwd: `${d}/a/b` });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(Deno.readTextFileSync(`${d}/dest/b/f`), "f");
    assert.equal(Deno.readTextFileSync(`${d}/dest/g`), "g");
    assert.equal(Deno.readTextFileSync(`${d}/notes.txt`), "mine");
    assert.deepEqual([...Deno.readDirSync(d)].map((e) => e.name).sort(), ["a", "dest", "notes.txt"]);
    const here = await runCp(["-r", "-f", ".", "../../dest"], { cwd: `${d}/a/b` });
    assert.equal(here.code, 0, here.stderr);
    assert.equal(Deno.readTextFileSync(`${d}/dest/f`), "f");
  },
});

Deno.test({
  name: "cp CLI: a path argument with U+FFFD (bytes that are not UTF-8) is refused, not another file copied",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    // report\xff.txt is the file meant; Deno hands the CLI report\uFFFD.txt, which also exists.
    createRawName(
      new Uint8Array([...new TextEncoder().encode(`${d}/report`), 0xff, ...new TextEncoder().encode(".txt")]),
    );
    Deno.writeTextFileSync(`${d}/report\uFFFD.txt`, "another file");
    const r = await runCp(["report\uFFFD.txt", "copy.txt"], { cwd: d });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^cp: 'report\uFFFD\.txt': the name has bytes that are not UTF-8/);
    assert.equal(lines(r.stderr).length, 1);
    assert.equal(sizeOf(`${d}/copy.txt`), -1, "another file was copied");
    const to = await runCp(["-r", ".", "out\uFFFD"], { cwd: d });
    assert.equal(to.code, 1);
    assert.match(to.stderr, /^cp: 'out\uFFFD': the name has bytes that are not UTF-8/);
    // The directory it runs from (`--cwd`, what `deno task` passes): relative paths would be taken
    // from its twin whose name has U+FFFD (found by a re-check probe).
    Deno.mkdirSync(`${d}/w\uFFFD`);
    Deno.writeTextFileSync(`${d}/w\uFFFD/f`, "other");
    const cwd = await runCp(["--cwd", `${d}/w\uFFFD`, "f", "out"], { cwd: d });
    assert.equal(cwd.code, 2);
    assert.match(
      cwd.stderr,
      /^cp: the current directory \('.*w\uFFFD'\) has bytes in its name that are not UTF-8/,
    );
    assert.equal(sizeOf(`${d}/w\uFFFD/out`), -1);
    Deno.writeTextFileSync(`${d}/plain`, "plain");
    const absolute = await runCp(["--cwd", `${d}/w\uFFFD`, `${d}/plain`, `${d}/abs-out`], { cwd: d });
    assert.equal(absolute.code, 0, absolute.stderr);
    assert.equal(Deno.readTextFileSync(`${d}/abs-out`), "plain");
  },
});

Deno.test({
  name: "cp CLI: each failure is one line on stderr and the exit status is 1",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    await randomFile(`${d}/src`, 5000);
    const before = await fingerprint(`${d}/src`);
    Deno.mkdirSync(`${d}/adir/src`, { recursive: true });
    Deno.writeTextFileSync(`${d}/afile`, "x");
    const cases: Array<[string[], string[]]> = [
      [["missing", "out"], ["cp: cannot copy 'missing' to 'out': source 'missing' does not exist"]],
      [["src", "no/such/dir/out"], [
        "cp: cannot copy 'src' to 'no/such/dir/out': destination directory 'no/such/dir' does not exist",
      ]],
      [["adir", "out"], ["cp: -r not given; omitting directory 'adir'"]],
      // cp FILE DIR copies into DIR; there a directory of the same name is in the way.
      [["src", "adir"], ["cp: cannot copy 'src' to 'adir/src': destination 'adir/src' is a directory"]],
      [["-r", "adir", "afile"], [
        "cp: cannot copy 'adir' to 'afile': destination 'afile' exists and is not a directory",
      ]],
      [["src", "src", "afile"], ["cp: target 'afile' is not a directory"]],
      // Several failures: one line each, the good source still copied.
      [["missing", "src", "gone", "adir"], [
        "cp: cannot copy 'missing' to 'adir/missing': source 'missing' does not exist",
        "cp: cannot copy 'src' to 'adir/src': destination 'adir/src' is a directory",
        "cp: cannot copy 'gone' to 'adir/gone': source 'gone' does not exist",
      ]],
    ];
    for (const [args, expected] of cases) {
      const r = await runCp(args, { cwd: d });
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.deepEqual(lines(r.stderr), expected, args.join(" "));
      assert.equal(r.stdout, "");
    }
    assert.deepEqual([...Deno.readDirSync(d)].map((e) => e.name).sort(), ["adir", "afile", "src"]);
    assert.equal(await fingerprint(`${d}/src`), before);
  },
});

Deno.test({
  name: "cp CLI: out of space on a 1 MiB tmpfs: exit 1, one line naming the file, nothing left",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await withTmpfs(dir.path, "1m", async (mount) => {
      if (mount.path === undefined) {
        console.log(`SKIP cp out-of-space test: ${mount.skip}`);
        return;
      }
      await randomFile(`${dir.path}/big`, 2 * 1024 * 1024);
      const r = await runCp(["big", `${mount.path}/`], { cwd: dir.path });
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), [
        `cp: cannot copy 'big' to '${mount.path}/big': no space left on the destination's device (ENOSPC); the partial copy was removed`,
      ]);
      assert.deepEqual([...Deno.readDirSync(mount.path)], []);
    });
  },
});

Deno.test({
  name: "cp CLI: an unreadable source (as an unprivileged user) is one line and exit 1",
  ignore: skipKernel() || unprivilegedUnavailable() !== undefined,
  fn: async () => {
    using dir = tempDir();
    Deno.chmodSync(dir.path, 0o777);
    const denoDir = `${dir.path}/deno-dir`;
    Deno.mkdirSync(denoDir);
    Deno.chmodSync(denoDir, 0o777);
    await randomFile(`${dir.path}/secret`, 100, 0o000);
    const r = await runUnprivileged([...CP_FLAGS, CP, "secret", "out"], denoDir, dir.path);
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(lines(r.stderr), [
      "cp: cannot copy 'secret' to 'out': source 'secret' is not readable (permission denied)",
    ]);
    assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name).sort(), ["deno-dir", "secret"]);
  },
});

Deno.test({
  name: "cp CLI: --progress when forced on draws a one-line bar on stdout (captured, not timed)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await makeTree(`${dir.path}/tree`, 50, 9);
    await randomFile(`${dir.path}/file`, 1024 * 1024);
    const r = await runCp(["--progress", "file", "file2"], { cwd: dir.path });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    assert.ok(r.stdout.endsWith("\n"), "the bar's line ends once, at the end");
    assert.equal(r.stdout.split("\n").length, 2, "everything else redraws the same line");
    const draws = r.stdout.slice(0, -1).split("\r").filter((s) => s !== "");
    assert.ok(draws.length >= 1);
    for (const draw of draws) {
      assert.ok(draw.endsWith(CLEAR_LINE), "each draw clears the rest of the line");
      assert.match(
        draw.slice(0, -CLEAR_LINE.length),
        /^\[[#-]+\] +\d+% {2}.* files {2}.*\/s {2}ETA [0-9:?]+$/,
      );
    }
    assert.match(
      draws[draws.length - 1].slice(0, -CLEAR_LINE.length),
      /100% {2}1\.00 MiB\/1\.00 MiB {2}1\/1 files .*ETA 0:00$/,
    );
    const tree = await runCp(["-r", "--progress", "tree", "tree2"], { cwd: dir.path });
    assert.equal(tree.code, 0, tree.stderr);
    const last = tree.stdout.slice(0, -1).split("\r").pop()!;
    assert.match(last, /100% .* (\d+)\/\1 files /, "final counts are complete");
    // Not a terminal and not forced: no bar; -q silences it even when forced.
    assert.equal((await runCp(["file", "file3"], { cwd: dir.path })).stdout, "");
    assert.equal((await runCp(["-q", "--progress", "file", "file4"], { cwd: dir.path })).stdout, "");
  },
});

Deno.test("cp CLI: when io_uring is unavailable it says so once and copies with Deno's APIs", async () => {
  using dir = tempDir();
  const hash = await randomFile(`${dir.path}/a`, 70_000, 0o604);
  await makeTree(`${dir.path}/tree`, 60, 11);
  const env = { URING_FORCE_UNAVAILABLE: "1" };
  const r = await runCp(["-r", "a", "tree", "missing-source", "out"], { cwd: dir.path, env });
  assert.equal(r.code, 1, "failures are still failures");
  const err = lines(r.stderr);
  assert.equal(err.length, 2, r.stderr);
  assert.match(err[0], /^cp: io_uring is unavailable \(EPERM\)/);
  assert.equal(err[1], "cp: target 'out' is not a directory");
  Deno.mkdirSync(`${dir.path}/out`);
  const ok = await runCp(["-r", "a", "tree", "out"], { cwd: dir.path, env });
  assert.equal(ok.code, 0, ok.stderr);
  const notes = lines(ok.stderr);
  assert.equal(notes.length, 1, "said once");
  assert.match(notes[0], /^cp: io_uring is unavailable \(EPERM\), copying with Deno's file APIs instead: /);
  assert.equal(await sha256File(`${dir.path}/out/a`), hash);
  assert.equal(permOf(`${dir.path}/out/a`), 0o604);
  await assertSameTree(`${dir.path}/tree`, `${dir.path}/out/tree`);
  const quiet = await runCp(["-q", "a", "out/a2"], { cwd: dir.path, env });
  assert.deepEqual(quiet, { code: 0, stdout: "", stderr: "" }, "-q drops the notice");
});

// SIGTERM and SIGHUP too: what `kill`, `timeout` and service managers send, and a closed terminal
// (by default each ends the process at once, and a tree's file in flight stayed under its name).
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143], ["SIGHUP", 129]] as const) {
  Deno.test({
    name: `cp CLI: ${signal} stops the copy, removes the partial file, exits ${code}`,
    ignore: skipKernel(),
    fn: async () => {
      using dir = tempDir();
      // 8 MiB in 512-byte blocks, two at a time: long enough to interrupt. (A sparse file's holes
      // are skipped, so they no longer make a copy long.)
      await randomFile(`${dir.path}/huge`, 8 * 1024 * 1024);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...CP_FLAGS,
          CP,
          "--progress",
          "--block-size",
          "512",
          "--queue-depth",
          "2",
          "--no-splice",
          "huge",
          "copy",
        ],
        cwd: dir.path,
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      const reader = child.stdout.getReader();
      const dec = new TextDecoder();
      let out = "";
      // Wait until the bar shows data moving, then interrupt.
      while (!/ [1-9][0-9.]* (KiB|MiB|GiB)\//.test(out)) {
        const { value, done } = await reader.read();
        if (done) break;
        out += dec.decode(value);
      }
      child.kill(signal);
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      const status = await child.status;
      assert.equal(status.code, code, await stderr);
      assert.deepEqual(lines(await stderr), [
        `cp: copying 'huge' to 'copy' was aborted: interrupted by ${signal}; partial copies were removed`,
      ]);
      assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["huge"]);
    },
  });
}

Deno.test({
  name: "cp CLI: one Ctrl-C delivered twice at once (as under deno task) stops the copy cleanly",
  ignore: skipKernel(),
  fn: async () => {
    // Under `deno task` the terminal's SIGINT reaches the child through its process group, and
    // the task forwards its own copy: both come within a few ms. Before, that was taken for a
    // second Ctrl-C: the process left at once, without its message (5 of 5 runs under a pty).
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/tree`);
    await randomFile(`${dir.path}/tree/big`, 128 * 1024 * 1024);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...CP_FLAGS, CP, "-q", "-r", "tree", "copy"],
      cwd: dir.path,
      // Deno's engine: its Deno.copyFile cannot be interrupted, so the clean stop waits for it,
      // and the repeat arrives during that wait.
      env: { URING_FORCE_UNAVAILABLE: "1", NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    while (!(sizeOf(`${dir.path}/copy/big`) > 0)) await sleep(1); // being written
    child.kill("SIGINT");
    await sleep(5); // (sent together, two merge into one delivery)
    try {
      child.kill("SIGINT");
    } catch {
      // it had stopped already
    }
    assert.equal((await child.status).code, 130);
    assert.deepEqual(lines(await stderr), [
      "cp: copying 'tree' to 'copy' was aborted: interrupted by SIGINT; partial copies were removed",
    ]);
  },
});

Deno.test({
  name: "cp CLI: a closed stdout or stderr does not end the copy (cp --progress … | head)",
  ignore: skipKernel(),
  fn: async () => {
    // Deno ignores SIGPIPE, so a write to a closed pipe throws: before, the first progress line
    // or error message after the reader left ended the run partway with an uncaught BrokenPipe.
    using dir = tempDir();
    await makeTree(`${dir.path}/tree`, 40);
    Deno.mkdirSync(`${dir.path}/into`);
    for (const closed of ["stdout", "stderr"] as const) {
      const args = closed === "stdout"
        ? ["--progress", "-r", "tree", "copy"]
        : ["-r", "missing", "tree", "into"]; // an error message first, then the tree
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", ...CP_FLAGS, CP, ...args],
        cwd: dir.path,
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await child[closed].cancel(); // the reader leaves at once
      const other = await new Response(closed === "stdout" ? child.stderr : child.stdout).text();
      const status = await child.status;
      assert.equal(status.code, closed === "stdout" ? 0 : 1, `${closed} closed: ${other}`);
      assert.doesNotMatch(other, /BrokenPipe|error: Uncaught/);
      await assertSameTree(
        `${dir.path}/tree`,
        closed === "stdout" ? `${dir.path}/copy` : `${dir.path}/into/tree`,
      );
    }
  },
});

Deno.test({
  name: "cp CLI: two sources for one destination: the same one again is skipped, another refused",
  ignore: skipKernel(),
  fn: async () => {
    // As GNU cp: `cp -f p/x q/x d` would otherwise leave d/x holding q's x, p's lost without a
    // word; `cp a a d` said d/a already existed (this run had just made it).
    using dir = tempDir();
    for (const d of ["p", "q", "d", "e", "t/p/x", "t/q/x", "t/d"]) {
      Deno.mkdirSync(`${dir.path}/${d}`, { recursive: true });
    }
    Deno.writeTextFileSync(`${dir.path}/p/x`, "from p");
    Deno.writeTextFileSync(`${dir.path}/q/x`, "from q");
    const refused = await runCp(["-f", "p/x", "q/x", "d"], { cwd: dir.path });
    assert.equal(refused.code, 1);
    assert.deepEqual(lines(refused.stderr), ["cp: will not overwrite just-created 'd/x' with 'q/x'"]);
    assert.equal(Deno.readTextFileSync(`${dir.path}/d/x`), "from p");

    const twice = await runCp(["p/x", "./p/x", "e"], { cwd: dir.path });
    assert.equal(twice.code, 0, twice.stderr);
    assert.deepEqual(lines(twice.stderr), ["cp: warning: source file './p/x' specified more than once"]);
    assert.equal(Deno.readTextFileSync(`${dir.path}/e/x`), "from p");

    // The same file by another entry (a hard link, a symlink) is another source, as in GNU cp; a
    // file named with a trailing slash is refused, not taken for a repeat.
    for (const d of ["hard", "soft", "f", "g", "h"]) Deno.mkdirSync(`${dir.path}/${d}`);
    Deno.linkSync(`${dir.path}/p/x`, `${dir.path}/hard/x`);
    Deno.symlinkSync("../p/x", `${dir.path}/soft/x`);
    for (const [other, into] of [["hard/x", "f"], ["soft/x", "g"]]) {
      const r = await runCp(["p/x", other, into], { cwd: dir.path });
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(lines(r.stderr), [`cp: will not overwrite just-created '${into}/x' with '${other}'`]);
    }
    const slash = await runCp(["p/x", "p/x/", "h"], { cwd: dir.path });
    assert.equal(slash.code, 1);
    assert.match(lines(slash.stderr)[0], /is not a directory/);
    // A source that failed is not tried again (as GNU cp): one error, then the warning.
    const failedTwice = await runCp(["p/x", "p/x", "d"], { cwd: dir.path }); // d/x exists, no -f
    assert.equal(failedTwice.code, 1);
    assert.equal(lines(failedTwice.stderr).length, 2, failedTwice.stderr);
    assert.match(lines(failedTwice.stderr)[0], /already exists/);
    assert.equal(lines(failedTwice.stderr)[1], "cp: warning: source file 'p/x' specified more than once");

    // Directories merge (as in GNU cp); the same directory twice is skipped with a warning.
    Deno.writeTextFileSync(`${dir.path}/t/p/x/a`, "a");
    Deno.writeTextFileSync(`${dir.path}/t/q/x/b`, "b");
    const dirs = await runCp(["-r", "t/p/x", "t/q/x", "t/p/x", "t/d"], { cwd: dir.path });
    assert.equal(dirs.code, 0, dirs.stderr);
    assert.deepEqual(lines(dirs.stderr), ["cp: warning: source directory 't/p/x' specified more than once"]);
    assert.deepEqual([...Deno.readDirSync(`${dir.path}/t/d/x`)].map((e) => e.name).sort(), ["a", "b"]);
  },
});

Deno.test({
  name: "cp CLI: many file sources are copied at once; their messages keep the sources' order",
  ignore: skipKernel(),
  fn: async () => {
    // Sources are copied several at once (one after another, a small file's copy was mostly
    // waiting: 4,000 files took 1.7 s): what each says must still come out in the order of the
    // sources, a later copy to the same destination must wait for the earlier one, and one that
    // failed must not keep a later source from its destination.
    using dir = tempDir();
    const d = dir.path;
    for (const sub of ["out", "adir", "p", "q", "r", "s"]) Deno.mkdirSync(`${d}/${sub}`);
    for (let i = 0; i < 3; i++) await randomFile(`${d}/big${i}`, 16 * 1024 * 1024);
    for (let i = 0; i < 40; i++) Deno.writeTextFileSync(`${d}/small${i}`, `small ${i}\n`.repeat(i + 1));
    // p/x is a FIFO (refused: not a regular file), so q/x gets out/x; r/y (big) is written first,
    // so s/y is refused, once r/y's copy has ended.
    new Deno.Command("mkfifo", { args: [`${d}/p/x`] }).outputSync();
    Deno.writeTextFileSync(`${d}/q/x`, "from q");
    await randomFile(`${d}/r/y`, 8 * 1024 * 1024);
    Deno.writeTextFileSync(`${d}/s/y`, "from s");
    const sources: string[] = [];
    const expected: string[] = [];
    const notThere = (name: string) =>
      `cp: cannot copy '${name}' to 'out/${name}': source '${name}' does not exist`;
    for (let i = 0; i < 3; i++) {
      sources.push(`big${i}`, `missing${i}`);
      expected.push(notThere(`missing${i}`));
      for (let j = 0; j < 10; j++) sources.push(`small${i * 10 + j}`);
      sources.push(`none${i}`);
      expected.push(notThere(`none${i}`));
    }
    sources.push("adir", "small3", "p/x", "q/x", "r/y", "s/y", "small39", "missing9");
    expected.push(
      "cp: -r not given; omitting directory 'adir'",
      "cp: warning: source file 'small3' specified more than once",
      "cp: cannot copy 'p/x' to 'out/x': source 'p/x' is not a regular file",
      "cp: will not overwrite just-created 'out/y' with 's/y'",
      notThere("missing9"),
    );
    for (let round = 0; round < 3; round++) {
      Deno.removeSync(`${d}/out`, { recursive: true });
      Deno.mkdirSync(`${d}/out`);
      const r = await runCp([...sources, "out"], { cwd: d });
      assert.equal(r.code, 1, r.stderr);
      assert.deepEqual(lines(r.stderr), expected);
      for (let i = 0; i < 3; i++) {
        assert.equal(await sha256File(`${d}/out/big${i}`), await sha256File(`${d}/big${i}`));
      }
      for (const i of [...Array(30).keys(), 39]) {
        assert.equal(Deno.readTextFileSync(`${d}/out/small${i}`), Deno.readTextFileSync(`${d}/small${i}`));
      }
      assert.equal(Deno.readTextFileSync(`${d}/out/x`), "from q");
      assert.equal(await sha256File(`${d}/out/y`), await sha256File(`${d}/r/y`));
      assert.equal([...Deno.readDirSync(`${d}/out`)].length, 3 + 31 + 2, "nothing else (no temporary file)");
    }
    // A copy that fails late (out of space after 32 MiB) is still said before a later source
    // that failed at once. (One block of 64 MiB: larger files are copied one at a time.)
    await randomFile(`${d}/huge`, 60 * 1024 * 1024);
    await withTmpfs(d, "32m", async (mount) => {
      if (mount.path === undefined) {
        console.log(`SKIP the late failure's order: ${mount.skip}`);
        return;
      }
      const r = await runCp(["--block-size", "64m", "huge", "missing", `${mount.path}/`], { cwd: d });
      assert.equal(r.code, 1);
      assert.deepEqual(lines(r.stderr), [
        `cp: cannot copy 'huge' to '${mount.path}/huge': no space left on the destination's device (ENOSPC); the partial copy was removed`,
        `cp: cannot copy 'missing' to '${mount.path}/missing': source 'missing' does not exist`,
      ]);
    });
    Deno.removeSync(`${d}/huge`);
    // A link to what an earlier source's copy is writing (out/big0) is followed once that copy has
    // ended, as one after another would (a re-check: it was read first, as the old contents, or
    // found missing: "source 'lnk' does not exist").
    Deno.symlinkSync("out/big0", `${d}/lnk`);
    for (const old of [true, false]) {
      Deno.removeSync(`${d}/out`, { recursive: true });
      Deno.mkdirSync(`${d}/out`);
      if (old) Deno.writeTextFileSync(`${d}/out/big0`, "old");
      const r = await runCp(["-f", "big0", "lnk", "out"], { cwd: d });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(
        await sha256File(`${d}/out/lnk`),
        await sha256File(`${d}/big0`),
        `old contents there: ${old}`,
      );
    }
    Deno.removeSync(`${d}/lnk`);
    // The bar counts every source's files and bytes once.
    Deno.removeSync(`${d}/out`, { recursive: true });
    Deno.mkdirSync(`${d}/out`);
    const small = Array.from({ length: 40 }, (_, i) => `small${i}`);
    const bar = await runCp(["--progress", "big0", ...small, "big1", "out"], { cwd: d });
    assert.equal(bar.code, 0, bar.stderr);
    const last = bar.stdout.slice(0, -1).split("\r").pop()!.slice(0, -CLEAR_LINE.length);
    assert.match(last, /100% {2}32\.0 MiB\/32\.0 MiB {2}42\/42 files .*ETA 0:00$/);
  },
});

Deno.test({
  name: "cp CLI: a path that needs --allow-all says how to run the CLI with it (deno task cannot)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.writeTextFileSync(`${dir.path}/a`, "a");
    const r = await runCp(["a", "/dev/shm/uring-cli-test-never-made"], { cwd: dir.path });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /Requires all access to "\/dev\/shm\/uring-cli-test-never-made", which deno task cp does not have: run deno run -A \/.*\/src\/cli\/cp\.ts instead\n$/,
    );
  },
});

Deno.test({
  name: "cp CLI: a relative --cwd after the task's is taken from it, not from the project root",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/sub`);
    Deno.writeTextFileSync(`${dir.path}/sub/a`, "a");
    // (runs from /: what the task passes comes first, then the user's own)
    const r = await runCp(["--cwd", dir.path, "--cwd", "sub", "a", "b"], { cwd: "/" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(Deno.readTextFileSync(`${dir.path}/sub/b`), "a");
    const empty = await runCp(["--cwd", dir.path, "--cwd=", "sub/a", "c"], { cwd: "/" });
    assert.equal(empty.code, 0, empty.stderr);
    assert.equal(Deno.readTextFileSync(`${dir.path}/c`), "a");
  },
});

Deno.test({
  name: "cp CLI: a second Ctrl-C exits at once, and removes the files still being written first",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    // A tree, so the big file is written in place under its own name (no temporary name).
    Deno.mkdirSync(`${dir.path}/tree`);
    await randomFile(`${dir.path}/tree/huge`, SECOND_SIGINT_SIZE);
    const partial = `${dir.path}/copy/huge`;
    for (let round = 0; round < 2; round++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", ...CP_FLAGS, CP, "-q", "-r", "tree", "copy"],
        cwd: dir.path,
        // Deno's engine (io_uring forced unavailable): its Deno.copyFile of a big file cannot be
        // interrupted, so the first Ctrl-C's clean-up waits for it, and the second comes first.
        env: { URING_FORCE_UNAVAILABLE: "1" },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      while (!(sizeOf(partial) > 0)) await sleep(2); // being written
      child.kill("SIGINT");
      await sleep(150); // (a repeat within 100 ms is the same Ctrl-C: see the test above)
      try {
        child.kill("SIGINT");
      } catch {
        // it had finished already
      }
      assert.equal((await child.status).code, 130);
      // No partial file under its final name (it left one of 372-655 MB of a 3 GiB file).
      const left = sizeOf(partial);
      assert.ok(left === -1 || left === SECOND_SIGINT_SIZE, `a partial copy/huge of ${left} bytes was left`);
      assert.deepEqual(tempLeftovers(`${dir.path}/copy`), []);
      Deno.removeSync(`${dir.path}/copy`, { recursive: true });
    }
  },
});

Deno.test({
  name: "cp CLI: modes are exact whatever the umask (found by a probe: the task has no --allow-sys)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const modes = [0o666, 0o777, 0o644, 0o600, 0o2755];
    for (const mode of modes) await randomFile(`${dir.path}/m${mode.toString(8)}`, 100, mode);
    Deno.mkdirSync(`${dir.path}/tree/sub`, { recursive: true });
    await randomFile(`${dir.path}/tree/sub/f`, 10, 0o664);
    Deno.chmodSync(`${dir.path}/tree/sub`, 0o775);
    for (const umask of ["077", "022", "000"]) {
      const out = `${dir.path}/out-${umask}`;
      Deno.mkdirSync(out);
      const names = modes.map((m) => `m${m.toString(8)}`);
      const r = await runCp(["-r", ...names, "tree", out], { cwd: dir.path, shell: `umask ${umask}` });
      assert.equal(r.code, 0, r.stderr);
      for (const mode of modes) {
        // (less setuid/setgid, which copies never keep)
        const want = mode & ~0o6000;
        assert.equal(permOf(`${out}/m${mode.toString(8)}`).toString(8), want.toString(8), `umask ${umask}`);
      }
      assert.equal(permOf(`${out}/tree/sub`).toString(8), "775", `umask ${umask}: directory`);
      assert.equal(permOf(`${out}/tree/sub/f`).toString(8), "664", `umask ${umask}: file in the tree`);
      assert.deepEqual([...Deno.readDirSync(out)].filter((e) => e.name.includes("umask-probe")), []);
    }
  },
});

Deno.test({
  name:
    "cp CLI: a tree copy under `ulimit -n 64` copies every file (fewer files and pipes at once, and a wait on EMFILE)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    // Files of one spliced block, of one block read and written, and of several blocks (which
    // hold two plain descriptors each), in two directories.
    for (const sub of ["a", "a/b"]) {
      Deno.mkdirSync(`${src}/${sub}`, { recursive: true });
      for (let i = 0; i < 60; i++) await randomFile(`${src}/${sub}/f${i}`, [100, 70_000, 1_500_000][i % 3]);
    }
    for (const flags of [[], ["-p"]]) {
      const out = `${dir.path}/out${flags.join("")}`;
      const r = await runCp(["-r", ...flags, "src", out], { cwd: dir.path, shell: "ulimit -n 64" });
      assert.equal(r.code, 0, r.stderr);
      await assertSameTree(src, out);
    }
  },
});

Deno.test({
  name: "cp CLI: cp -r SRC DIR does not merge through a symlink DIR/SRC (as GNU cp refuses it)",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    Deno.writeTextFileSync(`${d}/src/f`, "f");
    Deno.mkdirSync(`${d}/backup`);
    Deno.mkdirSync(`${d}/elsewhere`);
    Deno.symlinkSync("../elsewhere", `${d}/backup/src`);
    for (const args of [["-r", "src", "backup"], ["-r", "-f", "src", "backup"]]) {
      const out = await runCp(args, { cwd: d });
      assert.equal(out.code, 1, out.stderr);
      assert.match(out.stderr, /destination 'backup\/src' is a symlink, not a directory/);
      assert.deepEqual([...Deno.readDirSync(`${d}/elsewhere`)], [], "nothing written through the link");
    }
    // `SRC/.` copies into DIR itself, the destination named: a symlink to a directory there is fine.
    Deno.symlinkSync("elsewhere", `${d}/link`);
    const out = await runCp(["-r", "src/.", "link"], { cwd: d });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(Deno.readTextFileSync(`${d}/elsewhere/f`), "f");
  },
});

Deno.test("cp without --allow-ffi: the refusal names the module's helper and the flag (not libc.so.6)", async () => {
  using dir = tempDir();
  Deno.writeTextFileSync(`${dir.path}/f`, "x");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-write", "--allow-env", CP, `${dir.path}/f`, `${dir.path}/g`],
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, stderr);
  assert.match(
    stderr,
    /^cp: Requires ffi access to ".*liburing_helper\.so", run again with the --allow-ffi flag\n$/,
  );
  assert.equal(sizeOf(`${dir.path}/g`), -1, "nothing was copied");
});

Deno.test({
  name: "cp: one-block sources keep the lanes of their copies from file to file (no pipe made per file)",
  ignore: skipKernel(),
  fn: async () => {
    // Each copyFile made a lane (two file-table indexes, a pipe, memory) on the CLI's ring and gave
    // it back: 4,000 such sources took 461–545 ms, 405–437 ms with the lanes kept.
    using dir = tempDir();
    const sources: string[] = [];
    for (let i = 0; i < 100; i++) {
      Deno.writeTextFileSync(`${dir.path}/s${i}`, "z".repeat(500 + i));
      sources.push(`${dir.path}/s${i}`);
    }
    Deno.mkdirSync(`${dir.path}/out`);
    const sys = getSys();
    const pipe = sys.pipe;
    let made = 0;
    sys.pipe = (fds, size) => (made++, pipe.call(sys, fds, size));
    const errors: string[] = [];
    let code: number;
    try {
      code = await main([...sources, `${dir.path}/out`], {
        out: () => {},
        err: (text) => void errors.push(text),
        isTerminal: false,
        columns: 80,
      });
    } finally {
      sys.pipe = pipe;
    }
    assert.deepEqual([code, errors], [0, []]);
    // (Up to 32 sources run at once: one lane each, and a pipe made to learn the capacity.)
    assert.ok(made <= 33, `${made} pipes made for 100 files`);
    for (let i = 0; i < 100; i++) {
      assert.equal(Deno.readTextFileSync(`${dir.path}/out/s${i}`), "z".repeat(500 + i));
    }
  },
});

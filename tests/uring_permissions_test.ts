/**
 * Deno's permissions hold for what the kernel does on the Uring's behalf: a program run with
 * `--allow-read` on one folder cannot open or stat anything outside it through `Uring`, cannot
 * write without `--allow-write`, and a permission revoked at run time is refused at once.
 */

import assert from "node:assert/strict";
import { skipKernel, tempDir } from "./_support.ts";
import { ATTEMPT_JS, childResults, classesOf, MOD_URL, runDeno } from "./uring_support.ts";
import { resolvePath, toPath } from "../src/permissions.ts";

Deno.test("resolvePath: `.`, `..` and doubled slashes resolved in the text; relative made absolute on request", () => {
  const cwd = Deno.cwd();
  const parent = cwd.slice(0, cwd.lastIndexOf("/")) || "/";
  const cases: Array<[string, boolean, string]> = [
    ["/a/b", false, "/a/b"],
    ["/a/./b", false, "/a/b"],
    ["/a//b/", false, "/a/b/"],
    ["/lib/../x", false, "/x"],
    ["/../a", false, "/a"],
    ["/a/.hidden", false, "/a/.hidden"],
    ["/a/..hidden/.b.c-tmp", false, "/a/..hidden/.b.c-tmp"],
    ["/a/.x/./y", false, "/a/.x/y"],
    ["/a/.x/../y", false, "/a/y"],
    ["/a/.x/.", false, "/a/.x/."],
    ["/a/.x/..", false, "/a/."],
    ["/a/.x/../", false, "/a/."],
    ["/.", false, "/"],
    ["/..", false, "/"],
    ["a/../b", false, "b"],
    ["a/../../x", false, "../x"],
    ["./a", false, "a"],
    ["a/..", false, "."],
    ["a", true, `${cwd}/a`],
    ["../x", true, `${parent === "/" ? "" : parent}/x`],
    [".", true, `${cwd}/.`], // a final "." or ".." leaves "/." (it means "a directory")
    ["file/.", false, "file/."],
    ["/a/b/..", false, "/a/."],
    ["a/b/c/..", false, "a/b/."],
  ];
  for (const [path, absolute, want] of cases) assert.equal(resolvePath(path, absolute), want, path);
});

Deno.test("toPath: a file: URL's bare '%' stays as it is (Deno opens such a file), escapes are decoded", () => {
  assert.equal(toPath(new URL("file:///tmp/a%zz")), "/tmp/a%zz");
  assert.equal(toPath(new URL("file:///tmp/%C3%BC%20x%zz")), "/tmp/ü x%zz");
  assert.equal(toPath(new URL("file:///tmp/100%25")), "/tmp/100%");
});

Deno.test("toPath: a file: URL whose escapes are not UTF-8 is refused (it named the file called '%FF')", () => {
  assert.throws(
    () => toPath(new URL("file:///tmp/%FF")),
    /^TypeError: path is a file: URL whose escapes %FF are bytes that are not UTF-8: no path string names that file$/,
  );
  assert.throws(
    () => toPath(new URL("file:///tmp/%C3%A9%FF%zz"), "newPath"),
    /^TypeError: newPath is a file: URL/,
  );
});

Deno.test({
  name:
    "Uring permissions: a path under --ignore-read does not exist, as for Deno's own API; --deny-read refuses",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const hidden = `${dir.path}/hidden.txt`,
      denied = `${dir.path}/denied.txt`,
      plain = `${dir.path}/plain.txt`;
    for (const p of [hidden, denied, plain]) Deno.writeTextFileSync(p, "x");
    const code = `
      import { copyFile, Uring } from ${JSON.stringify(MOD_URL)};
      const uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      for (const [name, path] of [["hidden", ${JSON.stringify(hidden)}], ["denied", ${
      JSON.stringify(denied)
    }], ["plain", ${JSON.stringify(plain)}]]) {
        await attempt(name + " open", () => uring.open(path).then((f) => f.close()));
        await attempt(name + " statx", () => uring.statx(path));
        await attempt(name + " deno stat", () => Deno.stat(path));
      }
      await attempt("hidden copy", () => copyFile(${JSON.stringify(hidden)}, ${
      JSON.stringify(`${dir.path}/copy.txt`)
    }));
      await uring.close();
      console.log(JSON.stringify(results));
    `;
    // A whole read grant, or one of a folder (the usual case, which a re-check found still said
    // NotCapable "run again with --allow-read").
    for (const read of ["--allow-read", `--allow-read=${dir.path}`]) {
      const results = await childResults(code, [
        read,
        `--ignore-read=${hidden}`,
        `--deny-read=${denied}`,
        `--allow-write=${dir.path}`,
        "--allow-ffi",
        "--allow-env",
      ]);
      assert.match(
        results["hidden open"],
        /^NotFound: open '.*hidden\.txt': No such file or directory \(ENOENT\)$/,
        read,
      );
      assert.match(results["hidden copy"], /^NotFound: /, read);
      assert.deepEqual(classesOf(results), {
        "hidden open": "NotFound",
        "hidden statx": "NotFound",
        "hidden deno stat": "NotFound",
        "hidden copy": "NotFound",
        "denied open": "NotCapable",
        "denied statx": "NotCapable",
        "denied deno stat": "NotCapable",
        "plain open": "ok",
        "plain statx": "ok",
        "plain deno stat": "ok",
      }, read);
    }
  },
});

Deno.test({
  name: "Uring permissions: --allow-read on one folder cannot reach files outside it",
  ignore: skipKernel(),
  async fn() {
    using allowed = tempDir();
    using other = tempDir();
    const inside = `${allowed.path}/inside.txt`;
    const outside = `${other.path}/outside.txt`;
    Deno.writeTextFileSync(inside, "in");
    Deno.writeTextFileSync(outside, "out");
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      const uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const inside = ${JSON.stringify(inside)};
      const outside = ${JSON.stringify(outside)};
      await attempt("open inside", async () => {
        const f = await uring.open(inside);
        const buf = new Uint8Array(8);
        if (await f.readAt(buf, 0) !== 2) throw new Error("short read");
        await f.close();
      });
      await attempt("statx inside", () => uring.statx(inside));
      await attempt("open outside", () => uring.open(outside));
      await attempt("open outside by URL", () => uring.open(new URL("file://" + outside)));
      await attempt("openFd outside", () => uring.openFd(outside, 0));
      await attempt("statx outside", () => uring.statx(outside));
      await attempt("statx outside via ..", () => uring.statx(${
      JSON.stringify(`${allowed.path}/../${other.path.split("/").pop()}/outside.txt`)
    }));
      await attempt("open inside for writing", () => uring.open(inside, { write: true }));
      await attempt("openFd inside O_RDWR", () => uring.openFd(inside, 2));
      await attempt("mkdir inside", () => uring.mkdir(inside + ".d"));
      await attempt("unlink inside", () => uring.unlink(inside));
      await attempt("rename inside", () => uring.rename(inside, inside + ".2"));
      await attempt("link inside", () => uring.link(inside, inside + ".3"));
      await attempt("symlink inside", () => uring.symlink(outside, inside + ".4"));
      await Deno.permissions.revoke({ name: "read", path: ${JSON.stringify(allowed.path)} });
      await attempt("open inside after revoke", () => uring.open(inside));
      await attempt("statx inside after revoke", () => uring.statx(inside));
      await uring.close();
      console.log(JSON.stringify(results));
    `;
    const results = await childResults(code, [`--allow-read=${allowed.path}`, "--allow-ffi", "--allow-env"]);
    assert.deepEqual(results, {
      "open inside": "ok",
      "statx inside": "ok",
      "open outside": "NotCapable",
      "open outside by URL": "NotCapable",
      "openFd outside": "NotCapable",
      "statx outside": "NotCapable",
      "statx outside via ..": "NotCapable",
      "open inside for writing": "NotCapable",
      "openFd inside O_RDWR": "NotCapable",
      "mkdir inside": "NotCapable",
      "unlink inside": "NotCapable",
      "rename inside": "NotCapable",
      "link inside": "NotCapable",
      "symlink inside": "NotCapable",
      "open inside after revoke": "NotCapable",
      "statx inside after revoke": "NotCapable",
    });
    // Nothing was changed behind Deno's back.
    assert.equal(Deno.readTextFileSync(inside), "in");
    assert.deepEqual([...Deno.readDirSync(allowed.path)].map((e) => e.name), ["inside.txt"]);
  },
});

Deno.test({
  name: "Uring permissions: with --allow-write on the folder, writes inside work and outside do not",
  ignore: skipKernel(),
  async fn() {
    using allowed = tempDir();
    using other = tempDir();
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const dir = ${JSON.stringify(allowed.path)};
      const out = ${JSON.stringify(other.path)};
      await attempt("create inside", async () => {
        const f = await uring.open(dir + "/new", { write: true, create: true });
        await f.writeAll(new TextEncoder().encode("new"), 0);
        await f.close();
      });
      await attempt("mkdir inside", () => uring.mkdir(dir + "/sub"));
      await attempt("rename inside", () => uring.rename(dir + "/new", dir + "/sub/new"));
      await attempt("rename out of the folder", () => uring.rename(dir + "/sub/new", out + "/new"));
      await attempt("create outside", () => uring.open(out + "/x", { write: true, create: true }));
      await attempt("mkdir outside", () => uring.mkdir(out + "/d"));
      await attempt("symlink (needs full access)", () => uring.symlink("sub", dir + "/link"));
      console.log(JSON.stringify(results));
    `;
    const out = await childResults(code, [
      `--allow-read=${allowed.path}`,
      `--allow-write=${allowed.path}`,
      "--allow-ffi",
      "--allow-env",
    ]);
    assert.deepEqual(out, {
      "create inside": "ok",
      "mkdir inside": "ok",
      "rename inside": "ok",
      "rename out of the folder": "NotCapable",
      "create outside": "NotCapable",
      "mkdir outside": "NotCapable",
      "symlink (needs full access)": "NotCapable",
    });
    assert.equal(Deno.readTextFileSync(`${allowed.path}/sub/new`), "new");
    assert.deepEqual([...Deno.readDirSync(other.path)], []);
  },
});

Deno.test({
  name: "Uring permissions: files under /proc, /sys and /dev need --allow-all, as with Deno's own API",
  ignore: skipKernel(),
  async fn() {
    const code = (label: string) => `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = { label: ${JSON.stringify(label)} };
      ${ATTEMPT_JS}
      results["Deno reads /proc/self/stat"] = deno(() => Deno.readTextFileSync("/proc/self/stat"));
      results["Deno reads /proc/self/environ"] = deno(() => Deno.readFileSync("/proc/self/environ"));
      await attempt("open /proc/self/stat", async () => (await uring.open("/proc/self/stat")).close());
      await attempt("open /proc/self/../self/status", async () => (await uring.open("/proc/self/../self/status")).close());
      await attempt("statx /sys/kernel", () => uring.statx("/sys/kernel"));
      await attempt("open /dev/vda", async () => (await uring.open("/dev/vda")).close());
      await attempt("open /dev/null", async () => (await uring.open("/dev/null", { read: true, write: true })).close());
      await attempt("open /proc/self/environ", async () => (await uring.open("/proc/self/environ")).close());
      await attempt("statx /device-like-name", () => uring.statx("/devices-are-not-special").catch((e) => {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }));
      console.log(JSON.stringify(results));
    `;
    const partial = await childResults(code("read+write"), [
      "--allow-read",
      "--allow-write",
      "--allow-ffi",
      "--allow-env",
    ]);
    assert.deepEqual(partial, {
      label: "read+write",
      "Deno reads /proc/self/stat": "NotCapable",
      "open /proc/self/stat": "NotCapable",
      "open /proc/self/../self/status": "NotCapable",
      "statx /sys/kernel": "NotCapable",
      "open /dev/vda": "NotCapable",
      "open /dev/null": "ok",
      "Deno reads /proc/self/environ": "NotCapable", // --allow-env is not enough (Deno 2.9)
      "open /proc/self/environ": "NotCapable",
      "statx /device-like-name": "ok",
    });
    const r = await childResults(code("all"), ["--allow-all"]);
    assert.equal(r["Deno reads /proc/self/stat"], "ok");
    assert.equal(r["open /proc/self/stat"], "ok");
    assert.equal(r["statx /sys/kernel"], "ok");
  },
});

Deno.test({
  name:
    "Uring permissions: revoking a whole --allow-read at run time refuses the next open; chains check openDirect",
  ignore: skipKernel(),
  async fn() {
    using allowed = tempDir();
    const file = `${allowed.path}/f.txt`;
    Deno.writeTextFileSync(file, "abc");
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      const uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const file = ${JSON.stringify(file)};
      const index = uring.reserveFileIndex();
      await attempt("open before", async () => (await uring.open(file)).close());
      await attempt("chain openDirect for writing", () =>
        uring.chain((c) => c.openDirect(file + ".new", index, { flags: 0o101 }).closeDirect(index)));
      await attempt("chain openDirect before", async () => {
        const r = await uring.chain((c) => c.openDirect(file, index).closeDirect(index));
        if (!r.every((m) => m.ok)) throw r.find((m) => !m.ok).error;
      });
      await Deno.permissions.revoke({ name: "read" });
      await attempt("open after revoke", () => uring.open(file));
      await attempt("statx after revoke", () => uring.statx(file));
      await attempt("chain openDirect after revoke", () =>
        uring.chain((c) => c.openDirect(file, index).closeDirect(index)));
      uring.releaseFileIndex(index);
      await uring.close();
      console.log(JSON.stringify(results));
    `;
    const out = await childResults(code, ["--allow-read", "--allow-ffi", "--allow-env"]);
    assert.deepEqual(out, {
      "open before": "ok",
      "chain openDirect for writing": "NotCapable",
      "chain openDirect before": "ok",
      "open after revoke": "NotCapable",
      "statx after revoke": "NotCapable",
      "chain openDirect after revoke": "NotCapable",
    });
    assert.deepEqual([...Deno.readDirSync(allowed.path)].map((e) => e.name), ["f.txt"]);
  },
});

Deno.test({
  name: "Uring permissions: O_RDONLY | O_CREAT needs read access too (its fd reads an existing file)",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const file = `${dir.path}/secret.txt`;
    Deno.writeTextFileSync(file, "secret");
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const file = ${JSON.stringify(file)};
      // (Deno's open takes create only with write: read + write + create is its nearest form.)
      results["Deno open read+write+create"] = deno(() =>
        Deno.openSync(file, { read: true, write: true, create: true }).close()
      );
      await attempt("openFd O_RDONLY|O_CREAT", () => uring.openFd(file, 0o100));
      const index = uring.reserveFileIndex();
      await attempt("chain openDirect O_RDONLY|O_CREAT", async () => {
        const r = await uring.chain((c) => c.openDirect(file, index, { flags: 0o100 }).closeDirect(index));
        if (!r.every((m) => m.ok)) throw r.find((m) => !m.ok).error;
      });
      await attempt("open for writing", async () => (await uring.open(file, { write: true })).close());
      console.log(JSON.stringify(results));
    `;
    const out = await childResults(code, [`--allow-write=${dir.path}`, "--allow-ffi", "--allow-env"]);
    assert.deepEqual(out, {
      "Deno open read+write+create": "NotCapable",
      "openFd O_RDONLY|O_CREAT": "NotCapable",
      "chain openDirect O_RDONLY|O_CREAT": "NotCapable",
      "open for writing": "ok",
    });
  },
});

Deno.test({
  name:
    "Uring permissions: /proc needs real --allow-all: every flag but --allow-import, or a --deny-*, is not it",
  ignore: skipKernel(),
  async fn() {
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      results["Deno reads /proc/self/stat"] = deno(() => Deno.readTextFileSync("/proc/self/stat"));
      await attempt("open /proc/self/stat", async () => (await uring.open("/proc/self/stat")).close());
      console.log(JSON.stringify(results));
    `;
    const refused = { "Deno reads /proc/self/stat": "NotCapable", "open /proc/self/stat": "NotCapable" };
    const sevenFlags = ["read", "write", "net", "env", "sys", "run", "ffi"].map((name) => `--allow-${name}`);
    for (const flags of [sevenFlags, ["--allow-all", "--deny-net=example.com"]]) {
      const out = await childResults(code, flags);
      assert.deepEqual(out, refused, flags.join(" "));
    }
    const all = await childResults(code, ["--allow-all"]);
    assert.deepEqual(all, {
      "Deno reads /proc/self/stat": "ok",
      "open /proc/self/stat": "ok",
    });
  },
});

Deno.test({
  name:
    "Uring permissions: `..` after a symlink and a chdir after the call reach what was checked, as in Deno",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/real/protected`, { recursive: true });
    Deno.mkdirSync(`${d}/real/sub`);
    Deno.mkdirSync(`${d}/allowed`);
    Deno.writeTextFileSync(`${d}/real/protected/secret`, "secret");
    Deno.writeTextFileSync(`${d}/allowed/src`, "data");
    Deno.symlinkSync("real/sub", `${d}/link`);
    // The kernel would take link/.. to real/ (the link's target's parent); Deno's file API and the
    // permission check take it to the text's parent, where nothing is protected and nothing is.
    const code = `
      import { copyFile, Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const d = ${JSON.stringify(d)};
      const sneaky = d + "/link/../protected/secret";
      results["Deno reads link/../protected"] = deno(() => Deno.readTextFileSync(sneaky));
      await attempt("open link/../protected", async () => (await uring.open(sneaky)).close());
      await attempt("statx link/../protected", () => uring.statx(sneaky));
      await attempt("create in link/../protected", () => uring.open(d + "/link/../protected/new", { write: true, create: true }));
      await attempt("copyFile into link/../protected", () => copyFile(d + "/allowed/src", d + "/link/../protected/out"));
      // A relative path is resolved when the call is made: a chdir right after changes nothing.
      Deno.chdir(d + "/allowed");
      const created = uring.open("made-here", { write: true, create: true });
      Deno.chdir(d + "/real/sub");
      await attempt("create, then chdir", async () => (await created).close());
      console.log(JSON.stringify(results));
    `;
    const results = await childResults(code, [
      "--allow-read",
      "--allow-write",
      `--deny-read=${d}/real/protected`,
      `--deny-write=${d}/real/protected`,
      "--allow-ffi",
      "--allow-env",
    ]);
    const classes = classesOf(results);
    assert.deepEqual(classes, {
      "Deno reads link/../protected": "NotFound",
      "open link/../protected": "NotFound",
      "statx link/../protected": "NotFound",
      "create in link/../protected": "NotFound",
      "copyFile into link/../protected": "NotFound",
      "create, then chdir": "ok",
    });
    assert.match(
      results["open link/../protected"],
      /^NotFound: open '.*\/link\/\.\.\/protected\/secret'/,
      "named as given",
    );
    assert.match(
      results["copyFile into link/../protected"],
      /destination directory '.*\/protected' does not exist/,
    );
    assert.deepEqual([...Deno.readDirSync(`${d}/real/protected`)].map((e) => e.name), ["secret"]);
    assert.ok(Deno.statSync(`${d}/allowed/made-here`).isFile);
    assert.deepEqual([...Deno.readDirSync(`${d}/real/sub`)], []);
  },
});

Deno.test({
  name: "Uring permissions: a symlink into /proc or /sys needs --allow-all to open, as with Deno's own API",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const d = dir.path;
    Deno.symlinkSync("/proc/self/status", `${d}/status`);
    Deno.symlinkSync("/proc/self/comm", `${d}/comm`);
    Deno.symlinkSync("/sys/kernel/mm", `${d}/mm`);
    Deno.writeTextFileSync(`${d}/plain`, "plain");
    Deno.symlinkSync(`${d}/plain`, `${d}/to-plain`);
    // Dangling: a create through it would make the file in /dev/shm.
    const shm = `/dev/shm/uring-test-${crypto.randomUUID()}`;
    Deno.symlinkSync(shm, `${d}/dangling`);
    const code = `
      import { copyFile, copyTree, Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const d = ${JSON.stringify(d)};
      results["Deno reads the link"] = deno(() => Deno.readTextFileSync(d + "/status"));
      await attempt("open", async () => (await uring.open(d + "/status")).close());
      await attempt("openFd", () => uring.openFd(d + "/status", 0));
      await attempt("open for writing", async () => (await uring.open(d + "/comm", { write: true })).close());
      const index = uring.reserveFileIndex();
      await attempt("chain openDirect", async () => {
        const r = await uring.chain((c) => c.openDirect(d + "/status", index).closeDirect(index));
        if (!r.every((m) => m.ok)) throw r.find((m) => !m.ok).error;
      });
      await attempt("copyFile", () => copyFile(d + "/status", d + "/status.copy"));
      await attempt("copyTree", () => copyTree(d + "/mm", d + "/mm.copy"));
      await attempt("create through a dangling link", async () =>
        (await uring.open(d + "/dangling", { write: true, create: true })).close());
      await attempt("open a link to a plain file", async () => (await uring.open(d + "/to-plain")).close());
      console.log(JSON.stringify(results));
    `;
    const expected = (verdict: string) => ({
      "Deno reads the link": verdict,
      open: verdict,
      openFd: verdict,
      "open for writing": verdict,
      "chain openDirect": verdict,
      copyFile: verdict,
      copyTree: verdict,
      "create through a dangling link": verdict,
      "open a link to a plain file": "ok",
    });
    const results = await childResults(code, ["--allow-read", "--allow-write", "--allow-ffi", "--allow-env"]);
    const classes = classesOf(results);
    assert.deepEqual(classes, expected("NotCapable"));
    assert.match(results.open ?? "", /^NotCapable$/);
    assert.deepEqual(
      [...Deno.readDirSync(d)].map((e) => e.name).sort(),
      ["comm", "dangling", "mm", "plain", "status", "to-plain"],
    );
    // (This process may not look into /dev itself: Deno asks --allow-all for that.)
    const exists = (path: string) => new Deno.Command("test", { args: ["-e", path] }).outputSync().success;
    assert.equal(exists(shm), false, "nothing was created in /dev/shm");
    const allClasses = classesOf(await childResults(code, ["--allow-all"]));
    assert.deepEqual({ ...allClasses, copyTree: "ok" }, expected("ok"));
    assert.ok(exists(shm), "the --allow-all run created it");
    new Deno.Command("rm", { args: ["-f", shm] }).outputSync();
  },
});

Deno.test({
  name:
    "Uring paths: a final `.`/`..` still names a directory; errors name the paths as given; a gone cwd says so",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/in/sub/empty`, { recursive: true });
    Deno.writeTextFileSync(`${d}/in/file`, "data");
    Deno.writeTextFileSync(`${d}/outside`, "out");
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const d = ${JSON.stringify(d)};
      Deno.chdir(d + "/in");
      await attempt("unlink file/.", () => uring.unlink("file/."));
      await attempt("statx file/.", () => uring.statx("file/."));
      await attempt("rmdir sub/empty/nothing/..", () => uring.unlink("sub/empty/nothing/..", { directory: true }));
      await attempt("link to an existing name", () => uring.link("file", "./sub/../file"));
      await attempt("open ../outside", () => uring.open("../outside"));
      Deno.mkdirSync(d + "/in/gone");
      Deno.chdir(d + "/in/gone");
      Deno.removeSync(d + "/in/gone");
      await attempt("open with the cwd gone", () => uring.open("x"));
      // A working directory whose name is not UTF-8 (Deno.cwd() cannot return it).
      const libc = Deno.dlopen("libc.so.6", {
        mkdir: { parameters: ["buffer", "u32"], result: "i32" },
        chdir: { parameters: ["buffer"], result: "i32" },
      });
      const raw = new Uint8Array([...new TextEncoder().encode(d + "/in/"), 0xff, 0]);
      libc.symbols.mkdir(raw, 0o755); // (made by the first of the two runs)
      if (libc.symbols.chdir(raw) !== 0) throw new Error("chdir");
      await attempt("open with a cwd that is not UTF-8", () => uring.open("x"));
      console.log(JSON.stringify(results));
    `;
    const restricted = [`--allow-read=${d}/in`, `--allow-write=${d}/in`, "--allow-ffi", "--allow-env"];
    for (const flags of [restricted, ["--allow-all"]]) {
      const results = await childResults(code, flags);
      const label = flags.join(" ");
      assert.match(results["unlink file/."], /^NotADirectory: unlink 'file\/\.'/, label);
      assert.match(results["statx file/."], /^NotADirectory: statx 'file\/\.'/, label);
      assert.notEqual(results["rmdir sub/empty/nothing/.."], "ok", label);
      assert.match(
        results["link to an existing name"],
        /^AlreadyExists: link 'file' -> '\.\/sub\/\.\.\/file'/,
        label,
      );
      if (flags[0] === "--allow-all") {
        assert.equal(results["open ../outside"], "ok");
      } else {
        assert.match(results["open ../outside"], /^NotCapable$/);
        assert.match(results["open with the cwd gone"], /working directory no longer exists/, label);
        assert.match(
          results["open with a cwd that is not UTF-8"],
          /^InvalidData: open 'x': the working directory's name is not UTF-8, so a relative path cannot be resolved/,
          label,
        );
      }
    }
    // Nothing was removed through a `.` or `..`.
    assert.equal(Deno.readTextFileSync(`${d}/in/file`), "data");
    assert.ok(Deno.statSync(`${d}/in/sub/empty`).isDirectory);
  },
});

Deno.test({
  name: "Uring permissions: a refusal names the path as the caller gave it",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/in`);
    Deno.writeTextFileSync(`${dir.path}/outside`, "out");
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      await using uring = new Uring({ sqpoll: false });
      try { await uring.open("../outside"); } catch (e) { console.log(e.message); }
    `;
    const out = await runDeno(code, [`--allow-read=${dir.path}/in`, "--allow-ffi", "--allow-env"], {
      cwd: `${dir.path}/in`,
    });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(
      out.stdout.trim(),
      `open '../outside': Requires read access to "../outside", run again with the --allow-read flag`,
    );
  },
});

Deno.test({
  name: "copy permissions: read on the source and write on the destination are enough, as for Deno.copyFile",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    const d = dir.path;
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    Deno.mkdirSync(`${d}/dst`);
    Deno.writeTextFileSync(`${d}/src/a`, "a".repeat(100));
    Deno.writeTextFileSync(`${d}/src/sub/b`, "b".repeat(3 << 20)); // more than one block
    const code = `
      import { copyFile, copyTree, Uring } from ${JSON.stringify(MOD_URL)};
      const results = {};
      ${ATTEMPT_JS}
      const d = ${JSON.stringify(d)};
      results["Deno.copyFile"] = await Deno.copyFile(d + "/src/a", d + "/dst/deno-a").then(() => "ok", (e) => e.name);
      await attempt("copyFile", () => copyFile(d + "/src/a", d + "/dst/a"));
      await attempt("copyFile onto it", () => copyFile(d + "/src/a", d + "/dst/a"));
      await attempt("copyFile onto it, overwrite", () => copyFile(d + "/src/a", d + "/dst/a", { overwrite: true }));
      await attempt("copyTree", () => copyTree(d + "/src", d + "/dst/tree"));
      await attempt("copyTree into it again, overwrite", () => copyTree(d + "/src", d + "/dst/tree", { overwrite: true }));
      await using uring = new Uring({ sqpoll: false });
      await attempt("Uring.statx of the destination", () => uring.statx(d + "/dst/a"));
      console.log(JSON.stringify(results));
    `;
    const out = await childResults(code, [
      `--allow-read=${d}/src`,
      `--allow-write=${d}/dst`,
      "--allow-ffi",
      "--allow-env",
    ]);
    assert.deepEqual(classesOf(out), {
      "Deno.copyFile": "ok",
      copyFile: "ok",
      "copyFile onto it": "AlreadyExists",
      "copyFile onto it, overwrite": "ok",
      copyTree: "ok",
      "copyTree into it again, overwrite": "ok",
      "Uring.statx of the destination": "NotCapable", // the public API still asks read permission
    });
    assert.equal(Deno.readTextFileSync(`${d}/dst/a`), "a".repeat(100));
    assert.equal(Deno.readTextFileSync(`${d}/dst/tree/sub/b`), "b".repeat(3 << 20));

    // Write permission for the destination file alone: a new file is written under its own name
    // (no temporary file next to it); replacing one needs the temporary file, so it is refused.
    const only = `${d}/dst/only.bin`;
    const fileScoped = `
      import { copyFile } from ${JSON.stringify(MOD_URL)};
      const results = {};
      ${ATTEMPT_JS}
      await attempt("copyFile to a new file", () => copyFile(${JSON.stringify(`${d}/src/sub/b`)}, ${
      JSON.stringify(only)
    }));
      await attempt("copyFile over it", () => copyFile(${JSON.stringify(`${d}/src/a`)}, ${
      JSON.stringify(only)
    }, { overwrite: true }));
      const message = async (fn) => { try { await fn(); return "ok"; } catch (e) { return e.message; } };
      const why = {
        over: await message(() => copyFile(${JSON.stringify(`${d}/src/a`)}, ${
      JSON.stringify(only)
    }, { overwrite: true })),
        elsewhere: await message(() => copyFile(${JSON.stringify(`${d}/src/a`)}, ${
      JSON.stringify(`${d}/dst/other.bin`)
    })),
      };
      console.log(JSON.stringify({ results, why }));
    `;
    const { results: scoped, why } = await childResults(fileScoped, [
      `--allow-read=${d}/src`,
      `--allow-write=${only}`,
      "--allow-ffi",
      "--allow-env",
    ]) as unknown as { results: Record<string, string>; why: Record<string, string> };
    // The refusals name what the user can grant: the directory, or the destination itself (not
    // the random name of a temporary file next to it).
    assert.match(why.over, /replacing '.*\/dst\/only\.bin' needs write access to its directory '.*\/dst'/);
    assert.match(why.elsewhere, /Requires write access to ".*\/dst\/other\.bin"/);
    assert.doesNotMatch(why.elsewhere, /uring-tmp/);
    assert.deepEqual(classesOf(scoped), {
      "copyFile to a new file": "ok",
      "copyFile over it": "NotCapable",
    });
    assert.equal(Deno.readTextFileSync(only), "b".repeat(3 << 20));
    assert.deepEqual(
      [...Deno.readDirSync(`${d}/dst`)].map((e) => e.name).filter((n) => n.includes("uring-")),
      [],
    );
  },
});

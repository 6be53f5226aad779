/**
 * `--allow-read`/`--allow-write` with a `--deny-*` list: the denied paths stay out of reach of
 * `Uring` even though read or write access is otherwise granted to everything (the permission
 * check's shortcut for "everything granted" must not cover a partial grant).
 */

import assert from "node:assert/strict";
import { skipKernel, tempDir } from "./_support.ts";
import { ATTEMPT_JS, childResults, MOD_URL } from "./uring_support.ts";

Deno.test({
  name: "Uring permissions: --allow-read/--allow-write with --deny-read/--deny-write on a folder",
  ignore: skipKernel(),
  async fn() {
    using denied = tempDir();
    using open = tempDir();
    const secret = `${denied.path}/secret.txt`;
    const plain = `${open.path}/plain.txt`;
    Deno.writeTextFileSync(secret, "s");
    Deno.writeTextFileSync(plain, "p");
    const code = `
      import { Uring } from ${JSON.stringify(MOD_URL)};
      const uring = new Uring({ sqpoll: false });
      const results = {};
      ${ATTEMPT_JS}
      const secret = ${JSON.stringify(secret)};
      const plain = ${JSON.stringify(plain)};
      await attempt("statx plain", () => uring.statx(plain));
      await attempt("statx secret", () => uring.statx(secret));
      await attempt("open secret", () => uring.open(secret));
      await attempt("mkdir plain.d", () => uring.mkdir(plain + ".d"));
      await attempt("mkdir secret.d", () => uring.mkdir(secret + ".d"));
      // An unscoped grant with --deny-* lists is what Deno's symlink asks for (it refused); the
      // link itself must not go where writing is denied.
      await attempt("symlink plain.l", () => uring.symlink(secret, plain + ".l"));
      await attempt("symlink secret.l", () => uring.symlink(plain, secret + ".l"));
      await uring.close();
      console.log(JSON.stringify(results));
    `;
    const out = await childResults(code, [
      "--allow-read",
      `--deny-read=${denied.path}`,
      "--allow-write",
      `--deny-write=${denied.path}`,
      "--allow-ffi",
      "--allow-env",
    ]);
    assert.deepEqual(out, {
      "statx plain": "ok",
      "statx secret": "NotCapable",
      "open secret": "NotCapable",
      "mkdir plain.d": "ok",
      "mkdir secret.d": "NotCapable",
      "symlink plain.l": "ok",
      "symlink secret.l": "NotCapable",
    });
    assert.equal(Deno.readLinkSync(`${plain}.l`), secret);
    assert.throws(() => Deno.lstatSync(`${secret}.l`), Deno.errors.NotFound);
  },
});

Deno.test({
  name: "copyFile: write denied on the destination alone is refused before any byte is copied",
  ignore: skipKernel(),
  async fn() {
    // The refusal came from the rename at the end, after the whole file had been copied to the
    // temporary name (a probe).
    using dir = tempDir();
    const src = `${dir.path}/src`, dst = `${dir.path}/dst`;
    Deno.writeFileSync(src, new Uint8Array(4 << 20).fill(1));
    const code = `
      import { copyFile } from ${JSON.stringify(MOD_URL)};
      let bytes = 0;
      let outcome = "copied";
      try {
        await copyFile(${JSON.stringify(src)}, ${
      JSON.stringify(dst)
    }, { onProgress: (p) => { bytes = Math.max(bytes, p.bytes); } });
      } catch (e) {
        outcome = e.constructor.name + ": " + e.message;
      }
      console.log(JSON.stringify({ outcome, bytes, left: [...Deno.readDirSync(${
      JSON.stringify(dir.path)
    })].map((e) => e.name).sort() }));
    `;
    const out = await childResults(code, [
      "--allow-read",
      `--allow-write=${dir.path}`,
      `--deny-write=${dst}`,
      "--allow-ffi",
      "--allow-env",
    ]);
    assert.match(out.outcome as string, /^NotCapable: .*Requires write access to "[^"]*\/dst"/);
    assert.equal(out.bytes, 0, "no byte copied");
    assert.deepEqual(out.left, ["src"], "no temporary file left");
  },
});

Deno.test({
  name:
    "copyFile: a refused path that reads '(os error N)' is a permission refusal, its message as given (both engines)",
  ignore: skipKernel(),
  async fn() {
    // Deno's NotCapable has no `code`; the errno read from Deno's plain errors' messages was read
    // from the path in it: "does not exist" (ENOENT) for "d (os error 2)/f", and for "(os error
    // 24)" an EMFILE that made the copy wait for every other copy of the process, then retry.
    using dir = tempDir();
    using out = tempDir();
    for (const name of ["d (os error 2)", "e (os error 24)"]) {
      Deno.mkdirSync(`${dir.path}/${name}`);
      Deno.writeTextFileSync(`${dir.path}/${name}/f`, "x");
    }
    const code = `
      import { copyFile } from ${JSON.stringify(MOD_URL)};
      const results = {};
      for (const engine of ["io_uring", "fallback"]) {
        if (engine === "fallback") Deno.env.set("URING_FORCE_UNAVAILABLE", "1");
        for (const name of ["d (os error 2)", "e (os error 24)"]) {
          const src = ${JSON.stringify(dir.path)} + "/" + name + "/f";
          try {
            await copyFile(src, ${JSON.stringify(out.path)} + "/" + name[0]);
            results[engine + " " + name] = "ok";
          } catch (e) {
            results[engine + " " + name] = e.name + " " + (e.code ?? "-") + " " + e.message.includes(name + "/f");
          }
        }
      }
      console.log(JSON.stringify(results));
    `;
    const repo = new URL("..", import.meta.url).pathname;
    const out2 = await childResults(code, [
      `--allow-read=${repo},${out.path}`,
      `--allow-write=${out.path}`,
      "--allow-ffi",
      "--allow-env",
    ]);
    assert.deepEqual(out2, {
      "io_uring d (os error 2)": "NotCapable - true",
      "io_uring e (os error 24)": "NotCapable - true",
      "fallback d (os error 2)": "NotCapable - true",
      "fallback e (os error 24)": "NotCapable - true",
    });
  },
});

Deno.test({
  name:
    "--allow-ffi scoped to the helper's path: a ring is refused up front, saying the grant must cover all of FFI",
  ignore: skipKernel(),
  async fn() {
    // Before, the helper loaded and io_uring_setup ran, then mapping the rings failed with Deno's
    // bare "Requires ffi access" from inside the set-up.
    const code = `
      import { IoUring } from ${JSON.stringify(MOD_URL)};
      const results = {};
      for (const backend of ["helper", "libc"]) {
        try {
          new IoUring(4, { sqpoll: false, backend }).close();
          results[backend] = "ok";
        } catch (e) {
          results[backend] = e.name + ": " + e.message;
        }
      }
      console.log(JSON.stringify(results));
    `;
    const helper = new URL("../ffi/build/liburing_helper.so", import.meta.url).pathname;
    const out = await childResults(code, [
      `--allow-ffi=${helper}`,
      "--allow-read",
      "--allow-env",
      "--no-prompt",
    ]);
    const refusal =
      "NotCapable: uring needs --allow-ffi for all of FFI: Deno's pointer functions, which the " +
      "rings are read and written through, refuse a grant scoped to paths (--allow-ffi=<path>)";
    assert.deepEqual(out, { helper: refusal, libc: refusal }); // (libc: asked before its dlopen)
    // Granted whole, the same code makes its rings.
    assert.deepEqual(await childResults(code, ["--allow-ffi", "--allow-read", "--allow-env"]), {
      helper: "ok",
      libc: "ok",
    });
  },
});

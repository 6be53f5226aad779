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
    });
  },
});

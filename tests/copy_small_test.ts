import assert from "node:assert/strict";
import { Uring } from "../mod.ts";
import { SmallFileChains } from "../src/copy_small.ts";
import type { ChainResult } from "../src/chain.ts";
import { getSys } from "../src/sys.ts";
import { skipKernel, tempDir } from "./_support.ts";
import { divertFirstChain } from "./copy_support.ts";

const EBADF = 9;
const EINVAL = 22;

function bytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

/**
 * Runs `fn` with one-block chains on a fresh Uring (room for the lanes' direct descriptors) and a
 * temporary directory, closing both after; skips with a line when the kernel lacks them (5.17).
 * `beforeChains` may hook the Uring before the chains attach to it.
 */
async function withChains(
  fn: (uring: Uring, chains: SmallFileChains, dir: string) => Promise<void>,
  beforeChains?: (uring: Uring) => void,
): Promise<void> {
  const uring = new Uring({ entries: 64, fixedFiles: 16, sqpoll: false });
  using dir = tempDir();
  try {
    if (!SmallFileChains.supported(uring)) {
      console.log("  skipped: the kernel cannot post one CQE per chain (5.17)");
      return;
    }
    beforeChains?.(uring);
    const chains = new SmallFileChains(uring);
    try {
      await fn(uring, chains, dir.path);
    } finally {
      chains.close();
    }
  } finally {
    await uring.close();
  }
}

for (const backend of ["helper", "libc"] as const) {
  Deno.test({
    name: `Sys.pipe makes a pipe and says its capacity [${backend}]`,
    ignore: skipKernel(),
    fn: () => {
      const sys = getSys(backend);
      const fds = new Int32Array([-1, -1]);
      const capacity = sys.pipe(fds);
      assert.ok(capacity >= 4096, `capacity ${capacity}`);
      assert.ok(fds[0] >= 0 && fds[1] >= 0 && fds[0] !== fds[1], `fds ${fds}`);
      assert.equal(sys.close(fds[0]), 0);
      assert.equal(sys.close(fds[1]), 0);
      assert.equal(sys.close(fds[0]), -EBADF, "the read end was open and is closed now");
      // A capacity asked for: rounded up to a power of two of pages (one page at the least).
      for (const [asked, expected] of [[256 * 1024, 256 * 1024], [100_000, 128 * 1024], [1, 4096]]) {
        const got = sys.pipe(fds, asked);
        assert.equal(got, expected, `asked for ${asked}`);
        assert.equal(sys.close(fds[0]), 0);
        assert.equal(sys.close(fds[1]), 0);
      }
    },
  });
}

Deno.test({
  name: "one-block chains: a file that fits the lane's pipe is spliced, a bigger one read and written",
  ignore: skipKernel(),
  fn: () =>
    withChains(async (_uring, chains, dir) => {
      const small = bytes(10_000, 1), big = bytes(200_000, 2);
      Deno.writeFileSync(`${dir}/small`, small);
      Deno.writeFileSync(`${dir}/big`, big);
      const buf = new Uint8Array(big.length);
      const view = buf.subarray(0, small.length);
      assert.equal(await chains.start(`${dir}/small`, `${dir}/small.copy`, 0o600, view), null);
      assert.equal(chains.splicedFiles, 1);
      // 200,000 bytes do not fit a 64 KiB pipe: read + write.
      assert.equal(await chains.start(`${dir}/big`, `${dir}/big.copy`, 0o600, buf), null);
      assert.equal(chains.splicedFiles, 1);
      assert.deepEqual(Deno.readFileSync(`${dir}/small.copy`), small);
      assert.deepEqual(Deno.readFileSync(`${dir}/big.copy`), big);
      assert.equal(Deno.statSync(`${dir}/small.copy`).mode! & 0o777, 0o600);
    }),
});

Deno.test({
  name:
    "one-block chains: startSpliced copies a file that fits the pipe with no buffer, and queues nothing else",
  ignore: skipKernel(),
  fn: () =>
    withChains(async (uring, chains, dir) => {
      const small = bytes(30_000, 7), big = bytes(100_000, 8);
      Deno.writeFileSync(`${dir}/small`, small);
      Deno.writeFileSync(`${dir}/big`, big);
      assert.ok(chains.splices(small.length), "30,000 bytes fit the lanes' 64 KiB pipes");
      assert.ok(!chains.splices(big.length), "100,000 bytes do not");
      assert.equal(await chains.startSpliced(`${dir}/small`, `${dir}/small.copy`, 0o640, small.length), null);
      assert.equal(chains.splicedFiles, 1);
      assert.deepEqual(Deno.readFileSync(`${dir}/small.copy`), small);
      assert.equal(Deno.statSync(`${dir}/small.copy`).mode! & 0o777, 0o640);
      // Too big for the pipe and no buffer to read into: nothing queued, nothing created.
      assert.equal(chains.startSpliced(`${dir}/big`, `${dir}/big.copy`, 0o640, big.length), undefined);
      assert.throws(() => Deno.statSync(`${dir}/big.copy`), Deno.errors.NotFound);
      assert.equal(uring.pending, 0);
      // The lane it would have used is free again: with a buffer the file goes by read + write.
      assert.equal(
        await chains.start(`${dir}/big`, `${dir}/big.copy`, 0o640, new Uint8Array(big.length)),
        null,
      );
      assert.deepEqual(Deno.readFileSync(`${dir}/big.copy`), big);
      assert.equal(chains.splicedFiles, 1);

      // With splicing off, nothing is spliced and startSpliced queues nothing.
      const off = new SmallFileChains(uring, false);
      try {
        assert.ok(!off.splices(1));
        assert.equal(off.startSpliced(`${dir}/small`, `${dir}/small.off`, 0o640, small.length), undefined);
        assert.throws(() => Deno.statSync(`${dir}/small.off`), Deno.errors.NotFound);
      } finally {
        off.close();
      }
    }),
});

Deno.test({
  name: "one-block chains: after a short splice the lane's next file is not fed the bytes left in its pipe",
  ignore: skipKernel(),
  fn: () =>
    withChains(async (uring, chains, dir) => {
      // The source is shorter than the copy expects (it shrank after it was looked at): the first
      // splice moves 1,000 bytes into the pipe and comes up short, and the chain stops there.
      const shrunk = bytes(1_000, 3), next = bytes(3_000, 4);
      Deno.writeFileSync(`${dir}/shrunk`, shrunk);
      Deno.writeFileSync(`${dir}/next`, next);
      const buf = new Uint8Array(4096);
      const failure = await chains.start(
        `${dir}/shrunk`,
        `${dir}/shrunk.copy`,
        0o644,
        buf.subarray(0, 2_000),
      );
      assert.ok(failure != null && typeof failure === "object", "a short splice fails the chain");
      assert.deepEqual(failure.results[2], { ok: true, value: 1_000 });
      for (const i of [3, 4, 5]) {
        const r: ChainResult = failure.results[i];
        const code: string | undefined = r.ok ? undefined : (r.error as { code?: string }).code;
        assert.equal(code, "ECANCELED", `member ${i}: ${JSON.stringify(r)}`);
      }
      // Clean up as the engine does: close the two direct descriptors the chain left open.
      await uring.chain((c) => c.closeDirect(failure.input));
      await uring.chain((c) => c.closeDirect(failure.output));
      failure.done();
      // The same lane (the only free one) copies the next file.
      const view = buf.subarray(0, next.length);
      assert.equal(await chains.start(`${dir}/next`, `${dir}/next.copy`, 0o644, view), null);
      assert.equal(chains.splicedFiles, 1);
      assert.deepEqual(Deno.readFileSync(`${dir}/next.copy`), next);
    }),
});

Deno.test({
  name: "one-block chains: a splice that fails with EINVAL (no splice support) turns splicing off",
  ignore: skipKernel(),
  fn: () =>
    withChains(
      async (_uring, chains, dir) => {
        const first = bytes(5_000, 5), second = bytes(6_000, 6);
        Deno.writeFileSync(`${dir}/first`, first);
        Deno.writeFileSync(`${dir}/second`, second);
        const buf = new Uint8Array(8192);
        const failure = await chains.start(
          `${dir}/first`,
          `${dir}/first.copy`,
          0o644,
          buf.subarray(0, 5_000),
        );
        assert.ok(failure != null && typeof failure === "object", "the rewritten CQE fails the chain");
        const splice = failure.results[2];
        const error = splice.ok ? undefined : splice.error as { syscall?: string; code?: string };
        assert.deepEqual([error?.syscall, error?.code], ["splice", "EINVAL"]);
        failure.done(); // the chain really ran to its end: nothing is left open
        const view = buf.subarray(0, second.length);
        assert.equal(await chains.start(`${dir}/second`, `${dir}/second.copy`, 0o644, view), null);
        assert.equal(chains.splicedFiles, 0, "the next file was read and written, not spliced");
        assert.deepEqual(Deno.readFileSync(`${dir}/second.copy`), second);
      },
      (uring) => {
        // The first chain's CQE is rewritten into "member 2 (the first splice) failed with
        // EINVAL", as a file system without splice says.
        divertFirstChain(uring, (first, client) => client.complete(first + 2, -EINVAL));
      },
    ),
});

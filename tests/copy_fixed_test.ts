/**
 * The buffered copy's fixed buffers (every copy here passes `splice: false`: by default the data
 * of a dense file moves by splice, through no buffer): with a caller's `Uring` that has no buffer pool, copyFile
 * and copyTree register one for the copy (reads and writes go as READ_FIXED/WRITE_FIXED) and
 * unregister it at the end, also after a failure or an abort; a caller's own pool is left alone
 * (plain buffers); more than 64 MiB of buffers stays plain, and so does a copyFile of a file
 * smaller than 16 times the pool (registering would cost more than it saves). Copies are
 * byte-identical throughout.
 */

import assert from "node:assert/strict";
import { copyFile, copyTree, O_CREAT, O_WRONLY, Uring } from "../mod.ts";
import { ringTest, tempDir } from "./_support.ts";
import { uringOptions } from "./uring_support.ts";
import { assertSameTree, permOf, randomFile, sha256File, tempLeftovers } from "./copy_support.ts";

const BS = 64 * 1024;
/** The copies' options: a pool of 2 × BS. */
const QD = 2;
/** A file big enough for copyFile to register that pool (16 times its memory, plus one byte). */
const BIG = 16 * QD * BS + 1;

async function assertSameFile(src: string, dst: string, what: string): Promise<void> {
  assert.equal(await sha256File(dst), await sha256File(src), `${what}: content`);
  assert.equal(permOf(dst), permOf(src), `${what}: mode`);
}

ringTest(
  "copyFile: the buffered copy reads and writes through fixed buffers registered for it",
  async (config) => {
    using dir = tempDir();
    const d = dir.path;
    await using uring = new Uring(uringOptions(config, { entries: 64 }));
    await randomFile(`${d}/src`, BIG, 0o640);
    assert.equal(uring.bufferPool, null);
    let refusal = "";
    const result = await copyFile(`${d}/src`, `${d}/dst`, {
      uring,
      splice: false,
      blockSize: BS,
      queueDepth: QD,
      onProgress() {
        // While the copy runs its pool is registered: another is refused, saying whose it is.
        if (refusal !== "" || uring.bufferPool === null) return;
        try {
          uring.registerBufferPool({ count: 1, size: 4096 });
        } catch (e) {
          refusal = (e as Error).message;
        }
      },
    });
    assert.match(refusal, /already has a buffer pool: a copy running on it registered it/);
    assert.equal(result.bytes, BIG);
    // 33 blocks: at least one read and one write each through a registered buffer.
    assert.ok(uring.stats.fixedBuffers >= 66, `fixed-buffer SQEs: ${uring.stats.fixedBuffers}`);
    assert.equal(uring.bufferPool, null, "the copy's pool is unregistered when it ends");
    await assertSameFile(`${d}/src`, `${d}/dst`, "fixed buffers");

    // A caller's pool stays registered, untouched and usable; the copy uses plain buffers.
    const mine = uring.registerBufferPool({ count: 2, size: 4096 });
    const before = uring.stats.fixedBuffers;
    await copyFile(`${d}/src`, `${d}/dst2`, { uring, splice: false, blockSize: BS, queueDepth: QD });
    assert.equal(uring.stats.fixedBuffers, before, "no fixed-buffer SQE with the caller's pool there");
    assert.equal(uring.bufferPool, mine);
    assert.equal(mine.closed, false);
    await assertSameFile(`${d}/src`, `${d}/dst2`, "plain buffers");
    // ... and it still works as fixed buffers for the caller.
    const buf = mine.acquire()!;
    buf.bytes.fill(7);
    const fd = await uring.openFd(`${d}/mine`, O_WRONLY | O_CREAT, 0o600);
    try {
      assert.equal(await uring.write(fd, buf.bytes, 0), 4096);
    } finally {
      await uring.close(fd);
    }
    assert.equal(uring.stats.fixedBuffers, before + 1);
    mine.release(buf);
    mine.close();
    assert.deepEqual(tempLeftovers(d), []);
  },
);

ringTest("copyFile: a file smaller than 16 times the pool is copied with plain buffers", async (config) => {
  using dir = tempDir();
  const d = dir.path;
  await using uring = new Uring(uringOptions(config, { entries: 64 }));
  await randomFile(`${d}/src`, BIG - 2, 0o644);
  await copyFile(`${d}/src`, `${d}/dst`, { uring, splice: false, blockSize: BS, queueDepth: QD });
  assert.equal(uring.stats.fixedBuffers, 0);
  assert.equal(uring.bufferPool, null);
  await assertSameFile(`${d}/src`, `${d}/dst`, "plain buffers");
});

ringTest(
  "copyTree: regular files go through fixed buffers; the pool goes away at the end",
  async (config) => {
    using dir = tempDir();
    const d = dir.path;
    await using uring = new Uring(uringOptions(config, { entries: 64 }));
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    await randomFile(`${d}/src/a`, 2 * BS + 5, 0o644);
    await randomFile(`${d}/src/sub/b`, 100, 0o600);
    await randomFile(`${d}/src/sub/empty`, 0, 0o644);
    Deno.symlinkSync("a", `${d}/src/link`);
    const result = await copyTree(`${d}/src`, `${d}/dst`, {
      uring,
      splice: false,
      blockSize: BS,
      queueDepth: 4,
    });
    assert.equal(result.files, 4);
    // 3 blocks of a, 1 of sub/b: a read and a write each.
    assert.ok(uring.stats.fixedBuffers >= 8, `fixed-buffer SQEs: ${uring.stats.fixedBuffers}`);
    assert.equal(uring.bufferPool, null);
    await assertSameTree(`${d}/src`, `${d}/dst`);
  },
);

ringTest(
  "copyTree: with room for six operations, a one-block file is one chain on direct descriptors",
  async (config) => {
    using dir = tempDir();
    const d = dir.path;
    await using uring = new Uring(uringOptions(config, { entries: 64 }));
    Deno.mkdirSync(`${d}/src/sub`, { recursive: true });
    await randomFile(`${d}/src/a`, 2 * BS + 5, 0o644);
    await randomFile(`${d}/src/sub/b`, BS, 0o600);
    await randomFile(`${d}/src/sub/c`, 100, 0o640);
    const result = await copyTree(`${d}/src`, `${d}/dst`, {
      uring,
      splice: false,
      blockSize: BS,
      queueDepth: 6,
    });
    assert.equal(result.files, 3);
    // b and c: a read and a write each on the file table; a: 3 blocks through the buffer pool.
    assert.equal(uring.stats.fixedFiles, 4);
    assert.ok(uring.stats.fixedBuffers >= 6, `fixed-buffer SQEs: ${uring.stats.fixedBuffers}`);
    assert.equal(Deno.statSync(`${d}/dst/sub/b`).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(`${d}/dst/sub/c`).mode! & 0o777, 0o640);
    await assertSameTree(`${d}/src`, `${d}/dst`);
  },
);

ringTest("copyFile: a failed or aborted buffered copy unregisters its pool too", async (config) => {
  using dir = tempDir();
  const d = dir.path;
  await using uring = new Uring(uringOptions(config, { entries: 64 }));
  await randomFile(`${d}/src`, BIG, 0o644);
  // Missing destination directory: fails before any data moves.
  await assert.rejects(
    copyFile(`${d}/src`, `${d}/nope/dst`, { uring, splice: false, blockSize: BS, queueDepth: QD }),
  );
  assert.equal(uring.bufferPool, null);
  // Aborted after the first block: data was moving through the pool.
  const stop = new AbortController();
  await assert.rejects(
    copyFile(`${d}/src`, `${d}/dst`, {
      uring,
      splice: false,
      blockSize: BS,
      queueDepth: QD,
      signal: stop.signal,
      onProgress: (p) => {
        if (p.bytes > 0) stop.abort();
      },
    }),
    (e: Error) => e.name === "AbortError",
  );
  assert.ok(uring.stats.fixedBuffers > 0, "the aborted copy used fixed buffers");
  assert.equal(uring.bufferPool, null, "the aborted copy's pool is unregistered");
  assert.deepEqual(tempLeftovers(d), []);
  // The ring is fine for the next copy, which registers its own pool again.
  const before = uring.stats.fixedBuffers;
  await copyFile(`${d}/src`, `${d}/dst`, { uring, splice: false, blockSize: BS, queueDepth: QD });
  assert.ok(uring.stats.fixedBuffers > before);
  await assertSameFile(`${d}/src`, `${d}/dst`, "after an abort");
});

ringTest("copyTree: more than 64 MiB of buffers stays plain (nothing pinned)", async (config) => {
  using dir = tempDir();
  const d = dir.path;
  await using uring = new Uring(uringOptions(config, { entries: 64 }));
  Deno.mkdirSync(`${d}/src`);
  const MiB = 1024 * 1024;
  await randomFile(`${d}/src/f`, 33 * MiB + 3, 0o644);
  // Blocks in flight are held to 32 MiB of buffers but get at least two: 2 × 33 MiB = 66 MiB.
  await copyTree(`${d}/src`, `${d}/dst`, { uring, splice: false, blockSize: 33 * MiB, queueDepth: 17 });
  assert.equal(uring.stats.fixedBuffers, 0);
  assert.equal(uring.bufferPool, null);
  await assertSameTree(`${d}/src`, `${d}/dst`);
});

ringTest("copyTree: with no room in the file table, one-block files take the block path", async (config) => {
  using dir = tempDir();
  const d = dir.path;
  // One index: a chain needs two, so every file goes block by block.
  await using uring = new Uring(uringOptions(config, { entries: 64, fixedFiles: 1 }));
  Deno.mkdirSync(`${d}/src`);
  for (let i = 0; i < 5; i++) await randomFile(`${d}/src/f${i}`, 1000 + i, 0o644);
  const result = await copyTree(`${d}/src`, `${d}/dst`, {
    uring,
    splice: false,
    blockSize: BS,
    queueDepth: 12,
  });
  assert.equal(result.files, 5);
  assert.equal(uring.stats.fixedFiles, 0, "no chain ran");
  const only = uring.reserveFileIndex();
  assert.equal(only, 0, "the index was given back");
  uring.releaseFileIndex(only);
  await assertSameTree(`${d}/src`, `${d}/dst`);
});

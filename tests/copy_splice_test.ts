/**
 * The block path's splice lanes (src/copy_splice.ts): a dense file bigger than one block moves
 * source → pipe → destination with no buffer, within the copy's in-flight budget; a source that
 * shrinks is cut where it ends; a file system that refuses splice (`EINVAL`) gets the buffered
 * copy for the rest; aborts and stops leave no file and no pipe behind; the pool keeps at most
 * four pipes and the pipe capacity asked for.
 */

import assert from "node:assert/strict";
import { copyFile, copyTree, OsError, Uring } from "../mod.ts";
import { BufferPool } from "../src/copy_budget.ts";
import { MAX_PIPE_SIZE, SPLICE_PIPES, SPLICE_RUN, SplicePipes } from "../src/copy_splice.ts";
import { getSys } from "../src/sys.ts";
import { openPipe } from "../src/pipe.ts";
import { type Lane, LaneShelf, makeLane, reserveFilePair } from "../src/copy_small.ts";
import { sharedCopyRing } from "../src/copy_shared_ring.ts";
import { ringTest, skipKernel, tempDir } from "./_support.ts";
import { uringOptions } from "./uring_support.ts";
import {
  openUnder,
  randomFile,
  sha256File,
  sharedRingClosed,
  tempLeftovers,
  trackPipes,
} from "./copy_support.ts";

const MiB = 1024 * 1024;

/**
 * Counts the Uring's chains (the splice lanes' unit of work), their members and its plain reads
 * and writes.
 */
function spy(uring: Uring): { chains: number; members: number; reads: number; writes: number } {
  const seen = { chains: 0, members: 0, reads: 0, writes: 0 };
  const { chain, read, write } = uring;
  uring.chain = (build, options) => {
    seen.chains++;
    seen.members += chainMembers(build);
    return chain.call(uring, build, options);
  };
  uring.read = (...args: Parameters<typeof read>) => {
    seen.reads++;
    return read.apply(uring, args);
  };
  uring.write = (...args: Parameters<typeof write>) => {
    seen.writes++;
    return write.apply(uring, args);
  };
  return seen;
}

/** How many members `build` adds to a chain (run against a builder that only counts). */
function chainMembers(build: Parameters<Uring["chain"]>[0]): number {
  let members = 0;
  const counter: Record<string, unknown> = new Proxy({}, {
    get: () => () => {
      members++;
      return counter;
    },
  });
  build(counter as unknown as Parameters<typeof build>[0]);
  return members;
}

ringTest(
  "copySplice: a dense file of many blocks moves by splice chains, no buffer, no pipe left open",
  async (config) => {
    using dir = tempDir();
    const size = 9 * MiB + 4321;
    const hash = await randomFile(`${dir.path}/src`, size, 0o640);
    await using uring = new Uring(uringOptions(config));
    using pipes = trackPipes(uring.ring.backend);
    const seen = spy(uring);
    const result = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, { uring });
    assert.equal(result.bytes, size);
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
    assert.equal(Deno.statSync(`${dir.path}/dst`).mode! & 0o777, 0o640);
    // 1 MiB pipes (the block size): ten chunks over four lanes, each lane's run of up to three
    // chunks as one chain (a short splice adds a chain for the rest of its run).
    assert.ok(seen.chains >= 4 && seen.chains <= 6, `${seen.chains} chains`);
    assert.ok(seen.members >= 20, `${seen.members} members: an into and an out splice per chunk`);
    assert.deepEqual([seen.reads, seen.writes], [0, 0], "no data went through a buffer");
    assert.deepEqual(pipes.open(), [], "the copy's pipes are closed when it ends");
    assert.deepEqual(tempLeftovers(dir.path), []);

    // splice: false reads and writes through buffers instead.
    seen.chains = 0;
    await copyFile(`${dir.path}/src`, `${dir.path}/dst2`, { uring, splice: false });
    assert.equal(await sha256File(`${dir.path}/dst2`), hash);
    assert.equal(seen.chains, 0);
    assert.ok(seen.reads >= 10 && seen.writes >= 10, `reads ${seen.reads}, writes ${seen.writes}`);
  },
);

Deno.test({
  name: "copySplice: the lanes keep at most queueDepth operations in flight, and overlap when allowed",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const hash = await randomFile(`${dir.path}/src`, 8 * MiB);
    await using uring = new Uring({ sqpoll: false, entries: 64 });
    // A chain holds one operation per member (a splice into the pipe and one out of it per chunk).
    let outstanding = 0;
    let most = 0;
    const { chain, splice } = uring;
    const track = <T>(ops: number, p: Promise<T>): Promise<T> => {
      outstanding += ops;
      most = Math.max(most, outstanding);
      return p.finally(() => outstanding -= ops);
    };
    uring.chain = (build, options) => track(chainMembers(build), chain.call(uring, build, options));
    uring.splice = (...args: Parameters<typeof splice>) => track(1, splice.apply(uring, args));
    for (const queueDepth of [2, 3, 8, 64]) {
      most = 0;
      const dst = `${dir.path}/dst-${queueDepth}`;
      await copyFile(`${dir.path}/src`, dst, { uring, queueDepth, blockSize: 256 * 1024 });
      assert.equal(await sha256File(dst), hash);
      assert.ok(most <= queueDepth, `queueDepth ${queueDepth}: saw ${most} operations at once`);
      if (queueDepth >= 8) assert.ok(most >= 4, `queueDepth ${queueDepth} overlaps lanes (saw ${most})`);
      assert.ok(
        most <= 2 * SPLICE_RUN * SPLICE_PIPES,
        `at most ${SPLICE_PIPES} lanes (saw ${most} operations)`,
      );
    }
  },
});

Deno.test({
  name: "copySplice: a source that shrank before its chunks were spliced is copied to its new end",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const src = `${dir.path}/src`;
    await randomFile(src, 6 * MiB, 0o644);
    await using uring = new Uring({ sqpoll: false });
    // Right before the first chain is queued, cut the source to 1.5 MiB: the second lane's
    // splice comes back short (half a chunk), and every later chunk finds the end of the file.
    const { chain } = uring;
    let cut = false;
    uring.chain = (...args: Parameters<typeof chain>) => {
      if (!cut) {
        cut = true;
        Deno.truncateSync(src, 1.5 * MiB);
      }
      return chain.apply(uring, args);
    };
    const result = await copyFile(src, `${dir.path}/dst`, { uring });
    assert.ok(cut);
    assert.equal(result.bytes, 1.5 * MiB);
    assert.equal(Deno.statSync(`${dir.path}/dst`).size, 1.5 * MiB);
    assert.equal(await sha256File(`${dir.path}/dst`), await sha256File(src));
  },
});

Deno.test({
  name:
    "copySplice: a short splice in the middle of a lane's chain: the rest is cancelled and the run resumed",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    const size = 7 * MiB;
    const hash = await randomFile(`${dir.path}/src`, size);
    await using uring = new Uring({ sqpoll: false });
    using pipes = trackPipes(uring.ring.backend);
    // Seven 1 MiB chunks over four lanes: runs of two chunks per chain. The first chain's second
    // splice into the pipe asks for half a chunk, so the kernel moves half: the splice out of the
    // pipe then comes back short too, which fails the link, and the chain's later members are
    // cancelled. The lane must go on from the middle of that chunk.
    const { chain } = uring;
    let splices = 0;
    let chains = 0;
    uring.chain = (build, options) => {
      chains++;
      return chain.call(uring, (c) => {
        const shortening: typeof c = new Proxy(c, {
          get(target, prop) {
            const member = Reflect.get(target, prop, target);
            if (typeof member !== "function") return member;
            return (...args: unknown[]) => {
              if (prop === "splice" && ++splices === 3) args[4] = (args[4] as number) / 2;
              member.apply(target, args);
              return shortening;
            };
          },
        });
        build(shortening);
      }, options);
    };
    const result = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, { uring });
    assert.ok(splices >= 3, `${splices} splices`);
    assert.equal(result.bytes, size);
    assert.equal(Deno.statSync(`${dir.path}/dst`).size, size);
    assert.equal(await sha256File(`${dir.path}/dst`), hash);
    assert.equal(chains, 5, "four runs, and one more chain for the rest of the shortened run");
    assert.deepEqual(pipes.open(), [], "the pipes are closed when the copy ends");
  },
});

Deno.test({
  name: "copySplice: splices refused with EINVAL turn splicing off; every file is read and written instead",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/src`);
    const a = await randomFile(`${dir.path}/src/a`, 3 * MiB + 1);
    const b = await randomFile(`${dir.path}/src/b`, 2 * MiB + 7);
    await using uring = new Uring({ sqpoll: false });
    const seen = spy(uring);
    // As a file system without splice answers: each chain's first member fails with EINVAL
    // (nothing moved), the second is cancelled. The chains are not run.
    uring.chain = () => {
      seen.chains++;
      const einval = new OsError("splice: Invalid argument (EINVAL)", "EINVAL", 22, "splice");
      const canceled = new OsError("splice: Operation canceled (ECANCELED)", "ECANCELED", 125, "splice");
      return Promise.resolve([{ ok: false, error: einval }, { ok: false, error: canceled }]);
    };
    const result = await copyTree(`${dir.path}/src`, `${dir.path}/dst`, { uring, queueDepth: 16 });
    assert.equal(result.files, 2);
    assert.equal(await sha256File(`${dir.path}/dst/a`), a);
    assert.equal(await sha256File(`${dir.path}/dst/b`), b);
    // Only lanes already started when the first refusal came back can have tried (the pool has
    // SPLICE_PIPES pipes); a file's own next chunks never do.
    assert.ok(seen.chains >= 1 && seen.chains <= SPLICE_PIPES, `${seen.chains} chains`);
    assert.ok(seen.reads >= 7 && seen.writes >= 7, `buffered: ${seen.reads} reads, ${seen.writes} writes`);
    assert.deepEqual(tempLeftovers(`${dir.path}/dst`), []);
  },
});

Deno.test({
  name: "copySplice: splices interrupted by a stop of the process (EINTR) are done again; the copy is whole",
  ignore: skipKernel(),
  fn: async () => {
    // Ctrl-Z then fg (SIGSTOP/SIGCONT, or a cgroup freeze) interrupts the kernel's workers blocked
    // on a pipe: their splices fail with EINTR having moved nothing. The copy failed ("writing the
    // destination failed: splice: Interrupted system call", a probe: 10 of 10 stopped 1 GiB
    // copies). Here the interruptions are played: of every three chains, one is interrupted at
    // its first member (nothing run), one at its second (the first's bytes wait in the pipe), and
    // the first single splice that drains a pipe is interrupted too.
    using dir = tempDir();
    const src = `${dir.path}/src`;
    const sum = await randomFile(src, 7 * MiB + 333);
    await using uring = new Uring({ sqpoll: false });
    const eintr = () => new OsError("splice: Interrupted system call (EINTR)", "EINTR", 4, "splice");
    const canceled = new OsError("splice: Operation canceled (ECANCELED)", "ECANCELED", 125, "splice");
    const failed = (error: Error) => ({ ok: false as const, error });
    const { chain, splice } = uring;
    let chains = 0, interrupted = 0, singles = 0;
    uring.chain = (build, options) => {
      const members = chainMembers(build);
      const kind = chains++ % 3;
      if (kind === 0) {
        interrupted++;
        return Promise.resolve([
          failed(eintr()),
          ...Array.from({ length: members - 1 }, () => failed(canceled)),
        ]);
      }
      if (kind === 1) {
        interrupted++;
        // Only the first member runs.
        let first = true;
        const one = (c: Parameters<typeof build>[0]) => {
          const only: Record<string, unknown> = new Proxy({}, {
            get: (_, key) => (...args: unknown[]) => {
              if (key === "splice" && first) {
                first = false;
                (c.splice as (...a: unknown[]) => unknown)(...args);
              }
              return only;
            },
          });
          build(only as unknown as typeof c);
        };
        return chain.call(uring, one, options).then((r) => [
          r[0],
          failed(eintr()),
          ...Array.from({ length: members - 2 }, () => failed(canceled)),
        ]);
      }
      return chain.call(uring, build, options);
    };
    uring.splice = (...args: Parameters<typeof splice>) =>
      singles++ === 0 ? Promise.reject(eintr()) : splice.apply(uring, args);
    const result = await copyFile(src, `${dir.path}/dst`, { uring, queueDepth: 8, blockSize: MiB });
    assert.equal(result.bytes, 7 * MiB + 333);
    assert.equal(await sha256File(`${dir.path}/dst`), sum);
    assert.ok(interrupted >= 2 && singles >= 2, `${interrupted} chains, ${singles} single splices`);
    assert.deepEqual(tempLeftovers(dir.path), []);
  },
});

Deno.test({
  name: "copySplice: an abort or a closed Uring in the middle leaves no file, no descriptor and no pipe",
  ignore: skipKernel(),
  fn: async () => {
    using dir = tempDir();
    await randomFile(`${dir.path}/src`, 16 * MiB);
    for (const how of ["abort", "close"] as const) {
      const uring = new Uring({ sqpoll: false });
      using pipes = trackPipes(uring.ring.backend);
      const stop = new AbortController();
      let closing: Promise<void> | undefined;
      const onProgress = ({ bytes }: { bytes: number }) => {
        if (bytes === 0) return;
        if (how === "abort") stop.abort();
        else closing ??= uring.close();
      };
      const outcome = await copyFile(`${dir.path}/src`, `${dir.path}/dst`, {
        uring,
        signal: stop.signal,
        onProgress,
      }).then(() => null, (e) => e);
      await closing;
      await uring.close();
      assert.ok(outcome instanceof Error, `${how}: ${outcome}`);
      if (how === "abort") assert.equal(outcome.name, "AbortError");
      assert.deepEqual([...Deno.readDirSync(dir.path)].map((e) => e.name), ["src"], how);
      assert.deepEqual(await openUnder(dir.path), [], `${how}: descriptors left open`);
      assert.deepEqual(pipes.open(), [], `${how}: pipes left open`);
    }
  },
});

Deno.test({
  name: "SplicePipes: at most max pipes, asked for the block size up to 1 MiB; retired ones are replaced",
  ignore: skipKernel(),
  fn: () => {
    using pipes = trackPipes(getSys().backend);
    const pool = new SplicePipes(getSys(), 4 * MiB, 3);
    const first = pool.take(5);
    assert.equal(first.length, 3, "no more than max");
    for (const p of first) assert.equal(p.capacity, MAX_PIPE_SIZE, "capped at 1 MiB");
    assert.deepEqual(pool.take(1), [], "all in use");
    pool.give(first[0]);
    pool.retire(first[1]);
    assert.equal(pool.open, 2);
    const again = pool.take(3);
    assert.equal(again.length, 2, "the free one and a new one in place of the retired one");
    assert.ok(again.includes(first[0]), "a free pipe is reused");
    pool.give(again[0]);
    pool.close();
    pool.give(again[1]); // came back after the pool closed: closed at once
    pool.give(first[2]);
    assert.equal(pool.open, 0);
    assert.deepEqual(pipes.open(), [], "every pipe closed");
    const small = new SplicePipes(getSys(), 64 * 1024);
    const [p] = small.take(1);
    assert.equal(p.capacity, 64 * 1024, "the block size when below 1 MiB");
    small.give(p);
    small.close();
  },
});

Deno.test({
  name: "copyTree: one-block files whose chains splice take no buffer; read + write chains take one each",
  ignore: skipKernel(),
  async fn() {
    using dir = tempDir();
    Deno.mkdirSync(`${dir.path}/src`);
    for (let i = 0; i < 40; i++) await randomFile(`${dir.path}/src/f${i}`, 1000 + i * 1000, 0o644);
    // Counts the buffers handed out by every BufferPool (the small-file pool and the block pool).
    const { take, tryTake } = BufferPool.prototype;
    let taken = 0;
    BufferPool.prototype.take = function () {
      taken++;
      return take.call(this);
    };
    BufferPool.prototype.tryTake = function () {
      const buf = tryTake.call(this);
      if (buf !== null) taken++;
      return buf;
    };
    try {
      for (const splice of [true, false]) {
        taken = 0;
        const dst = `${dir.path}/${splice ? "spliced" : "buffered"}`;
        const result = await copyTree(`${dir.path}/src`, dst, { splice });
        assert.equal(result.files, 40);
        for (let i = 0; i < 40; i++) {
          assert.equal(
            await sha256File(`${dst}/f${i}`),
            await sha256File(`${dir.path}/src/f${i}`),
            `f${i}`,
          );
        }
        if (splice) assert.equal(taken, 0, "a spliced one-block chain took a buffer");
        else assert.ok(taken >= 40, `only ${taken} buffers for 40 read + write chains`);
      }
    } finally {
      BufferPool.prototype.take = take;
      BufferPool.prototype.tryTake = tryTake;
    }
  },
});

Deno.test({
  name:
    "LaneShelf: keeps up to max free lanes for the next taker; lets the rest go (indexes back, pipe closed)",
  ignore: skipKernel(),
  fn: async () => {
    await using uring = new Uring({ sqpoll: false, fixedFiles: 8 });
    using pipes = trackPipes(uring.ring.backend);
    const sys = getSys(uring.ring.backend);
    const lane = (): Lane => {
      const [input, output] = reserveFilePair(uring)!;
      return { ...makeLane(0, input, output), pipe: openPipe(sys) };
    };
    const shelf = new LaneShelf(uring, 2);
    assert.equal(shelf.take(), undefined, "none kept yet");
    assert.equal(shelf.pipeCapacity, 0);
    const lanes = [lane(), lane(), lane(), lane()]; // the table's 8 indexes
    assert.equal(reserveFilePair(uring), null, "the table is full");
    for (const l of lanes.slice(0, 3)) shelf.give(l);
    assert.equal(shelf.size, 2, "no more than max");
    assert.equal(pipes.open().length, 6, "the third lane's pipe was closed");
    const pair = reserveFilePair(uring);
    assert.ok(pair !== null, "and its indexes given back");
    uring.releaseFileIndex(pair[0]);
    uring.releaseFileIndex(pair[1]);
    assert.equal(shelf.pipeCapacity, lanes[1].pipe!.capacity);
    assert.equal(shelf.take(), lanes[1], "the last kept comes back first");
    shelf.give(lanes[1]);
    assert.equal(shelf.shedPipes(), 2, "shed closes the kept lanes' pipes");
    assert.equal(shelf.pipeCapacity, 0, "no kept lane has a pipe now");
    assert.equal(shelf.size, 2, "the lanes stay kept");
    shelf.close();
    assert.equal(shelf.size, 0);
    shelf.give(lanes[3]); // given after close: let go at once
    assert.deepEqual(pipes.open(), [], "every pipe closed");
    const all = [
      reserveFilePair(uring),
      reserveFilePair(uring),
      reserveFilePair(uring),
      reserveFilePair(uring),
    ];
    assert.ok(all.every((p) => p !== null), "every index given back");
  },
});

Deno.test({
  name:
    "copyFile on the shared ring: one-block copies take the lanes earlier ones left, let go with the ring",
  ignore: skipKernel(),
  fn: async () => {
    // Each copy made a lane (two file-table indexes, a pipe, memory) and gave it all back: ~20% of
    // 4,000 one-block copies 32 at a time.
    using dir = tempDir();
    for (let i = 0; i < 40; i++) Deno.writeTextFileSync(`${dir.path}/f${i}`, "y".repeat(1000 + i));
    await sharedRingClosed(); // (an earlier test's)
    using pipes = trackPipes(getSys().backend);
    const sys = getSys();
    const pipe = sys.pipe;
    let made = 0;
    sys.pipe = (fds, size) => (made++, pipe.call(sys, fds, size));
    try {
      await copyFile(`${dir.path}/f0`, `${dir.path}/c0`);
      const ring = sharedCopyRing()!;
      const reserve = ring.reserveFileIndex;
      let reserved = 0;
      ring.reserveFileIndex = () => (reserved++, reserve.call(ring));
      try {
        for (let i = 1; i < 20; i++) await copyFile(`${dir.path}/f${i}`, `${dir.path}/c${i}`);
      } finally {
        ring.reserveFileIndex = reserve;
      }
      assert.equal(made, 1, "one pipe for 20 copies one after another");
      assert.equal(reserved, 0, "the first copy's file-table indexes serve the next 19");
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => copyFile(`${dir.path}/f${20 + i}`, `${dir.path}/c${20 + i}`)),
      );
      assert.ok(made <= 20, `${made} pipes for 20 copies at once, besides the one kept`);
      assert.ok(pipes.open().length > 0, "kept while the ring lingers");
    } finally {
      sys.pipe = pipe;
    }
    assert.ok(await sharedRingClosed(), "closed after the last copy");
    assert.deepEqual(pipes.open(), [], "closed with the ring");
    for (let i = 0; i < 40; i++) {
      assert.equal(Deno.readTextFileSync(`${dir.path}/c${i}`), "y".repeat(1000 + i));
    }
  },
});

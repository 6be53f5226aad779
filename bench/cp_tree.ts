/**
 * A tree of 4,000 cached files of 1–64 KiB (40 directories of 100) copied to tmpfs:
 * `deno task cp -r` (Deno's start-up included) against GNU `cp -r` and a Deno process that walks
 * the tree and runs `Deno.copyFile` 32 at a time. A third peer, without a target, does the same
 * io_uring chains as `cp` in C (`bench/peers/tree_copy.c`, liburing): the kernel's share of the
 * copy, so the rest of ours is Deno and JavaScript. Wall clock from spawn to exit; before every
 * run (not timed) the destination is removed and the source read back into the page cache; the
 * copy is checked (file count and bytes) after it. Rows without a target, in rounds of their own,
 * say where the time goes: the CPU time of each copy (user + system of every thread of the
 * process and of the processes it waits for: io-wq workers, Deno's thread pool, `deno task`'s
 * child), and start-up, as a copy of a tree of one file. One more, in rounds of its own: the
 * library's `copyFile` 32 at a time in a script shaped as the `Deno.copyFile` peer
 * (`bench/peers/deno_copy.ts uringTree`).
 * Run: `deno task bench:cp-tree`.
 *
 * @module
 */

import {
  alternate,
  buildPeer,
  checkTreeCopy,
  DATA_DIR,
  have,
  printTable,
  type Row,
  tmpfsDir,
  warm,
} from "./_lib.ts";
import { denoPeer, denoTaskCp, timeCopy } from "./cp.ts";

const DIRS = 40;
const PER_DIR = 100;

/** Files and bytes below `root`, every file read (which also caches it). */
function walk(root: string): { files: number; bytes: number } {
  let files = 0, bytes = 0;
  for (const e of Deno.readDirSync(root)) {
    const p = `${root}/${e.name}`;
    if (e.isDirectory) {
      const sub = walk(p);
      files += sub.files;
      bytes += sub.bytes;
    } else if (e.isFile) {
      files++;
      bytes += Deno.readFileSync(p).length;
    }
  }
  return { files, bytes };
}

/** A tree of one 16 KiB file, created once: copying it costs little beyond start-up. */
function oneFileTree(): { path: string; files: number; bytes: number } {
  const root = `${DATA_DIR}/tree-1`;
  const file = `${root}/f.bin`;
  try {
    if (Deno.statSync(file).size !== 16384) throw new Error("wrong size");
  } catch {
    Deno.mkdirSync(root, { recursive: true });
    Deno.writeFileSync(file, new Uint8Array(16384).fill(0x5a));
  }
  return { path: root, ...walk(root) };
}

/** Creates the source tree once (sizes from a fixed seed) and reads it so it is cached. */
function sourceTree(): { path: string; files: number; bytes: number } {
  const root = `${DATA_DIR}/tree-4000`;
  // (v2: every file its own bytes; before, each was a prefix of one buffer, so a copy that wrote
  // one file's data into another of no greater size could not be told from a right one.)
  const marker = `${DATA_DIR}/tree-4000.v2.complete`;
  try {
    Deno.statSync(marker);
  } catch {
    console.error(`bench: creating ${root} (${DIRS * PER_DIR} files of 1-64 KiB)`);
    for (const old of [root, `${DATA_DIR}/tree-4000.complete`]) {
      try {
        Deno.removeSync(old, { recursive: true });
      } catch { /* absent */ }
    }
    let x = 0x1234567;
    const next = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x >>> 0;
    };
    const words = new Uint32Array(16 * 1024);
    const data = new Uint8Array(words.buffer);
    for (let d = 0; d < DIRS; d++) {
      const dir = `${root}/d${String(d).padStart(2, "0")}`;
      Deno.mkdirSync(dir, { recursive: true });
      for (let f = 0; f < PER_DIR; f++) {
        const size = 1024 + (next() % (63 * 1024 + 1));
        for (let i = 0; i < size >>> 2; i++) words[i] = next(); // the stream runs on: no two files alike
        Deno.writeFileSync(`${dir}/f${String(f).padStart(3, "0")}.bin`, data.subarray(0, size));
      }
    }
    Deno.writeTextFileSync(marker, "");
  }
  return { path: root, ...walk(root) };
}

if (import.meta.main) {
  const src = sourceTree();
  const tmpfs = await tmpfsDir();
  if ("missing" in tmpfs) {
    console.log(`bench:cp-tree skipped: ${tmpfs.missing}`);
    Deno.exit(0);
  }
  const dst = `${tmpfs.path}/uring-bench-tree`;
  // The same names, every file byte for byte (and so the same count and bytes).
  const checker = (tree: { path: string }, to: string) => () => checkTreeCopy(tree.path, to);
  const check = checker(src, dst);
  const time = ([cmd, args]: [string, string[]]) => () => timeCopy(dst, cmd, args, check);
  const cpu = ([cmd, args]: [string, string[]]) => () => timeCopy(dst, cmd, args, check, "cpu");
  const gnuCp = await have("cp");
  const chains = await buildPeer("tree_copy");
  const m = await alternate(
    time(denoTaskCp(["-r", src.path, dst])),
    [
      gnuCp ? time(["cp", ["-r", src.path, dst]]) : () => null,
      time(denoPeer(["tree", src.path, dst, "32"])),
      "path" in chains ? time([chains.path, [src.path, dst]]) : () => null,
    ],
    undefined,
    () => warm(src.path),
  );
  // The --sqpoll variant in its own rounds, so it never runs right before our default run.
  const sq = await alternate(
    time(denoTaskCp(["-r", "--sqpoll", src.path, dst])),
    [gnuCp ? time(["cp", ["-r", src.path, dst]]) : () => null],
    undefined,
    () => warm(src.path),
  );
  // Where the time goes, in rounds of their own: the CPU each copy costs (every thread of the
  // process, io-wq workers included), and start-up (a tree of one file).
  // (bash's `times` reads the CPU time: without bash these rows are left out, and said so.)
  const bash = await have("bash");
  const cpuRounds = bash
    ? await alternate(
      cpu(denoTaskCp(["-r", src.path, dst])),
      [
        cpu(denoPeer(["tree", src.path, dst, "32"])),
        "path" in chains ? cpu([chains.path, [src.path, dst]]) : () => null,
        gnuCp ? cpu(["cp", ["-r", src.path, dst]]) : () => null,
      ],
      undefined,
      () => warm(src.path),
    )
    : null;
  // The library's copyFile in a script shaped as the Deno.copyFile peer (same walk, 32 in flight),
  // in rounds of their own: what a Deno program copying many files with this module waits for.
  const files = await alternate(
    time(denoPeer(["uringTree", src.path, dst, "32"])),
    [time(denoPeer(["tree", src.path, dst, "32"]))],
    undefined,
    () => warm(src.path),
  );
  const one = oneFileTree();
  const oneDst = `${tmpfs.path}/uring-bench-tree-1`;
  const timeOne = ([cmd, args]: [string, string[]]) => () =>
    timeCopy(oneDst, cmd, args, checker(one, oneDst));
  const startup = await alternate(
    timeOne(denoTaskCp(["-r", one.path, oneDst])),
    [timeOne(denoPeer(["tree", one.path, oneDst, "32"]))],
  );
  const work = `${src.files} files of 1–64 KiB → tmpfs, deno task cp -r`;
  const row = (peer: string, theirs: number | null): Row => ({
    work,
    ours: m.ours,
    peer,
    theirs,
    unit: "ms",
    better: "lower",
    target: { op: "<=", value: 1 },
    missing: theirs === null ? "cp not found" : undefined,
  });
  const rows = [row("GNU cp -r", m.peers[0]), row("Deno.copyFile ×32 (deno run)", m.peers[1])];
  rows.push({
    ...row("the same io_uring chains in C (liburing)", m.peers[2]),
    target: undefined,
    missing: "missing" in chains ? chains.missing : undefined,
  });
  rows.push({
    ...row("GNU cp -r", sq.peers[0]),
    work: "same, deno task cp -r --sqpoll (separate rounds)",
    ours: sq.ours,
    target: undefined, // the target is for the default copy, as in bench:cp
  });
  rows.push({
    ...row("Deno.copyFile ×32 (deno run)", files.peers[0]),
    work: "same files, the library's copyFile ×32 (deno run, the same walk; separate rounds)",
    ours: files.ours,
    target: undefined,
  });
  if (cpuRounds !== null) {
    const cpuRow = (peer: string, theirs: number | null, missing?: string): Row => ({
      ...row(peer, theirs),
      work: "CPU time of the same copy (user + system, all threads)",
      ours: cpuRounds.ours,
      target: undefined,
      missing: theirs === null ? missing ?? "cp not found" : undefined,
    });
    rows.push(cpuRow("Deno.copyFile ×32 (deno run)", cpuRounds.peers[0]));
    rows.push(
      cpuRow(
        "the same io_uring chains in C",
        cpuRounds.peers[1],
        "missing" in chains ? chains.missing : undefined,
      ),
    );
    rows.push(cpuRow("GNU cp -r", cpuRounds.peers[2]));
  }
  rows.push({
    ...row("Deno.copyFile ×32 (deno run)", startup.peers[0]),
    work: "start-up: a tree of one 16 KiB file, deno task cp -r",
    ours: startup.ours,
    target: undefined,
  });
  printTable(
    "Copy a tree of 4,000 small cached files to tmpfs (wall time from spawn to exit, or CPU time where said)",
    rows,
    cpuRounds === null ? "CPU time rows left out: bash (whose `times` reads them) was not found." : undefined,
  );
}

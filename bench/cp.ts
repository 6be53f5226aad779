/**
 * A 1 GiB cached file copied to tmpfs: `deno task cp` (Deno's start-up included, as users wait
 * for it) against GNU `cp`, Deno's own `Deno.copyFile` and `readable.pipeTo` each run as a fresh
 * Deno process, and `deno task cp --no-splice` (the buffered data path instead of splice lanes). Times are wall clock from spawn to exit; before every run (not timed) the
 * destination is removed and the source read back into the page cache. Run: `deno task bench:cp`.
 *
 * @module
 */

import {
  alternate,
  cachedFile,
  have,
  printTable,
  type RanCpu,
  repoPath,
  type Row,
  run,
  runCpu,
  sameBytes,
  tmpfsDir,
  warm,
} from "./_lib.ts";

/** Size of the file copied. */
export const CP_FILE_SIZE = 1 << 30;

function rmrf(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/**
 * Times one command that copies into `dst` (removed before the run; the run's exit status and
 * the copy are checked, and a `deno task cp` that says it fell back to Deno's file APIs is a
 * failure: its time would not be io_uring's). Returns milliseconds of wall time from spawn to
 * exit, or with `measure: "cpu"` the CPU milliseconds the command used (see `runCpu`); `null`
 * when the command is missing.
 */
export async function timeCopy(
  dst: string,
  cmd: string,
  args: string[],
  check: () => void,
  measure: "wall" | "cpu" = "wall",
): Promise<number | null> {
  rmrf(dst);
  const options = { cwd: repoPath(".") };
  const r = measure === "wall" ? await run(cmd, args, options) : await runCpu(cmd, args, options);
  if (r === null) return null;
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  if (r.stderr.includes("io_uring is unavailable")) {
    throw new Error(`${cmd} ${args.join(" ")} did not use io_uring: ${r.stderr.trim()}`);
  }
  check();
  rmrf(dst);
  return measure === "wall" ? r.ms : (r as RanCpu).cpuMs;
}

/**
 * The `deno task cp` command line for `args`. Not `cp -q`: without a terminal `cp` prints nothing
 * on success, and its notice that io_uring is unavailable (then it copies with Deno's file APIs)
 * must reach {@link timeCopy}.
 */
export function denoTaskCp(args: string[]): [string, string[]] {
  return [Deno.execPath(), ["task", "-q", "cp", ...args]];
}

/** The Deno-API peer command line. */
export function denoPeer(args: string[]): [string, string[]] {
  return [Deno.execPath(), ["run", "-A", repoPath("bench/peers/deno_copy.ts"), ...args]];
}

if (import.meta.main) {
  const src = cachedFile("1g.bin", CP_FILE_SIZE);
  const tmpfs = await tmpfsDir();
  if ("missing" in tmpfs) {
    console.log(`bench:cp skipped: ${tmpfs.missing}`);
    Deno.exit(0);
  }
  const dir = `${tmpfs.path}/uring-bench-cp`;
  Deno.mkdirSync(dir, { recursive: true });
  const dst = `${dir}/1g.copy`;
  const check = () => {
    const size = Deno.statSync(dst).size;
    if (size !== CP_FILE_SIZE) throw new Error(`copy has ${size} bytes, expected ${CP_FILE_SIZE}`);
    if (!sameBytes(src, dst)) throw new Error(`copy ${dst} differs from ${src}`);
  };
  const gnuCp = await have("cp");
  const time = ([cmd, args]: [string, string[]]) => () => timeCopy(dst, cmd, args, check);
  const m = await alternate(
    time(denoTaskCp([src, dst])),
    [
      gnuCp ? time(["cp", [src, dst]]) : () => null,
      time(denoPeer(["copyFile", src, dst])),
      time(denoPeer(["pipeTo", src, dst])),
      time(denoTaskCp(["--no-splice", src, dst])),
    ],
    undefined,
    () => warm(src),
  );
  // The --sqpoll variant on its own, after: run inside the rounds above it came right before our
  // default run and made that one erratic (its SQ thread winding down as the next copy starts).
  const sq = await alternate(
    time(denoTaskCp(["--sqpoll", src, dst])),
    [gnuCp ? time(["cp", [src, dst]]) : () => null],
    undefined,
    () => warm(src),
  );
  rmrf(dir);
  const row = (peer: string, theirs: number | null, target?: number): Row => ({
    work: "1 GiB cached file → tmpfs, deno task cp",
    ours: m.ours,
    peer,
    theirs,
    unit: "ms",
    better: "lower",
    target: target === undefined ? undefined : { op: "<=", value: target },
    missing: theirs === null ? "cp not found" : undefined,
  });
  const rows = [
    row("GNU cp", m.peers[0], 1.1),
    row("Deno.copyFile (deno run)", m.peers[1]),
    row("readable.pipeTo (deno run)", m.peers[2]),
    row("deno task cp --no-splice (buffers, not splice lanes)", m.peers[3]),
  ];
  rows.push({
    ...row("GNU cp", sq.peers[0]),
    work: "same, deno task cp --sqpoll (separate rounds)",
    ours: sq.ours,
  });
  printTable("Copy a 1 GiB cached file to tmpfs (wall time, Deno start-up included)", rows);
}

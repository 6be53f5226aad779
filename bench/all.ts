/**
 * Runs every bench in turn (each in its own Deno process, so one's JIT state and memory do not
 * colour the next), prints their tables and writes them, with the commit measured, to
 * `bench/LATEST.md`. Run: `deno task bench`.
 *
 * Set `URING_BENCH_ROUNDS` (default 5) and `URING_BENCH_SECONDS` (default 1) to trade time for
 * stability; `URING_BENCH_NO_INSTALL=1` stops the bench from installing fio and liburing-dev.
 *
 * @module
 */

import { machineLine, repoPath } from "./_lib.ts";

/** The benches, in the order `deno task bench` runs them. */
export const BENCHES = ["nop", "read", "uring_read", "seq_read", "enters", "direct", "cp", "cp_tree"];

/** Where a full run leaves its output (the README's table is taken from it). */
export const LATEST = repoPath("bench/LATEST.md");

/** The commit the run measured, with "+ changes" when the work tree differs from it. */
async function commitLine(): Promise<string> {
  const git = async (...args: string[]) => {
    try {
      const out = await new Deno.Command("git", { args, cwd: repoPath("."), stderr: "null" }).output();
      return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
    } catch {
      return null;
    }
  };
  const head = await git("rev-parse", "--short", "HEAD");
  if (head === null) return "commit: unknown (not a git checkout)";
  const dirty = await git("status", "--porcelain", "--", "src", "ffi", "mod.ts", "bench");
  return `commit: ${head}${dirty ? " + uncommitted changes to src/, ffi/, mod.ts or bench/" : ""}`;
}

if (import.meta.main) {
  const output: string[] = [];
  const say = (text: string) => {
    output.push(text);
    Deno.stdout.writeSync(new TextEncoder().encode(text));
  };
  say(`## uring bench\n\n${machineLine()} · ${await commitLine()}\n\n`);
  let failed = 0;
  for (const name of BENCHES) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", repoPath(`bench/${name}.ts`)],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) say(decoder.decode(chunk, { stream: true }));
    const { code } = await child.status;
    if (code !== 0) {
      failed++;
      say(`(bench/${name}.ts exited with ${code})\n\n`);
    }
  }
  say(`${machineLine()}\n`);
  Deno.writeTextFileSync(LATEST, output.join(""));
  console.error(`bench: the tables are in ${LATEST}`);
  if (failed) Deno.exit(1);
}

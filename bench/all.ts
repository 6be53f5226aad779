/**
 * Runs every bench in turn (each in its own Deno process, so one's JIT state and memory do not
 * colour the next) and prints their tables. Run: `deno task bench`.
 *
 * Set `URING_BENCH_ROUNDS` (default 5) and `URING_BENCH_SECONDS` (default 1) to trade time for
 * stability; `URING_BENCH_NO_INSTALL=1` stops the bench from installing fio and liburing-dev.
 *
 * @module
 */

import { machineLine, repoPath } from "./_lib.ts";

/** The benches, in the order `deno task bench` runs them. */
export const BENCHES = ["nop", "read", "uring_read", "seq_read", "enters", "direct", "cp", "cp_tree"];

if (import.meta.main) {
  console.log(`## uring bench\n\n${machineLine()}\n`);
  let failed = 0;
  for (const name of BENCHES) {
    const { code } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", repoPath(`bench/${name}.ts`)],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (code !== 0) {
      failed++;
      console.log(`(bench/${name}.ts exited with ${code})\n`);
    }
  }
  console.log(`${machineLine()}`);
  if (failed) Deno.exit(1);
}

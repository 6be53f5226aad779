/**
 * How the block path moves data, A/B/C: a 1 GiB cached file copied to tmpfs in this process with
 * `copyFile` on a caller's `Uring`, alternating the buffered copy (`splice: false`) on a ring
 * without a buffer pool (the copy registers its buffers: READ_FIXED/WRITE_FIXED), the buffered
 * copy on the same kind of ring holding a tiny pool of its own (the copy then uses plain
 * buffers), and the default splice lanes (no buffers). Default queue depth and block size.
 * Reports the median wall time and process CPU time (user+sys) of each. The source is read back
 * into the page cache and the destination removed before every run (not timed).
 * Run: `URING_BENCH_TMPFS=/var/tmp/fixedbench deno run -A bench/cp_fixed.ts [rounds]`.
 *
 * @module
 */

import process from "node:process";
import { copyFile, Uring } from "../mod.ts";
import { cachedFile, median, sameBytes, tmpfsDir, warm } from "./_lib.ts";

const SIZE = 1 << 30;
const rounds = Number(Deno.args[0] ?? 5);
const src = cachedFile("1g.bin", SIZE);
const tmpfs = await tmpfsDir();
if ("missing" in tmpfs) {
  console.log(`bench:cp-fixed skipped: ${tmpfs.missing}`);
  Deno.exit(0);
}
const dst = `${tmpfs.path}/cp-fixed.bin`;

type Way = "fixed" | "plain" | "splice";

async function once(way: Way): Promise<{ ms: number; cpu: number; fixedSqes: number }> {
  try {
    Deno.removeSync(dst);
  } catch { /* not there */ }
  warm(src);
  await using uring = new Uring({ entries: 64 });
  const mine = way === "plain" ? uring.registerBufferPool({ count: 1, size: 4096 }) : null;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await copyFile(src, dst, { uring, splice: way === "splice" });
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  if (r.bytes !== SIZE || Deno.statSync(dst).size !== SIZE) throw new Error("short copy");
  if (!sameBytes(src, dst)) throw new Error(`copy ${dst} differs from ${src}`);
  mine?.close();
  Deno.removeSync(dst);
  return { ms, cpu: (cpu.user + cpu.system) / 1000, fixedSqes: uring.stats.fixedBuffers };
}

const runs: Record<Way, { ms: number; cpu: number; fixedSqes: number }[]> = {
  fixed: [],
  plain: [],
  splice: [],
};
const ways: Way[] = ["fixed", "plain", "splice"];
for (const way of ways) await once(way); // warm-up (JIT, page cache), not counted
for (let i = 0; i < rounds; i++) {
  const order = i % 2 === 0 ? ways : [...ways].reverse();
  for (const which of order) {
    const r = await once(which);
    runs[which].push(r);
    console.log(
      `round ${i + 1} ${which}: ${r.ms.toFixed(0)} ms wall, ${
        r.cpu.toFixed(0)
      } ms cpu, ${r.fixedSqes} fixed SQEs`,
    );
  }
}
for (const which of ways) {
  const ms = median(runs[which].map((r) => r.ms));
  const cpu = median(runs[which].map((r) => r.cpu));
  console.log(
    `${which}: median ${ms.toFixed(0)} ms wall (${(SIZE / 2 ** 20 / (ms / 1000)).toFixed(0)} MiB/s), ` +
      `${cpu.toFixed(0)} ms cpu over ${rounds} runs; walls ${
        runs[which].map((r) => r.ms.toFixed(0)).join(" ")
      }`,
  );
}

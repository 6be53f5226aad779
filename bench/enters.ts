/**
 * Submit-side `io_uring_enter` calls per 1,000 operations while the SQ poll thread is busy: NOPs
 * in batches of 32 and 4 KiB random reads at QD 32, both reaped by spinning on the CQ tail. The
 * ring's `stats` split the calls by reason; without SQPOLL the same loops are shown for contrast.
 * Run: `deno task bench:enters`.
 *
 * @module
 */

import { cachedFile, median, printTable, ROUNDS, type Row } from "./_lib.ts";
import { ourNops, type RunResult } from "./nop.ts";
import { closeFd, openFd, ourRandomReads, READ_FILE, READ_FILE_SIZE } from "./read.ts";

const SECONDS = 1;

function perThousand(runs: RunResult[], pick: (r: RunResult) => number): number {
  return median(runs.map((r) => (pick(r) * 1000) / r.ops));
}

if (import.meta.main) {
  const file = cachedFile(READ_FILE, READ_FILE_SIZE, "pin");
  const fd = openFd(file);
  const workloads = [
    { name: "NOPs, batch 32", run: (sqpoll: boolean) => ourNops(32, sqpoll, SECONDS) },
    {
      name: "4 KiB random reads, QD 32",
      run: (sqpoll: boolean) => ourRandomReads(fd, READ_FILE_SIZE, 32, sqpoll, SECONDS),
    },
  ];
  const rows: Row[] = [];
  const detail: string[] = [
    "| workload | mode | ops/run | submit | wakeup | wait | ops per enter |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const w of workloads) {
    for (const sqpoll of [true, false]) {
      const runs: RunResult[] = [];
      for (let i = 0; i < ROUNDS; i++) runs.push(w.run(sqpoll));
      const submitSide = perThousand(runs, (r) => r.stats.submit + r.stats.wakeup);
      const all = (r: RunResult) => r.stats.submit + r.stats.wakeup + r.stats.wait;
      const mode = sqpoll ? "SQPOLL busy" : "no SQPOLL";
      if (sqpoll) {
        rows.push({
          work: `submit-side io_uring_enter per 1,000 ops, ${w.name}, ${mode}`,
          ours: submitSide,
          peer: "—",
          theirs: null,
          unit: "enters",
          better: "lower",
          target: { op: "<=", value: 1 },
          absolute: true,
        });
      }
      const opsPerEnter = median(runs.map((r) => (all(r) === 0 ? Infinity : r.ops / all(r))));
      detail.push(
        `| ${w.name} | ${mode} | ${Math.round(median(runs.map((r) => r.ops)))} | ` +
          `${perThousand(runs, (r) => r.stats.submit).toFixed(2)} | ${
            perThousand(runs, (r) => r.stats.wakeup).toFixed(2)
          } | ` +
          `${perThousand(runs, (r) => r.stats.wait).toFixed(2)} | ${
            opsPerEnter === Infinity ? "∞ (no enter)" : opsPerEnter.toFixed(1)
          } |`,
      );
    }
  }
  closeFd(fd);
  printTable(
    "io_uring_enter calls per 1,000 operations",
    rows,
    `Enters per 1,000 ops by reason (ring.stats), median of ${ROUNDS} runs of ${SECONDS} s:\n\n${
      detail.join("\n")
    }`,
    `median of ${ROUNDS} runs (no peer)`,
  );
}

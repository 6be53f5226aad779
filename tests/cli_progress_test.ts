import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  ProgressBar,
  REDRAW_INTERVAL_MS,
  renderProgress,
} from "../src/cli/progress.ts";
import type { CopyProgress } from "../src/copy_options.ts";

Deno.test("cp progress: byte and duration formats", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(254.72382142790275), "255 B"); // a rate (it printed every digit)
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(10 * 1024 * 1024), "10.0 MiB");
  assert.equal(formatBytes(300 * 1024 ** 3), "300 GiB");
  assert.equal(formatBytes(NaN), "?");
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(7.4), "0:07");
  assert.equal(formatDuration(725), "12:05");
  assert.equal(formatDuration(3 * 3600 + 121), "3:02:01");
  assert.equal(formatDuration(Infinity), "?");
});

const p = (over: Partial<CopyProgress>): CopyProgress => ({
  bytes: 0,
  files: 0,
  totalBytes: 0,
  totalFiles: 0,
  scanning: false,
  ...over,
});

Deno.test("cp progress: one line with bar, percent, bytes, files, rate and ETA", () => {
  const line = renderProgress(
    p({ bytes: 512 * 1024 ** 2, totalBytes: 1024 ** 3, files: 3, totalFiles: 10 }),
    2000,
  );
  assert.equal(
    line,
    "[#--------]  50%  512 MiB/1.00 GiB  3/10 files  256 MiB/s  ETA 0:02".replace(
      "[#--------]",
      `[${"#".repeat(4)}${"-".repeat(4)}]`,
    ),
  );
  assert.ok(line.length <= 80);
  // While scanning, totals carry a "+" and there is no ETA.
  const scanning = renderProgress(
    p({ bytes: 100, totalBytes: 1000, files: 1, totalFiles: 5, scanning: true }),
    1000,
  );
  assert.ok(scanning.endsWith("100 B/1000 B+  1/5+ files  100 B/s  ETA ?"), scanning);
  // Done, empty copy: 100 %.
  assert.match(renderProgress(p({}), 10), /100%/);
  // Narrow terminals drop the bar; the line never exceeds the width.
  for (const width of [20, 40, 60, 79, 100, 200]) {
    const l = renderProgress(p({ bytes: 5, totalBytes: 10, files: 1, totalFiles: 2 }), 1000, width);
    assert.ok(l.length <= width, `width ${width}: ${l}`);
  }
  // The bar's width depends on the terminal, not on the numbers.
  const a = renderProgress(p({ bytes: 1, totalBytes: 10 }), 1000, 120);
  const b = renderProgress(
    p({ bytes: 9 * 1024 ** 3, totalBytes: 10 * 1024 ** 3, files: 12345, totalFiles: 99999 }),
    1000,
    120,
  );
  assert.equal(a.indexOf("]"), b.indexOf("]"));
});

Deno.test("cp progress: redraws at most every 100 ms, and always draws the final state", () => {
  let now = 0;
  const out: string[] = [];
  const bar = new ProgressBar({ write: (t) => out.push(t), columns: 100, now: () => now });
  for (let i = 0; i <= 1000; i++) {
    now = i; // one update per millisecond for a second
    bar.update(p({ bytes: i, totalBytes: 1000, files: i === 1000 ? 1 : 0, totalFiles: 1 }));
  }
  assert.equal(bar.draws, Math.floor(1000 / REDRAW_INTERVAL_MS) + 1, "10 a second (plus the first)");
  for (const t of out) {
    assert.ok(
      t.startsWith("\r") && t.endsWith("\x1b[K"),
      "each draw returns to the line start, clears the rest",
    );
  }
  bar.done();
  assert.equal(out[out.length - 1], "\n");
  assert.ok(out[out.length - 2].includes("100%  1000 B/1000 B  1/1 files"), out[out.length - 2]);
  const draws = bar.draws;
  bar.update(p({ bytes: 1 }));
  bar.done();
  assert.equal(bar.draws, draws, "nothing after done()");
  // clear() wipes the line so a message can be printed; no output when nothing was drawn.
  const quiet: string[] = [];
  const idle = new ProgressBar({ write: (t) => quiet.push(t), now: () => 0 });
  idle.clear();
  idle.done();
  assert.deepEqual(quiet, []);
});

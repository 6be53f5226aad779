/**
 * The one-line progress bar of `deno task cp`: bytes, files, rate and ETA, redrawn in place at
 * most 10 times a second. Rendering is a pure function of the numbers and a clock, so it can be
 * tested without a terminal or real time.
 *
 * @module
 */

import type { CopyProgress } from "../copy_options.ts";

/** Least time between two redraws, in milliseconds (10 redraws a second at most). */
export const REDRAW_INTERVAL_MS = 100;

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `1536` → `"1.50 KiB"`: binary units, three significant digits (whole bytes below 1 KiB). */
export function formatBytes(n: number): string {
  if (!(n >= 0) || !Number.isFinite(n)) return "?";
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(n)} B`; // a rate is fractional: 254.72… B/s reads 255 B/s
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${UNITS[i]}`;
}

/** Seconds → `"0:07"`, `"12:05"`, `"3:02:01"`; `"?"` when unknown. */
export function formatDuration(seconds: number): string {
  if (!(seconds >= 0) || !Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

/**
 * Renders one progress line of at most `width` columns:
 * `[#######------]  53%  1.2 GiB/2.3 GiB  812/1500 files  640 MiB/s  ETA 0:02`.
 * `elapsedMs` is the time since the copy started. While the source is still being scanned the
 * totals are marked with `+` and no ETA is given.
 */
export function renderProgress(p: CopyProgress, elapsedMs: number, width = 80): string {
  const fraction = p.totalBytes > 0
    ? Math.min(1, p.bytes / p.totalBytes)
    : p.totalFiles > 0
    ? Math.min(1, p.files / p.totalFiles)
    : p.scanning
    ? 0
    : 1;
  const more = p.scanning ? "+" : "";
  const rate = elapsedMs > 0 ? p.bytes / (elapsedMs / 1000) : 0;
  const left = p.totalBytes - p.bytes;
  const eta = p.scanning ? "?" : left <= 0 ? formatDuration(0) : rate > 0 ? formatDuration(left / rate) : "?";
  const pct = `${Math.floor(fraction * 100)}%`.padStart(4);
  const tail = `${pct}  ${formatBytes(p.bytes)}/${formatBytes(p.totalBytes)}${more}  ` +
    `${p.files}/${p.totalFiles}${more} files  ${formatBytes(rate)}/s  ETA ${eta}`;
  // The bar's width depends on the terminal only, so it does not jump as the numbers grow.
  const barWidth = Math.max(0, Math.min(30, width - 72));
  if (barWidth < 5 || tail.length + barWidth + 3 > width) return tail.slice(0, Math.max(0, width));
  const filled = Math.round(fraction * barWidth);
  return `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}] ${tail}`;
}

/** Where a {@link ProgressBar} draws, and its clock. */
export interface ProgressSink {
  /** Writes text as it is (no newline added). */
  write(text: string): void;
  /** Columns available (default 80). */
  columns?: number;
  /** Milliseconds clock (default `performance.now`). */
  now?: () => number;
}

/**
 * Draws {@link renderProgress} lines in place (carriage return, then clear to end of line),
 * skipping updates that come within {@link REDRAW_INTERVAL_MS} of the last drawn one. `done()`
 * draws the final state once more, whatever the time, and ends the line.
 */
export class ProgressBar {
  readonly #sink: ProgressSink;
  readonly #now: () => number;
  readonly #start: number;
  #last = -Infinity;
  #latest: CopyProgress | undefined;
  #drawn = 0;
  #finished = false;

  /** A bar that starts its clock now. */
  constructor(sink: ProgressSink) {
    this.#sink = sink;
    this.#now = sink.now ?? (() => performance.now());
    this.#start = this.#now();
  }

  /** How many times the line was drawn. */
  get draws(): number {
    return this.#drawn;
  }

  /** Takes a new state; redraws if the last redraw is at least 100 ms old. */
  update(p: CopyProgress): void {
    if (this.#finished) return;
    this.#latest = { ...p };
    const now = this.#now();
    if (now - this.#last >= REDRAW_INTERVAL_MS) this.#draw(now);
  }

  #draw(now: number): void {
    if (!this.#latest) return;
    this.#last = now;
    this.#drawn++;
    const line = renderProgress(this.#latest, now - this.#start, (this.#sink.columns ?? 80) - 1);
    this.#sink.write(`\r${line}\x1b[K`);
  }

  /** Clears the line (before printing a message above the bar); a later update redraws it. */
  clear(): void {
    if (this.#drawn > 0 && !this.#finished) {
      this.#sink.write("\r\x1b[K");
    }
  }

  /** Draws the final state (if any update came) and ends the line. Idempotent. */
  done(): void {
    if (this.#finished) return;
    if (this.#latest) {
      this.#draw(this.#now());
      this.#sink.write("\n");
    }
    this.#finished = true;
  }
}

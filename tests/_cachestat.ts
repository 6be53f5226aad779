/**
 * Page-cache residency of a file as the kernel's `cachestat` (6.5) counts it: every folio in the
 * file's mapping, dirty ones included. `fincore` from util-linux before 2.40 asks `mincore`,
 * which only reports pages that are up to date, and so misses the dirty, partly valid page a
 * file system leaves when `ftruncate` cuts a file inside a block; O_DIRECT tests need to see it.
 * Where `cachestat` is missing, {@link pagesCached} falls back to `fincore` (tests/_pagecache.ts).
 */

import { residency, skipPageCache } from "./_pagecache.ts";

/** `__NR_cachestat`: 451 in the generic syscall table shared by x86_64 and aarch64 (6.5). */
const NR_CACHESTAT = 451n;
/** `open(2)` flags: read-only, close-on-exec. */
const O_RDONLY_CLOEXEC = 0o2000000;

const libc = Deno.dlopen("libc.so.6", {
  // long syscall(long number, ...): every argument passed as a full 64-bit value.
  syscall: { parameters: ["i64", "i64", "buffer", "buffer", "i64"], result: "i64" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

/** Counts of one `cachestat` call (pages). */
export interface CacheStat {
  /** Pages in the page cache. */
  cache: number;
  /** Of those, dirty. */
  dirty: number;
  /** Of those, under writeback. */
  writeback: number;
}

/** `cachestat` of the whole of `path`, or `null` when the kernel lacks it. */
export function cachestat(path: string): CacheStat | null {
  const fd = libc.open(new TextEncoder().encode(`${path}\0`), O_RDONLY_CLOEXEC);
  if (fd < 0) throw new Error(`open ${path} failed`);
  try {
    const range = new BigUint64Array(2); // { off: 0, len: 0 = to the end }
    const out = new BigUint64Array(5); // nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted
    const r = libc.syscall(NR_CACHESTAT, BigInt(fd), range, out, 0n);
    if (r < 0n) return null;
    return { cache: Number(out[0]), dirty: Number(out[1]), writeback: Number(out[2]) };
  } finally {
    libc.close(fd);
  }
}

let probed: boolean | undefined;
/** Whether `cachestat` works here (probed once on this very file). */
function haveCachestat(): boolean {
  if (probed === undefined) probed = cachestat(new URL(import.meta.url).pathname) !== null;
  return probed;
}

/** Why residency cannot be measured at all here, or `undefined` (says why once when asked). */
export function skipResidency(): boolean {
  return !haveCachestat() && skipPageCache();
}

/** Pages of `path` in the page cache: `cachestat`, else `fincore` (which misses dirty partial pages). */
export function pagesCached(path: string): number {
  if (haveCachestat()) return cachestat(path)!.cache;
  return residency(path).pages;
}

/** Which instrument {@link pagesCached} uses. */
export function residencyInstrument(): string {
  return haveCachestat() ? "cachestat" : "fincore (mincore)";
}

/**
 * Shared bench machinery: the machine description, alternating measurement with medians, the
 * markdown table, building the C peers and finding (or installing) fio, and the cached data files.
 *
 * Nothing here asserts a timing: the bench prints figures and whether each target is met.
 *
 * @module
 */

import process from "node:process";

/** Where the bench keeps its data files (on a disk file system, so reads come from the page cache). */
export const DATA_DIR: string = Deno.env.get("URING_BENCH_DATA") ?? "/var/tmp/uring-bench";
/** Alternating rounds per figure (ours, peer, ours, peer, ...); the median is quoted. */
export const ROUNDS: number = Number(Deno.env.get("URING_BENCH_ROUNDS") ?? 5);
/** Seconds each timed in-process run lasts. */
export const SECONDS: number = Number(Deno.env.get("URING_BENCH_SECONDS") ?? 1);

const ROOT = new URL("../", import.meta.url);
/** Absolute path of a file relative to the repository root. */
export function repoPath(rel: string): string {
  return decodeURIComponent(new URL(rel, ROOT).pathname);
}
/** The directory compiled peers go to (git-ignored). */
export const PEER_BUILD_DIR: string = repoPath("bench/peers/build");

// ---------------------------------------------------------------------------------------------
// The machine

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** The 1-minute load average now. */
export function load1(): number {
  return Number(readText("/proc/loadavg").split(" ")[0] || NaN);
}

/** This process's scheduling policy (from /proc/self/stat), e.g. "SCHED_FIFO". */
export function schedPolicy(): string {
  const stat = readText("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // fields 3.. of proc(5)
  const policy = Number(fields[41 - 3]);
  return ["SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE"][policy] ??
    `policy ${policy}`;
}

/** One line describing the machine and the moment: date, kernel, CPU, cores, load, Deno, policy. */
export function machineLine(): string {
  const cpu = /model name\s*:\s*(.*)/.exec(readText("/proc/cpuinfo"))?.[1]?.trim() ?? "unknown CPU";
  const cores = navigator.hardwareConcurrency;
  const load = readText("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  return `${new Date().toISOString()} · Linux ${Deno.osRelease()} · ${cpu} × ${cores} cores · ` +
    `load ${load} · Deno ${Deno.version.deno} · ${schedPolicy()}`;
}

// ---------------------------------------------------------------------------------------------
// Measuring

/** The median of `xs` (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * One run's figure, and optionally the same work per CPU-second of the whole process (an SQ poll
 * thread included): a figure that other load on the machine disturbs much less.
 */
export interface Measured {
  /** The figure (e.g. ops/s of wall time, or ms). */
  value: number;
  /** Operations per CPU-second. */
  perCpu?: number;
}

/** A measurement: returns the figure of one run, or `null` when the side cannot run. */
export type Run = () => number | Measured | null | Promise<number | Measured | null>;

/** What a timed loop reports: its operations, their rate, and the CPU time it took. */
export interface LoopResult {
  ops: number;
  opsPerSec: number;
  /** The process's CPU seconds (every thread) from the loop's start to its end, set-up and teardown not included. */
  cpuSeconds: number;
}

/** The process's CPU time so far, in seconds (every thread: an SQ poll thread's too). */
export function cpuSeconds(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
}

/** Runs `fn` and adds its operations per CPU-second of its timed loop. */
export function withCpu(fn: () => LoopResult): Measured {
  const r = fn();
  return { value: r.opsPerSec, perCpu: r.ops / r.cpuSeconds };
}

/** The same for an asynchronous run. */
export async function withCpuAsync(fn: () => Promise<LoopResult>): Promise<Measured> {
  const r = await fn();
  return { value: r.opsPerSec, perCpu: r.ops / r.cpuSeconds };
}

/**
 * Waits until an SQ poll thread `ring` keeps across runs has gone idle (its idle time and as much
 * again), so that its spinning after our run does not take CPU from the next run, a peer's.
 */
export function sqThreadSettled(ring: { sqpoll: boolean; params: { sqThreadIdle: number } }): Promise<void> {
  const ms = ring.sqpoll ? 2 * ring.params.sqThreadIdle : 0;
  return ms === 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

/** Medians of an alternating measurement. */
export interface Alternated {
  /** Our median figure. */
  ours: number;
  /** Each peer's median figure (`null`: the peer could not run). */
  peers: (number | null)[];
  /** Our median operations per CPU-second, when measured. */
  oursCpu: number | null;
  /** Each peer's median operations per CPU-second, when measured. */
  peersCpu: (number | null)[];
  /** The 1-minute load average before each round. */
  loads: number[];
}

/** The 1-minute load averages before each round of {@link alternate} since the last table printed them. */
let roundLoads: number[] = [];

/**
 * Runs `ours` and each peer alternately `rounds` times and returns the medians: even rounds in
 * the order ours, peer 1, peer 2, ..., odd rounds in reverse, so that what a run leaves behind
 * (a ring's threads winding down, page-cache and tmpfs work) does not always fall on the same side.
 * A peer that returns `null` is skipped from then on, and its figures from earlier rounds are
 * dropped (median `null`: the row says the peer is missing, rather than quoting fewer rounds).
 * `before` runs (untimed, awaited) before every single run, e.g. to bring data back into the page
 * cache.
 */
export async function alternate(
  ours: Run,
  peers: readonly Run[],
  rounds = ROUNDS,
  before?: () => void | Promise<void>,
): Promise<Alternated> {
  const mine: number[] = [], mineCpu: number[] = [];
  const theirs: number[][] = peers.map(() => []);
  const theirsCpu: number[][] = peers.map(() => []);
  const dead = peers.map(() => false);
  const loads: number[] = [];
  const record = (m: number | Measured, values: number[], cpus: number[]) => {
    if (typeof m === "number") values.push(m);
    else {
      values.push(m.value);
      if (m.perCpu !== undefined && Number.isFinite(m.perCpu)) cpus.push(m.perCpu);
    }
  };
  const runOurs = async () => {
    await before?.();
    const v = await ours();
    if (v === null) throw new Error("our side of the bench could not run");
    record(v, mine, mineCpu);
  };
  const runPeer = async (i: number) => {
    if (dead[i]) return;
    await before?.();
    const p = await peers[i]();
    if (p === null) {
      dead[i] = true;
      theirs[i].length = theirsCpu[i].length = 0;
    } else record(p, theirs[i], theirsCpu[i]);
  };
  for (let r = 0; r < rounds; r++) {
    loads.push(load1());
    if (r % 2 === 0) {
      await runOurs();
      for (let i = 0; i < peers.length; i++) await runPeer(i);
    } else {
      for (let i = peers.length - 1; i >= 0; i--) await runPeer(i);
      await runOurs();
    }
  }
  roundLoads.push(...loads);
  const med = (xs: number[]) => (xs.length === 0 ? null : median(xs));
  return {
    ours: median(mine),
    peers: theirs.map(med),
    oursCpu: med(mineCpu),
    peersCpu: theirsCpu.map(med),
    loads,
  };
}

/** One row of a bench table. */
export interface Row {
  /** What was measured. */
  work: string;
  /** Our figure (median). */
  ours: number;
  /** The peer's name. */
  peer: string;
  /** The peer's figure (median), or `null` when the peer is missing. */
  theirs: number | null;
  /** Unit of both figures, e.g. "ops/s" or "ms". */
  unit: string;
  /** "higher" when a bigger figure is better (throughput), "lower" for times. */
  better: "higher" | "lower";
  /** The target ratio, e.g. `{ op: ">=", value: 0.9 }`, or none for an informative row. */
  target?: { op: ">=" | "<="; value: number };
  /** Compare the target with our figure itself instead of the ratio (rows without a peer). */
  absolute?: boolean;
  /** Why the peer is missing, shown instead of its figure. */
  missing?: string;
  /** Our operations per CPU-second (median), when measured. */
  oursCpu?: number | null;
  /** The peer's operations per CPU-second (median), when measured. */
  theirsCpu?: number | null;
}

function fmtNum(v: number, unit: string): string {
  if (unit === "ms") return v.toFixed(v < 10 ? 2 : 1);
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(v < 10 ? 2 : 1);
}

/**
 * The ratio quoted for a row: ours ÷ peer for throughput (higher is better), ours ÷ peer for
 * times (lower is better).
 */
export function ratio(row: Row): number | null {
  return row.theirs === null || row.theirs === 0 ? null : row.ours / row.theirs;
}

/**
 * Prints a markdown table of `rows` under `title`, with the machine line, how the figures were
 * taken (`how`; default: the median of {@link ROUNDS} alternating rounds) and the range of the load
 * before each round of {@link alternate} since the last table.
 */
export function printTable(title: string, rows: readonly Row[], note?: string, how?: string): void {
  const out: string[] = [];
  out.push(`### ${title}`, "");
  const loads = roundLoads.length === 0
    ? ""
    : ` · load before each round ${Math.min(...roundLoads).toFixed(2)}–${Math.max(...roundLoads).toFixed(2)}`;
  roundLoads = [];
  out.push(
    `${machineLine()} · ${
      how ?? `median of ${ROUNDS} alternating rounds, the order reversed every other round`
    }${loads}`,
    "",
  );
  const cpuColumn = rows.some((row) => row.oursCpu !== undefined);
  out.push(`| work | ours | peer | peer's | ratio | target | met |${cpuColumn ? " ratio per CPU-s |" : ""}`);
  out.push(`|---|---:|---|---:|---:|---|---|${cpuColumn ? "---:|" : ""}`);
  for (const row of rows) {
    const r = ratio(row);
    const x = row.absolute ? "" : "×";
    const target = row.target
      ? `${row.target.op === ">=" ? "≥" : "≤"} ${row.target.value.toFixed(2)}${x}`
      : "—";
    const judged = row.absolute ? row.ours : r;
    let met = "";
    if (row.target && judged !== null) {
      const ok = row.target.op === ">=" ? judged >= row.target.value : judged <= row.target.value;
      met = ok ? "yes" : "**no**";
    } else if (row.target) met = "n/a";
    let cpu = "";
    if (cpuColumn) {
      cpu = row.oursCpu && row.theirsCpu ? ` ${(row.oursCpu / row.theirsCpu).toFixed(2)}× |` : " — |";
    }
    const ours = `${fmtNum(row.ours, row.unit)} ${row.unit}`;
    if (row.absolute) {
      out.push(`| ${row.work} | ${ours} | — | — | — | ${target} | ${met} |${cpu}`);
      continue;
    }
    const theirs = row.theirs === null
      ? `missing${row.missing ? `: ${row.missing}` : ""}`
      : `${fmtNum(row.theirs, row.unit)} ${row.unit}`;
    // Two decimals, or three where two would read as the target itself (0.949 is not ≥ 0.95).
    const shownRatio = r === null
      ? "—"
      : `${r.toFixed(row.target && r.toFixed(2) === row.target.value.toFixed(2) ? 3 : 2)}×`;
    out.push(
      `| ${row.work} | ${ours} | ${row.peer} | ${theirs} | ${shownRatio} | ${target} | ${met} |${cpu}`,
    );
  }
  if (cpuColumn) {
    out.push(
      "",
      "Ratio per CPU-s: the same work per CPU-second of each side, which other load on the machine " +
        "disturbs far less than wall time: ours and a C peer, the whole process's CPU time (an SQ poll " +
        "thread included) over the timed loop only; fio, where shown, the user + system time fio reports " +
        "for its job thread (an SQ poll thread's time is not in it, which flatters fio). Rows without " +
        "both figures show —.",
    );
  }
  if (note) out.push("", note);
  console.log(out.join("\n") + "\n");
}

// ---------------------------------------------------------------------------------------------
// Processes

/** Result of a finished child process. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

/** Runs `cmd args...` to completion and returns its output and wall time; `null` if not found. */
export async function run(cmd: string, args: string[], options: { cwd?: string } = {}): Promise<Ran | null> {
  const t0 = performance.now();
  try {
    const out = await new Deno.Command(cmd, { args, cwd: options.cwd, stdout: "piped", stderr: "piped" })
      .output();
    const ms = performance.now() - t0;
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr), ms };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** A finished child process with the CPU time it cost. */
export interface RanCpu extends Ran {
  /**
   * CPU milliseconds (user + system) of the process and of every process it waited for, all
   * their threads included (io_uring's io-wq workers are threads of the process that owns the
   * ring); whole milliseconds.
   */
  cpuMs: number;
}

/**
 * Runs `cmd args...` as {@link run} does, through bash, whose `times` then reports the CPU the
 * command used; `null` if bash or the command is not found. (`ms` includes bash's start-up: time
 * with {@link run}.)
 */
export async function runCpu(
  cmd: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<RanCpu | null> {
  const script = '"$@"; status=$?; times >&2; exit $status';
  const r = await run("bash", ["-c", script, "bash", cmd, ...args], options);
  if (r === null || r.code === 127) return null;
  // `times` prints the shell's own user and system time, then its children's: "0m0.094s 0m0.198s".
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(r.stderr);
  if (m === null) throw new Error(`bash printed no CPU times for ${cmd}: ${r.stderr.slice(-200)}`);
  const seconds = Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
  return {
    ...r,
    stderr: r.stderr.slice(0, r.stderr.lastIndexOf("\n", m.index - 2) + 1),
    cpuMs: Math.round(seconds * 1000),
  };
}

/** Whether a program is on the PATH. */
export async function have(cmd: string): Promise<boolean> {
  const r = await run("sh", ["-c", `command -v ${cmd}`]);
  return r !== null && r.code === 0;
}

let aptUpdated = false;
/**
 * Tries to install Debian packages (only as root, with apt-get, unless URING_BENCH_NO_INSTALL is
 * set). Returns whether the install succeeded. Runs `apt-get update` once if the first try fails.
 */
export async function aptInstall(packages: string[]): Promise<boolean> {
  if (Deno.env.get("URING_BENCH_NO_INSTALL")) return false;
  if (Deno.uid() !== 0 || !(await have("apt-get"))) return false;
  console.error(`bench: installing ${packages.join(" ")} (apt-get)`);
  const install = () => run("apt-get", ["install", "-y", "-qq", ...packages]);
  let r = await install();
  if (r?.code !== 0 && !aptUpdated) {
    aptUpdated = true;
    await run("apt-get", ["update", "-qq"]);
    r = await install();
  }
  if (r?.code !== 0) console.error(`bench: apt-get install ${packages.join(" ")} failed:\n${r?.stderr}`);
  return r?.code === 0;
}

/** Path of a compiled C peer, or a reason it is missing. */
export type Peer = { path: string } | { missing: string };

/**
 * Compiles `bench/peers/NAME.c` against liburing into `bench/peers/build/NAME` (when the source is
 * newer than the binary), installing `liburing-dev` first when its header is missing.
 */
export async function buildPeer(name: string): Promise<Peer> {
  const src = repoPath(`bench/peers/${name}.c`);
  const bin = `${PEER_BUILD_DIR}/${name}`;
  try {
    const s = Deno.statSync(src), b = Deno.statSync(bin);
    if (b.mtime && s.mtime && b.mtime >= s.mtime) return { path: bin };
  } catch { /* build it */ }
  const header = () => {
    try {
      Deno.statSync("/usr/include/liburing.h");
      return true;
    } catch {
      return false;
    }
  };
  if (!header() && !(await aptInstall(["liburing-dev"])) && !header()) {
    return { missing: "liburing-dev not installed (apt-get install liburing-dev)" };
  }
  if (!(await have("cc"))) return { missing: "no C compiler (cc)" };
  Deno.mkdirSync(PEER_BUILD_DIR, { recursive: true });
  const r = await run("cc", ["-O2", "-Wall", "-Wextra", "-o", bin, src, "-luring"]);
  if (r?.code !== 0) return { missing: `cc failed: ${r?.stderr.trim()}` };
  return { path: bin };
}

/** Path of `fio`, installing the Debian package when it is missing, or a reason. */
export async function findFio(): Promise<Peer> {
  if (!(await have("fio")) && !(await aptInstall(["fio"])) && !(await have("fio"))) {
    return { missing: "fio not installed (apt-get install fio)" };
  }
  const r = await run("fio", ["--enghelp"]);
  if (r === null || !/io_uring/.test(r.stdout + r.stderr)) {
    return { missing: "fio lacks the io_uring engine" };
  }
  return { path: "fio" };
}

/**
 * Runs a C peer that prints one JSON line with `ops`, `opsPerSec` and `cpuSeconds`; returns its
 * rate and operations per CPU-second, or `null`.
 */
export async function peerOpsPerSec(peer: Peer, args: string[]): Promise<Measured | null> {
  if (!("path" in peer)) return null;
  const r = await run(peer.path, args);
  if (r === null || r.code !== 0) {
    console.error(`bench: ${peer.path} ${args.join(" ")} failed: ${r?.stderr.trim()}`);
    return null;
  }
  const j = JSON.parse(r.stdout.trim().split("\n").pop()!);
  return { value: j.opsPerSec, perCpu: j.cpuSeconds > 0 ? j.ops / j.cpuSeconds : undefined };
}

/** Options for one fio random-read job. */
export interface FioJob {
  file: string;
  iodepth: number;
  bs: number;
  seconds: number;
  sqpoll: boolean;
  /** Extra fio arguments (e.g. batching). */
  extra?: string[];
}

/** Runs one fio io_uring random-read job on a cached file; returns its IOPS or `null`. */
export async function fioIops(fio: Peer, job: FioJob): Promise<number | null> {
  if (!("path" in fio)) return null;
  const args = [
    "--name=bench",
    `--filename=${job.file}`,
    "--rw=randread",
    `--bs=${job.bs}`,
    "--ioengine=io_uring",
    `--iodepth=${job.iodepth}`,
    "--invalidate=0",
    "--direct=0",
    "--time_based",
    `--runtime=${Math.round(job.seconds * 1000)}ms`,
    // fio at its lightest: no per-I/O clock reads or latency statistics, no map of blocks read
    // (our loops and the C peer pick offsets from a xorshift stream, repeats allowed).
    "--gtod_reduce=1",
    "--norandommap",
    "--randrepeat=0",
    "--ramp_time=0",
    "--numjobs=1",
    "--thread",
    "--output-format=json",
    ...(job.sqpoll ? ["--sqthread_poll=1"] : []),
    ...(job.extra ?? []),
  ];
  const r = await run(fio.path, args);
  if (r === null || r.code !== 0) {
    console.error(`bench: fio ${args.join(" ")} failed: ${r?.stderr.trim()}`);
    return null;
  }
  const json = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
  return json.jobs[0].read.iops as number;
}

// ---------------------------------------------------------------------------------------------
// Data

/**
 * How a data file is made cached: `"read"` reads it through ({@link warm}, again before each run
 * by the benches); `"pin"` also keeps it there ({@link pinResident}); `"none"` leaves it (O_DIRECT
 * reads bypass the cache).
 */
export type Caching = "read" | "pin" | "none";

/**
 * A file of `size` bytes under {@link DATA_DIR} (created once with pseudo-random content), made
 * cached as `caching` says. Returns its path.
 */
export function cachedFile(name: string, size: number, caching: Caching = "read"): string {
  Deno.mkdirSync(DATA_DIR, { recursive: true });
  const path = `${DATA_DIR}/${name}`;
  let ok = false;
  try {
    ok = Deno.statSync(path).size === size;
  } catch { /* create */ }
  const chunk = new Uint8Array(1 << 20);
  if (!ok) {
    console.error(`bench: creating ${path} (${size} bytes)`);
    let x = 0x12345678;
    const f = Deno.openSync(path, { write: true, create: true, truncate: true });
    const words = new Uint32Array(chunk.buffer);
    for (let done = 0; done < size; done += chunk.length) {
      for (let i = 0; i < words.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        words[i] = x;
      }
      const n = Math.min(chunk.length, size - done);
      let w = 0;
      while (w < n) w += f.writeSync(chunk.subarray(w, n));
    }
    f.close();
  }
  if (caching !== "none") warm(path);
  if (caching === "pin") pinResident(path);
  return path;
}

/**
 * Reads `path` (a file, or every file below a directory) so its pages are in the page cache. This
 * VM drops clean page cache by itself within seconds (a 256 MiB file read once was 86% resident
 * 3 s later and 78% after 12 s; a `kdamond` thread runs, DAMON's proactive page-out, and
 * /proc/vmstat counts no reclaim), so the benches read their files again before every run, and
 * the read benches also pin theirs ({@link pinResident}).
 */
export function warm(path: string): void {
  if (Deno.statSync(path).isDirectory) {
    for (const e of Deno.readDirSync(path)) warm(`${path}/${e.name}`);
    return;
  }
  const chunk = new Uint8Array(1 << 20);
  const f = Deno.openSync(path);
  while (f.readSync(chunk) !== null) { /* into the page cache */ }
  f.close();
}

/** The libc calls {@link pinResident} makes. */
const PIN_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  mlock: { parameters: ["pointer", "usize"], result: "i32" },
} as const;
let libc: Deno.DynamicLibrary<typeof PIN_SYMBOLS> | null = null;
/** Files mapped and locked, by path (for the life of the process). */
const pinned = new Set<string>();
let pinFailure: string | null = null;

/**
 * Maps `path` read-only and locks the mapping, so the kernel keeps its pages in the page cache
 * while this process lives: every reader, ours and the peers', then finds all of it there. Once
 * per path. If locking fails (no CAP_IPC_LOCK and a low RLIMIT_MEMLOCK), says so once on stderr
 * and goes on with the pages merely read. Used by the read benches, whose runs read at random
 * over the whole file; a copy reads its source once, right after {@link warm} read it, and its
 * source is left unlocked as a user's would be (eight alternating pairs of 1 GiB copies, source
 * locked or not: medians 0.59 and 0.55 s, within this VM's noise).
 */
export function pinResident(path: string): void {
  if (pinned.has(path) || pinFailure !== null) return;
  const size = Deno.statSync(path).size;
  if (size === 0) return;
  libc ??= Deno.dlopen("libc.so.6", PIN_SYMBOLS);
  const PROT_READ = 1, MAP_SHARED = 1, MAP_FAILED = -1n;
  const fd = libc.symbols.open(new TextEncoder().encode(path + "\0"), 0);
  if (fd < 0) throw new Error(`bench: cannot open ${path} to keep it cached`);
  const address = libc.symbols.mmap(null, BigInt(size), PROT_READ, MAP_SHARED, fd, 0n);
  libc.symbols.close(fd);
  if (address === null || Deno.UnsafePointer.value(address) === BigInt.asUintN(64, MAP_FAILED)) {
    pinFailure = `mmap of ${path} failed`;
  } else if (libc.symbols.mlock(address, BigInt(size)) !== 0) {
    pinFailure = `mlock of ${path} failed (CAP_IPC_LOCK or a higher RLIMIT_MEMLOCK needed)`;
  } else {
    pinned.add(path);
    return;
  }
  console.error(`bench: ${pinFailure}: data files are read before each run but may not stay cached`);
}

const COMPARE_CHUNK = 16 << 20;
let compareA: Uint8Array<ArrayBuffer> | null = null;
let compareB: Uint8Array<ArrayBuffer> | null = null;

/** Fills `buf` from `file` as far as the file goes; returns the bytes read. */
function readUpTo(file: Deno.FsFile, buf: Uint8Array): number {
  let n = 0;
  while (n < buf.length) {
    const got = file.readSync(buf.subarray(n));
    if (got === null) break;
    n += got;
  }
  return n;
}

/**
 * Whether files `a` and `b` hold the same bytes (read through, compared 4 bytes at a time): a
 * copy is checked byte for byte, so a fast copy that is wrong (cut short, holes, another
 * file's data) fails the bench instead of winning it.
 */
export function sameBytes(a: string, b: string): boolean {
  compareA ??= new Uint8Array(COMPARE_CHUNK);
  compareB ??= new Uint8Array(COMPARE_CHUNK);
  const wa = new Int32Array(compareA.buffer), wb = new Int32Array(compareB.buffer);
  using fa = Deno.openSync(a);
  using fb = Deno.openSync(b);
  for (;;) {
    const na = readUpTo(fa, compareA), nb = readUpTo(fb, compareB);
    if (na !== nb) return false;
    const words = na >>> 2;
    for (let i = 0; i < words; i++) if (wa[i] !== wb[i]) return false;
    for (let i = words << 2; i < na; i++) if (compareA[i] !== compareB[i]) return false;
    if (na < COMPARE_CHUNK) return true;
  }
}

/**
 * Checks that `copy` is a copy of the regular files and directories below `original`: the same
 * names, each file the same bytes ({@link sameBytes}). Throws what differs first.
 */
export function checkTreeCopy(original: string, copy: string): void {
  const names = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const [want, got] = [names(original), names(copy)];
  if (want.join("/") !== got.join("/")) {
    throw new Error(`copy ${copy} holds ${got.length} entries, ${original} ${want.length}`);
  }
  for (const name of want) {
    const [o, c] = [`${original}/${name}`, `${copy}/${name}`];
    if (Deno.lstatSync(o).isDirectory) checkTreeCopy(o, c);
    else if (!sameBytes(o, c)) throw new Error(`copy ${c} differs from ${o}`);
  }
}

function isTmpfs(dir: string): boolean {
  return readText("/proc/mounts").split("\n").some((line) => {
    const [, mountPoint, type] = line.split(" ");
    return mountPoint === dir && type === "tmpfs";
  });
}

/**
 * A tmpfs directory for copies: `URING_BENCH_TMPFS` if set, else a tmpfs the bench mounts (as
 * root) at `DATA_DIR-tmpfs`. Not /dev/shm: Deno asks for --allow-all to touch anything under /dev,
 * and the cp CLI runs with the permissions its task grants. Returns the path, or a reason.
 */
export async function tmpfsDir(): Promise<{ path: string } | { missing: string }> {
  const env = Deno.env.get("URING_BENCH_TMPFS");
  if (env) return { path: env };
  const dir = `${DATA_DIR}-tmpfs`;
  if (isTmpfs(dir)) return { path: dir };
  Deno.mkdirSync(dir, { recursive: true });
  const r = Deno.uid() === 0 ? await run("mount", ["-t", "tmpfs", "-o", "size=4g", "tmpfs", dir]) : null;
  if (r?.code === 0 && isTmpfs(dir)) return { path: dir };
  return {
    missing: `no tmpfs: could not mount one at ${dir} (${r ? r.stderr.trim() : "not root"}); ` +
      "set URING_BENCH_TMPFS to a tmpfs directory outside /dev",
  };
}

/** Formats a byte count (KiB/MiB/GiB). */
export function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(n % (1 << 30) ? 1 : 0)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(n % (1 << 20) ? 1 : 0)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

/**
 * A xorshift32 picker of random block numbers in `[0, blocks)`, seeded with `seed`: the same
 * cheap, allocation-free sequence the C peers use.
 */
export function randomBlocks(seed: number): (blocks: number) => number {
  let rng = seed | 0;
  return (blocks: number): number => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) % blocks;
  };
}

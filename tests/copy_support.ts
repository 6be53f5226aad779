/**
 * Test support for copyFile/copyTree and the cp CLI: random files, SHA-256 hashes, a generated
 * tree with awkward names, entry-by-entry tree comparison, a size-limited tmpfs for ENOSPC,
 * running code as an unprivileged user (root reads everything), and running the CLI.
 */

import assert from "node:assert/strict";
import type { Uring } from "../mod.ts";
import { MEMBERS, TAG_STRIDE } from "../src/copy_small.ts";
import { sharedCopyRing } from "../src/copy_shared_ring.ts";
import { type Backend, getSys } from "../src/sys.ts";
import { type RawClient, rawRing } from "../src/uring.ts";

/** SHA-256 of `bytes`, as hex. */
export async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of a file's content. */
export async function sha256File(path: string): Promise<string> {
  return await sha256(await Deno.readFile(path));
}

/** `n` random bytes (crypto.getRandomValues, 64 KiB at a time). */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(n, at + 65536)));
  return bytes;
}

/** Writes `size` random bytes to `path` with `mode`; returns their SHA-256. */
export async function randomFile(path: string, size: number, mode = 0o644): Promise<string> {
  const bytes = randomBytes(size);
  await Deno.writeFile(path, bytes, { mode });
  await Deno.chmod(path, mode);
  return await sha256(bytes);
}

/** Permission bits of `path` (not following symlinks). */
/**
 * Makes `path` a sparse file of `size` bytes with data (a repeating pattern) at each
 * `[offset, length]` of `pieces`; returns false (and says so) when the file system keeps no holes.
 */
export function sparseFile(path: string, size: number, pieces: Array<[number, number]>): boolean {
  {
    using f = Deno.openSync(path, { write: true, create: true, truncate: true });
    f.truncateSync(size);
    for (const [at, length] of pieces) {
      f.seekSync(at, Deno.SeekMode.Start);
      const bytes = new Uint8Array(length).map((_, i) => 1 + (i % 251));
      let done = 0;
      while (done < bytes.length) done += f.writeSync(bytes.subarray(done));
    }
  }
  if (Deno.statSync(path).blocks! * 512 < size) return true;
  console.log("  (this file system keeps no holes: skipped)");
  return false;
}

export function permOf(path: string): number {
  return Deno.lstatSync(path).mode! & 0o7777;
}

/** One entry of a tree listing. */
export interface TreeEntry {
  type: "file" | "dir" | "symlink" | "other";
  mode: number;
  size?: number;
  hash?: string;
  target?: string;
}

/** Every entry below `root` (relative path → type, mode, content hash, link target). */
export async function listTree(root: string): Promise<Map<string, TreeEntry>> {
  const out = new Map<string, TreeEntry>();
  const walk = async (dir: string, rel: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      const r = rel === "" ? e.name : `${rel}/${e.name}`;
      const info = await Deno.lstat(path);
      const mode = info.mode! & 0o7777;
      if (info.isSymlink) out.set(r, { type: "symlink", mode, target: await Deno.readLink(path) });
      else if (info.isDirectory) {
        out.set(r, { type: "dir", mode });
        await walk(path, r);
      } else if (info.isFile) {
        out.set(r, { type: "file", mode, size: info.size, hash: await sha256File(path) });
      } else out.set(r, { type: "other", mode });
    }
  };
  await walk(root, "");
  return out;
}

/** Asserts that the trees at `a` and `b` match entry for entry (symlink modes aside). */
export async function assertSameTree(a: string, b: string): Promise<Map<string, TreeEntry>> {
  const left = await listTree(a);
  const right = await listTree(b);
  const missing = [...left.keys()].filter((k) => !right.has(k));
  const extra = [...right.keys()].filter((k) => !left.has(k));
  assert.deepEqual(missing, [], "entries missing from the copy");
  assert.deepEqual(extra, [], "entries only in the copy");
  for (const [path, entry] of left) {
    const other = right.get(path)!;
    if (entry.type === "symlink") {
      assert.deepEqual({ ...other, mode: 0 }, { ...entry, mode: 0 }, path);
    } else {
      assert.deepEqual(other, entry, path);
    }
  }
  return left;
}

/** Every name below `root` that is a leftover temporary file of a copy. */
export function tempLeftovers(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      if (e.name.includes(".uring-tmp-")) found.push(`${dir}/${e.name}`);
      if (e.isDirectory) walk(`${dir}/${e.name}`);
    }
  };
  walk(root);
  return found;
}

/**
 * The files below `root` that this process still has a descriptor open on, as `fd -> path`; a
 * copy must leave none behind. Deno's own file API wants `--allow-all` for `/proc/self/fd`, so a
 * child `ls` lists this process's descriptors instead.
 */
export async function openUnder(root: string): Promise<string[]> {
  const dir = `/proc/${Deno.pid}/fd`;
  const out = await new Deno.Command("ls", { args: ["-l", dir], stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    // A descriptor closed while ls listed them (this process's runtime opens and closes some of
    // its own, e.g. for the child itself) is "cannot access ...: No such file"; anything else fails.
    const errors = new TextDecoder().decode(out.stderr).split("\n").filter((line) =>
      line !== "" && !/cannot access '[^']*': No such file or directory$/.test(line)
    );
    if (errors.length > 0 || text === "") throw new Error(`ls -l ${dir} failed: ${errors.join("; ")}`);
  }
  const open: string[] = [];
  for (const line of text.split("\n")) {
    const m = / (\d+) -> (.*)$/.exec(line);
    if (m !== null && m[2].startsWith(`${root}/`)) open.push(`${m[1]} -> ${m[2]}`);
  }
  return open;
}

/**
 * Watches the pipes made through the system layer of `backend` (the splice lanes' and the
 * one-block chains'): `open()` lists the ends made since and not closed through it. Precise where
 * counting the process's pipes is not (Deno opens and closes pipes of its own, for child processes).
 * `using` puts the layer back.
 */
export function trackPipes(backend: Backend): { open(): number[] } & Disposable {
  const sys = getSys(backend);
  const { pipe, close } = sys;
  const ends = new Set<number>();
  sys.pipe = (fds, size) => {
    const r = pipe.call(sys, fds, size);
    if (r >= 0) ends.add(fds[0]).add(fds[1]);
    return r;
  };
  sys.close = (fd) => {
    ends.delete(fd);
    return close.call(sys, fd);
  };
  return {
    open: () => [...ends],
    [Symbol.dispose]: () => {
      sys.pipe = pipe;
      sys.close = close;
    },
  };
}

/** A file's identity and content, to prove a source was not modified. */
export async function fingerprint(path: string): Promise<string> {
  const info = await Deno.stat(path);
  return `${info.mode}:${info.size}:${info.mtime?.getTime()}:${await sha256File(path)}`;
}

const NAMES = [
  "plain",
  "with space",
  "  two  spaces ",
  "-leading-dash",
  "--double-dash",
  "ünïcödé",
  "日本語のファイル",
  "emoji 🎉",
  "tab\tname",
  "dots...",
  ".hidden",
  "quote'single",
  'quote"double',
  "back\\slash",
  "new\nline",
];

/** What {@link makeTree} made. */
export interface TreeStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

/**
 * Generates a tree of `files` regular files in nested folders (up to 4 deep) whose names have
 * spaces, unicode, leading dashes, quotes and newlines; sizes mostly small (0 B..8 KiB) with a
 * few of 200 KiB; assorted modes; plus symlinks (relative, absolute, dangling, to a directory)
 * and empty directories. Deterministic for a given `seed`.
 */
export async function makeTree(root: string, files: number, seed = 1): Promise<TreeStats> {
  let state = seed >>> 0;
  const rand = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state % n;
  };
  const stats: TreeStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  await Deno.mkdir(root, { recursive: true });
  const dirs = [root];
  const modes = [0o644, 0o600, 0o755, 0o444, 0o640, 0o700];
  for (let d = 0; d < Math.max(1, Math.floor(files / 40)); d++) {
    const parent = dirs[rand(dirs.length)];
    const depth = parent.slice(root.length).split("/").length;
    const base = depth > 4 ? root : parent;
    const dir = `${base}/${NAMES[rand(NAMES.length)]} d${d}`;
    await Deno.mkdir(dir);
    dirs.push(dir);
    stats.dirs++;
  }
  const pool = randomBytes(256 * 1024);
  const writes: Promise<void>[] = [];
  const made: string[] = [];
  for (let i = 0; i < files; i++) {
    const dir = dirs[rand(dirs.length)];
    const path = `${dir}/${NAMES[rand(NAMES.length)]} ${i}`;
    const size = i % 500 === 7 ? 200 * 1024 + rand(1000) : rand(8193);
    const start = rand(pool.length - size);
    const mode = modes[rand(modes.length)];
    made.push(path);
    stats.files++;
    stats.bytes += size;
    writes.push(
      Deno.writeFile(path, pool.subarray(start, start + size), { mode }).then(() => Deno.chmod(path, mode)),
    );
    if (writes.length >= 64) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
  const links: Array<[string, string]> = [
    [`${dirs[1 % dirs.length]}/link to file`, made[0]], // absolute
    [`${root}/-link-relative`, made[1].slice(root.length + 1)], // relative
    [`${root}/dangling link`, "does/not/exist"],
    [`${root}/link to dir ü`, dirs[dirs.length - 1].slice(root.length + 1)],
    [`${dirs[dirs.length - 1]}/loop`, "loop"],
  ];
  for (const [path, target] of links) {
    await Deno.symlink(target, path);
    stats.symlinks++;
  }
  for (const name of ["empty dir", "-empty dash", "empty ✓"]) {
    await Deno.mkdir(`${root}/${name}`);
    stats.dirs++;
  }
  await Deno.mkdir(`${root}/empty dir/nested empty`);
  stats.dirs++;
  // A directory with an unusual mode (set after its contents).
  const locked = `${root}/read-only dir`;
  await Deno.mkdir(locked);
  await Deno.writeTextFile(`${locked}/inside`, "inside");
  await Deno.chmod(locked, 0o555);
  stats.dirs++;
  stats.files++;
  stats.bytes += 6;
  return stats;
}

/** Result of {@link withTmpfs}: the mount point, or why none could be mounted. */
export type Tmpfs = { path: string; skip?: undefined } | { path?: undefined; skip: string };

/**
 * Mounts a tmpfs of `size` (e.g. `"1m"`) on a new directory under `parent`, runs `fn` with it
 * and unmounts it afterwards. When mounting is not permitted, `fn` gets `{ skip }` saying why.
 */
export async function withTmpfs<T>(
  parent: string,
  size: string,
  fn: (mount: Tmpfs) => Promise<T>,
): Promise<T> {
  const path = `${parent}/tmpfs-${size}`;
  await Deno.mkdir(path, { recursive: true });
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path] })
      .output();
  } catch (e) {
    return await fn({ skip: `cannot run mount: ${(e as Error).message}` });
  }
  if (!out.success) {
    return await fn({
      skip: `mount -t tmpfs is not permitted here: ${new TextDecoder().decode(out.stderr).trim()}`,
    });
  }
  try {
    return await fn({ path });
  } finally {
    const umount = await new Deno.Command("umount", { args: [path] }).output();
    if (!umount.success) {
      await new Deno.Command("umount", { args: ["-l", path] }).output();
    }
  }
}

/** The repository root. */
export const ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
/** The CLI module. */
export const CP: string = `${ROOT}/src/cli/cp.ts`;
/**
 * The permissions `deno task cp` runs the CLI with (not its `--v8-flags=--no-lazy`: a start-up
 * tweak whose code cache would not suit the test runner's own, which loads the same modules).
 */
export const CP_FLAGS = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"];

/** Output of one CLI run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `cp` with `args` in `cwd` (a child `deno run`); `env` adds environment variables. */
export async function runCp(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; shell?: string } = {},
): Promise<CliRun> {
  const argv = ["run", ...CP_FLAGS, CP, ...args];
  // `shell`: a shell command run first, in the same process (`umask 077`, `ulimit -n 64`).
  const [command, commandArgs] = options.shell === undefined
    ? [Deno.execPath(), argv]
    : ["sh", ["-c", `${options.shell} && exec "$0" "$@"`, Deno.execPath(), ...argv]];
  const out = await new Deno.Command(command, {
    args: commandArgs,
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Why code cannot run as an unprivileged user here, or `undefined` when it can. */
export function unprivilegedUnavailable(): string | undefined {
  if (Deno.uid() !== 0) return undefined; // already unprivileged: chmod 000 works directly
  try {
    const out = new Deno.Command("setpriv", { args: ["--version"] }).outputSync();
    if (!out.success) return "setpriv does not run";
  } catch {
    return "setpriv (util-linux) is not installed";
  }
  return undefined;
}

/**
 * The command prefix that runs a program as user `nobody` when this process is root (setpriv),
 * or nothing when it already is unprivileged. `DENO_DIR` must then be writable by that user.
 */
export function asNobody(): string[] {
  if (Deno.uid() !== 0) return [];
  return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
}

/** Runs `deno run` with `args` as an unprivileged user (see {@link asNobody}). */
export async function runUnprivileged(args: string[], denoDir: string, cwd?: string): Promise<CliRun> {
  const prefix = asNobody();
  const command = prefix.length > 0 ? prefix[0] : Deno.execPath();
  const rest = prefix.length > 0 ? [...prefix.slice(1), Deno.execPath(), "run", ...args] : ["run", ...args];
  const out = await new Deno.Command(command, {
    args: rest,
    cwd,
    env: { NO_COLOR: "1", DENO_DIR: denoDir, HOME: denoDir },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A directory for large sparse files: tmpfs (/dev/shm) when there is one, where holes read fast. */
export function sparseParent(): string | undefined {
  try {
    if (Deno.statSync("/dev/shm").isDirectory) return "/dev/shm";
  } catch {
    // none
  }
  return undefined;
}

/**
 * Hooks `uring`'s raw channel (call it before the one-block chains attach) so that the first chain
 * that succeeds reaches `instead(first, client)` in place of its one CQE, where `first` is the tag
 * of the chain's first member (add the member's index: `first + 2` is the data member); `instead`
 * must complete that lane itself. Every other CQE passes through. Returns a counter of the chains
 * diverted (0 or 1).
 */
export function divertFirstChain(
  uring: Uring,
  instead: (first: number, client: RawClient) => void,
): { diverted: number } {
  const raw = rawRing(uring);
  const attach = raw.attach;
  const counter = { diverted: 0 };
  raw.attach = (client) =>
    attach({
      complete(tag, res) {
        if (counter.diverted === 0 && tag % TAG_STRIDE === MEMBERS - 1 && res >= 0) {
          counter.diverted++;
          instead(tag - (MEMBERS - 1), client);
        } else {
          client.complete(tag, res);
        }
      },
      fail: (e) => client.fail(e),
    });
  return counter;
}

/** Waits (up to 2 s) until this thread's shared copy ring has closed; its last use was before. */
export async function sharedRingClosed(): Promise<boolean> {
  for (let i = 0; i < 200 && sharedCopyRing() !== undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return sharedCopyRing() === undefined;
}

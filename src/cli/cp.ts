/**
 * `deno task cp SRC DST`: copy files and (with `-r`) directory trees through io_uring, with a
 * progress bar. See `--help` ({@link HELP}) for the flags.
 *
 * ```sh
 * deno task cp -r --progress big-dir /mnt/backup/
 * ```
 *
 * @module
 */

import { copyFile, trimSlashes } from "../copy.ts";
import { createCopyUring, FORCE_UNAVAILABLE_ENV, isUnavailableError } from "../copy_context.ts";
import { codeOf, CopyTreeError, dirnameOf, OVERWRITE_HINT, withErrnoNamed } from "../copy_errors.ts";
import { removeIncompleteNow } from "../copy_incomplete.ts";
import type { CopyProgress } from "../copy_options.ts";
import { copyTree } from "../copy_tree.ts";
import type { Uring } from "../uring.ts";
import type { LaneShelf } from "../copy_small.ts";
import { keepLanesFor } from "../copy_shared_ring.ts";
import { type CpArgs, HELP, parseCpArgs } from "./args.ts";
import { InOrder } from "./in_order.ts";
import { ProgressBar } from "./progress.ts";

/** Where `cp` writes, and what it knows about the terminal (replaceable in tests). */
export interface CpIo {
  /** Writes text to standard output. */
  out(text: string): void;
  /** Writes text to standard error. */
  err(text: string): void;
  /** Whether standard output is a terminal (the progress bar's default). */
  isTerminal: boolean;
  /** Terminal width in columns. */
  columns: number;
  /**
   * Resolves once what was written is out, or after `timeoutMs` (written asynchronously: see
   * {@link streamWriter}); absent where writes are immediate.
   */
  flush?(timeoutMs: number): Promise<void>;
}

const encoder = new TextEncoder();

/** What a stream's queue may hold before more text is dropped (a reader that never reads). */
const MAX_QUEUED_BYTES = 16 * 1024 * 1024;
/** How long a stream that said `WouldBlock` (someone set its pipe `O_NONBLOCK`) is left alone. */
const WOULD_BLOCK_RETRY_MS = 10;

/**
 * Writes to `files` (standard output and error) from one queue, in the order written, with
 * asynchronous writes: a reader that does not read (`cp -r … 2>&1 | less`, stuck at its first
 * page) blocks a thread of Deno's pool, not the main thread, so Ctrl-C and SIGTERM are still heard
 * (a blocking write kept them from running: only SIGKILL ended the copy, which skipped its
 * clean-up). One queue for both keeps a terminal's lines in order (the bar's clearing before the
 * error line that follows it). From a stream's failure on, nothing more is written to it: a closed
 * pipe (`cp --progress … | head`) or a terminal gone must not end a copy partway (Deno ignores
 * SIGPIPE, so the write throws `BrokenPipe`); the exit status still tells how the copy went.
 * `WouldBlock` is not a failure: the write is tried again shortly.
 */
function streamWriter(
  files: readonly { write(p: Uint8Array): Promise<number> }[],
): { write(stream: number, text: string): void; flush(timeoutMs: number): Promise<void> } {
  const queue: { stream: number; bytes: Uint8Array }[] = [];
  let queued = 0;
  const broken = files.map(() => false);
  let draining: Promise<void> | null = null;
  const drain = async (): Promise<void> => {
    while (queue.length > 0) {
      const next = queue[0];
      if (broken[next.stream]) {
        queue.shift();
        queued -= next.bytes.length;
        continue;
      }
      try {
        const n = await files[next.stream].write(next.bytes);
        queued -= n;
        if (n >= next.bytes.length) queue.shift();
        else next.bytes = next.bytes.subarray(n);
      } catch (e) {
        if (e instanceof Deno.errors.WouldBlock) {
          await new Promise((resolve) => setTimeout(resolve, WOULD_BLOCK_RETRY_MS));
          continue;
        }
        broken[next.stream] = true;
      }
    }
    draining = null;
  };
  return {
    write(stream, text) {
      if (broken[stream] || queued > MAX_QUEUED_BYTES) return;
      const bytes = encoder.encode(text);
      queue.push({ stream, bytes });
      queued += bytes.length;
      draining ??= drain();
    },
    async flush(timeoutMs) {
      if (draining === null) return;
      if (timeoutMs === Infinity) return await draining; // (setTimeout would take it for 0)
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        draining,
        new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
      ]);
      clearTimeout(timer);
    },
  };
}

/** The real standard streams. */
export function processIo(): CpIo {
  let columns = 80;
  const isTerminal = Deno.stdout.isTerminal();
  if (isTerminal) {
    try {
      // (A terminal that says it has no columns, as one with no size set does: keep 80.)
      columns = Deno.consoleSize().columns || columns;
    } catch {
      // not a console after all
    }
  }
  const writer = streamWriter([Deno.stdout, Deno.stderr]);
  return {
    out: (text) => writer.write(0, text),
    err: (text) => writer.write(1, text),
    isTerminal,
    columns,
    flush: (timeoutMs) => writer.flush(timeoutMs),
  };
}

function basename(path: string): string {
  const p = trimSlashes(path);
  return p.slice(p.lastIndexOf("/") + 1);
}

/**
 * Where `src` goes in the existing directory `dir`: `dir/NAME`; for a source named `.` or `..`
 * (or `/`), `dir` itself, as GNU cp does (its contents are copied into `dir`). `dir/..` would
 * be `dir`'s parent: the copy would land, and overwrite, outside the destination.
 */
function intoDirectory(dir: string, src: string): string {
  const name = basename(src);
  return name === "" || name === "." || name === ".." ? dir : `${trimSlashes(dir)}/${name}`;
}

/**
 * What identifies a copy of `src` (looked at as `info`) to `dst` within one run, as GNU cp tells
 * a source "specified more than once": the destination, the file (device and inode), and the
 * directory entry it was named by (its directory's device and inode, and its name), so `./a` is
 * `a` again but a hard link or symlink to `a` elsewhere is another source.
 */
function copyKey(src: string, info: Deno.FileInfo, dst: string, parents: Map<string, string>): string {
  return `${dst}\0${info.dev}:${info.ino}\0${parentKey(src, parents)}\0${basename(src)}`;
}

/**
 * The id (`dev:ino`) of the directory `src` is named in (followed through symlinks), looked at
 * once per run (`parents`); its path when it cannot be looked at.
 */
function parentKey(src: string, parents: Map<string, string>): string {
  const parentPath = dirnameOf(src);
  let where = parents.get(parentPath);
  if (where === undefined) {
    const parent = statOrNull(parentPath);
    where = parent === null ? parentPath : `${parent.dev}:${parent.ino}`;
    parents.set(parentPath, where);
  }
  return where;
}

/**
 * `Deno.statSync(path)`, or null when it fails. (On this thread, as GNU cp looks at its
 * arguments: Deno's asynchronous `stat` cost ~15 µs of the main thread's time a call, which
 * thousands of sources given at once feel.)
 */
function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch {
    return null;
  }
}

/**
 * `text` with its control characters escaped (`\n` as `\\n`, others as `\\xHH`), so that a
 * file name with a newline in it cannot split or forge a line of the error output.
 */
export function oneLine(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f]/g, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`;
  });
}

/** What Deno puts in an argument for bytes that are not UTF-8. */
const REPLACEMENT = "\uFFFD";

/**
 * Why a path argument with U+FFFD is refused: Deno decodes arguments as UTF-8, replacing bytes
 * that are not with U+FFFD, so the file meant cannot be named, and the path as given may name
 * another file (one whose name has that character), which would be copied in its place.
 */
function unnameable(path: string): string {
  return `'${path}': the name has bytes that are not UTF-8 (shown as U+FFFD), and Deno passes such an ` +
    "argument on changed, so the file meant cannot be named (rename it)";
}

function isAbortError(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

/**
 * The signals that stop a copy cleanly (what `kill`, `timeout` and service managers send, and a
 * closed terminal), each with the exit status the shell gives a process it ended (128 + number).
 */
const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/**
 * A repeat of the stopping signal within this many ms is the same event, not a second one:
 * under `deno task` one Ctrl-C arrives twice (the terminal sends it to the whole process group,
 * and `deno task` forwards its own copy to the child).
 */
const SAME_SIGNAL_MS = 100;

/** Deno's advice when a path needs `--allow-all` (under `/dev`, `/proc` or `/sys`). */
const ALLOW_ALL_HINT = "run again with the --allow-all flag";

/** That advice for this CLI: `deno task cp` fixes its own flags, so the user cannot follow Deno's. */
const allowAllHint = "which deno task cp does not have: run deno run -A " +
  `${decodeURIComponent(new URL(import.meta.url).pathname)} instead`;

/** Whether `path` is a symlink (not followed); false when it is missing or cannot be looked at. */
function isSymlink(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSymlink;
  } catch {
    return false;
  }
}

/**
 * How many file sources of one block or less are copied at once (each a few descriptors;
 * `copyFile` waits for others to end when the process runs out). One after another, a small
 * file's copy is mostly waiting: a chain through the kernel's workers, then the mode and the
 * rename, each a round trip. Larger files are copied one at a time.
 */
const SOURCES_AT_ONCE = 32;

/** Adds `sign` times the counts of `p` to `sum`. */
function addProgress(
  sum: { bytes: number; files: number; totalBytes: number; totalFiles: number },
  p: CopyProgress,
  sign: 1 | -1,
): void {
  sum.bytes += sign * p.bytes;
  sum.files += sign * p.files;
  sum.totalBytes += sign * p.totalBytes;
  sum.totalFiles += sign * p.totalFiles;
}

/** Runs `cp` with `argv` (without the program name); resolves with the exit status. */
export async function main(argv: readonly string[], io: CpIo = processIo()): Promise<number> {
  const parsed = parseCpArgs(argv);
  if (parsed.kind === "help") {
    io.out(HELP);
    return 0;
  }
  if (parsed.kind === "error") {
    io.err(`cp: ${parsed.message}\nTry 'deno task cp --help' for more information.\n`);
    return 2;
  }
  return await run(parsed.args, io);
}

async function run(args: CpArgs, io: CpIo): Promise<number> {
  if (args.cwd !== undefined && args.cwd.includes(REPLACEMENT)) {
    // The directory `deno task` was run from cannot be named (see unnameable): relative paths
    // would be taken from another directory, one whose name has that character.
    if (![...args.sources, args.destination].every((p) => p.startsWith("/"))) {
      io.err(
        `cp: the current directory ('${oneLine(args.cwd)}') has bytes in its name that are not UTF-8 ` +
          "(shown as U+FFFD), and Deno passes it on changed: give absolute paths, or run from elsewhere\n",
      );
      return 2;
    }
  } else if (args.cwd !== undefined) {
    try {
      Deno.chdir(args.cwd);
    } catch (e) {
      // (Deno says "(os error 20)": name the errno, as the copy's own errors do.)
      const why = withErrnoNamed((e as Error).message, codeOf(e));
      io.err(`cp: cannot change to directory '${oneLine(args.cwd)}': ${oneLine(why)}\n`);
      return 2;
    }
  }
  if (args.destination.includes(REPLACEMENT)) {
    io.err(`cp: ${oneLine(unnameable(args.destination))}\n`);
    return 1;
  }
  const showProgress = args.progress ?? io.isTerminal;
  const bar = showProgress ? new ProgressBar({ write: io.out, columns: io.columns }) : undefined;
  let failures = 0;
  const fail = (message: string) => {
    bar?.clear();
    const text = oneLine(message).replace(OVERWRITE_HINT, "use -f/--force to replace it")
      .replace(ALLOW_ALL_HINT, allowAllHint);
    io.err(`cp: ${text}\n`);
    failures++;
  };

  // (The signal listeners come first: at a low `ulimit -n` the ring may take the last
  // descriptors, and Deno panics when a listener cannot get one.)
  const controller = new AbortController();
  /** The signal that stopped the copy, or null. */
  let interrupted: StopSignal | null = null;
  let interruptedAt = 0;
  const onSignal = (signal: StopSignal) => {
    if (interrupted === signal && performance.now() - interruptedAt < SAME_SIGNAL_MS) return;
    if (interrupted !== null) {
      // A second signal: leave now, without waiting for the copy to clean up. The files still
      // being written go first, so that none is left looking complete.
      removeIncompleteNow();
      Deno.exit(STOP_SIGNALS[interrupted]);
    }
    interrupted = signal;
    interruptedAt = performance.now();
    controller.abort(new DOMException(`interrupted by ${signal}`, "AbortError"));
  };
  const listeners = new Map<StopSignal, () => void>();
  for (const signal of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    const listener = () => onSignal(signal);
    try {
      Deno.addSignalListener(signal, listener);
      listeners.set(signal, listener);
    } catch {
      // no signals here (not a main thread): the signal simply ends the process
    }
  }

  // One ring for every source; if io_uring is unavailable, say so once and let the copies fall
  // back to Deno's own APIs.
  let uring: Uring | undefined;
  let lanes: LaneShelf | undefined;
  try {
    uring = createCopyUring(args.queueDepth, args.sqpoll);
    lanes = keepLanesFor(uring); // (one-block lanes kept from copy to copy, as on the shared ring)
  } catch (e) {
    if (!isUnavailableError(e)) {
      fail((e as Error).message);
      for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
      return 1;
    }
    if (!args.quiet) {
      const how = args.direct ? " (through the page cache: --direct needs io_uring)" : "";
      io.err(
        `cp: io_uring is unavailable (${e.code}), copying with Deno's file APIs instead${how}: ${e.message}\n`,
      );
    }
  }

  try {
    const destInfo = statOrNull(args.destination);
    const intoDir = destInfo?.isDirectory === true;
    if (args.sources.length > 1 && !intoDir) {
      fail(`target '${args.destination}' is not a directory`);
      return 1;
    }
    /** What the sources copied before the ones under way copied (for the bar). */
    const done = { bytes: 0, files: 0, totalBytes: 0, totalFiles: 0 };
    /** What the file copies under way have copied so far, together. */
    const live = { bytes: 0, files: 0, totalBytes: 0, totalFiles: 0 };
    /** What this run has copied where (see {@link copyKey}), and the sources' directories' ids. */
    const copied = new Set<string>();
    const parents = new Map<string, string>();
    /** The files this run has written (not directories: those merge), by destination. */
    const filesWritten = new Set<string>();
    /** The file copies under way (they never reject), by destination. */
    const running = new Map<string, Promise<void>>();
    const inOrder = new InOrder();
    let abortSaid = false;
    /** The path the bar showed last (undefined: it has not been drawn). */
    let lastPath: string | undefined;
    for (let i = 0; i < args.sources.length && interrupted === null; i++) {
      const src = args.sources[i];
      const dst = intoDir ? intoDirectory(args.destination, src) : args.destination;
      const more = i < args.sources.length - 1;
      // Several file sources are copied at once, their messages in the order of the sources.
      const turn = inOrder.open();
      const failHere = (message: string) => turn.say(() => fail(message));
      let last: CopyProgress | undefined;
      const onProgress = bar &&
        ((p: CopyProgress) => {
          if (last !== undefined) addProgress(live, last, -1);
          addProgress(live, p, 1);
          last = p;
          if (p.path !== undefined) lastPath = p.path;
          bar.update({
            bytes: done.bytes + live.bytes,
            files: done.files + live.files,
            totalBytes: done.totalBytes + live.totalBytes,
            totalFiles: done.totalFiles + live.totalFiles,
            scanning: p.scanning || more || running.size > 1,
            ...(p.path === undefined ? {} : { path: p.path }),
          });
        });
      /** Moves the source's progress from the live count to the done one. */
      const settle = () => {
        if (last === undefined) return;
        addProgress(live, last, -1);
        addProgress(done, last, 1);
        last = undefined;
      };
      /** Says why the copy failed; false when it was interrupted (nothing more is started). */
      const failed = (e: unknown): boolean => {
        if (isAbortError(e) || interrupted !== null) {
          // (A tree's failures before the interruption come with it: reported first. Copies under
          // way at once all end with the interruption: it is said once.)
          const before = (e as { errors?: unknown }).errors;
          if (Array.isArray(before)) { for (const error of before) failHere((error as Error).message); }
          if (!abortSaid) failHere((e as Error).message);
          abortSaid = true;
          return false;
        }
        if (e instanceof CopyTreeError) {
          for (const error of e.errors) failHere(error.message);
        } else {
          failHere((e as Error).message);
        }
        return true;
      };
      const options = {
        queueDepth: args.queueDepth,
        blockSize: args.blockSize,
        overwrite: args.force,
        preserve: args.preserve,
        signal: controller.signal,
        ...(uring === undefined ? {} : { uring }),
        sqpoll: args.sqpoll,
        direct: args.direct,
        splice: args.splice,
        ...(onProgress ? { onProgress } : {}),
      };
      if (src.includes(REPLACEMENT)) {
        failHere(unnameable(src));
        turn.end();
        continue;
      }
      if (running.size > 0 && isSymlink(src)) {
        // The link may lead to a file a copy under way is writing (`cp a l DIR`, l a link to
        // DIR/a): it is followed once those copies have ended, as one after another would. (A
        // source reached through a linked directory into DIR has a running copy's destination
        // name: it waits for that copy below.)
        await Promise.all(running.values());
      }
      const srcInfo = statOrNull(src);
      // Two sources for one destination in this run, as GNU cp: the same one again (the same
      // file by the same directory entry: `a` and `./a`, not a link to it) is skipped with a
      // warning; another file would replace the file this run just wrote (-f or not), so it is
      // refused. Directories merge, as in GNU cp. (A file named with a trailing slash is left to
      // the copy, which refuses it.)
      const checked = srcInfo !== null && (srcInfo.isDirectory || !src.endsWith("/"));
      const copy = checked ? copyKey(src, srcInfo, dst, parents) : "";
      if (checked && copied.has(copy)) {
        if (!args.quiet) {
          const what = srcInfo.isDirectory ? "directory" : "file";
          turn.say(() => {
            bar?.clear();
            io.err(`cp: warning: source ${what} '${oneLine(src)}' specified more than once\n`);
          });
        }
        turn.end();
        continue;
      }
      if (srcInfo?.isDirectory) {
        // A tree copies many files at once itself: it starts once the file copies under way have
        // ended (it may merge into what they write).
        await Promise.all(running.values());
        let go = true;
        try {
          if (!args.recursive) {
            failHere(`-r not given; omitting directory '${src}'`);
          } else if (dst !== args.destination && isSymlink(dst)) {
            // DIR/NAME is below the destination named: not merged through a symlink (as copyTree
            // refuses below its own destination, and GNU cp -r does). (`.` copies into DIR itself.)
            failHere(`cannot copy '${src}' to '${dst}': destination '${dst}' is a symlink, not a directory`);
          } else {
            if (checked) copied.add(copy); // (as GNU cp, before the copy: a repeat is not tried again)
            await copyTree(src, dst, { ...options, continueOnError: true });
          }
        } catch (e) {
          go = failed(e);
        } finally {
          settle();
          turn.end();
        }
        if (!go) break;
        continue;
      }
      // A file: as a copy of one source after another would, it waits for an earlier copy to the
      // same destination, and for room among the copies under way.
      const before = running.get(dst);
      if (before !== undefined) await before;
      if (checked && filesWritten.has(dst)) {
        failHere(`will not overwrite just-created '${dst}' with '${src}'`);
        turn.end();
        continue;
      }
      // A file of more than one block runs alone: its copy has buffers (or pipes) of its own for
      // many blocks in flight, and moves them as fast as the kernel goes; 32 at once would only
      // multiply the memory (16 such files without splice: 458 against 150 MB).
      const alone = srcInfo !== null && srcInfo.size > args.blockSize;
      if (alone) await Promise.all(running.values());
      while (running.size >= SOURCES_AT_ONCE) await Promise.race(running.values());
      if (interrupted !== null) {
        turn.end();
        break;
      }
      if (checked) copied.add(copy);
      const copying = copyFile(src, dst, options).then(
        () => {
          if (checked) filesWritten.add(dst);
        },
        (e) => {
          failed(e); // (interrupted: the loop starts nothing more)
        },
      ).finally(() => {
        settle();
        turn.end();
        if (running.get(dst) === copying) running.delete(dst);
      });
      running.set(dst, copying);
      if (alone) await copying;
    }
    await Promise.all(running.values());
    if (bar !== undefined && lastPath !== undefined && interrupted === null) {
      // The last copy to report may not have been the last to end: the bar ends on the totals.
      bar.update({ ...done, scanning: false, path: lastPath });
    }
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
    bar?.done();
    lanes?.close();
    await uring?.close();
  }
  if (interrupted !== null) return STOP_SIGNALS[interrupted];
  return failures > 0 ? 1 : 0;
}

export { FORCE_UNAVAILABLE_ENV };

/** How long an interrupted copy waits for its last output to go out before it exits. */
const STOPPED_FLUSH_MS = 1000;

if (import.meta.main) {
  const io = processIo();
  const status = await main(Deno.args, io);
  // Everything said goes out first; a copy stopped by a signal waits for it only a moment (the
  // reader may be the one that stopped reading). Once `main` returned, its signal listeners are
  // gone: a signal now ends the process at once, as Deno's default.
  await io.flush!((Object.values(STOP_SIGNALS) as number[]).includes(status) ? STOPPED_FLUSH_MS : Infinity);
  Deno.exit(status);
}

/**
 * Command-line flags of `deno task cp`: parsed with `node:util`'s `parseArgs`, sizes such as
 * `128k` or `1m`, and the `--help` text. Pure functions: nothing here touches the file system.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_QUEUE_DEPTH,
  MAX_BLOCK_SIZE,
  MAX_QUEUE_DEPTH,
  MIN_BLOCK_SIZE,
} from "../copy_options.ts";

/** What `cp` was asked to do. */
export interface CpArgs {
  /** Source paths (one or more). */
  sources: string[];
  /** Destination path: a file, or an existing directory to copy into. */
  destination: string;
  /** `-r`: copy directories recursively. */
  recursive: boolean;
  /** `--queue-depth N`. */
  queueDepth: number;
  /** `--block-size SIZE`, in bytes. */
  blockSize: number;
  /** `--sqpoll`: use a kernel submission-polling thread (default off; `--no-sqpoll`). */
  sqpoll: boolean;
  /** `--preserve`: keep timestamps too. */
  preserve: boolean;
  /** `--force`: replace existing destination files. */
  force: boolean;
  /** `--progress` / `--no-progress`; `undefined` means "when stdout is a terminal". */
  progress: boolean | undefined;
  /** `-q`: no progress, no warnings; errors only. */
  quiet: boolean;
  /**
   * `--cwd DIR`: resolve relative paths against DIR (`deno task` runs in the project root). Given
   * more than once (the task passes the user's directory, and the user may add one), a relative
   * DIR is taken from the one before; an empty one is ignored.
   */
  cwd: string | undefined;
  /** `--direct`: O_DIRECT on both sides (bypass the page cache). */
  direct: boolean;
  /** `--no-splice`: move data through buffers instead of by `splice` (default on). */
  splice: boolean;
}

/** The result of parsing: run a copy, print help, or a usage error to report. */
export type ParsedArgs =
  | { kind: "copy"; args: CpArgs }
  | { kind: "help" }
  | { kind: "error"; message: string };

/** `bytes` as the `--block-size` syntax writes it: `1m`, `128k`, or plain bytes. */
function sizeText(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}m`;
  return bytes % 1024 === 0 ? `${bytes / 1024}k` : `${bytes}`;
}

/** The `--help` text. */
export const HELP = `Usage: deno task cp [OPTIONS] SRC DST
       deno task cp [OPTIONS] SRC... DIR

Copy files (and with -r, directory trees) through Linux io_uring.
If DST is an existing directory, each SRC is copied into it under its own name.

Options:
  -r, --recursive        copy directories and everything below them
  -f, --force            replace existing destination files (default: an existing
                         destination file is an error); the copy is renamed over the
                         name, so a destination symlink is replaced, not written through
                         (a device, FIFO or socket in the way is refused)
  -p, --preserve         also keep access and modification times (of files and directories,
                         not of symlinks; modes are always kept, but not a file's
                         setuid/setgid bits: owners are not kept)
      --queue-depth N    I/O operations kept in flight at once (default ${DEFAULT_QUEUE_DEPTH},
                         1..${MAX_QUEUE_DEPTH})
      --block-size SIZE  bytes per read/write, e.g. 65536, 128k, 1m (default ${sizeText(DEFAULT_BLOCK_SIZE)},
                         ${sizeText(MIN_BLOCK_SIZE)}..${sizeText(MAX_BLOCK_SIZE)})
      --sqpoll           use a kernel submission-polling thread (SQPOLL)
      --no-sqpoll        do not (the default: on a 2-core machine the polling thread
                         competes with the copy itself and made copies up to 1.5x slower)
      --direct           O_DIRECT on both sides: bypass the page cache, so a huge copy
                         evicts nothing (block size rounded up to the files' alignment;
                         a file system that refuses O_DIRECT is an error)
      --no-splice        move file data through buffers (read + write) instead of by
                         splice through pipes, which copies it once, in the kernel
      --progress         show a progress bar (default: on when stdout is a terminal)
      --no-progress      never show the progress bar
  -q, --quiet            print nothing but errors
      --cwd DIR          resolve relative paths against DIR (deno task cp passes the
                         directory it was started in; a relative DIR is taken from there)
  -h, --help             show this help and exit

A file that cannot be completed (error, Ctrl-C, SIGTERM, SIGHUP) is removed; a file that
replaces or joins existing ones is written under a temporary name next to it and renamed
into place when complete, so nothing that exists is ever half-overwritten.
A SRC that is a symlink is followed, also with -r (GNU cp -r copies the link itself);
symlinks inside a tree are copied as symlinks. A file's size is read when it is looked at:
bytes appended since are not copied; a file replaced meanwhile is copied anew, whole.
Paths are handed to the kernel whole: an entry whose path (as given, below the source or the
destination) is 4,096 bytes or more fails with ENAMETOOLONG, where GNU cp, which works from
each directory in turn, copies it.
When io_uring is unavailable (EPERM/EACCES/ENOSYS, or ENOMEM: no locked memory for a ring;
URING_FORCE_UNAVAILABLE=1 pretends so) cp says so once and copies with Deno's own file APIs
instead. Exit status: 0 when everything was copied, 1 when anything failed (one line per
failure on stderr), 2 for a usage error, 130 when interrupted (SIGINT), 143 when stopped by
SIGTERM, 129 by SIGHUP.
`;

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 1024,
  kb: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

/**
 * Parses a byte size: a whole number with an optional binary unit (`k`, `m`, `g`, with or
 * without a trailing `b`/`ib`, any case): `"4096"`, `"128k"`, `"1m"`, `"1MiB"`. Throws a
 * `RangeError` naming the input otherwise.
 */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    throw new RangeError(`invalid size ${JSON.stringify(text)}: use a number with an optional k, m or g`);
  }
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new RangeError(`size ${JSON.stringify(text)} is too large`);
  return n;
}

function parseCount(text: string, what: string, min: number, max: number): number {
  if (!/^\d+$/.test(text.trim())) {
    throw new RangeError(`${what} must be a whole number, got ${JSON.stringify(text)}`);
  }
  const n = Number(text);
  if (n < min || n > max) throw new RangeError(`${what} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/**
 * `parseArgs`'s error in `cp`'s words: an unknown option is named, with how to pass a file name
 * that starts with '-' (Node's own text ends on an unmatched quote); other errors as they are.
 */
function usageMessage(e: Error & { code?: string }): string {
  const unknown = e.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ? /^Unknown option '([^']*)'/.exec(e.message)
    : null;
  if (unknown === null) return e.message;
  const name = unknown[1];
  return `unknown option '${name}' (a file named '${name}' goes after '--': cp -- '${name}' DST)`;
}

/** The options with a `--no-` form (what `HELP` lists). */
const NEGATABLE: ReadonlySet<string> = new Set(["sqpoll", "splice", "progress"]);

/** Parses `cp`'s command line (without the program name). Never throws. */
export function parseCpArgs(argv: readonly string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      allowNegative: true,
      strict: true,
      tokens: true,
      options: {
        recursive: { type: "boolean", short: "r" },
        force: { type: "boolean", short: "f" },
        preserve: { type: "boolean", short: "p" },
        "queue-depth": { type: "string" },
        "block-size": { type: "string" },
        sqpoll: { type: "boolean" },
        progress: { type: "boolean" },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
        cwd: { type: "string", multiple: true },
        direct: { type: "boolean" },
        splice: { type: "boolean" },
      },
    });
  } catch (e) {
    return { kind: "error", message: usageMessage(e as Error & { code?: string }) };
  }
  // `--no-` exists for the options whose default it turns off, not for every boolean.
  for (const token of parsed.tokens) {
    if (
      token.kind === "option" && token.rawName.startsWith("--no-") && !NEGATABLE.has(token.rawName.slice(5))
    ) {
      return { kind: "error", message: `unknown option '${token.rawName}'` };
    }
  }
  const v = parsed.values;
  if (v.help) return { kind: "help" };
  let queueDepth = DEFAULT_QUEUE_DEPTH;
  let blockSize = DEFAULT_BLOCK_SIZE;
  try {
    if (v["queue-depth"] !== undefined) {
      queueDepth = parseCount(v["queue-depth"], "--queue-depth", 1, MAX_QUEUE_DEPTH);
    }
    if (v["block-size"] !== undefined) {
      blockSize = parseSize(v["block-size"]);
      if (blockSize < MIN_BLOCK_SIZE || blockSize > MAX_BLOCK_SIZE) {
        throw new RangeError(
          `--block-size must be from ${MIN_BLOCK_SIZE} bytes to ${MAX_BLOCK_SIZE / 1024 ** 2}m, got ${
            JSON.stringify(v["block-size"])
          }`,
        );
      }
    }
  } catch (e) {
    return { kind: "error", message: (e as Error).message };
  }
  const positionals = parsed.positionals;
  if (positionals.length === 0) return { kind: "error", message: "missing source and destination" };
  if (positionals.length === 1) {
    return { kind: "error", message: `missing destination after ${JSON.stringify(positionals[0])}` };
  }
  for (const p of positionals) if (p === "") return { kind: "error", message: "empty path" };
  return {
    kind: "copy",
    args: {
      sources: positionals.slice(0, -1),
      destination: positionals[positionals.length - 1],
      recursive: v.recursive ?? false,
      queueDepth,
      blockSize,
      sqpoll: v.sqpoll ?? false,
      preserve: v.preserve ?? false,
      force: v.force ?? false,
      progress: v.quiet ? false : v.progress,
      quiet: v.quiet ?? false,
      cwd: workingDirectory(v.cwd ?? []),
      direct: v.direct ?? false,
      splice: v.splice ?? true,
    },
  };
}

/**
 * The directory several `--cwd` options name: each relative one is taken from the one before it
 * (the first from the process's own directory); empty ones are ignored. Undefined when none.
 */
export function workingDirectory(dirs: readonly string[]): string | undefined {
  let cwd: string | undefined;
  for (const dir of dirs) {
    if (dir === "") continue;
    cwd = cwd === undefined || dir.startsWith("/") ? dir : `${cwd.endsWith("/") ? cwd : `${cwd}/`}${dir}`;
  }
  return cwd;
}

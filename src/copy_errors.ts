/**
 * The errors a copy ends with: each names the file and says in plain words what went wrong
 * (`cannot copy 'a' to 'b': destination directory '/x' does not exist`), keeps the class a Deno
 * program expects (`Deno.errors.NotFound`, ...) with `code`/`errno`, and the original error as
 * `cause`. {@link CopyTreeError} gathers every failure of a `copyTree` with `continueOnError`.
 *
 * @module
 */

import { PATH_MAX } from "./abi.ts";
import type { CopyResult } from "./copy_options.ts";
import { errorClassFor, OsError } from "./deno_errors.ts";
import { errno as errnoNumber, errnoName } from "./errno.ts";
import { IoUringError } from "./errors.ts";

/**
 * A file copied while its source was replaced (another file renamed over it, or removed): what was
 * written may be the first bytes of the new file. Internal: the engine removes what it wrote and
 * throws this; `copyRegular` looks at the source again and copies it anew.
 */
export class SourceReplaced extends Error {
  /** `counted`: the bytes of the attempt already counted as copied in the progress. */
  constructor(path: string, readonly counted = 0) {
    super(`'${path}' was replaced while it was copied`);
  }
}

/** The step of a copy an error came from; decides how the error is worded. */
export type CopyStage =
  | "stat-source"
  | "open-source"
  | "read"
  | "readdir"
  | "readlink"
  | "stat-dest"
  | "create"
  | "write"
  | "copy-data"
  | "close"
  | "chmod"
  | "utime"
  | "rename"
  | "mkdir"
  | "symlink";

const stages = new WeakMap<object, CopyStage>();

/** Records which step `error` came from (first tag wins) and returns it. */
export function tagStage(error: unknown, stage: CopyStage): unknown {
  if (typeof error === "object" && error !== null && !stages.has(error)) stages.set(error, stage);
  return error;
}

/** Runs `p`, tagging a rejection with `stage`. */
export async function staged<T>(stage: CopyStage, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw tagStage(e, stage);
  }
}

/** The step recorded for `error`, if any. */
export function stageOf(error: unknown): CopyStage | undefined {
  return typeof error === "object" && error !== null ? stages.get(error) : undefined;
}

const encoder = new TextEncoder();

/** Whether `error` says the process (`EMFILE`) or the system (`ENFILE`) has no descriptor left. */
export function outOfDescriptors(error: unknown): boolean {
  const code = codeOf(error);
  return code === "EMFILE" || code === "ENFILE";
}

/**
 * The errno name (`"ENOENT"`) an error carries, if any. Deno's own file APIs set `code` only on
 * the errors of a `Deno.errors` class; the rest (`EFBIG`, `ENXIO`, ...) are plain `Error`s that
 * say the number at the start of their message, "File too large (os error 27): copy ...", and
 * it is read from there (only there: a path later in a message may hold the same words).
 */
export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string") return code;
  if (code !== undefined || !(error instanceof Error) || Object.getPrototypeOf(error) !== Error.prototype) {
    return undefined;
  }
  const number = OS_ERROR.exec(error.message)?.[2];
  return number === undefined ? undefined : errnoName(Number(number));
}

/**
 * The system's words and errno number that begin a message of Deno's file APIs: "File too large
 * (os error 27): ". The words (`strerror`'s: "Input/output error") hold no colon or quote, where
 * a message that names a path first quotes it (a permission refusal's, or the ring's own).
 */
const OS_ERROR = /^([^:'"]*)\(os error (\d{1,4})\)(?=: )/;

/**
 * `message` with the errno number Deno's file APIs begin it with named as `code` ("File too
 * large (EFBIG): ...", as the ring's errors name theirs); unchanged without one.
 */
export function withErrnoNamed(message: string, code: string | undefined): string {
  return code === undefined ? message : message.replace(OS_ERROR, `$1(${code})`);
}

/** True for an `AbortError`/`TimeoutError` (a signal's reason). */
export function isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === "AbortError" || name === "TimeoutError";
}

/** The hint of an "already exists" failure, in the API's words; the CLI says `--force` instead. */
export const OVERWRITE_HINT = "use overwrite: true to replace it";

/** The text of a failure because `dst` exists and the copy may not replace it. */
export function alreadyExistsText(dst: string): string {
  return `destination '${dst}' already exists (${OVERWRITE_HINT})`;
}

/**
 * The failure for a destination that exists and is neither a regular file, a symlink nor a
 * directory (a device, FIFO or socket): a copy replaces files by renaming over them, which would
 * delete such a node (`cp -f x /dev/null` as root would have made `/dev/null` a file), so it
 * refuses, with or without `overwrite`.
 */
export function specialDestFailure(src: string, dst: string): ErrorFields {
  return makeFailure(
    "EEXIST",
    src,
    dst,
    `destination '${dst}' is a device, FIFO or socket: only regular files and symlinks are replaced`,
    dst,
  );
}

/** The directory part of a path (`"."` for a bare name). */
export function dirnameOf(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/\/+$/, "") : path;
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return trimmed.slice(0, i);
}

/** Plain words for a failure at `stage` with errno `code`, or `undefined` for the generic text. */
function explain(
  stage: CopyStage | undefined,
  code: string | undefined,
  src: string,
  dst: string,
): string | undefined {
  const dir = dirnameOf(dst);
  switch (stage) {
    case "stat-source":
    case "open-source":
    case "readdir":
    case "readlink":
      if (code === "ENOENT") return `source '${src}' does not exist`;
      if (code === "EACCES" || code === "EPERM") return `source '${src}' is not readable (permission denied)`;
      if (code === "ENOTDIR") return `a parent of source '${src}' is not a directory`;
      if (code === "ELOOP") {
        return stage === "open-source"
          ? `source '${src}' is a symlink loop, or was replaced by a symlink during the copy (a tree's ` +
            "files are opened without following one)"
          : `source '${src}' is a symlink loop`;
      }
      return undefined;
    case "stat-dest":
    case "create":
    case "mkdir":
    case "symlink":
      if (code === "ENOENT") return `destination directory '${dir}' does not exist`;
      if (code === "ENOTDIR") return `a parent of destination '${dst}' is not a directory`;
      if (code === "ENAMETOOLONG" && stage === "create" && encoder.encode(dst).length < PATH_MAX) {
        // (The destination fits; the temporary file the copy writes first, next to it, did not.)
        return `the temporary file next to destination '${dst}' would have a path longer than the ` +
          "system's limit (PATH_MAX, 4,095 bytes): give a destination a few bytes shorter";
      }
      if (code === "EACCES" || code === "EPERM") {
        return `destination directory '${dir}' is not writable (permission denied)`;
      }
      if (code === "EEXIST") {
        return alreadyExistsText(dst);
      }
      if (code === "ENOSPC" || code === "EDQUOT") {
        return `no space left on the destination's device (${code})`;
      }
      if (code === "EROFS") return `destination '${dst}' is on a read-only file system`;
      return undefined;
    case "write":
    case "copy-data":
    case "close":
      if (code === "ENOSPC" || code === "EDQUOT") {
        return `no space left on the destination's device (${code}); the partial copy was removed`;
      }
      if (code === "EFBIG") {
        return "the file is larger than the destination's file system, or the process's file size limit " +
          "(ulimit -f), allows (EFBIG)";
      }
      return undefined;
    case "read":
      if (code === "EIO") return `the source could not be read (EIO: input/output error)`;
      return undefined;
    case "rename":
      if (code === "EEXIST") {
        return alreadyExistsText(dst);
      }
      if (code === "EISDIR") return `destination '${dst}' is a directory`;
      if (code === "ENOTDIR") return `destination '${dst}' is not a directory`;
      return undefined;
    default:
      return undefined;
  }
}

/** Plain words for the generic case: `"reading the source failed: ..."`. */
const STAGE_TEXT: Readonly<Record<CopyStage, string>> = {
  "stat-source": "looking up the source",
  "open-source": "opening the source",
  read: "reading the source",
  readdir: "listing the source directory",
  readlink: "reading the source symlink",
  "stat-dest": "looking up the destination",
  create: "creating the destination",
  write: "writing the destination",
  "copy-data": "copying the data",
  close: "closing the destination",
  chmod: "setting the destination's mode",
  utime: "setting the destination's times",
  rename: "moving the finished copy into place",
  mkdir: "creating the destination directory",
  symlink: "creating the destination symlink",
};

/** The fields a copy error carries besides its message. */
export type ErrorFields = Error & {
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
  dest?: string;
};

/**
 * The error a copy of `src` to `dst` ends with, given the underlying failure `cause`:
 * `cannot copy 'src' to 'dst': <plain words>`, of the class matching the errno (as Deno's own
 * file APIs would throw), with `code`, `errno`, `path` (the file at fault), `dest` and `cause`.
 */
export function copyFailure(cause: unknown, src: string, dst: string): Error {
  const stage = stageOf(cause);
  const code = codeOf(cause);
  const message = cause instanceof Error ? cause.message : String(cause);
  const original = withErrnoNamed(message, code);
  // The ring's own system call failed (io_uring_enter refused by seccomp, say), not the file
  // operation: its errno says nothing about the files, so no plain words about them, and the
  // error keeps its class (an EPERM read as "not readable" sent users to the wrong place).
  const ringCall = cause instanceof IoUringError;
  const words = (ringCall ? undefined : explain(stage, code, src, dst)) ??
    (stage ? `${STAGE_TEXT[stage]} failed: ${original}` : original);
  const readSide = stage === "stat-source" || stage === "open-source" || stage === "read" ||
    stage === "readdir" || stage === "readlink";
  const error = makeFailure(ringCall ? undefined : code, src, dst, words, readSide ? src : dst, cause);
  if (ringCall) {
    // (Made from the class's prototype: the constructor, which builds its own message, did not run.)
    Object.assign(error, { call: cause.call, hint: cause.hint });
    error.code = cause.code;
    error.errno = cause.errno;
    error.syscall = cause.call;
  } else if (code !== undefined) error.syscall = (cause as ErrorFields).syscall ?? stage;
  return error;
}

/**
 * An error `cannot copy 'src' to 'dst': <words>` for errno name `code` (its `Deno.errors`
 * class, `code` and `errno` set; a plain `Error`, or `cause`'s class, without one), with `path`
 * (the file at fault), `dest` and `cause`.
 */
export function makeFailure(
  code: string | undefined,
  src: string,
  dst: string,
  words: string,
  path: string,
  cause?: unknown,
): ErrorFields {
  const message = `cannot copy '${src}' to '${dst}': ${words}`;
  let error: ErrorFields;
  let errno: number | undefined = (cause as ErrorFields | null | undefined)?.errno;
  if (code !== undefined && typeof errno !== "number") {
    try {
      errno = errnoNumber(code);
    } catch {
      errno = undefined;
    }
  }
  if (code !== undefined && errno !== undefined) {
    const cls = errorClassFor(errno);
    error = cls === OsError
      ? new OsError(message, code, errno, "copy")
      : new (cls as new (message: string) => Error)(message);
    error.code = code;
    error.errno = errno;
  } else if (cause instanceof Error) {
    error = sameClassError(cause, message);
    if (cause.name !== error.name) {
      // An own property: some classes' `name` is a getter on the prototype.
      Object.defineProperty(error, "name", { value: cause.name, writable: true, configurable: true });
    }
  } else {
    error = new Error(message);
  }
  error.path = path;
  error.dest = dst;
  if (cause !== undefined) error.cause = cause;
  described.add(error);
  return error;
}

/**
 * An error of `cause`'s class with `message`: its constructor called with the message, unless it
 * does not take one as its argument (`ClosedError` builds its message from the name of what is
 * closed: "Uring is closed"), in which case the error is made with the class's prototype without
 * calling it; a plain `Error` when neither works. A `DOMException` keeps its name (`AbortError`).
 */
function sameClassError(cause: Error, message: string): Error {
  if (cause instanceof DOMException) return new DOMException(message, cause.name); // AbortError, ...
  const cls = cause.constructor as new (message: string) => Error;
  try {
    const made = new cls(message);
    if (made.message === message) return made;
  } catch {
    // not a constructor that takes a message
  }
  try {
    return Reflect.construct(Error, [message], cls);
  } catch {
    return new Error(message);
  }
}

const described = new WeakSet<object>();

/** True for an error made by {@link makeFailure} (already worded for the user). */
export function isDescribed(error: unknown): boolean {
  return typeof error === "object" && error !== null && described.has(error);
}

/**
 * The error for a copy stopped by `signal`: a `DOMException` named `AbortError` (`TimeoutError`
 * for `AbortSignal.timeout`), naming what was being copied and saying that partial copies were
 * removed; the signal's reason is its `cause`.
 */
export function abortFailure(signal: AbortSignal, what: string): DOMException {
  const reason = signal.reason as { name?: unknown; message?: unknown } | undefined;
  // The reason's own class stays in `cause`: an `Error` or `TypeError` given to `abort()` must not
  // turn the rejection into a DOMException named "TypeError" that code checking for an
  // AbortError takes for a failure.
  const name = reason?.name === "TimeoutError" ? "TimeoutError" : "AbortError";
  const why = typeof reason?.message === "string" && reason.message !== "" ? `: ${reason.message}` : "";
  const error = new DOMException(`${what} was aborted${why}; partial copies were removed`, name);
  Object.defineProperty(error, "cause", { value: signal.reason, configurable: true, writable: true });
  return error;
}

/**
 * Every failure of a `copyTree` run with `continueOnError`, thrown once everything else was
 * copied. `errors` holds one error per failed entry (each names its file); `result` counts what
 * was copied.
 */
export class CopyTreeError extends AggregateError {
  /** What was copied despite the failures. */
  readonly result: CopyResult;

  /** Builds the error from the failures and the partial result. */
  constructor(errors: Error[], result: CopyResult, src: string, dst: string) {
    super(
      errors,
      `cannot copy '${src}' to '${dst}' completely: ${errors.length} ${
        errors.length === 1 ? "entry" : "entries"
      } failed (${result.files} files copied); first: ${errors[0]?.message}`,
    );
    this.name = "CopyTreeError";
    this.result = result;
  }
}

/**
 * Maps a failed operation's errno to the error a Deno program expects: the matching
 * `Deno.errors.*` class (as Deno's own file system API throws it), with a message naming the
 * operation and the path, and `code` / `errno` kept on the error.
 *
 * @module
 */

import { errno as errnoNumber, errnoMessage, errnoName } from "./errno.ts";

/** The fields every error of a failed `Uring` operation carries. */
export interface OperationErrorFields {
  /** The errno name, e.g. `"ENOENT"`. */
  code: string;
  /** The positive errno number, e.g. 2. */
  errno: number;
  /** The operation, e.g. `"open"`. */
  syscall: string;
  /** The path the operation was given, when it had one. */
  path?: string;
  /** The second path (rename, link, symlink), when it had one. */
  dest?: string;
}

/**
 * A failed operation whose errno has no `Deno.errors` class (`ENOSPC`, `EBADF`, `ECANCELED`,
 * ...). Carries `code`, `errno`, `syscall` and the path(s). Since 5.1.
 */
export class OsError extends Error implements OperationErrorFields {
  /** The errno name. */
  code: string;
  /** The positive errno number. */
  errno: number;
  /** The operation. */
  syscall: string;
  /** The path, if any. */
  path?: string;
  /** The second path, if any. */
  dest?: string;

  /** Builds the error; prefer {@link operationError}, which picks the class. */
  constructor(message: string, code: string, errno: number, syscall: string) {
    super(message);
    this.name = "OsError";
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}

type ErrorClass = new (message: string) => Error;

/** errno number → error class, following Deno's own mapping (Rust `io::ErrorKind`). */
const CLASSES = new Map<number, ErrorClass>();
function map(names: string[], cls: ErrorClass | undefined): void {
  if (cls === undefined) return; // older Deno without this class: OsError it is
  for (const name of names) CLASSES.set(errnoNumber(name), cls);
}
const E = Deno.errors as unknown as Record<string, ErrorClass | undefined>;
map(["ENOENT"], E.NotFound);
map(["EACCES", "EPERM"], E.PermissionDenied);
map(["EEXIST"], E.AlreadyExists);
map(["ENOTDIR"], E.NotADirectory);
map(["EISDIR"], E.IsADirectory);
map(["ELOOP"], E.FilesystemLoop);
map(["EBUSY"], E.Busy);
map(["ETIMEDOUT", "ETIME"], E.TimedOut);
map(["EINTR"], E.Interrupted);
map(["EPIPE"], E.BrokenPipe);
map(["EAGAIN"], E.WouldBlock);
map(["EOPNOTSUPP", "ENOSYS"], E.NotSupported);
map(["ECONNREFUSED"], E.ConnectionRefused);
map(["ECONNRESET"], E.ConnectionReset);
map(["ECONNABORTED"], E.ConnectionAborted);
map(["ENOTCONN"], E.NotConnected);
map(["EADDRINUSE"], E.AddrInUse);
map(["EADDRNOTAVAIL"], E.AddrNotAvailable);
map(["ENETUNREACH"], E.NetworkUnreachable);
// Deno throws a TypeError (Rust's InvalidInput) for EINVAL from its own fs calls: do the same.
map(["EINVAL"], TypeError);

/** The class a failure with `errno` becomes (`OsError` when Deno has no class for it). */
export function errorClassFor(errno: number): ErrorClass | typeof OsError {
  return CLASSES.get(errno) ?? OsError;
}

function quote(path: string): string {
  return `'${path}'`;
}

/**
 * The error for operation `op` failing with positive `errno`: the matching `Deno.errors` class,
 * message `open '/x/y': No such file or directory (ENOENT)` (`rename '/a' -> '/b': ...`,
 * `read (fd 7): ...` without a path), with `code`, `errno`, `syscall`, `path` and `dest` set.
 */
export function operationError(
  op: string,
  errno: number,
  path?: string | null,
  dest?: string | null,
  fd?: number,
  detail?: string,
): Error & OperationErrorFields {
  const code = errnoName(errno);
  let where = "";
  if (path != null) where = ` ${quote(path)}${dest != null ? ` -> ${quote(dest)}` : ""}`;
  else if (fd !== undefined && fd >= 0) where = ` (fd ${fd})`;
  const message = `${op}${where}: ${errnoMessage(errno)} (${code})${detail ? `: ${detail}` : ""}`;
  const cls = CLASSES.get(errno);
  const error = (cls === undefined ? new OsError(message, code, errno, op) : new cls(message)) as
    & Error
    & OperationErrorFields;
  error.code = code;
  error.errno = errno;
  error.syscall = op;
  if (path != null) error.path = path;
  if (dest != null) error.dest = dest;
  return error;
}

/** The error for a permission Deno did not grant (`NotCapable`, `PermissionDenied` before it). */
export function notCapable(message: string): Error {
  const cls = E.NotCapable ?? E.PermissionDenied ?? Error;
  return new cls(message);
}

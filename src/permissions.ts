/**
 * Deno's permissions for operations the kernel performs on our behalf. Deno's `--allow-read` /
 * `--allow-write` flags cannot see what io_uring does for an FFI caller, so the promise layer
 * asks `Deno.permissions` before it queues any operation on a path. Nothing is cached: a
 * permission revoked at run time is refused from the next call on (the whole-access status is
 * Deno's own live status object; see `wholeStatus`).
 *
 * @module
 */

import { notCapable, operationError } from "./deno_errors.ts";
import { errno } from "./errno.ts";
import { cstring } from "./memory.ts";
import { libcPaths } from "./sys.ts";

const ENOENT = errno("ENOENT");

/** The kind of access an operation needs. */
export type Access = "read" | "write";

/**
 * A URL's percent-encoded pathname decoded as Deno decodes file URLs: each `%XX` becomes its
 * byte (UTF-8), and a `%` that starts no such escape stays as it is (`decodeURIComponent`
 * throws on it). Escapes of bytes that are not UTF-8 name a file no path string can name: a
 * `TypeError`, as Deno refuses them (`URIError`). (Kept encoded, `%FF` named the file called
 * "%FF", whose URL is `%25FF`.)
 */
function decodePathname(pathname: string, what: string): string {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return pathname.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        throw new TypeError(
          `${what} is a file: URL whose escapes ${run} are bytes that are not UTF-8: no path string ` +
            "names that file",
        );
      }
    });
  }
}

/** `path` as a file-system path string: a string as is, a `file:` URL decoded. */
export function toPath(path: string | URL, what = "path"): string {
  if (typeof path === "string") {
    if (path.length === 0) throw new TypeError(`${what} must not be empty`);
    return path;
  }
  if (path instanceof URL) {
    if (path.protocol !== "file:") throw new TypeError(`${what} must be a file: URL, got ${path.href}`);
    if (path.hostname !== "" && path.hostname !== "localhost") {
      throw new TypeError(`${what} must be a local file: URL, got ${path.href}`);
    }
    return decodePathname(path.pathname, what);
  }
  throw new TypeError(`${what} must be a string or a file: URL, got ${typeof path}`);
}

/**
 * `path` as Deno's own file API resolves it before it checks and uses it: `.` and `..` segments
 * and doubled slashes resolved in the text, and with `absolute`, made absolute against the
 * working directory (which throws when it is gone). The kernel would resolve a `..` after
 * following a symlink (`/lib/../x` is `/usr/x` when `/lib` links to `usr/lib`), reaching a path
 * the permission check never saw; and a relative path checked now could be resolved against
 * another directory by the time the kernel gets to it. A trailing slash stays (it means "a
 * directory"), and a final `.` or `..` leaves a `/.` (it too means "a directory"); a leading
 * `..` of a relative path stays when not `absolute`.
 */
export function resolvePath(path: string, absolute: boolean): string {
  // Fast path: an absolute path with no "." or ".." segment and no doubled slash is resolved
  // (a name that starts with a dot is no such segment: every copy's temporary file has one).
  if (path.charCodeAt(0) === 47 && !path.includes("//") && !hasDotSegment(path)) return path;
  const rooted = path.charCodeAt(0) === 47;
  const full = rooted || !absolute ? path : `${Deno.cwd()}/${path}`;
  const parts: string[] = [];
  for (const part of full.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && parts.length > 0 && parts[parts.length - 1] !== "..") parts.pop();
    else if (part === ".." && (rooted || absolute)) continue; // "/.." is "/"
    else parts.push(part);
  }
  const body = parts.join("/");
  const resolved = rooted || absolute ? `/${body}` : body === "" ? "." : body;
  const last = path.replace(/\/+$/, "");
  if (last.endsWith("/.") || last.endsWith("/..") || last === "." || last === "..") {
    // A final `.` or `..` names a directory: `file/.` must stay an error (ENOTDIR), and an
    // unlink of `dir/x/..` must not become one of `dir`.
    return resolved === "/" || resolved === "." ? resolved : `${resolved}/.`;
  }
  return path.endsWith("/") && !resolved.endsWith("/") ? `${resolved}/` : resolved;
}

/** Whether `path` has a `.` or `..` segment after a slash (`/./`, `/../`, or at the end). */
function hasDotSegment(path: string): boolean {
  for (let at = path.indexOf("/."); at >= 0; at = path.indexOf("/.", at + 2)) {
    const next = path.charCodeAt(at + 2); // (NaN past the end)
    if (next !== next || next === 47) return true; // "/." then "/" or the end
    if (next === 46) {
      const after = path.charCodeAt(at + 3);
      if (after !== after || after === 47) return true; // "/.." then "/" or the end
    }
  }
  return false;
}

/**
 * The path a `Uring` operation hands the kernel for `path`: {@link resolvePath}'s absolute form
 * when the program is not granted everything, so that what the permission check saw is what the
 * kernel resolves; with `--allow-all` the path as given, as Deno's own API then passes it.
 */
export function kernelPath(path: string): string {
  return allGranted() ? path : resolvePath(path, true);
}

/** {@link kernelPath} for a copy's source and destination, which stay relative when given so. */
export function copyRootPath(path: string): string {
  return allGranted() ? path : resolvePath(path, false);
}

/** The descriptors without a path, made once (Deno caches its answer per descriptor). */
const WHOLE: Record<Access, Deno.PermissionDescriptor> = { read: { name: "read" }, write: { name: "write" } };

/**
 * Deno's status objects for the whole of each access, asked for once. This is not a cache of
 * the answer: Deno keeps one status object per descriptor and updates it in place whenever that
 * permission is queried, requested or revoked (`Deno.permissions.revoke({ name: "read" })`
 * turns it to "prompt" at once), and revoking a single path leaves a whole grant as it is (Deno
 * then still allows that path). Reading `.state` is as fresh as a `querySync` (~2 µs a call).
 */
const wholeStatus: Partial<Record<Access, Deno.PermissionStatus>> = {};

/**
 * Whether `name` access to `path` is granted; without a path, whether the grant is unscoped, as
 * Deno's `symlink` requires: plain `--allow-read`/`--allow-write`, `--deny-*` lists allowed (a
 * grant scoped to paths is not).
 */
function granted(name: Access, path?: string): boolean {
  // Access to everything (plain --allow-read/--allow-write, no --deny-*: not `partial`) covers
  // every path, and asking without a path is cheaper: Deno makes and caches a status object per
  // distinct path.
  const whole = wholeStatus[name] ??= Deno.permissions.querySync(WHOLE[name]);
  if (whole.state === "granted" && (!whole.partial || path === undefined)) return true;
  if (path === undefined) return false;
  return Deno.permissions.querySync({ name, path }).state === "granted";
}

/**
 * `path` made absolute and normalized ({@link resolvePath}) without the trailing `/` or `/.` that
 * says "a directory"; `undefined` when the working directory cannot be had.
 */
function absolutePath(path: string): string | undefined {
  let abs: string;
  try {
    abs = resolvePath(path, true);
  } catch {
    return undefined; // the working directory is gone: the operation reports that itself
  }
  return abs.replace(/(\/\.)?\/*$/, "") || "/";
}

/** Device files Deno lets any `--allow-read`/`--allow-write` program open. */
const HARMLESS_DEVICES = new Set(["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"]);

/**
 * Every permission granted without restriction (no `--deny-*`, nothing partial): how
 * `--allow-all` looks from inside.
 */
function allGranted(): boolean {
  // Deno's live status objects (see wholeStatus), asked for once: reading them is cheap.
  const statuses = allStatuses ??= ALL_NAMES.map((name) => Deno.permissions.querySync({ name }));
  for (const status of statuses) if (status.state !== "granted" || status.partial) return false;
  return true;
}

const ALL_NAMES = ["read", "write", "net", "env", "sys", "run", "ffi", "import"] as const;
let allStatuses: Deno.PermissionStatus[] | undefined;

const realpathOut = new Uint8Array(4096);
const decoder = new TextDecoder();

/** Most symlinks followed while resolving one path (the kernel's limit, `MAXSYMLINKS`). */
const MAX_LINKS = 40;

/**
 * Absolute `path` with every symlink followed (`realpath`). When it does not exist yet (an open
 * that creates it), its directory's canonical form and its name, the name followed on when it
 * is a dangling symlink (the create would make the file where it points); `undefined` when
 * nothing resolves (the open fails).
 */
function canonicalPath(path: string, links = 0): string | undefined {
  if (path.includes("\0")) return undefined; // refused with its own error when the SQE is made
  const sys = libcPaths();
  let n = sys.realpath(cstring(path), realpathOut);
  if (n >= 0) return decoder.decode(realpathOut.subarray(0, n));
  const slash = path.lastIndexOf("/");
  if (slash < 0) return canonicalPath(`./${path}`, links);
  n = sys.realpath(cstring(slash === 0 ? "/" : path.slice(0, slash)), realpathOut);
  if (n < 0) return undefined;
  const dir = decoder.decode(realpathOut.subarray(0, n));
  const inDir = dir === "/" ? "/" : `${dir}/`;
  const candidate = inDir + path.slice(slash + 1);
  if (links >= MAX_LINKS) return candidate;
  n = sys.readlink(cstring(candidate), realpathOut);
  if (n < 0) return candidate; // not a symlink: a new name in `dir`
  const target = decoder.decode(realpathOut.subarray(0, n));
  return canonicalPath(target.startsWith("/") ? target : inDir + target, links + 1);
}

/**
 * For an open of `path` (absolute, and allowed by {@link checkAccess}): Deno opens a file under
 * `/dev`, `/proc` or `/sys` only with `--allow-all` also when a symlink leads there, since it
 * checks the path with every link followed. The same here: `null` when the open may go ahead,
 * else the error. Costs a `realpath` per open, and only when not everything is granted.
 */
export function checkOpenTarget(op: string, path: string, shownAs = path): Error | null {
  if (Deno.build.os !== "linux" || allGranted()) return null;
  const real = canonicalPath(path);
  return real === undefined || real === path ? null : checkSpecialFile(op, real, shownAs);
}

/**
 * {@link checkOpenTarget} for a copy's source and destination: a symlink that leads either into
 * `/proc`, `/sys` or `/dev` needs `--allow-all`, as for Deno's own open.
 */
export function checkCopyTargets(source: string, dest: string): Error | null {
  return checkOpenTarget("open", source) ?? checkOpenTarget("open", dest);
}

/**
 * Deno treats files under `/dev`, `/proc` and `/sys` on Linux as special: its own file API
 * opens them only with `--allow-all` (`/proc/self/environ` too), whatever `--allow-read`
 * says, though `Deno.permissions.query` answers "granted". Returns the error for such a path
 * when the program lacks that, else `null`. (Deno also lets `/dev/fd/N` of a pipe through; this
 * check does not, to stay on the safe side.)
 */
function checkSpecialFile(op: string, path: string, shownAs = path): Error | null {
  if (Deno.build.os !== "linux") return null;
  // Fast path (no cwd lookup, no normalizing): an absolute path with no "." or ".." segment and
  // no doubled leading slash is special only when it starts like one.
  if (
    path.charCodeAt(0) === 47 && path.charCodeAt(1) !== 47 && !hasDotSegment(path) &&
    !path.startsWith("/dev") && !path.startsWith("/proc") && !path.startsWith("/sys")
  ) {
    return null;
  }
  const abs = absolutePath(path);
  if (abs === undefined || HARMLESS_DEVICES.has(abs)) return null;
  const special = ["/dev", "/proc", "/sys"].some((root) => abs === root || abs.startsWith(`${root}/`));
  if (!special) return null;
  if (allGranted()) return null;
  return notCapable(
    `${op} '${shownAs}': Requires all access to "${abs}", run again with the --allow-all flag`,
  );
}

/**
 * `null` when the program may `access` `path`, else the error to reject with
 * (`Deno.errors.NotCapable`, or `PermissionDenied` on a Deno without it). `path` undefined asks
 * for an unscoped grant (what Deno itself requires for `symlink`: `--allow-read`, say, even with
 * a `--deny-read` list, but not `--allow-read=<paths>`). Special files under
 * `/dev`, `/proc` and `/sys` need what Deno's own file API needs for them (`--allow-all`).
 * `shownAs` is how the error names the path (the caller's form of it; default `path`).
 */
export function checkAccess(op: string, access: Access, path?: string, shownAs = path): Error | null {
  if (path !== undefined) {
    const special = checkSpecialFile(op, path, shownAs);
    if (special !== null) return special;
  }
  return checkGrant(op, access, path, shownAs);
}

/**
 * Whether Deno hides `path` from this program (`--ignore-read`), which `Deno.permissions`
 * answers as "denied", like `--deny-read`. Deno's own `lstat` tells them apart: it refuses a
 * denied path (`NotCapable`) before it looks, and says `NotFound` for an ignored one. Asked only
 * once a path is not granted, and only when Deno's answer for it is "denied" (ignored or denied):
 * for one it would prompt for, its `lstat` could prompt the user.
 */
function ignoredByDeno(path: string): boolean {
  if (Deno.permissions.querySync({ name: "read", path }).state !== "denied") return false;
  try {
    Deno.lstatSync(path);
    return false;
  } catch (e) {
    return e instanceof Deno.errors.NotFound;
  }
}

/**
 * {@link checkAccess} without its rule for `/dev`, `/proc` and `/sys`: for a path found below a
 * directory that passed it (`dir/name`, as a tree's walk makes them), which lies under one of
 * those only when the directory does (or is `/`, for a `name` of `dev`, `proc` or `sys`: the
 * caller's to rule out). Asks only whether `access` is granted (for a relative path, no look at
 * the working directory).
 */
export function checkGrant(op: string, access: Access, path?: string, shownAs = path): Error | null {
  if (granted(access, path)) return null;
  // `--ignore-read`: Deno's own API says such a file does not exist (its query says "denied").
  if (access === "read" && path !== undefined && ignoredByDeno(path)) {
    return operationError(op, ENOENT, shownAs);
  }
  const flag = `--allow-${access}`;
  const what = path === undefined ? `unscoped ${access} access` : `${access} access to "${shownAs}"`;
  const subject = path === undefined ? "" : ` '${shownAs}'`;
  return notCapable(`${op}${subject}: Requires ${what}, run again with the ${flag} flag`);
}

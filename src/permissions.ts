/**
 * Deno's permissions for operations the kernel performs on our behalf. Deno's `--allow-read` /
 * `--allow-write` flags cannot see what io_uring does for an FFI caller, so the promise layer
 * asks `Deno.permissions` before it queues any operation on a path. Nothing is cached: a
 * permission revoked at run time is refused from the next call on.
 *
 * @module
 */

import { notCapable } from "./deno_errors.ts";

/** The kind of access an operation needs. */
export type Access = "read" | "write";

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
    return decodeURIComponent(path.pathname);
  }
  throw new TypeError(`${what} must be a string or a file: URL, got ${typeof path}`);
}

function granted(name: Access, path?: string): boolean {
  const descriptor: Deno.PermissionDescriptor = path === undefined ? { name } : { name, path };
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * `null` when the program may `access` `path`, else the error to reject with
 * (`Deno.errors.NotCapable`, or `PermissionDenied` on a Deno without it). `path` undefined asks
 * for access to everything (what Deno itself requires for `symlink`).
 */
export function checkAccess(op: string, access: Access, path?: string): Error | null {
  if (granted(access, path)) return null;
  const flag = `--allow-${access}`;
  const what = path === undefined ? `full ${access} access` : `${access} access to "${path}"`;
  const subject = path === undefined ? "" : ` '${path}'`;
  return notCapable(`${op}${subject}: Requires ${what}, run again with the ${flag} flag`);
}

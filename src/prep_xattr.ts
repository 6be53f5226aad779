/**
 * `prep*` helpers for extended attributes: `getxattr`, `fgetxattr`, `setxattr` and `fsetxattr`
 * (5.19), filled as liburing's `io_uring_prep_*xattr` do (name in `addr`, value in `addr2`, path
 * in `addr3`, the value's length in `len`, the `XATTR_*` flags in the op flags).
 *
 * A name is `namespace.name` (`user.`, `trusted.`, `security.`, ...): an empty one or one longer
 * than `XATTR_NAME_MAX` bytes fails with `ERANGE`, an unknown namespace with `EOPNOTSUPP`, as
 * does a filesystem without xattrs.
 *
 * The arguments come in the system calls' order, `getxattr(path, name, value, size)`, as this
 * module's other path helpers take the file first (liburing's helpers take the path last).
 * A path is resolved from the process's working directory, following a final symlink (there is
 * no `lgetxattr` form); with `IOSQE_FIXED_FILE` the kernel fails the path forms with `EBADF`.
 * The fd forms take a registered file's index with `IOSQE_FIXED_FILE` on recent kernels (6.18
 * does; the first, 5.19, failed them with `EBADF`). The kernel runs all four in an io-wq worker.
 *
 * @module
 */

import * as abi from "./abi.ts";
import { checkCString, checkFd, checkFlagBits } from "./memory.ts";
import { optionalLength, storeAddressOf, writeRw } from "./prep_base.ts";
import { type Sqe, W } from "./sqe.ts";

const OP_FLAGS = W.opFlags;

/**
 * `getxattr(path, name, value, len)`: completes with the value's size in bytes. A zero `len`
 * (a `null` or empty `value`) asks only for the size; a value larger than `len` fails with
 * `ERANGE`, a missing attribute with `ENODATA`. `path` and `name` are NUL-terminated (see
 * `cstring`); `len` defaults to `value`'s length and may not exceed it. Since 5.19.
 */
export function prepGetxattr(
  sqe: Sqe,
  path: Uint8Array,
  name: Uint8Array,
  value: ArrayBufferView | null,
  len?: number,
): Sqe {
  checkCString(path);
  return writeXattr(sqe, abi.IORING_OP_GETXATTR, 0, name, value, len, 0, path);
}

/**
 * `fgetxattr(fd, name, value, len)`: {@link prepGetxattr} on an open file. Since 5.19.
 */
export function prepFgetxattr(
  sqe: Sqe,
  fd: number,
  name: Uint8Array,
  value: ArrayBufferView | null,
  len?: number,
): Sqe {
  checkFd(fd);
  return writeXattr(sqe, abi.IORING_OP_FGETXATTR, fd, name, value, len, 0, null);
}

/**
 * `setxattr(path, name, value, len, flags)` (here `len`, optional, comes last): completes with
 * 0. `flags`: `XATTR_CREATE` (fail with `EEXIST` if the attribute exists) or `XATTR_REPLACE`
 * (fail with `ENODATA` if it does not); 0 does either. `len` defaults to `value`'s length and may not exceed it (a `null` value
 * sets an empty one); more than `XATTR_SIZE_MAX` bytes fail with `E2BIG`. The kernel copies the
 * value when it takes the SQE. Since 5.19.
 */
export function prepSetxattr(
  sqe: Sqe,
  path: Uint8Array,
  name: Uint8Array,
  value: ArrayBufferView | null,
  flags = 0,
  len?: number,
): Sqe {
  checkCString(path);
  checkXattrFlags(flags);
  return writeXattr(sqe, abi.IORING_OP_SETXATTR, 0, name, value, len, flags, path);
}

/**
 * `fsetxattr(fd, name, value, len, flags)` (`len` last, as in {@link prepSetxattr}) on an open
 * file. Since 5.19.
 */
export function prepFsetxattr(
  sqe: Sqe,
  fd: number,
  name: Uint8Array,
  value: ArrayBufferView | null,
  flags = 0,
  len?: number,
): Sqe {
  checkFd(fd);
  checkXattrFlags(flags);
  return writeXattr(sqe, abi.IORING_OP_FSETXATTR, fd, name, value, len, flags, null);
}

/** Throws a `RangeError` for set flags other than `XATTR_CREATE` or `XATTR_REPLACE` (the kernel's `EINVAL`). */
function checkXattrFlags(flags: number): void {
  checkFlagBits(flags, abi.XATTR_CREATE | abi.XATTR_REPLACE, "flags", "XATTR_CREATE or XATTR_REPLACE");
}

/** The four opcodes' common work, once the file and flags are checked. */
function writeXattr(
  sqe: Sqe,
  opcode: number,
  fd: number,
  name: Uint8Array,
  value: ArrayBufferView | null,
  len: number | undefined,
  flags: number,
  path: Uint8Array | null,
): Sqe {
  checkCString(name, "name");
  const length = optionalLength(value, len, "value", "len");
  writeRw(sqe, opcode, fd, 0, length, 0);
  storeAddressOf(sqe, name, W.addrLo);
  // The value's address in addr2 (`off`): 0 for none (the kernel then reads or writes nothing).
  if (value !== null && length > 0) storeAddressOf(sqe, value, W.offLo);
  if (path !== null) storeAddressOf(sqe, path, W.addr3Lo);
  sqe.u32[sqe.base + OP_FLAGS] = flags;
  return sqe;
}

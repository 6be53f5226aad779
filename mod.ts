/**
 * uring: Linux io_uring for Deno, driven directly from TypeScript.
 *
 * The submission and completion rings are mapped into JavaScript memory; queueing I/O is
 * writing 64-byte SQEs and bumping a tail, with SQPOLL (a kernel thread picks submissions up)
 * on by default so a submit usually needs no system call.
 *
 * ```ts
 * import { IoUring, prepNop } from "./mod.ts";
 * using ring = new IoUring(8);
 * prepNop(ring.getSqe()!).setUserData(42);
 * ring.submitAndWait(1);
 * const cqe = ring.peekCqe()!;
 * console.log(cqe.userDataNumber, cqe.res); // 42 0
 * ring.cqAdvance(1);
 * ```
 *
 * @module
 */

export * from "./src/abi.ts";
export {
  AlignedBuffer,
  alignedBuffer,
  type AlignedBufferOptions,
  DEFAULT_ALIGNMENT,
  MAX_ALIGNMENT,
  MIN_ALIGNMENT,
} from "./src/aligned.ts";
export {
  AlignmentError,
  type AlignmentPart,
  checkDirectAlignment,
  DEFAULT_DIRECT_ALIGNMENT,
  type DirectAlignment,
  directAlignment,
  directAlignmentFromStatx,
  type DirectAlignmentOptions,
  directMisalignment,
  iopollError,
  type IopollErrorOptions,
} from "./src/direct.ts";
export { errno, errnoMessage, errnoName } from "./src/errno.ts";
export { ClosedError, IoUringError } from "./src/errors.ts";
export { addressOf, cstring } from "./src/memory.ts";
export * from "./src/prep.ts";
export * from "./src/prep_cmd.ts";
export * from "./src/prep_net.ts";
export * from "./src/prep_select.ts";
export * from "./src/prep_xattr.ts";
export * from "./src/prep_fd.ts";
export * from "./src/prep_wait.ts";
export { BufferRing, type BufferRingOptions } from "./src/buf_ring.ts";
export { Msghdr, type MsghdrOptions } from "./src/msghdr.ts";
export { RecvmsgOut, type RecvmsgOutOptions } from "./src/recvmsg_out.ts";
export { SocketAddress } from "./src/sockaddr.ts";
export { Probe } from "./src/probe.ts";
export type {
  CloneBuffersOptions,
  NapiSettings,
  Restriction,
  SyncCancelTarget,
} from "./src/register_args.ts";
export {
  DEFAULT_SQPOLL_IDLE_MS,
  type EnterStats,
  IoUring,
  type IoUringOptions,
  MAX_ENTRIES,
  type RingParams,
  type SqpollOptions,
  type WaitOptions,
} from "./src/ring.ts";
export { Cqe, Sqe } from "./src/sqe.ts";
export {
  checkFixedBuffer,
  FixedBuffer,
  FixedBufferPool,
  type FixedBufferPoolOptions,
} from "./src/fixed_pool.ts";
export {
  Iovecs,
  openHow,
  parseStatx,
  RESOLVE,
  type Statx,
  statxBuffer,
  type StatxTimestamp,
  Timespec,
} from "./src/structs.ts";
export { type Backend, getSys, HELPER_PATH, type Sys } from "./src/sys.ts";
export type { ChainBuilder, ChainResult } from "./src/chain.ts";
export { operationError, type OperationErrorFields, OsError } from "./src/deno_errors.ts";
export { type ChainOptions, type FileOps, type OpOptions, UringFile } from "./src/file.ts";
export {
  DEFAULT_SPIN_US,
  type OpenOptions,
  Uring,
  type UringBufferPoolOptions,
  type UringOptions,
  type UringStats,
} from "./src/uring.ts";
export { copyFile } from "./src/copy.ts";
export { copyTree } from "./src/copy_tree.ts";
export { CopyTreeError } from "./src/copy_errors.ts";
export type { CopyOptions, CopyProgress, CopyResult, CopyTreeOptions } from "./src/copy_options.ts";

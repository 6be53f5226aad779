/**
 * Typed errors: every system call failure becomes an {@link IoUringError} that names the call
 * and the errno (`EINVAL`, not `-22`), with a hint where one helps.
 *
 * @module
 */

import { errnoMessage, errnoName } from "./errno.ts";

/** Hints for errnos whose cause is not obvious, keyed by `call:ERRNO` or just `ERRNO`. */
const HINTS: Readonly<Record<string, string>> = {
  "io_uring_setup:EPERM":
    "io_uring is disabled on this system: check the sysctl kernel.io_uring_disabled, or a seccomp " +
    "filter (containers often block io_uring)",
  "io_uring_setup:EACCES":
    "a security module refused io_uring (SELinux's io_uring permissions can refuse it, or SQPOLL " +
    "alone), or a seccomp filter blocks it",
  "io_uring_enter:EPERM":
    "io_uring_enter was refused: a seccomp filter or security module blocks it (setting up the ring " +
    "was allowed)",
  "io_uring_enter:EACCES":
    "io_uring_enter was refused: a seccomp filter or security module blocks it (setting up the ring " +
    "was allowed)",
  "io_uring_enter:ENOSYS": "io_uring_enter is blocked by a seccomp filter (setting up the ring was allowed)",
  "io_uring_setup:ENOSYS":
    "this kernel has no io_uring (it needs Linux 5.1 or later, 5.11+ recommended), or a seccomp " +
    "filter blocks it",
  "io_uring_setup:ENOMEM":
    "a process without CAP_IPC_LOCK has its rings charged to RLIMIT_MEMLOCK (kernels before 5.12, and " +
    "recent ones too): raise `ulimit -l` or use fewer entries; a ring just closed stays charged until " +
    "the kernel has torn it down (some ms later)",
  "io_uring_setup:EINVAL":
    "the kernel rejected the ring parameters (entries, cqEntries or flags); older kernels lack " +
    "some setup flags",
  "io_uring_setup:EMFILE": "the process has no free file descriptors",
  "io_uring_setup:EAGAIN":
    "the kernel could not start a thread for the ring: an SQPOLL thread counts against the user's " +
    "RLIMIT_NPROC (`ulimit -u`) and the cgroup's pids limit",
  "io_uring_enter:EBUSY":
    "the completion queue overflowed: reap completions (peekCqe/cqAdvance) before submitting more",
  "io_uring_enter:EBADR":
    "the kernel dropped at least one completion despite IORING_FEAT_NODROP (it could not allocate " +
    "memory to hold the overflow): the machine is critically short of memory",
  "io_uring_enter:EBADFD":
    "the ring was created disabled (IORING_SETUP_R_DISABLED): register its restrictions, then call " +
    "enableRings()",
  "io_uring_register:EBADFD":
    "restrictions are registered while the ring is disabled (IORING_SETUP_R_DISABLED), before " +
    "enableRings(); enableRings() needs a disabled ring",
  "io_uring_register:EACCES": "the ring's restrictions (registerRestrictions) do not allow this call",
  "io_uring_enter:EOPNOTSUPP": "the file or device does not support this (e.g. IOPOLL without poll queues)",
  "io_uring_register:EFAULT": "a registered buffer points at memory the kernel cannot pin",
  "io_uring_register:EBUSY": "something is registered already: unregister it first",
  "io_uring_register:ENXIO": "nothing of that kind is registered",
  "io_uring_register:ENOMEM":
    "registered buffers are pinned and count against RLIMIT_MEMLOCK (`ulimit -l`) unless the " +
    "process has CAP_IPC_LOCK: register less memory or raise the limit",
  "read (IOPOLL):EOPNOTSUPP":
    "the device has no poll queues (or the file is not open with O_DIRECT): a polled ring " +
    "(iopoll: true) works only for O_DIRECT files on devices with poll queues, e.g. NVMe with " +
    "nvme.poll_queues=N; use a ring without iopoll",
  "write (IOPOLL):EOPNOTSUPP":
    "the device has no poll queues (or the file is not open with O_DIRECT): a polled ring " +
    "(iopoll: true) works only for O_DIRECT files on devices with poll queues, e.g. NVMe with " +
    "nvme.poll_queues=N; use a ring without iopoll",
  "mmap:ENOMEM": "the memory could not be mapped (memlock limit or address space)",
};

/**
 * A failed system call or io_uring operation. Carries the call, the errno name (`"EINVAL"`) and
 * number (22), and a hint when the cause is not obvious. Since: always.
 */
export class IoUringError extends Error {
  /** The system call or operation that failed, e.g. `"io_uring_setup"`. */
  readonly call: string;
  /** The errno name, e.g. `"EINVAL"`. */
  readonly code: string;
  /** The positive errno number, e.g. 22. */
  readonly errno: number;
  /** A hint on the likely cause, or `undefined`. */
  readonly hint: string | undefined;

  /**
   * Builds the error from the call name and a positive errno; `hints` (by errno name) come before
   * the call's usual ones.
   */
  constructor(call: string, errno: number, detail?: string, hints?: Readonly<Record<string, string>>) {
    const code = errnoName(errno);
    const hint = hints?.[code] ?? HINTS[`${call}:${code}`] ?? HINTS[code];
    const where = detail ? ` (${detail})` : "";
    super(`${call} failed: ${code}: ${errnoMessage(errno)}${where}${hint ? `; hint: ${hint}` : ""}`);
    this.name = "IoUringError";
    this.call = call;
    this.code = code;
    this.errno = errno;
    this.hint = hint;
  }
}

/** Throws an {@link IoUringError} when `ret` (a helper's return value) is negative. */
export function check(call: string, ret: number): number {
  if (ret < 0) throw new IoUringError(call, -ret);
  return ret;
}

/** Thrown for a call on a ring or `Uring` that was already closed. */
export class ClosedError extends Error {
  /**
   * Builds the error; `what` names the closed object. `failure`, when given, is why it closed by
   * itself (a `Uring` whose ring failed): the error's `cause`, named in its message.
   */
  constructor(what: string, failure?: unknown) {
    const why = failure === undefined
      ? ""
      : ` (it closed itself after a failure: ${
        failure instanceof Error ? failure.message : String(failure)
      })`;
    super(`${what} is closed${why}`, failure === undefined ? undefined : { cause: failure });
    this.name = "ClosedError";
  }
}

/** The directory of this module's source files (their URLs start with it). */
const SOURCE_DIR = new URL("./", import.meta.url).href;

/**
 * Whether `e` was made by this module's own code: the first frame of its stack is in one of its
 * files. An error a caller's getter threw while its argument was read is the caller's, and keeps
 * its identity.
 */
function madeHere(e: Error): boolean {
  const stack = e.stack;
  if (typeof stack !== "string") return false;
  const frame = stack.indexOf("\n    at ");
  if (frame < 0) return false;
  const end = stack.indexOf("\n", frame + 1);
  return stack.slice(frame, end < 0 ? stack.length : end).includes(SOURCE_DIR);
}

/**
 * An argument error (a plain `TypeError` or `RangeError` this module threw) refused before
 * anything was queued, as one whose message starts with the name of the operation it refused
 * (`read: position must not be negative, got -1`; the original is its `cause`). Other errors pass through:
 * subclasses such as `AlignmentError`, what a caller's getter threw, and messages that already name
 * the operation.
 */
export function refusedArgument(op: string, e: unknown): unknown {
  const plain = e instanceof Error && (e.constructor === TypeError || e.constructor === RangeError);
  if (!plain || !madeHere(e)) return e;
  if (e.message.startsWith(`${op}:`) || e.message.startsWith(`${op} `)) return e;
  const message = `${op}: ${e.message}`;
  return e instanceof RangeError
    ? new RangeError(message, { cause: e })
    : new TypeError(message, { cause: e });
}

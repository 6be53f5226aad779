/**
 * The system layer: loads the C helper from `ffi/` with `Deno.dlopen`, or falls back to
 * `libc.so.6`'s `syscall`/`mmap` when the helper is not built. Both backends expose the same
 * {@link Sys} interface, and every call returns `-errno` on failure.
 *
 * Choose with the environment variable `URING_BACKEND=helper|libc` (default: the helper when its
 * library exists, else libc). `URING_HELPER=/path/to/liburing_helper.so` points at a helper built
 * elsewhere.
 *
 * What the libc fallback does less well:
 * - 64-bit `syscall` arguments are passed as BigInts, which costs a little more per call.
 * - A `nonblocking` (thread-pool) call cannot read `errno` (it is another thread's): a failed
 *   asynchronous wait reports `-EINTR` and the caller simply looks at the ring again, and a
 *   failed `registerAsync` reports `-EIO` whatever the kernel said.
 * - It has no fence function of its own; it relies on the sequentially consistent `Atomics`
 *   operations the ring already uses (a full barrier on x86_64 and aarch64).
 *
 * @module
 */

import {
  AT_FDCWD,
  F_GETPIPE_SZ,
  F_SETPIPE_SZ,
  GETEVENTS_ARG_SIZE,
  IORING_ENTER_EXT_ARG,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  PARAMS_SIZE,
  PROT_READ,
  PROT_WRITE,
  RENAME_NOREPLACE,
  STATX_SIZE,
  SYS_FCHMODAT,
  SYS_FCNTL,
  SYS_GETTID,
  SYS_IO_URING_ENTER,
  SYS_IO_URING_REGISTER,
  SYS_IO_URING_SETUP,
  SYS_LSEEK,
  SYS_PIPE2,
  SYS_RENAMEAT2,
  SYS_STATX,
  SYS_UTIMENSAT,
  TIMESPEC_SIZE,
} from "./abi.ts";
import { errno } from "./errno.ts";
import { badNumber, byteLengthOf, checkCString, checkDirFd, shown } from "./memory.ts";

/** Which implementation of the system layer is in use. */
export type Backend = "helper" | "libc";

/**
 * The raw system interface the ring is built on. Every function returns `-errno` on failure.
 * Close what `setup` and `pipe` made through the same `Sys` (`close`): the helper lists the fds
 * each thread made and closes those left when the thread exits (a Worker terminated), so an fd
 * closed some other way would be closed a second time then, as whatever file has its number by
 * then.
 */
export interface Sys {
  /** The backend in use. */
  readonly backend: Backend;
  /** `io_uring_setup(entries, params)`; `params` is a 120-byte `io_uring_params`. */
  setup(entries: number, params: Uint8Array): number;
  /** `io_uring_enter` without an extended argument. */
  enter(fd: number, toSubmit: number, minComplete: number, flags: number): number;
  /** `io_uring_enter` with `IORING_ENTER_EXT_ARG` and a timeout (µs; negative: none), 5.11+. */
  enterTimeout(fd: number, toSubmit: number, minComplete: number, flags: number, timeoutUs: number): number;
  /** The same, run on Deno's thread pool so the event loop keeps going. */
  enterTimeoutAsync(
    fd: number,
    toSubmit: number,
    minComplete: number,
    flags: number,
    timeoutUs: number,
  ): Promise<number>;
  /** `io_uring_register(fd, opcode, arg, nrArgs)`. */
  register(fd: number, opcode: number, arg: Uint8Array | null, nrArgs: number): number;
  /**
   * The same, run on Deno's thread pool: for a call that may wait (on an SQPOLL ring some park
   * the SQ thread first, which can take as long as its idle time). Keep `arg` until it settles.
   */
  registerAsync(fd: number, opcode: number, arg: Uint8Array | null, nrArgs: number): Promise<number>;
  /** Shared, populated `mmap` of a ring region; returns the address or `-errno`. */
  mmap(fd: number, length: number, offset: number): number;
  /**
   * {@link Sys.mmap}, the mapping also unmapped when the calling thread exits (a Worker
   * terminated): for memory no other thread can reach. The helper's only (`undefined` for libc,
   * or a helper built before it).
   */
  mmapHeld?: (fd: number, length: number, offset: number) => number;
  /**
   * Keeps a mapping of {@link Sys.mmapHeld}'s mapped when its thread exits (its memory went to
   * another thread).
   */
  forgetMap?: (address: number) => void;
  /**
   * Anonymous private `mmap` for the kernel to read or write on the calling thread's behalf (a
   * copy's `statx` structs and buffers), unmapped only once that thread is gone, its io-wq
   * workers with it (a Worker terminated mid-copy: see `thread_memory.ts`). Returns the address or
   * `-errno`. The helper's only.
   */
  mmapAnonHeld?: (length: number) => number;
  /**
   * Unmaps the {@link Sys.mmapAnonHeld} memory of threads now gone; returns how much of it still
   * waits for its thread to be gone (mappings). The helper's only.
   */
  heldGraves?: () => number;
  /**
   * Lists `fd` (a file the kernel opened for a Worker's copy) to be closed if the calling thread
   * exits with it open; every close of it must then come through {@link Sys.close} or follow
   * {@link Sys.unholdFd}. The helper's only.
   */
  holdFd?: (fd: number) => void;
  /** Takes `fd` off the calling thread's list of {@link Sys.holdFd}. The helper's only. */
  unholdFd?: (fd: number) => void;
  /** Anonymous private `mmap` (page-aligned memory); returns the address or `-errno`. */
  mmapAnon(length: number): number;
  /**
   * Puts fresh anonymous memory (zeros) in place of the pages at `address` (`MAP_FIXED`): what was
   * mapped there (a ring's region, and with it the ring's file) is let go without leaving a hole.
   * Returns 0 or `-errno`.
   */
  mmapAnonOver(address: number, length: number): number;
  /** `munmap(addr, length)`. */
  munmap(address: number, length: number): number;
  /** `close(fd)`. */
  close(fd: number): number;
  /**
   * `pipe2(fds, O_CLOEXEC)`: stores the read and write ends in `fds[0]` and `fds[1]` and returns
   * the pipe's capacity in bytes (`F_GETPIPE_SZ`), or `-errno` (then nothing is left open).
   * With `size` > 0 it first asks for that capacity (`F_SETPIPE_SZ`, rounded up to a power of two
   * of pages); a refusal (above `fs.pipe-max-size`, or the user's pipe allowance spent) keeps the
   * default, so the capacity returned may be smaller than asked.
   */
  pipe(fds: Int32Array, size?: number): number;
  /** `lseek(fd, offset, whence)`: the resulting offset, or `-errno`. */
  seek(fd: number, offset: number, whence: number): number;
  /**
   * `utimensat(AT_FDCWD, path, times, 0)`: `path` NUL-terminated, `times` two `struct timespec`
   * (access, then modification: 32 bytes). Returns 0 or `-errno`.
   */
  utimens(path: Uint8Array, times: Uint8Array): number;
  /** `fchmodat(AT_FDCWD, path, mode)` (a final symlink followed): `path` NUL-terminated; 0 or `-errno`. */
  chmod(path: Uint8Array, mode: number): number;
  /**
   * `renameat2(AT_FDCWD, from, AT_FDCWD, to, flags)` on the calling thread (`flags`: 0 or
   * `RENAME_NOREPLACE`): both paths NUL-terminated; 0 or `-errno`.
   */
  rename(from: Uint8Array, to: Uint8Array, flags: number): number;
  /**
   * `statx(dirfd, path, flags, mask, out)` on the calling thread: `path` NUL-terminated, `out`
   * at least 256 bytes (a `struct statx`); `dirfd` defaults to `AT_FDCWD` (an fd with an empty
   * path and `AT_EMPTY_PATH` asks about that fd). Returns 0 or `-errno`.
   */
  statx(path: Uint8Array, flags: number, mask: number, out: Uint8Array, dirfd?: number): number;
  /**
   * `realpath(path, out)`: `path` NUL-terminated, `out` at least 4096 bytes (`PATH_MAX`); returns
   * the length of the canonical path written to `out` (symlinks, `.` and `..` resolved), or
   * `-errno`. (libc's, also for the helper backend.)
   */
  realpath(path: Uint8Array, out: Uint8Array): number;
  /**
   * `readlink(path, out, out.byteLength)`: `path` NUL-terminated; returns the length of the
   * link's target written to `out` (not NUL-terminated), or `-errno` (`EINVAL`: not a symlink).
   * (libc's, also for the helper backend.)
   */
  readlink(path: Uint8Array, out: Uint8Array): number;
  /**
   * The soft limit on open file descriptors (`getrlimit(RLIMIT_NOFILE)`, `ulimit -n`), at most
   * 2^31-1 (also when unlimited), or `-errno`.
   */
  fileLimit(): number;
  /**
   * How many file descriptors the process has open now (the entries of `/proc/self/fd`), or
   * `-errno` (`EMFILE`: not even one free to count them with; `EACCES` or `EIO`: the libc backend,
   * which lists the directory through Deno, was not granted read access to it, which Deno 2 gives
   * only to a program with every permission).
   */
  openFiles(): number;
  /**
   * Whether the calling thread is the process's first (its thread id is the pid): not a Worker's,
   * whatever kind (a `node:worker_threads` one has no `WorkerGlobalScope`). Asked once: a module
   * instance, and with it this object, is one thread's.
   */
  isMainThread(): boolean;
  /** A full memory fence. */
  fence(): void;
  /**
   * A call that does nothing, run on Deno's thread pool: it settles on a later turn of the event
   * loop, one in which the loop has waited for I/O (see `turn.ts`).
   */
  nextTurn(): Promise<unknown>;
}

const HELPER_SYMBOLS = {
  uring_setup: { parameters: ["u32", "buffer"], result: "i32" },
  uring_enter: { parameters: ["i32", "u32", "u32", "u32"], result: "i32" },
  uring_enter_timeout: { parameters: ["i32", "u32", "u32", "u32", "i32"], result: "i32" },
  uring_enter_timeout_async: {
    name: "uring_enter_timeout",
    parameters: ["i32", "u32", "u32", "u32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  uring_register: { parameters: ["i32", "u32", "buffer", "u32"], result: "i32" },
  uring_register_async: {
    name: "uring_register",
    parameters: ["i32", "u32", "buffer", "u32"],
    result: "i32",
    nonblocking: true,
  },
  uring_mmap: { parameters: ["i32", "u64", "u64"], result: "i64" },
  uring_mmap_anon: { parameters: ["u64"], result: "i64" },
  uring_mmap_held: { parameters: ["i32", "u64", "u64"], result: "i64", optional: true },
  uring_forget_map: { parameters: ["u64"], result: "void", optional: true },
  uring_mmap_anon_held: { parameters: ["u64"], result: "i64", optional: true },
  uring_held_graves: { parameters: [], result: "i32", optional: true },
  uring_hold_fd: { parameters: ["i32"], result: "void", optional: true },
  uring_unhold_fd: { parameters: ["i32"], result: "void", optional: true },
  uring_munmap: { parameters: ["u64", "u64"], result: "i32" },
  uring_close: { parameters: ["i32"], result: "i32" },
  // Optional: a helper built before it existed still loads (pipes then come from the kernel
  // through libc's syscall()).
  uring_pipe_sized: { parameters: ["buffer", "i32"], result: "i32", optional: true },
  uring_lseek: { parameters: ["i32", "i64", "i32"], result: "i64", optional: true },
  uring_utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32", optional: true },
  uring_fchmodat: { parameters: ["i32", "buffer", "u32"], result: "i32", optional: true },
  uring_statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32", optional: true },
  uring_renameat2: { parameters: ["i32", "buffer", "i32", "buffer", "u32"], result: "i32", optional: true },
  uring_file_limit: { parameters: [], result: "i32", optional: true },
  uring_open_files: { parameters: [], result: "i32", optional: true },
  uring_is_main_thread: { parameters: [], result: "i32", optional: true },
  uring_fence: { parameters: [], result: "void" },
  uring_fence_async: { name: "uring_fence", parameters: [], result: "void", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

const LIBC_SYMBOLS = {
  // long syscall(long number, ...): every argument is passed as a full 64-bit value.
  syscall3: { name: "syscall", parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  syscall6: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
  },
  syscall6_async: {
    name: "syscall",
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
    nonblocking: true,
  },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  getpid_async: { name: "getpid", parameters: [], result: "i32", nonblocking: true },
  getpid: { parameters: [], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** `answer`, called once, its result kept for every later call (a thread's fixed facts). */
function once<T>(answer: () => T): () => T {
  let known: { value: T } | undefined;
  return () => (known ??= { value: answer() }).value;
}

/** libc's path calls, bound apart from the backends (see {@link libcPaths}). */
const LIBC_PATH_SYMBOLS = {
  __errno_location: { parameters: [], result: "pointer" },
  realpath: { parameters: ["buffer", "buffer"], result: "pointer" },
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
} as const satisfies Deno.ForeignLibraryInterface;

/** Default location of the built helper, next to its source. */
export const HELPER_PATH: URL = new URL("../ffi/build/liburing_helper.so", import.meta.url);

function envValue(name: string): string | undefined {
  try {
    // Asked first, so that a program without --allow-env is not prompted for it.
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
    return Deno.env.get(name) || undefined; // unset or empty: the default
  } catch {
    return undefined; // no --allow-env: use the default
  }
}

/** Set once the built helper failed to load by default: later defaults go to libc at once. */
let builtHelperMissing = false;

/** The built helper's path, or undefined when the module was not loaded from a file. */
function builtHelperPath(): string | undefined {
  return HELPER_PATH.protocol === "file:" ? decodeURIComponent(HELPER_PATH.pathname) : undefined;
}

/**
 * Loads the helper: the one `URING_HELPER` names, else the built one. Returns undefined when the
 * built one cannot be loaded and `required` is false (libc then serves); otherwise a load failure
 * throws an error that says which helper and why. Loading needs only `--allow-ffi` (no
 * `--allow-read` for the helper's path).
 */
function tryLoadHelper(required: boolean): Sys | undefined {
  const override = envValue("URING_HELPER");
  if (!required && override === undefined && builtHelperMissing) return undefined; // tried already
  const path = override ?? builtHelperPath();
  if (path === undefined) {
    if (!required) return undefined;
    throw new Error(`the uring C helper has no local path here (${HELPER_PATH}): use URING_BACKEND=libc`);
  }
  try {
    return loadHelper(path);
  } catch (e) {
    // No --allow-ffi: say so for the helper (libc would be refused the same way, and its refusal
    // named "libc.so.6", which reads as if the module loaded nothing of its own).
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) throw e;
    if (override !== undefined) {
      throw new Error(`cannot load the helper URING_HELPER names (${path}): ${(e as Error).message}`, {
        cause: e,
      });
    }
    if (!required) {
      builtHelperMissing = true;
      return undefined;
    }
    throw new Error(
      `the uring C helper could not be loaded from ${path} (${(e as Error).message}): ` +
        "run `deno task build`, or use URING_BACKEND=libc",
      { cause: e },
    );
  }
}

function loadHelper(path: string): Sys {
  const lib = Deno.dlopen(path, HELPER_SYMBOLS).symbols;
  return {
    backend: "helper",
    setup: (entries, params) => lib.uring_setup(entries, params),
    enter: (fd, n, min, flags) => lib.uring_enter(fd, n, min, flags),
    enterTimeout: (fd, n, min, flags, us) => lib.uring_enter_timeout(fd, n, min, flags, us),
    enterTimeoutAsync: (fd, n, min, flags, us) => lib.uring_enter_timeout_async(fd, n, min, flags, us),
    register: (fd, op, arg, nr) => lib.uring_register(fd, op, arg, nr),
    registerAsync: (fd, op, arg, nr) => lib.uring_register_async(fd, op, arg, nr),
    mmap: (fd, length, offset) => Number(lib.uring_mmap(fd, BigInt(length), BigInt(offset))),
    mmapHeld: lib.uring_mmap_held === null || lib.uring_forget_map === null
      ? undefined
      : (fd, length, offset) => Number(lib.uring_mmap_held!(fd, BigInt(length), BigInt(offset))),
    forgetMap: lib.uring_forget_map === null
      ? undefined
      : (address) => lib.uring_forget_map!(BigInt(address)),
    mmapAnonHeld: lib.uring_mmap_anon_held === null
      ? undefined
      : (length) => Number(lib.uring_mmap_anon_held!(BigInt(length))),
    heldGraves: lib.uring_held_graves === null ? undefined : () => lib.uring_held_graves!(),
    holdFd: lib.uring_hold_fd === null || lib.uring_unhold_fd === null
      ? undefined
      : (fd) => lib.uring_hold_fd!(fd),
    unholdFd: lib.uring_unhold_fd === null ? undefined : (fd) => lib.uring_unhold_fd!(fd),
    mmapAnon: (length) => Number(lib.uring_mmap_anon(BigInt(length))),
    mmapAnonOver: (address, length) => getSys("libc").mmapAnonOver(address, length), // (rare: no helper symbol)
    munmap: (address, length) => lib.uring_munmap(BigInt(address), BigInt(length)),
    close: (fd) => lib.uring_close(fd),
    pipe: (fds, size = 0) => {
      const pipe = lib.uring_pipe_sized;
      return pipe === null ? getSys("libc").pipe(fds, size) : pipe(fds, size);
    },
    seek: (fd, offset, whence) => {
      const seek = lib.uring_lseek;
      return seek === null
        ? getSys("libc").seek(fd, offset, whence)
        : Number(seek(fd, BigInt(offset), whence));
    },
    utimens: (path, times) => {
      const utimensat = lib.uring_utimensat;
      return utimensat === null
        ? getSys("libc").utimens(path, times)
        : utimensat(AT_FDCWD, path as Uint8Array<ArrayBuffer>, times as Uint8Array<ArrayBuffer>, 0);
    },
    chmod: (path, mode) => {
      const fchmodat = lib.uring_fchmodat;
      return fchmodat === null
        ? getSys("libc").chmod(path, mode)
        : fchmodat(AT_FDCWD, path as Uint8Array<ArrayBuffer>, mode);
    },
    rename: (from, to, flags) => {
      const renameat2 = lib.uring_renameat2;
      return renameat2 === null ? getSys("libc").rename(from, to, flags) : renameat2(
        AT_FDCWD,
        from as Uint8Array<ArrayBuffer>,
        AT_FDCWD,
        to as Uint8Array<ArrayBuffer>,
        flags,
      );
    },
    statx: (path, flags, mask, out, dirfd = AT_FDCWD) => {
      const statx = lib.uring_statx;
      return statx === null
        ? getSys("libc").statx(path, flags, mask, out, dirfd)
        : statx(dirfd, path as Uint8Array<ArrayBuffer>, flags, mask, out as Uint8Array<ArrayBuffer>);
    },
    realpath: (path, out) => libcPaths().realpath(path, out),
    readlink: (path, out) => libcPaths().readlink(path, out),
    fileLimit: () => {
      const limit = lib.uring_file_limit;
      return limit === null ? getSys("libc").fileLimit() : limit();
    },
    openFiles: () => {
      const count = lib.uring_open_files;
      return count === null ? openFilesByDeno() : count();
    },
    fence: () => lib.uring_fence(),
    isMainThread: once(() => {
      const isMain = lib.uring_is_main_thread;
      return isMain === null ? getSys("libc").isMainThread() : isMain() === 1;
    }),
    nextTurn: () => lib.uring_fence_async(),
  };
}

function loadLibc(): Sys {
  const lib = Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  const errnoPointer = lib.__errno_location();
  // errno is thread-local: this view is valid for calls made on this (the main) thread only.
  const errnoView = new Deno.UnsafePointerView(errnoPointer!);
  const readErrno = () => errnoView.getInt32(0);
  const NR_SETUP = BigInt(SYS_IO_URING_SETUP);
  const NR_ENTER = BigInt(SYS_IO_URING_ENTER);
  const NR_REGISTER = BigInt(SYS_IO_URING_REGISTER);
  const NR_PIPE2 = BigInt(SYS_PIPE2);
  const NR_FCNTL = BigInt(SYS_FCNTL);
  const NR_LSEEK = BigInt(SYS_LSEEK);
  const NR_UTIMENSAT = BigInt(SYS_UTIMENSAT);
  const NR_FCHMODAT = BigInt(SYS_FCHMODAT);
  const NR_STATX = BigInt(SYS_STATX);
  const NR_GETTID = BigInt(SYS_GETTID);
  const NR_RENAMEAT2 = BigInt(SYS_RENAMEAT2);
  const CLOEXEC = BigInt(O_CLOEXEC);
  const GETPIPE_SZ = BigInt(F_GETPIPE_SZ);
  const SETPIPE_SZ = BigInt(F_SETPIPE_SZ);
  const EINTR = errno("EINTR");
  const EIO = errno("EIO");
  const RLIMIT_NOFILE = 7; // the same on x86-64 and arm64
  const MAP_FAILED = 0xffffffffffffffffn;
  const ZERO = 0n;

  const addressOf = (buf: Uint8Array | null): bigint =>
    buf === null
      ? ZERO
      : BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));

  /** Builds an io_uring_getevents_arg (+ timespec) in `arg` for a wait of `timeoutUs`. */
  const fillExtArg = (arg: Uint8Array, ts: Uint8Array, timeoutUs: number): void => {
    const a = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
    a.setBigUint64(0, ZERO, true);
    a.setUint32(8, 0, true);
    a.setUint32(12, 0, true);
    if (timeoutUs >= 0) {
      const t = new DataView(ts.buffer, ts.byteOffset, ts.byteLength);
      t.setBigInt64(0, BigInt(Math.floor(timeoutUs / 1e6)), true);
      t.setBigInt64(8, BigInt((timeoutUs % 1e6) * 1000), true);
      a.setBigUint64(16, addressOf(ts), true);
    } else {
      a.setBigUint64(16, ZERO, true);
    }
  };
  const syncArg = new Uint8Array(GETEVENTS_ARG_SIZE);
  const syncTs = new Uint8Array(TIMESPEC_SIZE);
  const result = (r: bigint): number => (r < ZERO ? -readErrno() : Number(r));
  const enter6 = (fd: number, n: number, min: number, flags: number, arg: bigint, size: number) =>
    result(lib.syscall6(NR_ENTER, BigInt(fd), BigInt(n), BigInt(min), BigInt(flags), arg, BigInt(size)));

  return {
    backend: "libc",
    setup: (entries, params) => result(lib.syscall3(NR_SETUP, BigInt(entries), addressOf(params), ZERO)),
    enter: (fd, n, min, flags) => enter6(fd, n, min, flags, ZERO, 0),
    enterTimeout: (fd, n, min, flags, us) => {
      fillExtArg(syncArg, syncTs, us);
      return enter6(fd, n, min, flags | IORING_ENTER_EXT_ARG, addressOf(syncArg), GETEVENTS_ARG_SIZE);
    },
    enterTimeoutAsync: async (fd, n, min, flags, us) => {
      // Each asynchronous wait owns its argument structs until the call returns.
      const arg = new Uint8Array(GETEVENTS_ARG_SIZE);
      const ts = new Uint8Array(TIMESPEC_SIZE);
      fillExtArg(arg, ts, us);
      const r = await lib.syscall6_async(
        NR_ENTER,
        BigInt(fd),
        BigInt(n),
        BigInt(min),
        BigInt(flags | IORING_ENTER_EXT_ARG),
        addressOf(arg),
        BigInt(GETEVENTS_ARG_SIZE),
      );
      void arg, ts; // keep both alive until here
      return r < ZERO ? -EINTR : Number(r);
    },
    register: (fd, op, arg, nr) =>
      result(lib.syscall6(NR_REGISTER, BigInt(fd), BigInt(op), addressOf(arg), BigInt(nr), ZERO, ZERO)),
    registerAsync: async (fd, op, arg, nr) => {
      const r = await lib.syscall6_async(
        NR_REGISTER,
        BigInt(fd),
        BigInt(op),
        addressOf(arg),
        BigInt(nr),
        ZERO,
        ZERO,
      );
      void arg; // kept alive until here
      // libc's syscall() left its errno on the pool's thread: a failure can only say it failed.
      return r < ZERO ? -EIO : Number(r);
    },
    mmap: (fd, length, offset) => {
      const p = lib.mmap(
        null,
        BigInt(length),
        PROT_READ | PROT_WRITE,
        MAP_SHARED | MAP_POPULATE,
        fd,
        BigInt(offset),
      );
      const v = BigInt(Deno.UnsafePointer.value(p));
      return v === MAP_FAILED ? -readErrno() : Number(v);
    },
    mmapAnon: (length) => {
      const p = lib.mmap(null, BigInt(length), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, ZERO);
      const v = BigInt(Deno.UnsafePointer.value(p));
      return v === MAP_FAILED ? -readErrno() : Number(v);
    },
    mmapAnonOver: (address, length) => {
      const p = lib.mmap(
        Deno.UnsafePointer.create(BigInt(address)),
        BigInt(length),
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        -1,
        ZERO,
      );
      return BigInt(Deno.UnsafePointer.value(p)) === MAP_FAILED ? -readErrno() : 0;
    },
    munmap: (address, length) => {
      const r = lib.munmap(Deno.UnsafePointer.create(BigInt(address)), BigInt(length));
      return r < 0 ? -readErrno() : r;
    },
    close: (fd) => {
      const r = lib.close(fd);
      return r < 0 ? -readErrno() : r;
    },
    pipe: (fds, size = 0) => {
      const r = result(
        lib.syscall3(NR_PIPE2, addressOf(new Uint8Array(fds.buffer, fds.byteOffset, 8)), CLOEXEC, ZERO),
      );
      if (r < 0) return r;
      // A refusal of the capacity asked for keeps the default.
      if (size > 0) lib.syscall3(NR_FCNTL, BigInt(fds[1]), SETPIPE_SZ, BigInt(size));
      const capacity = result(lib.syscall3(NR_FCNTL, BigInt(fds[0]), GETPIPE_SZ, ZERO));
      if (capacity < 0) {
        lib.close(fds[0]);
        lib.close(fds[1]);
      }
      return capacity;
    },
    seek: (fd, offset, whence) => result(lib.syscall3(NR_LSEEK, BigInt(fd), BigInt(offset), BigInt(whence))),
    utimens: (path, times) =>
      result(
        lib.syscall6(NR_UTIMENSAT, BigInt(AT_FDCWD), addressOf(path), addressOf(times), ZERO, ZERO, ZERO),
      ),
    chmod: (path, mode) => result(lib.syscall3(NR_FCHMODAT, BigInt(AT_FDCWD), addressOf(path), BigInt(mode))),
    rename: (from, to, flags) =>
      result(
        lib.syscall6(
          NR_RENAMEAT2,
          BigInt(AT_FDCWD),
          addressOf(from),
          BigInt(AT_FDCWD),
          addressOf(to),
          BigInt(flags),
          ZERO,
        ),
      ),
    statx: (path, flags, mask, out, dirfd = AT_FDCWD) =>
      result(
        lib.syscall6(
          NR_STATX,
          BigInt(dirfd),
          addressOf(path),
          BigInt(flags),
          BigInt(mask >>> 0),
          addressOf(out),
          ZERO,
        ),
      ),
    realpath: (path, out) => libcPaths().realpath(path, out),
    readlink: (path, out) => libcPaths().readlink(path, out),
    fileLimit: () => {
      const rlimit = new BigUint64Array(2); // rlim_cur, rlim_max
      if (lib.getrlimit(RLIMIT_NOFILE, new Uint8Array(rlimit.buffer)) !== 0) return -readErrno();
      return rlimit[0] > 0x7fff_ffffn ? 0x7fff_ffff : Number(rlimit[0]); // RLIM_INFINITY is ~0
    },
    openFiles: openFilesByDeno,
    fence: () => {},
    isMainThread: once(() => Number(lib.syscall3(NR_GETTID, 0n, 0n, 0n)) === lib.getpid()),
    nextTurn: () => lib.getpid_async(),
  };
}

/**
 * `Sys.openFiles` through Deno's `readDirSync` (for the libc backend, and a helper built before
 * `uring_open_files`), where read access to `/proc/self/fd` is granted (never prompted for).
 */
function openFilesByDeno(): number {
  const FD_DIR = "/proc/self/fd";
  try {
    if (Deno.permissions.querySync({ name: "read", path: FD_DIR }).state !== "granted") {
      return -errno("EACCES");
    }
    let count = 0;
    for (const _ of Deno.readDirSync(FD_DIR)) count++;
    return count - 1; // the directory's own descriptor, open while it is read
  } catch (e) {
    const code = (e as { code?: unknown } | null)?.code;
    try {
      return -errno(typeof code === "string" ? code : "EIO");
    } catch {
      return -errno("EIO"); // a code that is no errno name
    }
  }
}

/** libc's `realpath` and `readlink`, as {@link Sys} has them. */
export type PathCalls = Pick<Sys, "realpath" | "readlink">;

let pathCalls: PathCalls | undefined;

/**
 * libc's `realpath` and `readlink` (each backend's), bound on first use on their own: a program
 * that checks paths (see `permissions.ts`) but runs on the helper then binds three libc symbols
 * rather than the whole libc backend's ten (each bound symbol costs ~0.15 ms of start-up).
 */
export function libcPaths(): PathCalls {
  if (pathCalls !== undefined) return pathCalls;
  const lib = Deno.dlopen("libc.so.6", LIBC_PATH_SYMBOLS).symbols;
  // errno is thread-local: this view is valid for calls made on this (the main) thread only.
  const errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
  return pathCalls = {
    realpath: (path, out) => {
      if (byteLengthOf(out) < 4096) throw new RangeError("realpath needs a 4096-byte buffer");
      if (lib.realpath(path as Uint8Array<ArrayBuffer>, out as Uint8Array<ArrayBuffer>) === null) {
        return -errnoView.getInt32(0);
      }
      const end = out.indexOf(0);
      return end < 0 ? out.byteLength : end;
    },
    readlink: (path, out) => {
      const n = lib.readlink(
        path as Uint8Array<ArrayBuffer>,
        out as Uint8Array<ArrayBuffer>,
        BigInt(byteLengthOf(out)),
      );
      return n < 0n ? -errnoView.getInt32(0) : Number(n);
    },
  };
}

const loaded = new Map<Backend, Sys>();

/**
 * `sys` with the calls that take a buffer checked first, through the engine's own lengths (not
 * a view's own, overridable, `byteLength`): the C side writes as much as it was told it may, so
 * a view that claims more (or an `Int32Array` of one element for `pipe`'s two fds) had memory
 * past its end overwritten, and the process crashed. `register` stays raw: what it reads or
 * writes depends on the opcode (`IoUring`'s register methods size their arguments).
 */
function checked(sys: Sys): Sys {
  const atLeast = (view: unknown, bytes: number, what: string) => {
    if (!(view instanceof Uint8Array) || byteLengthOf(view) < bytes) {
      throw new RangeError(`${what} must be a Uint8Array of at least ${bytes} bytes`);
    }
  };
  return {
    ...sys,
    setup: (entries, params) => {
      atLeast(params, PARAMS_SIZE, "params");
      return sys.setup(entries, params);
    },
    pipe: (fds, size) => {
      if (!(fds instanceof Int32Array) || byteLengthOf(fds) < 8) {
        throw new RangeError("fds must be an Int32Array of at least 2 elements");
      }
      return sys.pipe(fds, size);
    },
    utimens: (path, times) => {
      checkCString(path);
      atLeast(times, 2 * TIMESPEC_SIZE, "times");
      return sys.utimens(path, times);
    },
    chmod: (path, mode) => {
      checkCString(path);
      if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
        throw badNumber(mode, `mode must be an integer from 0 to 0o7777, got ${shown(mode)}`);
      }
      return sys.chmod(path, mode);
    },
    rename: (from, to, flags) => {
      checkCString(from);
      checkCString(to);
      if (flags !== 0 && flags !== RENAME_NOREPLACE) {
        throw new RangeError(`flags must be 0 or RENAME_NOREPLACE (${RENAME_NOREPLACE}), got ${flags}`);
      }
      return sys.rename(from, to, flags);
    },
    statx: (path, flags, mask, out, dirfd = AT_FDCWD) => {
      checkCString(path);
      atLeast(out, STATX_SIZE, "out");
      checkDirFd(dirfd, "dirfd");
      return sys.statx(path, flags, mask, out, dirfd);
    },
    realpath: (path, out) => {
      checkCString(path);
      atLeast(out, 4096, "out");
      return sys.realpath(path, out);
    },
    readlink: (path, out) => {
      checkCString(path);
      atLeast(out, 0, "out");
      return sys.readlink(path, out);
    },
  };
}

/**
 * Returns the system layer for `backend` (default: `URING_BACKEND`, else the helper when it
 * loads — the built one, or the one `URING_HELPER` names —, else libc). Each backend is loaded
 * once per process.
 */
export function getSys(backend?: Backend): Sys {
  const fromEnv = backend === undefined;
  const wanted = backend ?? envValue("URING_BACKEND");
  if (wanted !== undefined && wanted !== "helper" && wanted !== "libc") {
    throw new TypeError(
      `${fromEnv ? "URING_BACKEND" : "backend"} must be "helper" or "libc", got ${JSON.stringify(wanted)}`,
    );
  }
  if (wanted !== "libc") {
    const cached = loaded.get("helper");
    if (cached) return cached;
    const helper = tryLoadHelper(wanted === "helper");
    if (helper) {
      requireWholeFfi();
      const sys = checked(helper);
      loaded.set("helper", sys);
      return sys;
    }
  }
  let libc = loaded.get("libc");
  if (!libc) {
    // (Asked before libc's dlopen, which a grant scoped to some path refuses with a message that
    // names only libc.so.6, or, scoped to the bare name, takes for a file in the working directory.)
    requireWholeFfi();
    loaded.set("libc", libc = checked(loadLibc()));
  }
  return libc;
}

/**
 * Throws `Deno.errors.NotCapable`, saying why, unless FFI is granted for all paths (asking, where
 * Deno may prompt): a library loaded under a scoped `--allow-ffi=<path>` would do, but Deno's
 * pointer functions, which the rings are read and written through, refuse that grant (with a
 * bare "Requires ffi access" from deep inside the ring's set-up).
 */
function requireWholeFfi(): void {
  if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") return;
  if (Deno.permissions.requestSync({ name: "ffi" }).state === "granted") return;
  throw new Deno.errors.NotCapable(
    "uring needs --allow-ffi for all of FFI: Deno's pointer functions, which the rings are read and written " +
      "through, refuse a grant scoped to paths (--allow-ffi=<path>)",
  );
}

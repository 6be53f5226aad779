/**
 * Every io_uring ABI number this module uses, in one place.
 *
 * Values come from the kernel's `include/uapi/linux/io_uring.h`; each comment gives the kernel
 * version that added the value. No other file may hold a magic number of the ABI.
 *
 * @module
 */

// ---------------------------------------------------------------------------------------------
// System call numbers (identical on x86_64 and aarch64; io_uring was added in 5.1).

/** `io_uring_setup` system call number (5.1). */
export const SYS_IO_URING_SETUP = 425;
/** `io_uring_enter` system call number (5.1). */
export const SYS_IO_URING_ENTER = 426;
/** `io_uring_register` system call number (5.1). */
export const SYS_IO_URING_REGISTER = 427;
/** `pipe2` system call number (x86_64 293, aarch64 59; used by the libc backend). */
export const SYS_PIPE2: number = Deno.build.arch === "aarch64" ? 59 : 293;
/** `fcntl` system call number (x86_64 72, aarch64 25; used by the libc backend). */
export const SYS_FCNTL: number = Deno.build.arch === "aarch64" ? 25 : 72;
/** `lseek` system call number (x86_64 8, aarch64 62; used by the libc backend). */
export const SYS_LSEEK: number = Deno.build.arch === "aarch64" ? 62 : 8;
/** `utimensat` system call number (x86_64 280, aarch64 88; used by the libc backend). */
export const SYS_UTIMENSAT: number = Deno.build.arch === "aarch64" ? 88 : 280;
/** `fchmodat` system call number (x86_64 268, aarch64 53; used by the libc backend). */
export const SYS_FCHMODAT: number = Deno.build.arch === "aarch64" ? 53 : 268;
/** `renameat2` system call number (x86_64 316, aarch64 276; 3.15; used by the libc backend). */
export const SYS_RENAMEAT2: number = Deno.build.arch === "aarch64" ? 276 : 316;
/** `gettid` system call number (x86_64 186, aarch64 178; 2.4.11; used by the libc backend). */
export const SYS_GETTID: number = Deno.build.arch === "aarch64" ? 178 : 186;
/** `statx` system call number (x86_64 332, aarch64 291; 4.11; used by the libc backend). */
export const SYS_STATX: number = Deno.build.arch === "aarch64" ? 291 : 332;
/** `lseek` whence: the next offset at or after the one given that holds data (3.1). */
export const SEEK_DATA = 3;
/** `lseek` whence: the next hole at or after the offset given (the end of the file counts) (3.1). */
export const SEEK_HOLE = 4;
/** `F_SETPIPE_SZ`: asks for a pipe capacity in bytes (2.6.35). */
export const F_SETPIPE_SZ = 1031;
/** `F_GETPIPE_SZ`: a pipe's capacity in bytes (2.6.35). */
export const F_GETPIPE_SZ = 1032;

// ---------------------------------------------------------------------------------------------
// Struct sizes and field offsets.

/** Size of `struct io_uring_params` in bytes (5.1). */
export const PARAMS_SIZE = 120;
/** Byte offsets of the fields of `struct io_uring_params` (5.1; `wq_fd` 5.6). */
export const PARAMS = {
  sqEntries: 0,
  cqEntries: 4,
  flags: 8,
  sqThreadCpu: 12,
  sqThreadIdle: 16,
  features: 20,
  wqFd: 24,
  sqOff: 40,
  cqOff: 80,
} as const;
/** Byte offsets inside `struct io_sqring_offsets` (5.1), relative to `PARAMS.sqOff`. */
export const SQ_OFF = {
  head: 0,
  tail: 4,
  ringMask: 8,
  ringEntries: 12,
  flags: 16,
  dropped: 20,
  array: 24,
} as const;
/** Byte offsets inside `struct io_cqring_offsets` (5.1; `flags` 5.8), relative to `PARAMS.cqOff`. */
export const CQ_OFF = {
  head: 0,
  tail: 4,
  ringMask: 8,
  ringEntries: 12,
  overflow: 16,
  cqes: 20,
  flags: 24,
} as const;

/** Size of one submission queue entry, `struct io_uring_sqe` (5.1). */
export const SQE_SIZE = 64;
/** Byte offsets of the fields of `struct io_uring_sqe` (5.1 unless noted). */
export const SQE = {
  opcode: 0, // u8
  flags: 1, // u8
  ioprio: 2, // u16
  fd: 4, // s32
  off: 8, // u64, also addr2
  addr: 16, // u64, also splice_off_in
  len: 24, // u32
  opFlags: 28, // u32: rw_flags, fsync_flags, open_flags, timeout_flags, ...
  userData: 32, // u64
  bufIndex: 40, // u16 (5.1), buf_group (5.7)
  personality: 42, // u16 (5.6)
  spliceFdIn: 44, // s32 (5.7), file_index (5.15)
  addr3: 48, // u64 (5.19)
  pad2: 56, // u64: __pad2[0] (5.1), attr_type_mask for reads/writes (6.14): must be zero
} as const;
/** Size of one completion queue entry, `struct io_uring_cqe` (5.1). */
export const CQE_SIZE = 16;
/** Byte offsets of the fields of `struct io_uring_cqe` (5.1). */
export const CQE = { userData: 0, res: 8, flags: 12 } as const;

/** Size of `struct io_uring_getevents_arg` (5.11). */
export const GETEVENTS_ARG_SIZE = 24;
/** Size of `struct __kernel_timespec` (5.1). */
export const TIMESPEC_SIZE = 16;
/** Size of `struct iovec` on 64-bit Linux. */
export const IOVEC_SIZE = 16;
/** Size of `struct open_how` (openat2, 5.6). */
export const OPEN_HOW_SIZE = 24;
/** Size of `struct statx` (4.11). */
export const STATX_SIZE = 256;
/** Size of the header of `struct io_uring_probe` (5.6). */
export const PROBE_HEADER_SIZE = 16;
/** Size of one `struct io_uring_probe_op` (5.6). */
export const PROBE_OP_SIZE = 8;
/** Size of `struct io_uring_files_update` (5.5). */
export const FILES_UPDATE_SIZE = 16;
/** `sizeof(struct io_uring_rsrc_update2)`: offset, resv, data, tags, nr, resv2. */
export const RSRC_UPDATE2_SIZE = 32;
/** Size of `struct io_uring_buf_reg`, the argument of `IORING_REGISTER_PBUF_RING` (5.19). */
export const BUF_REG_SIZE = 40;
/** Byte offsets of the fields of `struct io_uring_buf_reg` (5.19). */
export const BUF_REG = { ringAddr: 0, ringEntries: 8, bgid: 12, flags: 14 } as const;
/**
 * Size of one `struct io_uring_buf` of a provided-buffer ring: `addr` u64, `len` u32, `bid` u16,
 * `resv` u16 (5.19).
 */
export const BUF_SIZE = 16;
/** Byte offsets of the fields of `struct io_uring_buf` (5.19). */
export const BUF = { addr: 0, len: 8, bid: 12 } as const;
/** `flags` of `struct io_uring_buf_reg`: the kernel allocates the ring, mapped with mmap (6.4). */
export const IOU_PBUF_RING_MMAP = 1;
/** `flags` of `struct io_uring_buf_reg`: buffers are consumed a part at a time (6.12). */
export const IOU_PBUF_RING_INC = 2;
/** Size of `struct io_uring_recvmsg_out`, the head of each buffer a multishot recvmsg fills (6.0). */
export const RECVMSG_OUT_SIZE = 16;
/** Byte offsets of the fields of `struct io_uring_recvmsg_out` (each a u32; 6.0). */
export const RECVMSG_OUT = { namelen: 0, controllen: 4, payloadlen: 8, flags: 12 } as const;
/** Where a provided-buffer ring keeps its tail: the u16 over the first entry's `resv` (5.19). */
export const BUF_RING_TAIL = 14;
/** Most entries a provided-buffer ring may have (buffer ids are 16-bit; 5.19). */
export const MAX_BUF_RING_ENTRIES = 32768;
/** Size of `struct sockaddr_storage`: room for any socket address. */
export const SOCKADDR_STORAGE_SIZE = 128;
/** Size of `struct sockaddr_in` (IPv4). */
export const SOCKADDR_IN_SIZE = 16;
/** Size of `struct sockaddr_in6` (IPv6). */
export const SOCKADDR_IN6_SIZE = 28;
/** Size of `struct sockaddr_un`'s `sun_path` (a Unix socket's path, NUL included). */
export const SUN_PATH_SIZE = 108;
/** Size of `struct msghdr` on 64-bit Linux. */
export const MSGHDR_SIZE = 56;
/** Byte offsets of the fields of `struct msghdr` on 64-bit Linux. */
export const MSGHDR = {
  name: 0,
  namelen: 8,
  iov: 16,
  iovlen: 24,
  control: 32,
  controllen: 40,
  flags: 48,
} as const;

// ---------------------------------------------------------------------------------------------
// mmap offsets.

/** mmap offset of the SQ ring (5.1). */
export const IORING_OFF_SQ_RING = 0;
/** mmap offset of the CQ ring (5.1). */
export const IORING_OFF_CQ_RING = 0x8000000;
/** mmap offset of the SQE array (5.1). */
export const IORING_OFF_SQES = 0x10000000;

// ---------------------------------------------------------------------------------------------
// io_uring_setup flags.

/** Busy-poll for I/O completions instead of interrupts (5.1). */
export const IORING_SETUP_IOPOLL = 1 << 0;
/** A kernel thread polls the SQ, so submission needs no system call (5.1). */
export const IORING_SETUP_SQPOLL = 1 << 1;
/** Pin the SQ poll thread to `sq_thread_cpu` (5.1). */
export const IORING_SETUP_SQ_AFF = 1 << 2;
/** `cq_entries` in the params sets the CQ size (5.5). */
export const IORING_SETUP_CQSIZE = 1 << 3;
/** Clamp entries to the maximum instead of failing (5.6). */
export const IORING_SETUP_CLAMP = 1 << 4;
/** Share the async worker pool of `wq_fd` (5.6). */
export const IORING_SETUP_ATTACH_WQ = 1 << 5;
/** Start the ring disabled (5.10). */
export const IORING_SETUP_R_DISABLED = 1 << 6;
/** Keep submitting a batch when one SQE fails (5.18). */
export const IORING_SETUP_SUBMIT_ALL = 1 << 7;
/**
 * Run task work cooperatively (5.19): a completion finished by another thread (an io-wq worker,
 * a poll wake-up) does not interrupt the submitting thread; it is posted when that thread next
 * enters the kernel. Refused together with `IORING_SETUP_SQPOLL`.
 */
export const IORING_SETUP_COOP_TASKRUN = 1 << 8;
/** Set `IORING_SQ_TASKRUN` in the SQ flags while such task work waits (5.19; needs COOP or DEFER). */
export const IORING_SETUP_TASKRUN_FLAG = 1 << 9;
/**
 * 128-byte SQEs (5.19): the command area of `IORING_OP_URING_CMD` grows to 80 bytes
 * (`IoUringOptions.sqe128`).
 */
export const IORING_SETUP_SQE128 = 1 << 10;
/** 32-byte CQEs (5.19): two extra 64-bit words per completion (`IoUringOptions.cqe32`). */
export const IORING_SETUP_CQE32 = 1 << 11;
/** Only one task submits (6.0). */
export const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
/**
 * Run task work only inside `io_uring_enter(GETEVENTS)` of the submitting thread (6.1; needs
 * `SINGLE_ISSUER`, refused with SQPOLL). Every wait must then come from that thread.
 */
export const IORING_SETUP_DEFER_TASKRUN = 1 << 13;
/**
 * At most this many SQEs of each ring per pass of an SQ thread that serves several rings
 * (`IORING_SETUP_ATTACH_WQ`): the kernel's `IORING_SQPOLL_CAP_ENTRIES_VALUE` (5.11). A linked
 * chain cut at the end of a pass runs as two (see `IoUring.sharesSqThread`).
 */
export const SQ_THREAD_SHARED_BATCH = 8;
/** The application provides the rings' memory instead of mapping the kernel's (6.5). */
export const IORING_SETUP_NO_MMAP = 1 << 14;
/** Setup returns a registered ring index, not an fd (with {@link IORING_SETUP_NO_MMAP}; 6.5). */
export const IORING_SETUP_REGISTERED_FD_ONLY = 1 << 15;
/** No SQ index array: the kernel takes SQEs straight from the SQ ring positions (6.6). */
export const IORING_SETUP_NO_SQARRAY = 1 << 16;
/** With {@link IORING_SETUP_IOPOLL}: sleep for part of a request's expected time, then poll (6.13). */
export const IORING_SETUP_HYBRID_IOPOLL = 1 << 17;
/** The CQ holds 16- and 32-byte CQEs alike (`IORING_CQE_F_32` marks the big ones; 6.18). */
export const IORING_SETUP_CQE_MIXED = 1 << 18;
/** The SQ holds 64- and 128-byte SQEs alike (after 6.18). */
export const IORING_SETUP_SQE_MIXED = 1 << 19;
/** Each submission takes SQEs from the SQ's start, head and tail ignored (after 6.18). */
export const IORING_SETUP_SQ_REWIND = 1 << 20;

// ---------------------------------------------------------------------------------------------
// io_uring_enter flags.

/** Wait for `min_complete` completions (5.1). */
export const IORING_ENTER_GETEVENTS = 1 << 0;
/** Wake the SQ poll thread (5.1). */
export const IORING_ENTER_SQ_WAKEUP = 1 << 1;
/** Wait until the SQ has free space (5.10). */
export const IORING_ENTER_SQ_WAIT = 1 << 2;
/** The last argument is a `struct io_uring_getevents_arg` (5.11). */
export const IORING_ENTER_EXT_ARG = 1 << 3;
/** The fd argument is an index into the calling thread's registered rings (5.18). */
export const IORING_ENTER_REGISTERED_RING = 1 << 4;

// ---------------------------------------------------------------------------------------------
// Ring flags the kernel sets.

/** SQ flag: the SQ poll thread sleeps and needs `IORING_ENTER_SQ_WAKEUP` (5.1). */
export const IORING_SQ_NEED_WAKEUP = 1 << 0;
/** SQ flag: completions overflowed the CQ and wait in the kernel (5.9). */
export const IORING_SQ_CQ_OVERFLOW = 1 << 1;
/** SQ flag: task work is pending (5.19). */
export const IORING_SQ_TASKRUN = 1 << 2;

// ---------------------------------------------------------------------------------------------
// Features the kernel reports in `params.features`.

/** SQ and CQ rings share one mmap (5.4). */
export const IORING_FEAT_SINGLE_MMAP = 1 << 0;
/** Overflowed completions are kept, never dropped (5.5). */
export const IORING_FEAT_NODROP = 1 << 1;
/** SQE data is stable once submitted (5.5). */
export const IORING_FEAT_SUBMIT_STABLE = 1 << 2;
/** Offset -1 means the file's current position (5.6). */
export const IORING_FEAT_RW_CUR_POS = 1 << 3;
/** Requests use the submitter's credentials (5.6). */
export const IORING_FEAT_CUR_PERSONALITY = 1 << 4;
/** Internal poll for pollable files (5.7). */
export const IORING_FEAT_FAST_POLL = 1 << 5;
/** 32-bit poll events (5.9). */
export const IORING_FEAT_POLL_32BITS = 1 << 6;
/** SQPOLL works without fixed files (5.11). */
export const IORING_FEAT_SQPOLL_NONFIXED = 1 << 7;
/** `io_uring_enter` takes an extended argument with a timeout (5.11). */
export const IORING_FEAT_EXT_ARG = 1 << 8;
/** Async work runs in native workers (5.12). */
export const IORING_FEAT_NATIVE_WORKERS = 1 << 9;
/** Resource tags (5.13). */
export const IORING_FEAT_RSRC_TAGS = 1 << 10;
/** `IOSQE_CQE_SKIP_SUCCESS` is supported (5.17). */
export const IORING_FEAT_CQE_SKIP = 1 << 11;
/** Linked requests resolve files at execution (5.17). */
export const IORING_FEAT_LINKED_FILE = 1 << 12;
/** A registered ring fd may be used with `IORING_REGISTER_USE_REGISTERED_RING` (6.3). */
export const IORING_FEAT_REG_REG_RING = 1 << 13;
/** Sends and receives take bundles of provided buffers ({@link IORING_RECVSEND_BUNDLE}, 6.10). */
export const IORING_FEAT_RECVSEND_BUNDLE = 1 << 14;
/** The wait argument takes a minimum timeout (`min_wait_usec`, 6.12). */
export const IORING_FEAT_MIN_TIMEOUT = 1 << 15;
/** Reads and writes take attributes (`attr_ptr`, `attr_type_mask`: PI, 6.14). */
export const IORING_FEAT_RW_ATTR = 1 << 16;
/** `IORING_ENTER_NO_IOWAIT`: waits need not count as iowait (6.15). */
export const IORING_FEAT_NO_IOWAIT = 1 << 17;

/** Names of the feature bits, for display. */
export const FEATURE_NAMES: Readonly<Record<number, string>> = {
  [IORING_FEAT_SINGLE_MMAP]: "SINGLE_MMAP",
  [IORING_FEAT_NODROP]: "NODROP",
  [IORING_FEAT_SUBMIT_STABLE]: "SUBMIT_STABLE",
  [IORING_FEAT_RW_CUR_POS]: "RW_CUR_POS",
  [IORING_FEAT_CUR_PERSONALITY]: "CUR_PERSONALITY",
  [IORING_FEAT_FAST_POLL]: "FAST_POLL",
  [IORING_FEAT_POLL_32BITS]: "POLL_32BITS",
  [IORING_FEAT_SQPOLL_NONFIXED]: "SQPOLL_NONFIXED",
  [IORING_FEAT_EXT_ARG]: "EXT_ARG",
  [IORING_FEAT_NATIVE_WORKERS]: "NATIVE_WORKERS",
  [IORING_FEAT_RSRC_TAGS]: "RSRC_TAGS",
  [IORING_FEAT_CQE_SKIP]: "CQE_SKIP",
  [IORING_FEAT_LINKED_FILE]: "LINKED_FILE",
  [IORING_FEAT_REG_REG_RING]: "REG_REG_RING",
  [IORING_FEAT_RECVSEND_BUNDLE]: "RECVSEND_BUNDLE",
  [IORING_FEAT_MIN_TIMEOUT]: "MIN_TIMEOUT",
  [IORING_FEAT_RW_ATTR]: "RW_ATTR",
  [IORING_FEAT_NO_IOWAIT]: "NO_IOWAIT",
};

// ---------------------------------------------------------------------------------------------
// SQE flags (`sqe.flags`).

/** `fd` is an index into the registered file table (5.1). */
export const IOSQE_FIXED_FILE = 1 << 0;
/** Start only after every earlier SQE completed (5.2). */
export const IOSQE_IO_DRAIN = 1 << 1;
/** Link to the next SQE: it starts after this one succeeds (5.3). */
export const IOSQE_IO_LINK = 1 << 2;
/** Like `IOSQE_IO_LINK`, but the chain survives failure (5.5). */
export const IOSQE_IO_HARDLINK = 1 << 3;
/** Always go async, never try inline (5.6). */
export const IOSQE_ASYNC = 1 << 4;
/** Select a buffer from a provided group (5.7). */
export const IOSQE_BUFFER_SELECT = 1 << 5;
/** Post no CQE when the request succeeds (5.17). */
export const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;

// ---------------------------------------------------------------------------------------------
// CQE flags.

/** The upper 16 bits of `flags` hold a selected buffer id (5.7). */
export const IORING_CQE_F_BUFFER = 1 << 0;
/** With `IORING_CQE_F_BUFFER`, the selected buffer's id is `flags >>> IORING_CQE_BUFFER_SHIFT` (5.7). */
export const IORING_CQE_BUFFER_SHIFT = 16;
/** More CQEs will follow for this request (multishot, 5.13). */
export const IORING_CQE_F_MORE = 1 << 1;
/** A socket receive left more data in the socket (5.19). */
export const IORING_CQE_F_SOCK_NONEMPTY = 1 << 2;
/**
 * The second CQE of a zero-copy send: the kernel is done with the buffer, which may be reused
 * (6.0).
 */
export const IORING_CQE_F_NOTIF = 1 << 3;
/**
 * The buffer of this CQE (`IORING_CQE_F_BUFFER`) stays the kernel's: it came from a ring of
 * incrementally consumed buffers and the next data goes on after this CQE's (6.12).
 */
export const IORING_CQE_F_BUF_MORE = 1 << 4;

// ---------------------------------------------------------------------------------------------
// Opcodes (`enum io_uring_op`), each with the kernel that added it.

/** Do nothing (5.1). */
export const IORING_OP_NOP = 0;
/** `preadv2` (5.1). */
export const IORING_OP_READV = 1;
/** `pwritev2` (5.1). */
export const IORING_OP_WRITEV = 2;
/** `fsync`/`fdatasync` (5.1). */
export const IORING_OP_FSYNC = 3;
/** Read into a registered buffer (5.1). */
export const IORING_OP_READ_FIXED = 4;
/** Write from a registered buffer (5.1). */
export const IORING_OP_WRITE_FIXED = 5;
/** One-shot (or multishot, 5.13) poll (5.1). */
export const IORING_OP_POLL_ADD = 6;
/** Remove a poll request (5.1). */
export const IORING_OP_POLL_REMOVE = 7;
/** `sync_file_range` (5.2). */
export const IORING_OP_SYNC_FILE_RANGE = 8;
/** `sendmsg` (5.3). */
export const IORING_OP_SENDMSG = 9;
/** `recvmsg` (5.3). */
export const IORING_OP_RECVMSG = 10;
/** Timeout (5.4). */
export const IORING_OP_TIMEOUT = 11;
/** Remove or update a timeout (5.5). */
export const IORING_OP_TIMEOUT_REMOVE = 12;
/** `accept4` (5.5). */
export const IORING_OP_ACCEPT = 13;
/** Cancel a request (5.5). */
export const IORING_OP_ASYNC_CANCEL = 14;
/** Timeout for the linked request before it (5.5). */
export const IORING_OP_LINK_TIMEOUT = 15;
/** `connect` (5.5). */
export const IORING_OP_CONNECT = 16;
/** `fallocate` (5.6). */
export const IORING_OP_FALLOCATE = 17;
/** `openat` (5.6). */
export const IORING_OP_OPENAT = 18;
/** `close` (5.6). */
export const IORING_OP_CLOSE = 19;
/** Update registered files (5.6). */
export const IORING_OP_FILES_UPDATE = 20;
/** `statx` (5.6). */
export const IORING_OP_STATX = 21;
/** `pread` (5.6). */
export const IORING_OP_READ = 22;
/** `pwrite` (5.6). */
export const IORING_OP_WRITE = 23;
/** `posix_fadvise` (5.6). */
export const IORING_OP_FADVISE = 24;
/** `madvise` (5.6). */
export const IORING_OP_MADVISE = 25;
/** `send` (5.6). */
export const IORING_OP_SEND = 26;
/** `recv` (5.6). */
export const IORING_OP_RECV = 27;
/** `openat2` (5.6). */
export const IORING_OP_OPENAT2 = 28;
/** `epoll_ctl` (5.6). */
export const IORING_OP_EPOLL_CTL = 29;
/** `splice` (5.7). */
export const IORING_OP_SPLICE = 30;
/** Provide buffers to a group (5.7). */
export const IORING_OP_PROVIDE_BUFFERS = 31;
/** Remove buffers from a group (5.7). */
export const IORING_OP_REMOVE_BUFFERS = 32;
/** `tee` (5.8). */
export const IORING_OP_TEE = 33;
/** `shutdown` (5.11). */
export const IORING_OP_SHUTDOWN = 34;
/** `renameat2` (5.11). */
export const IORING_OP_RENAMEAT = 35;
/** `unlinkat` (5.11). */
export const IORING_OP_UNLINKAT = 36;
/** `mkdirat` (5.15). */
export const IORING_OP_MKDIRAT = 37;
/** `symlinkat` (5.15). */
export const IORING_OP_SYMLINKAT = 38;
/** `linkat` (5.15). */
export const IORING_OP_LINKAT = 39;
/** Post a CQE to another ring (5.18). */
export const IORING_OP_MSG_RING = 40;
/** `fsetxattr` (5.19). */
export const IORING_OP_FSETXATTR = 41;
/** `setxattr` (5.19). */
export const IORING_OP_SETXATTR = 42;
/** `fgetxattr` (5.19). */
export const IORING_OP_FGETXATTR = 43;
/** `getxattr` (5.19). */
export const IORING_OP_GETXATTR = 44;
/** `socket` (5.19). */
export const IORING_OP_SOCKET = 45;
/** Passthrough command (5.19). */
export const IORING_OP_URING_CMD = 46;
/** Zero-copy send (6.0). */
export const IORING_OP_SEND_ZC = 47;
/** Zero-copy sendmsg (6.1). */
export const IORING_OP_SENDMSG_ZC = 48;
/** Multishot read (6.7). */
export const IORING_OP_READ_MULTISHOT = 49;
/** `waitid` (6.7). */
export const IORING_OP_WAITID = 50;
/** Futex wait (6.7). */
export const IORING_OP_FUTEX_WAIT = 51;
/** Futex wake (6.7). */
export const IORING_OP_FUTEX_WAKE = 52;
/** Futex waitv (6.7). */
export const IORING_OP_FUTEX_WAITV = 53;
/** Install a fixed file as a normal fd (6.8). */
export const IORING_OP_FIXED_FD_INSTALL = 54;
/** `ftruncate` (6.9). */
export const IORING_OP_FTRUNCATE = 55;
/** `bind` a socket to an address (6.11). */
export const IORING_OP_BIND = 56;
/** `listen` on a socket (6.11). */
export const IORING_OP_LISTEN = 57;
/** Zero-copy receive through a registered interface queue (6.15). */
export const IORING_OP_RECV_ZC = 58;
/** `epoll_wait` (6.15). */
export const IORING_OP_EPOLL_WAIT = 59;
/** `preadv2` into registered buffers (6.15). */
export const IORING_OP_READV_FIXED = 60;
/** `pwritev2` from registered buffers (6.15). */
export const IORING_OP_WRITEV_FIXED = 61;
/** `pipe2` (6.16). */
export const IORING_OP_PIPE = 62;

/** Opcode names by number, for the probe and for messages. */
export const OPCODE_NAMES: readonly string[] = [
  "NOP",
  "READV",
  "WRITEV",
  "FSYNC",
  "READ_FIXED",
  "WRITE_FIXED",
  "POLL_ADD",
  "POLL_REMOVE",
  "SYNC_FILE_RANGE",
  "SENDMSG",
  "RECVMSG",
  "TIMEOUT",
  "TIMEOUT_REMOVE",
  "ACCEPT",
  "ASYNC_CANCEL",
  "LINK_TIMEOUT",
  "CONNECT",
  "FALLOCATE",
  "OPENAT",
  "CLOSE",
  "FILES_UPDATE",
  "STATX",
  "READ",
  "WRITE",
  "FADVISE",
  "MADVISE",
  "SEND",
  "RECV",
  "OPENAT2",
  "EPOLL_CTL",
  "SPLICE",
  "PROVIDE_BUFFERS",
  "REMOVE_BUFFERS",
  "TEE",
  "SHUTDOWN",
  "RENAMEAT",
  "UNLINKAT",
  "MKDIRAT",
  "SYMLINKAT",
  "LINKAT",
  "MSG_RING",
  "FSETXATTR",
  "SETXATTR",
  "FGETXATTR",
  "GETXATTR",
  "SOCKET",
  "URING_CMD",
  "SEND_ZC",
  "SENDMSG_ZC",
  "READ_MULTISHOT",
  "WAITID",
  "FUTEX_WAIT",
  "FUTEX_WAKE",
  "FUTEX_WAITV",
  "FIXED_FD_INSTALL",
  "FTRUNCATE",
  "BIND",
  "LISTEN",
  "RECV_ZC",
  "EPOLL_WAIT",
  "READV_FIXED",
  "WRITEV_FIXED",
  "PIPE",
];

// ---------------------------------------------------------------------------------------------
// Per-opcode flags.

/** `fsync_flags`: sync data only, like `fdatasync` (5.1). */
export const IORING_FSYNC_DATASYNC = 1 << 0;
/** `timeout_flags`: the timespec is absolute (5.5). */
export const IORING_TIMEOUT_ABS = 1 << 0;
/** `timeout_flags`: update an existing timeout (5.11). */
export const IORING_TIMEOUT_UPDATE = 1 << 1;
/** `CLOCK_MONOTONIC`: a clock id (`IoUring.registerClock`, 6.12: the default clock of waits). */
export const CLOCK_MONOTONIC = 1;
/** `CLOCK_BOOTTIME`: a clock id that counts time suspended too (`IoUring.registerClock`, 6.12). */
export const CLOCK_BOOTTIME = 7;
/** `timeout_flags`: use CLOCK_BOOTTIME (5.15). */
export const IORING_TIMEOUT_BOOTTIME = 1 << 2;
/** `timeout_flags`: use CLOCK_REALTIME (5.15). */
export const IORING_TIMEOUT_REALTIME = 1 << 3;
/** `timeout_flags`: update a link timeout (5.15). */
export const IORING_LINK_TIMEOUT_UPDATE = 1 << 4;
/**
 * `timeout_flags`: an expiry, still posted as `-ETIME`, does not fail the request, so the links
 * after it run instead of being cancelled (5.16).
 */
export const IORING_TIMEOUT_ETIME_SUCCESS = 1 << 5;
/** `cancel_flags`: cancel every match, not just the first (5.19). */
export const IORING_ASYNC_CANCEL_ALL = 1 << 0;
/** `cancel_flags`: match by fd instead of user_data (5.19). */
export const IORING_ASYNC_CANCEL_FD = 1 << 1;
/** `cancel_flags`: match any request (5.19). */
export const IORING_ASYNC_CANCEL_ANY = 1 << 2;
/** `cancel_flags`: with `IORING_ASYNC_CANCEL_FD`, the fd is a fixed-file slot (6.0). */
export const IORING_ASYNC_CANCEL_FD_FIXED = 1 << 3;
/** `cancel_flags`: match by user_data, alongside `FD` or `OP` (6.6). */
export const IORING_ASYNC_CANCEL_USERDATA = 1 << 4;
/** `cancel_flags`: match by opcode (6.6). */
export const IORING_ASYNC_CANCEL_OP = 1 << 5;
/** `timeout_flags`: fire every period until cancelled, or `off` times when non-zero (6.4). */
export const IORING_TIMEOUT_MULTISHOT = 1 << 6;
/** `poll32_events` flag in `len`: multishot poll (5.13). */
export const IORING_POLL_ADD_MULTI = 1 << 0;
/** `len` of a poll update (`POLL_REMOVE`): replace the request's poll mask (5.13). */
export const IORING_POLL_UPDATE_EVENTS = 1 << 1;
/** `len` of a poll update (`POLL_REMOVE`): replace the request's user_data (5.13). */
export const IORING_POLL_UPDATE_USER_DATA = 1 << 2;
/** `len` of `POLL_ADD`: level-triggered, as `poll(2)` is, instead of edge-triggered (5.19). */
export const IORING_POLL_ADD_LEVEL = 1 << 3;
/** `splice_flags`: `splice_fd_in` is a registered file index (5.7). */
export const SPLICE_F_FD_IN_FIXED = 0x80000000;
/**
 * `ioprio` of SEND, RECV, SENDMSG, RECVMSG (and their zero-copy forms): wait for the socket to be
 * ready before the first try, instead of trying at once (5.19).
 */
export const IORING_RECVSEND_POLL_FIRST = 1 << 0;
/** `ioprio` of RECV and RECVMSG: multishot, one CQE per provided buffer filled (6.0). */
export const IORING_RECV_MULTISHOT = 1 << 1;
/** `ioprio` of SEND_ZC and SENDMSG_ZC: `buf_index` names a registered buffer (6.0). */
export const IORING_RECVSEND_FIXED_BUF = 1 << 2;
/**
 * `ioprio` of SEND_ZC and SENDMSG_ZC: the notification CQE's `res` has
 * {@link IORING_NOTIF_USAGE_ZC_COPIED} set when the data was copied after all (6.2).
 */
export const IORING_SEND_ZC_REPORT_USAGE = 1 << 3;
/**
 * `ioprio` of RECV (and SEND) with `IOSQE_BUFFER_SELECT` from a ring of provided buffers: fill
 * (send) several buffers in one operation, in ring order; the CQE names the first and `res` the
 * bytes of all ({@link IORING_FEAT_RECVSEND_BUNDLE}, 6.10).
 */
export const IORING_RECVSEND_BUNDLE = 1 << 4;
/**
 * In the `res` of a zero-copy send's notification CQE (with {@link IORING_SEND_ZC_REPORT_USAGE}):
 * the data was copied, not sent from the buffer itself (6.2). `res` is signed: test with
 * `(cqe.res & IORING_NOTIF_USAGE_ZC_COPIED) !== 0`.
 */
export const IORING_NOTIF_USAGE_ZC_COPIED = 0x80000000;
/** `ioprio` of ACCEPT: multishot, one CQE per connection, with `IORING_CQE_F_MORE` (5.19). */
export const IORING_ACCEPT_MULTISHOT = 1 << 0;
/** `ioprio` of ACCEPT: fail with `-EAGAIN` instead of waiting when none is pending (6.10). */
export const IORING_ACCEPT_DONTWAIT = 1 << 1;
/** `ioprio` of ACCEPT: wait for a connection before the first try (6.10). */
export const IORING_ACCEPT_POLL_FIRST = 1 << 2;
/** MSG_RING command in `addr`: post a CQE with `len` as `res` and `off` as `user_data` (5.18). */
export const IORING_MSG_DATA = 0;
/** MSG_RING command in `addr`: pass a registered file to the target ring (6.0). */
export const IORING_MSG_SEND_FD = 1;
/** `msg_ring_flags`: post no CQE on the target ring (`IORING_MSG_SEND_FD` only) (6.0). */
export const IORING_MSG_RING_CQE_SKIP = 1 << 0;
/** `msg_ring_flags`: the target CQE's `flags` come from the SQE's `file_index` (6.3). */
export const IORING_MSG_RING_FLAGS_PASS = 1 << 1;
/** `nop_flags`: complete with the result in `len` (as an s32) instead of 0 (6.10). */
export const IORING_NOP_INJECT_RESULT = 1 << 0;
/** `nop_flags`: post a 32-byte CQE whose extra words are `off` and `addr` (6.18; a CQE32 ring). */
export const IORING_NOP_CQE32 = 1 << 5;
/** `uring_cmd_flags`: the command's data lies in the registered buffer `buf_index` (6.1). */
export const IORING_URING_CMD_FIXED = 1 << 0;

/** `uring_cmd` on a socket: bytes waiting to be read, as `ioctl(SIOCINQ)` (6.7). */
export const SOCKET_URING_OP_SIOCINQ = 0;
/** `uring_cmd` on a socket: bytes not yet sent, as `ioctl(SIOCOUTQ)` (6.7). */
export const SOCKET_URING_OP_SIOCOUTQ = 1;
/** `uring_cmd` on a socket: `getsockopt` (6.7). */
export const SOCKET_URING_OP_GETSOCKOPT = 2;
/** `uring_cmd` on a socket: `setsockopt` (6.7). */
export const SOCKET_URING_OP_SETSOCKOPT = 3;
/** `file_index` value asking the kernel to pick a free fixed-file slot (5.19). */
export const IORING_FILE_INDEX_ALLOC = 0xffffffff;
/**
 * The highest slot a `file_index` can name: the field holds the slot + 1, and slot + 1 =
 * {@link IORING_FILE_INDEX_ALLOC} would ask the kernel to pick one instead.
 */
export const MAX_FILE_INDEX = IORING_FILE_INDEX_ALLOC - 2;

// File opcodes: xattrs, pipes, fixed-fd install (prep_xattr.ts, prep_fd.ts).
/** `install_fd_flags` of FIXED_FD_INSTALL: the new fd is not close-on-exec (6.8). */
export const IORING_FIXED_FD_NO_CLOEXEC = 1 << 0;
/** `setxattr` flag: fail with `EEXIST` if the attribute exists (linux/xattr.h; 2.4). */
export const XATTR_CREATE = 0x1;
/** `setxattr` flag: fail with `ENODATA` if the attribute does not exist (linux/xattr.h; 2.4). */
export const XATTR_REPLACE = 0x2;
/** Longest xattr name in bytes, without its NUL; longer fails with `ERANGE` (linux/limits.h). */
export const XATTR_NAME_MAX = 255;
/** Largest xattr value in bytes; a larger set fails with `E2BIG` (linux/limits.h). */
export const XATTR_SIZE_MAX = 65536;
/** `PATH_MAX`: the most bytes of a path the kernel takes, its NUL included (linux/limits.h). */
export const PATH_MAX = 4096;

// ---------------------------------------------------------------------------------------------
// io_uring_register opcodes.

/** Register fixed buffers (5.1). */
export const IORING_REGISTER_BUFFERS = 0;
/** Unregister fixed buffers (5.1). */
export const IORING_UNREGISTER_BUFFERS = 1;
/** Register a fixed file table (5.1). */
export const IORING_REGISTER_FILES = 2;
/** Unregister the fixed file table (5.1). */
export const IORING_UNREGISTER_FILES = 3;
/** Register an eventfd signalled on completions (5.2). */
export const IORING_REGISTER_EVENTFD = 4;
/** Unregister the eventfd (5.2). */
export const IORING_UNREGISTER_EVENTFD = 5;
/** Update entries of the fixed file table (5.5). */
export const IORING_REGISTER_FILES_UPDATE = 6;
/** Register an eventfd signalled only for async completions (5.6). */
export const IORING_REGISTER_EVENTFD_ASYNC = 7;
/** Probe supported opcodes (5.6). */
export const IORING_REGISTER_PROBE = 8;
/** Register the caller's credentials as a personality; returns its id (5.6). */
export const IORING_REGISTER_PERSONALITY = 9;
/** Unregister a personality by id (5.6). */
export const IORING_UNREGISTER_PERSONALITY = 10;
/** Restrict the opcodes, SQE flags and register calls a disabled ring will accept (5.10). */
export const IORING_REGISTER_RESTRICTIONS = 11;
/** Enable a ring created with `IORING_SETUP_R_DISABLED` (5.10). */
export const IORING_REGISTER_ENABLE_RINGS = 12;
/** Register a fixed file table with `struct io_uring_rsrc_register` (sparse, tags) (5.13). */
export const IORING_REGISTER_FILES2 = 13;
/** Update fixed-file slots with `struct io_uring_rsrc_update2` (tags) (5.13). */
export const IORING_REGISTER_FILES_UPDATE2 = 14;
/** Register fixed buffers with `struct io_uring_rsrc_register` (sparse, tags) (5.13). */
export const IORING_REGISTER_BUFFERS2 = 15;
/** Replace fixed-buffer slots with `struct io_uring_rsrc_update2` (5.13). */
export const IORING_REGISTER_BUFFERS_UPDATE = 16;
/** Set the CPUs the ring's io-wq workers may run on (a `cpu_set_t`) (5.14). */
export const IORING_REGISTER_IOWQ_AFF = 17;
/** Let the io-wq workers run on any CPU again (5.14). */
export const IORING_UNREGISTER_IOWQ_AFF = 18;
/** Set the most io-wq worker threads, bounded and unbounded (per NUMA node on older kernels) (5.15). */
export const IORING_REGISTER_IOWQ_MAX_WORKERS = 19;
/** Register ring fds in the calling thread's ring table, for `IORING_ENTER_REGISTERED_RING` (5.18). */
export const IORING_REGISTER_RING_FDS = 20;
/** Unregister ring fds from the calling thread's ring table (5.18). */
export const IORING_UNREGISTER_RING_FDS = 21;
/** Register a ring of provided buffers for a buffer group (`struct io_uring_buf_reg`, 5.19). */
export const IORING_REGISTER_PBUF_RING = 22;
/** Unregister a buffer group's ring of provided buffers (5.19). */
export const IORING_UNREGISTER_PBUF_RING = 23;
/** Cancel requests synchronously, waiting for them to finish (`struct io_uring_sync_cancel_reg`, 6.0). */
export const IORING_REGISTER_SYNC_CANCEL = 24;
/** Set the range of fixed-file slots the kernel picks from for `IORING_FILE_INDEX_ALLOC` (6.0). */
export const IORING_REGISTER_FILE_ALLOC_RANGE = 25;
/** Read the kernel's head of a ring of provided buffers (`struct io_uring_buf_status`, 6.8). */
export const IORING_REGISTER_PBUF_STATUS = 26;
/** Busy-poll the network for the ring's sockets (`struct io_uring_napi`, 6.9). */
export const IORING_REGISTER_NAPI = 27;
/** Stop busy-polling the network; returns the settings that were in force (6.9). */
export const IORING_UNREGISTER_NAPI = 28;
/** Set the clock the ring's waits time out by (`struct io_uring_clock_register`, 6.12). */
export const IORING_REGISTER_CLOCK = 29;
/** Clone another ring's registered buffers (`struct io_uring_clone_buffers`, 6.12; offsets 6.13). */
export const IORING_REGISTER_CLONE_BUFFERS = 30;
/**
 * Post a CQE on a ring without a ring of one's own (`io_uring_register(-1, ...)` with an
 * `IORING_OP_MSG_RING` SQE, data messages only; 6.13).
 */
export const IORING_REGISTER_SEND_MSG_RING = 31;
/** `io_uring_clone_buffers.flags`: `src_fd` is a registered ring index of the calling thread (6.12). */
export const IORING_REGISTER_SRC_REGISTERED = 1 << 0;
/** `io_uring_clone_buffers.flags`: replace the destination's buffer table (6.13). */
export const IORING_REGISTER_DST_REPLACE = 1 << 1;
/** `sizeof(struct io_uring_clone_buffers)`: src_fd, flags, src_off, dst_off, nr, pad[3]. */
export const CLONE_BUFFERS_SIZE = 32;
/** `io_uring_rsrc_register.flags`: a table of empty slots, no fd array (5.19). */
export const IORING_RSRC_REGISTER_SPARSE = 1 << 0;
/** `io_uring_restriction.opcode`: allow an `io_uring_register` opcode (5.10). */
export const IORING_RESTRICTION_REGISTER_OP = 0;
/** `io_uring_restriction.opcode`: allow an SQE opcode (5.10). */
export const IORING_RESTRICTION_SQE_OP = 1;
/** `io_uring_restriction.opcode`: the SQE flags allowed (5.10). */
export const IORING_RESTRICTION_SQE_FLAGS_ALLOWED = 2;
/** `io_uring_restriction.opcode`: the SQE flags every SQE must carry (5.10). */
export const IORING_RESTRICTION_SQE_FLAGS_REQUIRED = 3;

/** Most buffers one `IORING_REGISTER_BUFFERS` accepts (`IORING_MAX_REG_BUFFERS`, 5.13; 1024 before). */
export const IORING_MAX_REG_BUFFERS = 1 << 14;
/** Largest single registered buffer (`SZ_1G` in io_uring/rsrc.c, 5.1). */
export const IORING_MAX_REG_BUFFER_SIZE = 1 << 30;

/** `io_uring_probe_op.flags`: the opcode is supported (5.6). */
export const IO_URING_OP_SUPPORTED = 1 << 0;
/**
 * An fd value for `IORING_REGISTER_FILES_UPDATE` (`registerFilesUpdate`) that leaves that slot of
 * the fixed file table as it is (5.12; older kernels take it as an fd and fail with `EBADF`). `-1`
 * empties a slot.
 */
export const IORING_REGISTER_FILES_SKIP: number = -2;

// ---------------------------------------------------------------------------------------------
// Linux constants the prep helpers and tests use (include/uapi/asm-generic/fcntl.h etc.).

/** `AT_FDCWD`: resolve paths against the working directory. */
export const AT_FDCWD: number = -100;
/** `AT_REMOVEDIR` for `unlinkat`. */
export const AT_REMOVEDIR = 0x200;
/** `AT_SYMLINK_NOFOLLOW`. */
export const AT_SYMLINK_NOFOLLOW = 0x100;
/** `AT_EMPTY_PATH`. */
export const AT_EMPTY_PATH = 0x1000;
/** `O_RDONLY`. */
export const O_RDONLY = 0;
/** `O_WRONLY`. */
export const O_WRONLY = 1;
/** `O_RDWR`. */
export const O_RDWR = 2;
/** `O_CREAT`. */
export const O_CREAT = 0o100;
/** `O_EXCL`. */
export const O_EXCL = 0o200;
/** `O_TRUNC`. */
export const O_TRUNC = 0o1000;
/** `O_APPEND`. */
export const O_APPEND = 0o2000;
/** `O_NONBLOCK`. */
export const O_NONBLOCK = 0o4000;
// O_DIRECT, O_DIRECTORY and O_NOFOLLOW differ by architecture: asm-generic/fcntl.h (x86_64)
// versus arch/arm64/include/uapi/asm/fcntl.h (aarch64).
const AARCH64 = Deno.build.arch === "aarch64";
/** `O_DIRECT`: bypass the page cache (0o40000 on x86_64, 0o200000 on aarch64). */
export const O_DIRECT: number = AARCH64 ? 0o200000 : 0o40000;
/** `O_DIRECTORY` (0o200000 on x86_64, 0o40000 on aarch64). */
export const O_DIRECTORY: number = AARCH64 ? 0o40000 : 0o200000;
/** `O_NOFOLLOW` (0o400000 on x86_64, 0o100000 on aarch64). */
export const O_NOFOLLOW: number = AARCH64 ? 0o100000 : 0o400000;
/** `O_PATH`: a descriptor for the path alone, not opened for I/O (the same on x86_64 and aarch64). */
export const O_PATH = 0o10000000;
/** `O_CLOEXEC`. */
export const O_CLOEXEC = 0o2000000;
/** `STATX_TYPE` mask bit: the file type bits of `stx_mode` (4.11). */
export const STATX_TYPE = 0x1;
/** `S_IFMT`: the file type bits of a mode. */
export const S_IFMT = 0o170000;
/** `S_IFIFO`: a FIFO (named pipe). */
export const S_IFIFO = 0o010000;
/** `STATX_INO` mask bit: the inode number (4.11). */
export const STATX_INO = 0x100;
/** `STATX_BASIC_STATS` mask (4.11). */
export const STATX_BASIC_STATS = 0x7ff;
/** `STATX_BTIME` (4.11). */
export const STATX_BTIME = 0x800;
/** `STATX_DIOALIGN` (6.1): fills `stx_dio_mem_align` / `stx_dio_offset_align`. */
export const STATX_DIOALIGN = 0x2000;
/** `POLLIN`. */
export const POLLIN = 0x1;
/** `POLLOUT`. */
export const POLLOUT = 0x4;
/** `RENAME_NOREPLACE` for `renameat2`. */
export const RENAME_NOREPLACE = 1;
/** `SPLICE_F_MOVE`. */
export const SPLICE_F_MOVE = 1;
/** `SPLICE_F_NONBLOCK`. */
export const SPLICE_F_NONBLOCK = 2;
/** `SYNC_FILE_RANGE_WRITE`. */
export const SYNC_FILE_RANGE_WRITE = 2;
/** `AF_UNIX`: local (Unix-domain) sockets. */
export const AF_UNIX = 1;
/** `AF_INET`: IPv4. */
export const AF_INET = 2;
/** `AF_INET6`: IPv6. */
export const AF_INET6 = 10;
/** `SOCK_STREAM`. */
export const SOCK_STREAM = 1;
/** `SOCK_DGRAM`. */
export const SOCK_DGRAM = 2;
/** `SOCK_SEQPACKET`. */
export const SOCK_SEQPACKET = 5;
/** `SOCK_NONBLOCK`, or-ed into a socket type (or `accept4`'s flags). */
export const SOCK_NONBLOCK = 0o4000;
/** `SOCK_CLOEXEC`, or-ed into a socket type (or `accept4`'s flags). */
export const SOCK_CLOEXEC = 0o2000000;
/** `SHUT_RD` for `shutdown`. */
export const SHUT_RD = 0;
/** `SHUT_WR` for `shutdown`. */
export const SHUT_WR = 1;
/** `SHUT_RDWR` for `shutdown`. */
export const SHUT_RDWR = 2;
/** `SOL_SOCKET`: the socket-level option namespace of `getsockopt`/`setsockopt`. */
export const SOL_SOCKET = 1;
/** `SO_REUSEADDR` (`SOL_SOCKET`, an int). */
export const SO_REUSEADDR = 2;
/** `SO_TYPE` (`SOL_SOCKET`, an int, read-only). */
export const SO_TYPE = 3;
/** `SO_ERROR` (`SOL_SOCKET`, an int, read-only: takes the pending error). */
export const SO_ERROR = 4;
/** `SO_SNDBUF` (`SOL_SOCKET`, an int). */
export const SO_SNDBUF = 7;
/** `SO_RCVBUF` (`SOL_SOCKET`, an int). */
export const SO_RCVBUF = 8;
/** `SO_KEEPALIVE` (`SOL_SOCKET`, an int). */
export const SO_KEEPALIVE = 9;
/** `MSG_PEEK`: receive without taking the data from the queue. */
export const MSG_PEEK = 0x2;
/** `MSG_CTRUNC`, in a received `msg_flags`: control data did not fit. */
export const MSG_CTRUNC = 0x8;
/** `MSG_TRUNC`: a datagram did not fit (in `msg_flags`); as a flag, return its real length. */
export const MSG_TRUNC = 0x20;
/** `MSG_DONTWAIT`: fail with `EAGAIN` instead of waiting. */
export const MSG_DONTWAIT = 0x40;
/** `MSG_WAITALL`: a stream receive waits for the whole buffer. */
export const MSG_WAITALL = 0x100;
/** `MSG_NOSIGNAL`: no `SIGPIPE` on a broken stream (the send fails with `EPIPE`). */
export const MSG_NOSIGNAL = 0x4000;
/** `MSG_MORE`: more data follows (cork). */
export const MSG_MORE = 0x8000;
/** `FALLOC_FL_KEEP_SIZE`. */
export const FALLOC_FL_KEEP_SIZE = 1;
/** `FALLOC_FL_PUNCH_HOLE`. */
export const FALLOC_FL_PUNCH_HOLE = 2;
/** `POSIX_FADV_SEQUENTIAL`. */
export const POSIX_FADV_SEQUENTIAL = 2;
/** `POSIX_FADV_WILLNEED`. */
export const POSIX_FADV_WILLNEED = 3;
/** `POSIX_FADV_DONTNEED`. */
export const POSIX_FADV_DONTNEED = 4;

/** Byte offsets of the fields of `struct statx` (4.11; `stx_mnt_id` 5.8, DIO fields 6.1). */
export const STATX = {
  mask: 0,
  blksize: 4,
  attributes: 8,
  nlink: 16,
  uid: 20,
  gid: 24,
  mode: 28,
  ino: 32,
  size: 40,
  blocks: 48,
  attributesMask: 56,
  atime: 64,
  btime: 80,
  ctime: 96,
  mtime: 112,
  rdevMajor: 128,
  rdevMinor: 132,
  devMajor: 136,
  devMinor: 140,
  mntId: 144,
  dioMemAlign: 152,
  dioOffsetAlign: 156,
} as const;

/** `PROT_READ` for `mmap` (asm-generic/mman-common.h). */
export const PROT_READ = 0x1;
/** `PROT_WRITE` for `mmap`. */
export const PROT_WRITE = 0x2;
/** `MAP_SHARED` for `mmap`. */
export const MAP_SHARED = 0x01;
/** `MAP_PRIVATE` for `mmap`. */
export const MAP_PRIVATE = 0x02;
/** `MAP_ANONYMOUS` for `mmap` (x86_64 and aarch64). */
export const MAP_ANONYMOUS = 0x20;
/** `MAP_FIXED` for `mmap`: at exactly this address, replacing what is mapped there. */
export const MAP_FIXED = 0x10;
/** `MAP_POPULATE` for `mmap`: prefault the mapping (2.5.46). */
export const MAP_POPULATE = 0x8000;

// ---------------------------------------------------------------------------------------------
// Futexes, waitid and epoll: the waiting opcodes (prep_wait.ts). From include/uapi/linux/futex.h,
// include/uapi/linux/wait.h, include/uapi/asm-generic/siginfo.h and include/uapi/linux/eventpoll.h.

/** futex2 flags: a 32-bit futex word, the one size the kernel implements (6.7). */
export const FUTEX2_SIZE_U32 = 0x02;
/** futex2 flags: the bits that give the futex word's size (6.7). */
export const FUTEX2_SIZE_MASK = 0x03;
/**
 * futex2 flags: a NUMA-aware futex, whose word is followed by a u32 node id (`FUTEX_NO_NODE`: the
 * kernel picks one and writes it there); the pair is 8-byte aligned (defined 6.7, accepted 6.16).
 */
export const FUTEX2_NUMA = 0x04;
/** futex2 flags: with `FUTEX2_NUMA`, take the node from the memory policy of the word's page (6.16). */
export const FUTEX2_MPOL = 0x08;
/**
 * futex2 flags: the futex is private to this process (faster: keyed by address alone); waits and
 * wakes must agree on it (6.7; the value of `FUTEX_PRIVATE_FLAG`).
 */
export const FUTEX2_PRIVATE = 128;
/** The node id of a `FUTEX2_NUMA` futex that has none yet: the kernel picks one (6.16). */
export const FUTEX_NO_NODE: number = -1;
/** A futex wait/wake mask that matches every waiter (2.6.25). */
export const FUTEX_BITSET_MATCH_ANY = 0xffffffff;
/** Most futexes one `futex_waitv` waits on (5.16). */
export const FUTEX_WAITV_MAX = 128;
/** Size of `struct futex_waitv`: `val` u64, `uaddr` u64, `flags` u32, `__reserved` u32 (5.16). */
export const FUTEX_WAITV_SIZE = 24;
/** Byte offsets of the fields of `struct futex_waitv` (5.16). */
export const FUTEX_WAITV = { val: 0, uaddr: 8, flags: 16, reserved: 20 } as const;

/** `waitid` idtype: any child (2.6.9). */
export const P_ALL = 0;
/** `waitid` idtype: the child whose pid is `id` (2.6.9). */
export const P_PID = 1;
/** `waitid` idtype: any child in process group `id` (0: the caller's) (2.6.9). */
export const P_PGID = 2;
/** `waitid` idtype: the child that pidfd `id` refers to (5.4). */
export const P_PIDFD = 3;
/** `waitid` option: do not wait when no child has a state to report (2.6.9). */
export const WNOHANG = 0x00000001;
/** `waitid` option: report children stopped by a signal (2.6.9). */
export const WSTOPPED = 0x00000002;
/** `waitid` option: report children that exited (2.6.9). */
export const WEXITED = 0x00000004;
/** `waitid` option: report stopped children resumed by `SIGCONT` (2.6.9). */
export const WCONTINUED = 0x00000008;
/** `waitid` option: leave the child waitable: report its state without reaping it (2.6.9). */
export const WNOWAIT = 0x01000000;
/** `waitid` option: wait for children of this thread only, not of the whole thread group (2.4). */
export const __WNOTHREAD = 0x20000000;
/** `waitid` option: wait for every child, whatever signal it reports its end with (2.4). */
export const __WALL = 0x40000000;
/** `waitid` option: wait only for "clone" children (ending with a signal other than `SIGCHLD`) (2.0). */
export const __WCLONE = 0x80000000;
/** `si_code` of a `SIGCHLD` siginfo: the child exited; `si_status` is its exit status (2.2). */
export const CLD_EXITED = 1;
/** `si_code`: the child was killed by signal `si_status` (2.2). */
export const CLD_KILLED = 2;
/** `si_code`: the child was killed by signal `si_status` and dumped core (2.2). */
export const CLD_DUMPED = 3;
/** `si_code`: a traced child stopped (2.2). */
export const CLD_TRAPPED = 4;
/** `si_code`: the child was stopped by signal `si_status` (2.2). */
export const CLD_STOPPED = 5;
/** `si_code`: a stopped child was resumed (2.6.9). */
export const CLD_CONTINUED = 6;
/** `SIGCHLD`, the `si_signo` of a waitid report (17 on x86_64 and aarch64). */
export const SIGCHLD = 17;
/** Size of `siginfo_t` (`SI_MAX_SIZE`), what `waitid` fills (2.2). */
export const SIGINFO_SIZE = 128;
/**
 * Byte offsets of the `siginfo_t` fields `waitid` writes, on 64-bit Linux (the union of fields
 * starts at 16): `si_signo`, `si_errno`, `si_code`, then `_sigchld`'s `si_pid`, `si_uid`, `si_status`.
 */
export const SIGINFO = { signo: 0, errno: 4, code: 8, pid: 16, uid: 20, status: 24 } as const;

/** `epoll_ctl` op: add `fd` to the interest list (2.6). */
export const EPOLL_CTL_ADD = 1;
/** `epoll_ctl` op: remove `fd` from the interest list (2.6). */
export const EPOLL_CTL_DEL = 2;
/** `epoll_ctl` op: change `fd`'s events and data (2.6). */
export const EPOLL_CTL_MOD = 3;
/** `epoll_create1` flag: close the epoll fd on exec (2.6.27; the value of `O_CLOEXEC`). */
export const EPOLL_CLOEXEC = 0o2000000;
/** epoll event: readable (2.6). */
export const EPOLLIN = 0x001;
/** epoll event: urgent data (2.6). */
export const EPOLLPRI = 0x002;
/** epoll event: writable (2.6). */
export const EPOLLOUT = 0x004;
/** epoll event: an error (always reported) (2.6). */
export const EPOLLERR = 0x008;
/** epoll event: hang-up (always reported) (2.6). */
export const EPOLLHUP = 0x010;
/** epoll event: normal data readable (2.6). */
export const EPOLLRDNORM = 0x040;
/** epoll event: priority band data readable (2.6). */
export const EPOLLRDBAND = 0x080;
/** epoll event: normal data writable (2.6). */
export const EPOLLWRNORM = 0x100;
/** epoll event: priority band data writable (2.6). */
export const EPOLLWRBAND = 0x200;
/** epoll event: the peer shut down its writing half of a stream socket (2.6.17). */
export const EPOLLRDHUP = 0x2000;
/** epoll input flag: wake one of several epoll fds waiting on the same file (4.5). */
export const EPOLLEXCLUSIVE = 1 << 28;
/** epoll input flag: hold a wakeup source while the event is pending (3.5). */
export const EPOLLWAKEUP = 1 << 29;
/** epoll input flag: report once, then disable until `EPOLL_CTL_MOD` (2.6.2). */
export const EPOLLONESHOT = 1 << 30;
/** epoll input flag: edge-triggered (2.6). As a number it is positive; or-ed, a negative int32. */
export const EPOLLET = 0x80000000;
/**
 * Size of `struct epoll_event` (`events` u32, `data` u64): packed, 12 bytes, on x86-64 only (the
 * kernel's `EPOLL_PACKED`, for 32-bit compatibility); naturally aligned, 16 bytes, on aarch64 and
 * every other architecture (2.6).
 */
export const EPOLL_EVENT_SIZE: number = Deno.build.arch === "x86_64" ? 12 : 16;
/** Byte offsets of the fields of `struct epoll_event` (`data` at 4 on x86-64, 8 elsewhere) (2.6). */
export const EPOLL_EVENT: { readonly events: number; readonly data: number } = {
  events: 0,
  data: Deno.build.arch === "x86_64" ? 4 : 8,
};
/** Most events one `epoll_wait` returns (`EP_MAX_EVENTS`: `INT_MAX / sizeof(struct epoll_event)`). */
export const EPOLL_MAX_EVENTS: number = Math.floor(0x7fffffff / EPOLL_EVENT_SIZE);

/**
 * Kernel-free tests of the ABI constants: struct sizes and field offsets written out here from
 * the kernel's include/uapi/linux/io_uring.h, opcode and flag numbers, and (when a C compiler
 * and the kernel headers are installed) a cross-check of every constant against the headers
 * themselves, compiled with `offsetof`/`sizeof`.
 */

import assert from "node:assert/strict";
import * as abi from "../mod.ts";
import { errno, errnoMessage, errnoName, Probe } from "../mod.ts";

Deno.test("struct sizes match the kernel's", () => {
  assert.equal(abi.PARAMS_SIZE, 120); // struct io_uring_params
  assert.equal(abi.SQE_SIZE, 64); // struct io_uring_sqe
  assert.equal(abi.CQE_SIZE, 16); // struct io_uring_cqe
  assert.equal(abi.GETEVENTS_ARG_SIZE, 24); // struct io_uring_getevents_arg
  assert.equal(abi.TIMESPEC_SIZE, 16); // struct __kernel_timespec
  assert.equal(abi.IOVEC_SIZE, 16); // struct iovec (64-bit)
  assert.equal(abi.OPEN_HOW_SIZE, 24); // struct open_how
  assert.equal(abi.STATX_SIZE, 256); // struct statx
  assert.equal(abi.PROBE_HEADER_SIZE, 16); // struct io_uring_probe without ops[]
  assert.equal(abi.PROBE_OP_SIZE, 8); // struct io_uring_probe_op
  assert.equal(abi.FILES_UPDATE_SIZE, 16); // struct io_uring_files_update
});

Deno.test("io_uring_params, io_sqring_offsets and io_cqring_offsets field offsets", () => {
  assert.deepEqual({ ...abi.PARAMS }, {
    sqEntries: 0,
    cqEntries: 4,
    flags: 8,
    sqThreadCpu: 12,
    sqThreadIdle: 16,
    features: 20,
    wqFd: 24,
    sqOff: 40,
    cqOff: 80,
  });
  assert.deepEqual({ ...abi.SQ_OFF }, {
    head: 0,
    tail: 4,
    ringMask: 8,
    ringEntries: 12,
    flags: 16,
    dropped: 20,
    array: 24,
  });
  assert.deepEqual({ ...abi.CQ_OFF }, {
    head: 0,
    tail: 4,
    ringMask: 8,
    ringEntries: 12,
    overflow: 16,
    cqes: 20,
    flags: 24,
  });
});

Deno.test("io_uring_sqe and io_uring_cqe field offsets", () => {
  assert.deepEqual({ ...abi.SQE }, {
    opcode: 0,
    flags: 1,
    ioprio: 2,
    fd: 4,
    off: 8,
    addr: 16,
    len: 24,
    opFlags: 28,
    userData: 32,
    bufIndex: 40,
    personality: 42,
    spliceFdIn: 44,
    addr3: 48,
    pad2: 56,
  });
  assert.deepEqual({ ...abi.CQE }, { userData: 0, res: 8, flags: 12 });
});

Deno.test("statx field offsets", () => {
  assert.deepEqual({ ...abi.STATX }, {
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
  });
});

Deno.test("syscall numbers, mmap offsets, ring flags", () => {
  assert.equal(abi.SYS_IO_URING_SETUP, 425);
  assert.equal(abi.SYS_IO_URING_ENTER, 426);
  assert.equal(abi.SYS_IO_URING_REGISTER, 427);
  assert.equal(abi.IORING_OFF_SQ_RING, 0);
  assert.equal(abi.IORING_OFF_CQ_RING, 0x8000000);
  assert.equal(abi.IORING_OFF_SQES, 0x10000000);
  assert.equal(abi.IORING_SQ_NEED_WAKEUP, 1);
  assert.equal(abi.IORING_SQ_CQ_OVERFLOW, 2);
  assert.equal(abi.IORING_ENTER_GETEVENTS, 1);
  assert.equal(abi.IORING_ENTER_SQ_WAKEUP, 2);
  assert.equal(abi.IORING_ENTER_SQ_WAIT, 4);
  assert.equal(abi.IORING_ENTER_EXT_ARG, 8);
  assert.equal(abi.IORING_SETUP_SQPOLL, 2);
  assert.equal(abi.IORING_SETUP_SQ_AFF, 4);
  assert.equal(abi.IORING_SETUP_CQSIZE, 8);
  assert.equal(abi.IORING_SETUP_NO_SQARRAY, 0x10000); // (1U << 16), include/uapi/linux/io_uring.h
  assert.equal(abi.IORING_SETUP_COOP_TASKRUN, 0x100); // (1U << 8)
  assert.equal(abi.IORING_SETUP_TASKRUN_FLAG, 0x200); // (1U << 9)
  assert.equal(abi.IORING_SETUP_SINGLE_ISSUER, 0x1000); // (1U << 12)
  assert.equal(abi.IORING_SETUP_DEFER_TASKRUN, 0x2000); // (1U << 13)
  assert.equal(abi.IORING_SETUP_SQE128, 0x400); // (1U << 10)
  assert.equal(abi.IORING_SETUP_CQE32, 0x800); // (1U << 11)
  assert.equal(abi.IORING_NOP_INJECT_RESULT, 1); // (1U << 0), nop_flags
  assert.equal(abi.IORING_NOP_CQE32, 0x20); // (1U << 5), nop_flags
  assert.equal(abi.IORING_URING_CMD_FIXED, 1); // (1U << 0), uring_cmd_flags
  assert.equal(abi.IORING_SQ_TASKRUN, 4); // (1U << 2)
  assert.equal(abi.IORING_FEAT_SINGLE_MMAP, 1);
  assert.equal(abi.IORING_FEAT_NODROP, 2);
  assert.equal(abi.IORING_FEAT_SQPOLL_NONFIXED, 1 << 7);
  assert.equal(abi.IORING_FEAT_EXT_ARG, 1 << 8);
});

Deno.test("opcode numbers follow enum io_uring_op, and OPCODE_NAMES matches them", () => {
  const ops: Record<string, number> = {
    NOP: 0,
    READV: 1,
    WRITEV: 2,
    FSYNC: 3,
    READ_FIXED: 4,
    WRITE_FIXED: 5,
    POLL_ADD: 6,
    POLL_REMOVE: 7,
    SYNC_FILE_RANGE: 8,
    SENDMSG: 9,
    RECVMSG: 10,
    TIMEOUT: 11,
    TIMEOUT_REMOVE: 12,
    ACCEPT: 13,
    ASYNC_CANCEL: 14,
    LINK_TIMEOUT: 15,
    CONNECT: 16,
    FALLOCATE: 17,
    OPENAT: 18,
    CLOSE: 19,
    FILES_UPDATE: 20,
    STATX: 21,
    READ: 22,
    WRITE: 23,
    FADVISE: 24,
    MADVISE: 25,
    SEND: 26,
    RECV: 27,
    OPENAT2: 28,
    EPOLL_CTL: 29,
    SPLICE: 30,
    PROVIDE_BUFFERS: 31,
    REMOVE_BUFFERS: 32,
    TEE: 33,
    SHUTDOWN: 34,
    RENAMEAT: 35,
    UNLINKAT: 36,
    MKDIRAT: 37,
    SYMLINKAT: 38,
    LINKAT: 39,
    MSG_RING: 40,
    FSETXATTR: 41,
    SETXATTR: 42,
    FGETXATTR: 43,
    GETXATTR: 44,
    SOCKET: 45,
    URING_CMD: 46,
    SEND_ZC: 47,
    SENDMSG_ZC: 48,
    READ_MULTISHOT: 49,
    WAITID: 50,
    FUTEX_WAIT: 51,
    FUTEX_WAKE: 52,
    FUTEX_WAITV: 53,
    FIXED_FD_INSTALL: 54,
    FTRUNCATE: 55,
    BIND: 56,
    LISTEN: 57,
    RECV_ZC: 58,
    EPOLL_WAIT: 59,
    READV_FIXED: 60,
    WRITEV_FIXED: 61,
    PIPE: 62,
  };
  const exported = abi as unknown as Record<string, unknown>;
  for (const [name, value] of Object.entries(ops)) {
    assert.equal(exported[`IORING_OP_${name}`], value, `IORING_OP_${name}`);
    assert.equal(abi.OPCODE_NAMES[value], name, `OPCODE_NAMES[${value}]`);
  }
  // Every IORING_OP_* the module exports is in the table above.
  for (const key of Object.keys(exported).filter((k) => k.startsWith("IORING_OP_"))) {
    assert.ok(key.slice("IORING_OP_".length) in ops, `${key} is not checked here`);
  }
});

Deno.test("register opcodes and per-opcode flags", () => {
  assert.equal(abi.IORING_REGISTER_BUFFERS, 0);
  assert.equal(abi.IORING_UNREGISTER_BUFFERS, 1);
  assert.equal(abi.IORING_REGISTER_FILES, 2);
  assert.equal(abi.IORING_UNREGISTER_FILES, 3);
  assert.equal(abi.IORING_REGISTER_EVENTFD, 4);
  assert.equal(abi.IORING_UNREGISTER_EVENTFD, 5);
  assert.equal(abi.IORING_REGISTER_FILES_UPDATE, 6);
  assert.equal(abi.IORING_REGISTER_EVENTFD_ASYNC, 7);
  assert.equal(abi.IORING_REGISTER_PROBE, 8);
  assert.equal(abi.IORING_REGISTER_IOWQ_MAX_WORKERS, 19);
  assert.equal(abi.IO_URING_OP_SUPPORTED, 1);
  assert.equal(abi.IORING_REGISTER_FILES_SKIP, -2);
  assert.equal(abi.IORING_FSYNC_DATASYNC, 1);
  assert.equal(abi.IORING_TIMEOUT_ABS, 1);
  assert.equal(abi.IORING_ASYNC_CANCEL_ALL, 1);
  assert.equal(abi.IORING_ASYNC_CANCEL_FD, 2);
  assert.equal(abi.IORING_POLL_ADD_MULTI, 1);
  assert.equal(abi.SPLICE_F_FD_IN_FIXED, 0x80000000);
  assert.equal(abi.IORING_FILE_INDEX_ALLOC, 0xffffffff);
  assert.equal(abi.AT_FDCWD, -100);
  // Written out from include/uapi/linux/io_uring.h (6.18) and asm-generic/socket.h.
  assert.equal(abi.IORING_REGISTER_PERSONALITY, 9);
  assert.equal(abi.IORING_UNREGISTER_PERSONALITY, 10);
  assert.equal(abi.IORING_REGISTER_RESTRICTIONS, 11);
  assert.equal(abi.IORING_REGISTER_ENABLE_RINGS, 12);
  assert.equal(abi.IORING_REGISTER_FILES2, 13);
  assert.equal(abi.IORING_REGISTER_FILES_UPDATE2, 14);
  assert.equal(abi.IORING_REGISTER_BUFFERS2, 15);
  assert.equal(abi.IORING_REGISTER_BUFFERS_UPDATE, 16);
  assert.equal(abi.IORING_REGISTER_SYNC_CANCEL, 24);
  assert.equal(abi.IORING_REGISTER_FILE_ALLOC_RANGE, 25);
  assert.equal(abi.IORING_REGISTER_PBUF_STATUS, 26);
  assert.equal(abi.IORING_REGISTER_CLOCK, 29);
  assert.equal(abi.IORING_REGISTER_CLONE_BUFFERS, 30);
  assert.equal(abi.IORING_REGISTER_SEND_MSG_RING, 31);
  assert.equal(abi.IORING_REGISTER_SRC_REGISTERED, 1);
  assert.equal(abi.IORING_REGISTER_DST_REPLACE, 2);
  assert.equal(abi.CLONE_BUFFERS_SIZE, 8 * 4); // src_fd, flags, src_off, dst_off, nr, pad[3]
  assert.equal(abi.IORING_RSRC_REGISTER_SPARSE, 1);
  assert.deepEqual(
    [
      abi.IORING_RESTRICTION_REGISTER_OP,
      abi.IORING_RESTRICTION_SQE_OP,
      abi.IORING_RESTRICTION_SQE_FLAGS_ALLOWED,
      abi.IORING_RESTRICTION_SQE_FLAGS_REQUIRED,
    ],
    [0, 1, 2, 3],
  );
  assert.equal(abi.IORING_ASYNC_CANCEL_ANY, 4);
  assert.equal(abi.IORING_ASYNC_CANCEL_FD_FIXED, 8);
  assert.equal(abi.IORING_ASYNC_CANCEL_USERDATA, 16);
  assert.equal(abi.IORING_ASYNC_CANCEL_OP, 32);
  assert.equal(abi.IORING_TIMEOUT_UPDATE, 2);
  assert.equal(abi.IORING_LINK_TIMEOUT_UPDATE, 16);
  assert.equal(abi.IORING_TIMEOUT_MULTISHOT, 64);
  assert.equal(abi.IORING_POLL_UPDATE_EVENTS, 2);
  assert.equal(abi.IORING_POLL_UPDATE_USER_DATA, 4);
  assert.equal(abi.IORING_POLL_ADD_LEVEL, 8);
  assert.equal(abi.IORING_MSG_SEND_FD, 1);
  assert.equal(abi.IORING_MSG_RING_CQE_SKIP, 1);
  assert.deepEqual(
    [
      abi.SOCKET_URING_OP_SIOCINQ,
      abi.SOCKET_URING_OP_SIOCOUTQ,
      abi.SOCKET_URING_OP_GETSOCKOPT,
      abi.SOCKET_URING_OP_SETSOCKOPT,
    ],
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    [
      abi.SOL_SOCKET,
      abi.SO_REUSEADDR,
      abi.SO_TYPE,
      abi.SO_ERROR,
      abi.SO_SNDBUF,
      abi.SO_RCVBUF,
      abi.SO_KEEPALIVE,
    ],
    [1, 2, 3, 4, 7, 8, 9],
  );
});

Deno.test("xattr, pipe and fixed-fd-install constants", () => {
  // (1U << 0) in include/uapi/linux/io_uring.h since 6.8; the installed copy may predate it.
  assert.equal(abi.IORING_FIXED_FD_NO_CLOEXEC, 1);
  assert.equal(abi.XATTR_CREATE, 0x1); // linux/xattr.h
  assert.equal(abi.XATTR_REPLACE, 0x2);
  assert.equal(abi.XATTR_NAME_MAX, 255); // linux/limits.h
  assert.equal(abi.XATTR_SIZE_MAX, 65536);
});

Deno.test("errno names, numbers and messages", () => {
  assert.equal(errnoName(22), "EINVAL");
  assert.equal(errno("EINVAL"), 22);
  assert.equal(errno("ECANCELED"), 125);
  assert.equal(errno("ETIME"), 62);
  assert.equal(errnoMessage(2), "No such file or directory");
  assert.equal(errnoName(9999), "E9999");
  assert.throws(() => errno("ENOTANERRNO"), RangeError);
  // The aliases name the same numbers; a number keeps its one name.
  assert.equal(errno("EWOULDBLOCK"), 11);
  assert.equal(errno("EDEADLOCK"), 35);
  assert.equal(errno("ENOTSUP"), 95);
  assert.equal(errno("ENOTSUPP"), 524, "the kernel-internal one is another number");
  assert.equal(errnoName(11), "EAGAIN");
  assert.equal(errnoName(95), "EOPNOTSUPP");
});

Deno.test("Probe decodes struct io_uring_probe: supported flag per op, ops past ops_len unsupported", () => {
  // struct io_uring_probe { u8 last_op; u8 ops_len; u16 resv; u32 resv2[3]; io_uring_probe_op ops[]; }
  // struct io_uring_probe_op { u8 op; u8 resv; u16 flags; u32 resv2; }
  const buf = new Uint8Array(16 + 8 * 8);
  const v = new DataView(buf.buffer);
  buf[0] = 5; // last_op
  buf[1] = 6; // ops_len
  for (let op = 0; op < 8; op++) {
    buf[16 + op * 8] = op;
    // op 3 unsupported; ops 6 and 7 flagged but past ops_len
    v.setUint16(16 + op * 8 + 2, op === 3 ? 0 : 1, true);
  }
  const probe = new Probe(buf);
  assert.equal(probe.lastOp, 5);
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((op) => probe.supports(op)), [
    true,
    true,
    true,
    false,
    true,
    true,
    false,
    false,
  ]);
  assert.deepEqual(probe.names, ["NOP", "READV", "WRITEV", "READ_FIXED", "WRITE_FIXED"]);
});

// --- Cross-check against the installed kernel headers ------------------------------------------

const HEADER = "/usr/include/linux/io_uring.h";

function haveCompiler(): boolean {
  try {
    Deno.statSync(HEADER);
    return new Deno.Command("cc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const canCompile = haveCompiler();

Deno.test({
  name: "every constant and offset agrees with the installed kernel headers (C offsetof/sizeof)",
  ignore: !canCompile,
  fn() {
    const header = Deno.readTextFileSync(HEADER);
    const exported = abi as unknown as Record<string, unknown>;
    const lines: string[] = [];
    const expected = new Map<string, number>();
    const want = (key: string, expr: string, value: number) => {
      expected.set(key, value);
      lines.push(`  printf("%s %lld\\n", ${JSON.stringify(key)}, (long long)(${expr}));`);
    };
    // io_uring constants: those the installed header has (it may be older than the kernel).
    for (const [name, value] of Object.entries(exported)) {
      if (typeof value !== "number" || !/^(IORING_|IOSQE_|IO_URING_|SOCKET_URING_OP_)/.test(name)) continue;
      if (!new RegExp(`\\b${name}\\b`).test(header)) continue;
      want(name, name, value);
    }
    // Other Linux constants the module defines: each only if the C headers have it.
    const libcNames = Object.keys(exported).filter((n) =>
      /^(AT_|O_|STATX_(BASIC|BTIME|DIOALIGN)|POLL(IN|OUT)$|RENAME_|SPLICE_F_(MOVE|NONBLOCK)|SYNC_FILE_RANGE_|FALLOC_FL_|POSIX_FADV_|AF_|SOCK_|SHUT_|MSG_|SOL_SOCKET$|SO_|XATTR_)/
        .test(n) && typeof exported[n] === "number"
    );
    for (const name of libcNames) {
      lines.push(`#ifdef ${name}`);
      want(name, name, exported[name] as number);
      lines.push(`#endif`);
    }
    // errno numbers as the C library has them.
    for (let n = 1; n < 134; n++) {
      const name = errnoName(n);
      if (name === `E${n}`) continue;
      lines.push(`#ifdef ${name}`);
      want(`errno:${name}`, name, n);
      lines.push(`#endif`);
    }
    // Struct layouts.
    const o = (key: string, type: string, field: string, value: number) =>
      want(key, `offsetof(struct ${type}, ${field})`, value);
    want("sizeof sqe", "sizeof(struct io_uring_sqe)", abi.SQE_SIZE);
    want("sizeof cqe", "sizeof(struct io_uring_cqe)", abi.CQE_SIZE);
    want("sizeof params", "sizeof(struct io_uring_params)", abi.PARAMS_SIZE);
    want("sizeof getevents_arg", "sizeof(struct io_uring_getevents_arg)", abi.GETEVENTS_ARG_SIZE);
    want("sizeof timespec", "sizeof(struct __kernel_timespec)", abi.TIMESPEC_SIZE);
    want("sizeof iovec", "sizeof(struct iovec)", abi.IOVEC_SIZE);
    want("sizeof open_how", "sizeof(struct open_how)", abi.OPEN_HOW_SIZE);
    want("sizeof statx", "sizeof(struct statx)", abi.STATX_SIZE);
    want("sizeof probe", "sizeof(struct io_uring_probe)", abi.PROBE_HEADER_SIZE);
    want("sizeof probe_op", "sizeof(struct io_uring_probe_op)", abi.PROBE_OP_SIZE);
    want("sizeof files_update", "sizeof(struct io_uring_files_update)", abi.FILES_UPDATE_SIZE);
    want("sizeof rsrc_update2", "sizeof(struct io_uring_rsrc_update2)", abi.RSRC_UPDATE2_SIZE);
    o("rsrc_update2.data", "io_uring_rsrc_update2", "data", 8);
    o("rsrc_update2.nr", "io_uring_rsrc_update2", "nr", 24);
    want("sizeof sockaddr_storage", "sizeof(struct sockaddr_storage)", abi.SOCKADDR_STORAGE_SIZE);
    want("sizeof sockaddr_in", "sizeof(struct sockaddr_in)", abi.SOCKADDR_IN_SIZE);
    want("sizeof sockaddr_in6", "sizeof(struct sockaddr_in6)", abi.SOCKADDR_IN6_SIZE);
    want("sizeof sun_path", "sizeof(((struct sockaddr_un *)0)->sun_path)", abi.SUN_PATH_SIZE);
    want("sizeof msghdr", "sizeof(struct msghdr)", abi.MSGHDR_SIZE);
    want("sizeof buf_reg", "sizeof(struct io_uring_buf_reg)", abi.BUF_REG_SIZE);
    o("buf_reg.ring_addr", "io_uring_buf_reg", "ring_addr", abi.BUF_REG.ringAddr);
    o("buf_reg.ring_entries", "io_uring_buf_reg", "ring_entries", abi.BUF_REG.ringEntries);
    o("buf_reg.bgid", "io_uring_buf_reg", "bgid", abi.BUF_REG.bgid);
    // (`flags` is `pad` in headers before 6.4: at the same offset, right after bgid)
    want("sizeof buf", "sizeof(struct io_uring_buf)", abi.BUF_SIZE);
    o("buf.addr", "io_uring_buf", "addr", abi.BUF.addr);
    o("buf.len", "io_uring_buf", "len", abi.BUF.len);
    o("buf.bid", "io_uring_buf", "bid", abi.BUF.bid);
    o("buf_ring.tail", "io_uring_buf_ring", "tail", abi.BUF_RING_TAIL);
    for (
      const [k, f] of Object.entries({
        name: "msg_name",
        namelen: "msg_namelen",
        iov: "msg_iov",
        iovlen: "msg_iovlen",
        control: "msg_control",
        controllen: "msg_controllen",
        flags: "msg_flags",
      })
    ) {
      o(`msghdr.${f}`, "msghdr", f, abi.MSGHDR[k as keyof typeof abi.MSGHDR]);
    }
    const sqeFields: Record<string, string> = {
      opcode: "opcode",
      flags: "flags",
      ioprio: "ioprio",
      fd: "fd",
      off: "off",
      addr: "addr",
      len: "len",
      opFlags: "rw_flags",
      userData: "user_data",
      bufIndex: "buf_index",
      personality: "personality",
      spliceFdIn: "splice_fd_in",
      addr3: "addr3",
      pad2: "__pad2",
    };
    for (const [k, f] of Object.entries(sqeFields)) {
      o(`sqe.${f}`, "io_uring_sqe", f, abi.SQE[k as keyof typeof abi.SQE]);
    }
    o("cqe.user_data", "io_uring_cqe", "user_data", abi.CQE.userData);
    o("cqe.res", "io_uring_cqe", "res", abi.CQE.res);
    o("cqe.flags", "io_uring_cqe", "flags", abi.CQE.flags);
    const params: Record<string, string> = {
      sqEntries: "sq_entries",
      cqEntries: "cq_entries",
      flags: "flags",
      sqThreadCpu: "sq_thread_cpu",
      sqThreadIdle: "sq_thread_idle",
      features: "features",
      wqFd: "wq_fd",
      sqOff: "sq_off",
      cqOff: "cq_off",
    };
    for (const [k, f] of Object.entries(params)) {
      o(`params.${f}`, "io_uring_params", f, abi.PARAMS[k as keyof typeof abi.PARAMS]);
    }
    const sqOff: Record<string, string> = {
      head: "head",
      tail: "tail",
      ringMask: "ring_mask",
      ringEntries: "ring_entries",
      flags: "flags",
      dropped: "dropped",
      array: "array",
    };
    for (const [k, f] of Object.entries(sqOff)) {
      o(`sq_off.${f}`, "io_sqring_offsets", f, abi.SQ_OFF[k as keyof typeof abi.SQ_OFF]);
    }
    const cqOff: Record<string, string> = {
      head: "head",
      tail: "tail",
      ringMask: "ring_mask",
      ringEntries: "ring_entries",
      overflow: "overflow",
      cqes: "cqes",
      flags: "flags",
    };
    for (const [k, f] of Object.entries(cqOff)) {
      o(`cq_off.${f}`, "io_cqring_offsets", f, abi.CQ_OFF[k as keyof typeof abi.CQ_OFF]);
    }
    const statx: Record<string, string> = {
      mask: "stx_mask",
      blksize: "stx_blksize",
      attributes: "stx_attributes",
      nlink: "stx_nlink",
      uid: "stx_uid",
      gid: "stx_gid",
      mode: "stx_mode",
      ino: "stx_ino",
      size: "stx_size",
      blocks: "stx_blocks",
      attributesMask: "stx_attributes_mask",
      atime: "stx_atime",
      btime: "stx_btime",
      ctime: "stx_ctime",
      mtime: "stx_mtime",
      rdevMajor: "stx_rdev_major",
      rdevMinor: "stx_rdev_minor",
      devMajor: "stx_dev_major",
      devMinor: "stx_dev_minor",
      mntId: "stx_mnt_id",
      dioMemAlign: "stx_dio_mem_align",
      dioOffsetAlign: "stx_dio_offset_align",
    };
    for (const [k, f] of Object.entries(statx)) {
      if (!new RegExp(`\\b${f}\\b`).test(Deno.readTextFileSync("/usr/include/linux/stat.h"))) continue;
      o(`statx.${f}`, "statx", f, abi.STATX[k as keyof typeof abi.STATX]);
    }

    const source = [
      "#include <stddef.h>",
      "#include <stdio.h>",
      "#include <errno.h>",
      "#include <fcntl.h>",
      "#include <poll.h>",
      "#include <sys/uio.h>",
      "#include <sys/socket.h>",
      "#include <sys/un.h>",
      "#include <netinet/in.h>",
      "#include <linux/stat.h>",
      "#include <linux/fs.h>",
      "#include <linux/falloc.h>",
      "#include <linux/openat2.h>",
      "#include <linux/xattr.h>",
      "#include <linux/limits.h>",
      "#include <linux/io_uring.h>",
      "int main(void) {",
      ...lines,
      "  return 0;",
      "}",
    ].join("\n");
    const dir = Deno.makeTempDirSync({ prefix: "uring-abi-" });
    try {
      Deno.writeTextFileSync(`${dir}/abi.c`, source);
      const cc = new Deno.Command("cc", { args: ["-D_GNU_SOURCE", "-o", `${dir}/abi`, `${dir}/abi.c`] })
        .outputSync();
      assert.ok(cc.success, `cc failed:\n${new TextDecoder().decode(cc.stderr)}`);
      const out = new Deno.Command(`${dir}/abi`).outputSync();
      assert.ok(out.success);
      const got = new Map<string, number>();
      for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
        const at = line.lastIndexOf(" ");
        got.set(line.slice(0, at), Number(line.slice(at + 1)));
      }
      // The struct layouts and the core io_uring numbers must all have been compared.
      assert.ok(got.has("sizeof sqe") && got.has("IORING_OP_READ") && got.has("IORING_FEAT_NODROP"));
      assert.ok(got.size > 150, `only ${got.size} values compared`);
      const mismatches: string[] = [];
      for (const [key, value] of got) {
        const mine = expected.get(key)!;
        if (mine !== value) mismatches.push(`${key}: module ${mine}, C ${value}`);
      }
      assert.deepEqual(mismatches, []);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

// --- Futexes, waitid and epoll (prep_wait.ts) ----------------------------------------------------

Deno.test("futex, waitid and epoll constants and struct layouts (literals from the kernel's uapi headers)", () => {
  // include/uapi/linux/futex.h. /usr/include/linux/futex.h here predates the futex2 flags (it has
  // only FUTEX_32): these are the kernel header's literal values.
  assert.equal(abi.FUTEX2_SIZE_U32, 0x02);
  assert.equal(abi.FUTEX2_SIZE_MASK, 0x03);
  assert.equal(abi.FUTEX2_NUMA, 0x04);
  assert.equal(abi.FUTEX2_MPOL, 0x08);
  assert.equal(abi.FUTEX2_PRIVATE, 128); // FUTEX_PRIVATE_FLAG
  assert.equal(abi.FUTEX_NO_NODE, -1);
  assert.equal(abi.FUTEX_BITSET_MATCH_ANY, 0xffffffff);
  assert.equal(abi.FUTEX_WAITV_MAX, 128);
  assert.equal(abi.FUTEX_WAITV_SIZE, 24); // { __u64 val; __u64 uaddr; __u32 flags; __u32 __reserved; }
  assert.deepEqual({ ...abi.FUTEX_WAITV }, { val: 0, uaddr: 8, flags: 16, reserved: 20 });
  // include/uapi/linux/wait.h
  assert.deepEqual([abi.P_ALL, abi.P_PID, abi.P_PGID, abi.P_PIDFD], [0, 1, 2, 3]);
  assert.deepEqual([abi.WNOHANG, abi.WSTOPPED, abi.WEXITED, abi.WCONTINUED, abi.WNOWAIT], [
    1,
    2,
    4,
    8,
    0x01000000,
  ]);
  assert.deepEqual([abi.__WNOTHREAD, abi.__WALL, abi.__WCLONE], [0x20000000, 0x40000000, 0x80000000]);
  // include/uapi/asm-generic/siginfo.h, signal.h
  assert.deepEqual(
    [abi.CLD_EXITED, abi.CLD_KILLED, abi.CLD_DUMPED, abi.CLD_TRAPPED, abi.CLD_STOPPED, abi.CLD_CONTINUED],
    [1, 2, 3, 4, 5, 6],
  );
  assert.equal(abi.SIGCHLD, 17);
  assert.equal(abi.SIGINFO_SIZE, 128);
  assert.deepEqual({ ...abi.SIGINFO }, { signo: 0, errno: 4, code: 8, pid: 16, uid: 20, status: 24 });
  // include/uapi/linux/eventpoll.h
  assert.deepEqual([abi.EPOLL_CTL_ADD, abi.EPOLL_CTL_DEL, abi.EPOLL_CTL_MOD], [1, 2, 3]);
  assert.equal(abi.EPOLL_CLOEXEC, 0o2000000);
  assert.deepEqual(
    [abi.EPOLLIN, abi.EPOLLPRI, abi.EPOLLOUT, abi.EPOLLERR, abi.EPOLLHUP, abi.EPOLLRDNORM, abi.EPOLLRDBAND],
    [0x1, 0x2, 0x4, 0x8, 0x10, 0x40, 0x80],
  );
  assert.deepEqual([abi.EPOLLWRNORM, abi.EPOLLWRBAND, abi.EPOLLRDHUP], [0x100, 0x200, 0x2000]);
  assert.deepEqual(
    [abi.EPOLLEXCLUSIVE, abi.EPOLLWAKEUP, abi.EPOLLONESHOT, abi.EPOLLET],
    [0x10000000, 0x20000000, 0x40000000, 0x80000000],
  );
  // EPOLL_PACKED (__attribute__((packed))) is defined for __x86_64__ only.
  const x86 = Deno.build.arch === "x86_64";
  assert.equal(abi.EPOLL_EVENT_SIZE, x86 ? 12 : 16);
  assert.deepEqual({ ...abi.EPOLL_EVENT }, { events: 0, data: x86 ? 4 : 8 });
  assert.equal(abi.EPOLL_MAX_EVENTS, Math.floor(0x7fffffff / abi.EPOLL_EVENT_SIZE));
});

Deno.test({
  name: "futex, waitid and epoll constants agree with the installed C headers (where they have them)",
  ignore: !canCompile,
  fn() {
    const exported = abi as unknown as Record<string, unknown>;
    const lines: string[] = [];
    const expected = new Map<string, number>();
    const want = (key: string, expr: string, value: number, ifdef?: string) => {
      expected.set(key, value);
      if (ifdef) lines.push(`#ifdef ${ifdef}`);
      lines.push(`  printf("%s %lld\\n", ${JSON.stringify(key)}, (long long)(${expr}));`);
      if (ifdef) lines.push(`#endif`);
    };
    const value = (name: string) => exported[name] as number;
    // Macros: compared when the headers define them (the futex2 ones only in headers from 6.7).
    for (
      const name of Object.keys(exported).filter((n) =>
        /^(FUTEX2_|FUTEX_NO_NODE$|FUTEX_BITSET_MATCH_ANY$|FUTEX_WAITV_MAX$|W(NOHANG|STOPPED|EXITED|CONTINUED|NOWAIT)$|__W|CLD_|SIGCHLD$|EPOLL(_CTL_|_CLOEXEC$|IN$|PRI$|OUT$|ERR$|HUP$|RD|WR|EXCLUSIVE$|WAKEUP$|ONESHOT$|ET$))/
          .test(n)
      )
    ) want(name, name, value(name), name);
    // What the older header has under other names: FUTEX_32 is FUTEX2_SIZE_U32, and FUTEX2_PRIVATE
    // is defined as FUTEX_PRIVATE_FLAG.
    want("FUTEX_32", "FUTEX_32", abi.FUTEX2_SIZE_U32);
    want("FUTEX_PRIVATE_FLAG", "FUTEX_PRIVATE_FLAG", abi.FUTEX2_PRIVATE);
    // glibc's idtype_t is an enum (no #ifdef): P_PIDFD is there since glibc 2.36.
    for (const name of ["P_ALL", "P_PID", "P_PGID", "P_PIDFD"]) want(name, name, value(name));
    want("sizeof futex_waitv", "sizeof(struct futex_waitv)", abi.FUTEX_WAITV_SIZE);
    for (
      const [k, f] of Object.entries({ val: "val", uaddr: "uaddr", flags: "flags", reserved: "__reserved" })
    ) {
      want(`futex_waitv.${f}`, `offsetof(struct futex_waitv, ${f})`, abi.FUTEX_WAITV[k as "val"]);
    }
    want("sizeof siginfo_t", "sizeof(siginfo_t)", abi.SIGINFO_SIZE);
    for (const [k, f] of Object.entries(abi.SIGINFO)) {
      want(`siginfo.si_${k}`, `offsetof(siginfo_t, si_${k})`, f);
    }
    want("sizeof epoll_event", "sizeof(struct epoll_event)", abi.EPOLL_EVENT_SIZE);
    want("epoll_event.events", "offsetof(struct epoll_event, events)", abi.EPOLL_EVENT.events);
    want("epoll_event.data", "offsetof(struct epoll_event, data)", abi.EPOLL_EVENT.data);
    const source = [
      "#include <stddef.h>",
      "#include <stdio.h>",
      "#include <signal.h>",
      "#include <sys/wait.h>",
      "#include <sys/epoll.h>",
      "#include <linux/futex.h>",
      "int main(void) {",
      ...lines,
      "  return 0;",
      "}",
    ].join("\n");
    const dir = Deno.makeTempDirSync({ prefix: "uring-abi-wait-" });
    try {
      Deno.writeTextFileSync(`${dir}/abi.c`, source);
      const cc = new Deno.Command("cc", { args: ["-D_GNU_SOURCE", "-o", `${dir}/abi`, `${dir}/abi.c`] })
        .outputSync();
      assert.ok(cc.success, `cc failed:\n${new TextDecoder().decode(cc.stderr)}`);
      const out = new Deno.Command(`${dir}/abi`).outputSync();
      assert.ok(out.success);
      const got = new Map<string, number>();
      for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
        const at = line.lastIndexOf(" ");
        got.set(line.slice(0, at), Number(line.slice(at + 1)));
      }
      // The layouts, and the constants every header has, must all have been compared.
      for (
        const key of [
          "sizeof futex_waitv",
          "P_PIDFD",
          "WEXITED",
          "CLD_EXITED",
          "EPOLLIN",
          "EPOLLET",
          "FUTEX_32",
        ]
      ) {
        assert.ok(got.has(key), `${key} was not compared`);
      }
      assert.ok(got.size >= 45, `only ${got.size} values compared`);
      const mismatches: string[] = [];
      for (const [key, v] of got) {
        const mine = expected.get(key)!;
        // C prints the unsigned flags (EPOLLET, __WCLONE, FUTEX_BITSET_MATCH_ANY) as they are; a
        // signed int macro would print negative: compare the 32 bits then.
        if (mine !== v && (mine >>> 0) !== (v >>> 0)) mismatches.push(`${key}: module ${mine}, C ${v}`);
      }
      assert.deepEqual(mismatches, []);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

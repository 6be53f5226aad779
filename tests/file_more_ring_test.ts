/**
 * The xattr, pipe, fixed-fd-install and vectored fixed-buffer opcodes through a real ring, each
 * checked against something independent of the ring: attributes against `getfattr`/`setfattr`
 * (or Python's `os.getxattr`/`os.setxattr`), descriptors against /proc (read by `sh`: Deno needs
 * --allow-all for /proc), file bytes against Deno's file API. Each runs once per ring
 * configuration (SQPOLL or not, helper or libc).
 */

import assert from "node:assert/strict";
import {
  addressOf,
  AT_FDCWD,
  cstring,
  errno,
  IORING_FILE_INDEX_ALLOC,
  IORING_FIXED_FD_NO_CLOEXEC,
  IORING_OP_FGETXATTR,
  IORING_OP_FIXED_FD_INSTALL,
  IORING_OP_FSETXATTR,
  IORING_OP_GETXATTR,
  IORING_OP_PIPE,
  IORING_OP_READV_FIXED,
  IORING_OP_SETXATTR,
  IORING_OP_WRITEV_FIXED,
  IOSQE_FIXED_FILE,
  IoUring,
  Iovecs,
  O_CLOEXEC,
  O_DIRECT,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  prepClose,
  prepCloseDirect,
  prepFgetxattr,
  prepFixedFdInstall,
  prepFsetxattr,
  prepGetxattr,
  prepOpenat,
  prepOpenatDirect,
  prepPipe,
  prepPipeDirect,
  prepRead,
  prepReadvFixed,
  prepRw,
  prepSetxattr,
  prepWrite,
  prepWritevFixed,
  XATTR_CREATE,
  XATTR_REPLACE,
} from "../mod.ts";
import { ok, run } from "./_io.ts";
import { lacks, type RingConfig, ringTest, tempDir } from "./_support.ts";

const text = new TextEncoder(), untext = new TextDecoder();
const RWF_APPEND = 0x10; // linux/fs.h (4.16)

/** Runs `sh -c script` and returns its stdout, trimmed (asserting it succeeded). */
function sh(script: string, ...args: string[]): string {
  const out = new Deno.Command("sh", { args: ["-c", script, "sh", ...args], stderr: "piped" }).outputSync();
  assert.ok(out.success, `sh -c ${JSON.stringify(script)} failed: ${untext.decode(out.stderr)}`);
  return untext.decode(out.stdout).trim();
}

/** The open flags of this process's `fd`, from /proc/self/fdinfo (octal `flags:` line). */
function fdFlags(fd: number): number {
  const info = sh(`cat /proc/${Deno.pid}/fdinfo/${fd}`);
  const m = /^flags:\s*([0-7]+)$/m.exec(info);
  assert.ok(m !== null, `no flags in fdinfo of ${fd}:\n${info}`);
  return parseInt(m[1], 8);
}

/** What this process's `fd` refers to (the /proc/PID/fd link: a path, or `pipe:[inode]`). */
function fdTarget(fd: number): string {
  return sh(`readlink /proc/${Deno.pid}/fd/${fd}`);
}

/** Closes plain fds through the ring. */
function closeFds(ring: IoUring, ...fds: number[]): void {
  for (const fd of fds) assert.equal(run(ring, (s) => prepClose(s, fd)), 0, `close ${fd}`);
}

// --- xattrs ---------------------------------------------------------------------------------

/** An independent tool for user xattrs: getfattr/setfattr when installed, else Python's os. */
type XattrTool = {
  name: string;
  get(path: string, key: string): string;
  set(path: string, key: string, v: string): void;
};

function xattrTool(): XattrTool | null {
  const has = (cmd: string) =>
    new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null", stderr: "null" }).outputSync()
      .success;
  if (has("getfattr") && has("setfattr")) {
    return {
      name: "getfattr/setfattr",
      get: (path, key) => sh('getfattr --only-values -n "$1" -- "$2"', key, path),
      set: (path, key, v) => void sh('setfattr -n "$1" -v "$2" -- "$3"', key, v, path),
    };
  }
  if (has("python3")) {
    const py = (code: string, ...args: string[]) => sh(`python3 -c '${code}' "$@"`, ...args);
    return {
      name: "python3 os.getxattr/os.setxattr",
      get: (path, key) =>
        py("import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2]).decode())", path, key),
      set: (path, key, v) =>
        void py("import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())", path, key, v),
    };
  }
  return null;
}

let toolAnnounced = false;

/**
 * A file in a directory whose filesystem takes `user.` xattrs (the temp dir, else /var/tmp),
 * found by a setxattr through the ring; null (with a message) when there is none.
 */
function xattrFile(ring: IoUring, config: RingConfig, dirs: string[]): string | null {
  for (const dir of dirs) {
    const file = `${dir}/xattr-file`;
    Deno.writeTextFileSync(file, "contents");
    const res = run(ring, (s) => prepSetxattr(s, cstring(file), cstring("user.probe"), text.encode("1")));
    if (res === 0) return file;
    Deno.removeSync(file);
    if (res !== -errno("EOPNOTSUPP")) assert.fail(`setxattr on ${file}: ${res}`);
  }
  console.log(`SKIP [${config.name}]: no directory here takes user xattrs (${dirs.join(", ")})`);
  return null;
}

ringTest(
  "xattrs: set, get by path and by fd, size queries, ERANGE, EEXIST, ENODATA, and another tool agrees",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (
      lacks(ring, config, IORING_OP_SETXATTR, IORING_OP_GETXATTR, IORING_OP_FSETXATTR, IORING_OP_FGETXATTR)
    ) {
      return;
    }
    using tmp = tempDir();
    const varTmp = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "uring-xattr-" });
    try {
      const file = xattrFile(ring, config, [tmp.path, varTmp]);
      if (file === null) return;
      const path = cstring(file), key = cstring("user.uring.test"), missing = cstring("user.uring.none");
      const value = text.encode("value-one");

      // Created; created again: EEXIST. Replacing a missing one: ENODATA.
      assert.equal(run(ring, (s) => prepSetxattr(s, path, key, value, XATTR_CREATE)), 0);
      assert.equal(run(ring, (s) => prepSetxattr(s, path, key, value, XATTR_CREATE)), -errno("EEXIST"));
      assert.equal(run(ring, (s) => prepSetxattr(s, path, missing, value, XATTR_REPLACE)), -errno("ENODATA"));

      // Read back by path: the size, and the bytes (only those: the rest of the buffer untouched).
      const got = new Uint8Array(64).fill(0xee);
      assert.equal(run(ring, (s) => prepGetxattr(s, path, key, got)), value.length);
      assert.deepEqual(got.subarray(0, value.length), value);
      assert.ok(got.subarray(value.length).every((b) => b === 0xee), "getxattr wrote past the value");

      // By fd (a plain fd from the ring's own openat).
      const fd = ok(ring, "openat", (s) => prepOpenat(s, AT_FDCWD, path, O_RDONLY | O_CLOEXEC));
      try {
        const byFd = new Uint8Array(64);
        assert.equal(run(ring, (s) => prepFgetxattr(s, fd, key, byFd)), value.length);
        assert.equal(untext.decode(byFd.subarray(0, value.length)), "value-one");

        // Size queries: no value, an empty one, and len 0 over a real buffer (left untouched).
        const untouched = new Uint8Array(16).fill(7);
        assert.equal(run(ring, (s) => prepGetxattr(s, path, key, null)), value.length);
        assert.equal(run(ring, (s) => prepFgetxattr(s, fd, key, new Uint8Array(0))), value.length);
        assert.equal(run(ring, (s) => prepGetxattr(s, path, key, untouched, 0)), value.length);
        assert.ok(untouched.every((b) => b === 7), "a size query wrote into the buffer");

        // A buffer one byte short: ERANGE, and nothing written.
        const short = new Uint8Array(value.length - 1);
        assert.equal(run(ring, (s) => prepFgetxattr(s, fd, key, short)), -errno("ERANGE"));
        assert.equal(run(ring, (s) => prepGetxattr(s, path, key, untouched, 3)), -errno("ERANGE"));
        assert.ok(short.every((b) => b === 0) && untouched.every((b) => b === 7), "a refused get wrote");

        // A missing name: ENODATA, by path and by fd.
        assert.equal(run(ring, (s) => prepGetxattr(s, path, missing, got)), -errno("ENODATA"));
        assert.equal(run(ring, (s) => prepFgetxattr(s, fd, missing, got)), -errno("ENODATA"));

        // fsetxattr replaces it, with len taking a prefix of the buffer.
        const longer = text.encode("second value, longer");
        assert.equal(run(ring, (s) => prepFsetxattr(s, fd, key, longer, XATTR_REPLACE, 12)), 0);
        assert.equal(run(ring, (s) => prepGetxattr(s, path, key, got)), 12);
        assert.equal(untext.decode(got.subarray(0, 12)), "second value");

        // The fd forms take a registered file (6.18); the path forms refuse IOSQE_FIXED_FILE.
        ring.registerFiles([-1, fd]);
        const fixed = new Uint8Array(64);
        assert.equal(
          run(ring, (s) => prepFgetxattr(s, 1, key, fixed).addFlags(IOSQE_FIXED_FILE)),
          12,
          "fgetxattr of a registered file",
        );
        assert.equal(untext.decode(fixed.subarray(0, 12)), "second value");
        assert.equal(
          run(ring, (s) => prepGetxattr(s, path, key, fixed).addFlags(IOSQE_FIXED_FILE)),
          -errno("EBADF"),
        );
      } finally {
        closeFds(ring, fd);
      }

      // Another tool agrees, both ways.
      const tool = xattrTool();
      if (tool === null) {
        if (!toolAnnounced) {
          console.log(
            "SKIP the xattr cross-check: neither getfattr nor python3 is installed",
          );
        }
        toolAnnounced = true;
        return;
      }
      assert.equal(tool.get(file, "user.uring.test"), "second value", `${tool.name} reads what the ring set`);
      tool.set(file, "user.uring.other", "from-the-tool");
      const other = new Uint8Array(32);
      assert.equal(run(ring, (s) => prepGetxattr(s, path, cstring("user.uring.other"), other)), 13);
      assert.equal(
        untext.decode(other.subarray(0, 13)),
        "from-the-tool",
        `the ring reads what ${tool.name} set`,
      );
    } finally {
      Deno.removeSync(varTmp, { recursive: true });
    }
  },
);

// --- pipes ----------------------------------------------------------------------------------

ringTest(
  "pipe: two fds of one pipe, data through them, O_CLOEXEC, O_NONBLOCK and O_DIRECT honoured",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_PIPE)) return;
    for (const flags of [0, O_CLOEXEC, O_NONBLOCK | O_CLOEXEC]) {
      const fds = new Int32Array([-1, -1]);
      assert.equal(run(ring, (s) => prepPipe(s, fds, flags)), 0);
      const [r, w] = fds;
      try {
        assert.ok(r >= 0 && w >= 0 && r !== w, `two fds: ${fds}`);
        // One pipe: both links name the same pipe inode; the read end is O_RDONLY, the write O_WRONLY.
        const target = fdTarget(r);
        assert.match(target, /^pipe:\[\d+\]$/);
        assert.equal(fdTarget(w), target);
        assert.equal(fdFlags(r) & 3, 0, "read end is O_RDONLY");
        assert.equal(fdFlags(w) & 3, 1, "write end is O_WRONLY");
        for (const fd of fds) {
          assert.equal(fdFlags(fd) & O_CLOEXEC, flags & O_CLOEXEC, `O_CLOEXEC of ${fd} (flags ${flags})`);
          assert.equal(fdFlags(fd) & O_NONBLOCK, flags & O_NONBLOCK, `O_NONBLOCK of ${fd} (flags ${flags})`);
        }
        assert.equal(run(ring, (s) => prepWrite(s, w, text.encode("through the pipe"), 0)), 16);
        const buf = new Uint8Array(64);
        assert.equal(run(ring, (s) => prepRead(s, r, buf, 0)), 16);
        assert.equal(untext.decode(buf.subarray(0, 16)), "through the pipe");
        // (A read of an empty O_NONBLOCK pipe through the ring is no EAGAIN: the kernel polls the
        // pipe, which supports non-blocking reads, and the read waits for data.)
      } finally {
        closeFds(ring, r, w);
      }
    }
    // O_DIRECT: a packet pipe, where one read takes one write's packet, not all the bytes there.
    const fds = new Int32Array(2);
    assert.equal(run(ring, (s) => prepPipe(s, fds, O_DIRECT | O_CLOEXEC)), 0);
    try {
      assert.equal(run(ring, (s) => prepWrite(s, fds[1], text.encode("one"), 0)), 3);
      assert.equal(run(ring, (s) => prepWrite(s, fds[1], text.encode("two"), 0)), 3);
      const buf = new Uint8Array(64);
      assert.equal(run(ring, (s) => prepRead(s, fds[0], buf, 0)), 3, "one packet per read");
      assert.equal(untext.decode(buf.subarray(0, 3)), "one");
    } finally {
      closeFds(ring, fds[0], fds[1]);
    }
    // A flag pipe2 does not take, which the prep refuses, written into the SQE by hand: the
    // kernel's EINVAL, and fds untouched.
    const untouched = new Int32Array([-5, -5]);
    assert.equal(
      run(ring, (s) => {
        prepPipe(s, untouched);
        s.u32[s.base + 7] |= O_RDWR; // pipe_flags (byte 28)
      }),
      -errno("EINVAL"),
    );
    assert.deepEqual([...untouched], [-5, -5]);
  },
);

ringTest(
  "pipe into registered file slots: given slots, slots the kernel picks, then used with IOSQE_FIXED_FILE",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_PIPE, IORING_OP_FIXED_FD_INSTALL)) return;
    ring.registerFiles(new Array(8).fill(-1));
    /** Data written to slot `w` comes out of slot `r`. */
    const flows = (r: number, w: number, message: string) => {
      const sent = text.encode(message);
      assert.equal(run(ring, (s) => prepWrite(s, w, sent, 0).addFlags(IOSQE_FIXED_FILE)), sent.length);
      const buf = new Uint8Array(64);
      assert.equal(run(ring, (s) => prepRead(s, r, buf, 0).addFlags(IOSQE_FIXED_FILE)), sent.length);
      assert.equal(untext.decode(buf.subarray(0, sent.length)), message);
    };
    // Slots 0 and 1; the kernel reports them in fds.
    const given = new Int32Array([-1, -1]);
    assert.equal(run(ring, (s) => prepPipeDirect(s, given, 0, 0)), 0);
    assert.deepEqual([...given], [0, 1]);
    flows(0, 1, "slots zero and one");
    // Installed as plain fds: the same pipe, the read end in slot 0 (an independent look at the slots).
    const r = ok(ring, "install 0", (s) => prepFixedFdInstall(s, 0));
    const w = ok(ring, "install 1", (s) => prepFixedFdInstall(s, 1));
    try {
      assert.match(fdTarget(r), /^pipe:\[\d+\]$/);
      assert.equal(fdTarget(w), fdTarget(r));
      assert.equal(fdFlags(r) & 3, 0, "slot 0 holds the read end");
      assert.equal(fdFlags(w) & 3, 1, "slot 1 holds the write end");
    } finally {
      closeFds(ring, r, w);
    }
    // Slots the kernel picks: two free ones, reported in fds.
    const picked = new Int32Array([-1, -1]);
    assert.equal(run(ring, (s) => prepPipeDirect(s, picked, O_NONBLOCK, IORING_FILE_INDEX_ALLOC)), 0);
    const [pr, pw] = picked;
    assert.ok(pr !== pw && [pr, pw].every((i) => i > 1 && i < 8), `picked ${picked}`);
    flows(pr, pw, "slots the kernel picked");
    // O_CLOEXEC, which the prep refuses, written into the SQE by hand: the kernel's EINVAL.
    const untouched = new Int32Array([-5, -5]);
    assert.equal(
      run(ring, (s) => {
        prepPipeDirect(s, untouched, 0, 5);
        s.u32[s.base + 7] |= O_CLOEXEC; // pipe_flags (byte 28)
      }),
      -errno("EINVAL"),
    );
    // The last slot has no next for the write end: EINVAL, and the read end's slot is left empty
    // (kernels before the fix of io_pipe_fixed() emptied slot 0 instead).
    assert.equal(run(ring, (s) => prepPipeDirect(s, untouched, 0, 7)), -errno("EINVAL"));
    assert.deepEqual([...untouched], [-5, -5]);
    assert.equal(run(ring, (s) => prepFixedFdInstall(s, 7)), -errno("EBADF"), "slot 7 left empty");
    flows(0, 1, "slots zero and one, still there");
    for (const slot of [0, 1, pr, pw]) assert.equal(run(ring, (s) => prepCloseDirect(s, slot)), 0);
  },
);

// --- fixed fd install -----------------------------------------------------------------------

ringTest(
  "fixed fd install: a file opened into a slot becomes a plain fd, close-on-exec unless NO_CLOEXEC",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_FIXED_FD_INSTALL)) return;
    using dir = tempDir();
    const file = `${dir.path}/data`;
    Deno.writeTextFileSync(file, "read through an installed fd");
    ring.registerFiles([-1, -1, -1]);
    assert.equal(run(ring, (s) => prepOpenatDirect(s, AT_FDCWD, cstring(file), O_RDONLY, 0, 1)), 0);
    const fds: number[] = [];
    try {
      for (const [flags, cloexec] of [[0, O_CLOEXEC], [IORING_FIXED_FD_NO_CLOEXEC, 0]]) {
        const fd = ok(ring, "install", (s) => prepFixedFdInstall(s, 1, flags));
        fds.push(fd);
        assert.equal(fdTarget(fd), Deno.realPathSync(file), "the fd names the file");
        assert.equal(fdFlags(fd) & O_CLOEXEC, cloexec, `O_CLOEXEC with flags ${flags}`);
        const buf = new Uint8Array(64);
        const n = run(ring, (s) => prepRead(s, fd, buf, 5));
        assert.equal(untext.decode(buf.subarray(0, n)), Deno.readTextFileSync(file).slice(5));
      }
      assert.notEqual(fds[0], fds[1]);
      // The slot keeps the file.
      const buf = new Uint8Array(4);
      assert.equal(run(ring, (s) => prepRead(s, 1, buf, 0).addFlags(IOSQE_FIXED_FILE)), 4);
      assert.equal(untext.decode(buf), "read");
      // The kernel's refusals: no IOSQE_FIXED_FILE (setFlags drops it), a flag it does not know
      // (which the prep refuses: written into the SQE by hand), an empty slot.
      assert.equal(run(ring, (s) => prepFixedFdInstall(s, 1).setFlags(0)), -errno("EBADF"));
      assert.equal(
        run(ring, (s) => {
          prepFixedFdInstall(s, 1);
          s.u32[s.base + 7] = 2; // install_fd_flags (byte 28)
        }),
        -errno("EINVAL"),
      );
      assert.equal(run(ring, (s) => prepFixedFdInstall(s, 2)), -errno("EBADF"));
    } finally {
      closeFds(ring, ...fds);
      run(ring, (s) => prepCloseDirect(s, 1));
    }
  },
);

// --- readv/writev from a registered buffer ----------------------------------------------------

ringTest(
  "readv/writev fixed: scatter and gather within a registered buffer; any iovec outside it is EFAULT",
  (config) => {
    using ring = new IoUring(8, config.options);
    if (lacks(ring, config, IORING_OP_READV_FIXED, IORING_OP_WRITEV_FIXED)) return;
    using dir = tempDir();
    const file = `${dir.path}/data`;
    const contents = new Uint8Array(4096).map((_, i) => (i * 7 + 3) & 0xff);
    Deno.writeFileSync(file, contents);
    // Buffer 1 is the first 4 KiB of `memory` (the next bytes are not registered); buffer 0 is
    // elsewhere, so a buf_index written in the wrong place would name the wrong one.
    const memory = new Uint8Array(8192), other = new Uint8Array(4096);
    const reg = memory.subarray(0, 4096);
    ring.registerBuffers([other, reg]);
    const fd = ok(ring, "openat", (s) => prepOpenat(s, AT_FDCWD, cstring(file), O_RDWR | O_CLOEXEC));
    try {
      // Scatter 100 bytes at 3000 and 50 at 10 from file offset 20.
      const scatter = new Iovecs([reg.subarray(3000, 3100), reg.subarray(10, 60)]);
      assert.equal(run(ring, (s) => prepReadvFixed(s, fd, scatter, 20, 1)), 150);
      assert.deepEqual(reg.subarray(3000, 3100), contents.subarray(20, 120));
      assert.deepEqual(reg.subarray(10, 60), contents.subarray(120, 170));
      assert.ok(other.every((b) => b === 0), "buffer 0 untouched");

      // Gather two pieces of the buffer to file offset 1000; Deno reads the file back.
      reg.set(text.encode("GATHERED-"), 500);
      reg.set(text.encode("FROM-TWO"), 4000);
      const gather = new Iovecs([reg.subarray(500, 509), reg.subarray(4000, 4008)]);
      assert.equal(run(ring, (s) => prepWritevFixed(s, fd, gather, 1000, 1)), 17);
      const after = Deno.readFileSync(file);
      assert.equal(untext.decode(after.subarray(1000, 1017)), "GATHERED-FROM-TWO");
      assert.deepEqual(after.subarray(0, 1000), contents.subarray(0, 1000));
      assert.deepEqual(after.subarray(1017), contents.subarray(1017));

      // The rw flags reach the kernel: RWF_APPEND writes at the end, whatever the offset.
      const appended = run(
        ring,
        (s) => prepWritevFixed(s, fd, new Iovecs([reg.subarray(500, 503)]), 0, 1, RWF_APPEND),
      );
      assert.equal(appended, 3);
      const grown = Deno.readFileSync(file);
      assert.equal(grown.length, 4099);
      assert.equal(untext.decode(grown.subarray(4096)), "GAT");
      assert.deepEqual(grown.subarray(0, 4096), after);

      // EFAULT for an iovec outside buffer 1 (elsewhere in memory, or across its end), for the
      // right iovecs under another buf_index, and under an index with no buffer. Nothing is read
      // or written.
      const outside: Array<[string, Iovecs, number]> = [
        ["other memory", new Iovecs([reg.subarray(0, 8), new Uint8Array(8)]), 1],
        ["across the end", new Iovecs([memory.subarray(4090, 4100)]), 1],
        ["buffer 0's index", new Iovecs([reg.subarray(0, 8)]), 0],
        ["an unregistered index", new Iovecs([reg.subarray(0, 8)]), 2],
      ];
      reg.fill(0x55);
      for (const [what, iov, index] of outside) {
        assert.equal(
          run(ring, (s) => prepReadvFixed(s, fd, iov, 0, index)),
          -errno("EFAULT"),
          `readv: ${what}`,
        );
        assert.equal(
          run(ring, (s) => prepWritevFixed(s, fd, iov, 0, index)),
          -errno("EFAULT"),
          `writev: ${what}`,
        );
      }
      // An empty iovec inside the buffer (built by hand: the preps refuse an empty buffer, which
      // an Iovecs would give address 0).
      const empty = new BigUint64Array([BigInt(addressOf(reg)) + 8n, 0n]); // struct iovec
      for (const op of [IORING_OP_READV_FIXED, IORING_OP_WRITEV_FIXED]) {
        const res = run(ring, (s) => {
          prepRw(s, op, fd, addressOf(empty), 1, 0);
          s.u32[s.base + 10] = 1; // buf_index (byte 40)
        });
        assert.equal(res, -errno("EFAULT"), `an empty iovec (opcode ${op})`);
      }
      assert.ok(reg.every((b) => b === 0x55), "a refused readv wrote into the buffer");
      assert.deepEqual(Deno.readFileSync(file), grown, "a refused writev wrote to the file");
    } finally {
      closeFds(ring, fd);
    }
  },
);

/**
 * The scripts in `examples/` run as the README and their own comments say: each is started as
 * its own `deno run` process, with small arguments.
 */
import assert from "node:assert/strict";
import {
  AF_INET,
  AF_UNIX,
  IoUring,
  MSG_DONTWAIT,
  prepBind,
  prepClose,
  prepRecv,
  prepSendto,
  prepSocket,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_STREAM,
  SocketAddress,
  type Sqe,
} from "../mod.ts";
import { skipKernel, tempDir } from "./_support.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const FLAGS = ["--allow-ffi", "--allow-read", "--allow-write", "--allow-env"];

/**
 * `deno run FLAGS examples/NAME ARGS` with `TMPDIR` set to `tmp`; its status and output. With
 * `killAfterMs`, a run still going then is killed (its code is then 137).
 */
async function runExample(name: string, args: string[], tmp: string, killAfterMs?: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, `${ROOT}examples/${name}`, ...args],
    env: { TMPDIR: tmp, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = killAfterMs === undefined ? undefined : setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* it ended already */ }
  }, killAfterMs);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Leaves a socket file at `path` that no server listens on (as a server killed before its end does). */
function staleSocket(path: string): void {
  using ring = new IoUring(4, { sqpoll: false });
  const run = (prep: (sqe: Sqe) => void): number => {
    prep(ring.getSqe()!);
    ring.submitAndWait(1);
    const res = ring.peekCqe()!.res;
    ring.cqAdvance(1);
    assert.ok(res >= 0, `errno ${-res}`);
    return res;
  };
  const fd = run((s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
  run((s) => prepBind(s, fd, SocketAddress.unix(path)));
  run((s) => prepClose(s, fd));
}

/** The rows of a markdown table in `text`, as cells, without the header and the rule. */
function tableRows(text: string): string[][] {
  return text.split("\n")
    .filter((line) => line.startsWith("| ") && !line.startsWith("| mode "))
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim()));
}

Deno.test({
  name: "examples/zero_syscall.ts: both modes do OPS reads; enters by reason add up; no file left",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const r = await runExample("zero_syscall.ts", ["3000"], tmp.path);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3000 reads of 4096 bytes, 32 in flight/);
    const rows = tableRows(r.stdout);
    assert.equal(rows.length, 2, r.stdout);
    const [sqpoll, plain] = rows;
    assert.match(sqpoll[0], /^SQPOLL/);
    assert.equal(plain[0], "no SQPOLL");
    for (const [, ops, submit, wakeup, wait, total] of rows) {
      assert.equal(ops, "3000");
      assert.equal(Number(submit) + Number(wakeup) + Number(wait), Number(total));
    }
    // Without SQPOLL every submission is an enter: at least one per 32 reads.
    assert.ok(Number(plain[2]) >= 3000 / 32, r.stdout);
    assert.deepEqual([...Deno.readDirSync(tmp.path)], []);
  },
});

Deno.test({
  name: "examples/zero_syscall.ts: a run killed midway leaves no scratch file",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, `${ROOT}examples/zero_syscall.ts`, "1000000000"],
      env: { TMPDIR: tmp.path },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    // The scratch file is made and unnamed within milliseconds of start-up; the run takes minutes.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    assert.deepEqual([...Deno.readDirSync(tmp.path)], []);
  },
});

Deno.test("examples/zero_syscall.ts: OPS that is not a positive integer is a usage error", async () => {
  using tmp = tempDir();
  for (const ops of ["0", "-5", "1.5", "abc", ""]) {
    const r = await runExample("zero_syscall.ts", [ops], tmp.path);
    assert.equal(r.code, 2, `OPS '${ops}': ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, new RegExp(`OPS must be a positive integer, got '${ops}'`));
    assert.equal(r.stdout, "");
  }
});

Deno.test({
  name: "examples/copy_many.ts: copies every file of a directory, N at a time; says what failed",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    Deno.mkdirSync(`${tmp.path}/from/sub`, { recursive: true });
    let total = 0;
    for (let i = 0; i < 60; i++) {
      const data = new Uint8Array(100 + i * 1500).fill(i);
      total += data.length;
      Deno.writeFileSync(`${tmp.path}/from/f${i}`, data);
    }
    const r = await runExample(
      "copy_many.ts",
      [`${tmp.path}/from`, `${tmp.path}/to`, "--jobs", "8"],
      tmp.path,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^copied 60 of 60 files \\(${total} bytes\\) in [0-9.]+ ms, 8 at a time\n$`),
    );
    for (let i = 0; i < 60; i++) {
      assert.deepEqual(
        Deno.readFileSync(`${tmp.path}/to/f${i}`),
        Deno.readFileSync(`${tmp.path}/from/f${i}`),
      );
    }
    assert.throws(() => Deno.statSync(`${tmp.path}/to/sub`), Deno.errors.NotFound, "files only");
    // Again: every destination exists now, and each copy fails alone.
    const again = await runExample("copy_many.ts", [`${tmp.path}/from`, `${tmp.path}/to`], tmp.path);
    assert.equal(again.code, 1);
    assert.match(again.stdout, /^copied 0 of 60 files \(0 bytes\)/);
    assert.equal(again.stderr.trim().split("\n").filter((line) => /already exists/.test(line)).length, 60);
    const usage = await runExample("copy_many.ts", [`${tmp.path}/from`], tmp.path);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^usage: copy_many\.ts FROM TO/);
  },
});

Deno.test({
  name: "examples/ring_read.ts: prints the first bytes of the file it is given",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const path = `${tmp.path}/hello.txt`;
    Deno.writeTextFileSync(path, "hello from the ring\n");
    const r = await runExample("ring_read.ts", [path], tmp.path);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^read 20 bytes from ${path} \\(sqpoll: (true|false), enters: \\{`));
    assert.ok(r.stdout.endsWith("\nhello from the ring\n\n"), r.stdout);
  },
});

Deno.test({
  name:
    "examples/echo_server.ts: echoes each client's stream in order (a slow reader too), then stops after --max connections",
  ignore: skipKernel(),
  fn: async () => {
    using tmp = tempDir();
    const path = `${tmp.path}/echo.sock`;
    // A socket file an earlier run left (killed before its end): the server replaces it. (Deno
    // removes its own listener's file when it closes it, so the socket is bound through a ring.)
    staleSocket(path);
    assert.ok(existsSocket(path));
    const server = new Deno.Command(Deno.execPath(), {
      args: ["run", ...FLAGS, `${ROOT}examples/echo_server.ts`, "--unix", path, "--max", "2"],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Connect once it says it listens (the socket file exists from the bind, before the listen).
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let stdout = "";
    while (!stdout.includes("\n")) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the server ended before listening: ${stdout}`);
      stdout += value;
    }
    const rest = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        stdout += value;
      }
    })();
    const stderr = new Response(server.stderr).text();
    // Numbered words, so a piece echoed out of order or lost shows. The slow reader sends more
    // than the socket and the server's buffers hold before it starts reading: its echoes back up
    // (sends to one socket, several in flight, then completed out of order; short sends).
    const echo = async (i: number, size: number, readAfterMs: number) => {
      const conn = await Deno.connect({ transport: "unix", path });
      const payload = new Uint8Array(size);
      const words = new DataView(payload.buffer);
      for (let at = 0; at < size; at += 4) words.setUint32(at, i * 2 ** 28 + at / 4);
      const writing = (async () => {
        for (let done = 0; done < payload.length;) {
          done += await conn.write(payload.subarray(done, done + 65536));
        }
      })();
      await new Promise((r) => setTimeout(r, readAfterMs));
      const got = new Uint8Array(payload.length);
      let have = 0;
      while (have < payload.length) {
        const n = await conn.read(got.subarray(have));
        if (n === null) break;
        have += n;
      }
      await writing;
      conn.close();
      assert.equal(have, payload.length);
      assert.deepEqual(got, payload);
      return have;
    };
    // (A server that loses bytes leaves a client waiting: fail after 30 s rather than hang.)
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error("the echoes did not all come back within 30 s"));
        try {
          server.kill("SIGKILL");
        } catch { /* it ended already */ }
      }, 30_000);
    });
    let bytes: number;
    try {
      bytes = (await Promise.race([Promise.all([echo(0, 36_000, 0), echo(1, 4 << 20, 300)]), late]))
        .reduce((a, b) => a + b);
    } finally {
      clearTimeout(timer);
    }
    const status = await server.status;
    await rest;
    assert.equal(status.code, 0, await stderr);
    assert.match(
      stdout,
      new RegExp(`^listening on unix:${path.replaceAll("/", "\\/")} \\(sqpoll: (true|false)\\)`),
    );
    assert.match(
      stdout,
      new RegExp(`\\n2 connections, ${bytes} bytes echoed, 0 still open; io_uring_enter calls: `),
    );
    assert.equal(existsSocket(path), false, "the socket file is removed at the end");
  },
});

function existsSocket(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/**
 * Starts `examples/echo_server.ts`, to stop after `max` connections (with `more` arguments), on a
 * free TCP port of 127.0.0.1, or on the Unix socket `unix`; its output (once it ends), a connect
 * that waits for it to listen, and a kill (for a server that does not end).
 */
function echoServer<C extends Deno.Conn = Deno.TcpConn>(max: number, more: string[] = [], unix?: string): {
  output: Promise<Deno.CommandOutput>;
  connect: () => Promise<C>;
  kill: () => void;
} {
  let where: string[];
  let connectOnce: () => Promise<Deno.Conn>;
  if (unix !== undefined) {
    where = ["--unix", unix];
    connectOnce = () => Deno.connect({ transport: "unix", path: unix });
  } else {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    where = ["--port", String(port)];
    connectOnce = () => Deno.connect({ hostname: "127.0.0.1", port });
  }
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, `${ROOT}examples/echo_server.ts`, ...where, "--max", String(max), ...more],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const connect = async () => {
    for (const deadline = Date.now() + 10_000;;) {
      try {
        return await connectOnce() as C;
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  const kill = () => {
    try {
      server.kill("SIGKILL");
    } catch { /* it ended already */ }
  };
  return { output: server.output(), connect, kill };
}

/** Whether this process can run a child without CAP_IPC_LOCK (root, and util-linux's setpriv). */
function canDropIpcLock(): boolean {
  if (Deno.uid() !== 0) return false;
  try {
    return new Deno.Command("setpriv", {
      args: ["--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "true"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false; // no setpriv
  }
}

/** Sends "hello" on `conn` and returns what came back within 10 s (or says none came); closes it. */
async function echoOfHello(conn: Deno.Conn): Promise<string> {
  await conn.write(new TextEncoder().encode("hello"));
  const buf = new Uint8Array(16);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const echoed = await Promise.race([
    conn.read(buf).then((n) => new TextDecoder().decode(buf.subarray(0, n ?? 0))),
    new Promise<string>((resolve) => timer = setTimeout(() => resolve("no echo within 10 s"), 10_000)),
  ]);
  clearTimeout(timer);
  conn.close();
  return echoed;
}

Deno.test({
  name: "examples/echo_server.ts over TCP: 8 MiB to a client that reads late come back whole and in order",
  ignore: skipKernel(),
  fn: async () => {
    // The server's sends back up while the client does not read: with several sends in flight on
    // one socket they completed out of order, and short sends lost their rest.
    const { output, connect } = echoServer(1);
    const conn = await connect();
    const size = 8 << 20;
    const payload = new Uint8Array(size);
    const words = new DataView(payload.buffer);
    for (let at = 0; at < size; at += 4) words.setUint32(at, at / 4);
    const writing = (async () => {
      for (let done = 0; done < size;) done += await conn.write(payload.subarray(done, done + 65536));
      await conn.closeWrite();
    })();
    await new Promise((r) => setTimeout(r, 500)); // the echoes back up meanwhile
    const got = new Uint8Array(size + 65536);
    let have = 0;
    for (;;) {
      const n = await conn.read(got.subarray(have));
      if (n === null) break;
      have += n;
    }
    await writing;
    conn.close();
    const { code, stdout, stderr } = await output;
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.equal(have, size, "every byte came back");
    const first = got.findIndex((b, i) => i < size && b !== payload[i]);
    assert.equal(first, -1, `the echo differs from byte ${first} on`);
    assert.match(
      new TextDecoder().decode(stdout),
      new RegExp(`\\n1 connections, ${size} bytes echoed, 0 still open`),
    );
  },
});

Deno.test({
  name: "examples/echo_server.ts: a client that sends without reading does not stall the others",
  ignore: skipKernel(),
  fn: async () => {
    // It took every provided buffer (its echoes could not be sent), and every other client's
    // receive ended for want of one, for as long as it did not read.
    const { output, connect } = echoServer(2);
    const hog = await connect();
    let hogSent = 0;
    const hogWriting = (async () => {
      const chunk = new Uint8Array(65536);
      try {
        for (let i = 0; i < 256; i++) hogSent += await hog.write(chunk); // 16 MiB, never read meanwhile
      } catch { /* closed below */ }
    })();
    while (hogSent < 4 << 20) await new Promise((r) => setTimeout(r, 20)); // its echoes have backed up
    assert.equal(await echoOfHello(await connect()), "hello");
    // The hog reads its echoes at last, then goes.
    const sink = (async () => {
      const drain = new Uint8Array(65536);
      try {
        while ((await hog.read(drain)) !== null) { /* discard */ }
      } catch { /* closed */ }
    })();
    await hogWriting;
    await hog.closeWrite();
    await sink;
    hog.close();
    const { code, stderr } = await output;
    assert.equal(code, 0, new TextDecoder().decode(stderr));
  },
});

Deno.test({
  name:
    "examples/echo_server.ts: ten clients that send without reading do not stall another (each has buffers of its own)",
  ignore: skipKernel(),
  fn: async () => {
    // With one ring of 64 buffers for all, the receive of a connection was paused (cancelled) once
    // it held 8, but a fast sender filled more before the cancel took effect (a probe saw one
    // take all 64): ten such clients took every buffer, and other clients got no echo.
    using tmp = tempDir();
    const hogs = 10;
    const { output, connect } = echoServer<Deno.UnixConn>(hogs + 1, [], `${tmp.path}/echo.sock`);
    // Unix stream sockets queue ~200 KiB: 1 MiB each backs their echoes up for good.
    const chunk = new Uint8Array(65536).fill(7);
    const hogConns: Deno.UnixConn[] = [];
    const sent = new Array<number>(hogs).fill(0);
    const writing: Promise<void>[] = [];
    for (let i = 0; i < hogs; i++) {
      const hog = await connect();
      hogConns.push(hog);
      writing.push((async () => {
        try {
          for (let n = 0; n < 16; n++) sent[i] += await hog.write(chunk);
        } catch { /* closed below */ }
      })());
    }
    // Until no hog gets further (its echoes are backed up, its buffers held by the server).
    for (let last = -1, total = 0; total !== last;) {
      last = total;
      await new Promise((r) => setTimeout(r, 300));
      total = sent.reduce((a, b) => a + b, 0);
    }
    const echoed = await echoOfHello(await connect());
    // The hogs read their echoes at last, then go.
    await Promise.all(hogConns.map(async (hog, i) => {
      const drain = new Uint8Array(65536);
      const sink = (async () => {
        try {
          while ((await hog.read(drain)) !== null) { /* discard */ }
        } catch { /* closed */ }
      })();
      await writing[i];
      await hog.closeWrite();
      await sink;
      hog.close();
    }));
    const { code, stderr } = await output;
    assert.equal(echoed, "hello");
    assert.equal(code, 0, new TextDecoder().decode(stderr));
  },
});

Deno.test({
  name:
    "examples/echo_server.ts past `ulimit -l` (no CAP_IPC_LOCK): a connection without buffers is closed, the others go on",
  // (Needs root, to drop the capability with setpriv, and util-linux's setpriv.)
  ignore: skipKernel() || !canDropIpcLock(),
  fn: async () => {
    // Each connection's ring of buffers pins a page: at the limit the kernel refuses the next
    // (ENOMEM), which was thrown from the completion handler and ended the server.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const count = 20;
    const server = new Deno.Command("bash", {
      args: [
        "-c",
        `ulimit -l 64; exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock "$@"`,
        "bash",
        Deno.execPath(),
        "run",
        ...FLAGS,
        `${ROOT}examples/echo_server.ts`,
        "--port",
        String(port),
        "--max",
        String(count),
        "--entries", // (a small ring of its own, well inside the limit)
        "8",
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = server.output();
    const conns: Deno.TcpConn[] = [];
    for (const deadline = Date.now() + 10_000; conns.length === 0;) {
      try {
        conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch (e) {
        if (Date.now() > deadline) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    while (conns.length < count) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    const answers: string[] = [];
    for (const conn of conns) answers.push(await echoOfHello(conn).catch(() => "")); // ("": closed, or reset)
    const { code, stdout, stderr } = await output;
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    const echoed = answers.filter((a) => a === "hello").length;
    assert.ok(echoed >= 1 && echoed < count, `echoed ${echoed} of ${count}: ${answers}`);
    assert.deepEqual(answers.slice(echoed), new Array(count - echoed).fill(""), "the rest were closed");
    assert.match(err, /no buffers for another connection \(io_uring_register failed: ENOMEM/);
    assert.match(
      new TextDecoder().decode(stdout),
      new RegExp(`\\n${count} connections, ${5 * echoed} bytes echoed`),
    );
  },
});

Deno.test("examples/echo_server.ts: bad arguments are usage errors", async () => {
  using tmp = tempDir();
  for (
    const [args, message] of [
      [["--port", "0"], /--port must be an integer from 1 to 65535, got '0'/],
      [["--max", "x"], /--max must be an integer/],
      [["--entries", "0"], /--entries must be an integer from 1 to 32768, got '0'/],
      [["--port", "1", "--unix", "p"], /give --port or --unix, not both/],
      [["--nope"], /Unknown option '--nope'/],
    ] as const
  ) {
    const r = await runExample("echo_server.ts", [...args], tmp.path);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, message);
  }
});

Deno.test("examples/echo_server.ts: an empty --unix path, or one over 108 bytes, is a usage error", async () => {
  // The empty one made an AF_INET socket and bound a Unix address to it (an uncaught EINVAL); the
  // long one was an uncaught RangeError with its stack.
  using tmp = tempDir();
  for (
    const [path, message] of [
      ["", /--unix must name a path, got ''/],
      [`${tmp.path}/${"s".repeat(120)}`, /--unix: a Unix socket path holds at most 108 bytes, got \d+/],
    ] as const
  ) {
    const r = await runExample("echo_server.ts", ["--unix", path, "--max", "1"], tmp.path);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    assert.equal(r.stdout, "");
  }
});

Deno.test({
  name: "examples/echo_server.ts: --unix leaves a file, or a live server's socket, at PATH alone",
  ignore: skipKernel(),
  fn: async () => {
    // It unlinked whatever was at PATH: a regular file's data, a live server's socket.
    using tmp = tempDir();
    const file = `${tmp.path}/important.txt`;
    Deno.writeTextFileSync(file, "precious data\n");
    let r = await runExample("echo_server.ts", ["--unix", file, "--max", "1"], tmp.path, 5000);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /--unix: .*important\.txt exists and is not a socket: not replaced/);
    assert.equal(Deno.readTextFileSync(file), "precious data\n");

    const path = `${tmp.path}/live.sock`;
    using live = Deno.listen({ transport: "unix", path });
    r = await runExample("echo_server.ts", ["--unix", path, "--max", "1"], tmp.path, 5000);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /--unix: a server is listening on .*live\.sock: not replaced/);
    // The live server still owns its socket: a client reaches it (the probe's connection first).
    for (let i = 0; i < 2; i++) {
      const client = await Deno.connect({ transport: "unix", path });
      (await live.accept()).close();
      client.close();
    }
  },
});

Deno.test({
  name: "examples/echo_server.ts: a receive the kernel ends on a full CQ, with data, goes on (--entries 1)",
  ignore: skipKernel(),
  fn: async () => {
    // With a full CQ the kernel ends a multishot receive with a last CQE that still carries a
    // piece: taken for the end of the stream, the connection was closed after echoing it.
    const clients = 8, size = 64 << 10;
    const { output, connect } = echoServer(clients, ["--entries", "1"]); // a 2-entry CQ
    const echo = async (i: number) => {
      const conn = await connect();
      const payload = new Uint8Array(size);
      const words = new DataView(payload.buffer);
      for (let at = 0; at < size; at += 4) words.setUint32(at, i * 2 ** 28 + at / 4);
      const writing = (async () => {
        for (let done = 0; done < size;) done += await conn.write(payload.subarray(done, done + 8192));
      })().catch(() => {}); // (a connection closed early fails them: the reads show it)
      const got = new Uint8Array(size);
      let have = 0;
      try {
        while (have < size) {
          const n = await conn.read(got.subarray(have));
          if (n === null) break; // closed early
          have += n;
        }
      } catch { /* reset: closed early, with bytes of ours unread */ }
      await writing;
      conn.close();
      assert.equal(have, size, `client ${i}: the server closed after ${have} of ${size} bytes`);
      assert.deepEqual(got, payload);
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the echoes did not all come back within 10 s")), 10_000);
    });
    try {
      await Promise.race([Promise.all(Array.from({ length: clients }, (_, i) => echo(i))), late]);
    } finally {
      clearTimeout(timer);
    }
    const { code, stdout, stderr } = await output;
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.match(
      new TextDecoder().decode(stdout),
      new RegExp(`\\n${clients} connections, ${clients * size} bytes echoed, 0 still open`),
    );
  },
});

Deno.test({
  name:
    "examples/echo_server.ts: a client that resets while its receive is paused is closed (--max is reached)",
  ignore: skipKernel(),
  fn: async () => {
    // The client sends without reading until the server holds its share of buffers and pauses
    // its receive, then closes with echoes unread (a reset). The failed send waited for the end
    // of a receive that was not armed: the connection was never closed, the server never ended.
    const { output, connect, kill } = echoServer(1);
    const conn = await connect();
    let sent = 0;
    const writing = (async () => {
      const chunk = new Uint8Array(65536);
      try {
        for (;;) sent += await conn.write(chunk);
      } catch { /* closed below */ }
    })();
    // Stalled: the echoes fill the client's socket, the server's sends wait, its receive pauses.
    for (let last = -1, deadline = Date.now() + 5000; sent !== last && Date.now() < deadline;) {
      last = sent;
      await new Promise((r) => setTimeout(r, 300));
    }
    conn.close(); // (unread bytes: a reset, not a FIN)
    await writing;
    const timer = setTimeout(kill, 5000);
    const { code, stdout, stderr } = await output;
    clearTimeout(timer);
    assert.equal(
      code,
      0,
      `the server did not end within 5 s of the reset ${new TextDecoder().decode(stderr)}`,
    );
    assert.match(new TextDecoder().decode(stdout), /\n1 connections, \d+ bytes echoed, 0 still open/);
  },
});

/** examples/udp_echo.ts started with `--max max` on a free port, once it listens. */
async function startUdpEcho(max: number): Promise<{ port: number; finished: () => Promise<string> }> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 }); // a free port number (TCP's)
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", ...FLAGS, `${ROOT}examples/udp_echo.ts`, "--port", String(port), "--max", String(max)],
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let printed = "";
  while (!printed.includes("echoing datagrams")) {
    const { value, done } = await lines.read();
    assert.ok(!done, `the server ended before it listened: ${printed}`);
    printed += value;
  }
  const rest = (async () => {
    for (;;) {
      const { value, done } = await lines.read();
      if (done) return printed;
      printed += value;
    }
  })();
  return {
    port,
    // Waits for the server to exit (successfully) and returns all it printed.
    async finished() {
      const status = await server.status;
      const stderr = new TextDecoder().decode(await new Response(server.stderr).arrayBuffer());
      assert.equal(status.code, 0, stderr);
      return await rest;
    },
  };
}

/** A ring's one-call round trip for the UDP tests: preps, submits, waits at most 5 s, returns `res`. */
function udpRun(ring: IoUring, prep: (sqe: Sqe) => void): number {
  prep(ring.getSqe()!);
  ring.submit();
  const cqe = ring.waitCqe({ timeoutMs: 5000 });
  assert.ok(cqe !== null, "no completion within 5 s");
  const res = cqe.res;
  ring.cqAdvance(1);
  return res;
}

Deno.test({
  name:
    "examples/udp_echo.ts: echoes each datagram to its sender (an empty one, one cut to 2048 bytes), then stops after --max",
  ignore: skipKernel(),
  async fn() {
    const datagrams = ["hello", "", "x".repeat(1000), "y".repeat(3000), "last"];
    const server = await startUdpEcho(datagrams.length);
    const dec = new TextDecoder(), enc = new TextEncoder();
    using ring = new IoUring(8, { sqpoll: false });
    const run = (prep: (sqe: Sqe) => void) => udpRun(ring, prep);
    const fd = run((s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      const to = SocketAddress.inet("127.0.0.1", server.port);
      for (const text of datagrams) {
        assert.equal(run((s) => prepSendto(s, fd, enc.encode(text), to)), text.length);
        const back = new Uint8Array(4096);
        const n = run((s) => prepRecv(s, fd, back));
        assert.equal(
          dec.decode(back.subarray(0, n)),
          text.slice(0, 2048),
          `the echo of ${text.length} bytes`,
        );
      }
    } finally {
      run((s) => prepClose(s, fd));
    }
    assert.match(await server.finished(), /echoed 5 datagrams \(1 cut to 2048 bytes\); io_uring_enter: /);
  },
});

Deno.test({
  name: "examples/udp_echo.ts: --max 5 answers 5 datagrams of a burst of 20, not more",
  ignore: skipKernel(),
  async fn() {
    // It answered every datagram received before the 5th echo completed: 16 of 20 (a probe).
    const server = await startUdpEcho(5);
    using ring = new IoUring(32, { sqpoll: false });
    const run = (prep: (sqe: Sqe) => void) => udpRun(ring, prep);
    const fd = run((s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
    try {
      const to = SocketAddress.inet("127.0.0.1", server.port);
      const payload = new TextEncoder().encode("burst");
      for (let i = 0; i < 20; i++) prepSendto(ring.getSqe()!, fd, payload, to).setUserData(1);
      ring.submitAndWait(20);
      ring.forEachCqe((cqe) => assert.equal(cqe.res, payload.length));
      assert.match(await server.finished(), /echoed 5 datagrams \(0 cut to 2048 bytes\)/);
      // The server has exited: every reply it sent is in this socket's queue now.
      let replies = 0;
      const back = new Uint8Array(64);
      while (run((s) => prepRecv(s, fd, back, MSG_DONTWAIT)) === payload.length) replies++;
      assert.equal(replies, 5);
    } finally {
      run((s) => prepClose(s, fd));
    }
  },
});

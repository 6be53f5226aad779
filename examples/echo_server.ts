/**
 * An echo server built from ring operations alone: one multishot accept takes every connection,
 * one multishot receive per connection fills buffers the kernel picks from a ring of provided
 * buffers, and each piece received is sent back from that same buffer, which is then recycled.
 * Under SQPOLL (the default) a busy server makes almost no system calls: the summary at the end
 * prints the `io_uring_enter` calls by reason.
 *
 *   deno run --allow-ffi --allow-read --allow-env examples/echo_server.ts [--port N | --unix PATH] [--max N]
 *
 * `--port` listens on 127.0.0.1 (default 7007), `--unix` on a Unix socket at PATH (made, and
 * removed at the end); `--max N` stops after N connections have closed (default: run until
 * killed). Try it with `nc 127.0.0.1 7007`.
 */
import { parseArgs } from "node:util";
import {
  AF_INET,
  AF_UNIX,
  AT_FDCWD,
  type Cqe,
  cstring,
  IORING_CQE_F_MORE,
  IoUring,
  IoUringError,
  MSG_NOSIGNAL,
  prepBind,
  prepClose,
  prepListen,
  prepMultishotAccept,
  prepRecvMultishot,
  prepSend,
  prepSocket,
  prepUnlinkat,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SocketAddress,
  type Sqe,
} from "../mod.ts";

const USAGE = "usage: examples/echo_server.ts [--port N | --unix PATH] [--max N]";
const BUFFERS = 64;
const BUFFER_SIZE = 4096;

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, unix: { type: "string" }, max: { type: "string" } },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (e) {
  usage((e as Error).message);
}
const wholeNumber = (text: string | undefined, what: string, fallback: number, max: number): number => {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(n) || n < 1 || n > max) {
    usage(`${what} must be an integer from 1 to ${max}, got '${text}'`);
  }
  return n;
};
if (args.port !== undefined && args.unix !== undefined) usage("give --port or --unix, not both");
const port = wholeNumber(args.port, "--port", 7007, 65535);
const maxConnections = wholeNumber(args.max, "--max", Infinity, Number.MAX_SAFE_INTEGER);
const address = args.unix !== undefined
  ? SocketAddress.unix(args.unix)
  : SocketAddress.inet("127.0.0.1", port);

using ring = new IoUring(256);
using buffers = ring.setupBufferRing({ group: 0, entries: BUFFERS, bufferSize: BUFFER_SIZE });

// user_data: what completed, the connection's fd, and for a send the buffer it sent from.
const ACCEPT = 1, RECV = 2, SEND = 3, CLOSE = 4;
const tag = (kind: number, fd = 0, bid = 0) => kind * 2 ** 40 + fd * 2 ** 16 + bid;
const kindOf = (userData: number) => Math.floor(userData / 2 ** 40);
const fdOf = (userData: number) => Math.floor(userData / 2 ** 16) % 2 ** 24;
const bidOf = (userData: number) => userData % 2 ** 16;

/** The next SQE, submitting what is queued first if the SQ is full. */
function sqe(): Sqe {
  let next = ring.getSqe();
  while (next === null) {
    ring.submit();
    next = ring.getSqe();
  }
  return next;
}

/** One operation, waited for: for setting up, before the loop. */
function call(what: string, prep: (sqe: Sqe) => void): number {
  prep(sqe());
  ring.submitAndWait(1);
  const res = ring.peekCqe()!.res;
  ring.cqAdvance(1);
  if (res < 0) throw new IoUringError(what, -res, String(address));
  return res;
}

const listener = call(
  "socket",
  (s) => prepSocket(s, args.unix ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC),
);
call("bind", (s) => prepBind(s, listener, address));
call("listen", (s) => prepListen(s, listener, 128));
console.log(`listening on ${address} (sqpoll: ${ring.sqpoll})`);

prepMultishotAccept(sqe(), listener, SOCK_CLOEXEC).setUserData(tag(ACCEPT));
const receiving = (fd: number) => prepRecvMultishot(sqe(), fd, buffers).setUserData(tag(RECV, fd));
let open = 0, closed = 0, echoed = 0;
/** Connections whose receive ended for want of a buffer: armed again when one comes back. */
const starved: number[] = [];

function onCompletion(cqe: Cqe): void {
  const { res, flags } = cqe;
  const userData = cqe.userDataNumber;
  const fd = fdOf(userData);
  switch (kindOf(userData)) {
    case ACCEPT:
      if (res >= 0) {
        open++;
        receiving(res);
      } else console.error(`accept: ${res}`);
      if ((flags & IORING_CQE_F_MORE) === 0) { // the accept ended (an error): arm it again
        prepMultishotAccept(sqe(), listener, SOCK_CLOEXEC).setUserData(tag(ACCEPT));
      }
      break;
    case RECV: {
      const bid = buffers.take(flags);
      if (res > 0 && bid >= 0) {
        // Send the piece back from the buffer it arrived in; the buffer is recycled once sent.
        prepSend(sqe(), fd, buffers.view(bid).subarray(0, res), MSG_NOSIGNAL).setUserData(tag(SEND, fd, bid));
        echoed += res;
      } else if (bid >= 0) {
        buffers.recycle(bid);
      }
      if ((flags & IORING_CQE_F_MORE) !== 0) break;
      if (res === -105) starved.push(fd); // ENOBUFS: every buffer is out being sent
      else prepClose(sqe(), fd).setUserData(tag(CLOSE, fd)); // the peer closed, or an error
      break;
    }
    case SEND:
      buffers.recycle(bidOf(userData)); // (a short send of an echo is left short)
      if (starved.length > 0) receiving(starved.pop()!);
      break;
    case CLOSE:
      open--;
      closed++;
      break;
  }
}

while (closed < maxConnections) {
  ring.submitAndWait(1);
  ring.forEachCqe(onCompletion);
}
call("close", (s) => prepClose(s, listener));
if (args.unix !== undefined) {
  call("unlink", (s) => prepUnlinkat(s, AT_FDCWD, cstring(args.unix!)));
}
console.log(
  `${closed} connections, ${echoed} bytes echoed, ${open} still open; io_uring_enter calls: ` +
    `${JSON.stringify(ring.stats)}`,
);

/**
 * A UDP echo server from ring operations alone: one multishot `recvmsg` takes every datagram into
 * a buffer the kernel picks from a ring of provided buffers, with the sender's address in the
 * same buffer (a `RecvmsgOut` lays it out and reads it), and each datagram goes back to its sender
 * with a `sendto` from that same buffer, which is recycled once the send completes. Under SQPOLL
 * (the default) a busy server makes almost no system calls: the summary at the end prints the
 * `io_uring_enter` calls by reason.
 *
 *   deno run --allow-ffi --allow-read --allow-env examples/udp_echo.ts [--port N] [--max N] [--entries N]
 *
 * `--port` listens on 127.0.0.1 (default 7008); `--max N` answers N datagrams, then stops:
 * datagrams that arrive after the N-th reply was sent are not answered (default: run until
 * killed); `--entries N` sizes the ring: N SQEs, 2N CQEs (default 256). Try it with
 * `nc -u 127.0.0.1 7008`.
 */
import { parseArgs } from "node:util";
import {
  AF_INET,
  errnoName,
  IORING_CQE_F_MORE,
  IoUring,
  IoUringError,
  MSG_TRUNC,
  prepBind,
  prepCancel,
  prepClose,
  prepRecvmsgMultishot,
  prepSendto,
  prepSocket,
  RecvmsgOut,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SocketAddress,
  type Sqe,
} from "../mod.ts";

const USAGE = "usage: examples/udp_echo.ts [--port N] [--max N] [--entries N]";
const BUFFERS = 64;
/** The largest datagram echoed whole; a longer one is echoed cut to this (and counted). */
const MAX_DATAGRAM = 2048;
const ENOBUFS = 105, ECANCELED = 125;

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: { port: { type: "string" }, max: { type: "string" }, entries: { type: "string" } },
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
const port = wholeNumber(args.port, "--port", 7008, 65535);
const maxEchoes = wholeNumber(args.max, "--max", Infinity, Number.MAX_SAFE_INTEGER);
const entries = wholeNumber(args.entries, "--entries", 256, 32768);
const address = SocketAddress.inet("127.0.0.1", port);

using ring = new IoUring(entries);
// Each buffer: the layout's header and room for the sender's address, then the datagram.
const layout = new RecvmsgOut({ name: true });
using buffers = ring.setupBufferRing({
  group: 0,
  entries: BUFFERS,
  bufferSize: layout.payloadOffset + MAX_DATAGRAM,
});
/** Each buffer's sender, kept for its `sendto` (the kernel reads it when the send is issued). */
const senders = Array.from({ length: BUFFERS }, () => new SocketAddress());

// user_data: what completed (and for a send, its buffer).
const RECV = 1, SEND = 2, CANCEL = 3, CALL = 4;
const tag = (kind: number, bid = 0) => kind * 2 ** 16 + bid;

/** The next SQE, submitting what is queued first if the SQ is full. */
function sqe(): Sqe {
  let next = ring.getSqe();
  while (next === null) {
    ring.submit();
    next = ring.getSqe();
  }
  return next;
}

/** One operation, waited for (setting up and ending); throws on failure. */
function call(what: string, prep: (sqe: Sqe) => void): number {
  const next = sqe();
  prep(next);
  next.setUserData(tag(CALL));
  let res: number | undefined;
  while (res === undefined) {
    ring.submitAndWait(1);
    ring.forEachCqe((cqe) => {
      if (cqe.userDataNumber === tag(CALL)) res = cqe.res;
    });
  }
  if (res < 0) throw new IoUringError(what, -res, String(address));
  return res;
}

const fd = call("socket", (s) => prepSocket(s, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC));
call("bind", (s) => prepBind(s, fd, address));
console.log(`echoing datagrams on udp:${address}`);

let receiving = false;
/** (Re)arms the one multishot receive. MSG_TRUNC: a cut datagram reports its whole length. */
function arm(): void {
  prepRecvmsgMultishot(sqe(), fd, layout, buffers, MSG_TRUNC).setUserData(tag(RECV));
  receiving = true;
}
arm();

/** Replies sent (`answered`, failed ones too; `echoed`, the others) and still in flight (`sending`). */
let answered = 0, echoed = 0, cut = 0, sending = 0, stopping = false;
const stop = () => {
  stopping = true;
  if (receiving) prepCancel(sqe(), tag(RECV)).setUserData(tag(CANCEL));
};

function onReceive(res: number, flags: number): void {
  if ((flags & IORING_CQE_F_MORE) === 0) receiving = false;
  const bid = buffers.take(flags, res);
  if (bid >= 0) {
    // (A receive that ended still hands over the datagram it carries, an empty one included.)
    layout.parse(buffers.view(bid), res);
    if (layout.payloadLength > layout.payloadBytes) cut++;
    if (layout.nameLength === 0 || stopping) {
      buffers.recycle(bid); // (no address to answer, or stopping)
    } else {
      layout.name(senders[bid]);
      prepSendto(sqe(), fd, layout.payload(), senders[bid]).setUserData(tag(SEND, bid));
      // The last reply --max allows is on its way: datagrams after it are not answered.
      if (answered + ++sending === maxEchoes) stop();
    }
  } else if (res < 0 && res !== -ENOBUFS && res !== -ECANCELED) {
    throw new IoUringError("recvmsg", -res, String(address));
  }
  // Ended: out of buffers (they come back as sends complete), the CQ was full, or an empty
  // datagram (which reads as the end of a stream). Arm it again, unless stopping.
  if (!receiving && !stopping) arm();
}

function onSend(bid: number, res: number): void {
  sending--;
  answered++;
  buffers.recycle(bid);
  if (res < 0) console.error(`sendto ${senders[bid]}: ${errnoName(-res)}`);
  else echoed++;
}

while (!stopping || receiving || sending > 0) {
  ring.submitAndWait(1);
  ring.forEachCompletion((userData, res, flags) => {
    const kind = Math.floor(userData / 2 ** 16);
    if (kind === RECV) onReceive(res, flags);
    else if (kind === SEND) onSend(userData % 2 ** 16, res);
  });
}
call("close", (s) => prepClose(s, fd));
const { submit, wakeup, wait } = ring.stats;
console.log(
  `echoed ${echoed} datagrams (${cut} cut to ${MAX_DATAGRAM} bytes); io_uring_enter: ${submit} to submit, ` +
    `${wakeup} to wake the SQ thread, ${wait} to wait`,
);

/**
 * An echo server built from ring operations alone: one multishot accept takes every connection,
 * one multishot receive per connection fills buffers the kernel picks from that connection's own
 * ring of 8 provided buffers, and each piece received is sent back from that same buffer, which
 * is then recycled. A client that sends and does not read fills its 8 buffers, and its receive
 * waits until they are echoed; the other connections have theirs (with one ring for all, a few
 * such clients took every buffer, and the server stalled). A ring is made when a connection needs
 * one and kept for the next once the connection closes: 32 KiB per connection open at once, and a
 * page of the ring's own, which counts against `ulimit -l` for a process without `CAP_IPC_LOCK`
 * (past it, a new connection is closed at once, with a message).
 * A connection has one send in flight at a time, its other pieces waiting in order behind it (two
 * sends on one socket may complete out of order once it is full), and a short send sends the rest
 * before the next piece. Under SQPOLL (the default) a busy server makes almost no system calls:
 * the summary at the end prints the `io_uring_enter` calls by reason.
 *
 *   deno run --allow-ffi --allow-read --allow-env examples/echo_server.ts [--port N | --unix PATH] [--max N]
 *     [--entries N]
 *
 * `--port` listens on 127.0.0.1 (default 7007), `--unix` on a Unix socket at PATH (a stale one
 * there, which refuses connections, is replaced; anything else at PATH is refused, not removed; the
 * socket is removed at the end with `--max`); `--max N` stops after N connections have closed
 * (default: run until killed); `--entries N` sizes the ring: N SQEs, 2N CQEs (default 256; a tiny
 * one fills its CQ at once, which ends multishot operations early). Try it with `nc 127.0.0.1 7007`.
 */
import { parseArgs } from "node:util";
import {
  AF_INET,
  AF_UNIX,
  AT_FDCWD,
  type BufferRing,
  type Cqe,
  cstring,
  errnoName,
  IORING_CQE_F_MORE,
  IoUring,
  IoUringError,
  MSG_NOSIGNAL,
  prepBind,
  prepCancel,
  prepClose,
  prepConnect,
  prepListen,
  prepMultishotAccept,
  prepRecvMultishot,
  prepSend,
  prepSocket,
  prepTimeout,
  prepUnlinkat,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SocketAddress,
  type Sqe,
  Timespec,
} from "../mod.ts";

const USAGE = "usage: examples/echo_server.ts [--port N | --unix PATH] [--max N] [--entries N]";
const BUFFER_SIZE = 4096;
/** Buffers in each connection's own ring: all it can hold (so a client that sends without reading
 * cannot take the others' buffers and stall them). */
const PER_CONNECTION = 8;
const ENOBUFS = 105, EMFILE = 24, ENFILE = 23, ENOENT = 2, ECONNREFUSED = 111;

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  Deno.exit(2);
}

let args;
try {
  args = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string" },
      unix: { type: "string" },
      max: { type: "string" },
      entries: { type: "string" },
    },
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
const entries = wholeNumber(args.entries, "--entries", 256, 32768);
if (args.unix === "") usage("--unix must name a path, got ''");
let address: SocketAddress;
try {
  address = args.unix !== undefined ? SocketAddress.unix(args.unix) : SocketAddress.inet("127.0.0.1", port);
} catch (e) { // (a path over 108 bytes: sun_path holds no more)
  usage(`--unix: ${(e as Error).message}`);
}

using ring = new IoUring(entries);
/** Rings of provided buffers of closed connections, all their buffers back, for the next ones. */
const spareRings: BufferRing[] = [];
let nextGroup = 0;
/**
 * A ring of buffers for a new connection: a spare one, or a new one; else why there is none (every
 * group id taken, or the kernel refused: `ENOMEM` once the rings' pinned pages reach `ulimit -l`
 * for a process without `CAP_IPC_LOCK`).
 */
function ringForConnection(): BufferRing | string {
  const spare = spareRings.pop();
  if (spare !== undefined) return spare;
  if (nextGroup > 0xffff) return "every buffer group is taken"; // (group ids are 16 bits)
  try {
    const made = ring.setupBufferRing({ group: nextGroup, entries: PER_CONNECTION, bufferSize: BUFFER_SIZE });
    nextGroup++;
    return made;
  } catch (e) {
    return (e as Error).message;
  }
}

// user_data: what completed, and the connection's fd.
const ACCEPT = 1, RECV = 2, SEND = 3, CLOSE = 4, CANCEL = 5, ACCEPT_LATER = 6, CALL = 7;
const tag = (kind: number, fd = 0) => kind * 2 ** 32 + fd;
const kindOf = (userData: number) => Math.floor(userData / 2 ** 32);
const fdOf = (userData: number) => userData % 2 ** 32;

/** The next SQE, submitting what is queued first if the SQ is full. */
function sqe(): Sqe {
  let next = ring.getSqe();
  while (next === null) {
    ring.submit();
    next = ring.getSqe();
  }
  return next;
}

/**
 * One operation, waited for: for setting up, before the loop, and for the end, after it. Its
 * result is the CQE with its user_data: at the end the connections still open have operations in
 * flight (an accept, receives, sends), whose CQEs are dropped. Throws on failure, unless `mayFail`.
 */
function call(what: string, prep: (sqe: Sqe) => void, mayFail = false): number {
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
  if (res < 0 && !mayFail) throw new IoUringError(what, -res, String(address));
  return res;
}

if (args.unix !== undefined) {
  // A socket file left by an earlier run (killed before its end) would make the bind fail: it is
  // removed, but only when it is a socket and a connect to it is refused (no server listens on it).
  // Anything else there (a file, a live server's socket) is left alone and refused.
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.lstatSync(args.unix);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) usage(`--unix: ${(e as Error).message}`);
  }
  if (info !== undefined) {
    if (!info.isSocket) usage(`--unix: ${args.unix} exists and is not a socket: not replaced`);
    const probe = call("socket", (s) => prepSocket(s, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC));
    const connected = call("connect", (s) => prepConnect(s, probe, address), true);
    call("close", (s) => prepClose(s, probe));
    if (connected === 0) usage(`--unix: a server is listening on ${args.unix}: not replaced`);
    if (connected !== -ECONNREFUSED) {
      usage(`--unix: ${args.unix} is a socket, and connecting to it fails: ${errnoName(-connected)}`);
    }
    const gone = call("unlink", (s) => prepUnlinkat(s, AT_FDCWD, cstring(args.unix!)), true);
    if (gone < 0 && gone !== -ENOENT) throw new IoUringError("unlink", -gone, args.unix);
  }
}
const listener = call(
  "socket",
  (s) => prepSocket(s, args.unix !== undefined ? AF_UNIX : AF_INET, SOCK_STREAM | SOCK_CLOEXEC),
);
call("bind", (s) => prepBind(s, listener, address));
call("listen", (s) => prepListen(s, listener, 128));
console.log(`listening on ${address} (sqpoll: ${ring.sqpoll})`);

let open = 0, closed = 0, echoed = 0;
/** A pause of the accept (no descriptor left): armed again after it, or when a connection closes. */
let acceptPaused = false;
const ACCEPT_PAUSE = new Timespec(100);

/** A connection: the pieces received and not yet echoed, in order (the first one is being sent). */
interface Connection {
  /** Per piece: its buffer id, the bytes of it sent so far, and its length. */
  pieces: { bid: number; sent: number; length: number }[];
  /** Its multishot receive is armed (its last CQE, without `IORING_CQE_F_MORE`, is still to come). */
  receiving: boolean;
  /** Its own ring of buffers, all of them in the ring or in `pieces`. */
  buffers: BufferRing;
  /** A cancel of its receive is in flight (a send failed). Not armed again before the cancel
   * reports, which could cancel the new receive. */
  cancelling: boolean;
  /** The receive ended (the peer closed its side, or an error) or must end (a send failed): close
   * once the pieces are out and the receive has posted its last CQE. */
  receiveDone: boolean;
}
const connections = new Map<number, Connection>();

/**
 * Arms the connection's multishot receive, unless it is armed, being cancelled or over, or the
 * connection holds half its buffers or more (its receive ended for want of one: armed again once
 * it has echoed enough that a receive gets more than a piece or two before it ends again).
 */
function receive(fd: number, conn: Connection): void {
  if (conn.receiving || conn.cancelling || conn.receiveDone || conn.pieces.length >= PER_CONNECTION / 2) {
    return;
  }
  conn.receiving = true;
  prepRecvMultishot(sqe(), fd, conn.buffers).setUserData(tag(RECV, fd));
}

/** Sends what is left of the connection's first piece (one send in flight per connection). */
function sendFirst(fd: number, conn: Connection): void {
  const { bid, sent, length } = conn.pieces[0];
  prepSend(sqe(), fd, conn.buffers.view(bid).subarray(sent, length), MSG_NOSIGNAL).setUserData(tag(SEND, fd));
}

/** Arms the multishot accept (again). */
function accept(): void {
  acceptPaused = false;
  prepMultishotAccept(sqe(), listener, SOCK_CLOEXEC).setUserData(tag(ACCEPT));
}

/** Closes the connection once nothing is left to send (its pieces' buffers recycled on a failure),
 * and its receive has posted its last CQE and any cancel of it has reported (their CQEs find the
 * connection). */
function closeWhenDone(fd: number, conn: Connection): void {
  if (!conn.receiveDone || conn.receiving || conn.cancelling || conn.pieces.length > 0) return;
  connections.delete(fd);
  spareRings.push(conn.buffers); // every buffer is back in it
  prepClose(sqe(), fd).setUserData(tag(CLOSE, fd));
}

function onCompletion(cqe: Cqe): void {
  const { res, flags } = cqe;
  const userData = cqe.userDataNumber;
  const fd = fdOf(userData);
  switch (kindOf(userData)) {
    case ACCEPT:
      if (res >= 0) {
        open++;
        const buffers = ringForConnection();
        if (typeof buffers === "string") { // the connection is closed; the others go on
          console.error(`no buffers for another connection (${buffers}): closed`);
          prepClose(sqe(), res).setUserData(tag(CLOSE, res));
        } else {
          const conn: Connection = {
            pieces: [],
            buffers,
            receiving: false,
            cancelling: false,
            receiveDone: false,
          };
          connections.set(res, conn);
          receive(res, conn);
        }
      } else if (!acceptPaused) console.error(new IoUringError("accept", -res).message);
      if ((flags & IORING_CQE_F_MORE) !== 0) break;
      if (res === -EMFILE || res === -ENFILE) {
        // No descriptor for the next connection, which waits in the backlog: armed again at once,
        // the accept would fail at once, for ever. Wait for a connection to close, or a moment.
        acceptPaused = true;
        prepTimeout(sqe(), ACCEPT_PAUSE).setUserData(tag(ACCEPT_LATER));
      } else {
        accept(); // the accept ended (an error): arm it again
      }
      break;
    case ACCEPT_LATER:
      if (acceptPaused) accept();
      break;
    case CANCEL: { // (the receive it cancelled reports itself, before or after this)
      const conn = connections.get(fd)!;
      conn.cancelling = false;
      receive(fd, conn); // (if its receive has ended, and it holds few enough pieces)
      closeWhenDone(fd, conn);
      break;
    }
    case RECV: {
      const conn = connections.get(fd)!;
      const bid = conn.buffers.take(flags);
      const more = (flags & IORING_CQE_F_MORE) !== 0;
      if (res > 0 && bid >= 0 && !conn.receiveDone) {
        // Echo the piece from the buffer it arrived in, after those before it.
        conn.pieces.push({ bid, sent: 0, length: res });
        if (conn.pieces.length === 1) sendFirst(fd, conn);
      } else if (bid >= 0) {
        conn.buffers.recycle(bid);
      }
      if (more) break;
      conn.receiving = false;
      if (conn.receiveDone) { // a send failed meanwhile (its pieces are gone)
        closeWhenDone(fd, conn);
        break;
      }
      // A last CQE with data (the kernel ended the receive because the CQ was full), or one that
      // found the connection's ring empty (every buffer out being echoed): armed again, now or
      // once the connection has echoed half of them (see receive).
      if (res > 0 || res === -ENOBUFS) {
        receive(fd, conn);
        break;
      }
      conn.receiveDone = true; // the peer closed (0), or an error
      closeWhenDone(fd, conn);
      break;
    }
    case SEND: {
      const conn = connections.get(fd)!;
      const piece = conn.pieces[0];
      if (res < 0) { // the peer went away: nothing more can be echoed, so nothing more is received
        const held = conn.pieces.splice(0);
        conn.receiveDone = true; // (first: a buffer recycled here must not arm its own receive again)
        for (const { bid } of held) conn.buffers.recycle(bid);
        // A receive still armed is cancelled; one that ended (for want of buffers) posts nothing
        // more: closed at once, or once its cancel reports.
        if (conn.receiving && !conn.cancelling) {
          conn.cancelling = true;
          prepCancel(sqe(), tag(RECV, fd)).setUserData(tag(CANCEL, fd));
        }
        closeWhenDone(fd, conn);
        break;
      }
      piece.sent += res;
      echoed += res;
      if (piece.sent < piece.length) { // a short send: the rest of the piece first
        sendFirst(fd, conn);
        break;
      }
      conn.pieces.shift();
      conn.buffers.recycle(piece.bid);
      // A receive that ended for want of buffers is armed again once the connection holds less
      // than half of them (see receive).
      if (!conn.receiving) receive(fd, conn);
      if (conn.pieces.length > 0) sendFirst(fd, conn);
      else closeWhenDone(fd, conn);
      break;
    }
    case CLOSE:
      open--;
      closed++;
      if (acceptPaused) accept(); // a descriptor is free again
      break;
  }
}

accept();
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

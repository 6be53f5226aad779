/**
 * Reads the first 256 bytes of a file through the raw ring: openat, read, close, each one SQE.
 *
 *   deno run --allow-ffi --allow-read --allow-env examples/ring_read.ts [PATH]
 */
import {
  AT_FDCWD,
  cstring,
  IoUring,
  IoUringError,
  O_RDONLY,
  prepClose,
  prepOpenat,
  prepRead,
  type Sqe,
} from "../mod.ts";

const path = Deno.args[0] ?? new URL(import.meta.url).pathname;
using ring = new IoUring(8); // SQPOLL by default; ring.sqpoll says whether the kernel agreed

/** Queues one SQE, submits it and returns its result (or throws the errno). */
function run(what: string, prep: (sqe: Sqe) => void): number {
  const sqe = ring.getSqe()!;
  prep(sqe);
  sqe.setUserData(1);
  ring.submit();
  const cqe = ring.waitCqe()!;
  const res = cqe.res;
  ring.cqAdvance(1);
  if (res < 0) throw new IoUringError(what, -res, path);
  return res;
}

const cpath = cstring(path);
const fd = run("openat", (sqe) => prepOpenat(sqe, AT_FDCWD, cpath, O_RDONLY));
const buf = new Uint8Array(256);
let n: number;
try {
  n = run("read", (sqe) => prepRead(sqe, fd, buf, 0));
} finally {
  run("close", (sqe) => prepClose(sqe, fd)); // also when the read failed (a directory: EISDIR)
}
console.log(`read ${n} bytes from ${path} (sqpoll: ${ring.sqpoll}, enters: ${JSON.stringify(ring.stats)})`);
console.log(new TextDecoder().decode(buf.subarray(0, n)));

/**
 * Test support for direct I/O: a temporary directory on a file system that accepts O_DIRECT
 * (tests skip with one line when none does: e.g. tmpfs before 6.6), and whether a block device
 * has poll queues (so IOPOLL tests know which answer to expect).
 */

import {
  alignedBuffer,
  AT_FDCWD,
  cstring,
  errnoName,
  IoUring,
  O_CREAT,
  O_DIRECT,
  O_RDWR,
  prepClose,
  prepOpenat,
  prepWrite,
} from "../mod.ts";
import { skipKernel } from "./_support.ts";

/** Where O_DIRECT tests make their files: `URING_DIRECT_DIR`, else /var/tmp (a disk even where /tmp is tmpfs). */
function baseDir(): string | undefined {
  try {
    const env = Deno.env.get("URING_DIRECT_DIR");
    if (env) return env;
  } catch {
    // no --allow-env
  }
  try {
    if (Deno.statSync("/var/tmp").isDirectory) return "/var/tmp";
  } catch {
    // fall through to the default temporary directory
  }
  return undefined;
}

/** Runs one SQE on `ring` and returns its res. */
function once(ring: IoUring, prep: (ring: IoUring) => void): number {
  prep(ring);
  ring.submitAndWait(1);
  const res = ring.peekCqe()!.res;
  ring.cqAdvance(1);
  return res;
}

/** Why O_DIRECT tests must skip, or `undefined` when they can run. */
export const directUnavailableReason: string | undefined = (() => {
  if (skipKernel()) return "io_uring is unavailable";
  const dir = Deno.makeTempDirSync({ dir: baseDir(), prefix: "uring-direct-probe-" });
  try {
    using ring = new IoUring(2, { sqpoll: false });
    const path = cstring(`${dir}/probe`);
    const fd = once(ring, (r) => prepOpenat(r.getSqe()!, AT_FDCWD, path, O_RDWR | O_CREAT | O_DIRECT, 0o600));
    if (fd < 0) return `openat(O_DIRECT) in ${dir} failed with ${errnoName(-fd)}`;
    using buf = alignedBuffer(4096);
    const res = once(ring, (r) => prepWrite(r.getSqe()!, fd, buf.bytes, 0));
    once(ring, (r) => prepClose(r.getSqe()!, fd));
    if (res < 0) return `an aligned O_DIRECT write in ${dir} failed with ${errnoName(-res)}`;
    return undefined;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();

let announced = false;
/** True when O_DIRECT tests must be skipped; says why once. */
export function skipDirect(): boolean {
  if (directUnavailableReason !== undefined && !announced) {
    announced = true;
    console.log(`SKIP O_DIRECT tests: ${directUnavailableReason}`);
  }
  return directUnavailableReason !== undefined;
}

/** A fresh temporary directory on the O_DIRECT-capable file system, removed on dispose. */
export function directTempDir(): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ dir: baseDir(), prefix: "uring-direct-" });
  return {
    path,
    [Symbol.dispose]() {
      Deno.removeSync(path, { recursive: true });
    },
  };
}

/**
 * Whether the block device `major:minor` (a partition counts as its disk) has poll queues
 * (`/sys/dev/block/M:m/queue/io_poll` is 1), or `undefined` when sysfs does not say. Read with
 * `cat`, because Deno wants --allow-all for /sys.
 */
export function devicePolls(major: number, minor: number): boolean | undefined {
  const base = `/sys/dev/block/${major}:${minor}`;
  for (const file of [`${base}/queue/io_poll`, `${base}/../queue/io_poll`]) {
    try {
      const out = new Deno.Command("cat", { args: [file], stdout: "piped", stderr: "null" }).outputSync();
      if (out.success) return new TextDecoder().decode(out.stdout).trim() === "1";
    } catch {
      return undefined; // no cat, or no --allow-run
    }
  }
  return undefined;
}

/**
 * `copyFile`: one file copied through io_uring with up to `queueDepth` blocks in flight.
 *
 * @module
 */

import { CopyContext } from "./copy_context.ts";
import {
  abortFailure,
  copyFailure,
  dirnameOf,
  isDescribed,
  makeFailure,
  outOfDescriptors,
  staged,
  tagStage,
} from "./copy_errors.ts";
import {
  type CopyOptions,
  type CopyProgress,
  type CopyResult,
  resolveCopyOptions,
  type ResolvedCopyOptions,
} from "./copy_options.ts";
import { copyRegular, describeFailure, refusalOf, tempPathFor } from "./copy_regular.ts";
import { shedKeptPipes } from "./copy_shared_ring.ts";
import { checkAccess, checkCopyTargets, copyRootPath, toPath } from "./permissions.ts";
import { notCapable } from "./deno_errors.ts";

/** Drops trailing slashes (`"a/b/"` → `"a/b"`, `"/"` stays). */
export function trimSlashes(path: string): string {
  const trimmed = path.replace(/\/+$/, "");
  return trimmed === "" ? "/" : trimmed;
}

/**
 * Copies the regular file `src` (symlinks followed) to `dst` and resolves with
 * `{ files: 1, bytes, ms, dirs: 0, engine }`.
 *
 * Up to `queueDepth` operations are in flight at once (a file of one block goes as one chain: see
 * `CopyOptions.queueDepth`). A dense file of more than one block moves by splice lanes
 * (`splice(source → pipe)` linked to `splice(pipe → destination)`: the kernel copies each byte
 * once); a sparse source, an O_DIRECT copy and `splice: false` go through buffers, `blockSize`
 * bytes a block (within 32 MiB of buffers), each block's read feeding its write from a reused
 * buffer. Short transfers are resumed; offsets are 64-bit (files past 4 GiB work); a sparse
 * source keeps its holes (found with `SEEK_DATA`/`SEEK_HOLE` and never read). The copy gets the
 * source's mode (permission and sticky bits; not setuid/setgid: the copy belongs to whoever
 * copies, not to the source's owner, as with GNU `cp`); `preserve: true` also keeps its access
 * and modification times (set with `Deno.chmod` and `utimensat`: io_uring has no such operations).
 *
 * Failures: the promise rejects with an error naming the file in plain words
 * (`cannot copy 'a' to 'b': destination directory 'x' does not exist`), of the `Deno.errors`
 * class for the errno (`NotFound`, `PermissionDenied`, `AlreadyExists`, `IsADirectory`, ...;
 * `OsError` with `code: "ENOSPC"` when the disk is full), with `code`, `path` and `cause`.
 * A destination that exists is an `AlreadyExists` error unless `overwrite: true`; a destination
 * that is a directory is always an `IsADirectory` error. `signal` stops the copy with an
 * `AbortError`. The source is only read. The data is written to a temporary name next to `dst`
 * and renamed into place when complete, so a failed or stopped copy leaves `dst` as it was
 * (the temporary file is removed). Where Deno grants write permission for a new `dst` alone and
 * not for its directory, `dst` is created under its own name instead (exclusively, and removed
 * if the copy fails); replacing an existing `dst` needs the temporary file.
 *
 * When io_uring cannot be set up (`EPERM`, `ENOSYS`, or `ENOMEM`: no locked memory for a ring),
 * or the kernel's is older than the copy engine needs (5.17: a `Uring` needs 5.11, directories
 * and symlinks `mkdirat` and `symlinkat` (5.15), and one-block files a chain that opens them into
 * direct descriptors and uses them in one submission, `IORING_FEAT_LINKED_FILE`), the copy is
 * done with Deno's own APIs unless `fallback: false`; `result.engine` tells which ran.
 *
 * Without `uring`, the copies of the main thread share one ring (made for the first, closed
 * 20–40 ms after the last ends; one with `sqpoll` or a deeper `queueDepth` than the default
 * makes its own): a ring per copy cost each its set-up and tear-down, 4.5 times the time of 4,000
 * small files. A Worker's copies share one too; its memory goes with the Worker's thread (a Worker
 * terminated as soon as it is done would otherwise leave it open in the process). Without the
 * helper a Worker's copies use Deno's file APIs (see `CopyOptions.fallback`); with `fallback:
 * false` there, the ring closes as the last copy ends.
 *
 * Many copies at once in one process (each holds up to four pipes and two files): one that runs
 * out of descriptors (`EMFILE`) before it has written anything, while others run (or ran during
 * its attempt), waits for one of them to end and tries again, and from then on no more run at
 * once than did then (one more after each that succeeds). It first gives back the pipes kept for
 * later copies, and tries once more even alone when there were any. `copyTree` copies are not counted there: one that
 * runs out beside many `copyFile`s waits only for its own files, and may fail with `EMFILE`.
 */
export async function copyFile(
  src: string | URL,
  dst: string | URL,
  options?: CopyOptions,
): Promise<CopyResult> {
  // `.` and `..` resolved in the text, as Deno does (see copyRootPath): what the permission
  // checks see is what the kernel gets.
  const given = copyRootPath(toPath(src, "src"));
  const source = trimSlashes(given);
  const dest = copyRootPath(toPath(dst, "dst"));
  const opts = resolveCopyOptions(options);
  let shedRetried = false; // (a retry only because kept pipes were given back: once)
  for (;;) {
    if (opts.signal?.aborted || !(await startCopy(opts.signal))) {
      throw abortFailure(opts.signal!, `copying '${source}' to '${dest}'`);
    }
    // (Tried again only while it has reported no bytes: `bytes` never goes back.)
    let wrote = false;
    const onProgress = opts.onProgress;
    const attempt = onProgress === undefined ? opts : {
      ...opts,
      onProgress: (p: CopyProgress) => {
        if (p.bytes > 0) wrote = true;
        return onProgress(p);
      },
    };
    let failure: unknown;
    let outOf = false;
    const endedBefore = copiesEnded;
    try {
      const result = await copyFileOnce(given, source, dest, attempt);
      copyLimit++; // (back up, one success at a time, after running out lowered it)
      return result;
    } catch (e) {
      failure = e;
      // (Others ran if some still run or any ended meanwhile: those whose descriptors made this
      // one run out may have met EMFILE themselves, and be waiting in the queue by now. Pipes the
      // finished copies' lanes kept are given back, and worth one more try even alone.)
      const outOfFds = outOfDescriptors(e) && !wrote && !opts.signal?.aborted;
      const shed = outOfFds ? shedKeptPipes(opts.uring) : 0;
      outOf = outOfFds && (copiesRunning > 1 || copiesEnded !== endedBefore || (shed > 0 && !shedRetried));
      if (outOf && shed > 0) shedRetried = true;
    } finally {
      // Out of descriptors while other copies of this process run (many at once, each with its
      // own ring and pipes: a probe's 300 at once at `ulimit -n` 1024 failed 87 with EMFILE,
      // where Deno.copyFile's failed none): no more may run at once than the others that run now,
      // and this one waits for one of them to end (its own ending starts none), then tries again.
      // With none running, the failure stands.
      if (outOf) copyLimit = Math.max(1, copiesRunning - 1);
      endCopy();
    }
    if (!outOf) throw failure;
  }
}

/**
 * `copyFile` attempts in progress in this process, how many may be (lowered when one runs out of
 * descriptors), and those waiting to start, first come first.
 */
let copiesRunning = 0;
let copyLimit = Infinity;
/** `copyFile` attempts ended so far in this process (see `copyFile`'s retry on `EMFILE`). */
let copiesEnded = 0;
const copyQueue: (() => void)[] = [];

/**
 * Starts a `copyFile` attempt when fewer than the limit run, else waits its turn; false when
 * `signal` fired first.
 */
function startCopy(signal: AbortSignal | undefined): Promise<boolean> | boolean {
  if (copiesRunning < copyLimit && copyQueue.length === 0) {
    copiesRunning++;
    return true;
  }
  return new Promise((resolve) => {
    const start = () => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    };
    const onAbort = () => {
      const at = copyQueue.indexOf(start);
      if (at >= 0) copyQueue.splice(at, 1);
      resolve(false);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    copyQueue.push(start);
  });
}

/** Ends a `copyFile` attempt: the next waiting one starts if the limit lets it. */
function endCopy(): void {
  copiesRunning--;
  copiesEnded++;
  while (copiesRunning < copyLimit && copyQueue.length > 0) {
    copiesRunning++;
    copyQueue.shift()!();
  }
}

/** How `copyFile` refuses a destination that is its source. */
const SAME_FILE = "source and destination are the same file";

/** One attempt of {@link copyFile}. */
async function copyFileOnce(
  given: string,
  source: string,
  dest: string,
  opts: ResolvedCopyOptions,
): Promise<CopyResult> {
  let ctx: CopyContext;
  try {
    ctx = new CopyContext(opts, false, true); // (on the shared copy ring, unless told otherwise)
  } catch (e) {
    throw copyFailure(e, source, dest); // (io_uring_setup's EMFILE, say: the error names the files)
  }
  try {
    const st = await staged("stat-source", ctx.engine.stat(source, true, ctx));
    if (st.kind === "dir") {
      throw makeFailure(
        "EISDIR",
        source,
        dest,
        `source '${source}' is a directory (use copyTree, or cp -r)`,
        source,
      );
    }
    if (st.kind !== "file") {
      // (A device, FIFO or socket: `NotSupported`, code EOPNOTSUPP, as every copy failure has a code.)
      throw makeFailure("EOPNOTSUPP", source, dest, `source '${source}' is not a regular file`, source);
    }
    if (given !== source && source !== "/") {
      // `file/` names a directory: the kernel (and cp) refuse it with ENOTDIR.
      throw makeFailure("ENOTDIR", source, dest, `source '${given}' is not a directory`, source);
    }
    const special = checkCopyTargets(source, dest);
    if (special !== null) throw special;
    ctx.progress.totalFiles = 1;
    ctx.progress.totalBytes = st.size;
    ctx.report();
    // Fixed buffers only when the file is large enough to pay for them (buffered or O_DIRECT).
    ctx.fixed?.expect(st.size);
    ctx.direct?.expect(st.size);
    ctx.expectOneFile(st.size);
    let existing = await ctx.existingDest(trimSlashes(dest), false);
    if (existing?.kind === "symlink" && dest.endsWith("/")) {
      // `link/` names what the link points to: a directory there is "is a directory", as for
      // `dir/` (it said "is not a directory"); a file or nothing stays "is not a directory".
      const target = await ctx.existingDest(trimSlashes(dest), true);
      if (target?.kind === "dir") existing = target;
    }
    if (existing !== undefined) {
      // What is never replaced, then `b/` naming a file, then what only `overwrite` replaces.
      const never = refusalOf(existing, st, source, dest, true, SAME_FILE);
      if (never !== undefined) throw never;
      if (dest.endsWith("/")) {
        // `b/` names a directory; `b` is a file: a directory would be the fix, not --force.
        throw makeFailure("ENOTDIR", source, dest, `destination '${dest}' is not a directory`, dest);
      }
      const refused = refusalOf(existing, st, source, dest, opts.overwrite, SAME_FILE);
      if (refused !== undefined) throw refused;
    } else if (dest.endsWith("/")) {
      throw makeFailure("ENOENT", source, dest, `destination directory '${dest}' does not exist`, dest);
    }
    // Write permission for the destination alone (not its directory) does not cover the temporary
    // file next to it: a new destination is then made under its own name (exclusively, and
    // removed if the copy fails), as Deno.copyFile would write it (without that permission
    // either, the open's refusal names the destination, not a temporary name the user cannot
    // grant). An existing destination is replaced only by renaming the copy over it.
    const tempDenied = checkAccess("open", "write", tempPathFor(dest)) !== null;
    if (tempDenied && existing !== undefined) {
      const dir = dirnameOf(dest);
      throw notCapable(
        `replacing '${dest}' needs write access to its directory '${dir}' (the copy is written there under ` +
          `a temporary name, then renamed over it), run again with the --allow-write flag for '${dir}'`,
      );
    }
    const inPlace = existing === undefined && tempDenied;
    if (!inPlace) {
      // The rename at the end needs write access to the destination itself: refused now, before
      // any byte is copied (it was refused at the rename, after the whole file had been copied).
      const denied = checkAccess("open", "write", dest);
      if (denied !== null) throw tagStage(denied, "create");
    }
    await copyRegular(ctx, source, dest, st, inPlace);
    const progress = ctx.progressError();
    if (progress !== undefined) throw progress; // thrown by the last report (the file is in place)
    return ctx.result();
  } catch (e) {
    const progress = ctx.userAborted ? undefined : ctx.progressError();
    if (progress !== undefined) throw progress; // it stopped the copy: what failed after is its echo
    if (isDescribed(e) && !ctx.userAborted) throw e;
    throw describeFailure(ctx, e, source, dest);
  } finally {
    await ctx.close();
  }
}

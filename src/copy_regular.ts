/**
 * Copying one regular file so that an incomplete copy never looks complete. By default the data
 * goes to a temporary name in the destination's directory (`.NAME.uring-tmp-XXXXXXXX`, created
 * exclusively), the mode (and with `preserve` the times) are set on it, and only then is it
 * renamed over the destination name, atomically; `RENAME_NOREPLACE` unless `overwrite`, so an
 * existing file is never clobbered by accident. Any failure or stop removes the temporary file,
 * leaving the destination as it was.
 *
 * In place (`inPlace`, for a directory the copy itself just created, where nothing can be in the
 * way): the file is created under its own name (exclusively) and removed if it cannot be
 * completed. That saves a `renameat` per file (30–50% of the cost of a small file here); only a
 * process killed outright (SIGKILL, power loss) or ended by an uncaught error can leave a partial
 * file behind (`Deno.exit()` mid-copy removes it first: see `copy_incomplete.ts`).
 *
 * @module
 */

import { PATH_MAX } from "./abi.ts";
import type { CopyContext } from "./copy_context.ts";
import type { EntryStat } from "./copy_engine.ts";
import {
  abortFailure,
  alreadyExistsText,
  codeOf,
  copyFailure,
  isAbort,
  makeFailure,
  SourceReplaced,
  specialDestFailure,
  staged,
  stageOf,
} from "./copy_errors.ts";
import { doneWriting, startWriting } from "./copy_incomplete.ts";

/** The marker in every temporary file name (`.NAME.uring-tmp-XXXXXXXX`). */
export const TEMP_MARKER = ".uring-tmp-";

/** Copies of one file begun anew because its source was replaced meanwhile, before giving up. */
export const REPLACED_RETRIES = 3;

/**
 * The permission bits a copy of a regular file gets: the source's, without setuid and setgid.
 * The copy belongs to whoever makes it (ownership is not copied), so keeping them would turn,
 * say, root's backup of a user's setuid program into a setuid-root one. GNU `cp` drops them
 * too, unless it keeps the owner (`-p`).
 */
export function copiedFilePerm(perm: number): number {
  return perm & ~0o6000;
}

/**
 * A fresh temporary path next to `dst`, short enough for any file name limit, and for the whole
 * path's (`PATH_MAX`) when `dst` is: the part of `dst`'s name it keeps shrinks as needed (a
 * destination a few bytes short of the limit failed with `ENAMETOOLONG` for a path the caller
 * never gave).
 */
export function tempPathFor(dst: string): string {
  const slash = dst.lastIndexOf("/");
  const chars = Array.from(dst.slice(slash + 1)).slice(0, 50);
  const random = Math.floor(Math.random() * 0x1_0000_0000).toString(16).padStart(8, "0");
  const dir = slash < 0 ? "" : dst.slice(0, slash + 1);
  let path = `${dir}.${chars.join("")}${TEMP_MARKER}${random}`;
  // (Only a path near the limit needs its bytes counted: 3 bytes a UTF-16 unit at most.)
  if (path.length * 3 >= PATH_MAX) {
    while (chars.length > 0 && encoder.encode(path).length >= PATH_MAX) {
      chars.pop();
      path = `${dir}.${chars.join("")}${TEMP_MARKER}${random}`;
    }
  }
  return path;
}

const encoder = new TextEncoder();

/**
 * Copies regular file `src` (already looked at: `st`) to `dst` through a temporary file (or in
 * place: see the module notes), then counts it done. Returns the bytes copied. Rejects with the
 * raw failure (tagged with its step); {@link describeFailure} turns it into the error to show.
 * The engine's `copySmall` (one chain for a one-block file) is tried first; an in-place file
 * that needs no `chmod` or times then settles without another promise in between.
 */
export function copyRegular(
  ctx: CopyContext,
  src: string,
  dst: string,
  st: EntryStat,
  inPlace = false,
  attempt = 0,
): Promise<number> {
  if (st.size > Number.MAX_SAFE_INTEGER) {
    // (A sparse file on tmpfs can say so. Its size as a number is rounded: the copy would write
    // and truncate to a size that is not the source's.)
    return Promise.reject(makeFailure(
      "EFBIG",
      src,
      dst,
      `'${src}' holds 2^53 bytes or more (${st.size}): past that a size as a number is not exact, ` +
        "and a copy cannot count it",
      src,
    ));
  }
  if (!inPlace || !ctx.options.overwrite) return copyRegularOnce(ctx, src, dst, st, inPlace, attempt);
  // In a directory this copy made, something else (another copy into the same place) may have
  // written the file meanwhile: with `overwrite`, replace it as in a directory that existed.
  return copyRegularOnce(ctx, src, dst, st, true, attempt).catch((e) => {
    if (codeOf(e) !== "EEXIST" || stageOf(e) !== "create") throw e;
    return copyRegularOnce(ctx, src, dst, st, false, attempt);
  });
}

/**
 * What a copy of `src` (looked at: `st`) finds at `dst` (`existing`) refuses it with, before any
 * byte moves, or `undefined` when it may replace it: a directory (`EISDIR`) or a device, FIFO or
 * socket is never replaced, nor the source itself (`EINVAL`, in the words `sameFile`), and
 * anything else only with `overwrite` (`EEXIST`).
 */
export function refusalOf(
  existing: EntryStat,
  st: EntryStat,
  src: string,
  dst: string,
  overwrite: boolean,
  sameFile: string,
): Error | undefined {
  if (existing.kind === "dir") {
    return makeFailure("EISDIR", src, dst, `destination '${dst}' is a directory`, dst);
  }
  if (existing.kind === "other") return specialDestFailure(src, dst);
  if (existing.id === st.id) return makeFailure("EINVAL", src, dst, sameFile, dst);
  if (!overwrite) return makeFailure("EEXIST", src, dst, alreadyExistsText(dst), dst);
  return undefined;
}

/**
 * After a copy whose source was replaced while it ran (the engine removed what it wrote, of which
 * it had counted `counted` bytes as copied): looks at the source again and copies what is there
 * now, as a copy started now would, up to {@link REPLACED_RETRIES} times; then, or when it is no
 * longer a regular file, fails.
 */
async function copyReplaced(
  ctx: CopyContext,
  src: string,
  dst: string,
  st: EntryStat,
  inPlace: boolean,
  attempt: number,
  counted: number,
): Promise<number> {
  const again = attempt + 1;
  const replaced = (how: string) =>
    makeFailure(
      "EAGAIN",
      src,
      dst,
      `the source was replaced while it was copied, ${how} (nothing was written)`,
      src,
    );
  if (again > REPLACED_RETRIES) throw replaced(`${again} times in a row`);
  const now = await staged("stat-source", ctx.engine.stat(src, !st.noFollow, ctx));
  if (now.kind !== "file") throw replaced("by something that is not a regular file");
  // The file's size in the total becomes the new one's, and the bytes the attempt counted as
  // copied are more work done (`bytes` never goes back): bytes and total meet at the end.
  ctx.progress.totalBytes += counted + now.size - st.size;
  return copyRegular(ctx, src, dst, now, inPlace, again);
}

/** {@link copyRegular}, once. */
function copyRegularOnce(
  ctx: CopyContext,
  src: string,
  dst: string,
  st: EntryStat,
  inPlace: boolean,
  attempt: number,
): Promise<number> {
  const engine = ctx.engine;
  const tmp = inPlace ? dst : tempPathFor(dst);
  startWriting(tmp); // until it is complete or removed (see copy_incomplete.ts)
  const perm = copiedFilePerm(st.perm);
  const blocks = () => engine.copyData(src, st, tmp, perm, ctx);
  const small = engine.copySmall?.(src, st, tmp, perm, ctx);
  const again = (counted: number) => copyReplaced(ctx, src, dst, st, inPlace, attempt, counted);
  if (small === undefined) return finishRegular(ctx, dst, tmp, st, perm, inPlace, blocks(), again);
  const data = small.then((bytes) => bytes >= 0 ? bytes : blocks());
  if (!inPlace || ctx.needsChmod(perm) || ctx.options.preserve) {
    return finishRegular(ctx, dst, tmp, st, perm, inPlace, data, again);
  }
  return data.then((bytes) => {
    if (ctx.signal.aborted) {
      return engine.unlink(tmp).catch(() => {}).then(() => {
        doneWriting(tmp);
        throw ctx.signal.reason; // as finishRegular's throwIfAborted would
      });
    }
    doneWriting(tmp);
    ctx.fileDone(dst, bytes, st.size);
    return bytes;
  }, (e) => {
    doneWriting(tmp); // the engine removed what it had written
    if (e instanceof SourceReplaced) return again(e.counted);
    throw e;
  });
}

/**
 * Sets the mode (`perm`) and times of `tmp` once `data` is in, renames it to `dst`, counts it
 * done; when the source was replaced meanwhile, copies it anew (`again`).
 */
async function finishRegular(
  ctx: CopyContext,
  dst: string,
  tmp: string,
  st: EntryStat,
  perm: number,
  inPlace: boolean,
  data: Promise<number>,
  again: (counted: number) => Promise<number>,
): Promise<number> {
  const engine = ctx.engine;
  let bytes: number;
  try {
    bytes = await data; // (a failure: the engine removed what it had written)
  } catch (e) {
    doneWriting(tmp);
    if (e instanceof SourceReplaced) return again(e.counted);
    throw e;
  }
  try {
    try {
      // (In a directory that existed, whose default ACL the copy's probe did not see: always.)
      if (!inPlace || ctx.needsChmod(perm)) {
        await staged("chmod", ctx.inflight.run(() => engine.setMode(tmp, perm)));
      }
      if (ctx.options.preserve) {
        await staged("utime", ctx.inflight.run(() => engine.setTimes(tmp, st)));
      }
      ctx.signal.throwIfAborted();
      if (!inPlace) await staged("rename", engine.rename(tmp, dst, !ctx.options.overwrite, ctx));
    } catch (e) {
      await engine.unlink(tmp).catch(() => {});
      throw e;
    }
    ctx.fileDone(dst, bytes, st.size);
    return bytes;
  } finally {
    doneWriting(tmp); // complete, or removed
  }
}

/**
 * The error to show for a failed copy of `src` to `dst`: an abort error when the caller's signal
 * fired, else {@link copyFailure}'s plain-words error naming the file.
 */
export function describeFailure(ctx: CopyContext, error: unknown, src: string, dst: string): Error {
  if (ctx.userAborted && (isAbort(error) || ctx.signal.aborted)) {
    return abortFailure(ctx.options.signal!, `copying '${src}' to '${dst}'`);
  }
  return copyFailure(error, src, dst);
}

/**
 * The fallback engine of the copy, for systems where io_uring cannot be set up (`EPERM` from a
 * seccomp filter or `kernel.io_uring_disabled`, `ENOSYS` on old kernels): the same operations
 * through Deno's own file APIs (`Deno.copyFile`, `Deno.mkdir`, ...), so the job still gets done
 * with the same rules (temporary name, modes, no clobbering without `overwrite`).
 *
 * The looks, the temporary file's exclusive creation, links and mode changes are made at once on
 * this thread (as the io_uring engine makes its `statx`, `renameat2` and `fchmodat`), up to
 * {@link STEPS_AT_ONCE} looks and creates between two turns of the event loop; the data moves off
 * it, by `Deno.copyFile`, and so does every open of a source (one swapped for a FIFO would wait
 * for a writer). Each of Deno's asynchronous calls is a round trip through its thread pool
 * (~30 µs here), and a small file's copy made eight of them: 1,000 files of 1–64 KiB copied one
 * after another took 308 ms, against 70 ms for `Deno.copyFile` alone; now ~130–170 ms.
 *
 * @module
 */

import { type Engine, type EngineContext, type EntryStat, kindOfMode } from "./copy_engine.ts";
import { codeOf, outOfDescriptors, staged, tagStage } from "./copy_errors.ts";

/**
 * Most looks and creates the engine makes at once on this thread between two of its calls on
 * Deno's thread pool settling (each settles on a turn of the event loop); past that, they go
 * through the pool too. 5,000 copies started together made all their creates in one turn (3.8 s
 * in one ext4 directory), and no timer, signal handler or abort ran meanwhile.
 */
export const STEPS_AT_ONCE = 64;

/** Steps made at once since one of the engine's thread-pool calls last settled. */
let stepsAtOnce = 0;

/** Whether the next step may be made at once (see {@link STEPS_AT_ONCE}); counts it if so. */
function mayStepAtOnce(): boolean {
  if (stepsAtOnce >= STEPS_AT_ONCE) return false;
  stepsAtOnce++;
  return true;
}

/** `p`, noting when it settles that the event loop turned (see {@link STEPS_AT_ONCE}). */
function pooled<T>(p: Promise<T>): Promise<T> {
  return p.finally(() => {
    stepsAtOnce = 0;
  });
}

/** `step()` as a promise: its result, or its exception as a rejection. */
function atOnce<T>(step: () => T): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (e) {
    return Promise.reject(e);
  }
}

function seconds(d: Date | null, fallback: number): number {
  return d ? d.getTime() / 1000 : fallback;
}

/** A `Deno.FileInfo` as the copy needs it. */
export function entryFromFileInfo(info: Deno.FileInfo, noFollow = false): EntryStat {
  const mode = info.mode ?? 0;
  const kind = info.isFile
    ? "file"
    : info.isDirectory
    ? "dir"
    : info.isSymlink
    ? "symlink"
    : kindOfMode(mode);
  const mtime = seconds(info.mtime, 0);
  return {
    kind,
    perm: mode & 0o7777,
    size: info.size,
    blocks: info.blocks ?? Math.ceil(info.size / 512),
    atime: seconds(info.atime, mtime),
    mtime,
    id: `${info.dev}:${info.ino}`,
    ino: info.ino ?? 0,
    btimeMs: info.birthtime?.getTime() ?? 0,
    noFollow,
  };
}

/** Copies with Deno's APIs; `reason` says why io_uring is not used. */
export class DenoEngine implements Engine {
  /** Always `"deno"`. */
  readonly name = "deno" as const;
  /** Why io_uring is not used. */
  readonly fallbackReason: string;

  /** An engine that remembers why it was chosen. */
  constructor(reason: string) {
    this.fallbackReason = reason;
  }

  /**
   * `Deno.statSync` or `Deno.lstatSync` (at once: see the module notes), as a promise; past
   * {@link STEPS_AT_ONCE}, `Deno.stat` or `Deno.lstat`.
   */
  stat(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat> {
    if (mayStepAtOnce()) return atOnce(() => this.statNow(path, follow));
    // (Within the copy's in-flight bound, as every look was before: a tree's walk looks at a whole
    // directory's entries at once.)
    return ctx.inflight.run(() => pooled(follow ? Deno.stat(path) : Deno.lstat(path)))
      .then((info) => entryFromFileInfo(info, !follow));
  }

  /** `Deno.statSync` / `Deno.lstatSync` of `path` (birth time to the ms). */
  statNow(path: string, follow: boolean): EntryStat {
    return follow ? entryFromFileInfo(Deno.statSync(path)) : entryFromFileInfo(Deno.lstatSync(path), true);
  }

  /** {@link DenoEngine.stat}: Deno's `stat` needs read permission, also on the destination. */
  statDest(path: string, follow: boolean, ctx: EngineContext): Promise<EntryStat> {
    return this.stat(path, follow, ctx);
  }

  /**
   * Creates `tmp` exclusively with `perm`, then lets `Deno.copyFile` (the kernel's
   * `copy_file_range`) fill it. Progress comes once per file; a stop takes effect between files.
   * `Deno.copyFile` also gives `tmp` the source's mode, so a source whose mode `perm` leaves bits
   * out of (setuid, setgid) is streamed instead, never to have them.
   */
  copyData(src: string, srcStat: EntryStat, tmp: string, perm: number, ctx: EngineContext): Promise<number> {
    return ctx.inflight.run(async () => {
      ctx.signal.throwIfAborted();
      const streamed = srcStat.perm !== perm;
      // (The source is opened off this thread: one swapped for a FIFO since it was looked at would
      // make its open wait for a writer.)
      const input = streamed ? await staged("open-source", Deno.open(src, { read: true })) : undefined;
      const options = { write: true, createNew: true, mode: perm };
      let output: Deno.FsFile;
      try {
        output = mayStepAtOnce() ? Deno.openSync(tmp, options) : await pooled(Deno.open(tmp, options));
      } catch (e) {
        input?.close();
        throw tagStage(e, "create");
      }
      if (!streamed) output.close();
      try {
        if (ctx.signal.aborted) {
          if (streamed) output.close(); // (pipeTo would have closed both)
          input?.close();
          ctx.signal.throwIfAborted(); // (stopped while the create waited for the thread pool)
        }
        // (pipeTo closes both files, also when it fails)
        await staged("copy-data", input ? input.readable.pipeTo(output.writable) : copyOpening(src, tmp));
        ctx.signal.throwIfAborted();
        const size = Deno.statSync(tmp).size;
        ctx.addBytes(size);
        return size;
      } catch (e) {
        await Deno.remove(tmp).catch(() => {});
        throw e;
      }
    });
  }

  /** `Deno.mkdir`. */
  mkdir(path: string, mode: number, ctx: EngineContext): Promise<void> {
    return ctx.inflight.run(() => Deno.mkdir(path, { mode }));
  }

  /** `Deno.symlink`. */
  symlink(target: string, path: string, ctx: EngineContext): Promise<void> {
    return ctx.inflight.run(() => Deno.symlink(target, path));
  }

  /** {@link renameNow} (at once: see the module notes), as a promise. */
  rename(from: string, to: string, noReplace: boolean, _ctx: EngineContext): Promise<void> {
    return atOnce(() => renameNow(from, to, noReplace));
  }

  /** `Deno.remove`. */
  unlink(path: string): Promise<void> {
    return Deno.remove(path);
  }

  /** `Deno.chmodSync` (at once: see the module notes), as a promise. */
  setMode(path: string, mode: number): Promise<void> {
    return atOnce(() => Deno.chmodSync(path, mode));
  }

  /** `Deno.utime`: to the millisecond. */
  setTimes(path: string, st: EntryStat): Promise<void> {
    return Deno.utime(path, st.atime, st.mtime);
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * `Deno.renameSync`; without replacing (`noReplace`), a hard link then an unlink (`link` fails
 * with `EEXIST` atomically), or where hard links are not supported a check then a rename.
 */
function renameNow(from: string, to: string, noReplace: boolean): void {
  if (!noReplace) return Deno.renameSync(from, to);
  try {
    Deno.linkSync(from, to);
  } catch (e) {
    const code = codeOf(e);
    if (code !== "EPERM" && code !== "EOPNOTSUPP" && code !== "EXDEV" && code !== "EMLINK") throw e;
    let exists = true;
    try {
      Deno.lstatSync(to);
    } catch {
      exists = false;
    }
    if (exists) {
      const error = new Deno.errors.AlreadyExists(`File exists (os error 17): rename '${from}' -> '${to}'`);
      throw Object.assign(error, { code: "EEXIST" });
    }
    return Deno.renameSync(from, to);
  }
  Deno.removeSync(from);
}

/**
 * `Deno.copyFile(src, dst)`, whose failures it tells apart (one call opens, reads and writes): a
 * run out of descriptors is an open's (the source's, which comes first), and so is any failure
 * of a source that is no longer a regular file (`Deno.copyFile` refuses others) or does not open
 * now (then the open's error, as when it was opened first); the rest are the copy's.
 */
async function copyOpening(src: string, dst: string): Promise<void> {
  try {
    await pooled(Deno.copyFile(src, dst));
  } catch (e) {
    if (outOfDescriptors(e)) throw tagStage(e, "open-source");
    let now: Deno.FileInfo;
    try {
      now = Deno.statSync(src);
    } catch (why) {
      throw tagStage(why, "open-source");
    }
    if (!now.isFile) throw tagStage(e, "open-source"); // (opening a FIFO again would wait for a writer)
    try {
      (await Deno.open(src, { read: true })).close();
    } catch (why) {
      throw tagStage(why, "open-source");
    }
    throw e;
  }
}

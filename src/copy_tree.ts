/**
 * `copyTree`: a directory tree copied through io_uring, many files at once under one global
 * in-flight budget.
 *
 * @module
 */

import { trimSlashes } from "./copy.ts";
import { Semaphore } from "./copy_budget.ts";
import { CopyContext } from "./copy_context.ts";
import { directRefusalSide } from "./copy_direct.ts";
import { DESCRIPTOR_SHARES, type Engine, type EntryStat } from "./copy_engine.ts";
import {
  abortFailure,
  codeOf,
  copyFailure,
  CopyTreeError,
  dirnameOf,
  isDescribed,
  makeFailure,
  outOfDescriptors,
  specialDestFailure,
  staged,
  tagStage,
} from "./copy_errors.ts";
import { type CopyResult, type CopyTreeOptions, resolveCopyOptions } from "./copy_options.ts";
import { copyRegular, describeFailure, refusalOf, tempPathFor } from "./copy_regular.ts";
import { shedKeptPipes } from "./copy_shared_ring.ts";
import { checkAccess, checkCopyTargets, copyRootPath, toPath } from "./permissions.ts";

/** Directory listings read at once (each is a blocking call on Deno's thread pool). */
const READDIR_CONCURRENCY = 4;
/**
 * How long an entry that ran out of descriptors with nothing of the copy's left to give any back
 * waits before its one last try (see `TreeCopy.waitForDescriptors`).
 */
const DESCRIPTOR_GRACE_MS = 5;
/** Files found but not yet copied, at most; the walk waits beyond this (bounds memory). */
const MAX_PENDING_FILES = 16384;

/** A directory of the copy, finished (mode, times) after everything below it. */
interface DirRecord {
  dst: string;
  st: EntryStat;
  created: boolean;
}

/** Runs one `copyTree`. */
class TreeCopy {
  readonly ctx: CopyContext;
  readonly source: string;
  readonly dest: string;
  readonly errors: Error[] = [];
  first: Error | undefined;
  readonly dirs: DirRecord[] = [];
  /** File and symlink jobs started and not finished. */
  #outstanding = 0;
  #drained: (() => void) | undefined;
  /** The walk, waiting for a file slot (see {@link TreeCopy.walkNow}). */
  readonly #roomWaiters: (() => void)[] = [];
  /** File slots taken for good after running out of descriptors (see waitForDescriptors). */
  #withheld = 0;
  /**
   * How many file attempts and directory listings have ended (each gave back the descriptors it
   * held): a file that ran out of descriptors with no other file running tries again at once if
   * this moved while it ran (see waitForDescriptors).
   */
  #endings = 0;
  /** File attempts in progress (each may hold descriptors, and will give them back). */
  #running = 0;
  /** Files that ran out of descriptors while only listings held some, waiting for one to end. */
  readonly #listingEnded: ((freed: boolean) => void)[] = [];
  /** Entries (by source path) that ran out of descriptors and tried once more after a wait. */
  readonly #graced = new Set<string>();
  readonly files: Semaphore;
  readonly pending = new Semaphore(MAX_PENDING_FILES);
  readonly listings = new Semaphore(READDIR_CONCURRENCY);
  /**
   * Look at source entries with a synchronous `statx` on this thread (io_uring's engine: a cached
   * `statx` is a few µs inline, where IORING_OP_STATX always goes to an io-wq worker thread, a
   * context switch and a wake-up per file; see {@link TreeCopy.walkNow}); Deno's engine lists
   * with the asynchronous `Deno.readDir` and looks at each entry in a promise of its own.
   */
  readonly syncStat: boolean;
  /** Device and inode of the destination's top directory, once made or found (see reachedDest). */
  destId: string | undefined;

  constructor(ctx: CopyContext, source: string, dest: string) {
    this.ctx = ctx;
    this.source = source;
    this.dest = dest;
    // One file in progress per slot of the budget: enough to keep it full with small files. With
    // a low `ulimit -n`, fewer: the files' share of the descriptors (see DESCRIPTOR_SHARES).
    this.files = new Semaphore(
      Math.min(ctx.options.queueDepth, Math.max(2, DESCRIPTOR_SHARES.files(ctx.descriptors))),
    );
    this.syncStat = ctx.engine.name === "io_uring";
  }

  /** Records a failure: stops everything, or (`continueOnError`) keeps it for the end. */
  fail(error: unknown, src: string, dst: string): void {
    const ctx = this.ctx;
    if (ctx.userAborted || ctx.stopping) return; // a stop: the errors that follow are its echo
    const described = isDescribed(error) ? error as Error : describeFailure(ctx, error, src, dst);
    // The destination's file system refusing O_DIRECT refuses it for every file of the tree: stop
    // rather than say it per file. A source's refusal is that file's (a source tree may span file
    // systems, and inline data or fs-verity are per file): with continueOnError, the rest goes on.
    if (ctx.options.continueOnError && directRefusalSide(error) !== "destination") {
      this.errors.push(described);
    } else {
      this.first = described;
      ctx.stop(described);
    }
  }

  /**
   * Creates directory `dst` for source directory `src`; records it; false when it failed. An
   * existing directory is merged into; a symlink to one only at the `top` (the destination the
   * caller named): below it, a symlink someone put in the destination tree would send the copy's
   * files wherever it points (GNU `cp -r` refuses it too).
   */
  async makeDir(
    src: string,
    dst: string,
    st: EntryStat,
    mayExist: boolean,
    top = false,
  ): Promise<DirRecord | null> {
    const ctx = this.ctx;
    try {
      await staged("mkdir", ctx.engine.mkdir(dst, (st.perm | 0o700) & 0o7777, ctx));
      const record = { dst, st, created: true };
      this.dirs.push(record);
      ctx.dirs++;
      return record;
    } catch (e) {
      // With `overwrite`, a directory made meanwhile by someone else (another copy into the same
      // place) is merged into, as one that was there from the start.
      if (codeOf(e) !== "EEXIST" || !(mayExist || ctx.options.overwrite)) {
        this.fail(e, src, dst);
        return null;
      }
    }
    // It exists: merge into it if it is a directory. Below the top, the name is looked at itself
    // first (one stat for a directory; a symlink is then followed, to say what it leads to).
    try {
      const here = top ? undefined : await ctx.existingDest(dst, false);
      const link = here?.kind === "symlink";
      const existing = top || link ? await ctx.existingDest(dst, true) : here;
      if (existing === undefined) {
        // EEXIST from mkdir, ENOENT through the name: a symlink that leads nowhere.
        throw makeFailure(
          "EEXIST",
          src,
          dst,
          `destination '${dst}' is a symlink to nothing, not a directory`,
          dst,
        );
      }
      if (existing.kind !== "dir") {
        throw makeFailure("ENOTDIR", src, dst, `destination '${dst}' exists and is not a directory`, dst);
      }
      if (existing.id === st.id) {
        // A symlink in the destination that leads back into the source: merging through it
        // would copy every file onto itself.
        throw makeFailure("EINVAL", src, dst, `'${src}' and '${dst}' are the same directory`, dst);
      }
      if (link) {
        throw makeFailure(
          "ENOTDIR",
          src,
          dst,
          `destination '${dst}' is a symlink, not a directory (a copy does not merge through one)`,
          dst,
        );
      }
    } catch (e) {
      this.fail(e, src, dst);
      return null;
    }
    // Directories made below one that existed inherit its default ACL, which the probe of the top
    // did not see (see CopyContext.learnUmask): from now on every mode is set.
    if (!top) ctx.umask = undefined;
    const record = { dst, st, created: false };
    this.dirs.push(record);
    ctx.dirs++;
    return record;
  }

  /**
   * Whether source directory `src` (looked at: `st`) is the destination's top directory, reached
   * through another path (a bind mount): then the copy would walk into its own output without
   * end; it fails there as a copy into itself (the rest goes on with `continueOnError`).
   */
  reachedDest(src: string, dst: string, st: EntryStat): boolean {
    if (st.id !== this.destId) return false;
    this.fail(
      makeFailure(
        "EINVAL",
        src,
        dst,
        `cannot copy a directory into itself ('${src}' is '${this.dest}')`,
        dst,
      ),
      src,
      dst,
    );
    return true;
  }

  /** Walks source directory `src` into `dst` (which exists now); `merging`: `dst` existed. */
  async walk(src: string, dst: string, merging: boolean): Promise<void> {
    const ctx = this.ctx;
    if (ctx.stopping) return;
    if (this.syncStat) return this.walkNow(src, dst, merging);
    const names: string[] = [];
    await this.listings.acquire();
    const startedAt = this.#endings;
    let failure: unknown;
    try {
      for await (const entry of Deno.readDir(src)) names.push(entry.name);
    } catch (e) {
      failure = e;
    } finally {
      this.listings.release();
      // A listing that could not open its directory gave nothing back.
      const freed = failure === undefined || !outOfDescriptors(failure);
      if (freed) this.#endings++;
      for (const wake of this.#listingEnded.splice(0)) wake(freed);
    }
    if (failure !== undefined) {
      if (await this.waitForDescriptors(failure, 0, startedAt, src)) return this.walk(src, dst, merging);
      this.fail(tagStage(failure, "readdir"), src, dst);
      return;
    }
    const named = this.nameable(names, src, dst);
    await Promise.all(named.map((name) => this.entry(`${src}/${name}`, `${dst}/${name}`, merging)));
  }

  /**
   * The walk when entries are looked at synchronously (`syncStat`): the directory is listed at
   * once (`Deno.readDirSync`) and its entries looked at in order with `statx`; each file is
   * started as soon as a file slot is free (the walk waits for one rather than queueing a job
   * per file), other entries go through {@link TreeCopy.entryOf}, and subdirectories are walked
   * after the files, one after the other (depth first). The walk itself makes no promise per
   * entry.
   */
  async walkNow(src: string, dst: string, merging: boolean): Promise<void> {
    const ctx = this.ctx;
    const names: string[] = [];
    const startedAt = this.#endings;
    try {
      for (const entry of Deno.readDirSync(src)) names.push(entry.name);
      this.#endings++;
    } catch (e) {
      if (!outOfDescriptors(e)) this.#endings++; // (one that could not open gave nothing back)
      if (await this.waitForDescriptors(e, 0, startedAt, src)) return this.walkNow(src, dst, merging);
      this.fail(tagStage(e, "readdir"), src, dst);
      return;
    }
    const dirs: [string, string, EntryStat][] = [];
    const others: Promise<void>[] = [];
    for (const name of this.nameable(names, src, dst)) {
      if (ctx.stopping) break;
      // A long listing of entries that need no waiting must still let the event loop turn
      // (Ctrl-C, progress, timers).
      const breather = ctx.breather();
      if (breather !== undefined) await breather;
      const s = `${src}/${name}`, d = `${dst}/${name}`;
      let st: EntryStat;
      try {
        st = lstatNow(ctx.engine, s);
      } catch (e) {
        this.fail(e, s, d);
        continue;
      }
      if (st.kind === "dir") {
        if (!this.reachedDest(s, d, st)) dirs.push([s, d, st]);
      } else if (st.kind === "file" && !merging) {
        ctx.progress.totalFiles++;
        ctx.progress.totalBytes += st.size;
        while (!this.startFileNow(s, d, st) && !ctx.stopping) await this.#room();
      } else {
        others.push(this.entryOf(s, d, st, merging));
      }
    }
    for (const [s, d, st] of dirs) {
      if (ctx.stopping) break;
      const record = await this.makeDir(s, d, st, merging);
      if (record) await this.walkNow(s, d, !record.created);
    }
    await Promise.all(others);
  }

  /**
   * The names of a listing of `src` that name their entries. Deno decodes file names as UTF-8,
   * replacing bytes that are not with U+FFFD, so a name that is not valid UTF-8 comes back as a
   * name of nothing (or of another entry, whose name is that replacement text). Each such entry
   * is a failure that says why, rather than "does not exist" or, worse, a second copy of the
   * other entry with nothing reported.
   */
  nameable(names: string[], src: string, dst: string): string[] {
    if (!names.some((name) => name.includes("\uFFFD"))) return names;
    const seen = new Set<string>();
    return names.filter((name) => {
      if (!name.includes("\uFFFD")) return true;
      const s = `${src}/${name}`;
      if (!seen.has(name) && existsAsNamed(s)) {
        seen.add(name);
        return true;
      }
      this.fail(
        makeFailure(
          "EILSEQ",
          s,
          `${dst}/${name}`,
          `a file name in '${src}' is not valid UTF-8 (shown with U+FFFD for the bytes that are not), ` +
            "and Deno's directory listing cannot name it",
          s,
        ),
        s,
        `${dst}/${name}`,
      );
      return false;
    });
  }

  /** Resolves when a file or job started by the walk has finished (see {@link TreeCopy.walkNow}). */
  #room(): Promise<void> {
    return new Promise((resolve) => {
      this.#roomWaiters.push(resolve);
    });
  }

  /**
   * Handles one entry of a directory being walked by {@link TreeCopy.walk} (Deno's engine, which
   * looks at each entry in a promise of its own; io_uring's walks in {@link TreeCopy.walkNow}).
   */
  async entry(src: string, dst: string, merging: boolean): Promise<void> {
    const ctx = this.ctx;
    if (ctx.stopping) return;
    let st: EntryStat;
    try {
      st = await staged("stat-source", ctx.engine.stat(src, false, ctx));
    } catch (e) {
      this.fail(e, src, dst);
      return;
    }
    await this.entryOf(src, dst, st, merging);
  }

  /** Handles entry `src` (looked at: `st`) of a directory being walked. */
  async entryOf(src: string, dst: string, st: EntryStat, merging: boolean): Promise<void> {
    const ctx = this.ctx;
    switch (st.kind) {
      case "dir": {
        if (this.reachedDest(src, dst, st)) return;
        const record = await this.makeDir(src, dst, st, merging);
        if (record) await this.walk(src, dst, !record.created);
        return;
      }
      case "file":
        ctx.progress.totalFiles++;
        ctx.progress.totalBytes += st.size;
        if (!merging && this.startFileNow(src, dst, st)) return;
        await this.schedule(() => this.copyFileEntry(src, dst, st, merging), src, dst);
        return;
      case "symlink":
        ctx.progress.totalFiles++;
        await this.schedule(() => this.copySymlink(src, dst), src, dst);
        return;
      default:
        this.fail(
          makeFailure(
            "EOPNOTSUPP",
            src,
            dst,
            `'${src}' is not a regular file, directory or symlink${
              ctx.options.continueOnError ? " (skipped)" : ""
            }`,
            src,
          ),
          src,
          dst,
        );
    }
  }

  /** Starts `job` (for `src` → `dst`) once a file slot is free, without waiting for it to finish. */
  async schedule(job: () => Promise<void>, src: string, dst: string): Promise<void> {
    if (!this.pending.tryAcquire()) await this.pending.acquire();
    this.#outstanding++;
    void (async () => {
      try {
        if (!this.files.tryAcquire()) await this.files.acquire();
        try {
          if (!this.ctx.stopping) await job();
        } finally {
          this.files.release();
          this.#endings++;
        }
      } catch (e) {
        this.fail(e, src, dst); // jobs report their own failures; this is a safety net
      } finally {
        this.pending.release();
        this.#outstanding--;
        if (this.#outstanding === 0) this.#drained?.();
        this.#roomWaiters.shift()?.();
      }
    })();
  }

  /**
   * Starts copying `src` into a directory this copy created (nothing can be in the way) when a
   * pending slot and a file slot are free now: the same job as {@link TreeCopy.schedule} and
   * {@link TreeCopy.copyFileEntry}, without their promises. Returns false (nothing started) when
   * it would have to wait.
   */
  startFileNow(src: string, dst: string, st: EntryStat): boolean {
    if (this.ctx.stopping || !this.pending.tryAcquire()) return false;
    if (!this.files.tryAcquire()) {
      this.pending.release();
      return false;
    }
    this.#outstanding++;
    this.#copyInPlace(src, dst, st);
    return true;
  }

  /** Copies a file started by {@link TreeCopy.startFileNow} (its slots held) and settles it. */
  #copyInPlace(src: string, dst: string, st: EntryStat): void {
    const startedAt = this.#endings;
    this.#running++;
    let copying: Promise<number>;
    try {
      copying = copyRegular(this.ctx, src, dst, st, true);
    } catch (e) {
      copying = Promise.reject(e);
    }
    copying.then(() => {
      this.#running--;
      this.#fileFinished();
    }, (e) => this.#fileFailed(e, src, dst, st, startedAt));
  }

  /**
   * A file started by {@link TreeCopy.startFileNow} failed with `error`: it is tried again (its
   * slots still held) when descriptors ran out and others will come back, else reported.
   */
  #fileFailed(error: unknown, src: string, dst: string, st: EntryStat, startedAt: number): void {
    void this.waitForDescriptors(error, 1, startedAt, src).then((again) => {
      if (again) return this.#copyInPlace(src, dst, st);
      this.fail(error, src, dst);
      this.#fileFinished();
    });
  }

  /**
   * When `error` says the process has no file descriptor left (`EMFILE`; `ENFILE`: the whole
   * system) while other files of this copy are in progress and will give theirs back: keeps one
   * file fewer in progress from now on, waits for a file slot (one of them finishing), and
   * resolves true (try again). With no other file in progress, resolves true at once if
   * descriptors were given back while the failed attempt ran, else once a directory listing in
   * progress has ended having held one, else once per entry (`what`: its source path) after 5 ms,
   * else false. `self` is 1 when the caller holds a file slot (it is one of the files in
   * progress; its slot goes to pay for the smaller number), 0 for the walk; `startedAt` is the
   * count of endings when the failed attempt began. The limit (`RLIMIT_NOFILE`, often 1024, less in some containers) is shared with the
   * rest of the process, so the copy cannot size itself to it in advance.
   */
  async waitForDescriptors(
    error: unknown,
    self: 0 | 1,
    startedAt = this.#endings,
    what = "",
  ): Promise<boolean> {
    // (A file's failed attempt has closed what it opened: that is an ending too.)
    const freedMeanwhile = this.#endings > startedAt;
    if (self === 1) {
      this.#endings++;
      this.#running--;
    }
    if (!outOfDescriptors(error) || this.ctx.stopping) return false;
    // The pipes the engine keeps between files go first (it makes no new ones): try again at once
    // when that freed some and no file in progress will give any back.
    // (And the pipes kept for later copies on the main thread's shared copy ring: idle, but the
    // process's descriptors all the same.)
    const shed = (this.ctx.engine.shedPipes?.() ?? 0) + shedKeptPipes();
    const files = this.files;
    // (Counted, not worked out from the slots: the walk withholds a slot before it has it.)
    const others = this.#running;
    if (others <= 0) {
      // Nobody running will give any descriptor back, but another file (now waiting for a slot)
      // or a listing may have given its back while this attempt ran: then the attempt's failure
      // is stale. Or a listing in progress holds one: wait for it to end. Each such try needs a
      // new ending, so this cannot go round for ever.
      if (shed > 0 || freedMeanwhile) return true;
      // (A listing that fails as this did gives nothing back: wait for another, if any.)
      while (this.listings.free < this.listings.limit) {
        const freed = await new Promise<boolean>((resolve) => this.#listingEnded.push(resolve));
        if (freed) return !this.ctx.stopping;
      }
      // Deno closes a descriptor on its own thread, a moment after the call that used it has
      // settled: an ending just counted may not have given it back yet. Once per entry, after a
      // short wait, try again.
      if (this.#graced.has(what)) return false;
      this.#graced.add(what);
      await new Promise((resolve) => setTimeout(resolve, DESCRIPTOR_GRACE_MS));
      return !this.ctx.stopping;
    }
    if (self === 1) {
      if (files.limit - this.#withheld > 1) this.#withheld++; // this slot is not given back
      else files.release();
    } else if (files.limit - this.#withheld > 1) {
      this.#withheld++;
      void files.acquire(); // the next slot given back is kept
    }
    await files.acquire();
    if (self === 0) files.release(); // the walk needs no slot of its own: this was the wait
    return !this.ctx.stopping;
  }

  /** Gives back the slots of a file started by {@link TreeCopy.startFileNow}. */
  readonly #fileFinished = (): void => {
    this.files.release();
    this.#endings++;
    this.pending.release();
    this.#outstanding--;
    if (this.#outstanding === 0) this.#drained?.();
    this.#roomWaiters.shift()?.();
  };

  /** Resolves once every started job has finished. */
  drain(): Promise<void> {
    if (this.#outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#drained = resolve;
    });
  }

  async copyFileEntry(src: string, dst: string, st: EntryStat, merging: boolean): Promise<void> {
    const ctx = this.ctx;
    const startedAt = this.#endings;
    this.#running++;
    try {
      if (merging) {
        // The destination directory existed: say early if the file is in the way.
        const existing = await ctx.existingDest(dst, false);
        const sameFile = `'${src}' and '${dst}' are the same file`;
        const refused = existing && refusalOf(existing, st, src, dst, ctx.options.overwrite, sameFile);
        if (refused) throw refused;
      }
      // In a directory this copy created, nothing can be in the way: write in place.
      await copyRegular(ctx, src, dst, st, !merging);
      this.#running--;
    } catch (e) {
      if (await this.waitForDescriptors(e, 1, startedAt, src)) {
        return this.copyFileEntry(src, dst, st, merging);
      }
      this.fail(e, src, dst);
    }
  }

  async copySymlink(src: string, dst: string): Promise<void> {
    const ctx = this.ctx;
    try {
      const target = await staged("readlink", ctx.inflight.run(() => Deno.readLink(src)));
      try {
        await staged("symlink", ctx.engine.symlink(target, dst, ctx));
      } catch (e) {
        // (Also in a directory this copy made: another copy into the same place may have made it.)
        if (codeOf(e) !== "EEXIST") throw e;
        const existing = await staged("stat-dest", ctx.engine.statDest(dst, false, ctx));
        // (Before "use overwrite": overwrite would not replace it either.)
        if (existing.kind === "other") throw specialDestFailure(src, dst);
        if (!ctx.options.overwrite) throw e;
        // Replace what is there (unless it is a directory) atomically: a new link, renamed over.
        if (existing.kind === "dir") {
          throw makeFailure("EISDIR", src, dst, `destination '${dst}' is a directory`, dst);
        }
        const tmp = tempPathFor(dst);
        await staged("symlink", ctx.engine.symlink(target, tmp, ctx));
        try {
          await staged("rename", ctx.engine.rename(tmp, dst, false, ctx));
        } catch (e2) {
          await ctx.engine.unlink(tmp).catch(() => {});
          throw e2;
        }
      }
      ctx.fileDone(dst, 0);
    } catch (e) {
      this.fail(e, src, dst);
    }
  }

  /** Sets the final mode (and times) of the directories, deepest first. */
  async finishDirs(): Promise<void> {
    const ctx = this.ctx;
    const preserve = ctx.options.preserve;
    for (let i = this.dirs.length - 1; i >= 0; i--) {
      if (ctx.stopping) return;
      const { dst, st, created } = this.dirs[i];
      try {
        // mkdirat applies the permission and sticky bits less the umask, never setuid/setgid;
        // Deno.mkdir (the fallback engine) the permission bits only.
        const kept = ctx.engine.name === "io_uring" ? 0o1777 : 0o777;
        const madeWith = (st.perm | 0o700) & kept & ~(ctx.umask ?? 0o777);
        if ((created && (ctx.umask === undefined || madeWith !== st.perm)) || preserve) {
          await staged("chmod", ctx.inflight.run(() => ctx.engine.setMode(dst, st.perm)));
        }
        if (preserve) await staged("utime", ctx.inflight.run(() => ctx.engine.setTimes(dst, st)));
      } catch (e) {
        this.fail(e, dst, dst);
      }
    }
  }
}

/**
 * Whether an entry named exactly `path` exists (`lstat`; a failure other than `ENOENT` or
 * `ENAMETOOLONG` says yes: each U+FFFD is three bytes, so a lossy name can outgrow the limit).
 */
function existsAsNamed(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    return !(e instanceof Deno.errors.NotFound) && codeOf(e) !== "ENAMETOOLONG";
  }
}

/** `lstat` of `src` now (see {@link Engine.statNow}), tagged `stat-source` when it fails. */
function lstatNow(engine: Engine, src: string): EntryStat {
  try {
    return engine.statNow(src, false, true); // an entry of a directory the walk looked at
  } catch (e) {
    throw tagStage(e, "stat-source");
  }
}

async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.realPath(path);
  } catch {
    return null;
  }
}

/**
 * Device and inode of directory `path` (symlinks followed), or `undefined` when it cannot be had
 * without asking: Deno's own `stat` (the fallback engine's) prompts for read permission in a
 * terminal, so a path the program may not read is passed over. (The io_uring engine checks
 * permissions itself, and a destination's write permission will do.)
 */
async function quietId(ctx: CopyContext, path: string): Promise<string | undefined> {
  if (ctx.engine.name !== "io_uring" && checkAccess("stat", "read", path) !== null) return undefined;
  return (await ctx.existingDest(path, true).catch(() => undefined))?.id;
}

/**
 * Whether the directory with id `id` is `dir` or one of its parents, compared by device and inode:
 * a bind mount (or any second path to the same directory) hides a copy into itself from the
 * path comparison. Parents that cannot be looked at (see quietId) are passed over.
 */
async function underDirectory(ctx: CopyContext, id: string, dir: string): Promise<boolean> {
  for (let d = dir;; d = dirnameOf(d)) {
    if (await quietId(ctx, d) === id) return true;
    if (d === "/" || !d.includes("/")) return false;
  }
}

/**
 * Copies the directory `src` (a symlink to one is followed) to `dst` and resolves with
 * `{ files, bytes, ms, dirs, engine }` (`files` counts regular files and symlinks).
 *
 * The source is walked depth first, one directory listed at a time with `Deno.readDirSync`
 * (io_uring has no `getdents`), its entries looked at with a synchronous `statx` on this thread
 * (io_uring's `statx` always goes to a kernel worker thread), times to the nanosecond, while its
 * files are already being copied: the walk starts each file as soon as one of the
 * `queueDepth` file slots is free. Directories are created, regular files copied as by `copyFile`,
 * symlinks recreated as symlinks with the same target (not followed). Modes are kept (directories get theirs after their contents are
 * written); `preserve: true` also keeps the times of files and directories (not of symlinks).
 * Hard links are copied as separate files; devices, FIFOs and sockets are failures ("not a
 * regular file, directory or symlink"). Every file shares one in-flight budget of `queueDepth`
 * operations, with up to `queueDepth` files in progress at once, so thousands of small files
 * overlap their open/read/write/close. `onProgress` reports bytes and files done and the totals
 * found so far (`scanning` is true until the walk ends).
 *
 * `dst` may be missing (it is created) or an existing directory (the trees are merged; a file
 * already there is an `AlreadyExists` failure unless `overwrite`). A `dst` inside `src` is
 * refused, and so is a merge into a directory or file that is the source's own (a destination
 * symlink that leads back into the source, a hard link). A name that is not valid UTF-8 is a
 * failure (`EILSEQ`): Deno's directory listing cannot name it. The files and pipes in progress
 * stay within `ulimit -n` (see the README).
 *
 * Failures: without `continueOnError` the first failure stops the copy, which rejects with that
 * error (as `copyFile` words them, naming the file). With `continueOnError` everything else is
 * still copied and the promise then rejects with a {@link CopyTreeError}: an `AggregateError`
 * whose `errors` hold one error per failed entry and whose `result` counts what was copied. An
 * abort (`signal`) rejects with an `AbortError`.
 *
 * Incomplete files: in a directory the copy created itself, a file is written under its own name
 * (created exclusively) and removed when it cannot be completed (failure or abort); that saves a
 * rename per file, and only a process killed outright (SIGKILL, power loss) can leave a partial
 * file (`Deno.exit()` mid-copy removes it first), or an uncaught error that ends the program.
 * In a directory that already existed, each file goes through a temporary name
 * (`.NAME.uring-tmp-XXXXXXXX`) renamed into place when complete, so an existing file is replaced
 * atomically or not at all. Directories created before a failure stay (possibly incomplete).
 * A source file replaced (renamed over) while it is copied is noticed by its inode at the end of
 * its copy, and copied anew as it is now: a copy is one version whole, never mixed.
 * Since 5.17 (`mkdirat`, `symlinkat`: 5.15; files opened and used in one chain:
 * `IORING_FEAT_LINKED_FILE`); on older kernels it falls back as `copyFile` does.
 */
export async function copyTree(
  src: string | URL,
  dst: string | URL,
  options?: CopyTreeOptions,
): Promise<CopyResult> {
  // `.` and `..` resolved in the text, as Deno does (see copyRootPath): what the permission
  // checks see is what the kernel gets.
  const source = trimSlashes(copyRootPath(toPath(src, "src")));
  const dest = trimSlashes(copyRootPath(toPath(dst, "dst")));
  const opts = resolveCopyOptions(options);
  if (opts.signal?.aborted) throw abortFailure(opts.signal, `copying '${source}' to '${dest}'`);
  let ctx: CopyContext;
  try {
    ctx = new CopyContext(opts, true); // (descriptors: counting those open pays off for a tree)
  } catch (e) {
    throw copyFailure(e, source, dest); // (io_uring_setup's EMFILE, say: the error names the tree)
  }
  const tree = new TreeCopy(ctx, source, dest);
  try {
    let root: EntryStat;
    let merging = false;
    try {
      root = await staged("stat-source", ctx.engine.stat(source, true, ctx));
      if (root.kind !== "dir") {
        throw makeFailure(
          "ENOTDIR",
          source,
          dest,
          `source '${source}' is not a directory (use copyFile)`,
          source,
        );
      }
      const existing = await ctx.existingDest(dest, true);
      if (existing !== undefined && existing.kind !== "dir") {
        throw makeFailure(
          "ENOTDIR",
          source,
          dest,
          `destination '${dest}' exists and is not a directory`,
          dest,
        );
      }
      merging = existing !== undefined;
      tree.destId = existing?.id;
      const special = checkCopyTargets(source, dest);
      if (special !== null) throw special;
      // Refuse to copy a directory into itself (the walk would never end).
      const realSource = await realPathOrNull(source);
      const base = dest.slice(dest.lastIndexOf("/") + 1);
      const realDest = merging
        ? await realPathOrNull(dest)
        : await realPathOrNull(dirnameOf(dest)).then((d) =>
          d === null ? null : `${d === "/" ? "" : d}/${base}`
        );
      if (realSource !== null && realDest !== null) {
        if (
          realDest === realSource || realDest.startsWith(realSource === "/" ? "/" : `${realSource}/`) ||
          await underDirectory(ctx, root.id, merging ? realDest : dirnameOf(realDest))
        ) {
          throw makeFailure("EINVAL", source, dest, "cannot copy a directory into itself", dest);
        }
      }
    } catch (e) {
      throw isDescribed(e) ? e : describeFailure(ctx, e, source, dest);
    }
    ctx.progress.scanning = true;
    ctx.report();
    if (merging) {
      tree.dirs.push({ dst: dest, st: root, created: false });
      ctx.dirs++;
    } else {
      // May exist: made meanwhile by someone else (another copy into it), it is merged into, as
      // if it had been there when looked at.
      const record = await tree.makeDir(source, dest, root, true, true);
      if (record === null) {
        if (ctx.userAborted) {
          throw withFailures(abortFailure(opts.signal!, `copying '${source}' to '${dest}'`), tree.errors);
        }
        throw tree.first ?? tree.errors[0];
      }
      merging = !record.created;
      tree.destId = await quietId(ctx, dest);
    }
    await ctx.learnUmask(dest);
    await tree.walk(source, dest, merging);
    ctx.progress.scanning = false;
    ctx.report();
    await tree.drain();
    await tree.finishDirs();
    if (ctx.userAborted) {
      throw withFailures(abortFailure(opts.signal!, `copying '${source}' to '${dest}'`), tree.errors);
    }
    if (tree.first) throw tree.first;
    const progress = ctx.progressError();
    if (progress !== undefined) throw progress;
    const result: CopyResult = ctx.result();
    if (tree.errors.length > 0) throw new CopyTreeError(tree.errors, result, source, dest);
    return result;
  } catch (e) {
    // Stopped by onProgress (its stop made whatever failed after it): what it threw.
    throw tree.first === undefined && !ctx.userAborted ? ctx.progressError() ?? e : e;
  } finally {
    await ctx.close();
  }
}

/**
 * `error` (a copy's `AbortError`) with the failures `continueOnError` collected before the abort
 * as its `errors` (as a {@link CopyTreeError} holds them), when there were any: an interrupted
 * copy does not lose them.
 */
function withFailures(error: DOMException, failures: readonly Error[]): DOMException {
  if (failures.length > 0) {
    Object.defineProperty(error, "errors", {
      value: [...failures],
      configurable: true,
      writable: true,
      enumerable: false,
    });
  }
  return error;
}

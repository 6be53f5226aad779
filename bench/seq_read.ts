/**
 * Sequential `await file.readAt(buf, pos)` of 4 KiB blocks (queue depth 1) from a cached 256 MiB
 * file through `Uring`, against Deno's own file API: `await file.seek()` + `await file.read()`
 * (the peer), the synchronous `seekSync` + `readSync`, and `await file.read()` alone.
 * Run: `deno task bench:seq-read`.
 *
 * @module
 */

import { Uring, type UringFile } from "../mod.ts";
import { alternate, cachedFile, printTable, type Row, SECONDS, sqThreadSettled, warm } from "./_lib.ts";
import { READ_FILE, READ_FILE_SIZE } from "./read.ts";

const BS = 4096;
const blocks = READ_FILE_SIZE / BS;

/** Awaited `readAt` calls per second, one at a time, for `seconds`. */
export async function ourSequential(file: UringFile, seconds: number): Promise<number> {
  const buf = new Uint8Array(BS);
  let ops = 0, block = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  for (;;) {
    const n = await file.readAt(buf, block * BS);
    if (n !== BS) throw new Error(`short read: ${n}`);
    block = (block + 1) % blocks;
    if ((++ops & 255) === 0 && performance.now() >= end) break;
  }
  return ops / ((performance.now() - t0) / 1000);
}

/** Deno: `await seek` + `await read` per block, for `seconds`. */
async function denoAsync(file: Deno.FsFile, seconds: number): Promise<number> {
  const buf = new Uint8Array(BS);
  let ops = 0, block = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  for (;;) {
    await file.seek(block * BS, Deno.SeekMode.Start);
    const n = await file.read(buf);
    if (n !== BS) throw new Error(`short read: ${n}`);
    block = (block + 1) % blocks;
    if ((++ops & 255) === 0 && performance.now() >= end) break;
  }
  return ops / ((performance.now() - t0) / 1000);
}

/**
 * Deno: `await read` per block without a seek (the file's position moves on by itself; one seek
 * back to the start per pass over the file), for `seconds`: what the peer costs without
 * its second awaited call.
 */
async function denoAsyncNoSeek(file: Deno.FsFile, seconds: number): Promise<number> {
  const buf = new Uint8Array(BS);
  let ops = 0, block = 0;
  await file.seek(0, Deno.SeekMode.Start);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  for (;;) {
    const n = await file.read(buf);
    if (n !== BS) throw new Error(`short read: ${n}`);
    block = (block + 1) % blocks;
    if (block === 0) await file.seek(0, Deno.SeekMode.Start);
    if ((++ops & 255) === 0 && performance.now() >= end) break;
  }
  return ops / ((performance.now() - t0) / 1000);
}

/** Deno: `seekSync` + `readSync` per block, for `seconds`. */
function denoSync(file: Deno.FsFile, seconds: number): number {
  const buf = new Uint8Array(BS);
  let ops = 0, block = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  for (;;) {
    file.seekSync(block * BS, Deno.SeekMode.Start);
    const n = file.readSync(buf);
    if (n !== BS) throw new Error(`short read: ${n}`);
    block = (block + 1) % blocks;
    if ((++ops & 255) === 0 && performance.now() >= end) break;
  }
  return ops / ((performance.now() - t0) / 1000);
}

if (import.meta.main) {
  const path = cachedFile(READ_FILE, READ_FILE_SIZE, "pin");
  const deno = await Deno.open(path);
  const rows: Row[] = [];
  for (const sqpoll of [true, false]) {
    const uring = new Uring({ entries: 64, sqpoll });
    const file = await uring.open(path, { read: true });
    await ourSequential(file, 0.3);
    await denoAsync(deno, 0.3);
    await denoAsyncNoSeek(deno, 0.3);
    denoSync(deno, 0.3);
    const m = await alternate(
      () => ourSequential(file, SECONDS),
      [
        () => denoAsync(deno, SECONDS),
        () => denoSync(deno, SECONDS),
        () => denoAsyncNoSeek(deno, SECONDS),
      ],
      undefined,
      async () => {
        warm(path);
        await sqThreadSettled(uring.ring);
      },
    );
    await file.close();
    await uring.close();
    const mode = uring.sqpoll ? "SQPOLL" : "no SQPOLL";
    rows.push({
      work: `sequential await readAt (QD 1), 4 KiB cached, ${mode}`,
      ours: m.ours,
      peer: "Deno await file.seek + await file.read",
      theirs: m.peers[0],
      unit: "reads/s",
      better: "higher",
      target: { op: ">=", value: 20 },
    });
    const others = [
      "Deno file.seekSync + file.readSync",
      "Deno await file.read (no seek: the position moves on)",
    ];
    others.forEach((peer, i) =>
      rows.push({
        work: `same, ${mode}`,
        ours: m.ours,
        peer,
        theirs: m.peers[i + 1],
        unit: "reads/s",
        better: "higher",
      })
    );
  }
  deno.close();
  printTable("Sequential 4 KiB reads, one at a time: Uring vs Deno's file API", rows);
}

/**
 * 4 KiB random reads of a cached 256 MiB file through `UringFile.readAt` promises, 32 in flight,
 * against fio's io_uring engine with `--sqthread_poll=1` (`--invalidate=0`, best of plain and
 * batched submission/completion). Run: `deno task bench:uring-read`.
 *
 * 32 asynchronous loops each await one `readAt` at a random aligned offset, then issue the next.
 * The file is opened with `fixed: true` (registered), as fio registers its files under SQPOLL.
 *
 * @module
 */

import { Uring, type UringFile } from "../mod.ts";
import {
  alternate,
  cachedFile,
  findFio,
  fioIops,
  printTable,
  randomBlocks,
  type Row,
  SECONDS,
  sqThreadSettled,
  warm,
} from "./_lib.ts";
import { READ_FILE, READ_FILE_SIZE } from "./read.ts";

const BS = 4096;
const QD = 32;

const nextBlock = randomBlocks(0x2545f491);

/** Reads per second with `qd` awaiting loops over one `UringFile`, for `seconds`. */
export async function ourPromiseReads(
  file: UringFile,
  size: number,
  qd: number,
  seconds: number,
): Promise<number> {
  const blocks = Math.floor(size / BS);
  const arena = new ArrayBuffer(qd * BS);
  let ops = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let stop = false;
  const worker = async (i: number) => {
    const buf = new Uint8Array(arena, i * BS, BS);
    while (!stop) {
      const n = await file.readAt(buf, nextBlock(blocks) * BS);
      if (n !== BS) throw new Error(`short read: ${n}`);
      if ((++ops & 1023) === 0 && performance.now() >= end) stop = true;
    }
  };
  await Promise.all(Array.from({ length: qd }, (_, i) => worker(i)));
  return ops / ((performance.now() - t0) / 1000);
}

if (import.meta.main) {
  const path = cachedFile(READ_FILE, READ_FILE_SIZE, "pin");
  const fio = await findFio();
  const batched = [
    "--iodepth_batch_submit=32",
    "--iodepth_batch_complete_min=1",
    "--iodepth_batch_complete_max=32",
  ];
  const fioSq = [[], batched, [...batched, "--fixedbufs"]].map((extra) => () =>
    fioIops(fio, { file: path, iodepth: QD, bs: BS, seconds: SECONDS, sqpoll: true, extra })
  );
  const rows: Row[] = [];
  for (const sqpoll of [true, false]) {
    const uring = new Uring({ entries: 64, sqpoll });
    // Registered in the ring's file table (`fixed: true`), as fio registers its files whenever
    // it runs with --sqthread_poll (fio_ioring_init): the kernel then skips the fd lookup and
    // reference count per read (+7% here under SQPOLL).
    const file = await uring.open(path, { read: true, fixed: true });
    if (!file.fixed) throw new Error("the file could not be registered");
    await ourPromiseReads(file, READ_FILE_SIZE, QD, 0.3); // warm up the JIT
    const m = await alternate(
      () => ourPromiseReads(file, READ_FILE_SIZE, QD, SECONDS),
      fioSq,
      undefined,
      async () => {
        warm(path);
        await sqThreadSettled(uring.ring);
      },
    );
    await file.close();
    await uring.close();
    const ok = m.peers.filter((x): x is number => x !== null);
    rows.push({
      work: `4 KiB cached random reads, UringFile.readAt promises (fixed file), ${QD} in flight, ${
        uring.sqpoll ? "SQPOLL" : "no SQPOLL"
      }`,
      ours: m.ours,
      peer: "fio io_uring SQPOLL (best of plain/batched/batched with fixed buffers)",
      theirs: ok.length ? Math.max(...ok) : null,
      unit: "IOPS",
      better: "higher",
      target: { op: ">=", value: 0.8 },
      missing: "missing" in fio ? fio.missing : undefined,
    });
  }
  printTable("Random reads through Uring promises vs fio", rows);
}

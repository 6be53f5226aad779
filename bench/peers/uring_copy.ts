/**
 * The library's `copyFile` in the shape of `deno_copy.ts`'s tree peer, run as its own process so
 * its start-up is timed too (what a Deno script that copies many files with this module does):
 *
 *   deno run -A bench/peers/uring_copy.ts tree SRC DST N   a tree: mkdir + copyFile, N in flight
 *
 * The walk is `deno_copy.ts`'s, word for word; only the copy call differs (`copyFile` with its
 * defaults: the copies share the thread's copy ring).
 *
 * @module
 */

import { copyFile } from "../../mod.ts";

async function copyTree(src: string, dst: string, inFlight: number): Promise<number> {
  // Walk first (directories are created as they are found), then copy with a bounded pool.
  const files: [string, string][] = [];
  const walk = async (from: string, to: string) => {
    await Deno.mkdir(to);
    for await (const e of Deno.readDir(from)) {
      const a = `${from}/${e.name}`, b = `${to}/${e.name}`;
      if (e.isDirectory) await walk(a, b);
      else if (e.isFile) files.push([a, b]);
    }
  };
  await walk(src, dst);
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const [a, b] = files[next++];
      await copyFile(a, b);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return files.length;
}

if (import.meta.main) {
  const [mode, src, dst, n] = Deno.args;
  if (mode === "tree") {
    await copyTree(src, dst, Number(n ?? 32));
  } else {
    console.error("usage: uring_copy.ts tree SRC DST [N]");
    Deno.exit(2);
  }
}

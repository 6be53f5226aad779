/**
 * Deno peers of the copy benches, run as their own process so their start-up is timed too:
 *
 *   deno run -A bench/peers/deno_copy.ts copyFile SRC DST   one Deno.copyFile
 *   deno run -A bench/peers/deno_copy.ts pipeTo SRC DST     src.readable.pipeTo(dst.writable)
 *   deno run -A bench/peers/deno_copy.ts tree SRC DST N     a tree: mkdir + Deno.copyFile, N in flight
 *   deno run -A bench/peers/deno_copy.ts uringTree SRC DST N   the same with this module's copyFile
 *
 * `uringTree` is what a Deno script that copies many files with this module waits for: the walk
 * is `tree`'s, only the copy call differs (`copyFile` with its defaults), and the module is
 * imported in that mode alone, so the other modes' start-up stays Deno's own.
 *
 * @module
 */

async function copyTree(
  src: string,
  dst: string,
  inFlight: number,
  copy: (from: string, to: string) => Promise<unknown>,
): Promise<number> {
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
      await copy(a, b);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return files.length;
}

if (import.meta.main) {
  const [mode, src, dst, n] = Deno.args;
  if (mode === "copyFile") {
    await Deno.copyFile(src, dst);
  } else if (mode === "pipeTo") {
    const from = await Deno.open(src);
    const to = await Deno.open(dst, { write: true, create: true, truncate: true });
    await from.readable.pipeTo(to.writable);
  } else if (mode === "tree") {
    await copyTree(src, dst, Number(n ?? 32), Deno.copyFile);
  } else if (mode === "uringTree") {
    const { copyFile } = await import("../../mod.ts");
    await copyTree(src, dst, Number(n ?? 32), copyFile);
  } else {
    console.error("usage: deno_copy.ts copyFile|pipeTo|tree|uringTree SRC DST [N]");
    Deno.exit(2);
  }
}

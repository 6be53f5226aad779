/**
 * Copies every regular file of a directory into another with `copyFile`, `--jobs` at a time
 * (default 32), and says how many files and bytes, in how long. The copies share one ring (the
 * main thread's: no `uring` given), and a copy that fails is reported without stopping the rest.
 * A loop that awaited one copy after another would wait for each file's round trip through the
 * kernel in turn; a few dozen in flight keep both the ring and the CPU busy.
 *
 *   deno run --allow-ffi --allow-read --allow-write --allow-env examples/copy_many.ts FROM TO [--jobs N]
 */
import { parseArgs } from "node:util";
import { copyFile } from "../mod.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  options: { jobs: { type: "string", default: "32" } },
  allowPositionals: true,
});
const jobs = Number(values.jobs);
if (positionals.length !== 2 || !Number.isInteger(jobs) || jobs < 1) {
  console.error("usage: copy_many.ts FROM TO [--jobs N]   (N: a positive integer, default 32)");
  Deno.exit(2);
}
const [from, to] = positionals;
await Deno.mkdir(to, { recursive: true });
const names: string[] = [];
for await (const entry of Deno.readDir(from)) if (entry.isFile) names.push(entry.name);
names.sort();

const started = performance.now();
let next = 0, bytes = 0;
const failures: string[] = [];
const worker = async () => {
  while (next < names.length) {
    const name = names[next++];
    try {
      const result = await copyFile(`${from}/${name}`, `${to}/${name}`);
      bytes += result.bytes; // (after the await: \`bytes += await ...\` would add to a stale total)
    } catch (e) {
      failures.push((e as Error).message);
    }
  }
};
await Promise.all(Array.from({ length: Math.min(jobs, names.length) }, worker));
const ms = performance.now() - started;
console.log(
  `copied ${names.length - failures.length} of ${names.length} files (${bytes} bytes) in ${
    ms.toFixed(1)
  } ms, ` +
    `${jobs} at a time`,
);
for (const failure of failures) console.error(failure);
if (failures.length > 0) Deno.exit(1);

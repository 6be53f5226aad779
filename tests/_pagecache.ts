/**
 * Page-cache residency of a file, for tests that check direct I/O leaves nothing cached:
 * `fincore` from util-linux. Tests skip with one line when it is missing.
 */

/** How much of a file is in the page cache. */
export interface Residency {
  /** Resident pages. */
  pages: number;
  /** Resident bytes. */
  bytes: number;
  /** The file's size. */
  size: number;
}

/** Why residency cannot be measured here (no fincore), or `undefined` when it can. */
export const fincoreUnavailableReason: string | undefined = (() => {
  try {
    const out = new Deno.Command("fincore", { args: ["--version"], stdout: "piped", stderr: "piped" })
      .outputSync();
    return out.success ? undefined : "fincore --version failed";
  } catch (e) {
    return `fincore (util-linux) is not available: ${(e as Error).message}`;
  }
})();

let announced = false;
/** True when page-cache tests must be skipped; says why once. */
export function skipPageCache(): boolean {
  if (fincoreUnavailableReason !== undefined && !announced) {
    announced = true;
    console.log(`SKIP page-cache tests: ${fincoreUnavailableReason}`);
  }
  return fincoreUnavailableReason !== undefined;
}

/** How many pages of `path` are resident in the page cache (`fincore --bytes --raw`). */
export function residency(path: string): Residency {
  const out = new Deno.Command("fincore", {
    args: ["--bytes", "--noheadings", "--raw", "--output", "RES,PAGES,SIZE", "--", path],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) throw new Error(`fincore ${path} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  const m = /^(\d+)\s+(\d+)\s+(\d+)$/.exec(text);
  if (!m) throw new Error(`unexpected fincore output for ${path}: ${JSON.stringify(text)}`);
  return { bytes: Number(m[1]), pages: Number(m[2]), size: Number(m[3]) };
}

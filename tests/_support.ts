/**
 * Shared test support: detects whether io_uring is usable here (tests skip with one clear line
 * when it is not) and runs kernel tests once per ring configuration: with and without SQPOLL,
 * on the C helper and on the libc fallback.
 */

import { type Backend, IoUring, IoUringError, type IoUringOptions } from "../mod.ts";

/** Why io_uring cannot be used here, or `undefined` when it can. */
export const unavailableReason: string | undefined = (() => {
  try {
    new IoUring(1, { sqpoll: false }).close();
    return undefined;
  } catch (e) {
    // As the copies treat setup failures: io_uring refused (EPERM, EACCES: sysctl, seccomp, an
    // LSM), absent (ENOSYS), or no locked memory for even one entry (ENOMEM: `ulimit -l`).
    if (
      e instanceof IoUringError &&
      (e.code === "ENOSYS" || e.code === "EPERM" || e.code === "EACCES" || e.code === "ENOMEM")
    ) return e.message;
    throw e;
  }
})();

let announced = false;
/** True when kernel tests must be skipped; says why once. */
export function skipKernel(): boolean {
  if (unavailableReason !== undefined && !announced) {
    announced = true;
    console.log(`SKIP kernel tests: io_uring is unavailable here: ${unavailableReason}`);
  }
  return unavailableReason !== undefined;
}

/** One ring configuration a kernel test runs under. */
export interface RingConfig {
  /** Label used in test names. */
  name: string;
  /** Options to pass to `new IoUring`. */
  options: IoUringOptions;
  /** Whether the configuration uses SQPOLL. */
  sqpoll: boolean;
  /** The system-layer backend. */
  backend: Backend;
}

/** Every configuration: SQPOLL on/off × helper/libc. */
export const CONFIGS: readonly RingConfig[] = [
  { name: "sqpoll/helper", options: { sqpoll: true, backend: "helper" }, sqpoll: true, backend: "helper" },
  {
    name: "nosqpoll/helper",
    options: { sqpoll: false, backend: "helper" },
    sqpoll: false,
    backend: "helper",
  },
  { name: "sqpoll/libc", options: { sqpoll: true, backend: "libc" }, sqpoll: true, backend: "libc" },
  { name: "nosqpoll/libc", options: { sqpoll: false, backend: "libc" }, sqpoll: false, backend: "libc" },
];

/**
 * Registers `fn` as one Deno test per configuration in {@link CONFIGS}; each is skipped (with
 * the reason printed once) when io_uring is unavailable.
 */
export function ringTest(name: string, fn: (config: RingConfig) => void | Promise<void>): void {
  for (const config of CONFIGS) {
    Deno.test({
      name: `${name} [${config.name}]`,
      ignore: skipKernel(),
      fn: () => fn(config),
    });
  }
}

/** A fresh temporary directory, removed by the returned disposer. */
export function tempDir(): { path: string } & Disposable {
  const path = Deno.makeTempDirSync({ prefix: "uring-test-" });
  return {
    path,
    [Symbol.dispose]() {
      Deno.removeSync(path, { recursive: true });
    },
  };
}

/** True when `strace` runs here (the strace cross-checks are skipped otherwise). */
export function straceWorks(): boolean {
  try {
    return new Deno.Command("strace", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Whether user `nobody` could read `path` (every directory above it searchable by others). */
function othersCanRead(path: string): boolean {
  try {
    if ((Deno.statSync(path).mode! & 0o004) === 0) return false;
    for (
      let dir = path.slice(0, path.lastIndexOf("/"));
      dir !== "";
      dir = dir.slice(0, dir.lastIndexOf("/"))
    ) {
      if ((Deno.statSync(dir).mode! & 0o001) === 0) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Why {@link runAsNobody} cannot run here, or null: it needs root (to become `nobody`: resource
 * limits bind only an unprivileged user), `prlimit` and `setpriv`, and a module and Deno that
 * `nobody` can read.
 */
export function whyNoNobodyChild(): string | null {
  if (Deno.uid() !== 0) return "needs root (to run a child as nobody)";
  const mod = new URL("../mod.ts", import.meta.url).pathname;
  if (!othersCanRead(mod) || !othersCanRead(Deno.execPath())) {
    return "the module or Deno is not readable by nobody";
  }
  for (const tool of ["prlimit", "setpriv"]) {
    try {
      new Deno.Command(tool, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    } catch {
      return `no ${tool}`;
    }
  }
  return null;
}

/**
 * Runs `code` (a script) with `deno run --allow-ffi --allow-read --allow-write --allow-env` as
 * user `nobody` without capabilities, under `prlimit` with `limits` (e.g. `--nproc=60:60`).
 */
export async function runAsNobody(
  limits: string[],
  code: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.chmodSync(dir, 0o777);
    const script = `${dir}/child.ts`;
    Deno.writeTextFileSync(script, code);
    Deno.chmodSync(script, 0o644);
    const out = await new Deno.Command("prlimit", {
      args: [
        ...limits,
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        Deno.execPath(),
        "run",
        "--allow-ffi",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        script,
      ],
      cwd: dir,
      env: { HOME: dir, DENO_DIR: `${dir}/deno`, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Skips (true) when the kernel lacks one of `ops`, saying which. */
export function lacks(ring: IoUring, config: RingConfig, ...ops: number[]): boolean {
  const probe = ring.probe();
  const missing = ops.filter((op) => !probe.supports(op));
  if (missing.length === 0) return false;
  console.log(`SKIP [${config.name}]: this kernel lacks opcodes ${missing.join(", ")}`);
  return true;
}

/** Whether the running kernel is older than `version` ("6.7"): the test then says so and skips. */
export function older(version: string): boolean {
  const [major, minor] = Deno.osRelease().split(/[.-]/).map(Number);
  const [wantMajor, wantMinor] = version.split(".").map(Number);
  if (major > wantMajor || (major === wantMajor && minor >= wantMinor)) return false;
  console.log(`skipped: needs Linux ${version}, this is ${Deno.osRelease()}`);
  return true;
}

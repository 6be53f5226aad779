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
    if (e instanceof IoUringError && (e.code === "ENOSYS" || e.code === "EPERM")) return e.message;
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

/**
 * The result of `IORING_REGISTER_PROBE`: which opcodes the running kernel supports.
 *
 * @module
 */

import { IO_URING_OP_SUPPORTED, OPCODE_NAMES, PROBE_HEADER_SIZE, PROBE_OP_SIZE } from "./abi.ts";

/** Which io_uring opcodes this kernel supports. Since 5.6. */
export class Probe {
  /** The highest opcode number the kernel knows. */
  readonly lastOp: number;
  readonly #supported: Set<number>;

  /** Decodes a `struct io_uring_probe` the kernel filled (internal: `IoUring.probe()`). */
  constructor(buf: Uint8Array) {
    this.lastOp = buf[0];
    const opsLen = buf[1];
    const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#supported = new Set();
    for (let i = 0; i < opsLen; i++) {
      const at = PROBE_HEADER_SIZE + i * PROBE_OP_SIZE;
      if (v.getUint16(at + 2, true) & IO_URING_OP_SUPPORTED) this.#supported.add(buf[at]);
    }
  }

  /** True when opcode `op` (an `IORING_OP_*` value) is supported. */
  supports(op: number): boolean {
    return this.#supported.has(op);
  }

  /** The names of the supported opcodes this module knows, in opcode order. */
  get names(): string[] {
    return [...this.#supported].sort((a, b) => a - b).map((op) => OPCODE_NAMES[op] ?? `OP_${op}`);
  }
}

/**
 * {@link Msghdr}: a `struct msghdr` for `prepSendmsg` and `prepRecvmsg`.
 *
 * @module
 */

import { MSGHDR, MSGHDR_SIZE, SOCKADDR_STORAGE_SIZE } from "./abi.ts";
import { addressOf, byteLengthOf, checkBuffer, shown } from "./memory.ts";
import {
  checkSocketAddress,
  lengthToSend,
  linkSocketAddressLength,
  nameLengthWritten,
  type SocketAddress,
} from "./sockaddr.ts";
import { checkIovecsUnchanged, Iovecs } from "./structs.ts";

const TWO_32 = 0x1_0000_0000;

/** Internal access for the prep helpers (see the class's static block). */
let prepare: (msg: Msghdr, receive: boolean, what: string) => void;

/** What a {@link Msghdr} holds besides its data buffers. */
export interface MsghdrOptions {
  /**
   * The peer: for `sendmsg`, where a datagram goes (unconnected sockets); for `recvmsg`, an
   * empty `new SocketAddress()` the kernel fills with the sender's address.
   */
  name?: SocketAddress;
  /** Ancillary (control) data: to send, or room for what is received (`SCM_RIGHTS`, ...). */
  control?: ArrayBufferView;
}

/**
 * A `struct msghdr` over an {@link Iovecs} (the data), an optional {@link SocketAddress} (the
 * peer) and an optional control buffer, in memory of its own. It keeps all of them referenced:
 * hold the `Msghdr` until the CQE. Give one to one operation at a time: `prepRecvmsg` resets the
 * lengths the kernel writes back, and the kernel writes them as the receive completes. Since 5.3.
 */
export class Msghdr {
  // Private, so the struct the kernel reads and writes cannot be swapped for a smaller array.
  readonly #bytes = new Uint8Array(MSGHDR_SIZE);
  readonly #view = new DataView(this.#bytes.buffer);
  readonly #iovecs: Iovecs;
  readonly #name: SocketAddress | null;
  readonly #control: ArrayBufferView | null;
  /** The control buffer's length when this was built (a buffer shrunk since is refused). */
  readonly #controlLength: number;

  /**
   * The name's length as a receive left it: what the kernel wrote into `msg_namelen`, or 0 while
   * it still holds the room it was given (128, more than any address takes): a receive in flight,
   * or one that failed, wrote no name.
   */
  readonly #nameLengthNow = (): number => nameLengthWritten(this.#view.getUint32(MSGHDR.namelen, true));

  static {
    prepare = (msg, receive, what) => msg.#prepare(receive, what);
  }

  /** Builds the struct: the data goes to or from `iovecs`; see {@link MsghdrOptions}. */
  constructor(iovecs: Iovecs, options: MsghdrOptions = {}) {
    if (!(iovecs instanceof Iovecs)) {
      throw new TypeError(`iovecs must be an Iovecs (new Iovecs([buf, ...])), got ${shown(iovecs)}`);
    }
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`options must be an object, got ${shown(options)}`);
    }
    const { name, control } = options;
    if (name !== undefined) checkSocketAddress(name, "name");
    if (control !== undefined) checkBuffer(control, "control");
    this.#iovecs = iovecs;
    this.#name = name ?? null;
    this.#control = control ?? null;
    this.#controlLength = control === undefined ? 0 : byteLengthOf(control);
    this.#setPointer(MSGHDR.name, name === undefined ? 0 : addressOf(name.bytes));
    this.#setPointer(MSGHDR.iov, addressOf(iovecs.bytes));
    this.#setPointer(MSGHDR.iovlen, iovecs.length);
    this.#setPointer(
      MSGHDR.control,
      control === undefined || this.#controlLength === 0 ? 0 : addressOf(control),
    );
    this.#prepare(false, "Msghdr");
  }

  /** The struct handed to the kernel (56 bytes). */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /** The data buffers. */
  get iovecs(): Iovecs {
    return this.#iovecs;
  }

  /**
   * The peer's address, or null. Once this is prepared for a `recvmsg` the address reports the
   * length the kernel writes (`msg_namelen`): after the receive it is the sender, or empty
   * (family 0) when the kernel wrote no address.
   */
  get name(): SocketAddress | null {
    return this.#name;
  }

  /** The control buffer, or null. */
  get control(): ArrayBufferView | null {
    return this.#control;
  }

  /** `msg_namelen`: the name's length as sent, or as the kernel wrote it after a `recvmsg`. */
  get nameLength(): number {
    return this.#view.getUint32(MSGHDR.namelen, true);
  }

  /** `msg_controllen`: the control data's length as sent, or as received after a `recvmsg`. */
  get controlLength(): number {
    return this.#getPointer(MSGHDR.controllen);
  }

  /** `msg_flags` after a `recvmsg`: `MSG_TRUNC`, `MSG_CTRUNC`, ... (0 before). */
  get flags(): number {
    return this.#view.getInt32(MSGHDR.flags, true);
  }

  /**
   * Sets the lengths the kernel reads (for a send: the name's and control data's own; for a
   * receive: the room in each) and clears `msg_flags`, after checking that no buffer was detached
   * or shrunk since the struct was built.
   */
  #prepare(receive: boolean, what: string): void {
    checkIovecsUnchanged(this.#iovecs, what);
    const control = this.#control;
    if (control !== null && byteLengthOf(control) < this.#controlLength) {
      throw new TypeError(
        `${what}: the control buffer was detached or shrunk after the Msghdr was built ` +
          `(the kernel would use its old address and length): build a new Msghdr`,
      );
    }
    const name = this.#name;
    const nameLength = name === null ? 0 : receive ? SOCKADDR_STORAGE_SIZE : lengthToSend(name);
    this.#view.setUint32(MSGHDR.namelen, Math.min(nameLength, SOCKADDR_STORAGE_SIZE), true);
    // A receive writes the sender's length into msg_namelen: from now on the name reports that
    // (as empty until the kernel writes one: see #nameLengthNow). Its bytes stay as they are: a
    // send or bind of the same address earlier in the batch may still hand them to the kernel.
    if (receive && name !== null) linkSocketAddressLength(name, this.#nameLengthNow);
    this.#setPointer(MSGHDR.controllen, this.#controlLength);
    this.#view.setUint32(MSGHDR.flags, 0, true);
  }

  #setPointer(at: number, value: number): void {
    this.#view.setUint32(at, value >>> 0, true);
    this.#view.setUint32(at + 4, Math.floor(value / TWO_32), true);
  }

  #getPointer(at: number): number {
    return this.#view.getUint32(at, true) + this.#view.getUint32(at + 4, true) * TWO_32;
  }
}

/**
 * Readies `msg` for a send (`receive` false) or a receive (see `Msghdr.#prepare`); `what` names
 * the prep for its errors (internal).
 */
export function prepareMsghdr(msg: Msghdr, receive: boolean, what: string): void {
  if (!(msg instanceof Msghdr)) {
    throw new TypeError(`msg must be a Msghdr (new Msghdr(iovecs, { name, control })), got ${shown(msg)}`);
  }
  prepare(msg, receive, what);
}

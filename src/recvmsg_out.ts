/**
 * {@link RecvmsgOut}: the layout of the buffers a multishot `recvmsg` fills
 * (`prepRecvmsgMultishot`), and a reader for each one.
 *
 * @module
 */

import { MSGHDR, MSGHDR_SIZE, RECVMSG_OUT, RECVMSG_OUT_SIZE, SOCKADDR_STORAGE_SIZE } from "./abi.ts";
import { checkU32, shown } from "./memory.ts";
import { nameLengthWord, SocketAddress } from "./sockaddr.ts";

/** Most room a layout may ask for ancillary data: the kernel sums the sizes in an `int`. */
const MAX_CONTROL_ROOM = 0x7fff_0000;

/** The room a {@link RecvmsgOut} keeps in each buffer, before the payload. */
export interface RecvmsgOutOptions {
  /**
   * Room for the sender's address: `true` (the default) for any address (128 bytes), `false`
   * for none, or a number of bytes from 0 to 128.
   */
  name?: boolean | number;
  /** Room for ancillary data (`SCM_RIGHTS`, `IP_PKTINFO`, ...) in bytes; 0 (the default) for none. */
  control?: number;
}

/**
 * How a multishot `recvmsg` lays out each provided buffer it fills (`struct io_uring_recvmsg_out`
 * as liburing's `io_uring_recvmsg_*` helpers read it), and a reader for one such buffer. Each
 * buffer starts with a 16-byte header (the sender address's length, the ancillary data's length,
 * the datagram's length and the `MSG_*` flags), then `nameRoom` bytes for the address,
 * `controlRoom` bytes for ancillary data, then as much of the payload as fits; the CQE's `res` is
 * the bytes used. {@link RecvmsgOut.parse} reads one (no allocation); `name`, `control` and
 * `payload` then show its parts. The struct the kernel reads (`bytes`, a `struct msghdr` with
 * the two room sizes and no buffers) is read when the operation is issued; one `RecvmsgOut` may
 * serve several operations, and parse their buffers one at a time. Since 6.0.
 */
export class RecvmsgOut {
  /** Bytes kept in each buffer for the sender's address (0 to 128). */
  readonly nameRoom: number;
  /** Bytes kept in each buffer for ancillary data. */
  readonly controlRoom: number;
  /**
   * Where the payload starts in each buffer: 16 + `nameRoom` + `controlRoom`. A buffer must be
   * at least this long (else the receive fails with `-EFAULT`).
   */
  readonly payloadOffset: number;
  /** The sender address's length the kernel reported (it may exceed `nameRoom`: then cut short). */
  nameLength = 0;
  /** The ancillary data's length, as received into `controlRoom` (`MSG_CTRUNC` in `flags` when cut). */
  controlLength = 0;
  /**
   * The payload's length as the socket reported it: with `MSG_TRUNC` among the receive's flags,
   * a datagram's whole length (more than `payloadBytes` when it was cut short); else the bytes
   * received.
   */
  payloadLength = 0;
  /** The bytes of payload in the buffer: the CQE's `res` less `payloadOffset`. */
  payloadBytes = 0;
  /** The receive's `MSG_*` flags: `MSG_TRUNC` when the payload did not fit, `MSG_CTRUNC`, ... */
  flags = 0;
  // Private, so the struct the kernel reads cannot be swapped for a smaller array.
  readonly #bytes = new Uint8Array(MSGHDR_SIZE);
  /** The buffer last parsed. */
  #buffer: Uint8Array | null = null;

  /** A layout with `options`' room for the address and ancillary data. */
  constructor(options: RecvmsgOutOptions = {}) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`options must be an object, got ${shown(options)}`);
    }
    const { name = true, control = 0 } = options;
    let nameRoom: number;
    if (typeof name === "boolean") nameRoom = name ? SOCKADDR_STORAGE_SIZE : 0;
    else {
      checkU32(name, "name", SOCKADDR_STORAGE_SIZE);
      nameRoom = name;
    }
    checkU32(control, "control", MAX_CONTROL_ROOM);
    this.nameRoom = nameRoom;
    this.controlRoom = control;
    this.payloadOffset = RECVMSG_OUT_SIZE + nameRoom + control;
    const header = new DataView(this.#bytes.buffer);
    header.setUint32(MSGHDR.namelen, nameRoom, true);
    header.setUint32(MSGHDR.controllen, control, true); // the high word stays 0
  }

  /** The `struct msghdr` handed to the kernel (56 bytes): the room sizes, no buffers. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /**
   * Reads the header of `buffer` (the provided buffer a CQE named, as `BufferRing.view` shows
   * it) whose first `res` bytes the kernel filled, and returns this reader. Throws a
   * `RangeError` when `res` is not a length that buffer can hold, or shorter than the layout (a
   * buffer this layout did not fill, or a failed CQE's `-errno`).
   */
  parse(buffer: Uint8Array, res: number): this {
    if (!(buffer instanceof Uint8Array)) {
      throw new TypeError(`buffer must be a Uint8Array (BufferRing.view(bid)), got ${shown(buffer)}`);
    }
    if (
      !(typeof res === "number" && Number.isInteger(res) && res >= this.payloadOffset &&
        res <= buffer.byteLength)
    ) {
      throw new RangeError(
        `res must be the bytes the kernel filled: from ${this.payloadOffset} (this layout's header, address ` +
          `and control room) to the buffer's ${buffer.byteLength}, got ${shown(res)}` +
          (typeof res === "number" && res < 0 ? " (a failed receive: -errno)" : ""),
      );
    }
    // (Read byte by byte, not through a DataView: a multishot receive hands out its buffers in
    // turn, and a view made per buffer seen allocated on nearly every call.)
    this.#buffer = buffer;
    this.nameLength = u32le(buffer, RECVMSG_OUT.namelen);
    this.controlLength = u32le(buffer, RECVMSG_OUT.controllen);
    this.payloadLength = u32le(buffer, RECVMSG_OUT.payloadlen);
    this.flags = u32le(buffer, RECVMSG_OUT.flags);
    this.payloadBytes = res - this.payloadOffset;
    return this;
  }

  /**
   * The sender's address from the buffer last parsed, written into `into` (a new
   * `SocketAddress` by default), whose length is then the reported one. Empty (family 0) when the
   * kernel gave none (a stream socket, an unnamed sender, or no `nameRoom`). Throws a
   * `RangeError` when the address did not fit in `nameRoom`: cut short, it is not the sender's
   * (a reply to a cut Unix path would go elsewhere).
   */
  name(into: SocketAddress = new SocketAddress()): SocketAddress {
    const buffer = this.#parsed();
    if (!(into instanceof SocketAddress)) {
      throw new TypeError(`into must be a SocketAddress, got ${shown(into)}`);
    }
    if (this.nameLength > this.nameRoom) {
      throw new RangeError(
        `the sender's address (${this.nameLength} bytes) did not fit in the layout's nameRoom (${this.nameRoom}): ` +
          "it is cut short (give the layout room for it: name: true holds any)",
      );
    }
    const shownBytes = this.nameLength;
    const storage = into.bytes;
    storage.fill(0);
    storage.set(buffer.subarray(RECVMSG_OUT_SIZE, RECVMSG_OUT_SIZE + shownBytes));
    const length = nameLengthWord(into); // the length word the address reads
    const n = this.nameLength;
    length[0] = n & 0xff;
    length[1] = (n >>> 8) & 0xff;
    length[2] = (n >>> 16) & 0xff;
    length[3] = n >>> 24;
    return into;
  }

  /** The ancillary data received with the buffer last parsed (a view into it; empty when none). */
  control(): Uint8Array {
    const start = RECVMSG_OUT_SIZE + this.nameRoom;
    return this.#parsed().subarray(start, start + Math.min(this.controlLength, this.controlRoom));
  }

  /** The payload in the buffer last parsed: `payloadBytes` bytes (a view into it). */
  payload(): Uint8Array {
    return this.#parsed().subarray(this.payloadOffset, this.payloadOffset + this.payloadBytes);
  }

  #parsed(): Uint8Array {
    if (this.#buffer === null) throw new Error("RecvmsgOut: parse(buffer, res) a filled buffer first");
    return this.#buffer;
  }
}

/** The little-endian `u32` at `at` in `bytes`. */
function u32le(bytes: Uint8Array, at: number): number {
  return (bytes[at] | bytes[at + 1] << 8 | bytes[at + 2] << 16 | bytes[at + 3] << 24) >>> 0;
}

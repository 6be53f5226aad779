/**
 * {@link SocketAddress}: a socket address (`struct sockaddr_in`, `sockaddr_in6` or `sockaddr_un`)
 * in memory the kernel can read and write, for `prepConnect`, `prepBind`, `prepAccept` and a
 * `Msghdr`'s name.
 *
 * @module
 */

import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  SOCKADDR_IN6_SIZE,
  SOCKADDR_IN_SIZE,
  SOCKADDR_STORAGE_SIZE,
  SUN_PATH_SIZE,
} from "./abi.ts";
import { checkOptionsObject, checkU32, shown } from "./memory.ts";

/** Where the `socklen_t` the kernel reads and writes (accept's `addrlen`) sits, after the storage. */
const LENGTH_AT = SOCKADDR_STORAGE_SIZE;
/** Offset of `sun_path` in `struct sockaddr_un`. */
const SUN_PATH_AT = 2;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Internal access for the prep helpers and `Msghdr` (see the class's static block). */
let lengthWord: (address: SocketAddress, forAccept: boolean) => Uint8Array<ArrayBuffer>;
let linkLength: (address: SocketAddress, source: (() => number) | null) => void;
let madeUnspecified: (address: SocketAddress) => boolean;

/**
 * A socket address in its own memory: 128 bytes (`struct sockaddr_storage`) for the address,
 * followed by its length (a `socklen_t`). Build one with {@link SocketAddress.inet} or
 * {@link SocketAddress.unix} for `prepConnect`, `prepBind` and `sendmsg`; `new SocketAddress()`
 * is an empty one for `prepAccept` or a `recvmsg` to fill with the peer's address. Keep it
 * referenced until the CQE of the operation that uses it, and give one to one operation at a
 * time (the kernel writes into it).
 */
export class SocketAddress {
  // Private, so the memory the kernel reads and writes cannot be swapped for a smaller array.
  readonly #bytes = new Uint8Array(SOCKADDR_STORAGE_SIZE + 8);
  readonly #view = new DataView(this.#bytes.buffer);
  /** The storage alone, as {@link SocketAddress.bytes} hands it out (one view: a prep allocates nothing). */
  readonly #storage = this.#bytes.subarray(0, SOCKADDR_STORAGE_SIZE);
  /**
   * Where the length lives while this is a `Msghdr`'s name for a receive: the kernel writes it
   * into the msghdr (`msg_namelen`), not next to the address.
   */
  #lengthFrom: (() => number) | null = null;
  /** The `socklen_t` after the storage, as its own view (an accept's `addrlen` points at it). */
  readonly #lengthWord = this.#bytes.subarray(LENGTH_AT, LENGTH_AT + 4);
  /** Made by {@link SocketAddress.unspecified}: family 0 on purpose. */
  #unspecified = false;
  /**
   * Readied for an accept, whose success writes the peer's length over the room it was given
   * (128: more than any peer address takes). Until then the address reads as empty, not as the
   * previous peer or what it was built as; its bytes stay, since another SQE of the same batch
   * (a bind, say) may still be going to hand them to the kernel.
   */
  #awaitingAccept = false;

  static {
    lengthWord = (address, forAccept) => {
      address.#lengthFrom = null; // the length is written here again
      address.#awaitingAccept = forAccept;
      if (forAccept) address.#view.setUint32(LENGTH_AT, SOCKADDR_STORAGE_SIZE, true); // the room it has
      return address.#lengthWord;
    };
    linkLength = (address, source) => {
      address.#lengthFrom = source;
    };
    madeUnspecified = (address) => address.#unspecified;
  }

  /**
   * `AF_UNSPEC` on purpose: `prepConnect` with it dissolves a datagram socket's association
   * (and resets a TCP connection); `prepBind` with it on an IPv4 socket binds any address and
   * port. An empty `new SocketAddress()` is refused there, since it is most likely one the kernel
   * was to fill.
   */
  static unspecified(): SocketAddress {
    const address = new SocketAddress();
    address.#unspecified = true;
    address.#view.setUint32(LENGTH_AT, 16, true); // sizeof(struct sockaddr)
    return address;
  }

  /**
   * An empty address (family 0) whose length is the whole storage, ready for the kernel to fill
   * (`prepAccept`, a `Msghdr` for `recvmsg`).
   */
  constructor() {
    this.#view.setUint32(LENGTH_AT, SOCKADDR_STORAGE_SIZE, true);
  }

  /**
   * An IPv4 or IPv6 address and port: `hostname` is a numeric address (`"127.0.0.1"`, `"::1"`,
   * `"::ffff:10.0.0.1"`; names are not resolved: use `Deno.resolveDns` first). IPv6 takes an
   * optional `scopeId` (the interface index of a link-local address) and `flowInfo` (the traffic
   * class and flow label, in host order: up to 0x0fffffff).
   */
  static inet(
    hostname: string,
    port: number,
    options: { scopeId?: number; flowInfo?: number } = {},
  ): SocketAddress {
    if (typeof hostname !== "string") {
      throw new TypeError(`hostname must be a string, got ${shown(hostname)}`);
    }
    options ??= {}; // null: the defaults
    checkOptionsObject(options);
    checkU32(port, "port", 0xffff);
    const address = new SocketAddress();
    const bytes = address.#bytes, view = address.#view;
    const v4 = parseIPv4(hostname);
    if (v4 !== null) {
      if (options.scopeId !== undefined || options.flowInfo !== undefined) {
        throw new TypeError("scopeId and flowInfo are for IPv6 addresses only");
      }
      view.setUint16(0, AF_INET, true);
      view.setUint16(2, port, false); // network byte order
      bytes.set(v4, 4);
      view.setUint32(LENGTH_AT, SOCKADDR_IN_SIZE, true);
      return address;
    }
    const v6 = parseIPv6(hostname);
    if (v6 === null) {
      const bracketed = /^\[.*\]$/.test(hostname) ? " (without the brackets)" : "";
      const scoped = hostname.includes("%") ? " (give a scope as { scopeId })" : "";
      throw new TypeError(
        `hostname must be a numeric IPv4 or IPv6 address${bracketed}${scoped}, got ${
          JSON.stringify(hostname)
        }` +
          (bracketed || scoped ? "" : " (resolve names first, e.g. with Deno.resolveDns)"),
      );
    }
    const { scopeId = 0, flowInfo = 0 } = options;
    checkU32(scopeId, "scopeId");
    checkU32(flowInfo, "flowInfo", 0x0fffffff); // traffic class and flow label (IPV6_FLOWINFO_MASK)
    view.setUint16(0, AF_INET6, true);
    view.setUint16(2, port, false);
    view.setUint32(4, flowInfo, false);
    bytes.set(v6, 8);
    view.setUint32(24, scopeId, true);
    view.setUint32(LENGTH_AT, SOCKADDR_IN6_SIZE, true);
    return address;
  }

  /**
   * A Unix-domain socket's address: a path (at most 108 bytes of UTF-8), or an abstract name
   * when `path` starts with `"\0"` (Linux; no file is made). `""` is the unnamed address: `bind`
   * to it picks an abstract name (autobind).
   */
  static unix(path: string): SocketAddress {
    if (typeof path !== "string") throw new TypeError(`path must be a string, got ${shown(path)}`);
    const abstract = path.startsWith("\0");
    if (!abstract && path.includes("\0")) {
      throw new TypeError(`path contains a NUL byte: ${JSON.stringify(path)}`);
    }
    if (!path.isWellFormed()) {
      throw new TypeError(`path has a lone surrogate (no UTF-8 for it): ${JSON.stringify(path)}`);
    }
    const encoded = encoder.encode(path);
    // sun_path holds 108 bytes: a path with its NUL when it fits (the kernel ends one that fills
    // all 108 itself), an abstract name with none (every byte counts).
    if (encoded.length > SUN_PATH_SIZE) {
      throw new RangeError(`a Unix socket path holds at most ${SUN_PATH_SIZE} bytes, got ${encoded.length}`);
    }
    const address = new SocketAddress();
    address.#view.setUint16(0, AF_UNIX, true);
    address.#bytes.set(encoded, SUN_PATH_AT);
    const nul = abstract || path === "" || encoded.length === SUN_PATH_SIZE ? 0 : 1;
    const length = SUN_PATH_AT + encoded.length + nul;
    address.#view.setUint32(LENGTH_AT, length, true);
    return address;
  }

  /** The address bytes handed to the kernel (`struct sockaddr_storage`, 128 bytes). */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#storage;
  }

  /**
   * The address's length in bytes (`socklen_t`): its size as built, or what the kernel wrote
   * after an accept or a `recvmsg` (which may be more than 128 when it did not fit); 0 while an
   * accept it was given has not written one (in flight, or failed), so it reads as empty then.
   */
  get length(): number {
    const from = this.#lengthFrom;
    if (from !== null) return from();
    const length = this.#view.getUint32(LENGTH_AT, true);
    // An accept in flight, or one that failed, wrote no address: none to read (see #awaitingAccept).
    return this.#awaitingAccept ? nameLengthWritten(length) : length;
  }

  /**
   * The address family: `AF_INET`, `AF_INET6`, `AF_UNIX`, or 0 while empty (also when the kernel
   * wrote no address: a receive from a stream socket or an unnamed sender).
   */
  get family(): number {
    return this.length < 2 ? 0 : this.#view.getUint16(0, true);
  }

  /** The numeric host of an IPv4 or IPv6 address (IPv6 in RFC 5952 form), else `""`. */
  get hostname(): string {
    switch (this.#inetFamily()) {
      case AF_INET:
        return formatIPv4(this.#bytes.subarray(4, 8));
      case AF_INET6:
        return formatIPv6(this.#bytes.subarray(8, 24));
      default:
        return "";
    }
  }

  /** `AF_INET` or `AF_INET6` when the address is one, whole (as long as its struct), else 0. */
  #inetFamily(): number {
    const family = this.family, length = this.length;
    if (family === AF_INET) return length >= SOCKADDR_IN_SIZE ? AF_INET : 0;
    if (family === AF_INET6) return length >= SOCKADDR_IN6_SIZE ? AF_INET6 : 0;
    return 0;
  }

  /** The port of an IPv4 or IPv6 address, else 0. */
  get port(): number {
    return this.#inetFamily() !== 0 ? this.#view.getUint16(2, false) : 0;
  }

  /** The scope id (interface index) of an IPv6 address, else 0. */
  get scopeId(): number {
    return this.#inetFamily() === AF_INET6 ? this.#view.getUint32(24, true) : 0;
  }

  /**
   * The path of a Unix-domain address (an abstract name starts with `"\0"`; `""` for an unnamed
   * one, as an accepted client's usually is), else `""`.
   */
  get path(): string {
    if (this.family !== AF_UNIX) return "";
    const end = Math.min(this.length, SOCKADDR_STORAGE_SIZE);
    if (end <= SUN_PATH_AT) return "";
    const name = this.#bytes.subarray(SUN_PATH_AT, end);
    if (name[0] === 0) return decoder.decode(name); // abstract: every byte counts
    const nul = name.indexOf(0);
    return decoder.decode(nul === -1 ? name : name.subarray(0, nul));
  }

  /** `127.0.0.1:80`, `[::1]:80`, `unix:/run/x.sock`, or `unknown` (an empty address). */
  toString(): string {
    switch (this.#inetFamily() || this.family) {
      case AF_INET:
        return `${this.hostname}:${this.port}`;
      case AF_INET6:
        return `[${this.hostname}]:${this.port}`;
      case AF_UNIX:
        return `unix:${JSON.stringify(this.path).slice(1, -1)}`;
      default:
        return this.family === 0 ? "unknown" : `family ${this.family}`;
    }
  }
}

/**
 * Readies `address` for an accept to fill (internal: `prepAccept`): its length is the room of
 * the whole storage, kept in the `socklen_t` after it; returns that word, whose address the
 * kernel gets as `addrlen`.
 */
export function roomForAcceptedPeer(address: SocketAddress): Uint8Array<ArrayBuffer> {
  return lengthWord(address, true);
}

/**
 * The `socklen_t` word of `address`, for a name copied into it by hand (internal:
 * `RecvmsgOut.name`): the address then reads as what was copied, whatever it was readied for.
 */
export function nameLengthWord(address: SocketAddress): Uint8Array<ArrayBuffer> {
  return lengthWord(address, false);
}

/**
 * The length of the name a receive or an accept wrote, from the length word it was given with
 * the room of a whole `sockaddr_storage` (128, more than any address takes): 0 while the word
 * still holds that room (the operation in flight, or failed: no name written); internal.
 */
export function nameLengthWritten(length: number): number {
  return length === SOCKADDR_STORAGE_SIZE ? 0 : length;
}

/**
 * Makes `address` report the length `source` reads (a receiving `msghdr`'s `msg_namelen`, which
 * the kernel writes), or its own again (`null`); internal.
 */
export function linkSocketAddressLength(address: SocketAddress, source: (() => number) | null): void {
  linkLength(address, source);
}

/**
 * The length to hand the kernel when `address` is sent to (internal: bind, connect, sendmsg): its
 * length, but no more than its struct holds. The kernel reports a Unix sender whose path fills
 * all 108 bytes with one more byte (its NUL), which it then refuses to be given back (`EINVAL`).
 */
export function lengthToSend(address: SocketAddress): number {
  const length = address.length;
  return Math.min(length, address.family === AF_UNIX ? SUN_PATH_AT + SUN_PATH_SIZE : SOCKADDR_STORAGE_SIZE);
}

/**
 * Throws a `RangeError` for an empty address (family 0) not made by
 * {@link SocketAddress.unspecified}: given to `connect` or `bind`, the kernel reads `AF_UNSPEC`.
 */
export function checkSpecified(address: SocketAddress, op: string): void {
  if (address.family === 0 && !madeUnspecified(address)) {
    throw new RangeError(
      `${op}: the address is empty (family 0, as new SocketAddress() makes it for the kernel to fill); ` +
        "the kernel would read AF_UNSPEC (connect: dissolve the association; bind: any address). " +
        "Use SocketAddress.inet/unix, or SocketAddress.unspecified() to mean AF_UNSPEC",
    );
  }
}

/** Throws a `TypeError` unless `address` is a {@link SocketAddress}. */
export function checkSocketAddress(address: unknown, what = "address"): asserts address is SocketAddress {
  if (!(address instanceof SocketAddress)) {
    throw new TypeError(
      `${what} must be a SocketAddress (SocketAddress.inet(hostname, port), SocketAddress.unix(path)), ` +
        `got ${shown(address)}`,
    );
  }
}

/** A dotted-quad IPv4 address as 4 bytes, or null (as `inet_pton`: no leading zeros, no shorthand). */
function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** An IPv6 address (`::` shorthand and a dotted IPv4 tail allowed) as 16 bytes, or null. */
function parseIPv6(text: string): Uint8Array | null {
  let rest = text;
  const tail: number[] = []; // words of a dotted IPv4 tail
  if (rest.includes(".")) {
    const colon = rest.lastIndexOf(":");
    if (colon === -1) return null;
    const v4 = parseIPv4(rest.slice(colon + 1));
    if (v4 === null) return null;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    // Keep a "::" before the tail; drop the single ":" that separates it.
    rest = rest.slice(0, rest.endsWith("::", colon + 1) ? colon + 1 : colon);
  }
  const halves = rest.split("::");
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const words: number[] = [];
    for (const group of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
      words.push(parseInt(group, 16));
    }
    return words;
  };
  const head = groups(halves[0]);
  const after = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || after === null) return null;
  const known = head.length + after.length + tail.length;
  if (halves.length === 1 ? known !== 8 : known > 7) return null;
  const words = [...head, ...new Array<number>(8 - known).fill(0), ...after, ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i] >> 8;
    out[i * 2 + 1] = words[i] & 0xff;
  }
  return out;
}

function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** RFC 5952's form: lower case, no leading zeros, the longest run of two or more zero words as `::`. */
function formatIPv6(bytes: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[i * 2] << 8) | bytes[i * 2 + 1]);
  // An IPv4-mapped address keeps its dotted tail (::ffff:a.b.c.d).
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes.subarray(12, 16))}`;
  }
  let bestAt = -1, bestLength = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (bestAt === -1) return hex(words);
  return `${hex(words.slice(0, bestAt))}::${hex(words.slice(bestAt + bestLength))}`;
}

/**
 * A minimal HTTP/2 client for the load generator, over a plain TCP socket:
 * request HEADERS and DATA frames are pre-encoded bytes, responses are parsed
 * only as far as needed to read `grpc-status`. It costs a fraction of the CPU
 * of `node:http2`'s client (no stream objects, no header objects), so that on
 * a 2-core machine the generator does not compete with the server for the
 * same CPU time it is measuring.
 *
 * HPACK: the client announces SETTINGS_HEADER_TABLE_SIZE = 0, so the server's
 * encoder may not use a dynamic table and every header arrives as a static
 * index or a literal. Names and values may be Huffman-coded; rather than
 * carrying the Huffman table, `calibrate()` learns the exact bytes that this
 * Node's nghttp2 encoder produces for "grpc-status" and for each status value
 * (grpc-js serves through the same nghttp2), by asking a local node:http2
 * server once. (Short values such as "0" or "13" are never Huffman-coded:
 * the code is not shorter.)
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import tls from "node:tls";
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const T_DATA = 0x0;
const T_HEADERS = 0x1;
const T_RST_STREAM = 0x3;
const T_SETTINGS = 0x4;
const T_PING = 0x6;
const T_GOAWAY = 0x7;
const T_WINDOW_UPDATE = 0x8;
const T_CONTINUATION = 0x9;
const F_END_STREAM = 0x1;
const F_ACK = 0x1;
const F_END_HEADERS = 0x4;
const F_PADDED = 0x8;
const F_PRIORITY = 0x20;

/** Our receive window, per stream and (after the first update) per connection. */
const RECV_WINDOW = 1 << 24;

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, at + 5);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  frameHeader(out, 0, payload.length, type, flags, streamId);
  payload.copy(out, 9);
  return out;
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1). */
function hpackInt(prefixBits: number, firstByteHigh: number, value: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByteHigh | value];
  const out = [firstByteHigh | max];
  value -= max;
  while (value >= 128) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
  return out;
}

function hpackString(s: string): number[] {
  const bytes = [...Buffer.from(s, "latin1")];
  return [...hpackInt(7, 0, bytes.length), ...bytes];
}

/**
 * The request header block: static-table entries and literals without
 * indexing (never Huffman), so it is the same bytes on every request.
 */
export function requestHeaderBlock(path: string, authority: string, timeoutHeader: string | null, authorization?: string): Buffer {
  const b: number[] = [
    0x83, // :method POST (static 3)
    0x86, // :scheme http (static 6)
    ...hpackInt(4, 0x00, 4), // :path, literal without indexing, name = static 4
    ...hpackString(path),
    ...hpackInt(4, 0x00, 1), // :authority (static 1)
    ...hpackString(authority),
    ...hpackInt(4, 0x00, 31), // content-type (static 31)
    ...hpackString("application/grpc"),
    0x00, // te: new name
    ...hpackString("te"),
    ...hpackString("trailers"),
  ];
  if (timeoutHeader !== null) b.push(0x00, ...hpackString("grpc-timeout"), ...hpackString(timeoutHeader));
  if (authorization !== undefined) b.push(0x00, ...hpackString("authorization"), ...hpackString(authorization));
  return Buffer.from(b);
}

/** What calibration learned: the encoded (H flag + bytes) forms of the strings we read. */
export interface HpackDictionary {
  /** Hex of the encoded name "grpc-status" (as a string literal, flag byte included). */
  readonly statusNameHex: Set<string>;
  /** Hex of an encoded status value → the status ("0".."16"). */
  readonly statusValues: Map<string, string>;
}

interface Literal {
  /** null when the name is a static-table index. */
  nameHex: string | null;
  nameIndex: number;
  valueHex: string;
  valueRaw: string | null;
}

/** Reads an HPACK integer; returns [value, next offset]. */
function readInt(buf: Buffer, at: number, prefixBits: number): [number, number] {
  const max = (1 << prefixBits) - 1;
  let v = (buf[at] as number) & max;
  at++;
  if (v < max) return [v, at];
  let shift = 0;
  for (;;) {
    const b = buf[at++] as number;
    v += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if ((b & 0x80) === 0) return [v, at];
  }
}

/** Reads a string literal; returns [encoded-hex (flag + bytes), raw text when not Huffman, next offset]. */
function readString(buf: Buffer, at: number): [string, string | null, number] {
  const huffman = ((buf[at] as number) & 0x80) !== 0;
  const [len, p] = readInt(buf, at, 7);
  const bytes = buf.subarray(p, p + len);
  return [(huffman ? "h" : "r") + bytes.toString("hex"), huffman ? null : bytes.toString("latin1"), p + len];
}

/** Lists the literal fields of a header block; throws on a dynamic-table reference. */
export function literals(block: Buffer): Literal[] {
  const out: Literal[] = [];
  let i = 0;
  while (i < block.length) {
    const b = block[i] as number;
    if ((b & 0x80) !== 0) {
      const [index, next] = readInt(block, i, 7);
      if (index > 61) throw new Error("hpack: dynamic table reference with table size 0");
      i = next;
      continue;
    }
    if ((b & 0xe0) === 0x20) {
      i = readInt(block, i, 5)[1]; // dynamic table size update
      continue;
    }
    const prefix = (b & 0x40) !== 0 ? 6 : 4;
    const [nameIndex, afterIndex] = readInt(block, i, prefix);
    let nameHex: string | null = null;
    let p = afterIndex;
    if (nameIndex === 0) {
      const [hex, , next] = readString(block, p);
      nameHex = hex;
      p = next;
    }
    const [valueHex, valueRaw, next] = readString(block, p);
    out.push({ nameHex, nameIndex, valueHex, valueRaw });
    i = next;
  }
  return out;
}

/** The grpc-status in a header block, "" when absent, "?" when not decodable. */
export function grpcStatusOf(block: Buffer, dict: HpackDictionary): string {
  for (const f of literals(block)) {
    if (f.nameHex === null || !dict.statusNameHex.has(f.nameHex)) continue;
    if (f.valueRaw !== null) return f.valueRaw;
    return dict.statusValues.get(f.valueHex) ?? "?";
  }
  return "";
}

export type Completion = (status: string, latencyMs: number) => void;

interface StreamState {
  t0: number;
  status: string;
  done: Completion;
}

/** PEM files for a TLS connection: the server's CA, and a client certificate for mutual TLS. */
export interface TlsClientFiles {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

/** One HTTP/2 connection carrying many concurrent unary gRPC calls. */
export class RawH2Connection {
  private readonly socket: net.Socket;
  private nextStreamId = 1;
  private readonly streams = new Map<number, StreamState>();
  private inbuf: Buffer = Buffer.alloc(0);
  private outQueue: Buffer[] = [];
  private flushScheduled = false;
  /** Bytes the server lets us send on the connection (its flow-control window). */
  private sendWindow = 65_535;
  private blocked: { frames: Buffer; dataBytes: number }[] = [];
  private receivedSinceUpdate = 0;
  private headerBlock: Buffer[] = [];
  private headerStream = 0;
  private headerEndStream = false;
  private dead: string | null = null;
  onConnectionError: (what: string) => void = () => {};

  private constructor(
    socket: net.Socket,
    private readonly dict: HpackDictionary,
  ) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (e: NodeJS.ErrnoException) => this.fail("socket:" + (e.code ?? e.message)));
    socket.on("close", () => this.fail("socket:closed"));
  }

  /**
   * Connects over TCP, or over TLS when `secure` is given (ALPN h2, the
   * server checked against `ca`, a client certificate when `cert`/`key` are set).
   */
  static connect(port: number, dict: HpackDictionary, secure?: TlsClientFiles): Promise<RawH2Connection> {
    return new Promise((resolve, reject) => {
      const socket =
        secure === undefined
          ? net.connect({ host: "127.0.0.1", port })
          : tls.connect({
              host: "127.0.0.1",
              port,
              servername: "localhost",
              ALPNProtocols: ["h2"],
              ca: readFileSync(secure.ca),
              ...(secure.cert !== undefined && secure.key !== undefined ? { cert: readFileSync(secure.cert), key: readFileSync(secure.key) } : {}),
            });
      socket.once("error", reject);
      socket.once(secure === undefined ? "connect" : "secureConnect", () => {
        socket.off("error", reject);
        const c = new RawH2Connection(socket, dict);
        const settings = Buffer.alloc(12);
        settings.writeUInt16BE(0x1, 0); // HEADER_TABLE_SIZE
        settings.writeUInt32BE(0, 2);
        settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
        settings.writeUInt32BE(RECV_WINDOW, 8);
        const wu = Buffer.alloc(4);
        wu.writeUInt32BE(RECV_WINDOW - 65_535, 0);
        socket.write(Buffer.concat([PREFACE, frame(T_SETTINGS, 0, 0, settings), frame(T_WINDOW_UPDATE, 0, 0, wu)]));
        resolve(c);
      });
    });
  }

  /** Streams opened and not yet finished. */
  get inFlight(): number {
    return this.streams.size;
  }

  /**
   * Sends one unary call: `headerBlock` (from requestHeaderBlock) and `body`
   * (a length-prefixed gRPC message). `done` gets the grpc-status ("0" is
   * OK; "rst:N", "goaway", "socket:…" for transport failures).
   */
  call(headerBlock: Buffer, body: Buffer, done: Completion): void {
    if (this.dead !== null) {
      done(this.dead, 0);
      return;
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const out = Buffer.allocUnsafe(18 + headerBlock.length + body.length);
    frameHeader(out, 0, headerBlock.length, T_HEADERS, F_END_HEADERS, id);
    headerBlock.copy(out, 9);
    const d = 9 + headerBlock.length;
    frameHeader(out, d, body.length, T_DATA, F_END_STREAM, id);
    body.copy(out, d + 9);
    this.streams.set(id, { t0: performance.now(), status: "", done });
    if (this.blocked.length > 0 || body.length > this.sendWindow) {
      this.blocked.push({ frames: out, dataBytes: body.length });
      return;
    }
    this.sendWindow -= body.length;
    this.enqueue(out);
  }

  close(): void {
    this.dead = this.dead ?? "closed";
    this.socket.destroy();
  }

  private enqueue(buf: Buffer): void {
    this.outQueue.push(buf);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything sent in one turn of the event loop leaves in one write.
      process.nextTick(() => {
        this.flushScheduled = false;
        const q = this.outQueue;
        this.outQueue = [];
        if (this.dead === null) this.socket.write(q.length === 1 ? (q[0] as Buffer) : Buffer.concat(q));
      });
    }
  }

  private fail(what: string): void {
    if (this.dead !== null && what === "socket:closed") what = this.dead;
    const wasDead = this.dead !== null;
    this.dead = what;
    if (!wasDead && what !== "closed") this.onConnectionError(what);
    const now = performance.now();
    for (const [id, s] of this.streams) {
      this.streams.delete(id);
      s.done(what, now - s.t0);
    }
  }

  private finish(id: number, status: string): void {
    const s = this.streams.get(id);
    if (s === undefined) return;
    this.streams.delete(id);
    s.done(status === "" ? s.status || "no-status" : status, performance.now() - s.t0);
  }

  private onData(chunk: Buffer): void {
    let buf = this.inbuf.length === 0 ? chunk : Buffer.concat([this.inbuf, chunk]);
    let at = 0;
    while (buf.length - at >= 9) {
      const len = ((buf[at] as number) << 16) | ((buf[at + 1] as number) << 8) | (buf[at + 2] as number);
      if (buf.length - at < 9 + len) break;
      const type = buf[at + 3] as number;
      const flags = buf[at + 4] as number;
      const sid = buf.readUInt32BE(at + 5) & 0x7fffffff;
      this.onFrame(type, flags, sid, buf.subarray(at + 9, at + 9 + len));
      at += 9 + len;
    }
    this.inbuf = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    buf = this.inbuf;
  }

  private onFrame(type: number, flags: number, sid: number, payload: Buffer): void {
    switch (type) {
      case T_DATA: {
        this.receivedSinceUpdate += payload.length;
        if (this.receivedSinceUpdate >= RECV_WINDOW / 2) {
          const wu = Buffer.alloc(4);
          wu.writeUInt32BE(this.receivedSinceUpdate, 0);
          this.receivedSinceUpdate = 0;
          this.enqueue(frame(T_WINDOW_UPDATE, 0, 0, wu));
        }
        if ((flags & F_END_STREAM) !== 0) this.finish(sid, "");
        return;
      }
      case T_HEADERS: {
        let p = 0;
        let end = payload.length;
        if ((flags & F_PADDED) !== 0) {
          end -= payload[0] as number;
          p = 1;
        }
        if ((flags & F_PRIORITY) !== 0) p += 5;
        this.headerBlock = [payload.subarray(p, end)];
        this.headerStream = sid;
        this.headerEndStream = (flags & F_END_STREAM) !== 0;
        if ((flags & F_END_HEADERS) !== 0) this.onHeaderBlock();
        return;
      }
      case T_CONTINUATION: {
        this.headerBlock.push(payload);
        if ((flags & F_END_HEADERS) !== 0) this.onHeaderBlock();
        return;
      }
      case T_RST_STREAM:
        this.finish(sid, "rst:" + payload.readUInt32BE(0));
        return;
      case T_SETTINGS:
        if ((flags & F_ACK) === 0) this.enqueue(frame(T_SETTINGS, F_ACK, 0, Buffer.alloc(0)));
        return;
      case T_PING:
        if ((flags & F_ACK) === 0) this.enqueue(frame(T_PING, F_ACK, 0, payload));
        return;
      case T_GOAWAY:
        this.fail("goaway:" + payload.readUInt32BE(4));
        return;
      case T_WINDOW_UPDATE:
        if (sid === 0) {
          this.sendWindow += payload.readUInt32BE(0) & 0x7fffffff;
          while (this.blocked.length > 0 && (this.blocked[0] as { dataBytes: number }).dataBytes <= this.sendWindow) {
            const b = this.blocked.shift() as { frames: Buffer; dataBytes: number };
            this.sendWindow -= b.dataBytes;
            this.enqueue(b.frames);
          }
        }
        return;
      default:
        return;
    }
  }

  private onHeaderBlock(): void {
    const block = this.headerBlock.length === 1 ? (this.headerBlock[0] as Buffer) : Buffer.concat(this.headerBlock);
    this.headerBlock = [];
    const sid = this.headerStream;
    const s = this.streams.get(sid);
    let status: string;
    try {
      status = grpcStatusOf(block, this.dict);
    } catch (e) {
      status = "hpack:" + (e as Error).message;
    }
    if (s !== undefined && status !== "") s.status = status;
    if (this.headerEndStream) this.finish(sid, "");
  }
}

/**
 * Learns how this Node's nghttp2 encodes "grpc-status" and its values when
 * the peer forbids the dynamic table: a local node:http2 server answers one
 * request per status code with a trailer `grpc-status: N`, and the raw
 * trailer blocks are read with the same parser the generator uses.
 */
export async function calibrate(): Promise<HpackDictionary> {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    const code = String(headers[":path"]).slice(1);
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": code, "grpc-message": "" }));
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const statusNameHex = new Set<string>();
  const statusValues = new Map<string, string>();
  // Until the name is known, capture the first literal of each trailer block.
  const learning: HpackDictionary = { statusNameHex, statusValues };
  const socket = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((r, j) => (socket.once("connect", r), socket.once("error", j)));
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(0x1, 0);
  settings.writeUInt32BE(0, 2);
  socket.write(Buffer.concat([PREFACE, frame(T_SETTINGS, 0, 0, settings)]));
  let inbuf = Buffer.alloc(0);
  const blocks = new Map<number, Buffer[]>();
  const waiters = new Map<number, () => void>();
  socket.on("data", (chunk: Buffer) => {
    inbuf = Buffer.concat([inbuf, chunk]);
    while (inbuf.length >= 9) {
      const len = inbuf.readUIntBE(0, 3);
      if (inbuf.length < 9 + len) break;
      const type = inbuf[3] as number;
      const flags = inbuf[4] as number;
      const sid = inbuf.readUInt32BE(5) & 0x7fffffff;
      const payload = inbuf.subarray(9, 9 + len);
      if (type === T_SETTINGS && (flags & F_ACK) === 0) socket.write(frame(T_SETTINGS, F_ACK, 0, Buffer.alloc(0)));
      if (type === T_HEADERS) {
        let p = 0;
        let end = payload.length;
        if ((flags & F_PADDED) !== 0) {
          end -= payload[0] as number;
          p = 1;
        }
        if ((flags & F_PRIORITY) !== 0) p += 5;
        const list = blocks.get(sid) ?? [];
        list.push(Buffer.from(payload.subarray(p, end)));
        blocks.set(sid, list);
        if ((flags & F_END_STREAM) !== 0) waiters.get(sid)?.();
      }
      if (type === T_DATA && (flags & F_END_STREAM) !== 0) waiters.get(sid)?.();
      inbuf = inbuf.subarray(9 + len);
    }
  });
  let sid = 1;
  for (let code = 0; code <= 16; code++) {
    const id = sid;
    sid += 2;
    const done = new Promise<void>((r) => waiters.set(id, r));
    const hb = requestHeaderBlock(`/${code}`, `127.0.0.1:${port}`, null);
    socket.write(Buffer.concat([frame(T_HEADERS, F_END_HEADERS, id, hb), frame(T_DATA, F_END_STREAM, id, Buffer.from([0, 0, 0, 0, 0]))]));
    await done;
    const trailer = (blocks.get(id) ?? [])[1];
    if (trailer === undefined) throw new Error("calibration: no trailer block");
    const fields = literals(trailer).filter((f) => f.nameHex !== null);
    // Trailers were sent as grpc-status then grpc-message: the first named literal is grpc-status.
    const first = fields[0];
    if (first === undefined || first.nameHex === null) throw new Error("calibration: grpc-status not a literal");
    statusNameHex.add(first.nameHex);
    statusValues.set(first.valueHex, String(code));
  }
  socket.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  // Self-check: a raw (non-Huffman) spelling of the name is accepted as well.
  statusNameHex.add("r" + Buffer.from("grpc-status", "latin1").toString("hex"));
  void learning;
  return { statusNameHex, statusValues };
}

/**
 * The JetStream side of the event relay (src/workers/nats-relay.ts): one
 * NATS connection, the stream (created when missing, checked when present),
 * the stream's newest message (where the relay resumes) and publishing.
 *
 * Every message carries its event id as `Nats-Msg-Id` (JetStream drops a
 * second copy within the stream's duplicate window) and the stream sequence
 * it must follow as `Nats-Expected-Last-Sequence`, so JetStream stores
 * nothing out of order: when one publish of a pipelined window is lost, every
 * later one of that window is refused, and the relay starts again after the
 * stream's newest message.
 */
import { readFileSync } from "node:fs";
import { connect, createInbox, credsAuthenticator, headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import type { FeedPosition, LedgerEvent } from "../../domain/ledger-events.js";

/** Message headers the relay writes (besides Nats-Msg-Id, the event id, and the expectation). */
export const HEADER_KIND = "Mint-Event-Kind";
export const HEADER_ACCOUNTS = "Mint-Accounts";
export const HEADER_EPOCH = "Mint-Feed-Epoch";
export const HEADER_POSITION = "Mint-Feed-Position";

export interface NatsTargetOptions {
  /** nats://host:port (several comma-separated for a cluster). */
  readonly url: string;
  /** A NATS credentials file (JWT + nkey seed); empty for none. */
  readonly credsFile: string;
  /** User name for user/password auth; empty for none. */
  readonly user: string;
  /** File holding the password of `user`. */
  readonly passwordFile: string;
  readonly stream: string;
  /** Subjects are `<prefix>.<kind in lower case>`; the stream holds `<prefix>.>`. */
  readonly subjectPrefix: string;
  /** Messages older than this are deleted by JetStream (0 = kept until limits). */
  readonly maxAgeMs: number;
  /** JetStream's duplicate window for Nats-Msg-Id. */
  readonly duplicateWindowMs: number;
  /** Stream replicas (a clustered JetStream). */
  readonly replicas: number;
  /** How long one publish waits for JetStream's acknowledgement. */
  readonly publishTimeoutMs: number;
  /** Client name shown by the NATS server. */
  readonly name?: string;
}

/** The stream's newest message as the relay reads it at (re)start. */
export interface StreamTail {
  /** The stream's last sequence (0 for a stream that never held a message). */
  readonly lastSeq: number;
  /** Messages held now. */
  readonly messages: number;
  /** The newest message's feed epoch and position; null when it is gone or was not written by the relay. */
  readonly epoch: string | null;
  readonly position: FeedPosition | null;
}

export interface PublishAck {
  readonly seq: number;
  readonly duplicate: boolean;
}

/** What the relay needs from JetStream (tests wrap it to lose publishes). */
export interface RelayTarget {
  /** Connects (when not connected) and creates or checks the stream. */
  open(): Promise<void>;
  readonly connected: boolean;
  tail(): Promise<StreamTail>;
  /** Publishes one event; `afterSeq` is the stream sequence it must follow. */
  publish(event: LedgerEvent, cursor: string, epoch: string, afterSeq: number): Promise<PublishAck>;
  close(): Promise<void>;
}

/** The subject of an event kind: `<prefix>.<kind in lower case>` (kinds are A-Z and _, nothing NATS reserves). */
export function subjectOf(prefix: string, kind: string): string {
  return `${prefix}.${kind.toLowerCase()}`;
}

/** "a.b": how a feed position is written in the Mint-Feed-Position header. */
export function formatPosition(p: FeedPosition): string {
  return `${p.a}.${p.b}`;
}

export function parsePosition(raw: string): FeedPosition | null {
  const m = /^(0|[1-9][0-9]{0,19})\.(0|[1-9][0-9]{0,19})$/.exec(raw);
  return m === null ? null : { a: BigInt(m[1] as string), b: BigInt(m[2] as string) };
}

/** The message body: the event as JSON (amounts are decimal strings of micro-USDC, as in `data`). */
export function eventPayload(e: LedgerEvent, cursor: string): string {
  return JSON.stringify({ id: e.id, kind: e.kind, time_ms: e.timeMs, accounts: e.accounts, data: e.data, cursor });
}

const MS_TO_NS = 1_000_000;

export class StreamConfigError extends Error {}

/** One publish waiting for its acknowledgement. */
interface Pending {
  readonly resolve: (ack: PublishAck) => void;
  readonly reject: (err: Error) => void;
  readonly sentMs: number;
}

export class JetStreamPublishError extends Error {
  constructor(
    message: string,
    /** JetStream's error code (10071: wrong last sequence), 503 no responders, 0 for a timeout or a lost connection. */
    readonly errCode: number,
  ) {
    super(message);
  }
}

/**
 * Publishes are sent as plain messages with a reply subject under one inbox
 * of this connection, and their acknowledgements come back on one
 * subscription (what the Go client calls asynchronous publishing): no
 * request object, timer or error is built per message. One sweep rejects
 * those unacknowledged after the publish timeout.
 */
export class JetStreamTarget implements RelayTarget {
  private nc: NatsConnection | null = null;
  private jsm: JetStreamManager | null = null;
  private closed = false;
  private inbox = "";
  private acks: Subscription | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextToken = 1;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: NatsTargetOptions) {}

  get connected(): boolean {
    return this.nc !== null && !this.nc.isClosed();
  }

  async open(): Promise<void> {
    if (this.closed) throw new Error("the relay's NATS connection was closed");
    if (this.nc === null || this.nc.isClosed()) {
      const o = this.opts;
      const nc = await connect({
        servers: o.url.split(",").map((s) => s.trim()),
        name: o.name ?? "usdc-mint-service relay",
        // Reconnects by itself, for ever; publishes in the meantime time out and the relay retries.
        maxReconnectAttempts: -1,
        reconnectTimeWait: 500,
        // No error objects built ahead for every request (they cost more than the publish).
        noAsyncTraces: true,
        timeout: Math.max(1_000, o.publishTimeoutMs),
        ...(o.credsFile !== "" ? { authenticator: credsAuthenticator(readFileSync(o.credsFile)) } : {}),
        ...(o.user !== "" ? { user: o.user, pass: o.passwordFile === "" ? "" : readFileSync(o.passwordFile, "utf8").trim() } : {}),
      });
      if (this.closed) {
        await nc.close().catch(() => undefined);
        throw new Error("the relay's NATS connection was closed");
      }
      this.nc = nc;
      this.inbox = createInbox();
      this.acks = nc.subscribe(`${this.inbox}.*`, { callback: (err, msg) => (err === null ? this.onAck(msg) : undefined) });
      // A connection that closes for good fails what it still waits for.
      void nc.closed().then(() => this.failPending(new JetStreamPublishError("the NATS connection closed", 0)));
      this.sweepTimer = setInterval(() => this.sweep(), Math.max(50, Math.floor(o.publishTimeoutMs / 4)));
      this.sweepTimer.unref();
      this.jsm = await jetstreamManager(nc, { timeout: o.publishTimeoutMs });
    }
    await this.ensureStream();
  }

  /** Creates the stream, or checks that the one there takes the relay's subjects. */
  private async ensureStream(): Promise<void> {
    const jsm = this.jsm as JetStreamManager;
    const o = this.opts;
    const subject = `${o.subjectPrefix}.>`;
    let info;
    try {
      info = await jsm.streams.info(o.stream);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      const config: Partial<StreamConfig> & { name: string } = {
        name: o.stream,
        subjects: [subject],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        max_age: o.maxAgeMs * MS_TO_NS,
        duplicate_window: o.duplicateWindowMs * MS_TO_NS,
        num_replicas: o.replicas,
      };
      await jsm.streams.add(config);
      return;
    }
    if (!info.config.subjects?.includes(subject)) {
      throw new StreamConfigError(`JetStream stream ${o.stream} exists without the subject ${subject} (it has ${JSON.stringify(info.config.subjects ?? [])}): give the relay its own stream (MINT_NATS_STREAM)`);
    }
  }

  async tail(): Promise<StreamTail> {
    const jsm = this.jsm;
    if (jsm === null) throw new Error("not connected");
    const info = await jsm.streams.info(this.opts.stream);
    const lastSeq = info.state.last_seq;
    const messages = info.state.messages;
    if (lastSeq === 0 || messages === 0) return { lastSeq, messages, epoch: null, position: null };
    const m = await jsm.streams.getMessage(this.opts.stream, { seq: lastSeq }).catch((err: unknown) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    if (m === null) return { lastSeq, messages, epoch: null, position: null };
    const epoch = m.header.get(HEADER_EPOCH);
    const position = parsePosition(m.header.get(HEADER_POSITION));
    return { lastSeq, messages, epoch: epoch === "" ? null : epoch, position };
  }

  publish(e: LedgerEvent, cursor: string, epoch: string, afterSeq: number): Promise<PublishAck> {
    const nc = this.nc;
    if (nc === null || nc.isClosed()) return Promise.reject(new JetStreamPublishError("not connected to NATS", 0));
    const h = headers();
    h.set("Nats-Msg-Id", e.id);
    h.set("Nats-Expected-Last-Sequence", String(afterSeq));
    h.set(HEADER_KIND, e.kind);
    // Account ids are [A-Za-z0-9._:@-]: no comma, no space.
    if (e.accounts.length > 0) h.set(HEADER_ACCOUNTS, e.accounts.join(","));
    h.set(HEADER_EPOCH, epoch);
    h.set(HEADER_POSITION, formatPosition(e.position));
    const token = this.nextToken++;
    return new Promise<PublishAck>((resolve, reject) => {
      this.pending.set(token, { resolve, reject, sentMs: performance.now() });
      try {
        nc.publish(subjectOf(this.opts.subjectPrefix, e.kind), eventPayload(e, cursor), { reply: `${this.inbox}.${token}`, headers: h });
      } catch (err) {
        this.pending.delete(token);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  private onAck(msg: Msg): void {
    const token = Number(msg.subject.slice(this.inbox.length + 1));
    const p = this.pending.get(token);
    // Late (already timed out) or not ours: dropped.
    if (p === undefined) return;
    this.pending.delete(token);
    if (msg.data.length === 0) {
      const code = msg.headers?.code ?? 0;
      p.reject(new JetStreamPublishError(code === 503 ? `no JetStream stream takes ${msg.subject} (no responders)` : `JetStream answered status ${code}`, code));
      return;
    }
    let body: { seq?: number; duplicate?: boolean; error?: { code?: number; err_code?: number; description?: string } };
    try {
      body = msg.json();
    } catch {
      p.reject(new JetStreamPublishError("JetStream's acknowledgement is not JSON", 0));
      return;
    }
    if (body.error !== undefined) {
      p.reject(new JetStreamPublishError(`JetStream refused the message: ${body.error.description ?? "unknown error"}`, body.error.err_code ?? body.error.code ?? 0));
      return;
    }
    if (typeof body.seq !== "number") {
      p.reject(new JetStreamPublishError("JetStream's acknowledgement has no sequence", 0));
      return;
    }
    p.resolve({ seq: body.seq, duplicate: body.duplicate === true });
  }

  private sweep(): void {
    const limit = performance.now() - this.opts.publishTimeoutMs;
    for (const [token, p] of this.pending) {
      // Insertion order is send order: the first young one ends the sweep.
      if (p.sentMs > limit) break;
      this.pending.delete(token);
      p.reject(new JetStreamPublishError(`no acknowledgement from JetStream within ${this.opts.publishTimeoutMs} ms`, 0));
    }
  }

  private failPending(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    const nc = this.nc;
    this.nc = null;
    this.jsm = null;
    this.acks = null;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    this.failPending(new JetStreamPublishError("the relay's NATS connection was closed", 0));
    await nc?.close().catch(() => undefined);
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { code?: unknown; name?: string; message?: string; api_error?: { code?: number; err_code?: number } } | null;
  if (e === null || typeof e !== "object") return false;
  if (e.name === "StreamNotFoundError" || e.api_error?.err_code === 10059 || e.api_error?.err_code === 10037 || e.api_error?.code === 404) return true;
  return /not found/i.test(e.message ?? "");
}

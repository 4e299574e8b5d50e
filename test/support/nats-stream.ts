/**
 * JetStream helpers for the relay's tests: a stream name and subject prefix
 * of the test's own (JetStream refuses two streams with overlapping
 * subjects, and test files run in parallel), reading back every message of
 * a stream, and deleting it afterwards.
 */
import { randomBytes } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";

export const NATS_URL = process.env.MINT_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

export interface TestStream {
  readonly name: string;
  readonly prefix: string;
}

export function testStream(): TestStream {
  const tag = `${process.pid}_${randomBytes(4).toString("hex")}`;
  return { name: `T_MINT_${tag}`, prefix: `t_mint_${tag}.events` };
}

export interface StoredEvent {
  readonly seq: number;
  readonly subject: string;
  readonly msgId: string;
  readonly headers: Record<string, string>;
  readonly body: { id: string; kind: string; time_ms: number; accounts: string[]; data: Record<string, string>; cursor: string };
}

export class JetStreamReader {
  private constructor(
    private readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
  ) {}

  static async open(url = NATS_URL): Promise<JetStreamReader> {
    const nc = await connect({ servers: url });
    return new JetStreamReader(nc, await jetstreamManager(nc));
  }

  async lastSeq(stream: string): Promise<number> {
    try {
      return (await this.jsm.streams.info(stream)).state.last_seq;
    } catch {
      return 0;
    }
  }

  /** Every message of the stream, in stream order. */
  async all(stream: string): Promise<StoredEvent[]> {
    const info = await this.jsm.streams.info(stream);
    const out: StoredEvent[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await this.jsm.streams.getMessage(stream, { seq });
      if (m === null) throw new Error(`message ${seq} missing`);
      const headers: Record<string, string> = {};
      for (const k of m.header.keys()) headers[k] = m.header.get(k);
      out.push({ seq: m.seq, subject: m.subject, msgId: m.header.get("Nats-Msg-Id"), headers, body: m.json() });
    }
    return out;
  }

  async drop(stream: string): Promise<void> {
    await this.jsm.streams.delete(stream).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.nc.close();
  }
}

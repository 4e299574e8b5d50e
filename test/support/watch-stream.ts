/**
 * A WatchLedger stream through the generated client, collected for tests:
 * its events as they arrive, its start cursor (the header) and how it ended.
 */
import * as grpc from "@grpc/grpc-js";
import { LedgerEventKind, type LedgerEvent, type MintServiceClient, WatchLedgerRequest } from "../../gen/usdc/mint/v1/mint.js";
import { decodeError, type DecodedError } from "./test-server.js";

export interface CollectedStream {
  readonly events: LedgerEvent[];
  /** The start cursor the server sends as a header (x-mint-watch-cursor). */
  readonly started: Promise<string>;
  /** Resolves when the stream ends: its decoded error, or "ok"/"cancelled". */
  readonly ended: Promise<DecodedError | "ok" | "cancelled">;
  /** Resolves once at least `n` events arrived (rejects if the stream ends first or after `timeoutMs`). */
  waitFor(n: number, timeoutMs?: number): Promise<LedgerEvent[]>;
  readonly call: grpc.ClientReadableStream<unknown>;
  cancel(): void;
}

export function watch(client: MintServiceClient, req: Partial<WatchLedgerRequest> = {}, metadata = new grpc.Metadata()): CollectedStream {
  const call = client.watchLedger(WatchLedgerRequest.fromPartial(req), metadata);
  const events: LedgerEvent[] = [];
  const waiters: { n: number; resolve: (e: LedgerEvent[]) => void; reject: (err: Error) => void }[] = [];
  let endedWith: DecodedError | "ok" | "cancelled" | null = null;
  const started = new Promise<string>((resolve, reject) => {
    call.on("metadata", (md: grpc.Metadata) => resolve(String(md.get("x-mint-watch-cursor")[0] ?? "")));
    call.on("error", (err) => reject(err));
  });
  started.catch(() => undefined);
  const ended = new Promise<DecodedError | "ok" | "cancelled">((resolve) => {
    call.on("error", (err: grpc.ServiceError) => {
      endedWith = err.code === grpc.status.CANCELLED ? "cancelled" : decodeError(err);
      for (const w of waiters.splice(0)) w.reject(new Error(`the stream ended (${typeof endedWith === "string" ? endedWith : endedWith.reason}) after ${events.length} events, waiting for ${w.n}`));
      resolve(endedWith);
    });
    call.on("end", () => {
      if (endedWith === null) endedWith = "ok";
      resolve(endedWith);
    });
  });
  call.on("data", (r: { event?: LedgerEvent }) => {
    if (r.event === undefined) throw new Error("a response without an event");
    events.push(r.event);
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i] as (typeof waiters)[number];
      if (events.length >= w.n) {
        waiters.splice(i, 1);
        w.resolve(events.slice());
      }
    }
  });
  return {
    events,
    started,
    ended,
    call,
    cancel: () => call.cancel(),
    waitFor(n, timeoutMs = 10_000) {
      if (events.length >= n) return Promise.resolve(events.slice());
      if (endedWith !== null) return Promise.reject(new Error(`the stream already ended after ${events.length} events`));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${events.length} of ${n} events after ${timeoutMs} ms`)), timeoutMs);
        waiters.push({
          n,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
          reject: (err) => {
            clearTimeout(timer);
            reject(err);
          },
        });
      });
    },
  };
}

/** The kind's short name (LEDGER_EVENT_KIND_ prefix dropped). */
export function kindName(k: LedgerEventKind): string {
  return LedgerEventKind[k].replace(/^LEDGER_EVENT_KIND_/, "");
}

/**
 * WatchLedger over gRPC: checks the caller (role `reader`, a scope over each
 * account filtered on), parses the cursor and filters, opens a watcher on the
 * replica's hub and writes its events to the server stream. Streams are not
 * unary calls: they do not pass the edge's chain and do not count against
 * the calls-in-flight cap; the hub caps them (MINT_WATCH_MAX_WATCHERS). Every
 * end after the stream began carries the cursor to resume from, in the
 * ErrorInfo metadata (`resume_cursor`) and the trailer `x-mint-resume-cursor`.
 */
import { Metadata, status as Code, type ServerWritableStream } from "@grpc/grpc-js";
import { Any } from "../../../gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo } from "../../../gen/google/rpc/error_details.js";
import {
  LedgerEventKind as ProtoKind,
  SettlementKind,
  type LedgerEvent as ProtoEvent,
  type WatchLedgerRequest,
  type WatchLedgerResponse,
} from "../../../gen/usdc/mint/v1/mint.js";
import type { Security } from "../../auth/security.js";
import type { Blockchain as DomainBlockchain } from "../../domain/model.js";
import { decodeCursor, isLedgerEventKind, type EventFilter, type FeedPosition, type LedgerEvent, type LedgerEventKind } from "../../domain/ledger-events.js";
import type { LedgerWatchHub, WatchEnd, WatchSink } from "../../domain/ledger-watch-hub.js";
import { formatMicros } from "../../domain/money.js";
import { accountId as validAccountId } from "../../domain/validate.js";
import type { Logger } from "../../logger.js";
import { checkCall } from "./auth-check.js";
import { blockchainValue, settlementStateValue } from "./convert.js";
import { ERROR_DOMAIN, failureToStatus, richError, type RichError } from "./status.js";
import { MintStatus } from "../../../gen/usdc/mint/v1/mint.js";

/** The trailer (and initial-metadata) keys of the stream's cursors. */
export const RESUME_CURSOR_TRAILER = "x-mint-resume-cursor";
export const START_CURSOR_HEADER = "x-mint-watch-cursor";

/** Most accounts one stream may filter on. */
export const MAX_WATCH_ACCOUNTS = 1000;

/** An ErrorInfo detail, its reason kept beside the bytes (what the failed-call log line writes). */
function info(reason: string, metadata: Record<string, string>): Any & { readonly reason: string } {
  return { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(ErrorInfo.encode({ reason, domain: ERROR_DOMAIN, metadata }).finish()), reason };
}

function invalid(field: string, reason: string, message: string): RichError {
  return richError(Code.INVALID_ARGUMENT, message, [
    info(reason, { field }),
    { typeUrl: "type.googleapis.com/google.rpc.BadRequest", value: Buffer.from(BadRequest.encode({ fieldViolations: [{ field, description: message }] }).finish()) },
  ]);
}

/** The status a stream ends with, its resume cursor in the trailer too. */
export function endStatus(
  why: WatchEnd | { code: "WATCHERS_LIMIT"; maxWatchers: number } | { code: "SHUTTING_DOWN_BEFORE_START" } | { code: "CURSOR_FROM_OTHER_EPOCH" } | { code: "FEED_UNAVAILABLE_BEFORE_START" },
): RichError {
  let err: RichError;
  let resume: string | undefined;
  switch (why.code) {
    case "CONSUMER_TOO_SLOW":
      resume = why.resumeCursor;
      err = richError(Code.RESOURCE_EXHAUSTED, `the consumer fell more than ${why.bufferEvents} events behind; resume from resume_cursor`, [info("CONSUMER_TOO_SLOW", { resume_cursor: resume, buffer_events: String(why.bufferEvents) })]);
      break;
    case "SHUTTING_DOWN":
      resume = why.resumeCursor;
      err = richError(Code.UNAVAILABLE, "the server is shutting down; resume from resume_cursor on another replica", [info("SHUTTING_DOWN", { resume_cursor: resume })]);
      break;
    case "FEED_UNAVAILABLE":
      resume = why.resumeCursor;
      err = richError(Code.UNAVAILABLE, "the event feed could not be read; resume from resume_cursor", [info("STORE_UNAVAILABLE", { resume_cursor: resume })]);
      break;
    case "CURSOR_EXPIRED":
      err = richError(Code.FAILED_PRECONDITION, "the cursor is older than the events kept (MINT_WATCH_RETENTION); oldest_cursor is the oldest one available", [info("CURSOR_EXPIRED", { oldest_cursor: why.oldestCursor })]);
      break;
    case "CURSOR_FROM_OTHER_EPOCH":
      err = richError(Code.FAILED_PRECONDITION, "the cursor belongs to another event feed (the memory store restarted, or another database); start afresh", [info("CURSOR_FROM_OTHER_EPOCH", {})]);
      break;
    case "WATCHERS_LIMIT":
      err = richError(Code.RESOURCE_EXHAUSTED, `this replica already serves ${why.maxWatchers} WatchLedger streams (MINT_WATCH_MAX_WATCHERS)`, [info("WATCHERS_LIMIT", { max_watchers: String(why.maxWatchers) })]);
      break;
    case "SHUTTING_DOWN_BEFORE_START":
      return failureToStatus({ code: "SHUTTING_DOWN" });
    case "FEED_UNAVAILABLE_BEFORE_START":
      return failureToStatus({ code: "STORE_UNAVAILABLE" });
  }
  if (resume !== undefined) err.metadata.set(RESUME_CURSOR_TRAILER, resume);
  return err;
}

const KIND_TO_PROTO: Record<LedgerEventKind, ProtoKind> = {
  MINT_CREATED: ProtoKind.LEDGER_EVENT_KIND_MINT_CREATED,
  MINT_PENDING_APPROVAL: ProtoKind.LEDGER_EVENT_KIND_MINT_PENDING_APPROVAL,
  MINT_APPROVED: ProtoKind.LEDGER_EVENT_KIND_MINT_APPROVED,
  MINT_REJECTED: ProtoKind.LEDGER_EVENT_KIND_MINT_REJECTED,
  MINT_COMPLETED: ProtoKind.LEDGER_EVENT_KIND_MINT_COMPLETED,
  MINT_REVERSED: ProtoKind.LEDGER_EVENT_KIND_MINT_REVERSED,
  SETTLEMENT_SUBMITTED: ProtoKind.LEDGER_EVENT_KIND_SETTLEMENT_SUBMITTED,
  SETTLEMENT_CONFIRMED: ProtoKind.LEDGER_EVENT_KIND_SETTLEMENT_CONFIRMED,
  SETTLEMENT_FAILED: ProtoKind.LEDGER_EVENT_KIND_SETTLEMENT_FAILED,
  TRANSFER: ProtoKind.LEDGER_EVENT_KIND_TRANSFER,
  REDEMPTION: ProtoKind.LEDGER_EVENT_KIND_REDEMPTION,
  REDEMPTION_RECREDITED: ProtoKind.LEDGER_EVENT_KIND_REDEMPTION_RECREDITED,
  ACCOUNT_FROZEN: ProtoKind.LEDGER_EVENT_KIND_ACCOUNT_FROZEN,
  ACCOUNT_UNFROZEN: ProtoKind.LEDGER_EVENT_KIND_ACCOUNT_UNFROZEN,
  RESERVE_SET: ProtoKind.LEDGER_EVENT_KIND_RESERVE_SET,
  ALLOWANCE_SET: ProtoKind.LEDGER_EVENT_KIND_ALLOWANCE_SET,
};
const KIND_OF_PROTO = new Map<number, LedgerEventKind>(Object.entries(KIND_TO_PROTO).map(([k, v]) => [v, k as LedgerEventKind]));

const MINT_STATUS: Record<string, MintStatus> = {
  COMPLETED: MintStatus.MINT_STATUS_COMPLETED,
  REVERSED: MintStatus.MINT_STATUS_REVERSED,
  PENDING_APPROVAL: MintStatus.MINT_STATUS_PENDING_APPROVAL,
  REJECTED: MintStatus.MINT_STATUS_REJECTED,
};

function usdc(micros: string | undefined): string {
  return formatMicros(BigInt(micros ?? "0"));
}

function chain(name: string | undefined): number {
  return blockchainValue((name ?? "") as DomainBlockchain) ?? 0;
}

/** The proto form of one event. */
export function eventToProto(e: LedgerEvent, cursor: string): ProtoEvent {
  const d = e.data;
  const out: ProtoEvent = { eventId: e.id, cursor, kind: KIND_TO_PROTO[e.kind], time: new Date(e.timeMs), accountIds: [...e.accounts] };
  switch (e.kind) {
    case "MINT_CREATED":
    case "MINT_PENDING_APPROVAL":
    case "MINT_APPROVED":
    case "MINT_REJECTED":
    case "MINT_COMPLETED":
    case "MINT_REVERSED":
      out.mint = {
        mintId: d.mint_id ?? "",
        accountId: d.account_id ?? "",
        amount: usdc(d.amount),
        blockchain: chain(d.blockchain),
        status: MINT_STATUS[d.status ?? ""] ?? MintStatus.MINT_STATUS_UNSPECIFIED,
        approvals: Number(d.approvals ?? "0"),
        approvalsRequired: Number(d.approvals_required ?? "0"),
        actor: d.actor ?? "",
        reason: d.reason ?? "",
      };
      break;
    case "SETTLEMENT_SUBMITTED":
    case "SETTLEMENT_CONFIRMED":
    case "SETTLEMENT_FAILED":
      out.settlement = {
        settlementId: d.settlement_id ?? "",
        kind: d.settlement_kind === "burn" ? SettlementKind.SETTLEMENT_KIND_BURN : SettlementKind.SETTLEMENT_KIND_MINT,
        accountId: d.account_id ?? "",
        blockchain: chain(d.blockchain),
        amount: usdc(d.amount),
        state: settlementStateValue((d.state ?? "SUBMITTED") as "SUBMITTED"),
        nonce: Number(d.nonce ?? "0"),
        txHash: d.tx_hash ?? "",
        blockNumber: Number(d.block_number ?? "0"),
        error: d.error ?? "",
      };
      break;
    case "TRANSFER":
      out.transfer = { transferId: d.transfer_id ?? "", fromAccountId: d.from_account_id ?? "", toAccountId: d.to_account_id ?? "", amount: usdc(d.amount) };
      break;
    case "REDEMPTION":
    case "REDEMPTION_RECREDITED":
      out.redemption = { redemptionId: d.redemption_id ?? "", accountId: d.account_id ?? "", amount: usdc(d.amount), blockchain: chain(d.blockchain), reason: d.reason ?? "" };
      break;
    case "ACCOUNT_FROZEN":
    case "ACCOUNT_UNFROZEN":
      out.freeze = { accountId: d.account_id ?? "", frozen: d.frozen === "true", reason: d.reason ?? "" };
      break;
    case "RESERVE_SET":
      out.reserve = { reserve: usdc(d.reserve), attestationRef: d.attestation_ref ?? "" };
      break;
    case "ALLOWANCE_SET":
      out.allowance = { principal: d.principal ?? "", allowance: usdc(d.allowance) };
      break;
  }
  return out;
}

type Parsed = { ok: true; from: FeedPosition | "now" | "oldest"; accounts: Set<string> | null; kinds: Set<LedgerEventKind> | null } | { ok: false; error: RichError };

function parseRequest(req: WatchLedgerRequest, epoch: string): Parsed {
  let from: FeedPosition | "now" | "oldest" = req.fromOldest ? "oldest" : "now";
  if (req.fromCursor !== "") {
    const c = decodeCursor(req.fromCursor);
    if (!c.ok) return { ok: false, error: invalid("from_cursor", "INVALID_CURSOR", "from_cursor is not a cursor this service gave out") };
    if (c.epoch !== epoch) return { ok: false, error: endStatus({ code: "CURSOR_FROM_OTHER_EPOCH" }) };
    from = c.position;
  }
  if (req.accountIds.length > MAX_WATCH_ACCOUNTS) return { ok: false, error: invalid("account_ids", "INVALID_ACCOUNT_ID", `at most ${MAX_WATCH_ACCOUNTS} account_ids`) };
  for (const a of req.accountIds) {
    const v = validAccountId(a);
    if (!v.ok) return { ok: false, error: invalid("account_ids", "INVALID_ACCOUNT_ID", `account_ids: ${JSON.stringify(a.slice(0, 80))} is not an account id`) };
  }
  const kinds = new Set<LedgerEventKind>();
  for (const k of req.kinds) {
    const name = KIND_OF_PROTO.get(k);
    if (name === undefined || !isLedgerEventKind(name)) return { ok: false, error: invalid("kinds", "INVALID_EVENT_KIND", `kinds: ${k} is not a LedgerEventKind`) };
    kinds.add(name);
  }
  return { ok: true, from, accounts: req.accountIds.length === 0 ? null : new Set(req.accountIds), kinds: kinds.size === 0 ? null : kinds };
}

/** The grpc-js handler of WatchLedger. */
export function watchLedgerHandler(hub: LedgerWatchHub | undefined, security: Security, logger: Logger): (call: ServerWritableStream<WatchLedgerRequest, WatchLedgerResponse>) => void {
  return (call) => {
    void (async () => {
      if (hub === undefined) {
        call.emit("error", richError(Code.UNIMPLEMENTED, "WatchLedger is not served by this process", [info("UNIMPLEMENTED", {})]));
        return;
      }
      const checked = checkCall(security, "WatchLedger", call.request, call.metadata, call);
      if (!checked.ok) {
        call.emit("error", failureToStatus(checked.error));
        return;
      }
      const parsed = parseRequest(call.request, hub.epoch);
      if (!parsed.ok) {
        call.emit("error", parsed.error);
        return;
      }
      const filter: EventFilter = { accounts: parsed.accounts, kinds: parsed.kinds, principal: checked.principal };
      let ended = false;
      let drainListener: (() => void) | null = null;
      call.on("drain", () => drainListener?.());
      const sink: WatchSink = {
        write: (e, cursor) => call.write({ event: eventToProto(e, cursor) }),
        onDrain: (l) => (drainListener = l),
        end: (why) => {
          if (ended) return;
          ended = true;
          call.emit("error", endStatus(why));
        },
      };
      const opened = await hub.open(parsed.from, filter, sink);
      if (!opened.ok) {
        call.emit(
          "error",
          opened.code === "SHUTTING_DOWN" ? endStatus({ code: "SHUTTING_DOWN_BEFORE_START" }) : opened.code === "FEED_UNAVAILABLE" ? endStatus({ code: "FEED_UNAVAILABLE_BEFORE_START" }) : endStatus(opened),
        );
        return;
      }
      // The caller learns where the stream starts before any event (resume from it after a disconnect).
      const header = new Metadata();
      header.set(START_CURSOR_HEADER, opened.startCursor);
      call.sendMetadata(header);
      const leave = (): void => {
        ended = true;
        opened.watcher.close();
      };
      call.on("cancelled", leave);
      if (call.cancelled) leave();
      else opened.watcher.begin();
    })().catch((err: unknown) => {
      logger.error({ err }, "WatchLedger failed");
      call.emit("error", richError(Code.INTERNAL, "internal error; the service logged the details", [info("INTERNAL", {})]));
    });
  };
}

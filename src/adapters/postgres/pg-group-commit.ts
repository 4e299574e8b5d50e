/**
 * Group commit: concurrent keyed mints and transfers of this replica are
 * applied together, in one transaction and one round trip
 * (`ledger/group.ts`), each with its own answer.
 *
 * When a call arrives and no group is in flight, it leaves at the end of the
 * event loop's turn, with whatever else arrived in that turn: a lone caller
 * waits for no other call. While groups are in flight (at most
 * `groupsInFlight`), calls queue; the queue leaves as one group when it
 * holds `maxItems` calls, when the oldest has waited `waitMs`, or when the
 * last group in flight ends, whichever comes first, and a free slot takes
 * it. So the wait a call adds is bounded by `waitMs` plus one group's time,
 * and under load a group carries what queued while the previous ones ran.
 *
 * A group applies an item the way the single-call path would, or refuses
 * it with the same failure; an item whose outcome the group cannot decide
 * (its key repeated in the group after an earlier item with it failed, or a
 * group that PostgreSQL refused as a whole: a lock timeout, a lost race) is
 * applied on the single-call path, which claims its key afresh. A group
 * whose connection was lost mid-statement may have committed: its items
 * answer UNAVAILABLE, and a retry with the same key replays or applies.
 *
 * The rate limiter (`admit`) runs before a mint joins a group, since the
 * group cannot stop to ask it; a mint that turns out a replay gives its slot
 * back (`unadmit`). A call without `unadmit` is not grouped.
 */
import pg from "pg";
import { entryOfEffect, mintResult, transferResult, unsealedRecord } from "../../domain/audit.js";
import { assert, type Failure } from "../../domain/errors.js";
import { completedMint, differingFields, fingerprint, parseFingerprint, type MintRecord, type StoredResult, type TransferRecord } from "../../domain/model.js";
import { isAborted, type Effect, type KeyedCall, type Wait } from "../../domain/ports.js";
import { reserveRefusal } from "../../domain/reserve.js";
import { fail, ok, type Result } from "../../domain/result.js";
import { applyGroup, type GroupItemJson, type GroupOutcome } from "./ledger/group.js";
import { journalParams } from "./postgres-audit-journal.js";
import { isoOfWallMs } from "./postgres-idempotency-store.js";
import type { PgDatabase } from "./pg-database.js";
import { classifyPgError, pgUnavailableError } from "./pg-errors.js";
import { decodeStoredResult, mintToJson, transferToJson } from "./stored-result-codec.js";

/** How calls are grouped; `maxItems` 1 turns grouping off. */
export interface GroupCommitSettings {
  /** Most calls in one group (1 to MAX_GROUP_ITEMS). */
  readonly maxItems: number;
  /** Longest a queued call waits for more while a group is in flight, in ms (0: a free slot takes the queue at once). */
  readonly waitMs: number;
  /** Most groups in flight at once (each holds one pooled connection while it runs). */
  readonly groupsInFlight: number;
}

/** Most calls in one group: well below the 4096 mints one transaction may write (migration 2801). */
export const MAX_GROUP_ITEMS = 1024;

export type Applied = { stored: StoredResult; replayed: boolean };

/** The single-call path of the store (claim, effect, commit), for what a group leaves undecided. */
export type SingleCall = (call: KeyedCall, wait: Wait) => Promise<Result<Applied>>;

interface Pending {
  readonly call: KeyedCall;
  readonly wait: Wait;
  readonly queuedMs: number;
  readonly done: (r: Promise<Result<Applied>>) => void;
}

const CANCELLED: Failure = { code: "CANCELLED", message: "the call was cancelled while it waited for its group; nothing was applied" };
const DEADLINE: Failure = { code: "DEADLINE_EXCEEDED", message: "deadline passed while the call waited for its group; nothing was applied" };

/** Whether a group can apply `effect`: transfers, and mints that neither wait for approval, charge an allowance nor settle on-chain. */
export function groupable(effect: Effect): boolean {
  if (effect.kind === "transfer") return true;
  return effect.kind === "mint" && effect.cmd.requester === undefined && effect.cmd.settle !== true;
}

export class PgGroupCommit {
  private queue: Pending[] = [];
  private inFlight = 0;
  private cancelTimer: (() => void) | null = null;
  private scheduled = false;

  constructor(
    private readonly db: PgDatabase,
    private readonly settings: GroupCommitSettings,
    /** How long a completed key replays, counted from the commit. */
    private readonly ttlMs: number,
    /** Whether each applied item appends its journal record (and the sealer is kicked after the commit). */
    private readonly journal: { kick(): void } | null,
    private readonly single: SingleCall,
  ) {
    assert(settings.maxItems >= 1 && settings.maxItems <= MAX_GROUP_ITEMS && settings.groupsInFlight >= 1 && settings.waitMs >= 0, "group commit settings in range");
  }

  /** Whether `call` goes through a group (grouping on, its effect groupable, its admission refundable). */
  accepts(call: KeyedCall): boolean {
    return this.settings.maxItems > 1 && groupable(call.effect) && (call.admit === undefined || call.unadmit !== undefined);
  }

  /**
   * Applies `call` exactly once, in a group with whatever else is queued:
   * the answer the single-call path would give. The calls of a batch
   * (`applyMany`) join the queue together, so they share groups.
   */
  async apply(call: KeyedCall, wait: Wait): Promise<Result<Applied>> {
    const [r] = await this.applyMany([{ call, wait }]);
    return r as Result<Applied>;
  }

  /** Applies each call exactly once, in as few groups as the queue allows; one answer per call, in order. */
  async applyMany(calls: readonly { call: KeyedCall; wait: Wait }[]): Promise<Result<Applied>[]> {
    const entered = await Promise.all(calls.map(async ({ call, wait }) => {
      if (isAborted(wait)) return { ready: Promise.resolve(fail<Applied>(CANCELLED)), counted: null };
      if (call.admit === undefined) return { ready: this.enqueue(call, wait), counted: null };
      const allowed = await call.admit();
      // Refused: the single-call path decides (a replay is never refused by the limiter).
      if (!allowed.ok) return { ready: this.single(call, wait), counted: null };
      return { ready: this.enqueue(withoutAdmit(call), wait), counted: call };
    }));
    return Promise.all(entered.map(async ({ ready, counted }) => {
      const r = await ready;
      // A replay never counts against the limiter: the slot taken to join the group goes back.
      if (r.ok && r.value.replayed && counted !== null) await counted.unadmit?.();
      return r;
    }));
  }

  private enqueue(call: KeyedCall, wait: Wait): Promise<Result<Applied>> {
    return new Promise<Result<Applied>>((resolve, reject) => {
      this.queue.push({ call, wait, queuedMs: this.db.clock.nowMs(), done: (r) => r.then(resolve, reject) });
      this.schedule();
    });
  }

  /**
   * Pumps once the current turn of the event loop is over, so the calls that
   * arrived in it (the streams of one socket read, the items of one batch)
   * leave together; one pump per turn however many calls arrived.
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  /** Sends groups while slots are free and the queue is due (see the top of this file). */
  private pump(): void {
    while (this.inFlight < this.settings.groupsInFlight && this.queue.length > 0) {
      const first = this.queue[0] as Pending;
      const waitedMs = this.db.clock.nowMs() - first.queuedMs;
      if (this.inFlight > 0 && this.queue.length < this.settings.maxItems && waitedMs < this.settings.waitMs) {
        if (this.cancelTimer === null) {
          this.cancelTimer = this.db.clock.setTimer(this.settings.waitMs - waitedMs, () => {
            this.cancelTimer = null;
            this.pump();
          });
        }
        return;
      }
      this.cancelTimer?.();
      this.cancelTimer = null;
      const group = this.queue.splice(0, this.settings.maxItems);
      this.inFlight++;
      void this.run(group).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async run(group: Pending[]): Promise<void> {
    const live: Pending[] = [];
    for (const p of group) {
      if (isAborted(p.wait)) p.done(Promise.resolve(fail(CANCELLED)));
      else if (this.db.remainingMs(p.wait.deadlineMs) <= 0) p.done(Promise.resolve(fail(DEADLINE)));
      else live.push(p);
    }
    // One item per key goes to the database; a repeat of it is answered from that item's outcome.
    const firsts = new Map<string, number>();
    const items: Pending[] = [];
    const repeats: { p: Pending; of: number }[] = [];
    for (const p of live) {
      const id = `${p.call.scope} ${p.call.key}`;
      const at = firsts.get(id);
      if (at !== undefined) repeats.push({ p, of: at });
      else {
        firsts.set(id, items.length);
        items.push(p);
      }
    }
    if (items.length === 0) return;
    let outcomes: Result<Applied>[] | null;
    try {
      outcomes = await this.send(items);
    } catch (err) {
      for (const p of [...items, ...repeats.map((r) => r.p)]) p.done(Promise.reject(err));
      return;
    }
    if (outcomes === null) {
      // PostgreSQL refused the group as a whole (nothing applied): each item on its own.
      for (const p of [...items, ...repeats.map((r) => r.p)]) p.done(this.single(p.call, p.wait));
      return;
    }
    items.forEach((p, i) => p.done(Promise.resolve(outcomes[i] as Result<Applied>)));
    for (const { p, of } of repeats) {
      const first = outcomes[of] as Result<Applied>;
      const firstRequest = (items[of] as Pending).call.request;
      if (!first.ok) p.done(this.single(p.call, p.wait));
      else if (fingerprint(firstRequest) === fingerprint(p.call.request)) p.done(Promise.resolve(ok({ stored: first.value.stored, replayed: true })));
      else p.done(Promise.resolve(fail({ code: "IDEMPOTENCY_KEY_REUSED", key: p.call.key, fields: differingFields(firstRequest, p.call.request) })));
    }
  }

  /**
   * One group on one connection. Null when PostgreSQL refused it (rolled
   * back, nothing applied); throws UnavailableError when it cannot be
   * reached (not applied) or the connection was lost mid-statement (outcome
   * unknown).
   */
  private async send(items: Pending[]): Promise<Result<Applied>[] | null> {
    const deadlineMs = Math.max(...items.map((p) => p.wait.deadlineMs));
    const leased = await this.db.checkout(deadlineMs);
    if (!leased.ok) return null;
    const lease = leased.value;
    const lockMs = Math.min(...items.map((p) => this.db.timeoutsFor(p.wait.deadlineMs).ms));
    const json = items.map((p, i) => this.itemJson(p.call, i));
    let outcomes: GroupOutcome[];
    try {
      outcomes = await applyGroup(lease, json, this.db.nowParam(), this.ttlMs, lockMs);
    } catch (err) {
      if (err instanceof pg.DatabaseError && classifyPgError(err) !== "connection") {
        lease.give(false);
        // A lost race (deadlock, serialization failure) is retried, on the single-call path.
        this.db.lostRace(err, false);
        this.db.logger.warn({ items: items.length, code: err.code, err: err.message }, "group commit refused; applying its calls one by one");
        return null;
      }
      lease.give(true);
      throw pgUnavailableError(err, "committing a group of calls (commit outcome unknown)");
    }
    lease.give(false);
    if (this.journal !== null && outcomes.some((o) => o.outcome === "applied")) this.journal.kick();
    return outcomes.map((o, i) => {
      const p = items[i] as Pending;
      // A caller gone while the group waited (for a key in flight elsewhere) is owed nothing but what was applied.
      if (o.outcome !== "applied" && isAborted(p.wait)) return fail(CANCELLED);
      return answer(p.call, o);
    });
  }

  /** The item as `ledger_group_apply` reads it; its stored result and journal record are those of the single-call path. */
  private itemJson(call: KeyedCall, i: number): GroupItemJson {
    const effect = call.effect;
    const common = { i, key: call.key, fp: fingerprint(call.request) };
    if (effect.kind === "transfer") {
      const t: TransferRecord = { ...effect.cmd };
      const j = this.journal === null ? undefined : journalParams(unsealedRecord(call.journal ?? entryOfEffect(effect), transferResult(t), t.createWallMs));
      return {
        ...common,
        scope: "transfer",
        id: t.transferId,
        amount: t.amountMicros.toString(),
        ct: isoOfWallMs(t.createWallMs),
        result: { scope: "transfer", transfer: transferToJson(t) },
        from: t.fromAccountId,
        to: t.toAccountId,
        ...(j === undefined ? {} : { j }),
      };
    }
    assert(effect.kind === "mint", "a group applies mints and transfers only");
    const m = completedMint(effect.cmd, 0);
    const j = this.journal === null ? undefined : journalParams(unsealedRecord(call.journal ?? entryOfEffect(effect), mintResult(m), m.createWallMs));
    return {
      ...common,
      scope: "mint",
      id: m.mintId,
      amount: m.amountMicros.toString(),
      ct: isoOfWallMs(m.createWallMs),
      result: { scope: "mint", mint: mintToJson(m) },
      account: m.accountId,
      chain: m.blockchain,
      rr: effect.reserveRequired === true,
      ...(j === undefined ? {} : { j }),
    };
  }
}

/** `call` once admitted: whatever applies it next must not count it again. */
function withoutAdmit(call: KeyedCall): KeyedCall {
  return { scope: call.scope, key: call.key, request: call.request, effect: call.effect, ...(call.journal === undefined ? {} : { journal: call.journal }) };
}

/** The answer the single-call path gives for what the group decided. */
function answer(call: KeyedCall, o: GroupOutcome): Result<Applied> {
  const effect = call.effect;
  switch (o.outcome) {
    case "applied":
      if (effect.kind === "transfer") return ok({ stored: { scope: "transfer", transfer: { ...effect.cmd } }, replayed: false });
      assert(effect.kind === "mint" && o.seq !== null, "an applied mint has its seq");
      return ok({ stored: { scope: "mint", mint: { ...completedMint(effect.cmd, 0), seq: o.seq } satisfies MintRecord }, replayed: false });
    case "replay":
      return ok({ stored: decodeStoredResult(o.stored), replayed: true });
    case "reused":
      return fail({ code: "IDEMPOTENCY_KEY_REUSED", key: call.key, fields: differingFields(parseFingerprint(o.fingerprint), call.request) });
    case "frozen":
      return fail({ code: "ACCOUNT_FROZEN", accountId: o.accountId });
    case "funds":
      return fail({ code: "INSUFFICIENT_FUNDS", accountId: o.accountId });
    case "reserve": {
      assert(effect.kind === "mint", "only a mint meets the reserve");
      const refused = reserveRefusal(o.supplyMicros, o.reserveMicros, effect.cmd.amountMicros, effect.reserveRequired === true);
      assert(refused !== null, "the group refused a mint the reserve allows");
      return fail(refused);
    }
  }
}

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
 * group cannot stop to ask it; a mint that turns out a replay, or is
 * refused, gives its slot back (`unadmit`). A call without `unadmit` is not
 * grouped.
 *
 * The calls of one batch (made with one batch context, `isBatchContext`,
 * or passed to `applyMany` together) form a lane, applied in the order they arrived as if one after
 * another: the lane sends blocks of at most `maxItems` calls, each block in
 * one group (a block is never split), the next only once the previous one
 * is answered. A block ends before a key it already holds, and before a
 * mint the limiter refused while an earlier mint of that account in the
 * block was admitted (that one may turn out a replay or be refused, giving
 * its slot back): the refused mint is admitted again at the head of the
 * next block. A mint refused with no such earlier mint goes the single-call
 * path (a replay is answered, anything else is refused) once its block is
 * answered. After a block whose group failed (the database unreachable),
 * the lane's remaining calls are not tried: they throw UnavailableError,
 * marked not applied.
 */
import pg from "pg";
import { entryOfEffect, mintResult, transferResult, unsealedRecord } from "../../domain/audit.js";
import { isBatchContext } from "../../domain/batch.js";
import { assert, UnavailableError, type Failure } from "../../domain/errors.js";
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

/** Calls that go in one group together, in order (a lane's block, or one call). */
type Unit = Pending[];

/** A call waiting in its lane. */
interface LaneEntry {
  readonly call: KeyedCall;
  readonly wait: Wait;
  readonly resolve: (r: Result<Applied>) => void;
  readonly reject: (err: unknown) => void;
}

const CANCELLED: Failure = { code: "CANCELLED", message: "the call was cancelled while it waited for its group; nothing was applied" };
const DEADLINE: Failure = { code: "DEADLINE_EXCEEDED", message: "deadline passed while the call waited for its group; nothing was applied" };

/** Whether a group can apply `effect`: transfers, and mints that neither wait for approval, charge an allowance nor settle on-chain. */
export function groupable(effect: Effect): boolean {
  if (effect.kind === "transfer") return true;
  return effect.kind === "mint" && effect.cmd.requester === undefined && effect.cmd.settle !== true;
}

export class PgGroupCommit {
  private queue: Unit[] = [];
  /** Calls in `queue`. */
  private queued = 0;
  /** The lanes with calls not yet answered, by their batch's context (or `applyMany` call). */
  private readonly lanes = new Map<object, LaneEntry[]>();
  private inFlight = 0;
  private cancelTimer: (() => void) | null = null;
  private scheduled = false;
  /**
   * The answers still to come of mints admitted on this replica, by account.
   * A mint the limiter refused waits for them before it goes the single-call
   * path: the slots they hold may be replays' (given back once answered),
   * and the key they claim may be its own (then it replays). Without the
   * wait, concurrent duplicates of one key, each admitted before its key is
   * looked at, could crowd the limiter and have a duplicate refused.
   */
  private readonly admittedMints = new Map<string, Set<Promise<unknown>>>();

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
   * the answer the single-call path would give. The calls of one batch
   * context are applied in the order they came (see the top of this file).
   */
  apply(call: KeyedCall, wait: Wait): Promise<Result<Applied>> {
    return new Promise<Result<Applied>>((resolve, reject) => {
      const entry = { call, wait, resolve, reject };
      // A call of its own is a block of one: nothing to order it behind.
      if (isBatchContext(wait)) this.join(wait, entry);
      else void this.runBlock([entry], []).catch(reject);
    });
  }

  /** Applies each call exactly once, in order, in as few groups as `maxItems` allows; one answer per call, in order. */
  applyMany(calls: readonly { call: KeyedCall; wait: Wait }[]): Promise<Result<Applied>[]> {
    const lane = {};
    return Promise.all(calls.map(({ call, wait }) => new Promise<Result<Applied>>((resolve, reject) => this.join(lane, { call, wait, resolve, reject }))));
  }

  private join(laneKey: object, entry: LaneEntry): void {
    const lane = this.lanes.get(laneKey);
    if (lane !== undefined) {
      lane.push(entry);
      return;
    }
    const entries = [entry];
    this.lanes.set(laneKey, entries);
    void this.drain(laneKey, entries);
  }

  /** Sends a lane's calls block by block, each block once the previous one is answered. */
  private async drain(laneKey: object, entries: LaneEntry[]): Promise<void> {
    // The calls made in the rest of this turn (a batch's items) join first.
    await Promise.resolve();
    try {
      while (entries.length > 0) {
        const block = this.takeBlock(entries);
        const failed = await this.runBlock(block, entries);
        if (failed !== undefined) {
          const notTried = new UnavailableError("not tried: the store could not be reached for an earlier call of this batch; nothing of this one was applied", { cause: failed, notApplied: true });
          for (const e of entries.splice(0)) e.reject(notTried);
        }
      }
    } finally {
      this.lanes.delete(laneKey);
    }
  }

  /** The lane's next block: at most `maxItems` calls, ending before a key the block already holds. */
  private takeBlock(entries: LaneEntry[]): LaneEntry[] {
    const keys = new Set<string>();
    let n = 0;
    while (n < entries.length && n < this.settings.maxItems) {
      const call = (entries[n] as LaneEntry).call;
      const id = `${call.scope} ${call.key}`;
      if (keys.has(id)) break;
      keys.add(id);
      n++;
    }
    return entries.splice(0, n);
  }

  /**
   * Admits a block's calls (in order), puts back at the lane's head what must
   * wait for this block's answers, sends the rest as one group and answers
   * each call. Returns the error a group failed with, if any.
   */
  private async runBlock(block: LaneEntry[], lane: LaneEntry[]): Promise<unknown> {
    const admissions = await Promise.all(block.map((e) => (e.call.admit === undefined || isAborted(e.wait) ? Promise.resolve(null) : Promise.resolve(e.call.admit()))));
    let cut = block.length;
    const admittedAccounts = new Set<string>();
    for (let j = 0; j < block.length; j++) {
      const a = admissions[j];
      if (a === null || a === undefined) continue;
      const account = limitedAccount((block[j] as LaneEntry).call);
      if (a.ok) admittedAccounts.add(account);
      else if (admittedAccounts.has(account)) {
        cut = j;
        break;
      }
    }
    // Past the cut: admitted again, in order, in the next block.
    await Promise.all(block.slice(cut).map((e, j) => (admissions[cut + j]?.ok === true ? (e.call.unadmit?.() ?? Promise.resolve()) : Promise.resolve())));
    lane.unshift(...block.slice(cut));
    const now = block.slice(0, cut);
    const sent: { e: LaneEntry; admitted: boolean }[] = [];
    const refused: LaneEntry[] = [];
    now.forEach((e, j) => {
      const a = admissions[j];
      if (a !== null && a !== undefined && !a.ok) refused.push(e);
      else sent.push({ e, admitted: a !== null && a !== undefined });
    });
    let failed: unknown;
    if (sent.length > 0) {
      // Settles once every admitted mint of this block is answered and its slot, if due, given back.
      let blockDone = (): void => undefined;
      const answered = new Promise<void>((resolve) => (blockDone = resolve));
      for (const { e, admitted } of sent) if (admitted) this.trackAdmitted(limitedAccount(e.call), answered);
      const answers = await Promise.allSettled(this.enqueue(sent.map(({ e, admitted }) => ({ call: admitted ? withoutAdmit(e.call) : e.call, wait: e.wait }))));
      try {
        for (let i = 0; i < sent.length; i++) {
          const { e, admitted } = sent[i] as { e: LaneEntry; admitted: boolean };
          const answer = answers[i] as PromiseSettledResult<Result<Applied>>;
          if (answer.status === "rejected") {
            failed ??= answer.reason;
            e.reject(answer.reason);
            continue;
          }
          // Replays never count, and a refused call applied nothing: the slot goes back before the next block is admitted.
          if (admitted && (!answer.value.ok || answer.value.value.replayed)) await e.call.unadmit?.();
          e.resolve(answer.value);
        }
      } finally {
        blockDone();
      }
    }
    // Refused by the limiter: the single-call path answers a replay, and refuses anything else.
    for (const e of refused) {
      if (failed !== undefined) e.reject(new UnavailableError("not tried: the store could not be reached for an earlier call of this batch", { cause: failed, notApplied: true }));
      else {
        const before = this.admittedMints.get(limitedAccount(e.call));
        if (before !== undefined) await Promise.allSettled([...before]);
        await this.single(e.call, e.wait).then(e.resolve, e.reject);
      }
    }
    return failed;
  }

  /** Notes an admitted mint's answer to come (see `admittedMints`) until it settles. */
  private trackAdmitted(account: string, answer: Promise<unknown>): void {
    let set = this.admittedMints.get(account);
    if (set === undefined) this.admittedMints.set(account, (set = new Set()));
    set.add(answer);
    const done = (): void => {
      set.delete(answer);
      if (set.size === 0 && this.admittedMints.get(account) === set) this.admittedMints.delete(account);
    };
    answer.then(done, done);
  }

  /** Queues `calls` as one unit (one group takes all of them); one answer each. */
  private enqueue(calls: readonly { call: KeyedCall; wait: Wait }[]): Promise<Result<Applied>>[] {
    const unit: Unit = [];
    const queuedMs = this.db.clock.nowMs();
    const answers = calls.map(
      ({ call, wait }) =>
        new Promise<Result<Applied>>((resolve, reject) => {
          unit.push({ call, wait, queuedMs, done: (r) => r.then(resolve, reject) });
        }),
    );
    this.queue.push(unit);
    this.queued += unit.length;
    this.schedule();
    return answers;
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

  /** Sends groups while slots are free and the queue is due (see the top of this file); a unit is never split. */
  private pump(): void {
    while (this.inFlight < this.settings.groupsInFlight && this.queue.length > 0) {
      const first = (this.queue[0] as Unit)[0] as Pending;
      const waitedMs = this.db.clock.nowMs() - first.queuedMs;
      if (this.inFlight > 0 && this.queued < this.settings.maxItems && waitedMs < this.settings.waitMs) {
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
      const units: Unit[] = [];
      let items = 0;
      while (this.queue.length > 0 && (units.length === 0 || items + (this.queue[0] as Unit).length <= this.settings.maxItems)) {
        const unit = this.queue.shift() as Unit;
        units.push(unit);
        items += unit.length;
      }
      this.queued -= items;
      this.inFlight++;
      void this.run(units).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async run(units: Unit[]): Promise<void> {
    const live: Pending[] = [];
    for (const p of units.flat()) {
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
      // PostgreSQL refused the group as a whole (nothing applied): each item on its own, a unit's in its order.
      const undecided = new Set([...items, ...repeats.map((r) => r.p)]);
      for (const unit of units) void this.oneByOne(unit.filter((p) => undecided.has(p)));
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

  /** Applies `calls` on the single-call path, one after another. */
  private async oneByOne(calls: Pending[]): Promise<void> {
    for (const p of calls) {
      const r = this.single(p.call, p.wait);
      p.done(r);
      await r.catch(() => undefined);
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

/** The account a mint's admission counts against; a transfer is never admitted. */
function limitedAccount(call: KeyedCall): string {
  return call.effect.kind === "mint" ? call.effect.cmd.accountId : "";
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

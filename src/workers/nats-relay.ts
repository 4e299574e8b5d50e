/**
 * The JetStream relay: reads the ledger's event feed (the one WatchLedger
 * streams) and publishes every event, in feed order, to a JetStream stream,
 * exactly once.
 *
 * Exactly once, in order:
 * - The resume point is the stream itself: at start, and after any failure,
 *   the relay reads the stream's newest message; its headers carry the feed
 *   epoch and position of the event it holds, and the relay goes on with the
 *   event after it. Nothing the relay keeps in memory or in the store can
 *   disagree with what the stream holds, so a restart or a failover neither
 *   skips nor repeats an event, however long it took (the duplicate window
 *   plays no part in it).
 * - Publishes are pipelined in windows (`windowEvents` at once, then the
 *   acknowledgements are awaited); each names the stream sequence it must
 *   follow (Nats-Expected-Last-Sequence). JetStream stores nothing out of
 *   order: when one publish is lost, every later one of its window is
 *   refused, and the relay reads the stream's tail again. Its position only
 *   moves past an event JetStream acknowledged.
 * - The event id is the Nats-Msg-Id: a publish whose acknowledgement was lost
 *   and that is sent again within the duplicate window is dropped by
 *   JetStream (a publish still buffered in the client when it reconnects).
 * - One relay per stream across replicas (RelayLock); the expected sequence
 *   also refuses a relay that lost its lock and has not noticed yet.
 *
 * Backpressure: the relay holds one window in memory. While NATS is down it
 * retries with a growing pause (up to `maxBackoffMs`); the events wait in the
 * feed (memory or PostgreSQL, kept for MINT_WATCH_RETENTION) and the lag
 * metrics grow. Events the feed deleted before the relay published them are
 * counted as missed and logged.
 */
import type { Clock } from "../domain/clock.js";
import { comparePositions, encodeCursor, FEED_START, type FeedPosition, type LedgerEvent, type LedgerEventFeed } from "../domain/ledger-events.js";
import type { PublishAck, RelayTarget, StreamTail } from "../adapters/nats/jetstream-target.js";
import type { RelayLock } from "./nats-relay-lock.js";

export type RelayState = "starting" | "standby" | "publishing" | "caught_up" | "unavailable" | "stopped";

export interface RelayStatus {
  readonly state: RelayState;
  /** This replica holds the stream's lock. */
  readonly active: boolean;
  readonly published: number;
  readonly failed: number;
  readonly duplicates: number;
  readonly missed: number;
  /** Events in the feed not yet in the stream (counted by the active relay; 0 on a standby). */
  readonly lagEvents: number;
  /** Age of the oldest event not yet in the stream, in seconds (0 when caught up). */
  readonly lagSeconds: number;
  readonly lastError: string | null;
}

export interface RelayOptions {
  readonly feed: LedgerEventFeed;
  readonly target: RelayTarget;
  readonly lock: RelayLock;
  readonly clock: Clock;
  /** How often the feed is read when it does not wake the relay itself (a standby tries the lock every second, or this if longer). */
  readonly pollIntervalMs: number;
  /** Publishes in flight at once. */
  readonly windowEvents: number;
  readonly maxBackoffMs?: number;
  /** Counts events after a position (lag); bounded by `cap`. */
  readonly countAfter?: (p: FeedPosition, cap: number) => Promise<number>;
  readonly onError?: (err: unknown, what: string) => void;
  readonly onMissed?: (from: FeedPosition, to: FeedPosition) => void;
  /** Publishing works again after failures. */
  readonly onRecovered?: () => void;
}

const LAG_COUNT_CAP = 1_000_000;
/** How often a standby tries the lock (at least). */
const STANDBY_RETRY_MS = 1_000;
/** Windows in flight at once: the next is read and sent while the one before is acknowledged. */
const PIPELINE_WINDOWS = 2;
const LAG_REFRESH_MS = 1_000;

export class NatsRelay {
  private state: RelayState = "starting";
  private active = false;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private pos: FeedPosition = FEED_START;
  private seq = 0;
  private synced = false;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private backoffMs = 0;
  private lastError: string | null = null;
  /** The oldest event read and not yet in the stream (null when caught up). */
  private oldestPendingMs: number | null = null;
  private lagEvents = 0;
  private lagCheckedMs = -Infinity;
  published = 0;
  failed = 0;
  duplicates = 0;
  missed = 0;

  constructor(readonly opts: RelayOptions) {}

  start(): void {
    if (this.loop !== null) return;
    this.opts.feed.onAppend?.(() => this.wake());
    this.loop = this.run();
  }

  /** Stops publishing, releases the lock and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    // Pending acknowledgements fail at once; the stream keeps what it stored.
    await this.opts.target.close();
    await this.loop;
    await this.opts.lock.release().catch(() => undefined);
    await this.opts.lock.close();
    this.active = false;
    this.state = "stopped";
  }

  wake(): void {
    this.woken = true;
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  status(): RelayStatus {
    const caughtUp = this.oldestPendingMs === null;
    return {
      state: this.state,
      active: this.active,
      published: this.published,
      failed: this.failed,
      duplicates: this.duplicates,
      missed: this.missed,
      lagEvents: this.active ? this.lagEvents : 0,
      lagSeconds: !this.active || caughtUp ? 0 : Math.max(0, (this.opts.clock.wallMs() - (this.oldestPendingMs as number)) / 1000),
      lastError: this.lastError,
    };
  }

  /** The position of the last event the stream holds (as this relay knows it). */
  get position(): FeedPosition {
    return this.pos;
  }

  private async pause(ms: number): Promise<void> {
    if (this.stopped) return;
    if (this.woken) {
      this.woken = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.wakeUp = null;
        resolve();
      }, ms);
      t.unref();
      this.wakeUp = () => {
        clearTimeout(t);
        resolve();
      };
    });
    this.woken = false;
  }

  private fail(err: unknown, what: string): void {
    this.synced = false;
    this.lastError = err instanceof Error ? err.message : String(err);
    this.opts.onError?.(err, what);
    this.backoffMs = Math.min(this.opts.maxBackoffMs ?? 5_000, Math.max(100, this.backoffMs * 2));
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (!(await this.opts.lock.tryAcquire())) {
          this.active = false;
          this.synced = false;
          this.state = "standby";
          await this.pause(Math.max(this.opts.pollIntervalMs, STANDBY_RETRY_MS));
          continue;
        }
        this.active = true;
        if (!this.synced) {
          await this.opts.target.open();
          if (this.stopped) break;
          this.resumeFrom(await this.opts.target.tail());
          this.synced = true;
        }
        await this.step();
        if (this.backoffMs > 0) {
          this.backoffMs = 0;
          this.lastError = null;
          this.opts.onRecovered?.();
        }
      } catch (err) {
        if (this.stopped) break;
        this.state = "unavailable";
        this.fail(err, "relay");
        await this.peekLag();
        await this.pause(this.backoffMs);
      }
    }
  }

  /** Goes on after the stream's newest message (the start of the feed when it holds none of this feed's). */
  private resumeFrom(tail: StreamTail): void {
    this.seq = tail.lastSeq;
    if (tail.epoch === this.opts.feed.epoch && tail.position !== null) {
      this.pos = tail.position;
      return;
    }
    if (tail.lastSeq > 0 && (tail.epoch === null || tail.position === null)) {
      // Aged out, purged, or written by someone else: what was published cannot be told.
      this.opts.onError?.(new Error(`the stream's newest message (sequence ${tail.lastSeq}) is gone or was not written by the relay: publishing again from the oldest event the feed keeps`), "resume");
    }
    this.pos = FEED_START;
  }

  /** The events after `after` (one window); events retention deleted first are counted missed. */
  private async readWindow(after: FeedPosition): Promise<LedgerEvent[]> {
    const page = await this.opts.feed.read(after, this.opts.windowEvents);
    let from = after;
    if (comparePositions(page.prunedThrough, after) > 0) {
      // Retention deleted events the stream never got.
      this.missed++;
      this.opts.onMissed?.(after, page.prunedThrough);
      from = page.prunedThrough;
      if (comparePositions(after, this.pos) === 0) this.pos = from;
    }
    return page.events.filter((e) => comparePositions(e.position, from) > 0);
  }

  /**
   * Publishes from the feed while it has events: one window at a time is
   * sent, and the next is read and sent while the one before is being
   * acknowledged (PIPELINE_WINDOWS in flight). Returns once caught up;
   * throws at the first publish that failed (after every window in flight
   * settled), with the position after the last acknowledged event.
   */
  private async step(): Promise<void> {
    const first = await this.readWindow(this.pos);
    if (this.stopped) return;
    if (first.length === 0) {
      this.state = "caught_up";
      this.oldestPendingMs = null;
      this.lagEvents = 0;
      await this.pause(this.opts.pollIntervalMs);
      return;
    }
    this.oldestPendingMs = (first[0] as LedgerEvent).timeMs;
    this.state = "publishing";
    const inflight: { events: LedgerEvent[]; settled: Promise<PromiseSettledResult<PublishAck>[]> }[] = [];
    let sentSeq = this.seq;
    let sentPos = this.pos;
    let more = true;
    const send = async (events: LedgerEvent[]): Promise<boolean> => {
      await this.refreshLag(events.length === this.opts.windowEvents, events.length);
      if (this.stopped || !(await this.opts.lock.held())) {
        this.active = false;
        this.synced = false;
        return false;
      }
      const target = this.opts.target;
      const epoch = this.opts.feed.epoch;
      const base = sentSeq;
      inflight.push({ events, settled: Promise.allSettled(events.map((e, i) => target.publish(e, encodeCursor(epoch, e.position), epoch, base + i))) });
      sentSeq += events.length;
      sentPos = (events[events.length - 1] as LedgerEvent).position;
      more = events.length === this.opts.windowEvents;
      return true;
    };
    if (!(await send(first))) return;
    while (inflight.length > 0) {
      if (more && inflight.length < PIPELINE_WINDOWS && !this.stopped && this.synced) {
        const next = await this.readWindow(sentPos);
        if (next.length > 0) {
          await send(next);
          continue;
        }
        more = false;
      }
      const w = inflight.shift() as (typeof inflight)[number];
      const err = this.settle(w.events, await w.settled);
      const waiting = inflight[0]?.events[0];
      if (err === null && waiting !== undefined) this.oldestPendingMs = waiting.timeMs;
      if (err !== null) {
        for (const rest of inflight) for (const r of await rest.settled) if (r.status === "rejected") this.failed++;
        throw err;
      }
    }
  }

  /** Takes one window's acknowledgements in order; returns the first failure (null when all were stored in order). */
  private settle(events: readonly LedgerEvent[], results: readonly PromiseSettledResult<PublishAck>[]): unknown {
    let seq = this.seq;
    let firstError: unknown = null;
    let done = 0;
    for (let i = 0; i < results.length; i++) {
      const r = results[i] as PromiseSettledResult<PublishAck>;
      if (r.status === "rejected") {
        firstError ??= r.reason;
        this.failed++;
        continue;
      }
      if (firstError !== null) continue;
      if (r.value.duplicate) {
        // Already in the stream (sent before, within the duplicate window): its place is taken, the tail is read again.
        this.duplicates++;
        done = i + 1;
        firstError = new Error(`event ${(events[i] as LedgerEvent).id} was already in the stream`);
        continue;
      }
      if (r.value.seq !== seq + 1) {
        firstError = new Error(`JetStream stored event ${(events[i] as LedgerEvent).id} at sequence ${r.value.seq}, expected ${seq + 1}`);
        continue;
      }
      seq = r.value.seq;
      done = i + 1;
      this.published++;
    }
    if (done > 0) this.pos = (events[done - 1] as LedgerEvent).position;
    this.seq = seq;
    this.lagEvents = Math.max(0, this.lagEvents - done);
    const next = events[done];
    if (next !== undefined) this.oldestPendingMs = next.timeMs;
    else if (firstError === null) this.oldestPendingMs = null;
    return firstError;
  }

  /** Lag in events: the window read when it was not full, else counted in the feed (at most once a second). */
  private async refreshLag(full: boolean, read: number): Promise<void> {
    if (!full) {
      this.lagEvents = read;
      return;
    }
    const now = this.opts.clock.nowMs();
    if (this.opts.countAfter === undefined || now - this.lagCheckedMs < LAG_REFRESH_MS) {
      this.lagEvents = Math.max(this.lagEvents, read);
      return;
    }
    this.lagCheckedMs = now;
    this.lagEvents = await this.opts.countAfter(this.pos, LAG_COUNT_CAP).catch(() => Math.max(this.lagEvents, read));
  }

  /** While JetStream is unreachable: how far behind the feed is (for the lag metrics). */
  private async peekLag(): Promise<void> {
    try {
      const page = await this.opts.feed.read(this.pos, 1);
      const first = page.events.find((e) => comparePositions(e.position, this.pos) > 0);
      if (first !== undefined) {
        this.oldestPendingMs ??= first.timeMs;
        await this.refreshLag(true, 1);
      }
    } catch {
      // The feed is down too; the lag stays as last known.
    }
  }
}

/**
 * One hub per replica feeds every WatchLedger stream of that replica: a
 * single poller reads the feed (PostgreSQL: every poll interval; memory: when
 * the store appends) and hands each new event to every live watcher. The hub
 * keeps the newest events in a ring, so a watcher resuming from a recent
 * cursor starts from memory; one resuming from further back reads the feed
 * page by page, each page only once its consumer has taken the one before,
 * and joins the live watchers when it reaches the ring.
 *
 * Exactly once, in order, no gap: a watcher's `pos` is the last position it
 * has handled (sent, or passed over by its filter). It takes an event only
 * when the event's position is above `pos`, and it goes live (hub batches)
 * only in the same synchronous stretch in which it took the ring's events up
 * to the hub's head, so the next batch starts right after.
 *
 * Bound: a watcher holds at most `bufferEvents` events its consumer has not
 * taken (beyond what the transport itself buffers); one more ends its stream
 * CONSUMER_TOO_SLOW with the cursor to resume from.
 */
import type { Clock } from "./clock.js";
import { comparePositions, encodeCursor, eventPasses, FEED_START, type EventFilter, type FeedPosition, type LedgerEvent, type LedgerEventFeed } from "./ledger-events.js";

/** Why a stream ended (besides its caller going away). */
export type WatchEnd =
  | { readonly code: "CONSUMER_TOO_SLOW"; readonly resumeCursor: string; readonly bufferEvents: number }
  | { readonly code: "SHUTTING_DOWN"; readonly resumeCursor: string }
  | { readonly code: "CURSOR_EXPIRED"; readonly oldestCursor: string }
  | { readonly code: "FEED_UNAVAILABLE"; readonly resumeCursor: string };

/** Where a watcher writes: the transport's stream. */
export interface WatchSink {
  /** Sends one event; false when the transport's buffer is full (then `onDrain` is called once it has room). */
  write(event: LedgerEvent, cursor: string): boolean;
  onDrain(listener: () => void): void;
  /** Ends the stream (once). */
  end(why: WatchEnd): void;
}

export interface WatchHubOptions {
  readonly feed: LedgerEventFeed;
  readonly clock: Clock;
  /** How often the feed is read when it does not wake the hub itself. */
  readonly pollIntervalMs: number;
  /** Most events waiting for one consumer; past it the stream ends CONSUMER_TOO_SLOW. */
  readonly bufferEvents: number;
  /** Most streams open at once on this replica. */
  readonly maxWatchers: number;
  /** Events older than this are deleted (cursors before them are expired). */
  readonly retentionMs: number;
  /** Newest events kept in memory for resuming watchers: at least this many, at most a quarter more (default 10,000). */
  readonly ringEvents?: number;
  /** Events per feed read. */
  readonly pageEvents?: number;
  /** Told of a failed prune, and of the first failed poll of a streak (the hub retries). */
  readonly onError?: (err: unknown, what: "poll" | "prune") => void;
}

export type OpenOutcome =
  | { readonly ok: true; readonly watcher: Watcher; readonly startCursor: string }
  | { readonly ok: false; readonly code: "WATCHERS_LIMIT"; readonly maxWatchers: number }
  | { readonly ok: false; readonly code: "SHUTTING_DOWN" }
  | { readonly ok: false; readonly code: "CURSOR_EXPIRED"; readonly oldestCursor: string }
  /** The feed could not be read (PostgreSQL unreachable): nothing was sent; open again later. */
  | { readonly ok: false; readonly code: "FEED_UNAVAILABLE" };

const PRUNE_INTERVAL_MS = 60_000;
const PRUNE_BATCH = 10_000;

export class LedgerWatchHub {
  private readonly watchers = new Set<Watcher>();
  private readonly ring: LedgerEvent[] = [];
  /** Every event after ringStart up to head is in the ring. */
  private ringStart: FeedPosition = FEED_START;
  private headPos: FeedPosition = FEED_START;
  private prunedThrough: FeedPosition = FEED_START;
  private stopped = false;
  private started = false;
  private timer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  private again = false;
  /** A failing feed is reported once per streak, not on every poll. */
  private failing = false;
  readonly ringEvents: number;
  readonly pageEvents: number;
  /** Events the poller has read since start (metrics, bench). */
  eventsRead = 0;

  constructor(readonly opts: WatchHubOptions) {
    this.ringEvents = opts.ringEvents ?? 10_000;
    // A page never exceeds the bound, so a consumer that keeps up is never cut off by one burst.
    this.pageEvents = Math.max(1, Math.min(opts.pageEvents ?? 1_000, opts.bufferEvents));
  }

  get epoch(): string {
    return this.opts.feed.epoch;
  }

  get head(): FeedPosition {
    return this.headPos;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Reads the feed's head and starts polling and pruning. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.headPos = await this.opts.feed.head();
    this.ringStart = this.headPos;
    this.opts.feed.onAppend?.(() => this.wake());
    this.schedule();
    this.pruneTimer = setInterval(() => void this.pruneNow(), Math.min(PRUNE_INTERVAL_MS, Math.max(1_000, this.opts.retentionMs)));
    this.pruneTimer.unref();
  }

  /** Deletes events past the retention (also run every minute). */
  async pruneNow(): Promise<number> {
    let total = 0;
    try {
      const before = this.opts.clock.wallMs() - this.opts.retentionMs;
      for (;;) {
        const n = await this.opts.feed.prune(before, PRUNE_BATCH);
        total += n;
        if (n < PRUNE_BATCH || this.stopped) break;
      }
    } catch (err) {
      this.opts.onError?.(err, "prune");
    }
    return total;
  }

  cursorOf(p: FeedPosition): string {
    return encodeCursor(this.epoch, p);
  }

  /**
   * Opens a watcher at `from` ("now": after the head; "oldest": the oldest
   * event kept; a position: the first event after it); it sends nothing
   * until `begin()`. The caller checked the cursor's epoch.
   */
  async open(from: FeedPosition | "now" | "oldest", filter: EventFilter, sink: WatchSink): Promise<OpenOutcome> {
    if (this.stopped) return { ok: false, code: "SHUTTING_DOWN" };
    if (this.watchers.size >= this.opts.maxWatchers) return { ok: false, code: "WATCHERS_LIMIT", maxWatchers: this.opts.maxWatchers };
    let pos: FeedPosition;
    let first: LedgerEvent[] | null = null;
    if (from === "now") {
      pos = this.headPos;
    } else {
      // The first page is read from the feed, even when the ring holds it:
      // it says whether the cursor is still retained.
      const after = from === "oldest" ? FEED_START : from;
      let page;
      try {
        page = await this.opts.feed.read(after, this.pageEvents);
      } catch {
        return { ok: false, code: "FEED_UNAVAILABLE" };
      }
      if (from === "oldest") {
        pos = page.prunedThrough;
      } else {
        if (comparePositions(page.prunedThrough, after) > 0) return { ok: false, code: "CURSOR_EXPIRED", oldestCursor: this.cursorOf(page.prunedThrough) };
        pos = after;
      }
      first = page.events.filter((e) => comparePositions(e.position, pos) > 0);
      if (this.stopped) return { ok: false, code: "SHUTTING_DOWN" };
      if (this.watchers.size >= this.opts.maxWatchers) return { ok: false, code: "WATCHERS_LIMIT", maxWatchers: this.opts.maxWatchers };
    }
    const w = new Watcher(this, pos, filter, sink, first);
    this.watchers.add(w);
    return { ok: true, watcher: w, startCursor: this.cursorOf(pos) };
  }

  /** Ends every stream at once with its resume cursor; no new ones open. */
  shutdown(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer);
    for (const w of [...this.watchers]) w.finish({ code: "SHUTTING_DOWN", resumeCursor: this.cursorOf(w.resumePos) });
  }

  /** Resolves once the poll in progress (if any) is done (before the feed closes). */
  async idle(): Promise<void> {
    await this.polling;
  }

  remove(w: Watcher): void {
    this.watchers.delete(w);
  }

  /** Whether every event after `p` up to the head is in the ring. */
  ringCovers(p: FeedPosition): boolean {
    return comparePositions(p, this.ringStart) >= 0;
  }

  /** The ring's events after `p`, ascending. */
  ringAfter(p: FeedPosition): LedgerEvent[] {
    let lo = 0;
    let hi = this.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (comparePositions((this.ring[mid] as LedgerEvent).position, p) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return this.ring.slice(lo);
  }

  /** Reads the feed now (the memory feed calls it on append; tests and benches may too). */
  wake(): void {
    if (this.stopped || !this.started) return;
    if (this.polling !== null) {
      this.again = true;
      return;
    }
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.polling = this.poll().finally(() => {
      this.polling = null;
      if (this.again) {
        this.again = false;
        this.wake();
      } else {
        this.schedule();
      }
    });
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.wake(), this.opts.pollIntervalMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    try {
      for (;;) {
        const page = await this.opts.feed.read(this.headPos, this.pageEvents);
        this.prunedThrough = page.prunedThrough;
        if (this.stopped) return;
        this.failing = false;
        if (page.events.length > 0) this.publish(page.events);
        if (page.events.length < this.pageEvents) return;
        // A backlog: let the transports drain between pages.
        await new Promise((r) => setImmediate(r));
      }
    } catch (err) {
      if (!this.failing) this.opts.onError?.(err, "poll");
      this.failing = true;
    }
  }

  private publish(events: readonly LedgerEvent[]): void {
    for (const e of events) {
      if (comparePositions(e.position, this.headPos) <= 0) continue;
      this.ring.push(e);
      this.headPos = e.position;
      this.eventsRead++;
    }
    // Trimmed a quarter ring at a time, not on every poll: a splice moves every
    // event kept, and the memory feed wakes a poll per change (per item of a
    // batch), so a trim per poll would move the whole ring per change.
    const excess = this.ring.length - this.ringEvents;
    if (excess > 0 && excess >= Math.max(1, this.ringEvents >> 2)) {
      this.ringStart = (this.ring[excess - 1] as LedgerEvent).position;
      this.ring.splice(0, excess);
    }
    for (const w of this.watchers) if (w.live) w.takeAll(events);
  }
}

/** One stream: its position, its filter and the events its consumer has not taken yet. */
export class Watcher {
  /** The last position handled (sent or filtered out). */
  pos: FeedPosition;
  /** Everything at or before this was sent or filtered out: the cursor to resume from. */
  resumePos: FeedPosition;
  live = false;
  ended = false;
  private readonly queue: LedgerEvent[] = [];
  private waiting = false;
  private drained: (() => void) | null = null;

  constructor(
    private readonly hub: LedgerWatchHub,
    start: FeedPosition,
    private readonly filter: EventFilter,
    private readonly sink: WatchSink,
    /** The first page read from the feed when the watcher starts behind the ring; null to start from the ring. */
    private first: readonly LedgerEvent[] | null,
  ) {
    this.pos = start;
    this.resumePos = start;
    sink.onDrain(() => {
      this.waiting = false;
      this.pump();
      const d = this.drained;
      if (d !== null && this.queue.length === 0) {
        this.drained = null;
        d();
      }
    });
  }

  /** Starts sending (after the caller was told the start cursor). */
  begin(): void {
    const first = this.first;
    this.first = null;
    if (first !== null) {
      for (const e of first) this.take(e);
      this.pump();
    }
    void this.catchUp();
  }

  get buffered(): number {
    return this.queue.length;
  }

  /** Takes one event if it is after `pos`: queued when it passes the filter, else passed over. */
  take(e: LedgerEvent): void {
    if (this.ended || comparePositions(e.position, this.pos) <= 0) return;
    this.pos = e.position;
    if (eventPasses(e, this.filter)) this.queue.push(e);
    else if (this.queue.length === 0) this.resumePos = e.position;
  }

  takeAll(events: readonly LedgerEvent[]): void {
    for (const e of events) this.take(e);
    this.pump();
  }

  /** Writes queued events while the transport has room; ends the stream past the bound. */
  pump(): void {
    if (this.ended) return;
    while (!this.waiting && this.queue.length > 0) {
      const e = this.queue.shift() as LedgerEvent;
      this.resumePos = e.position;
      if (!this.sink.write(e, this.hub.cursorOf(e.position))) this.waiting = true;
    }
    if (this.queue.length === 0) this.resumePos = this.pos;
    if (this.queue.length > this.hub.opts.bufferEvents) {
      this.finish({ code: "CONSUMER_TOO_SLOW", resumeCursor: this.hub.cursorOf(this.resumePos), bufferEvents: this.hub.opts.bufferEvents });
    }
  }

  /**
   * Reads on until live: from the ring when it holds everything after `pos`,
   * else from the feed, one page at a time, each once the consumer has taken
   * the one before. Going live happens in the same synchronous stretch as
   * taking the ring's last events, so the hub's next batch follows on.
   */
  async catchUp(): Promise<void> {
    const page = this.hub.pageEvents;
    try {
      while (!this.ended) {
        if (this.queue.length > 0 || this.waiting) {
          await new Promise<void>((resolve) => (this.drained = resolve));
          continue;
        }
        if (this.hub.ringCovers(this.pos)) {
          const rest = this.hub.ringAfter(this.pos);
          for (let i = 0; i < rest.length && i < page; i++) this.take(rest[i] as LedgerEvent);
          if (rest.length <= page) this.live = true;
          this.pump();
          if (this.live) return;
          continue;
        }
        const read = await this.hub.opts.feed.read(this.pos, page);
        if (this.ended) return;
        if (comparePositions(read.prunedThrough, this.pos) > 0) {
          this.finish({ code: "CURSOR_EXPIRED", oldestCursor: this.hub.cursorOf(read.prunedThrough) });
          return;
        }
        if (read.events.length === 0) {
          // Nothing after pos below the feed's horizon: what follows is in the ring or in the hub's next batches.
          const rest = this.hub.ringAfter(this.pos);
          for (const e of rest) this.take(e);
          this.live = true;
          this.pump();
          return;
        }
        for (const e of read.events) this.take(e);
        this.pump();
      }
    } catch {
      this.finish({ code: "FEED_UNAVAILABLE", resumeCursor: this.hub.cursorOf(this.resumePos) });
    }
  }

  /** Ends the stream (once) and leaves the hub. */
  finish(why: WatchEnd): void {
    if (this.ended) return;
    this.close();
    this.sink.end(why);
  }

  /** Leaves the hub without ending the stream (the caller went away). */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.live = false;
    this.hub.remove(this);
    const d = this.drained;
    this.drained = null;
    d?.();
  }
}

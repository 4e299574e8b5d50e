/**
 * One relay per JetStream stream across replicas, the same kind of lock the
 * settlement sender takes: on PostgreSQL a session-level advisory lock on a
 * dedicated connection (keyed by the stream's name), lost with that
 * connection; in memory an in-process table (a memory store has one
 * process). The stream's expected-sequence check stays the last word: a
 * relay that lost its lock without noticing yet is refused by JetStream at
 * its next publish after the new holder's first one.
 */
import pg from "pg";

export interface RelayLock {
  /** Takes the lock when free (true also when this relay holds it already). */
  tryAcquire(): Promise<boolean>;
  /** True while this relay still holds it. */
  held(): Promise<boolean>;
  release(): Promise<void>;
  close(): Promise<void>;
}

/** Advisory lock class of the relay ("nats"); the object id is hashtext(stream name). */
const RELAY_LOCK_CLASS = 0x6e617473;

export class PgRelayLock implements RelayLock {
  private client: pg.Client | null = null;
  private holding = false;

  constructor(
    private readonly connect: () => Promise<pg.Client>,
    private readonly stream: string,
  ) {}

  private async session(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const c = await this.connect();
    c.on("error", () => {
      // The session is gone and the lock with it.
      if (this.client === c) {
        this.client = null;
        this.holding = false;
      }
    });
    this.client = c;
    return c;
  }

  async tryAcquire(): Promise<boolean> {
    const c = await this.session();
    if (this.holding) return true;
    const res = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok", [RELAY_LOCK_CLASS, this.stream]);
    this.holding = res.rows[0]?.ok === true;
    return this.holding;
  }

  async held(): Promise<boolean> {
    const c = this.client;
    if (!this.holding || c === null) return false;
    try {
      const res = await c.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = $1 AND objid = (hashtext($2)::bigint & 4294967295)::oid AND granted",
        [RELAY_LOCK_CLASS, this.stream],
      );
      this.holding = res.rows[0]?.n === "1";
    } catch {
      this.holding = false;
    }
    return this.holding;
  }

  async release(): Promise<void> {
    const c = this.client;
    if (!this.holding || c === null) return;
    this.holding = false;
    await c.query("SELECT pg_advisory_unlock($1, hashtext($2))", [RELAY_LOCK_CLASS, this.stream]).catch(() => undefined);
  }

  /** Ends the session (releasing the lock). */
  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.holding = false;
    await c?.end().catch(() => undefined);
  }
}

const IN_PROCESS = new Map<string, object>();

export class InProcessRelayLock implements RelayLock {
  private readonly owner = {};
  constructor(private readonly stream: string) {}

  async tryAcquire(): Promise<boolean> {
    const holder = IN_PROCESS.get(this.stream);
    if (holder !== undefined && holder !== this.owner) return false;
    IN_PROCESS.set(this.stream, this.owner);
    return true;
  }

  async held(): Promise<boolean> {
    return IN_PROCESS.get(this.stream) === this.owner;
  }

  async release(): Promise<void> {
    if (IN_PROCESS.get(this.stream) === this.owner) IN_PROCESS.delete(this.stream);
  }

  async close(): Promise<void> {
    await this.release();
  }
}

/**
 * A TCP relay in front of PostgreSQL that a test can cut and restore, to play
 * a database outage without touching the shared server. Stopping it refuses
 * new connections and kills the open ones; starting it again on the same
 * port lets the service reconnect by itself.
 */
import net from "node:net";
import { PG_SERVER_URL } from "./pg-test-database.js";

export class PgRelay {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly targetUrl: string = PG_SERVER_URL) {}

  /** Listens on 127.0.0.1:`port` (0 = any free port; pass the old port to come back where clients expect it). */
  async start(port = this.port): Promise<void> {
    const target = new URL(this.targetUrl);
    const server = net.createServer((inbound) => {
      const outbound = net.connect(Number(target.port || 5432), target.hostname);
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => {
          this.sockets.delete(s);
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.port = (server.address() as net.AddressInfo).port;
  }

  /** Refuses new connections and kills the open ones, like a database going down. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get running(): boolean {
    return this.server !== null;
  }

  /** The URL of `database` through the relay (trust auth as user postgres). */
  url(database: string): string {
    const target = new URL(this.targetUrl);
    const user = target.username === "" ? "postgres" : target.username;
    return `postgres://${user}@127.0.0.1:${this.port}/${database}`;
  }
}

/**
 * The HTTP listener Prometheus scrapes: `GET /metrics` (and `HEAD`) answers
 * the text exposition format; every other path is 404 and every other
 * method 405. It serves nothing else, holds no state and reads no request
 * body, so it is safe to expose to a monitoring network; it is off unless
 * MINT_METRICS_LISTEN names an address.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** What the listener needs from the metrics: their text and its content type. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface RunningMetricsServer {
  /** host:port actually bound (port 0 resolved). */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Binds `listen` (host:port; port 0 picks a free one). Rejects when the
 * address cannot be bound (in use, not local, no permission).
 */
export async function startMetricsServer(listen: string, metrics: MetricsSource): Promise<RunningMetricsServer> {
  const cut = listen.lastIndexOf(":");
  const host = listen.slice(0, cut).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(cut + 1));
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
      return;
    }
    metrics.text().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.contentType }).end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        // A gauge whose source failed (PostgreSQL down while counting keys): the scrape fails
        // visibly (Prometheus marks `up` 0 for it) rather than serving a partial page.
        res.writeHead(503, { "content-type": "text/plain; charset=utf-8" }).end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`);
      },
    );
  });
  // Scrapes are short requests; idle keep-alive sockets should not hold a
  // draining process open for long.
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    address: `${shownHost}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

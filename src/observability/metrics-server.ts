/**
 * The HTTP listener Prometheus scrapes: `GET /metrics` (and `HEAD`) answers
 * the text exposition format; every other path is 404 and every other
 * method 405. It holds no state and reads no request body; it is off unless
 * MINT_METRICS_LISTEN names an address.
 *
 * Who may scrape: on a loopback address, anyone on the host (as the gRPC
 * port without an auth file); from another host, only over TLS (the
 * service's certificate) with a bearer token whose SHA-256 is in
 * MINT_METRICS_TOKEN_SHA256 — or anyone, when the operator said
 * MINT_METRICS_INSECURE=true (logged at error on every start). A token, once
 * configured, is required on every address. A refused scrape is 401 before
 * any metric is read.
 *
 * What a scrape costs: the page is built from counters in memory and gauges
 * whose reads are bounded whatever the tables hold (the idempotency-key
 * gauge is an estimate refreshed at most every few seconds, never a count
 * over the table); scrapes that arrive while a page is being built share it.
 * A page that cannot be built is 503 with a fixed body; the reason goes to
 * the log, never to the scraper.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { isLoopbackListen, metricsExposure, type Config } from "../config.js";
import type { AdapterLogger } from "../logger.js";

/** What the listener needs from the metrics: their text and its content type. */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

/** The certificate and key HTTPS serves, and a way to hear of new ones (SIGHUP rotation). */
export interface TlsIdentitySource {
  identity(): { readonly cert: Buffer; readonly key: Buffer };
  /** Calls `listener` with each new identity; returns nothing (lives as long as the process). */
  onIdentityChange?(listener: (identity: { readonly cert: Buffer; readonly key: Buffer }) => void): void;
}

export interface MetricsServerOptions {
  /** HTTPS with this identity; absent: plain HTTP. */
  readonly tls?: TlsIdentitySource;
  /** SHA-256 digests of the bearer tokens a scrape may present; empty or absent: none asked for. */
  readonly tokenDigests?: readonly Buffer[];
  /** Where a failed page's reason goes (the scraper gets a fixed 503). */
  readonly logger?: Pick<AdapterLogger, "warn">;
}

export interface RunningMetricsServer {
  /** host:port actually bound (port 0 resolved). */
  readonly address: string;
  readonly port: number;
  /** "https" or "http". */
  readonly scheme: "https" | "http";
  close(): Promise<void>;
}

/** Longest bearer token looked at (as on the gRPC port); longer is refused before hashing. */
const MAX_SCRAPE_TOKEN_CHARS = 1024;
const BEARER = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i;
const UNAVAILABLE_BODY = "metrics unavailable; the service logged why\n";

/**
 * Whether `authorization` carries a token whose SHA-256 is one of `digests`.
 * Every digest is compared in constant time and the scan never stops early.
 */
export function scrapeAuthorized(authorization: string | undefined, digests: readonly Buffer[]): boolean {
  if (authorization === undefined || authorization.length > MAX_SCRAPE_TOKEN_CHARS + "Bearer ".length) return false;
  const m = BEARER.exec(authorization);
  if (m === null) return false;
  const digest = createHash("sha256").update(m[1] as string, "utf8").digest();
  let found = false;
  for (const d of digests) if (d.length === digest.length && timingSafeEqual(d, digest)) found = true;
  return found;
}

/**
 * Binds `listen` (host:port; port 0 picks a free one). Rejects when the
 * address cannot be bound (in use, not local, no permission).
 */
export async function startMetricsServer(listen: string, metrics: MetricsSource, options: MetricsServerOptions = {}): Promise<RunningMetricsServer> {
  const cut = listen.lastIndexOf(":");
  const host = listen.slice(0, cut).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(cut + 1));
  const digests = options.tokenDigests ?? [];
  // Scrapes that arrive while a page is being built share it: a burst of scrapes reads each gauge once.
  let building: Promise<string> | null = null;
  const page = (): Promise<string> => {
    building ??= metrics.text().finally(() => {
      building = null;
    });
    return building;
  };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("not found: metrics are at /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" }).end("method not allowed\n");
      return;
    }
    if (digests.length > 0 && !scrapeAuthorized(req.headers.authorization, digests)) {
      res.writeHead(401, { "www-authenticate": 'Bearer realm="metrics"', "content-type": "text/plain; charset=utf-8" }).end("unauthorized: send authorization: Bearer <scrape token>\n");
      return;
    }
    page().then(
      (body) => {
        res.writeHead(200, { "content-type": metrics.contentType }).end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        // A gauge whose source failed: the scrape fails visibly (Prometheus marks `up` 0 for it)
        // rather than serving a partial page; why goes to the log, not to whoever scraped.
        options.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics scrape failed");
        res.writeHead(503, { "content-type": "text/plain; charset=utf-8" }).end(UNAVAILABLE_BODY);
      },
    );
  };
  let server: Server;
  if (options.tls !== undefined) {
    const { cert, key } = options.tls.identity();
    const tlsServer = createTlsServer({ cert, key }, handle);
    options.tls.onIdentityChange?.((next) => tlsServer.setSecureContext({ cert: next.cert, key: next.key }));
    server = tlsServer;
  } else {
    server = createServer(handle);
  }
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
    scheme: options.tls !== undefined ? "https" : "http",
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * What the configuration asks of the metrics listener, in the service and in
 * the standalone settlement worker alike: HTTPS with `tls` (the service's
 * certificate) on a non-loopback address, the scrape token whenever one is
 * configured, and an error-level line on every start when a non-loopback
 * address is served without TLS or a token (MINT_METRICS_INSECURE=true; the
 * config refuses it otherwise).
 */
export function configuredMetricsOptions(
  config: Pick<Config, "metricsListen" | "tlsCert" | "metricsTokenSha256" | "metricsInsecure">,
  logger: Pick<AdapterLogger, "warn" | "error">,
  tls: TlsIdentitySource | undefined,
): MetricsServerOptions {
  const loopback = isLoopbackListen(config.metricsListen);
  if (!loopback && config.tlsCert !== "" && tls === undefined) throw new Error("invariant violated: a non-loopback metrics listener with MINT_TLS_CERT needs its identity");
  const missing = metricsExposure(config);
  if (missing.length > 0) {
    logger.error(
      { metricsListen: config.metricsListen, missing },
      "MINT_METRICS_INSECURE=true: serving metrics to other hosts without TLS or a scrape token; anyone who can reach the port reads the service's traffic",
    );
  }
  return { ...(loopback || tls === undefined ? {} : { tls }), tokenDigests: config.metricsTokenSha256, logger };
}

/** Starts the listener `configuredMetricsOptions` describes. */
export function startConfiguredMetricsServer(
  config: Pick<Config, "metricsListen" | "tlsCert" | "metricsTokenSha256" | "metricsInsecure">,
  metrics: MetricsSource,
  logger: Pick<AdapterLogger, "warn" | "error">,
  tls: TlsIdentitySource | undefined,
): Promise<RunningMetricsServer> {
  return startMetricsServer(config.metricsListen, metrics, configuredMetricsOptions(config, logger, tls));
}

/**
 * The metrics port is not a door: off loopback it serves HTTPS with the
 * service's certificate and asks for a scrape token (or the operator opts
 * out, logged at error); a refused scrape reads nothing; a page that cannot
 * be built is a fixed 503; and a scrape never counts the idempotency keys
 * (PostgreSQL), so its cost does not grow with the table.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ReloadableCertificates } from "../../src/auth/tls.js";
import { loadConfig } from "../../src/config.js";
import { configuredMetricsOptions, startMetricsServer, type RunningMetricsServer } from "../../src/observability/metrics-server.js";
import { newToken } from "../support/auth-fixtures.js";
import { startPgTestServer, type PgTestServer } from "../support/pg-test-server.js";
import { testClient } from "../support/pg-test-database.js";
import { makeTestCerts, type TestCerts } from "../support/test-certs.js";
import { tokenDigestHex } from "../../src/auth/authenticate.js";

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

function get(url: string, opts: { ca?: Buffer; authorization?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers: Record<string, string> = opts.authorization === undefined ? {} : { authorization: opts.authorization };
    const req = (u.protocol === "https:" ? httpsRequest : httpRequest)(u, { method: "GET", headers, ...(opts.ca === undefined ? {} : { ca: opts.ca }) }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on("error", reject);
    req.end();
  });
}

const PAGE = "# HELP usdc_mint_example x\n# TYPE usdc_mint_example gauge\nusdc_mint_example 1\n";
const source = { text: async () => PAGE, contentType: "text/plain; version=0.0.4" };

describe("a metrics listener with TLS and a scrape token", () => {
  let certs: TestCerts;
  let server: RunningMetricsServer;
  const token = newToken();
  const rotated = newToken();
  let url = "";

  beforeAll(async () => {
    certs = makeTestCerts();
    const tls = new ReloadableCertificates({ certFile: certs.server.certFile, keyFile: certs.server.keyFile, clientCaFile: "" });
    server = await startMetricsServer("127.0.0.1:0", source, { tls, tokenDigests: [token, rotated].map((t) => Buffer.from(tokenDigestHex(t), "hex")) });
    url = `https://127.0.0.1:${server.port}/metrics`;
  });
  afterAll(async () => {
    await server?.close();
    certs?.remove();
  });

  it("serves the page over HTTPS to a scrape with either token", async () => {
    expect(server.scheme).toBe("https");
    for (const t of [token, rotated]) {
      const r = await get(url, { ca: certs.serverCa.cert, authorization: `Bearer ${t}` });
      expect([r.status, r.body]).toEqual([200, PAGE]);
    }
  });

  it.each([
    ["no authorization", undefined],
    ["a wrong token", `Bearer ${newToken()}`],
    ["the digest instead of the token", `Bearer ${tokenDigestHex(token)}`],
    ["another scheme", `Basic ${token}`],
    ["an overlong token", `Bearer ${"a".repeat(5000)}`],
  ])("refuses %s: 401 with WWW-Authenticate, and no metric in the body", async (_what, authorization) => {
    const r = await get(url, { ca: certs.serverCa.cert, ...(authorization === undefined ? {} : { authorization }) });
    expect(r.status).toBe(401);
    expect(r.headers["www-authenticate"]).toBe('Bearer realm="metrics"');
    expect(r.body).not.toContain("usdc_mint");
  });

  it("serves the certificate a reload (SIGHUP) installs to new connections", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "mint-metrics-rotate-"));
    const certFile = path.join(dir, "server.crt");
    const keyFile = path.join(dir, "server.key");
    copyFileSync(certs.server.certFile, certFile);
    copyFileSync(certs.server.keyFile, keyFile);
    const tls = new ReloadableCertificates({ certFile, keyFile, clientCaFile: "" });
    const rotating = await startMetricsServer("127.0.0.1:0", source, { tls });
    const servedCn = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest({ host: "127.0.0.1", port: rotating.port, path: "/metrics", ca: certs.serverCa.cert, agent: false }, (res) => {
          const cn = (res.socket as TLSSocket).getPeerCertificate().subject.CN;
          res.resume();
          res.on("end", () => resolve(String(cn)));
        });
        req.on("error", reject);
        req.end();
      });
    try {
      expect(await servedCn()).toBe("mint-server-1");
      copyFileSync(certs.server2.certFile, certFile);
      copyFileSync(certs.server2.keyFile, keyFile);
      tls.reload();
      expect(await servedCn()).toBe("mint-server-2");
    } finally {
      await rotating.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("does not speak plain HTTP", async () => {
    await expect(get(`http://127.0.0.1:${server.port}/metrics`, { authorization: `Bearer ${token}` })).rejects.toThrow();
  });
});

describe("what the configuration asks of the listener (service and settlement worker alike)", () => {
  const FILE = new URL("../../package.json", import.meta.url).pathname;
  const DIGEST = "ab".repeat(32);
  const identity = { identity: () => ({ cert: Buffer.from("c"), key: Buffer.from("k") }) };
  const recorder = () => {
    const errors: { obj: object; msg: string }[] = [];
    return { errors, logger: { warn: () => undefined, error: (obj: object, msg: string) => errors.push({ obj, msg }) } };
  };

  it("off loopback: HTTPS with the service's identity and the token; nothing logged", () => {
    const c = loadConfig([], { MINT_METRICS_LISTEN: "0.0.0.0:9464", MINT_TLS_CERT: FILE, MINT_TLS_KEY: FILE, MINT_AUTH_FILE: FILE, MINT_METRICS_TOKEN_SHA256: DIGEST });
    const { errors, logger } = recorder();
    const o = configuredMetricsOptions(c, logger, identity);
    expect(o.tls).toBe(identity);
    expect(o.tokenDigests?.map((d) => d.toString("hex"))).toEqual([DIGEST]);
    expect(errors).toEqual([]);
  });

  it("off loopback with MINT_METRICS_INSECURE=true: plain HTTP and an error-level line on every start naming what is missing", () => {
    const c = loadConfig([], { MINT_METRICS_LISTEN: "0.0.0.0:9464", MINT_METRICS_INSECURE: "true" });
    for (let start = 0; start < 2; start++) {
      const { errors, logger } = recorder();
      const o = configuredMetricsOptions(c, logger, undefined);
      expect(o.tls).toBeUndefined();
      expect(errors).toHaveLength(1);
      expect(errors[0]?.msg).toContain("MINT_METRICS_INSECURE=true");
      expect(errors[0]?.obj).toMatchObject({ missing: ["MINT_TLS_CERT, MINT_TLS_KEY", "MINT_METRICS_TOKEN_SHA256"] });
    }
  });

  it("on loopback: plain HTTP, no token unless one is configured, nothing logged", () => {
    const { errors, logger } = recorder();
    const o = configuredMetricsOptions(loadConfig([], { MINT_METRICS_LISTEN: "127.0.0.1:0", MINT_TLS_CERT: FILE, MINT_TLS_KEY: FILE }), logger, identity);
    expect([o.tls, o.tokenDigests]).toEqual([undefined, []]);
    expect(errors).toEqual([]);
  });
});

describe("a page that cannot be built", () => {
  it("is 503 with a fixed body; the reason goes to the log, not to the scraper", async () => {
    const warned: object[] = [];
    const failing = { text: () => Promise.reject(new Error("connect ECONNREFUSED db.internal:5432 password=hunter2")), contentType: "text/plain" };
    const server = await startMetricsServer("127.0.0.1:0", failing, { logger: { warn: (obj: object) => warned.push(obj) } });
    try {
      const r = await get(`http://127.0.0.1:${server.port}/metrics`);
      expect(r.status).toBe(503);
      expect(r.body).toBe("metrics unavailable; the service logged why\n");
      expect(JSON.stringify(warned)).toContain("db.internal");
    } finally {
      await server.close();
    }
  });
});

describe("a scrape of the service on PostgreSQL never reads the idempotency-key table", () => {
  let s: PgTestServer;
  beforeAll(async () => {
    // A long statement timeout: a scrape that counted the table would wait behind the lock below, not give up.
    s = await startPgTestServer({ MINT_METRICS_LISTEN: "127.0.0.1:0", MINT_PG_STATEMENT_TIMEOUT: "120s" }, "");
  });
  afterAll(async () => {
    await s?.stop();
  });

  it("answers while another session holds the table locked against every read, with the key gauge on the page", async () => {
    await s.db.query("INSERT INTO idempotency_keys (scope, key, fingerprint, result, state, expires_at) SELECT 'mint', 'k' || g, 'f', '{}'::jsonb, 'completed', now() + interval '1 day' FROM generate_series(1, 50) g");
    const locker = testClient({ connectionString: s.db.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query("LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE");
      // A count(*) would block until the lock goes; the lock goes only after the scrape answered (or 30 s passed).
      const scrape = get(`http://${s.app.metricsAddress}/metrics`);
      const outcome = await Promise.race([scrape, new Promise<"blocked">((r) => setTimeout(() => r("blocked"), 30_000).unref())]);
      expect(outcome).not.toBe("blocked");
      const page = (outcome as Reply).body;
      expect((outcome as Reply).status).toBe(200);
      expect(page).toMatch(/^usdc_mint_idempotency_keys \d+$/m);
    } finally {
      await locker.query("ROLLBACK").catch(() => undefined);
      await locker.end();
    }
  });
});

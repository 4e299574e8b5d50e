import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ConfigError, describeConfig, helpText, loadConfig, metricsExposure, parseDurationMs, type Config } from "../../src/config.js";

const MICROS = 1_000_000n;

/** The configuration table of API.md, verbatim: variable and default. */
const API_TABLE: [string, string][] = [
  ["MINT_LISTEN", "127.0.0.1:50051"],
  ["MINT_RATE_LIMIT", "10"],
  ["MINT_RATE_WINDOW", "1s"],
  ["MINT_IDEMPOTENCY_TTL", "24h"],
  ["MINT_MAX_AMOUNT", "1000000000000"],
  ["MINT_SHUTDOWN_GRACE", "10s"],
];

/** Every MINT_ variable the config module knows (read from its source, so a new one cannot be missed). */
const ALL_VARIABLES = [...readFileSync(new URL("../../src/config.ts", import.meta.url), "utf8").matchAll(/\benv: "(MINT_[A-Z0-9_]+)"/g)].map((m) => m[1] as string);

function flagOf(env: string): string {
  return "--" + env.replace(/^MINT_/, "").toLowerCase().replace(/_/g, "-");
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error("expected a ConfigError");
}

describe("defaults", () => {
  it("equal API.md's table", () => {
    const c = loadConfig([], {});
    expect(c.listen).toBe("127.0.0.1:50051");
    expect(c.rateLimit).toBe(10);
    expect(c.rateWindowMs).toBe(1_000);
    expect(c.idempotencyTtlMs).toBe(24 * 3_600_000);
    expect(c.maxAmountMicros).toBe(1_000_000_000_000n * MICROS);
    expect(c.shutdownGraceMs).toBe(10_000);
  });

  it("are the same when each variable is set to its documented default", () => {
    const env = Object.fromEntries(API_TABLE);
    expect(loadConfig([], env)).toEqual(loadConfig([], {}));
  });

  it("have sane values for the settings beyond API.md", () => {
    const c = loadConfig([], {});
    expect(c.store).toBe("memory");
    expect(c.redisUrl).toBe("");
    expect(c.rateLimitFailOpen).toBe(false);
    expect(c.maxMessageBytes).toBeGreaterThanOrEqual(256);
    expect(c.maxMessageBytes).toBeLessThanOrEqual(64 * 1024);
    expect(c.idempotencyMaxKeys).toBeGreaterThan(0);
  });

  it("treat an empty variable as unset", () => {
    expect(loadConfig([], { MINT_RATE_LIMIT: "" }).rateLimit).toBe(10);
  });

  it("return a frozen object", () => {
    const c = loadConfig([], {});
    expect(Object.isFrozen(c)).toBe(true);
    expect(() => {
      (c as { rateLimit: number }).rateLimit = 99;
    }).toThrow(TypeError);
  });

  it("ignore unrelated variables", () => {
    expect(loadConfig([], { PATH: "/bin", MINT: "x", NOT_MINT_RATE_LIMIT: "zz" })).toEqual(loadConfig([], {}));
  });
});

describe("values", () => {
  it("read every API.md variable from env", () => {
    const c = loadConfig([], {
      MINT_LISTEN: "0.0.0.0:0",
      MINT_INSECURE: "true",
      MINT_RATE_LIMIT: "3",
      MINT_RATE_WINDOW: "500ms",
      MINT_IDEMPOTENCY_TTL: "5s",
      MINT_MAX_AMOUNT: "2.5",
      MINT_SHUTDOWN_GRACE: "0s",
    });
    expect(c).toMatchObject({ listen: "0.0.0.0:0", rateLimit: 3, rateWindowMs: 500, idempotencyTtlMs: 5_000, maxAmountMicros: 2_500_000n, shutdownGraceMs: 0 });
  });

  it.each([
    ["500ms", 500],
    ["1s", 1_000],
    ["1m", 60_000],
    ["24h", 86_400_000],
    ["90s", 90_000],
    ["0ms", 0],
  ])("parses the duration %j as %d ms", (raw, ms) => {
    expect(parseDurationMs(raw)).toBe(ms);
  });

  it.each(["", "1", "1.5s", "-1s", "1 h", "1d", "1S", "ms", "1sec", "1e3ms", "99999999999999999999h"])("refuses the duration %j", (raw) => {
    expect(parseDurationMs(raw)).toBeUndefined();
  });

  it("uses durations for the window, TTL and grace", () => {
    const c = loadConfig([], { MINT_RATE_WINDOW: "1m", MINT_IDEMPOTENCY_TTL: "24h", MINT_SHUTDOWN_GRACE: "500ms" });
    expect([c.rateWindowMs, c.idempotencyTtlMs, c.shutdownGraceMs]).toEqual([60_000, 86_400_000, 500]);
  });

  it("accepts IPv6 and host names to listen on", () => {
    expect(loadConfig([], { MINT_LISTEN: "[::1]:50051" }).listen).toBe("[::1]:50051");
    expect(loadConfig([], { MINT_LISTEN: "localhost:8080" }).listen).toBe("localhost:8080");
  });

  it("keeps huge maximum amounts exact (bigint)", () => {
    expect(loadConfig([], { MINT_MAX_AMOUNT: "123456789012345678.123456" }).maxAmountMicros).toBe(123_456_789_012_345_678_123_456n);
  });
});

describe("invalid values stop the start with one line naming the variable", () => {
  const bad: [string, string][] = [
    ["MINT_LISTEN", "50051"],
    ["MINT_LISTEN", "127.0.0.1:99999"],
    ["MINT_LISTEN", "127.0.0.1:"],
    ["MINT_LISTEN", "http://127.0.0.1:50051"],
    ["MINT_RATE_LIMIT", "0"],
    ["MINT_RATE_LIMIT", "-1"],
    ["MINT_RATE_LIMIT", "ten"],
    ["MINT_RATE_LIMIT", "1.5"],
    ["MINT_RATE_LIMIT", "1e3"],
    ["MINT_RATE_WINDOW", "0s"],
    ["MINT_RATE_WINDOW", "1"],
    ["MINT_RATE_WINDOW", "soon"],
    ["MINT_RATE_WINDOW", "-1s"],
    ["MINT_IDEMPOTENCY_TTL", "0s"],
    ["MINT_IDEMPOTENCY_TTL", "forever"],
    ["MINT_IDEMPOTENCY_TTL", "24"],
    ["MINT_MAX_AMOUNT", "0"],
    ["MINT_MAX_AMOUNT", "-5"],
    ["MINT_MAX_AMOUNT", "1e12"],
    ["MINT_MAX_AMOUNT", "1,000"],
    ["MINT_MAX_AMOUNT", "0.0000001"],
    // One micro-USDC more than numeric(38,0) holds.
    ["MINT_MAX_AMOUNT", "100000000000000000000000000000000"],
    ["MINT_SHUTDOWN_GRACE", "10"],
    ["MINT_SHUTDOWN_GRACE", "-1s"],
    ["MINT_SHUTDOWN_GRACE", "ten seconds"],
    ["MINT_IDEMPOTENCY_MAX_KEYS", "0"],
    ["MINT_MAX_MESSAGE_BYTES", "1"],
    ["MINT_BATCH_MAX_MESSAGE_BYTES", "255"],
    ["MINT_BATCH_MAX_ITEMS", "0"],
    ["MINT_STORE", "mysql://x"],
    ["MINT_REDIS_URL", "http://localhost:6379"],
    ["MINT_RATE_LIMIT_FAIL_OPEN", "maybe"],
    ["MINT_PG_POOL_SIZE", "0"],
    ["MINT_PG_STATEMENT_TIMEOUT", "5"],
    ["MINT_PG_CONNECT_TIMEOUT", "never"],
    ["MINT_PG_GROUP_MAX", "0"],
    ["MINT_PG_GROUP_MAX", "1025"],
    ["MINT_PG_GROUP_WAIT", "101ms"],
    ["MINT_PG_GROUP_WAIT", "1"],
    ["MINT_PG_GROUPS_IN_FLIGHT", "0"],
    ["MINT_LOG_LEVEL", "loud"],
    ["MINT_SETTLEMENT_FILE", "/nonexistent/chains.yaml"],
    ["MINT_SIGNER", "hsm"],
    ["MINT_PKCS11_MODULE", "relative/libsofthsm2.so"],
    ["MINT_PKCS11_TOKEN_LABEL", "has space"],
    ["MINT_PKCS11_KEY_LABEL", "k".repeat(33)],
    ["MINT_PKCS11_PIN_FILE", "/nonexistent/pin"],
    ["MINT_DEV_KEY_FILE", "/nonexistent/key"],
    ["MINT_TEST_FAULTS", "sometimes"],
    ["MINT_TEST_FAULT", "after-lunch"],
    ["MINT_MAX_CALLS_IN_FLIGHT", "0"],
    ["MINT_MAX_LOCK_WAITERS", "many"],
    ["MINT_MAX_CONCURRENT_STREAMS", "-1"],
    ["MINT_RESERVE_REQUIRED", "perhaps"],
    ["MINT_METRICS_LISTEN", "9464"],
    ["MINT_METRICS_LISTEN", "http://127.0.0.1:9464/metrics"],
    ["MINT_METRICS_TOKEN_SHA256", "not-a-digest"],
    ["MINT_METRICS_TOKEN_SHA256", "A".repeat(64)],
    ["MINT_METRICS_INSECURE", "maybe"],
    ["MINT_AUTH_FILE", "/nonexistent/auth.yaml"],
    ["MINT_AUTH_FILE", "/tmp"],
    ["MINT_TLS_CERT", "/nonexistent/server.crt"],
    ["MINT_TLS_KEY", "/nonexistent/server.key"],
    ["MINT_TLS_CLIENT_CA", "/nonexistent/client-ca.crt"],
    ["MINT_INSECURE", "maybe"],
    ["MINT_REFLECTION", "private"],
    ["MINT_AUDIT_JOURNAL", "true"],
    ["MINT_APPROVAL_THRESHOLD", "0"],
    ["MINT_APPROVAL_THRESHOLD", "on"],
    ["MINT_APPROVALS_REQUIRED", "0"],
    ["MINT_APPROVAL_TTL", "10ms"],
    ["MINT_ALLOWANCES", "maybe"],
    ["MINT_DEV_PRINCIPAL_HEADER", "sure"],
    ["MINT_WATCH_RETENTION", "forever"],
    ["MINT_WATCH_BUFFER", "0"],
    ["MINT_WATCH_MAX_WATCHERS", "-5"],
    ["MINT_WATCH_POLL_INTERVAL", "1ms"],
    ["MINT_NATS_URL", "http://127.0.0.1:4222"],
    ["MINT_NATS_URL", "tls://127.0.0.1:4222"],
    ["MINT_NATS_URL", "nats://127.0.0.1:4222,redis://x:1"],
    ["MINT_NATS_STREAM", "EVENTS.ALL"],
    ["MINT_NATS_STREAM", "a b"],
    ["MINT_NATS_SUBJECT_PREFIX", "usdc.mint.*"],
    ["MINT_NATS_SUBJECT_PREFIX", "usdc..mint"],
    ["MINT_NATS_SUBJECT_PREFIX", "usdc.mint.>"],
    ["MINT_NATS_MAX_AGE", "forever"],
    ["MINT_NATS_DUPLICATE_WINDOW", "10ms"],
    ["MINT_NATS_REPLICAS", "0"],
    ["MINT_NATS_PUBLISH_WINDOW", "0"],
    ["MINT_NATS_PUBLISH_TIMEOUT", "2m"],
    ["MINT_NATS_CREDS_FILE", "/nonexistent/nats.creds"],
    ["MINT_NATS_PASSWORD_FILE", "/nonexistent/nats.pass"],
    ["MINT_NATS_USER", "has space"],
  ];

  it.each(bad)("%s=%j", (name, value) => {
    const err = configError(() => loadConfig([], { [name]: value }));
    expect(err.message).toContain(name);
    expect(err.message).toContain(value);
    expect(err.message).not.toContain("\n");
    expect(err.name).toBe("ConfigError");
  });

  it("covers every variable the config knows", () => {
    const covered = new Set(bad.map(([n]) => n));
    expect(ALL_VARIABLES.filter((n) => !covered.has(n))).toEqual([]);
  });

  it("keeps a value with a newline on one line", () => {
    const err = configError(() => loadConfig([], { MINT_RATE_LIMIT: "1\n2" }));
    expect(err.message).not.toContain("\n");
    expect(err.message).toContain("MINT_RATE_LIMIT");
  });

  it("names the flag when a flag is bad", () => {
    const err = configError(() => loadConfig(["--rate-limit=abc"], {}));
    expect(err.message).toContain("--rate-limit");
    expect(err.message).not.toContain("\n");
  });

  it("refuses unknown flags, positional arguments and a flag without its value", () => {
    expect(configError(() => loadConfig(["--rate-limitt=3"], {})).message).toContain("--rate-limitt");
    expect(configError(() => loadConfig(["serve"], {})).message).toContain("serve");
    expect(configError(() => loadConfig(["--rate-limit"], {})).message).toContain("--rate-limit");
  });

  it("calls a flag it does not know an unknown flag, with or without a value", () => {
    expect(configError(() => loadConfig(["--bogus"], {})).message).toBe("unknown flag --bogus (see --help)");
    expect(configError(() => loadConfig(["--bogus", "1"], {})).message).toBe("unknown flag --bogus (see --help)");
    expect(configError(() => loadConfig(["--rate-limit"], {})).message).toBe("flag --rate-limit needs a value (see --help)");
  });
});

describe("flags", () => {
  it("override env in both --name=value and --name value forms", () => {
    const env = { MINT_RATE_LIMIT: "7", MINT_RATE_WINDOW: "1m", MINT_LISTEN: "127.0.0.1:1" };
    const c = loadConfig(["--rate-limit=5", "--rate-window", "500ms"], env);
    expect(c.rateLimit).toBe(5);
    expect(c.rateWindowMs).toBe(500);
    expect(c.listen).toBe("127.0.0.1:1"); // not overridden: env still applies
  });

  it("exist for every variable (MINT_X_Y is --x-y)", () => {
    const values: Partial<Record<string, [string, keyof Config, unknown]>> = {
      MINT_LISTEN: ["127.0.0.1:0", "listen", "127.0.0.1:0"],
      MINT_RATE_LIMIT: ["4", "rateLimit", 4],
      MINT_RATE_WINDOW: ["2s", "rateWindowMs", 2_000],
      MINT_IDEMPOTENCY_TTL: ["5s", "idempotencyTtlMs", 5_000],
      MINT_MAX_AMOUNT: ["3", "maxAmountMicros", 3_000_000n],
      MINT_SHUTDOWN_GRACE: ["1s", "shutdownGraceMs", 1_000],
    };
    for (const name of ALL_VARIABLES) {
      const v = values[name];
      if (v !== undefined) {
        const [raw, key, expected] = v;
        expect(loadConfig([`${flagOf(name)}=${raw}`], {})[key]).toEqual(expected);
      }
      // The flag is known (its default parses) and read (a bad value is refused, naming the flag).
      expect(() => loadConfig([flagOf(name), defaultInHelp(name)], {})).not.toThrow();
      expect(configError(() => loadConfig([`${flagOf(name)}=%bad%`], {})).message).toContain(flagOf(name));
    }
  });

  it("leave the metrics listener off by default and take host:port to turn it on", () => {
    expect(loadConfig([], {}).metricsListen).toBe("");
    expect(loadConfig([], { MINT_METRICS_LISTEN: "127.0.0.1:9464" }).metricsListen).toBe("127.0.0.1:9464");
    expect(loadConfig(["--metrics-listen", "[::1]:0"], {}).metricsListen).toBe("[::1]:0");
  });

  it("the last of a repeated flag wins", () => {
    expect(loadConfig(["--rate-limit=3", "--rate-limit=4"], {}).rateLimit).toBe(4);
  });
});

/** The default of a variable as printed by --help. */
function defaultInHelp(name: string): string {
  const line = helpText()
    .split("\n")
    .find((l) => l.includes(` ${name} `));
  const m = line === undefined ? null : /default (".*")\s*$/.exec(line);
  if (m === null) throw new Error(`--help has no default for ${name}`);
  return JSON.parse(m[1] as string) as string;
}

describe("--help", () => {
  it("lists every MINT_ variable with its flag", () => {
    const text = helpText();
    expect(ALL_VARIABLES).toEqual(expect.arrayContaining(API_TABLE.map(([n]) => n)));
    for (const name of ALL_VARIABLES) {
      expect(text).toContain(name);
      expect(text).toContain(flagOf(name));
    }
  });

  it("shows API.md's defaults", () => {
    for (const [name, def] of API_TABLE) expect(defaultInHelp(name)).toBe(def);
  });

  it("shows defaults that load to the default config", () => {
    const env = Object.fromEntries(ALL_VARIABLES.map((n) => [n, defaultInHelp(n)]));
    expect(loadConfig([], env)).toEqual(loadConfig([], {}));
  });
});

describe("the JetStream relay's settings", () => {
  const FILE = new URL("../../package.json", import.meta.url).pathname;

  it("are off by default, with the documented stream, subjects and windows", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({ natsUrl: "", natsStream: "USDC_MINT_EVENTS", natsSubjectPrefix: "usdc.mint.v1.events", natsMaxAgeMs: 168 * 3_600_000, natsDuplicateWindowMs: 120_000, natsPublishWindow: 1_000 });
  });

  it("take a cluster's URLs", () => {
    expect(loadConfig([], { MINT_NATS_URL: "nats://a:4222,nats://b:4222" }).natsUrl).toBe("nats://a:4222,nats://b:4222");
  });

  it("refuse a user without a password file and the reverse", () => {
    expect(configError(() => loadConfig([], { MINT_NATS_USER: "relay" })).message).toContain("MINT_NATS_PASSWORD_FILE");
    expect(configError(() => loadConfig([], { MINT_NATS_PASSWORD_FILE: FILE })).message).toContain("MINT_NATS_USER");
    expect(loadConfig([], { MINT_NATS_USER: "relay", MINT_NATS_PASSWORD_FILE: FILE }).natsUser).toBe("relay");
  });

  it("refuse a duplicate window longer than the stream's max age", () => {
    expect(configError(() => loadConfig([], { MINT_NATS_MAX_AGE: "1m", MINT_NATS_DUPLICATE_WINDOW: "2m" })).message).toContain("MINT_NATS_DUPLICATE_WINDOW");
    expect(loadConfig([], { MINT_NATS_MAX_AGE: "0s", MINT_NATS_DUPLICATE_WINDOW: "2m" }).natsMaxAgeMs).toBe(0);
  });
});

describe("describeConfig", () => {
  it("masks passwords in URLs", () => {
    const c = loadConfig([], { MINT_STORE: "postgres://u:hunter2@db:5432/mint", MINT_REDIS_URL: "redis://:s3cret@cache:6379/0" });
    const logged = JSON.stringify(describeConfig(c));
    expect(logged).not.toContain("hunter2");
    expect(logged).not.toContain("s3cret");
    expect(logged).toContain("db:5432");
  });

  it("masks the NATS URL's password and names no password file contents", () => {
    const c = loadConfig([], { MINT_NATS_URL: "nats://relay:n4tsPass@nats.internal:4222" });
    const logged = JSON.stringify(describeConfig(c));
    expect(logged).not.toContain("n4tsPass");
    expect(logged).toContain("nats.internal:4222");
    expect(describeConfig(loadConfig([], {})).nats).toBe("off");
  });

  it("formats the maximum amount as USDC", () => {
    expect(describeConfig(loadConfig([], {})).maxAmount).toBe("1000000000000");
  });
});

describe("safe by default: who may reach the service", () => {
  // Any readable file will do for the config reader; the contents are checked at start.
  const FILE = new URL("../../package.json", import.meta.url).pathname;
  const TLS = { MINT_TLS_CERT: FILE, MINT_TLS_KEY: FILE };

  it.each(["127.0.0.1:0", "127.1.2.3:50051", "localhost:50051", "[::1]:50051"])("serves loopback %s without credentials", (listen) => {
    expect(loadConfig([], { MINT_LISTEN: listen }).authFile).toBe("");
  });

  it.each(["0.0.0.0:50051", "[::]:50051", "10.0.0.5:50051", "mint.internal:50051", "128.0.0.1:1"])("refuses %s without TLS and an auth file, in one line saying how", (listen) => {
    const err = configError(() => loadConfig([], { MINT_LISTEN: listen }));
    expect(err.message).toContain(`MINT_LISTEN=${listen}`);
    expect(err.message).toContain("MINT_TLS_CERT, MINT_TLS_KEY, MINT_AUTH_FILE are not set");
    expect(err.message).toContain("docker run -v");
    expect(err.message).toContain("MINT_INSECURE=true");
    expect(err.message).not.toContain("\n");
  });

  it("refuses TLS without an auth file, and an auth file without TLS, off loopback", () => {
    expect(configError(() => loadConfig([], { MINT_LISTEN: "0.0.0.0:1", ...TLS })).message).toContain("MINT_AUTH_FILE is not set");
    expect(configError(() => loadConfig([], { MINT_LISTEN: "0.0.0.0:1", MINT_AUTH_FILE: FILE })).message).toContain("MINT_TLS_CERT, MINT_TLS_KEY are not set");
  });

  it("serves any address with TLS and an auth file", () => {
    expect(loadConfig([], { MINT_LISTEN: "0.0.0.0:1", MINT_AUTH_FILE: FILE, ...TLS })).toMatchObject({ tlsCert: FILE, tlsKey: FILE, authFile: FILE, insecure: false });
  });

  it("serves any address when the operator says MINT_INSECURE=true", () => {
    expect(loadConfig([], { MINT_LISTEN: "0.0.0.0:1", MINT_INSECURE: "true" }).insecure).toBe(true);
    expect(loadConfig(["--insecure", "true", "--listen", "0.0.0.0:1"], {}).insecure).toBe(true);
  });

  it("needs the certificate and key together, and TLS under mutual TLS", () => {
    expect(configError(() => loadConfig([], { MINT_TLS_CERT: FILE })).message).toBe("MINT_TLS_CERT and MINT_TLS_KEY must be set together");
    expect(configError(() => loadConfig([], { MINT_TLS_KEY: FILE })).message).toBe("MINT_TLS_CERT and MINT_TLS_KEY must be set together");
    expect(configError(() => loadConfig([], { MINT_TLS_CLIENT_CA: FILE })).message).toContain("MINT_TLS_CLIENT_CA needs MINT_TLS_CERT");
    expect(loadConfig([], { ...TLS, MINT_TLS_CLIENT_CA: FILE }).tlsClientCa).toBe(FILE);
  });
});

describe("safe by default: who may scrape the metrics port", () => {
  const FILE = new URL("../../package.json", import.meta.url).pathname;
  const TLS = { MINT_TLS_CERT: FILE, MINT_TLS_KEY: FILE, MINT_AUTH_FILE: FILE };
  const DIGEST = "ab".repeat(32);

  it.each(["127.0.0.1:9464", "localhost:0", "[::1]:9464"])("serves loopback %s without TLS or a token, as before", (listen) => {
    const c = loadConfig([], { MINT_METRICS_LISTEN: listen });
    expect([c.metricsListen, c.metricsTokenSha256, c.metricsInsecure]).toEqual([listen, [], false]);
    expect(metricsExposure(c)).toEqual([]);
  });

  it.each(["0.0.0.0:9464", "[::]:9464", "10.0.0.5:9464", "metrics.internal:9464"])("refuses %s without TLS and a scrape token, in one line saying how", (listen) => {
    const err = configError(() => loadConfig([], { MINT_METRICS_LISTEN: listen }));
    expect(err.message).toContain(`MINT_METRICS_LISTEN=${listen}`);
    expect(err.message).toContain("MINT_TLS_CERT, MINT_TLS_KEY, MINT_METRICS_TOKEN_SHA256 are not set");
    expect(err.message).toContain("MINT_METRICS_INSECURE=true");
    expect(err.message).not.toContain("\n");
  });

  it("refuses TLS without a token and a token without TLS, off loopback", () => {
    expect(configError(() => loadConfig([], { MINT_METRICS_LISTEN: "0.0.0.0:1", ...TLS })).message).toContain("MINT_METRICS_TOKEN_SHA256 is not set");
    expect(configError(() => loadConfig([], { MINT_METRICS_LISTEN: "0.0.0.0:1", MINT_METRICS_TOKEN_SHA256: DIGEST })).message).toContain("MINT_TLS_CERT, MINT_TLS_KEY are not set");
  });

  it("serves another host with TLS and a token; the setting holds SHA-256 digests (two during a rotation)", () => {
    const c = loadConfig([], { MINT_METRICS_LISTEN: "0.0.0.0:1", ...TLS, MINT_METRICS_TOKEN_SHA256: `${DIGEST},${"cd".repeat(32)}` });
    expect(c.metricsTokenSha256.map((d) => d.toString("hex"))).toEqual([DIGEST, "cd".repeat(32)]);
    expect(metricsExposure(c)).toEqual([]);
    // The start line says how many, never the digests.
    expect(JSON.stringify(describeConfig(c))).not.toContain(DIGEST);
    expect(describeConfig(c).metricsTokens).toBe(2);
  });

  it("serves another host without them only when the operator says MINT_METRICS_INSECURE=true (and says what is missing)", () => {
    const c = loadConfig([], { MINT_METRICS_LISTEN: "0.0.0.0:1", MINT_METRICS_INSECURE: "true" });
    expect(c.metricsInsecure).toBe(true);
    expect(metricsExposure(c)).toEqual(["MINT_TLS_CERT, MINT_TLS_KEY", "MINT_METRICS_TOKEN_SHA256"]);
  });

  it.each([`${DIGEST},${DIGEST}`, Array.from({ length: 17 }, (_, i) => i.toString(16).padStart(64, "0")).join(",")])("refuses a repeated digest or more than 16: %s", (v) => {
    expect(configError(() => loadConfig([], { MINT_METRICS_TOKEN_SHA256: v })).message).toContain("MINT_METRICS_TOKEN_SHA256");
  });
});

describe("MINT_REFLECTION", () => {
  const FILE = new URL("../../package.json", import.meta.url).pathname;
  it("auto: public without an auth file, authenticated with one", () => {
    expect(loadConfig([], {}).reflection).toBe("public");
    expect(loadConfig([], { MINT_AUTH_FILE: FILE }).reflection).toBe("authenticated");
  });
  it.each(["public", "authenticated", "off"] as const)("%s is taken as given", (v) => {
    expect(loadConfig([], { MINT_AUTH_FILE: FILE, MINT_REFLECTION: v }).reflection).toBe(v);
  });
});

describe("approval and allowance settings", () => {
  it("defaults: approval off, 2 approvers, 24h, and the start line says there is no allowance cap", () => {
    const c = loadConfig([], {});
    expect([c.mintApprovalThresholdMicros, c.mintApprovalsRequired, c.mintApprovalTtlMs, c.mintAllowances, c.devPrincipalHeader]).toEqual([null, 2, 86_400_000, false, false]);
    const d = describeConfig(c);
    expect(d.mintAllowances).toBe("off (no minter allowance cap)");
    expect(d.mintApprovalThreshold).toBe("off");
  });

  it("parses a threshold in USDC and turns allowances on", () => {
    const c = loadConfig(["--approval-threshold", "1000.5"], { MINT_ALLOWANCES: "true" });
    expect(c.mintApprovalThresholdMicros).toBe(1_000_500_000n);
    expect(describeConfig(c).mintAllowances).toBe("on");
  });

  it("refuses the dev principal header off loopback or beside an auth file, naming the variable", () => {
    expect(() => loadConfig([], { MINT_DEV_PRINCIPAL_HEADER: "true", MINT_LISTEN: "0.0.0.0:50051", MINT_INSECURE: "true" })).toThrow(/^invalid MINT_DEV_PRINCIPAL_HEADER=true: refused/);
    const FILE = new URL("../../package.json", import.meta.url).pathname;
    expect(() => loadConfig([], { MINT_DEV_PRINCIPAL_HEADER: "true", MINT_AUTH_FILE: FILE })).toThrow(/^invalid MINT_DEV_PRINCIPAL_HEADER=true: refused/);
    expect(loadConfig([], { MINT_DEV_PRINCIPAL_HEADER: "true", MINT_LISTEN: "127.0.0.1:0" }).devPrincipalHeader).toBe(true);
  });
});

/**
 * The only reader of environment variables and command-line flags. Every
 * setting is an env variable MINT_X and a flag --x (flag wins). Values are
 * validated at start; a bad one stops the start with one line naming it.
 * Returns a frozen object; nothing else in the service reads process.env.
 */
import { accessSync, constants as fsConstants, readFileSync, statSync } from "node:fs";
import { parseConfigAmount, formatMicros } from "./domain/money.js";
import {
  LABEL_PATTERN,
  resolveSettlementSettings,
  SettlementConfigError,
  type FaultSpec,
  type SettlementSettings,
  type SettlementVariables,
} from "./settlement-config.js";

export interface Config extends SettlementVariables {
  /** host:port to serve on; port 0 picks a free port. */
  readonly listen: string;
  /** Mints per account per window. */
  readonly rateLimit: number;
  readonly rateWindowMs: number;
  readonly idempotencyTtlMs: number;
  /** Cap on idempotency keys held in memory (in-memory store). */
  readonly idempotencyMaxKeys: number;
  readonly maxAmountMicros: bigint;
  readonly shutdownGraceMs: number;
  /** Largest request message of every method but the batch ones, in bytes. */
  readonly maxMessageBytes: number;
  /** Largest BatchMint / BatchTransfer request message, in bytes (the transport's cap is the larger of the two). */
  readonly batchMaxMessageBytes: number;
  /** Most items per BatchMint / BatchTransfer call. */
  readonly batchMaxItems: number;
  /** "memory" or a postgres:// URL. */
  readonly store: string;
  /** redis:// URL of the shared rate limiter; empty for the in-memory limiter. */
  readonly redisUrl: string;
  /** When Redis is unreachable: false refuses mints with UNAVAILABLE, true lets them through (logged). */
  readonly rateLimitFailOpen: boolean;
  readonly pgPoolSize: number;
  readonly pgStatementTimeoutMs: number;
  readonly pgConnectTimeoutMs: number;
  /** Most mints and transfers in one PostgreSQL group commit (1: each call its own transaction). */
  readonly pgGroupMax: number;
  /** Longest a call waits for its group to fill while another group is in flight, in ms. */
  readonly pgGroupWaitMs: number;
  /** Most group commits in flight at once (each holds one connection; at most the pool size). */
  readonly pgGroupsInFlight: number;
  readonly logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** On-chain settlement, the file and signer settings below validated together; null when MINT_SETTLEMENT_FILE is empty. */
  readonly settlement: SettlementSettings | null;
  /** Test-only fault hook (MINT_TEST_FAULT, refused unless MINT_TEST_FAULTS=true); null normally. */
  readonly testFault: FaultSpec | null;
  /** Most calls this process runs at once; beyond it calls are shed UNAVAILABLE (OVERLOADED). */
  readonly maxCallsInFlight: number;
  /** Most calls that may wait for one account's lock; beyond it calls are shed UNAVAILABLE (ACCOUNT_BUSY). */
  readonly maxLockWaiters: number;
  /** HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: most calls open at once on one connection. */
  readonly maxConcurrentStreams: number;
  /** Refuse mints (RESERVE_NOT_SET) until a reserve is set. */
  readonly reserveRequired: boolean;
  /** host:port of the Prometheus HTTP listener (GET /metrics); empty = no listener. */
  readonly metricsListen: string;
  /** SHA-256 digests (raw 32 bytes) of the bearer tokens a scrape may present; empty: no token asked for (loopback, or MINT_METRICS_INSECURE). */
  readonly metricsTokenSha256: readonly Buffer[];
  /** Serve a non-loopback MINT_METRICS_LISTEN without TLS or a scrape token (logged at error on every start). */
  readonly metricsInsecure: boolean;
  /** Principals file (YAML or JSON); empty: every caller is `local` with every role (loopback only). */
  readonly authFile: string;
  /** PEM server certificate (chain) and key; empty: plaintext (loopback only). */
  readonly tlsCert: string;
  readonly tlsKey: string;
  /** PEM CA(s) that sign client certificates; empty: no client certificates asked for. */
  readonly tlsClientCa: string;
  /** Serve a non-loopback address without TLS and an auth file (logged loudly at start). */
  readonly insecure: boolean;
  /** Who may use server reflection: everyone, authenticated principals, or nobody (not served). */
  readonly reflection: "public" | "authenticated" | "off";
  /** Journal every change (on, the default); off exists only to measure the journal's cost (bench). */
  readonly auditJournal: boolean;
  /** Mints at or above this many micro-USDC wait for approval; null (the default, "off") for none. */
  readonly mintApprovalThresholdMicros: bigint | null;
  /** Distinct approvers a pending mint needs. */
  readonly mintApprovalsRequired: number;
  /** A pending mint older than this is rejected as expired. */
  readonly mintApprovalTtlMs: number;
  /** Each minter's mints consume its allowance (set by SetMinterAllowance); false (default) for no cap. */
  readonly mintAllowances: boolean;
  /** Take the caller's principal from the x-mint-dev-principal header (until auth; loopback listener only). */
  readonly devPrincipalHeader: boolean;
  /** WatchLedger: events are kept this long; an older cursor is FAILED_PRECONDITION CURSOR_EXPIRED. */
  readonly watchRetentionMs: number;
  /** WatchLedger: most events waiting for one consumer; past it the stream ends CONSUMER_TOO_SLOW. */
  readonly watchBufferEvents: number;
  /** WatchLedger: most streams open at once on this replica (apart from MINT_MAX_CALLS_IN_FLIGHT). */
  readonly watchMaxWatchers: number;
  /** WatchLedger on PostgreSQL: how often the replica's one poller reads the feed. */
  readonly watchPollIntervalMs: number;
  /** The JetStream relay (src/workers/nats-relay.ts): NATS server URL(s); empty (the default) = no relay. */
  readonly natsUrl: string;
  /** NATS credentials file (JWT and nkey seed); empty for none. */
  readonly natsCredsFile: string;
  /** NATS user (with natsPasswordFile); empty for none. */
  readonly natsUser: string;
  /** File holding the NATS user's password (read at connect, never logged). */
  readonly natsPasswordFile: string;
  /** The JetStream stream the relay publishes to (created when missing). */
  readonly natsStream: string;
  /** Subjects are `<prefix>.<event kind in lower case>`; the stream holds `<prefix>.>`. */
  readonly natsSubjectPrefix: string;
  /** The stream's max age when the relay creates it (0 = no age limit). */
  readonly natsMaxAgeMs: number;
  /** The stream's duplicate window (Nats-Msg-Id) when the relay creates it. */
  readonly natsDuplicateWindowMs: number;
  /** The stream's replicas when the relay creates it (clustered JetStream). */
  readonly natsReplicas: number;
  /** Publishes in flight at once (one window, acknowledgements awaited together). */
  readonly natsPublishWindow: number;
  /** How long one publish waits for its acknowledgement. */
  readonly natsPublishTimeoutMs: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

type Parser<T> = (raw: string) => T | undefined;

interface Setting<K extends keyof Config> {
  readonly key: K;
  readonly env: string;
  readonly def: string;
  readonly doc: string;
  readonly parse: Parser<Config[K]>;
  /** Human description of valid values, for the error line. */
  readonly expect: string;
}

const DURATION = /^([0-9]+)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Parses "500ms", "1s", "1m", "24h" into milliseconds. */
export function parseDurationMs(raw: string): number | undefined {
  const m = DURATION.exec(raw.trim());
  if (m === null) return undefined;
  const ms = Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

function intIn(min: number, max: number): Parser<number> {
  return (raw) => {
    if (!/^[0-9]+$/.test(raw.trim())) return undefined;
    const n = Number(raw.trim());
    return Number.isSafeInteger(n) && n >= min && n <= max ? n : undefined;
  };
}

function durationIn(minMs: number, maxMs: number): Parser<number> {
  return (raw) => {
    const ms = parseDurationMs(raw);
    return ms !== undefined && ms >= minMs && ms <= maxMs ? ms : undefined;
  };
}

const listenParser: Parser<string> = (raw) => {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(raw.trim());
  if (m === null || Number(m[2]) > 65535) return undefined;
  return raw.trim();
};

const optionalListenParser: Parser<string> = (raw) => (raw.trim() === "" ? "" : listenParser(raw));

const storeParser: Parser<string> = (raw) => {
  const v = raw.trim();
  if (v === "memory") return v;
  if (/^postgres(ql)?:\/\//.test(v)) {
    try {
      new URL(v);
      return v;
    } catch {
      return undefined;
    }
  }
  return undefined;
};

const redisParser: Parser<string> = (raw) => {
  const v = raw.trim();
  if (v === "") return v;
  if (!/^rediss?:\/\//.test(v)) return undefined;
  try {
    new URL(v);
    return v;
  } catch {
    return undefined;
  }
};

const boolParser: Parser<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  if (v === "true" || v === "1" || v === "yes") return true;
  if (v === "false" || v === "0" || v === "no") return false;
  return undefined;
};

/**
 * Empty ("not set") or the path of a readable regular file. Checked here so a
 * mistyped path or a forgotten volume mount is one line naming the variable.
 */
const fileParser: Parser<string> = (raw) => {
  const v = raw.trim();
  if (v === "") return v;
  try {
    accessSync(v, fsConstants.R_OK);
    return statSync(v).isFile() ? v : undefined;
  } catch {
    return undefined;
  }
};

/** At most this many scrape-token digests (two during a rotation is the usual case). */
export const MAX_METRICS_TOKENS = 16;

/** Comma-separated lowercase hex SHA-256 digests, as the auth file's `token_sha256`; empty for none. */
const digestListParser: Parser<readonly Buffer[]> = (raw) => {
  const v = raw.trim();
  if (v === "") return [];
  const parts = v.split(",").map((p) => p.trim());
  if (parts.length > MAX_METRICS_TOKENS || new Set(parts).size !== parts.length || !parts.every((p) => /^[0-9a-f]{64}$/.test(p))) return undefined;
  return parts.map((p) => Buffer.from(p, "hex"));
};

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const pathParser: Parser<string> = (raw) => (raw === "" || (raw.trim() === raw && !/[\0\r\n]/.test(raw)) ? raw : undefined);
const absolutePathParser: Parser<string> = (raw) => (raw === "" || (raw.startsWith("/") && !/[\0\r\n]/.test(raw)) ? raw : undefined);
const labelParser = (allowEmpty: boolean): Parser<string> => (raw) => ((allowEmpty && raw === "") || LABEL_PATTERN.test(raw) ? raw : undefined);

const natsUrlParser: Parser<string> = (raw) => {
  const v = raw.trim();
  if (v === "") return v;
  for (const part of v.split(",")) {
    const u = part.trim();
    if (!/^nats:\/\/[^\s/]+(:[0-9]{1,5})?\/?$/.test(u)) return undefined;
    try {
      new URL(u);
    } catch {
      return undefined;
    }
  }
  return v;
};

/** A JetStream stream name: no whitespace, `.`, `*`, `>`, path separators. */
const natsStreamParser: Parser<string> = (raw) => (/^[A-Za-z0-9_-]{1,64}$/.test(raw.trim()) ? raw.trim() : undefined);
/** Literal subject tokens (no wildcards), dot-separated. */
const natsSubjectPrefixParser: Parser<string> = (raw) => (/^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,15}$/.test(raw.trim()) ? raw.trim() : undefined);

const SETTINGS = [
  { key: "listen", env: "MINT_LISTEN", def: "127.0.0.1:50051", doc: "host:port to serve gRPC on (port 0 = any free port, printed at start)", parse: listenParser, expect: "host:port" },
  { key: "rateLimit", env: "MINT_RATE_LIMIT", def: "10", doc: "mints per account per window", parse: intIn(1, 1_000_000), expect: "an integer from 1 to 1000000" },
  { key: "rateWindowMs", env: "MINT_RATE_WINDOW", def: "1s", doc: "sliding window length (500ms, 1s, 1m)", parse: durationIn(1, 86_400_000), expect: "a duration such as 500ms, 1s, 1m (at most 24h)" },
  { key: "idempotencyTtlMs", env: "MINT_IDEMPOTENCY_TTL", def: "24h", doc: "how long an idempotency key replays, from the success", parse: durationIn(1, 30 * 86_400_000), expect: "a duration such as 5s, 24h (at most 720h)" },
  { key: "idempotencyMaxKeys", env: "MINT_IDEMPOTENCY_MAX_KEYS", def: "2000000", doc: "most idempotency keys kept in memory; beyond it calls get RESOURCE_EXHAUSTED", parse: intIn(1, 100_000_000), expect: "an integer from 1 to 100000000" },
  { key: "maxAmountMicros", env: "MINT_MAX_AMOUNT", def: "1000000000000", doc: "largest amount (USDC) one call may move", parse: (raw: string) => parseConfigAmount(raw.trim()) ?? undefined, expect: "a positive decimal USDC amount of at most 99999999999999999999999999999999.999999 (numeric(38,0) micro-USDC)" },
  { key: "shutdownGraceMs", env: "MINT_SHUTDOWN_GRACE", def: "10s", doc: "how long in-flight calls may run after SIGTERM", parse: durationIn(0, 3_600_000), expect: "a duration such as 10s (at most 1h)" },
  { key: "maxMessageBytes", env: "MINT_MAX_MESSAGE_BYTES", def: "4096", doc: "largest request message accepted of every method but BatchMint and BatchTransfer, in bytes", parse: intIn(256, 4 * 1024 * 1024), expect: "an integer from 256 to 4194304" },
  { key: "batchMaxMessageBytes", env: "MINT_BATCH_MAX_MESSAGE_BYTES", def: "1048576", doc: "largest BatchMint or BatchTransfer request message, in bytes", parse: intIn(256, 16 * 1024 * 1024), expect: "an integer from 256 to 16777216" },
  { key: "batchMaxItems", env: "MINT_BATCH_MAX_ITEMS", def: "1000", doc: "most items per BatchMint or BatchTransfer call", parse: intIn(1, 10_000), expect: "an integer from 1 to 10000" },
  { key: "store", env: "MINT_STORE", def: "memory", doc: "ledger store: memory, or postgres://user@host:port/db", parse: storeParser, expect: "memory or a postgres:// URL" },
  { key: "redisUrl", env: "MINT_REDIS_URL", def: "", doc: "redis://host:port[/db] for a shared rate limiter (empty = in-process)", parse: redisParser, expect: "empty or a redis:// URL" },
  { key: "rateLimitFailOpen", env: "MINT_RATE_LIMIT_FAIL_OPEN", def: "false", doc: "when Redis is unreachable, let mints through (true) or refuse them UNAVAILABLE (false)", parse: boolParser, expect: "true or false" },
  { key: "pgPoolSize", env: "MINT_PG_POOL_SIZE", def: "10", doc: "PostgreSQL connections per replica", parse: intIn(1, 1000), expect: "an integer from 1 to 1000" },
  { key: "pgStatementTimeoutMs", env: "MINT_PG_STATEMENT_TIMEOUT", def: "5s", doc: "PostgreSQL statement timeout", parse: durationIn(1, 3_600_000), expect: "a duration such as 5s" },
  { key: "pgConnectTimeoutMs", env: "MINT_PG_CONNECT_TIMEOUT", def: "5s", doc: "PostgreSQL connect timeout", parse: durationIn(1, 3_600_000), expect: "a duration such as 5s" },
  { key: "pgGroupMax", env: "MINT_PG_GROUP_MAX", def: "64", doc: "PostgreSQL group commit: most mints and transfers of this replica committed together, in one transaction and one round trip (1 = every call its own transaction)", parse: intIn(1, 1024), expect: "an integer from 1 to 1024" },
  { key: "pgGroupWaitMs", env: "MINT_PG_GROUP_WAIT", def: "1ms", doc: "PostgreSQL group commit: longest a call waits for others to join its group while another group is in flight (a call that finds no group in flight leaves at once)", parse: durationIn(0, 100), expect: "a duration from 0ms to 100ms" },
  { key: "pgGroupsInFlight", env: "MINT_PG_GROUPS_IN_FLIGHT", def: "4", doc: "PostgreSQL group commit: most groups in flight at once on this replica, each on one pooled connection (capped at the pool size)", parse: intIn(1, 1000), expect: "an integer from 1 to 1000" },
  { key: "settlementFile", env: "MINT_SETTLEMENT_FILE", def: "", doc: "JSON or YAML file of the chains to settle mints on (empty = no settlement: mints are available at once)", parse: pathParser, expect: "a file path" },
  { key: "signer", env: "MINT_SIGNER", def: "pkcs11", doc: "settlement signer: pkcs11 (HSM) or dev-key (tests and demos; loopback listener only)", parse: (raw: string) => (raw === "pkcs11" || raw === "dev-key" ? raw : undefined), expect: "pkcs11 or dev-key" },
  { key: "pkcs11Module", env: "MINT_PKCS11_MODULE", def: "", doc: "path of the PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)", parse: absolutePathParser, expect: "an absolute path" },
  { key: "pkcs11TokenLabel", env: "MINT_PKCS11_TOKEN_LABEL", def: "", doc: "label of the PKCS#11 token holding the treasury key (found by label, not slot)", parse: labelParser(true), expect: "1 to 32 of A-Z a-z 0-9 . _ -" },
  { key: "pkcs11KeyLabel", env: "MINT_PKCS11_KEY_LABEL", def: "mint-treasury", doc: "label of the secp256k1 key pair on the token", parse: labelParser(false), expect: "1 to 32 of A-Z a-z 0-9 . _ -" },
  { key: "pkcs11PinFile", env: "MINT_PKCS11_PIN_FILE", def: "", doc: "file holding the token's user PIN (read at start, never logged)", parse: pathParser, expect: "a file path" },
  { key: "devKeyFile", env: "MINT_DEV_KEY_FILE", def: "", doc: "file holding the dev-key signer's 0x private key (tests and demos only)", parse: pathParser, expect: "a file path" },
  { key: "testFaults", env: "MINT_TEST_FAULTS", def: "false", doc: "allow test-only fault hooks (never in production)", parse: boolParser, expect: "true or false" },
  { key: "testFaultPoint", env: "MINT_TEST_FAULT", def: "", doc: "test-only: kill the process at after-sign or after-broadcast[:N] (needs MINT_TEST_FAULTS=true)", parse: (raw: string) => raw, expect: "after-sign or after-broadcast" },
  { key: "logLevel", env: "MINT_LOG_LEVEL", def: "info", doc: "log level (fatal, error, warn, info, debug, trace, silent)", parse: (raw: string) => (LOG_LEVELS as readonly string[]).includes(raw.trim()) ? (raw.trim() as Config["logLevel"]) : undefined, expect: LOG_LEVELS.join(", ") },
  { key: "maxCallsInFlight", env: "MINT_MAX_CALLS_IN_FLIGHT", def: "1000", doc: "most calls running at once in this process; more are refused UNAVAILABLE (OVERLOADED) with RetryInfo", parse: intIn(1, 1_000_000), expect: "an integer from 1 to 1000000" },
  { key: "maxLockWaiters", env: "MINT_MAX_LOCK_WAITERS", def: "128", doc: "most calls waiting for one account; more are refused UNAVAILABLE (ACCOUNT_BUSY) with RetryInfo", parse: intIn(1, 1_000_000), expect: "an integer from 1 to 1000000" },
  { key: "auditJournal", env: "MINT_AUDIT_JOURNAL", def: "on", doc: "audit journal of every change: on, or off only to measure its cost (nothing is journaled)", parse: (raw: string) => (raw === "on" ? true : raw === "off" ? false : undefined), expect: "on or off" },
  { key: "maxConcurrentStreams", env: "MINT_MAX_CONCURRENT_STREAMS", def: "100", doc: "most calls open at once on one HTTP/2 connection (grpc.max_concurrent_streams)", parse: intIn(1, 1_000_000), expect: "an integer from 1 to 1000000" },
  { key: "reserveRequired", env: "MINT_RESERVE_REQUIRED", def: "false", doc: "refuse mints (FAILED_PRECONDITION RESERVE_NOT_SET) until SetReserve has set a reserve; false = supply is not capped before one is set", parse: boolParser, expect: "true or false" },
  { key: "metricsListen", env: "MINT_METRICS_LISTEN", def: "", doc: "host:port serving Prometheus metrics at GET /metrics, in the service and in the standalone settlement worker (empty = off; port 0 = any free port)", parse: optionalListenParser, expect: "empty or host:port" },
  { key: "metricsTokenSha256", env: "MINT_METRICS_TOKEN_SHA256", def: "", doc: "lowercase hex SHA-256 of the bearer token a scrape must send (Prometheus `authorization` credentials); comma-separated for a rotation; required for a non-loopback MINT_METRICS_LISTEN", parse: digestListParser, expect: `empty or 1 to ${MAX_METRICS_TOKENS} comma-separated lowercase hex SHA-256 digests (64 characters each)` },
  { key: "metricsInsecure", env: "MINT_METRICS_INSECURE", def: "false", doc: "allow a non-loopback MINT_METRICS_LISTEN without TLS (the service's certificate) or a scrape token (logged at error on every start)", parse: boolParser, expect: "true or false" },
  { key: "authFile", env: "MINT_AUTH_FILE", def: "", doc: "principals file (YAML or JSON): names, roles, account scopes, certificate identities, token SHA-256 digests; re-read on SIGHUP (empty = every caller is `local`, loopback only)", parse: fileParser, expect: "the path of a readable file" },
  { key: "tlsCert", env: "MINT_TLS_CERT", def: "", doc: "PEM server certificate (with its chain); re-read on SIGHUP (empty = plaintext, loopback only)", parse: fileParser, expect: "the path of a readable file" },
  { key: "tlsKey", env: "MINT_TLS_KEY", def: "", doc: "PEM private key of MINT_TLS_CERT; re-read on SIGHUP", parse: fileParser, expect: "the path of a readable file" },
  { key: "tlsClientCa", env: "MINT_TLS_CLIENT_CA", def: "", doc: "PEM CA certificate(s) of client certificates (mutual TLS; asked for, not required: health needs none); re-read on SIGHUP", parse: fileParser, expect: "the path of a readable file" },
  { key: "insecure", env: "MINT_INSECURE", def: "false", doc: "allow a non-loopback MINT_LISTEN without TLS and an auth file (logged loudly)", parse: boolParser, expect: "true or false" },
  { key: "reflection", env: "MINT_REFLECTION", def: "auto", doc: "server reflection: public, authenticated (any principal of the auth file) or off; auto = authenticated with an auth file, else public", parse: (raw: string) => (["auto", "public", "authenticated", "off"].includes(raw.trim()) ? (raw.trim() as Config["reflection"]) : undefined), expect: "auto, public, authenticated or off" },
  { key: "mintApprovalThresholdMicros", env: "MINT_APPROVAL_THRESHOLD", def: "off", doc: "mints of at least this amount (USDC) wait for M-of-N approval (off = none)", parse: (raw: string) => (raw.trim() === "off" ? null : (parseConfigAmount(raw.trim()) ?? undefined)), expect: "off or a positive decimal USDC amount" },
  { key: "mintApprovalsRequired", env: "MINT_APPROVALS_REQUIRED", def: "2", doc: "distinct approvers (not the requester) a pending mint needs", parse: intIn(1, 100), expect: "an integer from 1 to 100" },
  { key: "mintApprovalTtlMs", env: "MINT_APPROVAL_TTL", def: "24h", doc: "a pending mint older than this is rejected as expired", parse: durationIn(1_000, 30 * 86_400_000), expect: "a duration such as 1h, 24h (1s to 720h)" },
  { key: "mintAllowances", env: "MINT_ALLOWANCES", def: "false", doc: "cap each minter by its allowance (SetMinterAllowance); false = no cap", parse: boolParser, expect: "true or false" },
  { key: "watchRetentionMs", env: "MINT_WATCH_RETENTION", def: "168h", doc: "WatchLedger keeps events this long; a cursor older than that is FAILED_PRECONDITION (CURSOR_EXPIRED) with the oldest cursor", parse: durationIn(1_000, 8_760 * 3_600_000), expect: "a duration such as 24h, 168h (1s to 8760h)" },
  { key: "watchBufferEvents", env: "MINT_WATCH_BUFFER", def: "1000", doc: "WatchLedger: most events waiting for one consumer; past it the stream ends RESOURCE_EXHAUSTED (CONSUMER_TOO_SLOW) with its resume cursor", parse: intIn(1, 1_000_000), expect: "an integer from 1 to 1000000" },
  { key: "watchMaxWatchers", env: "MINT_WATCH_MAX_WATCHERS", def: "10000", doc: "WatchLedger: most streams open at once on this replica (they do not count against MINT_MAX_CALLS_IN_FLIGHT); more are RESOURCE_EXHAUSTED (WATCHERS_LIMIT)", parse: intIn(1, 1_000_000), expect: "an integer from 1 to 1000000" },
  { key: "watchPollIntervalMs", env: "MINT_WATCH_POLL_INTERVAL", def: "100ms", doc: "WatchLedger on PostgreSQL: how often this replica's one poller reads the event feed (memory: at once)", parse: durationIn(5, 60_000), expect: "a duration from 5ms to 60s" },
  { key: "natsUrl", env: "MINT_NATS_URL", def: "", doc: "publish every ledger event to NATS JetStream: nats://host:port (comma-separated for a cluster; empty = no relay)", parse: natsUrlParser, expect: "empty or nats://host:port[,nats://host:port...]" },
  { key: "natsCredsFile", env: "MINT_NATS_CREDS_FILE", def: "", doc: "NATS credentials file (user JWT and nkey seed) for the relay", parse: fileParser, expect: "the path of a readable file" },
  { key: "natsUser", env: "MINT_NATS_USER", def: "", doc: "NATS user for the relay (its password in the password file below)", parse: (raw: string) => (/^[A-Za-z0-9._@:+-]{0,128}$/.test(raw) ? raw : undefined), expect: "up to 128 of A-Z a-z 0-9 . _ @ : + -" },
  { key: "natsPasswordFile", env: "MINT_NATS_PASSWORD_FILE", def: "", doc: "file holding MINT_NATS_USER's password (read at connect, never logged)", parse: fileParser, expect: "the path of a readable file" },
  { key: "natsStream", env: "MINT_NATS_STREAM", def: "USDC_MINT_EVENTS", doc: "JetStream stream the relay publishes to, created when missing (one relay per stream across replicas)", parse: natsStreamParser, expect: "1 to 64 of A-Z a-z 0-9 _ -" },
  { key: "natsSubjectPrefix", env: "MINT_NATS_SUBJECT_PREFIX", def: "usdc.mint.v1.events", doc: "subjects are <prefix>.<event kind in lower case>; the stream holds <prefix>.>", parse: natsSubjectPrefixParser, expect: "dot-separated tokens of A-Z a-z 0-9 _ - (no wildcards)" },
  { key: "natsMaxAgeMs", env: "MINT_NATS_MAX_AGE", def: "168h", doc: "JetStream deletes messages older than this (set when the relay creates the stream; 0s = no age limit)", parse: durationIn(0, 87_600 * 3_600_000), expect: "a duration such as 24h, 168h (0s = no limit)" },
  { key: "natsDuplicateWindowMs", env: "MINT_NATS_DUPLICATE_WINDOW", def: "2m", doc: "JetStream drops a second message with the same Nats-Msg-Id (the event id) within this window (set when the relay creates the stream)", parse: durationIn(100, 86_400_000), expect: "a duration from 100ms to 24h" },
  { key: "natsReplicas", env: "MINT_NATS_REPLICAS", def: "1", doc: "replicas of the stream when the relay creates it (clustered JetStream)", parse: intIn(1, 5), expect: "an integer from 1 to 5" },
  { key: "natsPublishWindow", env: "MINT_NATS_PUBLISH_WINDOW", def: "1000", doc: "the relay's publishes in flight at once; their acknowledgements are awaited together", parse: intIn(1, 100_000), expect: "an integer from 1 to 100000" },
  { key: "natsPublishTimeoutMs", env: "MINT_NATS_PUBLISH_TIMEOUT", def: "5s", doc: "how long one publish waits for JetStream's acknowledgement before the relay retries", parse: durationIn(100, 60_000), expect: "a duration from 100ms to 60s" },
  { key: "devPrincipalHeader", env: "MINT_DEV_PRINCIPAL_HEADER", def: "false", doc: "tests and demos without an auth file: the x-mint-dev-principal header renames the local caller (loopback only, refused beside MINT_AUTH_FILE)", parse: boolParser, expect: "true or false" },
] as const satisfies readonly Setting<keyof Config>[];

function flagOf(env: string): string {
  return "--" + env.replace(/^MINT_/, "").toLowerCase().replace(/_/g, "-");
}

/** The --help text: every setting, its flag, env variable and default. */
export function helpText(): string {
  const lines = ["usdc-mint-service: gRPC MintService", "", "Settings (flag, environment variable, default):"];
  for (const s of SETTINGS) {
    lines.push(`  ${flagOf(s.env).padEnd(26)} ${s.env.padEnd(28)} default ${JSON.stringify(s.def)}`);
    lines.push(`      ${s.doc}`);
  }
  lines.push("", "Flags take --name=value or --name value; a flag wins over its variable.");
  return lines.join("\n");
}

/**
 * Reads the configuration from `argv` (without node and script) and `env`.
 * Throws ConfigError with a one-line message naming the bad variable or flag.
 */
export function loadConfig(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Config {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith("--")) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)} (see --help)`);
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(0, eq) : arg;
    // Known before needing a value: `--bogus` is an unknown flag, not one missing its value.
    if (!SETTINGS.some((s) => flagOf(s.env) === name)) throw new ConfigError(`unknown flag ${name} (see --help)`);
    let value: string;
    if (eq >= 0) {
      value = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError(`flag ${name} needs a value (see --help)`);
      value = next;
      i++;
    }
    flags.set(name, value);
  }
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) {
    const flag = flagOf(s.env);
    const fromFlag = flags.get(flag);
    const fromEnv = env[s.env];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== "" ? fromEnv : s.def);
    const parsed = (s.parse as Parser<unknown>)(raw);
    if (parsed === undefined) {
      const source = fromFlag !== undefined ? `flag ${flag}` : s.env;
      throw new ConfigError(`invalid ${source}=${JSON.stringify(raw)}: expected ${s.expect}`);
    }
    out[s.key] = parsed;
  }
  const raw = out as unknown as Config;
  if (raw.devPrincipalHeader && (!isLoopbackListen(raw.listen) || raw.authFile !== "")) {
    // The header renames the all-roles `local` caller: only where there is no auth file and no other host.
    const name = flags.has(flagOf("MINT_DEV_PRINCIPAL_HEADER")) ? `flag ${flagOf("MINT_DEV_PRINCIPAL_HEADER")}` : "MINT_DEV_PRINCIPAL_HEADER";
    const why = raw.authFile !== "" ? "beside MINT_AUTH_FILE (principals come from credentials)" : `on a non-loopback listener (${raw.listen}); any caller could name itself`;
    throw new ConfigError(`invalid ${name}=true: refused ${why}`);
  }
  try {
    const { settlement, testFault } = resolveSettlementSettings(raw, {
      readFile: (path) => readFileSync(path, "utf8"),
      parseDurationMs,
      nameOf: (env) => (flags.has(flagOf(env)) ? `flag ${flagOf(env)}` : env),
    });
    out.settlement = settlement === null ? null : deepFreeze(settlement);
    out.testFault = testFault === null ? null : Object.freeze(testFault);
  } catch (err) {
    if (err instanceof SettlementConfigError) throw new ConfigError(err.message);
    throw err;
  }
  if ((raw.natsUser === "") !== (raw.natsPasswordFile === "")) throw new ConfigError("MINT_NATS_USER and MINT_NATS_PASSWORD_FILE must be set together");
  if (raw.natsMaxAgeMs > 0 && raw.natsDuplicateWindowMs > raw.natsMaxAgeMs) {
    throw new ConfigError(`invalid MINT_NATS_DUPLICATE_WINDOW=${raw.natsDuplicateWindowMs}ms: longer than MINT_NATS_MAX_AGE (JetStream refuses such a stream)`);
  }
  // "auto" resolves here, so everything downstream sees the decision.
  if ((out.reflection as string) === "auto") out.reflection = out.authFile === "" ? "public" : "authenticated";
  const config = out as unknown as Config;
  checkSecurity(config);
  return Object.freeze(config);
}

/** Whether a listen host is reachable only from this machine: 127.0.0.0/8, ::1 or localhost. */
export function isLoopbackListen(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(":")).toLowerCase();
  return host === "localhost" || host === "[::1]" || /^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/.test(host);
}

/**
 * Safe by default: money must not move for a caller from another host unless
 * the operator gave TLS and a principals file, or said MINT_INSECURE=true.
 */
function checkSecurity(c: Config): void {
  if ((c.tlsCert === "") !== (c.tlsKey === "")) throw new ConfigError("MINT_TLS_CERT and MINT_TLS_KEY must be set together");
  if (c.tlsClientCa !== "" && c.tlsCert === "") throw new ConfigError("MINT_TLS_CLIENT_CA needs MINT_TLS_CERT and MINT_TLS_KEY (mutual TLS is TLS first)");
  checkMetricsSecurity(c);
  if (isLoopbackListen(c.listen) || c.insecure) return;
  if (c.tlsCert !== "" && c.authFile !== "") return;
  const missing = [c.tlsCert === "" ? "MINT_TLS_CERT, MINT_TLS_KEY" : "", c.authFile === "" ? "MINT_AUTH_FILE" : ""].filter(Boolean).join(", ");
  throw new ConfigError(
    `MINT_LISTEN=${c.listen} is reachable from other hosts but ${missing} ${missing.includes(",") ? "are" : "is"} not set: ` +
      "mount the certificates and the auth file (docker run -v \"$PWD/secrets:/secrets:ro\" -e MINT_TLS_CERT=/secrets/server.crt " +
      "-e MINT_TLS_KEY=/secrets/server.key -e MINT_TLS_CLIENT_CA=/secrets/client-ca.crt -e MINT_AUTH_FILE=/secrets/auth.yaml ...; see docs/security.md), " +
      "listen on 127.0.0.1, or set MINT_INSECURE=true to serve without credentials",
  );
}

/**
 * What a non-loopback metrics listener lacks to be served safely: TLS (the
 * service's certificate) and a scrape token. Empty when it lacks nothing,
 * and always empty for loopback or no listener.
 */
export function metricsExposure(c: Pick<Config, "metricsListen" | "tlsCert" | "metricsTokenSha256">): string[] {
  if (c.metricsListen === "" || isLoopbackListen(c.metricsListen)) return [];
  return [c.tlsCert === "" ? "MINT_TLS_CERT, MINT_TLS_KEY" : "", c.metricsTokenSha256.length === 0 ? "MINT_METRICS_TOKEN_SHA256" : ""].filter(Boolean);
}

/**
 * The metrics port reveals the service's traffic and drives reads of its
 * store: from another host it needs TLS and a scrape token, unless the
 * operator said MINT_METRICS_INSECURE=true.
 */
function checkMetricsSecurity(c: Config): void {
  const missing = metricsExposure(c);
  if (missing.length === 0 || c.metricsInsecure) return;
  throw new ConfigError(
    `MINT_METRICS_LISTEN=${c.metricsListen} is reachable from other hosts but ${missing.join(", ")} ${missing.length > 1 || missing[0]?.includes(",") === true ? "are" : "is"} not set: ` +
      "scrapes from another host need TLS (the service's MINT_TLS_CERT and MINT_TLS_KEY) and a bearer token (MINT_METRICS_TOKEN_SHA256 holds its SHA-256; see docs/operations.md \"Metrics\"), " +
      "or listen on 127.0.0.1, or set MINT_METRICS_INSECURE=true to serve them without",
  );
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The configuration as logged at start: no secrets (passwords in URLs are masked). */
export function describeConfig(config: Config): Record<string, string | number | boolean | null> {
  const mask = (url: string): string => {
    if (url === "" || url === "memory") return url;
    try {
      const u = new URL(url);
      if (u.password !== "") u.password = "***";
      return u.toString();
    } catch {
      return "***";
    }
  };
  return {
    listen: config.listen,
    rateLimit: config.rateLimit,
    rateWindowMs: config.rateWindowMs,
    idempotencyTtlMs: config.idempotencyTtlMs,
    idempotencyMaxKeys: config.idempotencyMaxKeys,
    maxAmount: formatMicros(config.maxAmountMicros),
    shutdownGraceMs: config.shutdownGraceMs,
    maxMessageBytes: config.maxMessageBytes,
    batchMaxMessageBytes: config.batchMaxMessageBytes,
    batchMaxItems: config.batchMaxItems,
    store: mask(config.store),
    redisUrl: mask(config.redisUrl),
    rateLimitFailOpen: config.rateLimitFailOpen,
    pgPoolSize: config.pgPoolSize,
    pgStatementTimeoutMs: config.pgStatementTimeoutMs,
    pgConnectTimeoutMs: config.pgConnectTimeoutMs,
    pgGroupMax: config.pgGroupMax,
    pgGroupWaitMs: config.pgGroupWaitMs,
    pgGroupsInFlight: config.pgGroupsInFlight,
    logLevel: config.logLevel,
    // Chains and where the key lives; never the PIN or a key.
    settlement: config.settlement === null ? null : config.settlement.chains.map((c) => `${c.blockchain}:${c.chainId}:${c.confirmations}`).join(","),
    signer: config.settlement === null ? null : config.settlement.signer.kind === "pkcs11" ? `pkcs11:${config.settlement.signer.tokenLabel}/${config.settlement.signer.keyLabel}` : "dev-key",
    testFault: config.testFault === null ? null : `${config.testFault.point}:${config.testFault.count}`,
    maxCallsInFlight: config.maxCallsInFlight,
    maxLockWaiters: config.maxLockWaiters,
    maxConcurrentStreams: config.maxConcurrentStreams,
    reserveRequired: config.reserveRequired,
    metricsListen: config.metricsListen,
    // How many digests, never the digests themselves.
    metricsTokens: config.metricsTokenSha256.length,
    metricsInsecure: config.metricsInsecure,
    authFile: config.authFile,
    tlsCert: config.tlsCert,
    tlsKey: config.tlsKey,
    tlsClientCa: config.tlsClientCa,
    insecure: config.insecure,
    reflection: config.reflection,
    auditJournal: config.auditJournal,
    mintApprovalThreshold: config.mintApprovalThresholdMicros === null ? "off" : formatMicros(config.mintApprovalThresholdMicros),
    mintApprovalsRequired: config.mintApprovalsRequired,
    mintApprovalTtlMs: config.mintApprovalTtlMs,
    // Said plainly in the start line: without allowances no minter is capped.
    mintAllowances: config.mintAllowances ? "on" : "off (no minter allowance cap)",
    devPrincipalHeader: config.devPrincipalHeader,
    watchRetentionMs: config.watchRetentionMs,
    watchBufferEvents: config.watchBufferEvents,
    watchMaxWatchers: config.watchMaxWatchers,
    watchPollIntervalMs: config.watchPollIntervalMs,
    nats: config.natsUrl === "" ? "off" : mask(config.natsUrl),
    natsAuth: config.natsCredsFile !== "" ? `creds:${config.natsCredsFile}` : config.natsUser !== "" ? `user:${config.natsUser}` : "none",
    natsStream: config.natsStream,
    natsSubjectPrefix: config.natsSubjectPrefix,
    natsMaxAgeMs: config.natsMaxAgeMs,
    natsDuplicateWindowMs: config.natsDuplicateWindowMs,
    natsReplicas: config.natsReplicas,
    natsPublishWindow: config.natsPublishWindow,
    natsPublishTimeoutMs: config.natsPublishTimeoutMs,
  };
}

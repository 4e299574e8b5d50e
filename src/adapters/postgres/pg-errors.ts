/**
 * Sorts the errors `pg` throws into the few kinds the adapter acts on. Only
 * these kinds are operating errors; anything else (a constraint violation, a
 * syntax error) is a bug and is rethrown as is, so it surfaces as INTERNAL.
 */
import { UnavailableError } from "../../domain/errors.js";

export type PgErrorKind =
  /** 40001 or 40P01: the transaction lost a race; redoing it is safe. */
  | "retryable"
  /** 55P03: `lock_timeout` passed while waiting for a row lock. */
  | "lock-timeout"
  /** 57014: `statement_timeout` passed (or the statement was cancelled). */
  | "statement-timeout"
  /** The connection is gone or could not be made; the database may be down. */
  | "connection"
  | "other";

/** SQLSTATEs after which the session or server cannot go on. */
const CONNECTION_SQLSTATES = new Set([
  "57P01", // admin_shutdown (pg_terminate_backend, server stop)
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, recovering)
  "53300", // too_many_connections
  "25P03", // idle_in_transaction_session_timeout killed the session
  // Class 08 only where the connection itself is lost or refused. 08P01
  // (protocol_violation) and 08004's cousins that mean "we sent something the
  // server cannot parse" are bugs in the client, and retrying them elsewhere
  // would only repeat the bug: they fall through to "other" (INTERNAL).
  "08000", // connection_exception
  "08003", // connection_does_not_exist
  "08006", // connection_failure
  "08001", // sqlclient_unable_to_establish_sqlconnection
  "08004", // sqlserver_rejected_establishment_of_sqlconnection
  "08007", // transaction_resolution_unknown
]);

/** Node socket error codes that mean the server cannot be reached. */
const SOCKET_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * `pg` and `pg-pool` report lost or impossible connections with plain
 * messages and no code, so the messages are the only way to recognise them.
 */
const CONNECTION_MESSAGES = [
  "Connection terminated",
  "not queryable",
  "timeout exceeded when trying to connect",
  "Query read timeout",
  "Cannot use a pool after calling end",
  "connect ECONNREFUSED",
];

function codeOf(err: unknown): string | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

export function classifyPgError(err: unknown): PgErrorKind {
  const code = codeOf(err);
  if (code === "40001" || code === "40P01") return "retryable";
  if (code === "55P03") return "lock-timeout";
  if (code === "57014") return "statement-timeout";
  if (code !== undefined && (CONNECTION_SQLSTATES.has(code) || SOCKET_CODES.has(code))) {
    return "connection";
  }
  // AggregateError (several addresses refused) carries the code on its members.
  if (err instanceof AggregateError && err.errors.some((e) => classifyPgError(e) === "connection")) return "connection";
  const message = err instanceof Error ? err.message : "";
  if (CONNECTION_MESSAGES.some((m) => message.includes(m))) return "connection";
  if (err instanceof Error && err.cause !== undefined && err.cause !== err) {
    return classifyPgError(err.cause) === "connection" ? "connection" : "other";
  }
  return "other";
}

/** Wraps a connection-kind error for the edge, which answers UNAVAILABLE. */
export function pgUnavailableError(err: unknown, doing: string): UnavailableError {
  const detail = err instanceof Error ? err.message : String(err);
  return new UnavailableError(`PostgreSQL unavailable while ${doing}: ${detail}`, { cause: err });
}

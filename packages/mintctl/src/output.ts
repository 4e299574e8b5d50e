/**
 * How mintctl prints: aligned plain-text tables for people (no colours, so
 * they paste cleanly into tickets), one JSON document for scripts (`--json`).
 */
import type { Mint, Transfer } from "../../client/src/types.js";

export interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Whether stderr is a terminal (decides the progress bar). */
  readonly stderrIsTTY: boolean;
  readonly stderr?: NodeJS.WritableStream;
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd()).join("\n") + "\n";
}

/** Two columns, field and value, for one record. */
export function record(fields: readonly (readonly [string, string])[]): string {
  return table(["FIELD", "VALUE"], fields);
}

function time(d: Date | undefined): string {
  return d === undefined ? "" : d.toISOString();
}

export function mintFields(m: Mint): [string, string][] {
  return [
    ["mint_id", m.mintId],
    ["account_id", m.accountId],
    ["amount", m.amount],
    ["blockchain", m.blockchain],
    ["status", m.status],
    ["idempotency_key", m.idempotencyKey],
    ["create_time", time(m.createTime)],
    ["reverse_time", time(m.reverseTime)],
    ["reverse_reason", m.reverseReason],
    // Issue 11's rows only for mints it applied to, so other mints print as before.
    ...(m.requester === ""
      ? []
      : ([
          ["requester", m.requester],
          ["approvals", m.approvals.map((a) => `${a.approver}@${time(a.approveTime)}`).join(",")],
          ["approval_expire_time", time(m.approvalExpireTime)],
          ["reject_reason", m.rejectReason],
          ["rejected_by", m.rejectedBy],
        ] as [string, string][])),
  ];
}

export function transferFields(t: Transfer): [string, string][] {
  return [
    ["transfer_id", t.transferId],
    ["from_account_id", t.fromAccountId],
    ["to_account_id", t.toAccountId],
    ["amount", t.amount],
    ["idempotency_key", t.idempotencyKey],
    ["create_time", time(t.createTime)],
  ];
}

export const MINT_COLUMNS = ["MINT_ID", "ACCOUNT_ID", "AMOUNT", "BLOCKCHAIN", "STATUS", "CREATE_TIME"] as const;

export function mintRow(m: Mint): string[] {
  return [m.mintId, m.accountId, m.amount, m.blockchain, m.status, time(m.createTime)];
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

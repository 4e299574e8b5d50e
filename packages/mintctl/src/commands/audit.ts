/**
 * Issue 10: `mintctl audit list` pages through the audit journal (filters by
 * account, principal and time) and `mintctl audit verify` asks the service
 * to recompute the chain; verify exits EXIT_AUDIT_BROKEN (4) when a record
 * is missing or altered, so a cron job can alert on it.
 */
import type { AuditEvent } from "../../../client/src/client.js";
import type { CommandSpec } from "../command.js";
import { UsageError } from "../context.js";
import { EXIT_AUDIT_BROKEN } from "../exit-codes.js";
import { record, table } from "../output.js";

function whenOf(flag: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const d = new Date(text);
  if (Number.isNaN(d.getTime()) || d.getTime() <= 0) throw new UsageError(`${flag} must be a date/time such as 2026-01-31T12:00:00Z, got ${JSON.stringify(text)}`);
  return d;
}

function wholeNumber(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

const COLUMNS = ["SEQ", "TIME", "PRINCIPAL", "ACTION", "ACCOUNTS", "REQUEST", "RESULT"] as const;

function row(e: AuditEvent): string[] {
  return [String(e.seq), e.time.toISOString(), e.principal, e.action, e.accountIds.join(","), e.requestJson, e.resultJson];
}

export const auditCommand: CommandSpec = {
  register(program, run) {
    const audit = program.command("audit").description("read and verify the hash-chained audit journal (role auditor)");
    audit
      .command("list")
      .description("list audit records, oldest first, paging through all of them (up to --max)")
      .option("--account <account>", "only changes touching this account")
      .option("--principal <name>", "only changes made by this principal")
      .option("--since <time>", "only changes at or after this time (ISO 8601)")
      .option("--until <time>", "only changes before this time (ISO 8601)")
      .option("--page-size <n>", "records per page request (1-1000)", "100")
      .option("--max <n>", "stop after this many records", "100000")
      .action(
        run(async (ctx, opts) => {
          const o = opts as { account?: string; principal?: string; since?: string; until?: string; pageSize: string; max: string };
          const pageSize = wholeNumber("--page-size", o.pageSize, 1, 1000);
          const max = wholeNumber("--max", o.max, 1, 100_000_000);
          const startTime = whenOf("--since", o.since);
          const endTime = whenOf("--until", o.until);
          const events: AuditEvent[] = [];
          let pageToken = "";
          let truncated = false;
          do {
            const page = await ctx.client().listAuditEvents({
              accountId: o.account ?? "",
              principal: o.principal ?? "",
              ...(startTime === undefined ? {} : { startTime }),
              ...(endTime === undefined ? {} : { endTime }),
              pageSize,
              pageToken,
            });
            for (const e of page.events) {
              if (events.length === max) {
                truncated = true;
                break;
              }
              events.push(e);
            }
            pageToken = truncated ? "" : page.nextPageToken;
          } while (pageToken !== "");
          const footer = `${events.length} record${events.length === 1 ? "" : "s"}${truncated ? ` (stopped at --max ${max}; more remain)` : ""}\n`;
          return ctx.print({ events, count: events.length, truncated }, () => table(COLUMNS, events.map(row)) + footer);
        }),
      );
    audit
      .command("verify")
      .description(`recompute the journal's hash chain; exit ${EXIT_AUDIT_BROKEN} when it is broken`)
      .option("--from <seq>", "first sequence number (default: the start)", "0")
      .option("--to <seq>", "last sequence number (default: the head)", "0")
      .action(
        run(async (ctx, opts) => {
          const o = opts as { from: string; to: string };
          const fromSeq = wholeNumber("--from", o.from, 0, Number.MAX_SAFE_INTEGER);
          const toSeq = wholeNumber("--to", o.to, 0, Number.MAX_SAFE_INTEGER);
          const v = await ctx.client().verifyAuditChain({ fromSeq, toSeq });
          const code = ctx.print(v, () =>
            v.whole
              ? record([
                  ["whole", "yes"],
                  ["records", `${v.firstSeq}..${v.lastSeq} (${v.checked} checked)`],
                  ["head_hash", v.headHash],
                  ["unsealed", String(v.unsealed)],
                ])
              : record([
                  ["whole", "NO"],
                  ["broken_seq", String(v.brokenSeq)],
                  ["reason", v.reason],
                  ["checked", String(v.checked)],
                ]),
          );
          return v.whole ? code : EXIT_AUDIT_BROKEN;
        }),
      );
  },
};

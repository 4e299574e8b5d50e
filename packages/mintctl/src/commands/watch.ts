/**
 * `mintctl watch`: the ledger's events as they commit (WatchLedger), one line
 * each, resuming by itself after a disconnect (the SDK's watchLedger). With
 * --json each line is one JSON object (JSON Lines), `cursor` included: pass
 * the last one to --from to go on where a previous run stopped.
 */
import type { LedgerEvent, LedgerEventKindName } from "../../../client/src/watch.js";
import { LEDGER_EVENT_KINDS } from "../../../client/src/watch.js";
import type { CommandSpec } from "../command.js";
import { UsageError } from "../context.js";
import { EXIT_OK } from "../exit-codes.js";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(",").filter((v) => v !== "")];
}

/** The human line of one event: time, kind, accounts, what happened, cursor. */
export function eventLine(e: LedgerEvent): string {
  let what = "";
  if (e.mint !== undefined) {
    what = `${e.mint.mintId} ${e.mint.amount} USDC ${e.mint.blockchain} ${e.mint.status}`;
    if (e.mint.actor !== "") what += ` by ${e.mint.actor}`;
    if (e.mint.reason !== "") what += ` (${e.mint.reason})`;
  } else if (e.settlement !== undefined) {
    const s = e.settlement;
    what = `${s.kind.toLowerCase()} ${s.settlementId} ${s.amount} USDC ${s.blockchain} nonce ${s.nonce}${s.txHash === "" ? "" : ` tx ${s.txHash}`}${s.error === "" ? "" : ` (${s.error})`}`;
  } else if (e.transfer !== undefined) {
    what = `${e.transfer.transferId} ${e.transfer.amount} USDC ${e.transfer.fromAccountId} -> ${e.transfer.toAccountId}`;
  } else if (e.redemption !== undefined) {
    what = `${e.redemption.redemptionId} ${e.redemption.amount} USDC ${e.redemption.blockchain}${e.redemption.reason === "" ? "" : ` (${e.redemption.reason})`}`;
  } else if (e.freeze !== undefined) {
    what = e.freeze.reason === "" ? "" : `(${e.freeze.reason})`;
  } else if (e.reserve !== undefined) {
    what = `reserve ${e.reserve.reserve} USDC attestation ${e.reserve.attestationRef}`;
  } else if (e.allowance !== undefined) {
    what = `${e.allowance.principal} allowance ${e.allowance.allowance} USDC`;
  }
  return `${e.time?.toISOString() ?? "-"}  ${e.kind.padEnd(22)} ${(e.accountIds.join(",") || "-").padEnd(16)} ${what}  cursor=${e.cursor}\n`;
}

export const watchCommand: CommandSpec = {
  register(program, run) {
    program
      .command("watch")
      .description("print the ledger's events as they commit (role reader), resuming by itself after a disconnect; --json: one JSON object per line")
      .option("--from <cursor>", "start after this cursor (a cursor printed earlier), or `oldest` for the oldest event kept (default: from now)")
      .option("--account <id>", "only events touching this account (repeat, or comma-separate, for several)", collect)
      .option("--kind <kind>", `only these kinds (repeat or comma-separate): ${LEDGER_EVENT_KINDS.join(", ")}`, collect)
      .option("--max <n>", "stop after this many events (default: run until interrupted)")
      .action(
        run(async (ctx, opts) => {
          const o = opts as { from?: string; account?: string[]; kind?: string[]; max?: string };
          const kinds = (o.kind ?? []).map((k) => k.toUpperCase());
          for (const k of kinds) if (!(LEDGER_EVENT_KINDS as readonly string[]).includes(k)) throw new UsageError(`--kind ${k}: not one of ${LEDGER_EVENT_KINDS.join(", ")}`);
          let max = Infinity;
          if (o.max !== undefined) {
            max = Number(o.max);
            if (!Number.isInteger(max) || max < 1) throw new UsageError(`--max must be a positive integer, got ${JSON.stringify(o.max)}`);
          }
          let count = 0;
          for await (const e of ctx.client().watchLedger({
            ...(o.from === undefined ? {} : { from: o.from }),
            accounts: o.account ?? [],
            kinds: kinds as LedgerEventKindName[],
          })) {
            ctx.io.out(ctx.jsonOutput ? JSON.stringify(e) + "\n" : eventLine(e));
            if (++count >= max) break;
          }
          return EXIT_OK;
        }),
      );
  },
};

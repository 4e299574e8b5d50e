import { BLOCKCHAINS } from "../../../client/src/types.js";
import type { CommandSpec } from "../command.js";
import { record } from "../output.js";

export const redeemCommand: CommandSpec = {
  register(program, run) {
    program
      .command("redeem")
      .description("redeem USDC from an account: debits it and takes the amount out of circulation")
      .argument("<account>", "account id")
      .argument("<amount>", 'decimal USDC, e.g. "100.5"')
      .option("--chain <blockchain>", `blockchain: ${BLOCKCHAINS.join(", ")}`, "ETHEREUM")
      .option("--idempotency-key <key>", "idempotency key (default: a new UUIDv7; pass the same key to repeat safely)")
      .action(
        run(async (ctx, account, amount, opts) => {
          const o = opts as { chain: string; idempotencyKey?: string };
          const r = await ctx.client().redeemUsdc({ accountId: String(account), amount: String(amount), blockchain: o.chain, idempotencyKey: o.idempotencyKey });
          const d = r.redemption;
          return ctx.print(r, () =>
            record([
              ["redemption_id", d.redemptionId],
              ["account_id", d.accountId],
              ["amount", d.amount],
              ["blockchain", d.blockchain],
              ["idempotency_key", d.idempotencyKey],
              ["actor", d.actor],
              ["replayed", String(r.replayed)],
            ]),
          );
        }),
      );
  },
};

import type { CommandSpec } from "../command.js";
import { record, transferFields } from "../output.js";

export const transferCommand: CommandSpec = {
  register(program, run) {
    program
      .command("transfer")
      .description("move USDC between two accounts")
      .argument("<from>", "debited account id")
      .argument("<to>", "credited account id")
      .argument("<amount>", 'decimal USDC, e.g. "25" or "0.5"')
      .option("--idempotency-key <key>", "idempotency key (default: a new UUIDv7; pass the same key to repeat safely)")
      .action(
        run(async (ctx, from, to, amount, opts) => {
          const key = (opts as { idempotencyKey?: string }).idempotencyKey;
          const r = await ctx.client().transfer({ fromAccountId: String(from), toAccountId: String(to), amount: String(amount), idempotencyKey: key });
          return ctx.print(r, () => record([...transferFields(r.transfer), ["replayed", String(r.replayed)]]));
        }),
      );
  },
};

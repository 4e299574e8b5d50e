import type { CommandSpec } from "../command.js";
import { record } from "../output.js";

/** `freeze` and `unfreeze`: one shape, the direction differs. */
function freezeLike(name: "freeze" | "unfreeze"): CommandSpec {
  return {
    register(program, run) {
      program
        .command(name)
        .description(name === "freeze" ? "freeze an account: it can neither receive nor send until unfrozen" : "lift an account's freeze")
        .argument("<account>", "account id")
        .option("--reason <text>", "why (kept for compliance)", "")
        .action(
          run(async (ctx, account, opts) => {
            const input = { accountId: String(account), reason: (opts as { reason: string }).reason };
            const r = name === "freeze" ? await ctx.client().freezeAccount(input) : await ctx.client().unfreezeAccount(input);
            return ctx.print(r, () => record([["account_id", r.accountId], ["balance", r.balance], ["frozen", String(r.frozen)]]));
          }),
        );
    },
  };
}

export const freezeCommand = freezeLike("freeze");
export const unfreezeCommand = freezeLike("unfreeze");

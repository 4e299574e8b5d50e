import type { CommandSpec } from "../command.js";
import { EXIT_CHAIN_DIFFERS, EXIT_OK } from "../exit-codes.js";
import { record, table } from "../output.js";

/** Issue 16: `mintctl chain reconcile <blockchain>`: the ledger against the chain; exits 5 when they differ. */
export const chainCommand: CommandSpec = {
  register(program, run) {
    const chain = program.command("chain").description("on-chain settlement");
    chain
      .command("reconcile")
      .description("compare totalSupply() and the treasury balance with the ledger's confirmed mints; list every differing settlement (exit 5 when anything differs)")
      .argument("<blockchain>", "a chain with settlement configured (ETHEREUM, BASE, ...)")
      .action(
        run(async (ctx, blockchain) => {
          const r = await ctx.client().reconcileChain(String(blockchain).toUpperCase());
          ctx.print(r, () => {
            const head = record([
              ["blockchain", r.blockchain],
              ["agree", r.agree ? "yes" : "NO"],
              ["total supply", r.totalSupply],
              ["treasury balance", r.treasuryBalance],
              ["confirmed sum", r.confirmedSum],
              ["head block", String(r.headBlock)],
            ]);
            if (r.differences.length === 0) return head;
            return head + "\n" + table(["SETTLEMENT", "LEDGER", "CHAIN", "TX"], r.differences.map((d) => [d.mintId !== "" ? d.mintId : d.redemptionId !== "" ? d.redemptionId : "(none)", d.ledgerState, d.chainState, d.txHash]));
          });
          return r.agree ? EXIT_OK : EXIT_CHAIN_DIFFERS;
        }),
      );
  },
};

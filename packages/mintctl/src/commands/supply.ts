import type { CommandSpec } from "../command.js";
import { record } from "../output.js";
import type { SupplyInfo } from "../../../client/src/types.js";

/** Supply, reserve, headroom and what waits for approval as a table; the reserve row says when supply is not capped. */
function supplyRecord(s: SupplyInfo): string {
  return record([
    ["supply", s.supply],
    ["reserve", s.reserve === "" ? "(not set: supply is not capped)" : s.reserve],
    ["headroom", s.headroom === "" ? "-" : s.headroom],
    ["attestation_ref", s.attestationRef],
    ["pending_approval", s.pendingApproval],
  ]);
}

export const supplyCommand: CommandSpec = {
  register(program, run) {
    program
      .command("supply")
      .description("show supply, reserve and headroom; with --set-reserve, set the reserve (needs --attestation-ref)")
      .option("--set-reserve <amount>", "set the reserve to this decimal USDC amount (at least the current supply)")
      .option("--attestation-ref <ref>", "where the auditor's attestation of the reserve is")
      .action(
        run(async (ctx, opts) => {
          const o = opts as { setReserve?: string; attestationRef?: string };
          const s =
            o.setReserve === undefined
              ? await ctx.client().getSupply()
              : await ctx.client().setReserve({ amount: o.setReserve, attestationRef: o.attestationRef ?? "" });
          return ctx.print(s, () => supplyRecord(s));
        }),
      );
  },
};

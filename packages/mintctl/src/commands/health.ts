import { exitCodeFor } from "../exit-codes.js";
import type { CommandSpec } from "../command.js";
import { table } from "../output.js";

export const healthCommand: CommandSpec = {
  register(program, run) {
    program
      .command("health")
      .description("ask every address for grpc.health.v1 status of usdc.mint.v1.MintService; exits 24 (UNAVAILABLE) unless all serve")
      .option("--wait-ms <ms>", "how long to wait for every address to answer", "3000")
      .action(
        run(async (ctx, opts) => {
          const waitMs = Number((opts as { waitMs: string }).waitMs);
          const endpoints = await ctx.client().waitForHealth(Number.isFinite(waitMs) && waitMs > 0 ? waitMs : 3000);
          const serving = endpoints.every((e) => e.status === "SERVING");
          ctx.print({ serving, endpoints }, () => table(["ADDRESS", "STATUS"], endpoints.map((e) => [e.address, e.status])));
          return serving ? 0 : exitCodeFor("UNAVAILABLE");
        }),
      );
  },
};

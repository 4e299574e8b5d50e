// Every mintctl command, in the order `mintctl --help` lists them. A new RPC's command is one more line.
import type { CommandSpec } from "../command.js";
import { auditCommand } from "./audit.js";
import { allowanceCommand } from "./allowance.js";
import { approveCommand, rejectCommand } from "./approve.js";
import { balanceCommand } from "./balance.js";
import { chainCommand } from "./chain.js";
import { getCommand } from "./get.js";
import { healthCommand } from "./health.js";
import { listCommand } from "./list.js";
import { mintCommand } from "./mint.js";
import { reconcileCommand } from "./reconcile.js";
import { transferCommand } from "./transfer.js";
import { freezeCommand, unfreezeCommand } from "./freeze.js";
import { redeemCommand } from "./redeem.js";
import { supplyCommand } from "./supply.js";
import { watchCommand } from "./watch.js";

export const COMMANDS: readonly CommandSpec[] = [
  mintCommand,
  transferCommand,
  balanceCommand,
  getCommand,
  listCommand,
  reconcileCommand,
  approveCommand,
  rejectCommand,
  allowanceCommand,
  supplyCommand,
  redeemCommand,
  freezeCommand,
  unfreezeCommand,
  healthCommand,
  auditCommand,
  chainCommand,
  watchCommand,
];

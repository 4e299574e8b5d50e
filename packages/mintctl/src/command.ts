/**
 * The shape of one mintctl command. Adding a command for a new RPC is one
 * file in commands/ exporting a CommandSpec, and one line in commands/index.ts.
 */
import type { Command } from "commander";
import type { Context } from "./context.js";

/** Runs a command's action with the shared context; resolves to the exit code. */
export type Runner = (action: (ctx: Context, ...args: unknown[]) => Promise<number>) => (...args: unknown[]) => Promise<void>;

export interface CommandSpec {
  /** Declares the command (name, arguments, options, help) on the program. */
  register(program: Command, run: Runner): void;
}

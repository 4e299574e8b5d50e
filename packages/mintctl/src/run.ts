/**
 * mintctl as a function: argv and an Io in, an exit code out. main.ts binds
 * it to the process; tests call it directly with captured output.
 */
import { Command, CommanderError, Option } from "commander";
import { MintServiceError } from "../../client/src/errors.js";
import type { Runner } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { Context, DEFAULT_ADDRESS, ENV_FALLBACKS, UsageError, type GlobalFlags } from "./context.js";
import { EXIT_INTERNAL, EXIT_OK, EXIT_USAGE } from "./exit-codes.js";
import type { Io } from "./output.js";

const EXIT_CODES_HELP = `
Exit codes:
  0   success
  1   mintctl itself failed unexpectedly
  2   usage: unknown flag, missing argument, unreadable file
  3   mint --from-csv or transfer --from-csv finished with failed rows (see the failures file)
  4   audit verify: the audit chain is broken (the first broken seq is printed)
  5   chain reconcile found the ledger and the chain differ
  10 + gRPC code, when the call failed:
      13 INVALID_ARGUMENT  15 NOT_FOUND  16 ALREADY_EXISTS  17 PERMISSION_DENIED
      18 RESOURCE_EXHAUSTED  19 FAILED_PRECONDITION  20 ABORTED  23 INTERNAL
      24 UNAVAILABLE  14 DEADLINE_EXCEEDED  26 UNAUTHENTICATED  11 CANCELLED  12 UNKNOWN
`;

export async function runCli(argv: readonly string[], io: Io): Promise<number> {
  let exitCode = EXIT_OK;
  let ctx: Context | undefined;
  const program = new Command("mintctl")
    .description("Call the USDC mint service: mint, transfer, balance, get, list, reconcile, health, chain reconcile.")
    .addOption(new Option("--address <target>", `host:port, or ipv4:a:1,b:2 for several replicas (default ${DEFAULT_ADDRESS}; env ${ENV_FALLBACKS.address})`))
    .addOption(new Option("--token <token>", `bearer token sent as authorization metadata (env ${ENV_FALLBACKS.token}; prefer the env, argv is visible to ps)`))
    .addOption(new Option("--allow-plaintext-token", "send --token without TLS to a non-loopback address (a network you trust)"))
    .addOption(new Option("--tls", "use TLS with the system's root certificates"))
    .addOption(new Option("--ca <file>", `PEM CA bundle to verify the server with; implies TLS (env ${ENV_FALLBACKS.ca})`))
    .addOption(new Option("--cert <file>", `PEM client certificate for mutual TLS (env ${ENV_FALLBACKS.cert})`))
    .addOption(new Option("--key <file>", `PEM client private key for mutual TLS (env ${ENV_FALLBACKS.key})`))
    .addOption(new Option("--deadline-ms <ms>", `deadline of each attempt (default 5000; env ${ENV_FALLBACKS.deadlineMs})`))
    .option("--json", "print one JSON document instead of a table (errors too, on stdout)")
    .addHelpText("after", EXIT_CODES_HELP)
    .showHelpAfterError("(run mintctl --help for usage)")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });

  const run: Runner =
    (action) =>
    async (...args) => {
      ctx = new Context(io, program.opts<GlobalFlags>());
      exitCode = await action(ctx, ...args.slice(0, -1));
    };
  for (const c of COMMANDS) c.register(program, run);

  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    if (err instanceof CommanderError) exitCode = err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    else if (err instanceof UsageError) {
      io.err(`mintctl: ${err.message}\n`);
      exitCode = EXIT_USAGE;
    } else if (err instanceof MintServiceError || (typeof err === "object" && err !== null && "code" in err && typeof (err as { code: unknown }).code === "number")) {
      exitCode = (ctx ?? new Context(io, program.opts<GlobalFlags>())).fail(err);
    } else {
      io.err(`mintctl: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      exitCode = EXIT_INTERNAL;
    }
  } finally {
    ctx?.close();
  }
  return exitCode;
}

/**
 * Process entry: reads the configuration (the only place that sees argv and
 * env), starts the service, prints one start line, and drains on SIGTERM or
 * SIGINT before exiting 0.
 */
import { formatMicros } from "./domain/money.js";
import { startApp } from "./app.js";
import { ConfigError, describeConfig, helpText, isLoopbackListen, loadConfig, type Config } from "./config.js";
import { createLogger, settleLogs, type Logger } from "./logger.js";
import { AuthFileError } from "./auth/principals-file.js";
import type { Security } from "./auth/security.js";
import { TlsFileError } from "./auth/tls.js";

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText() + "\n");
    return;
  }
  let config;
  try {
    config = loadConfig(argv, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`usdc-mint: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  let app;
  try {
    app = await startApp(config, logger);
  } catch (err) {
    // An unusable auth file or certificate is a configuration error: one line, exit 2.
    if (err instanceof AuthFileError || err instanceof TlsFileError) {
      process.stderr.write(`usdc-mint: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const started = app;
  // SIGHUP re-reads the auth file and the certificates; connections and calls in flight are untouched.
  process.on("SIGHUP", () => {
    const report = started.reload();
    const failed = [report.principals, report.certificates].some((r) => r !== undefined && !r.ok);
    logger[failed ? "error" : "info"]({ reload: report }, failed ? "reload failed; the previous files stay in force where they failed" : "reloaded");
  });
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (signalled) return;
    signalled = true;
    logger.info({ signal, callsInFlight: app.server.edge.callsInFlight, graceMs: config.shutdownGraceMs }, "draining");
    // The exit waits for the last log line to be written or refused (a
    // closed stdout), never longer than a second: see settleLogs.
    void app.shutdown().then(
      async (drained) => {
        logger.info({ drained }, "stopped");
        await settleLogs(logger);
        process.exit(0);
      },
      async (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        await settleLogs(logger);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  warnAboutAccess(config, app.security, logger);

  // The start line goes out only once the signal handlers are in place: a
  // supervisor that signals as soon as it sees it must get a drain, not the
  // default kill-by-signal. Logged at warn as well as info would be noise; the
  // start line is the one thing every deployment wants to see, so it goes out
  // at any level but silent.
  // The operator sees at start whether supply is capped.
  const supply = await app.core.getSupply();
  const supplyCap =
    supply.reserveMicros !== null
      ? `capped by a reserve of ${formatMicros(supply.reserveMicros)} USDC (headroom ${formatMicros(supply.headroomMicros ?? 0n)})`
      : config.reserveRequired
        ? "no reserve set: mints are refused (RESERVE_NOT_SET) until SetReserve"
        : "not capped: no reserve set (SetReserve caps it; MINT_RESERVE_REQUIRED=true refuses mints until then)";
  logger.level === "silent" || logger.info({ address: app.server.address, metricsAddress: app.metricsAddress, config: describeConfig(config), adapters: app.adapters.description, supply: supplyCap }, "listening");
  if (!logger.isLevelEnabled("info") && logger.level !== "silent") {
    process.stdout.write(JSON.stringify({ level: "info", msg: "listening", address: app.server.address, metricsAddress: app.metricsAddress }) + "\n");
  }
}

/**
 * Says loudly who can call: without an auth file every caller is `local` with
 * every role (warn; config allows it on loopback only), and MINT_INSECURE
 * serving another address without TLS or an auth file is an error-level line.
 */
function warnAboutAccess(config: Config, security: Security, logger: Logger): void {
  const access = {
    mode: security.mode,
    tls: security.certificates === undefined ? "off" : security.certificates.mutual ? "mutual" : "server-only",
    principals: security.principalCount,
    reflection: config.reflection,
  };
  if (!isLoopbackListen(config.listen) && (security.mode === "open" || security.certificates === undefined)) {
    logger.error({ access, listen: config.listen }, "MINT_INSECURE=true: serving a non-loopback address without TLS and an auth file; anyone who can reach it can move money");
  } else if (security.mode === "open") {
    logger.warn({ access }, "no MINT_AUTH_FILE: every caller is the principal `local` with every role (loopback only)");
  } else {
    logger.info({ access }, "authentication on");
  }
}

main().catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`usdc-mint: failed to start: ${message}\n`);
  process.exit(1);
});

#!/usr/bin/env node
// The mintctl executable: runCli bound to this process's argv, streams and environment.
import { runCli } from "./run.js";

const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
  stderrIsTTY: process.stderr.isTTY === true,
  stderr: process.stderr,
});
process.exitCode = code;

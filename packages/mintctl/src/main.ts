#!/usr/bin/env node
// The mintctl executable: runCli bound to this process's argv, streams and environment.
import { runCli } from "./run.js";

// A reader that stops early (`mintctl list | head`) closes the pipe: stop
// writing quietly, as Unix tools do, instead of dying with a stack trace.
// The exit code stays the command's own.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
}

const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
  stderrIsTTY: process.stderr.isTTY === true,
  stderr: process.stderr,
});
process.exitCode = code;

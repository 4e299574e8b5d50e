/**
 * The service as a real process (`node --import tsx src/main.ts`), for tests
 * that need several replicas, signals or a crash: spawn it with only the
 * MINT_ variables given, wait for its "listening" line, read its JSON logs.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { waitFor } from "../integration/helpers.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Spawns the service with the environment of this process minus every MINT_ variable, plus `env`. */
export function spawnService(env: Record<string, string>, args: string[] = []): ServiceProcess {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MINT_") && v !== undefined) clean[k] = v;
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
  child.stderr?.on("data", (d: Buffer) => (err += d.toString("utf8")));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      // Let the last output arrive before the caller reads it.
      setImmediate(() => resolve({ code, signal }));
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Parses the JSON log lines of a process's output (other lines are ignored). */
export function logLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a JSON line
    }
  }
  return out;
}

/** Waits for the "listening" line and returns its address; fails if the process exits first. */
export async function listening(p: ServiceProcess, timeoutMs = 20_000): Promise<string> {
  let address = "";
  await waitFor(
    () => {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        throw new Error(`service exited early (${p.child.exitCode ?? p.child.signalCode}): ${p.stderr()}`);
      }
      const line = logLines(p.stdout()).find((l) => l.msg === "listening");
      if (line !== undefined) address = String(line.address);
      return address !== "";
    },
    "the listening line",
    timeoutMs,
  );
  return address;
}

/** True until the process has exited. */
export function isRunning(p: ServiceProcess): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGKILLs the process if it still runs (cleanup after a failed test). */
export function killIfRunning(p: ServiceProcess): void {
  if (isRunning(p)) p.child.kill("SIGKILL");
}

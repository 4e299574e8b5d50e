/**
 * `npm start` as a supervisor runs it: SIGTERM sent to npm's process (as
 * `docker run` or systemd do) or to its whole process group must drain the
 * server and end with exit code 0 and no process left behind. The start
 * script `exec`s the server, so the shell npm runs it in does not stay
 * between npm and node; npm forwards the signal to node and exits with
 * node's code.
 */
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { logLines, ROOT } from "../support/service-process.js";
import { waitFor } from "./helpers.js";

/** True while some process of group `pgid` lives. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startAndTerminate(target: "npm" | "group"): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; pgid: number }> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("MINT_") && !k.startsWith("npm_") && v !== undefined) env[k] = v;
  const npm = spawn("npm", ["start", "--silent"], {
    cwd: ROOT,
    env: { ...env, MINT_LISTEN: "127.0.0.1:0", MINT_SHUTDOWN_GRACE: "2s" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group, as under a supervisor
  });
  const pgid = npm.pid as number;
  let stdout = "";
  npm.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
  npm.stderr.on("data", () => {});
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => npm.once("exit", (code, signal) => resolve({ code, signal })));
  try {
    await waitFor(() => logLines(stdout).some((l) => l.msg === "listening"), "the listening line", 90_000);
    if (target === "npm") process.kill(pgid, "SIGTERM");
    else process.kill(-pgid, "SIGTERM");
    const { code, signal } = await exited;
    // Let the server's last lines arrive.
    await new Promise((r) => setTimeout(r, 50));
    return { code, signal, stdout, pgid };
  } finally {
    if (groupAlive(pgid)) process.kill(-pgid, "SIGKILL");
  }
}

describe("npm start", () => {
  for (const target of ["npm", "group"] as const) {
    it(`SIGTERM to ${target === "npm" ? "npm's process" : "the process group"}: drains, exits 0, leaves no process`, async () => {
      const r = await startAndTerminate(target);
      expect([r.code, r.signal]).toEqual([0, null]);
      // A fresh store has no reserve, and the start line says supply is not capped.
      expect(logLines(r.stdout).find((l) => l.msg === "listening")?.supply).toMatch(/^not capped: no reserve set/);
      const stopped = logLines(r.stdout).find((l) => l.msg === "stopped");
      expect(stopped?.drained).toBe(true);
      await waitFor(() => !groupAlive(r.pgid), "every process of the group to end", 5_000);
    }, 120_000);
  }
});

// The Dockerfile without a Docker engine: scripts/docker-build-check.sh replays
// its COPY/RUN steps in a temporary directory (npm ci, npm run build, npm prune
// --omit=dev), starts CMD from the runtime file set, runs the HEALTHCHECK
// command against it and checks SIGTERM exits 0. Needs the npm registry.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const TIMEOUT_MS = 240_000;

function runCheck(): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn("bash", [resolve(ROOT, "scripts/docker-build-check.sh")], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group, so a timeout stops npm and the server too.
      detached: true,
      env: { ...process.env, KEEP: "0" },
    });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    // SIGTERM to the group; the script's trap removes its temp directory.
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
    }, TIMEOUT_MS - 5_000);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, output });
    });
  });
}

describe("Dockerfile build steps, replayed without Docker", () => {
  it(
    "installs, builds, prunes to production deps, refuses to start on 0.0.0.0 without credentials, starts with them and answers the HEALTHCHECK over TLS",
    async () => {
      const { code, signal, output } = await runCheck();
      expect({ code, signal }, `scripts/docker-build-check.sh failed:\n${output}`).toEqual({ code: 0, signal: null });
      expect(output).toContain("RUN npm ci");
      expect(output).toContain("RUN npm run build");
      expect(output).toContain("RUN npm prune --omit=dev");
      expect(output).toContain("runtime holds production dependencies only");
      expect(output).toContain("offline audit verifier: dist/src/cli/audit-verify.js runs from the runtime file set");
      // As the image starts: on 0.0.0.0, refused without credentials, served with the mounted certificates and auth file.
      expect(output).toMatch(/without credentials: exit 2, one line: usdc-mint: MINT_LISTEN=0\.0\.0\.0:50051 is reachable from other hosts/);
      expect(output).toMatch(/listening on 0\.0\.0\.0:\d+/);
      expect(output).toMatch(/HEALTHCHECK .*healthcheck\.mjs: SERVING/);
      expect(output).toContain("SIGTERM: exited 0");
      expect(output.trimEnd().split("\n").pop()).toMatch(/ OK$/);
    },
    TIMEOUT_MS,
  );
});

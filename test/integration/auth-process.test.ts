/**
 * Safe by default and SIGHUP, as the real process does them: what the start
 * line says about who can call, the one-line refusals (exit 2), and a SIGHUP
 * that re-reads the certificates and the auth file.
 */
import { copyFileSync, writeFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MintServiceClient } from "../../gen/usdc/mint/v1/mint.js";
import { makeAuthFixture, type AuthFixture } from "../support/auth-fixtures.js";
import { killIfRunning, listening, logLines, spawnService, type ServiceProcess } from "../support/service-process.js";
import { waitFor } from "./helpers.js";

let fx: AuthFixture;
const spawned: ServiceProcess[] = [];

function start(env: Record<string, string>): ServiceProcess {
  const p = spawnService({ MINT_LOG_LEVEL: "info", ...env });
  spawned.push(p);
  return p;
}

beforeAll(() => {
  fx = makeAuthFixture();
});

afterAll(() => {
  for (const p of spawned) killIfRunning(p);
  fx?.remove();
});

describe("safe by default", () => {
  it("without an auth file, on loopback: serves, and says every caller is `local` at warn", async () => {
    const p = start({ MINT_LISTEN: "127.0.0.1:0" });
    await listening(p);
    const warn = logLines(p.stdout()).find((l) => typeof l.msg === "string" && l.msg.startsWith("no MINT_AUTH_FILE"));
    expect(warn).toMatchObject({ level: "warn", access: { mode: "open", tls: "off", principals: 0 } });
    p.child.kill("SIGTERM");
    expect((await p.exited).code).toBe(0);
  });

  it("on 0.0.0.0 without credentials: exit 2 and one line saying how to mount them", async () => {
    const p = start({ MINT_LISTEN: "0.0.0.0:0" });
    const { code } = await p.exited;
    expect(code).toBe(2);
    const lines = p.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^usdc-mint: MINT_LISTEN=0\.0\.0\.0:0 is reachable from other hosts but MINT_TLS_CERT, MINT_TLS_KEY, MINT_AUTH_FILE are not set: .*docker run -v/);
  });

  it("MINT_INSECURE=true on 0.0.0.0: serves, and says so at error level", async () => {
    const p = start({ MINT_LISTEN: "0.0.0.0:0", MINT_INSECURE: "true" });
    await listening(p);
    const loud = logLines(p.stdout()).find((l) => typeof l.msg === "string" && l.msg.startsWith("MINT_INSECURE=true"));
    expect(loud).toMatchObject({ level: "error" });
    p.child.kill("SIGTERM");
    await p.exited;
  });

  it.each([
    ["an auth file with a bad entry", () => badAuthFile(), /^usdc-mint: .*bad-auth\.yaml: principals\[0\] \("x"\): roles\[0\] "mintr" is not a role/],
    ["a key that does not match the certificate", () => ({ MINT_TLS_KEY: fx.certs.server2.keyFile }), /^usdc-mint: MINT_TLS_CERT\/MINT_TLS_KEY .* do not make a TLS identity/],
  ])("%s: exit 2 and one line", async (_what, env, re) => {
    const p = start({ MINT_LISTEN: "127.0.0.1:0", ...fx.env, ...env() });
    expect((await p.exited).code).toBe(2);
    const lines = p.stderr().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(re);
  });
});

function badAuthFile(): Record<string, string> {
  const file = `${fx.certs.dir}/bad-auth.yaml`;
  writeFileSync(file, "principals:\n  - name: x\n    roles: [mintr]\n    token_sha256: ['" + "a".repeat(64) + "']\n");
  return { MINT_AUTH_FILE: file };
}

describe("SIGHUP", () => {
  it("re-reads certificates and the auth file; a broken file keeps the last good one", async () => {
    const live = { cert: `${fx.certs.dir}/hup.crt`, key: `${fx.certs.dir}/hup.key`, auth: `${fx.certs.dir}/hup-auth.json` };
    copyFileSync(fx.certs.server.certFile, live.cert);
    copyFileSync(fx.certs.server.keyFile, live.key);
    copyFileSync(fx.authFile, live.auth);
    const p = start({ MINT_LISTEN: "127.0.0.1:0", ...fx.env, MINT_TLS_CERT: live.cert, MINT_TLS_KEY: live.key, MINT_AUTH_FILE: live.auth });
    const address = await listening(p);
    expect(logLines(p.stdout()).find((l) => l.msg === "authentication on")).toMatchObject({ access: { mode: "authenticated", tls: "mutual", principals: fx.principals.length } });

    const clients: MintServiceClient[] = [];
    const serverCn = (token: string): Promise<string> => {
      const c = fx.client(address, { token });
      clients.push(c);
      return new Promise((resolve, reject) => {
        const call = c.getBalance({ accountId: "hup" }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) =>
          err ? reject(err) : resolve(String(call.getAuthContext()?.sslPeerCertificate?.subject?.CN)),
        );
      });
    };
    try {
      expect(await serverCn(fx.roleTokens.reader)).toBe("mint-server-1");
      copyFileSync(fx.certs.server2.certFile, live.cert);
      copyFileSync(fx.certs.server2.keyFile, live.key);
      writeFileSync(live.auth, JSON.stringify({ principals: fx.principals.filter((x) => x.name !== "role-reader") }));
      p.child.kill("SIGHUP");
      await waitFor(() => logLines(p.stdout()).some((l) => l.msg === "reloaded"), "the reloaded line", 5000);
      expect(await serverCn(fx.adminToken)).toBe("mint-server-2");
      await expect(serverCn(fx.roleTokens.reader)).rejects.toMatchObject({ code: grpc.status.UNAUTHENTICATED });

      writeFileSync(live.auth, "principals: [{name: broken}]");
      p.child.kill("SIGHUP");
      await waitFor(() => logLines(p.stdout()).some((l) => l.msg?.toString().startsWith("reload failed")), "the reload failed line", 5000);
      const failed = logLines(p.stdout()).find((l) => l.msg?.toString().startsWith("reload failed"));
      expect(failed).toMatchObject({ level: "error", reload: { principals: { ok: false }, certificates: { ok: true } } });
      expect(await serverCn(fx.adminToken)).toBe("mint-server-2");
      p.child.kill("SIGTERM");
      expect((await p.exited).code).toBe(0);
    } finally {
      for (const c of clients) c.close();
    }
  });
});

/**
 * TLS and mutual TLS pass through the SDK and mintctl untouched: a grpc-js
 * server with the MintService definition that requires a client certificate
 * signed by the test CA (test/fixtures/tls), reached with --ca/--cert/--key,
 * their MINTCTL_ variables, and SDK `credentials`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MintServiceService, type GetBalanceRequest, type GetBalanceResponse } from "../../gen/usdc/mint/v1/mint.js";
import { runCli } from "../../src/cli/run.js";
import { createMintClient } from "../../src/client/index.js";
import { ROOT } from "../support/service-process.js";

const TLS = join(ROOT, "test/fixtures/tls");
const file = (name: string): string => join(TLS, name);

let server: grpc.Server;
let address: string;

beforeAll(async () => {
  server = new grpc.Server();
  server.addService(MintServiceService, {
    getBalance: (call: grpc.ServerUnaryCall<GetBalanceRequest, GetBalanceResponse>, cb: grpc.sendUnaryData<GetBalanceResponse>) => cb(null, { accountId: call.request.accountId, balance: "1.5" }),
  });
  const creds = grpc.ServerCredentials.createSsl(readFileSync(file("ca.pem")), [{ cert_chain: readFileSync(file("server.pem")), private_key: readFileSync(file("server.key")) }], true);
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? rej(e) : res(p))));
  address = `127.0.0.1:${port}`;
});
afterAll(() => {
  server.forceShutdown();
});

async function mintctl(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(args, { out: (s) => (out += s), err: (s) => (err += s), env, stderrIsTTY: false });
  return { code, out, err };
}

describe("mutual TLS", () => {
  it("mintctl --ca --cert --key", async () => {
    const r = await mintctl(["--address", address, "--ca", file("ca.pem"), "--cert", file("client.pem"), "--key", file("client.key"), "--json", "balance", "alice"]);
    expect(r).toEqual({ code: 0, out: JSON.stringify({ accountId: "alice", balance: "1.5" }, null, 2) + "\n", err: "" });
  });

  it("MINTCTL_ADDRESS, MINTCTL_CA, MINTCTL_CERT, MINTCTL_KEY", async () => {
    const r = await mintctl(["--json", "balance", "bob"], { MINTCTL_ADDRESS: address, MINTCTL_CA: file("ca.pem"), MINTCTL_CERT: file("client.pem"), MINTCTL_KEY: file("client.key") });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ accountId: "bob", balance: "1.5" });
  });

  it("the SDK with grpc ChannelCredentials", async () => {
    const client = createMintClient({
      addresses: address,
      credentials: grpc.credentials.createSsl(readFileSync(file("ca.pem")), readFileSync(file("client.key")), readFileSync(file("client.pem"))),
    });
    try {
      expect(await client.getBalance("carol")).toEqual({ accountId: "carol", balance: "1.5" });
    } finally {
      client.close();
    }
  });

  it("without the client certificate the handshake fails: 24 UNAVAILABLE", async () => {
    const r = await mintctl(["--address", address, "--ca", file("ca.pem"), "--deadline-ms", "300", "balance", "alice"]);
    expect(r.code).toBe(24);
    expect(r.err).toContain("UNAVAILABLE");
  });
});

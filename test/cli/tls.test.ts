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
import { createMintClient } from "../../packages/client/src/index.js";
import { ROOT } from "../support/service-process.js";
import { mintctl, startStubMintServer, type StubMintServer } from "../support/stub-mint-server.js";

const TLS = join(ROOT, "test/fixtures/tls");
const file = (name: string): string => join(TLS, name);

let stub: StubMintServer;
let address: string;

beforeAll(async () => {
  stub = await startStubMintServer(
    grpc.ServerCredentials.createSsl(readFileSync(file("ca.pem")), [{ cert_chain: readFileSync(file("server.pem")), private_key: readFileSync(file("server.key")) }], true),
  );
  address = stub.address;
});
afterAll(() => {
  stub.stop();
});

describe("mutual TLS", () => {
  it("mintctl --ca --cert --key", async () => {
    const r = await mintctl(["--address", address, "--ca", file("ca.pem"), "--cert", file("client.pem"), "--key", file("client.key"), "--json", "balance", "alice"]);
    expect(r).toEqual({ code: 0, out: JSON.stringify({ accountId: "alice", balance: "1.5", pendingBalance: "0", frozen: false, freezeReason: "" }, null, 2) + "\n", err: "" });
  });

  it("MINTCTL_ADDRESS, MINTCTL_CA, MINTCTL_CERT, MINTCTL_KEY", async () => {
    const r = await mintctl(["--json", "balance", "bob"], { MINTCTL_ADDRESS: address, MINTCTL_CA: file("ca.pem"), MINTCTL_CERT: file("client.pem"), MINTCTL_KEY: file("client.key") });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ accountId: "bob", balance: "1.5", pendingBalance: "0", frozen: false, freezeReason: "" });
  });

  it("the SDK with grpc ChannelCredentials", async () => {
    const client = createMintClient({
      addresses: address,
      credentials: grpc.credentials.createSsl(readFileSync(file("ca.pem")), readFileSync(file("client.key")), readFileSync(file("client.pem"))),
    });
    try {
      expect(await client.getBalance("carol")).toEqual({ accountId: "carol", balance: "1.5", pendingBalance: "0", frozen: false, freezeReason: "" });
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

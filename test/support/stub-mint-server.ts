/**
 * A grpc-js server with the generated MintService definition that implements
 * GetBalance only (balance "1.5") and records the `authorization` metadata it
 * saw, for tests of what the SDK and mintctl put on the wire (tokens, TLS).
 * It has no health service, which the SDK treats as serving.
 */
import * as grpc from "@grpc/grpc-js";
import { MintServiceService, type GetBalanceRequest, type GetBalanceResponse } from "../../gen/usdc/mint/v1/mint.js";
import { runCli } from "../../packages/mintctl/src/run.js";

export interface StubMintServer {
  readonly address: string;
  /** The authorization header of each GetBalance call, in order ("undefined" when absent). */
  readonly authorizations: string[];
  stop(): void;
}

export async function startStubMintServer(credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<StubMintServer> {
  const server = new grpc.Server();
  const authorizations: string[] = [];
  server.addService(MintServiceService, {
    getBalance: (call: grpc.ServerUnaryCall<GetBalanceRequest, GetBalanceResponse>, cb: grpc.sendUnaryData<GetBalanceResponse>) => {
      authorizations.push(String(call.metadata.get("authorization")[0]));
      cb(null, { accountId: call.request.accountId, pendingBalance: "0", balance: "1.5", frozen: false, freezeReason: "" });
    },
  });
  const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", credentials, (e, p) => (e ? rej(e) : res(p))));
  return { address: `127.0.0.1:${port}`, authorizations, stop: () => server.forceShutdown() };
}

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** Runs mintctl in-process with captured output, the given environment only, and stderr off a terminal. */
export async function mintctl(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  let out = "";
  let err = "";
  const code = await runCli(args, { out: (s) => (out += s), err: (s) => (err += s), env, stderrIsTTY: false });
  return { code, out, err };
}

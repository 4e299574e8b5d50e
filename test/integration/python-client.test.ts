// A caller written in another language: Python stubs generated from proto/ with
// Debian's protoc + grpc_python_plugin, run by /usr/bin/python3 (Debian's
// python3-grpcio) against the real server. Missing tools FAIL the test with what
// to install (scripts/install-system-deps.sh installs them; .ci/run calls it).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import { tokenDigestHex } from "../../src/auth/authenticate.js";
import { newToken } from "../support/auth-fixtures.js";
import { makeTestCerts } from "../support/test-certs.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const PYTHON = "/usr/bin/python3";
const GRPC_PLUGIN = "/usr/bin/grpc_python_plugin";
const PROTOC = "/usr/bin/protoc";
/** protoc's well-known types (google/protobuf/timestamp.proto), shipped by Debian's libprotobuf-dev. */
const WKT_INCLUDE = "/usr/include";
const PROTOS = ["usdc/mint/v1/mint.proto", "google/rpc/status.proto", "google/rpc/error_details.proto"];
const INSTALL_HINT =
  "install the Debian packages protobuf-compiler libprotobuf-dev protobuf-compiler-grpc python3-grpcio python3-protobuf " +
  "(run scripts/install-system-deps.sh as root)";

/** Every missing prerequisite, as a sentence; empty when all are present. */
async function missingPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (!existsSync(PROTOC)) missing.push(`${PROTOC} not found (package protobuf-compiler)`);
  if (!existsSync(join(WKT_INCLUDE, "google/protobuf/timestamp.proto")))
    missing.push(`${WKT_INCLUDE}/google/protobuf/timestamp.proto not found (package libprotobuf-dev)`);
  if (!existsSync(GRPC_PLUGIN)) missing.push(`${GRPC_PLUGIN} not found (package protobuf-compiler-grpc)`);
  if (!existsSync(PYTHON)) {
    missing.push(`${PYTHON} not found (package python3)`);
  } else {
    try {
      await run(PYTHON, ["-c", "import grpc, google.protobuf"], { timeout: 30_000 });
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? err).trim().split("\n").pop();
      missing.push(`${PYTHON} cannot import grpc and google.protobuf: ${stderr} (packages python3-grpcio python3-protobuf)`);
    }
  }
  return missing;
}

describe("a Python caller (Debian protoc + grpc_python_plugin + python3-grpcio)", () => {
  let server: TestServer | undefined;
  let stubDir: string | undefined;

  beforeAll(async () => {
    stubDir = await mkdtemp(join(tmpdir(), "mint-pystubs-"));
    server = await startTestServer({ MINT_RATE_LIMIT: "2", MINT_APPROVAL_THRESHOLD: "1000", MINT_DEV_PRINCIPAL_HEADER: "true" });
  });

  afterAll(async () => {
    await server?.stop();
    if (stubDir !== undefined) await rm(stubDir, { recursive: true, force: true });
  });

  it("runs the mint/transfer/error-details scenario with stubs generated from proto/", async () => {
    const missing = await missingPrerequisites();
    if (missing.length > 0) {
      throw new Error(`cross-language test cannot run: ${missing.join("; ")}. To fix: ${INSTALL_HINT}.`);
    }
    const dir = stubDir as string;

    await run(
      PROTOC,
      [
        "-I",
        join(ROOT, "proto"),
        "-I",
        WKT_INCLUDE,
        `--python_out=${dir}`,
        `--grpc_python_out=${dir}`,
        `--plugin=protoc-gen-grpc_python=${GRPC_PLUGIN}`,
        ...PROTOS,
      ],
      { cwd: ROOT, timeout: 60_000 },
    );
    for (const f of ["usdc/mint/v1/mint_pb2.py", "usdc/mint/v1/mint_pb2_grpc.py", "google/rpc/status_pb2.py", "google/rpc/error_details_pb2.py"]) {
      expect(existsSync(join(dir, f)), `protoc did not write ${f}`).toBe(true);
    }

    // Asynchronous on purpose: the server runs in this process and must keep answering.
    let stdout = "";
    let stderr = "";
    try {
      ({ stdout, stderr } = await run(PYTHON, [join(ROOT, "test/python/client_scenario.py"), (server as TestServer).address, dir], {
        cwd: ROOT,
        timeout: 60_000,
        // Debian's python must not pick up a pyenv or virtualenv site-packages.
        env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", PYTHONDONTWRITEBYTECODE: "1" },
      }));
    } catch (err) {
      const e = err as { code?: unknown; stdout?: string; stderr?: string };
      throw new Error(`python scenario exited ${String(e.code)}\n--- stdout\n${e.stdout ?? ""}\n--- stderr\n${e.stderr ?? String(err)}`);
    }
    const lines = stdout.trim().split("\n");
    expect(lines, `stderr: ${stderr}`).toEqual([
      "ok mint",
      "ok mint replay",
      "ok balance",
      "ok transfer",
      "ok invalid amount",
      "ok insufficient funds",
      "ok rate limited",
      "ok approval",
      "ok redeem",
      "ok redeem insufficient funds",
      "scenario passed",
    ]);
  });

  it("calls with mutual TLS, with a bearer token, and with two authorization values (test/python/auth_scenario.py)", async () => {
    const missing = await missingPrerequisites();
    if (missing.length > 0) throw new Error(`cross-language test cannot run: ${missing.join("; ")}. To fix: ${INSTALL_HINT}.`);
    const dir = stubDir as string;
    if (!existsSync(join(dir, "usdc/mint/v1/mint_pb2_grpc.py"))) {
      await run(PROTOC, ["-I", join(ROOT, "proto"), "-I", WKT_INCLUDE, `--python_out=${dir}`, `--grpc_python_out=${dir}`, `--plugin=protoc-gen-grpc_python=${GRPC_PLUGIN}`, ...PROTOS], { cwd: ROOT, timeout: 60_000 });
    }
    const certs = makeTestCerts();
    const token = newToken();
    const cert = certs.client("py-mtls", "URI:spiffe://mint.test/py-mtls");
    const authFile = join(certs.dir, "auth.yaml");
    writeFileSync(
      authFile,
      [
        "principals:",
        "  - name: py-mtls",
        "    roles: [minter, reader]",
        '    scopes: ["py:*"]',
        '    certificate_identities: ["URI:spiffe://mint.test/py-mtls"]',
        "  - name: py-token",
        "    roles: [reader]",
        '    scopes: ["py:*"]',
        `    token_sha256: ["${tokenDigestHex(token)}"]`,
      ].join("\n"),
    );
    const secured = await startTestServer({
      MINT_TLS_CERT: certs.server.certFile,
      MINT_TLS_KEY: certs.server.keyFile,
      MINT_TLS_CLIENT_CA: certs.clientCa.certFile,
      MINT_AUTH_FILE: authFile,
    });
    let stdout = "";
    try {
      ({ stdout } = await run(
        PYTHON,
        [join(ROOT, "test/python/auth_scenario.py"), secured.address, dir, certs.serverCa.certFile, cert.certFile, cert.keyFile, token],
        { cwd: ROOT, timeout: 60_000, env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", PYTHONDONTWRITEBYTECODE: "1" } },
      ));
    } catch (err) {
      const e = err as { code?: unknown; stdout?: string; stderr?: string };
      throw new Error(`python auth scenario exited ${String(e.code)}\n--- stdout\n${e.stdout ?? ""}\n--- stderr\n${e.stderr ?? String(err)}`);
    } finally {
      await secured.stop();
      certs.remove();
    }
    expect(stdout.trim().split("\n")).toEqual([
      "ok mtls mint",
      "ok mtls balance",
      "ok mtls out of scope",
      "ok token balance",
      "ok token without the minter role",
      // The documented limit (README "Two authorization values"): the first value decides.
      "ok two authorization values: the first (valid) decides",
      "ok two authorization values: the first (invalid) decides",
      "ok anonymous",
    ]);
  });
});

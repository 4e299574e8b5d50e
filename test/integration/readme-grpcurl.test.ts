/**
 * The README's grpcurl walk-through, run top to bottom against a fresh
 * server, as grpcurl runs it: the commands are read from README.md (so the
 * README cannot drift from the service), each method is resolved through
 * server reflection (no generated code), the `-d` JSON becomes the request,
 * and the answer is turned back into JSON (`-emit-defaults` keeps default
 * values). Every call must succeed, except those with `-format-error`, which
 * must fail with their ErrorInfo. `mint_01KB...` stands for the mint_id the
 * last MintUsdc answered, as a reader would paste it.
 */
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { createFileRegistry, fromBinary, fromJson, toBinary, toJson, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ServerReflectionClient, type ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection.js";
import { startApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/logger.js";
import { makeAuthFixture, TLS_CLIENT_OPTIONS } from "../support/auth-fixtures.js";
import { decodeError, startTestServer } from "../support/test-server.js";

const README = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const PLACEHOLDER_MINT_ID = "mint_01KB...";

/** The grpcurl commands of the README's "Calling it with grpcurl" section, continuation lines joined. */
function readmeCommands(): string[] {
  const section = README.slice(README.indexOf("## Calling it with grpcurl"));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
  return block
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("grpcurl "));
}

/** Splits a shell command line into words (single and double quotes, no expansions). */
function shellWords(line: string): string[] {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (let m = re.exec(line); m !== null; m = re.exec(line)) words.push(m[1] ?? m[2]?.replace(/\\(.)/g, "$1") ?? (m[3] as string));
  return words;
}

interface Grpcurl {
  readonly data?: string;
  readonly emitDefaults: boolean;
  readonly formatError: boolean;
  /** After the address: ["list"], ["describe", symbol] or ["pkg.Service/Method"]. */
  readonly verb: string[];
}

function parse(line: string): Grpcurl {
  const words = shellWords(line).slice(1);
  let data: string | undefined;
  let emitDefaults = false;
  let formatError = false;
  const rest: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "-plaintext") continue;
    else if (w === "-emit-defaults") emitDefaults = true;
    else if (w === "-format-error") formatError = true;
    else if (w === "-d") data = words[++i];
    else if (w.startsWith("-")) throw new Error(`the test does not know grpcurl flag ${w}`);
    else rest.push(w);
  }
  expect(rest[0]).toBe("127.0.0.1:50051");
  return { data, emitDefaults, formatError, verb: rest.slice(1) };
}

/** Asks reflection (v1) what grpcurl asks: services, or the files defining a symbol and all their imports. */
class Reflection {
  private readonly files = new Map<string, FileDescriptorProto>();
  constructor(private readonly client: ServerReflectionClient) {}

  private ask(req: { listServices?: string; fileContainingSymbol?: string; fileByFilename?: string }): Promise<ServerReflectionResponse> {
    return new Promise((resolve, reject) => {
      const call = this.client.serverReflectionInfo();
      call.once("data", (r: ServerReflectionResponse) => {
        call.end();
        resolve(r);
      });
      call.once("error", reject);
      call.write({ host: "", ...req });
    });
  }

  async services(): Promise<string[]> {
    const r = await this.ask({ listServices: "*" });
    return (r.listServicesResponse?.service ?? []).map((s) => s.name);
  }

  /** The registry of the file defining `symbol` and, transitively, every file it imports. */
  async registryFor(symbol: string) {
    const r = await this.ask({ fileContainingSymbol: symbol });
    if (r.errorResponse !== undefined) throw new Error(`reflection: ${r.errorResponse.errorMessage}`);
    const pending = [...(r.fileDescriptorResponse?.fileDescriptorProto ?? [])];
    while (pending.length > 0) {
      const f = fromBinary(FileDescriptorProtoSchema, pending.pop() as Uint8Array);
      if (this.files.has(f.name)) continue;
      this.files.set(f.name, f);
      for (const dep of f.dependency) {
        if (this.files.has(dep)) continue;
        const d = await this.ask({ fileByFilename: dep });
        pending.push(...(d.fileDescriptorResponse?.fileDescriptorProto ?? []));
      }
    }
    return createFileRegistry({ $typeName: "google.protobuf.FileDescriptorSet", file: [...this.files.values()] } as never);
  }
}


describe("README grpcurl walk-through", () => {
  it("runs top to bottom through reflection, JSON in and JSON out", async () => {
    const commands = readmeCommands();
    expect(commands.length).toBeGreaterThanOrEqual(10);
    const s = await startTestServer();
    const reflection = new Reflection(new ServerReflectionClient(s.address, grpc.credentials.createInsecure()));
    const channel = new grpc.Client(s.address, grpc.credentials.createInsecure());
    let lastMintId = "";
    const outputs: { line: string; json: Record<string, unknown> }[] = [];
    try {
      for (const line of commands) {
        const cmd = parse(line);
        const [verb, arg] = cmd.verb;
        if (verb === "list") {
          expect(await reflection.services()).toContain("usdc.mint.v1.MintService");
          continue;
        }
        if (verb === "describe") {
          await reflection.registryFor(arg as string);
          continue;
        }
        const [service, methodName] = (verb as string).split("/") as [string, string];
        const registry = await reflection.registryFor(service);
        const svc = registry.getService(service);
        const method = svc?.methods.find((m) => m.name === methodName) as DescMethod | undefined;
        if (method === undefined) throw new Error(`no method ${verb}`);
        const json = JSON.parse((cmd.data ?? "{}").split(PLACEHOLDER_MINT_ID).join(lastMintId)) as JsonValue;
        const request = toBinary(method.input, fromJson(method.input, json, { registry }));
        const answer = await new Promise<{ err: grpc.ServiceError | null; bytes?: Buffer }>((resolve) =>
          channel.makeUnaryRequest(
            `/${service}/${methodName}`,
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from(request),
            (err, bytes) => resolve({ err, bytes }),
          ),
        );
        if (cmd.formatError) {
          expect(answer.err, line).not.toBeNull();
          expect(decodeError(answer.err).reason, line).not.toBe("");
          continue;
        }
        expect(answer.err?.details ?? null, line).toBeNull();
        const out = toJson(method.output, fromBinary(method.output, answer.bytes as Buffer), { registry, alwaysEmitImplicit: cmd.emitDefaults }) as Record<string, unknown>;
        outputs.push({ line, json: out });
        if (methodName === "MintUsdc") lastMintId = String((out.mint as { mintId: string }).mintId);
      }
      // What the walk-through says it shows.
      const remint = outputs.find((o) => o.line.includes("-emit-defaults"));
      expect(remint?.json.replayed).toBe(false);
      const balance = outputs.find((o) => o.line.includes("/GetBalance"));
      expect(balance?.json.balance).toBe("75.5");
      const reconciled = outputs.find((o) => o.line.includes("/ReconcileMint"));
      expect((reconciled?.json.mint as { status: string }).status).toBe("MINT_STATUS_REVERSED");
    } finally {
      channel.close();
      await s.stop();
    }
  });
});

describe("README and docs/API.md links", () => {
  it("point only at files inside the repository (or at a heading of the same page)", () => {
    const root = new URL("../../", import.meta.url);
    for (const page of ["README.md", "docs/API.md"]) {
      const text = readFileSync(new URL(page, root), "utf8");
      const pageDir = new URL(page.includes("/") ? page.slice(0, page.lastIndexOf("/") + 1) : "", root);
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = (m[1] as string).split("#")[0] as string;
        if (target === "") continue;
        const resolved = new URL(target, pageDir);
        expect(resolved.href.startsWith(root.href), `${page} links to ${target}`).toBe(true);
        expect(() => readFileSync(resolved), `${page} links to missing ${target}`).not.toThrow();
      }
    }
  });
});

describe("README examples a new user follows on one server", () => {
  /** The fenced blocks of README.md with their language tag. */
  const blocks = [...README.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1] as string, text: m[2] as string }));

  it("the grpcurl walk-through, the SDK example and the mintctl example use idempotency keys that do not collide", () => {
    const grpcurl = readmeCommands().join("\n");
    const sdk = blocks.find((b) => b.lang === "ts" && b.text.includes("createMintClient("))?.text ?? "";
    const cli = blocks.find((b) => b.lang === "sh" && b.text.includes("mintctl mint "))?.text ?? "";
    const keys = (text: string, re: RegExp): Set<string> => new Set([...text.matchAll(re)].map((m) => m[1] as string));
    const sets = {
      grpcurl: keys(grpcurl, /"idempotency_key":"([^"]+)"/g),
      sdk: keys(sdk, /idempotencyKey: "([^"]+)"/g),
      mintctl: keys(cli, /--idempotency-key (\S+)/g),
    };
    for (const s of Object.values(sets)) expect(s.size).toBeGreaterThan(0);
    const names = Object.keys(sets) as (keyof typeof sets)[];
    for (const a of names) {
      for (const b of names) {
        if (a >= b) continue;
        const shared = [...sets[a]].filter((k) => sets[b].has(k));
        expect(shared, `${a} and ${b} share keys`).toEqual([]);
      }
    }
  });

  it("keeps secrets/ (where the certificate recipe writes private keys) out of git", async () => {
    const { execFileSync } = await import("node:child_process");
    const root = new URL("../../", import.meta.url).pathname;
    expect(README).toContain("mkdir -p secrets && cd secrets");
    // check-ignore exits 0 and prints the path when it is ignored, 1 when it is not.
    const out = execFileSync("git", ["check-ignore", "--no-index", "secrets/server.key", "secrets/auth.yaml"], { cwd: root, encoding: "utf8" });
    expect(out.split("\n").filter(Boolean)).toEqual(["secrets/server.key", "secrets/auth.yaml"]);
  });
});

describe("README: grpcurl with credentials, the anonymous health check", () => {
  it("runs over TLS without credentials against a server with an auth file, from the proto file (anonymous reflection stays refused)", async () => {
    const section = README.slice(README.indexOf("### grpcurl with credentials"));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    const line = block
      .replace(/\\\n\s*/g, " ")
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l.startsWith("grpcurl ") && l.includes("grpc.health.v1.Health/Check"));
    expect(line, "the health line").toBeDefined();
    const words = shellWords(line as string).slice(1);
    const flag = (name: string): string | undefined => {
      const i = words.indexOf(name);
      return i < 0 ? undefined : words[i + 1];
    };
    // What grpcurl is given: the CA, the proto and nothing that names a caller.
    expect(flag("-cacert")).toBe("secrets/server-ca.crt");
    expect(words.some((w) => ["-cert", "-key", "-H", "-plaintext"].includes(w))).toBe(false);
    const importPath = flag("-import-path") as string;
    const protoFile = flag("-proto") as string;
    expect([importPath, protoFile]).toEqual(["proto", "grpc/health/v1/health.proto"]);
    const root = new URL("../../", import.meta.url);
    expect(() => readFileSync(new URL(`${importPath}/${protoFile}`, root)), "the proto grpcurl reads").not.toThrow();
    const [address, verb] = words.filter((w, i) => !w.startsWith("-") && !words[i - 1]?.startsWith("-"));
    expect(address).toBe("mint.internal:50051");

    // The method resolved from that file, as grpcurl compiles it (buf's build of proto/ names it the same).
    const set = fromBinary(FileDescriptorSetSchema, readFileSync(new URL("descriptors/descriptor.binpb", root)));
    const file = set.file.find((f) => f.name === protoFile);
    expect(file, `${protoFile} in the descriptor set`).toBeDefined();
    const registry = createFileRegistry(file as FileDescriptorProto, () => undefined);
    const [service, methodName] = (verb as string).split("/") as [string, string];
    const method = registry.getService(service)?.methods.find((m) => m.name === methodName) as DescMethod;

    const fx = makeAuthFixture();
    const config = loadConfig([], { MINT_LISTEN: "127.0.0.1:0", MINT_LOG_LEVEL: "silent", ...fx.env });
    expect(config.reflection).toBe("authenticated");
    const app = await startApp(config, createLogger(config.logLevel));
    const creds = grpc.credentials.createSsl(fx.certs.serverCa.cert);
    const channel = new grpc.Client(app.server.address, creds, TLS_CLIENT_OPTIONS);
    const reflection = new ServerReflectionClient(app.server.address, creds, TLS_CLIENT_OPTIONS);
    try {
      const answer = await new Promise<{ err: grpc.ServiceError | null; bytes?: Buffer }>((resolve) =>
        channel.makeUnaryRequest(`/${service}/${methodName}`, (b: Buffer) => b, (b: Buffer) => b, Buffer.from(toBinary(method.input, fromJson(method.input, {}))), (err, bytes) => resolve({ err, bytes })),
      );
      expect(answer.err).toBeNull();
      expect(toJson(method.output, fromBinary(method.output, answer.bytes as Buffer))).toEqual({ status: "SERVING" });
      // Without the proto, grpcurl would ask reflection, which an anonymous caller is refused.
      const refused = await new Promise<grpc.ServiceError | null>((resolve) => {
        const call = reflection.serverReflectionInfo();
        call.once("data", () => resolve(null));
        call.once("error", (e: grpc.ServiceError) => resolve(e));
        call.write({ host: "", listServices: "*" });
      });
      expect(refused?.code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      channel.close();
      reflection.close();
      await app.shutdown();
      fx.remove();
    }
  });
});

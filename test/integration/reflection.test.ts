// Server reflection (v1 and v1alpha) over a real server on 127.0.0.1:0, asked
// the way grpcurl asks: list, resolve a symbol, then resolve every import.
import { readFileSync } from "node:fs";

import * as grpc from "@grpc/grpc-js";
import { create, createFileRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

import {
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  ServerReflectionClient as ClientV1,
} from "../../gen/grpc/reflection/v1/reflection.js";
import { ServerReflectionClient as ClientV1Alpha } from "../../gen/grpc/reflection/v1alpha/reflection.js";
import { HealthService } from "../../src/transport/grpc/health.js";
import {
  REFLECTION_SERVICES,
  type ReflectionHandle,
  addReflection,
  loadDescriptorSet,
} from "../../src/transport/grpc/reflection.js";

const MINT_SERVICE = "usdc.mint.v1.MintService";
const SERVED = [MINT_SERVICE, "grpc.health.v1.Health", ...REFLECTION_SERVICES];
const DESCRIPTOR_SET = readFileSync(new URL("../../descriptors/descriptor.binpb", import.meta.url));

type Duplex = grpc.ClientDuplexStream<ServerReflectionRequest, ServerReflectionResponse>;

/** One reflection stream; ask() sends a request and returns its (in-order) answer. */
class Session {
  readonly #iterator: AsyncIterator<ServerReflectionResponse>;
  readonly status: Promise<grpc.StatusObject>;

  constructor(readonly call: Duplex) {
    this.#iterator = call[Symbol.asyncIterator]() as AsyncIterator<ServerReflectionResponse>;
    this.status = new Promise((resolve) => call.once("status", resolve));
  }

  async ask(request: Partial<ServerReflectionRequest>): Promise<ServerReflectionResponse> {
    this.call.write({ host: "", ...request });
    return this.next();
  }

  async next(): Promise<ServerReflectionResponse> {
    const next = await this.#iterator.next();
    if (next.done === true) throw new Error("reflection stream ended");
    return next.value;
  }

  async ended(): Promise<boolean> {
    return (await this.#iterator.next()).done === true;
  }
}

function files(response: ServerReflectionResponse): FileDescriptorProto[] {
  expect(response.errorResponse).toBeUndefined();
  const raw = response.fileDescriptorResponse?.fileDescriptorProto;
  expect(raw?.length).toBeGreaterThan(0);
  return (raw ?? []).map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
}

interface Started {
  readonly server: grpc.Server;
  readonly address: string;
  readonly reflection: ReflectionHandle;
}

async function start(): Promise<Started> {
  const server = new grpc.Server();
  // Health is served too, as in production, so list_services names a real service.
  new HealthService(["", MINT_SERVICE]).addTo(server);
  const reflection = addReflection(server, loadDescriptorSet(), SERVED);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  return { server, address: `127.0.0.1:${port}`, reflection };
}

// The two protocol versions share one implementation; run the same suite on both.
describe.each([
  { version: "v1", Client: ClientV1 },
  { version: "v1alpha", Client: ClientV1Alpha },
])("grpc.reflection.$version.ServerReflection", ({ Client }) => {
  let started: Started;
  let client: InstanceType<typeof Client>;
  let session: Session;

  beforeAll(async () => {
    started = await start();
    client = new Client(started.address, grpc.credentials.createInsecure());
    // Every test below shares one stream on purpose: errors must leave it usable.
    session = new Session(client.serverReflectionInfo() as Duplex);
  });

  afterAll(() => {
    session.call.end();
    client.close();
    started.server.forceShutdown();
  });

  it("lists exactly the services given", async () => {
    const response = await session.ask({ listServices: "*" });
    expect(response.listServicesResponse?.service.map((s) => s.name).sort()).toEqual([...SERVED].sort());
  });

  it("echoes the original request and host", async () => {
    const response = await session.ask({ listServices: "" });
    expect(response.originalRequest?.listServices).toBe("");
    const withHost = await session.ask({ host: "example.test", listServices: "" });
    expect(withHost.validHost).toBe("example.test");
  });

  it("resolves MintService to mint.proto with comments, and every import transitively", async () => {
    const answer = files(await session.ask({ fileContainingSymbol: MINT_SERVICE }));
    const mint = answer[0];
    expect(mint?.name).toBe("usdc/mint/v1/mint.proto");
    expect(mint?.service.map((s) => s.name)).toContain("MintService");
    // Source info is what lets grpcurl describe show comments.
    const comments = mint?.sourceCodeInfo?.location.map((l) => l.leadingComments).filter((c) => c !== "") ?? [];
    expect(comments.length).toBeGreaterThan(0);
    expect(comments.join("\n")).toMatch(/MintStatus is the life-cycle state of a mint/);

    // Resolve like a client would: every import, by name, to a served file.
    const held = new Map(answer.map((f) => [f.name, f]));
    const pending = [...answer.flatMap((f) => f.dependency)];
    const resolved = new Set<string>();
    while (pending.length > 0) {
      const name = pending.pop() as string;
      if (resolved.has(name)) continue;
      const byName = files(await session.ask({ fileByFilename: name }));
      expect(byName[0]?.name).toBe(name);
      resolved.add(name);
      for (const file of byName) {
        held.set(file.name, file);
        pending.push(...file.dependency);
      }
    }
    expect(resolved).toContain("google/protobuf/timestamp.proto");
    // The first answer alone already carried every import, so a client needs one round trip.
    for (const name of resolved) expect(answer.map((f) => f.name)).toContain(name);
  });

  it("answers with files that link into a descriptor registry, as a client builds one", async () => {
    // What grpcurl does with the answer: link the file against the files it
    // imports; this fails on any import or type name that does not resolve.
    const answer = files(await session.ask({ fileContainingSymbol: MINT_SERVICE }));
    const mintFile = answer[0] as FileDescriptorProto;
    const byName = new Map(answer.map((f) => [f.name, f]));
    const registry = createFileRegistry(mintFile, (name) => byName.get(name));
    const method = registry.getService(MINT_SERVICE)?.methods.find((m) => m.name === "MintUsdc");
    expect(method?.input.typeName).toBe("usdc.mint.v1.MintUsdcRequest");
    const createTime = registry.getMessage("usdc.mint.v1.Mint")?.fields.find((f) => f.name === "create_time");
    expect(createTime?.message?.typeName).toBe("google.protobuf.Timestamp");
  });

  it("serves each file's bytes exactly as buf wrote them", async () => {
    const response = await session.ask({ fileByFilename: "usdc/mint/v1/mint.proto" });
    const bytes = response.fileDescriptorResponse?.fileDescriptorProto[0];
    expect(bytes).toBeDefined();
    expect(DESCRIPTOR_SET.indexOf(bytes as Buffer)).toBeGreaterThan(0);
  });

  it.each([
    ["usdc.mint.v1.MintService.MintUsdc", "usdc/mint/v1/mint.proto"], // method
    ["usdc.mint.v1.Mint", "usdc/mint/v1/mint.proto"], // message
    [".usdc.mint.v1.Mint", "usdc/mint/v1/mint.proto"], // as written in descriptors
    ["usdc.mint.v1.Mint.create_time", "usdc/mint/v1/mint.proto"], // field
    ["usdc.mint.v1.Blockchain", "usdc/mint/v1/mint.proto"], // enum
    ["usdc.mint.v1.BLOCKCHAIN_SOLANA", "usdc/mint/v1/mint.proto"], // enum value, protobuf scope
    ["usdc.mint.v1.Blockchain.BLOCKCHAIN_SOLANA", "usdc/mint/v1/mint.proto"], // enum value, enum scope
    ["google.rpc.BadRequest.FieldViolation", "google/rpc/error_details.proto"], // nested message
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"], // nested enum
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
    ["google.rpc.Status", "google/rpc/status.proto"],
    ["grpc.reflection.v1alpha.ServerReflection", "grpc/reflection/v1alpha/reflection.proto"],
  ])("resolves symbol %s to %s", async (symbol, file) => {
    expect(files(await session.ask({ fileContainingSymbol: symbol }))[0]?.name).toBe(file);
  });

  it.each(["google.rpc.ErrorInfo", "google.rpc.RetryInfo", "google.rpc.BadRequest", "google.rpc.QuotaFailure"])(
    "resolves error detail %s with its imports, so -format-error can decode it",
    async (symbol) => {
      const answer = files(await session.ask({ fileContainingSymbol: symbol }));
      expect(answer[0]?.name).toBe("google/rpc/error_details.proto");
      const shortName = symbol.slice("google.rpc.".length);
      expect(answer[0]?.messageType.map((m) => m.name)).toContain(shortName);
      expect(answer.map((f) => f.name)).toContain("google/protobuf/duration.proto");
    },
  );

  it("answers all_extension_numbers_of_type for a known message with an empty list", async () => {
    const response = await session.ask({ allExtensionNumbersOfType: "google.rpc.ErrorInfo" });
    expect(response.errorResponse).toBeUndefined();
    expect(response.allExtensionNumbersResponse).toEqual({ baseTypeName: "google.rpc.ErrorInfo", extensionNumber: [] });
  });

  it("answers NOT_FOUND to all_extension_numbers_of_type for a non-message or unknown type", async () => {
    for (const type of ["no.such.Message", "usdc.mint.v1.Blockchain", "usdc.mint.v1.MintService"]) {
      const response = await session.ask({ allExtensionNumbersOfType: type });
      expect(response.allExtensionNumbersResponse).toBeUndefined();
      expect(response.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
    }
  });

  it("answers NOT_FOUND in error_response and keeps the stream usable", async () => {
    const unknownSymbol = await session.ask({ fileContainingSymbol: "no.such.Symbol" });
    expect(unknownSymbol.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);
    expect(unknownSymbol.fileDescriptorResponse).toBeUndefined();

    const unknownFile = await session.ask({ fileByFilename: "no/such/file.proto" });
    expect(unknownFile.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);

    const extension = await session.ask({
      fileContainingExtension: { containingType: "google.rpc.ErrorInfo", extensionNumber: 1000 },
    });
    expect(extension.errorResponse?.errorCode).toBe(grpc.status.NOT_FOUND);

    const empty = await session.ask({});
    expect(empty.errorResponse?.errorCode).toBe(grpc.status.INVALID_ARGUMENT);

    const after = await session.ask({ listServices: "" });
    expect(after.listServicesResponse?.service.length).toBe(SERVED.length);
  });

  it("ends the stream with OK when the client half-closes", async () => {
    const own = new Session(client.serverReflectionInfo() as Duplex);
    expect((await own.ask({ listServices: "" })).listServicesResponse).toBeDefined();
    own.call.end();
    expect(await own.ended()).toBe(true);
    expect((await own.status).code).toBe(grpc.status.OK);
  });
});

describe("addReflection", () => {
  it("ends open streams on shutdown so the server can drain", async () => {
    const started = await start();
    const client = new ClientV1(started.address, grpc.credentials.createInsecure());
    try {
      const session = new Session(client.serverReflectionInfo());
      expect((await session.ask({ listServices: "" })).listServicesResponse).toBeDefined();
      started.reflection.shutdown();
      expect(await session.ended()).toBe(true);
      expect((await session.status).code).toBe(grpc.status.OK);
    } finally {
      client.close();
      started.server.forceShutdown();
    }
  });

  it("refuses a listed service that the descriptor set does not define", () => {
    expect(() => addReflection(new grpc.Server(), DESCRIPTOR_SET, ["usdc.mint.v1.NoSuchService"])).toThrow(
      /not defined/,
    );
  });

  it("refuses a descriptor set whose imports are missing", () => {
    // mint.proto alone: its import of google/protobuf/timestamp.proto dangles.
    const full = fromBinary(FileDescriptorSetSchema, DESCRIPTOR_SET);
    const mintOnly = create(FileDescriptorSetSchema, {
      file: full.file.filter((f) => f.name === "usdc/mint/v1/mint.proto"),
    });
    expect(mintOnly.file.length).toBe(1);
    expect(() => addReflection(new grpc.Server(), toBinary(FileDescriptorSetSchema, mintOnly), [])).toThrow(
      /imports google\/protobuf\/timestamp\.proto/,
    );
  });

  it("loadDescriptorSet finds descriptors/descriptor.binpb from source", () => {
    expect(Buffer.compare(Buffer.from(loadDescriptorSet()), DESCRIPTOR_SET)).toBe(0);
  });
});

// grpc.health.v1.Health over a real server on 127.0.0.1:0 with the generated client.
import * as grpc from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import {
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus as Wire,
  HealthClient,
} from "../../gen/grpc/health/v1/health.js";
import { HealthService, type HealthOptions } from "../../src/transport/grpc/health.js";

const MINT = "usdc.mint.v1.MintService";

interface Harness {
  readonly health: HealthService;
  readonly server: grpc.Server;
  readonly client: HealthClient;
}

async function start(options?: HealthOptions): Promise<Harness> {
  const health = new HealthService(["", MINT], options);
  const server = new grpc.Server();
  health.addTo(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  const client = new HealthClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return { health, server, client };
}

function check(client: HealthClient, service: string): Promise<Wire> {
  return new Promise((resolve, reject) => {
    client.check({ service }, (error, response) => (error ? reject(error) : resolve(response.status)));
  });
}

function checkError(client: HealthClient, service: string): Promise<grpc.ServiceError> {
  return new Promise((resolve, reject) => {
    client.check({ service }, (error, response) =>
      error ? resolve(error) : reject(new Error(`expected an error, got ${Wire[response.status]}`)),
    );
  });
}

/** Reads a server stream one message at a time, in order, without sleeping. */
function reader(stream: grpc.ClientReadableStream<HealthCheckResponse>): () => Promise<Wire | "end"> {
  const iterator = stream[Symbol.asyncIterator]() as AsyncIterator<HealthCheckResponse>;
  return async () => {
    const next = await iterator.next();
    return next.done === true ? "end" : next.value.status;
  };
}

/** Resolves with the final status of a call, which arrives after its last message. */
function finalStatus(stream: grpc.ClientReadableStream<HealthCheckResponse>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => stream.once("status", resolve));
}

describe("grpc.health.v1.Health", () => {
  let h: Harness;

  beforeEach(async () => {
    h = await start();
  });

  afterEach(() => {
    h.client.close();
    h.server.forceShutdown();
  });

  it("reports NOT_SERVING until the wiring says ready, then SERVING for the server and the service", async () => {
    expect(await check(h.client, "")).toBe(Wire.NOT_SERVING);
    expect(await check(h.client, MINT)).toBe(Wire.NOT_SERVING);
    h.health.setAll("SERVING");
    expect(await check(h.client, "")).toBe(Wire.SERVING);
    expect(await check(h.client, MINT)).toBe(Wire.SERVING);
  });

  it("sets one service without touching the others", async () => {
    h.health.setAll("SERVING");
    h.health.setStatus(MINT, "NOT_SERVING");
    expect(await check(h.client, MINT)).toBe(Wire.NOT_SERVING);
    expect(await check(h.client, "")).toBe(Wire.SERVING);
  });

  it("answers NOT_FOUND to Check for an unknown service", async () => {
    const error = await checkError(h.client, "no.such.Service");
    expect(error.code).toBe(grpc.status.NOT_FOUND);
  });

  it("throws when the wiring sets a service it never declared", () => {
    expect(() => h.health.setStatus("no.such.Service", "SERVING")).toThrow(/unknown service/);
  });

  it("rejects a negative maxWatchers at construction", () => {
    expect(() => new HealthService([], { maxWatchers: -1 })).toThrow(RangeError);
  });

  it("Watch sends the current status at once, then each change of that service only", async () => {
    h.health.setAll("SERVING");
    const stream = h.client.watch({ service: MINT });
    const next = reader(stream);
    expect(await next()).toBe(Wire.SERVING);

    h.health.setStatus(MINT, "SERVING"); // no change: must not be sent
    h.health.setStatus("", "NOT_SERVING"); // another service: must not be sent
    h.health.setStatus(MINT, "NOT_SERVING");
    h.health.setStatus(MINT, "SERVING");
    expect(await next()).toBe(Wire.NOT_SERVING);
    expect(await next()).toBe(Wire.SERVING);
    stream.cancel();
  });

  it("Watch of an unknown service sends SERVICE_UNKNOWN and keeps the stream open", async () => {
    const stream = h.client.watch({ service: "no.such.Service" });
    const next = reader(stream);
    expect(await next()).toBe(Wire.SERVICE_UNKNOWN);
    await vi.waitFor(() => expect(h.health.watcherCount).toBe(1), { timeout: 5_000 });
    stream.cancel();
  });

  it("forgets a watcher whose client cancelled", async () => {
    const stream = h.client.watch({ service: "" });
    const next = reader(stream);
    expect(await next()).toBe(Wire.NOT_SERVING);
    expect(h.health.watcherCount).toBe(1);
    const status = finalStatus(stream);
    stream.cancel();
    expect((await status).code).toBe(grpc.status.CANCELLED);
    // The server learns of the cancel a moment after the client: wait on the
    // condition rather than for a fixed time.
    await vi.waitFor(() => expect(h.health.watcherCount).toBe(0), { timeout: 5_000 });
  });

  it("shutdown sends NOT_SERVING to watchers, ends their streams with OK and ignores later updates", async () => {
    h.health.setAll("SERVING");
    const stream = h.client.watch({ service: MINT });
    const next = reader(stream);
    const status = finalStatus(stream);
    expect(await next()).toBe(Wire.SERVING);

    h.health.shutdown();
    expect(await next()).toBe(Wire.NOT_SERVING);
    expect(await next()).toBe("end");
    expect((await status).code).toBe(grpc.status.OK);
    expect(h.health.watcherCount).toBe(0);

    // A late "ready" must not undo the drain.
    h.health.setAll("SERVING");
    h.health.setStatus(MINT, "SERVING");
    expect(await check(h.client, MINT)).toBe(Wire.NOT_SERVING);
    expect(await check(h.client, "")).toBe(Wire.NOT_SERVING);
  });

  it("Watch after shutdown reports the status once and ends", async () => {
    h.health.shutdown();
    const stream = h.client.watch({ service: "" });
    const next = reader(stream);
    expect(await next()).toBe(Wire.NOT_SERVING);
    expect(await next()).toBe("end");
    expect(h.health.watcherCount).toBe(0);
  });
});

describe("grpc.health.v1.Health limits", () => {
  let h: Harness;

  afterEach(() => {
    h.client.close();
    h.server.forceShutdown();
  });

  it("refuses a Watch beyond maxWatchers with RESOURCE_EXHAUSTED", async () => {
    h = await start({ maxWatchers: 1 });
    const first = h.client.watch({ service: "" });
    expect(await reader(first)()).toBe(Wire.NOT_SERVING);

    const second = h.client.watch({ service: MINT });
    await expect(reader(second)()).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    expect(h.health.watcherCount).toBe(1);
    first.cancel();
  });

  it("starts SERVING when told to", async () => {
    h = await start({ initialStatus: "SERVING" });
    expect(await check(h.client, MINT)).toBe(Wire.SERVING);
  });
});

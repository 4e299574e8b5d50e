#!/usr/bin/env node
// Container health check: asks grpc.health.v1.Health/Check on the local server
// and exits 0 iff the answer is SERVING within 2 s, else 1 (one line on stderr).
//
//   node scripts/healthcheck.mjs [service]     (service defaults to "", the whole server)
//
// The port comes from MINT_LISTEN (host:port, default 127.0.0.1:50051); a
// wildcard or localhost host is reached on 127.0.0.1. With MINT_TLS_CERT set it
// speaks TLS. Uses only @grpc/grpc-js
// (a production dependency) with a hand-built client, so it needs neither the
// compiled output nor proto files: HealthCheckRequest and HealthCheckResponse
// are one field each and are encoded here by hand.
import * as grpc from "@grpc/grpc-js";

const TIMEOUT_MS = 2000;
const SERVING = 1;
const STATUS_NAMES = ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"];

function fail(message) {
  process.stderr.write(`healthcheck: ${message}\n`);
  process.exit(1);
}

function target(listen) {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/.exec(listen.trim());
  if (m === null) fail(`MINT_LISTEN=${JSON.stringify(listen)} is not host:port`);
  const [, host, port] = m;
  if (Number(port) === 0) fail("MINT_LISTEN has port 0; give the port the server is listening on");
  const wildcard = ["0.0.0.0", "[::]", "[::0]", "localhost", "127.0.0.1"].includes(host);
  return `${wildcard ? "127.0.0.1" : host}:${port}`;
}

/** A varint at `offset` of `buf`: [value, next offset]. */
function readVarint(buf, offset) {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (offset >= buf.length) throw new Error("truncated varint");
    const byte = buf[offset++];
    value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, offset];
    shift += 7;
    if (shift > 63) throw new Error("varint too long");
  }
}

/** HealthCheckRequest { string service = 1; } */
function encodeRequest({ service }) {
  const bytes = Buffer.from(service, "utf8");
  if (bytes.length === 0) return Buffer.alloc(0);
  if (bytes.length > 127) throw new Error("service name too long");
  return Buffer.concat([Buffer.from([0x0a, bytes.length]), bytes]);
}

/** HealthCheckResponse { ServingStatus status = 1; }, skipping unknown fields. */
function decodeResponse(buf) {
  let status = 0;
  let offset = 0;
  while (offset < buf.length) {
    let tag;
    [tag, offset] = readVarint(buf, offset);
    const wireType = tag & 7;
    if (wireType === 0) {
      let v;
      [v, offset] = readVarint(buf, offset);
      if (tag >>> 3 === 1) status = v;
    } else if (wireType === 2) {
      let len;
      [len, offset] = readVarint(buf, offset);
      offset += len;
    } else if (wireType === 1) {
      offset += 8;
    } else if (wireType === 5) {
      offset += 4;
    } else {
      throw new Error(`unexpected wire type ${wireType}`);
    }
  }
  return { status };
}

const HealthClient = grpc.makeGenericClientConstructor(
  {
    check: {
      path: "/grpc.health.v1.Health/Check",
      requestStream: false,
      responseStream: false,
      requestSerialize: encodeRequest,
      requestDeserialize: () => ({ service: "" }),
      responseSerialize: () => Buffer.alloc(0),
      responseDeserialize: decodeResponse,
    },
  },
  "grpc.health.v1.Health",
);

const address = target(process.env.MINT_LISTEN || "127.0.0.1:50051");
const service = process.argv[2] ?? "";
// A safety net: whatever happens (a stuck resolver, a hung connect), never outlive the budget.
setTimeout(() => fail(`no answer from ${address} within ${TIMEOUT_MS} ms`), TIMEOUT_MS + 250).unref();

// With MINT_TLS_CERT set the server speaks only TLS. The check talks to its own
// process over loopback and sends nothing secret, so it does not verify the
// server certificate (the image holds no copy of the server CA) and presents no
// client certificate: health is the one service that needs none.
const credentials = process.env.MINT_TLS_CERT
  ? grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false, checkServerIdentity: () => undefined })
  : grpc.credentials.createInsecure();
const client = new HealthClient(address, credentials);
client.check({ service }, { deadline: Date.now() + TIMEOUT_MS }, (err, res) => {
  client.close();
  if (err) fail(`${address} Health/Check(${JSON.stringify(service)}): ${grpc.status[err.code] ?? err.code} ${err.details ?? err.message}`);
  if (res.status !== SERVING) fail(`${address} Health/Check(${JSON.stringify(service)}): ${STATUS_NAMES[res.status] ?? res.status}`);
  process.exit(0);
});

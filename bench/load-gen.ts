/**
 * The load generator: a child process (forked with an IPC channel) that sends
 * pre-encoded gRPC frames over `node:http2` — no grpc-js client, no protobuf
 * encoding per call — so that it costs far less CPU than the server it loads.
 *
 * Closed loop: `concurrency` callers each keep exactly one call in flight,
 * spread over `connections` HTTP/2 connections. A call's outcome is the
 * `grpc-status` of its trailers (or of a Trailers-Only response); anything but
 * "0", and any stream or connection error, counts as an error.
 *
 * Protocol: the parent sends a `LoadSpec` message, the child answers with a
 * `LoadResult` (or `{ error }`), and waits for the next one.
 */
import http2 from "node:http2";
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { PATHS, bodyMaker, type Workload } from "./frames.js";

export interface LoadSpec {
  readonly port: number;
  readonly workload: Workload;
  readonly concurrency: number;
  readonly connections: number;
  /** Distinct accounts the calls rotate over. */
  readonly accounts: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** For `seed`: send exactly this many calls (one per account) and stop; no timing. */
  readonly totalCalls?: number;
  /** Server process whose CPU time is sampled over the measured window (Linux /proc). */
  readonly serverPid?: number;
  /** Sent as `grpc-timeout` on every call (as real clients set deadlines); omitted when 0. */
  readonly deadlineMs: number;
}

export interface LoadResult {
  readonly workload: Workload;
  readonly concurrency: number;
  readonly connections: number;
  /** Calls completed inside the measured window (any status). */
  readonly calls: number;
  readonly ok: number;
  readonly errors: number;
  /** Non-zero grpc-status (or "stream:<code>") → count. */
  readonly errorKinds: Record<string, number>;
  readonly seconds: number;
  /** Successful calls per second. */
  readonly rps: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Server CPU over the window, in percent of one core (null when unknown). */
  readonly serverCpuPct: number | null;
  /** This generator's CPU over the window, in percent of one core. */
  readonly generatorCpuPct: number;
}

const CLK_TCK = 100;

function procCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the ")" of the command name: utime is 14th, stime 15th overall.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

/** Six characters, unique enough per run so that keys never repeat on one server. */
let runCounter = 0;
const processTag = randomBytes(4).readUInt32BE(0).toString(36).padStart(7, "0").slice(-4);
function nextKeyTag(): string {
  return processTag + (runCounter++ % 1296).toString(36).padStart(2, "0");
}

function connect(port: number): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`, { settings: { initialWindowSize: 1 << 20 } });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const sessions = await Promise.all(Array.from({ length: spec.connections }, () => connect(spec.port)));
  const errorKinds: Record<string, number> = {};
  for (const s of sessions) {
    s.on("error", (e: NodeJS.ErrnoException) => {
      const k = "session:" + (e.code ?? e.message);
      errorKinds[k] = (errorKinds[k] ?? 0) + 1;
    });
  }
  const next = bodyMaker({ workload: spec.workload, accounts: spec.accounts, keyTag: nextKeyTag() });
  const headers: http2.OutgoingHttpHeaders = {
    ":method": "POST",
    ":scheme": "http",
    ":authority": `127.0.0.1:${spec.port}`,
    ":path": PATHS[spec.workload],
    "content-type": "application/grpc",
    te: "trailers",
  };
  if (spec.deadlineMs > 0) headers["grpc-timeout"] = `${Math.round(spec.deadlineMs)}m`;

  const seeding = spec.totalCalls !== undefined;
  let sent = 0;
  let measuring = false;
  let stopping = false;
  let measureStart = 0;
  let calls = 0;
  let ok = 0;
  let errors = 0;
  let lat = new Float64Array(1 << 16);
  let nLat = 0;
  let inFlight = 0;
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => (finish = r));

  const fire = (slot: number): void => {
    if (stopping || (seeding && sent >= (spec.totalCalls as number))) {
      if (--inFlight === 0) finish();
      return;
    }
    sent++;
    const session = sessions[slot % sessions.length] as http2.ClientHttp2Session;
    const t0 = performance.now();
    let status: string | undefined;
    const stream = session.request(headers, { endStream: false });
    stream.on("response", (h) => {
      const g = h["grpc-status"];
      if (g !== undefined) status = String(g);
    });
    stream.on("trailers", (t) => {
      const g = t["grpc-status"];
      if (g !== undefined) status = String(g);
    });
    stream.on("error", (e: NodeJS.ErrnoException) => {
      status = "stream:" + (e.code ?? e.message);
    });
    stream.on("close", () => {
      const t1 = performance.now();
      if (measuring || seeding) {
        calls++;
        if (status === "0") {
          ok++;
          if (nLat === lat.length) {
            const bigger = new Float64Array(lat.length * 2);
            bigger.set(lat);
            lat = bigger;
          }
          lat[nLat++] = t1 - t0;
        } else {
          errors++;
          const k = status ?? "no-status";
          errorKinds[k] = (errorKinds[k] ?? 0) + 1;
        }
      }
      fire(slot);
    });
    stream.resume();
    stream.end(next());
  };

  inFlight = spec.concurrency;
  for (let i = 0; i < spec.concurrency; i++) fire(i);

  let cpu0 = process.cpuUsage();
  let srv0: number | null = null;
  let seconds = 0;
  let genCpu = 0;
  let srvCpu: number | null = null;
  if (!seeding) {
    await new Promise((r) => setTimeout(r, spec.warmupMs));
    measuring = true;
    measureStart = performance.now();
    cpu0 = process.cpuUsage();
    srv0 = spec.serverPid !== undefined ? procCpuSeconds(spec.serverPid) : null;
    await new Promise((r) => setTimeout(r, spec.durationMs));
    measuring = false;
    seconds = (performance.now() - measureStart) / 1000;
    const cpu = process.cpuUsage(cpu0);
    genCpu = ((cpu.user + cpu.system) / 1e6 / seconds) * 100;
    const srv1 = spec.serverPid !== undefined ? procCpuSeconds(spec.serverPid) : null;
    srvCpu = srv0 !== null && srv1 !== null ? ((srv1 - srv0) / seconds) * 100 : null;
    stopping = true;
  } else {
    measureStart = performance.now();
  }
  await finished;
  if (seeding) seconds = (performance.now() - measureStart) / 1000;
  await Promise.all(sessions.map((s) => new Promise<void>((r) => s.close(() => r()))));

  const sorted = lat.slice(0, nLat).sort();
  return {
    workload: spec.workload,
    concurrency: spec.concurrency,
    connections: spec.connections,
    calls,
    ok,
    errors,
    errorKinds,
    seconds,
    rps: ok / seconds,
    p50Ms: quantile(sorted, 0.5),
    p90Ms: quantile(sorted, 0.9),
    p99Ms: quantile(sorted, 0.99),
    maxMs: nLat > 0 ? (sorted[nLat - 1] as number) : NaN,
    serverCpuPct: srvCpu,
    generatorCpuPct: genCpu,
  };
}

// As a forked child: serve LoadSpecs over IPC until the parent disconnects.
if (process.send !== undefined) {
  process.on("message", (spec: LoadSpec) => {
    runLoad(spec).then(
      (result) => process.send?.({ result }),
      (e: unknown) => process.send?.({ error: e instanceof Error ? e.stack ?? e.message : String(e) }),
    );
  });
  process.on("disconnect", () => process.exit(0));
}

/**
 * The load generator: a child process (forked with an IPC channel) that sends
 * pre-encoded gRPC frames over HTTP/2 — no grpc-js client, no protobuf
 * encoding per call — so that it costs far less CPU than the server it loads.
 *
 * The client is a minimal HTTP/2 client over a TCP socket (bench/h2-raw.ts):
 * node:http2's client costs as much CPU as the empty server it would load.
 *
 * Closed loop: `concurrency` callers each keep exactly one call in flight,
 * spread over `connections` HTTP/2 connections. A call's outcome is the
 * `grpc-status` of its trailers (or of a Trailers-Only response); anything but
 * "0", and any stream or connection error, counts as an error.
 *
 * Protocol: the parent sends a `LoadSpec` message, the child answers with a
 * `LoadResult` (or `{ error }`), and waits for the next one.
 */
import { readFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { PATHS, bodyMaker, type Workload } from "./frames.js";
import { RawH2Connection, calibrate, requestHeaderBlock, type Completion, type HpackDictionary, type TlsClientFiles } from "./h2-raw.js";

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
  /** TLS (and mutual TLS) for the raw client; plaintext when absent. */
  readonly tls?: TlsClientFiles;
  /** Sent as `authorization` metadata on every call (e.g. "Bearer …"). */
  readonly authorization?: string;
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
  /**
   * Server CPU time (all its threads, GC included) per call completed in the
   * window, in µs. Unlike req/s it hardly moves when other processes take CPU.
   */
  readonly serverCpuUsPerCall: number | null;
  /** This generator's CPU over the window, in percent of one core. */
  readonly generatorCpuPct: number;
  /** CPU used by everything else on the machine over the window (other engineers' tests…), percent of one core. */
  readonly otherCpuPct: number | null;
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

/** Busy CPU time of the whole machine (all cores), in seconds, from /proc/stat. */
function machineBusySeconds(): number | null {
  try {
    const line = readFileSync("/proc/stat", "latin1").split("\n")[0] as string;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
    return busy / CLK_TCK;
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

/** Sends one call on the connection for `slot`; `done` gets the grpc-status and the latency. */
type Caller = (slot: number, body: Buffer, done: Completion) => void;

interface Transport {
  readonly call: Caller;
  close(): Promise<void>;
}

let dictionary: Promise<HpackDictionary> | null = null;

async function rawTransport(spec: LoadSpec, headerBlock: Buffer, onError: (k: string) => void): Promise<Transport> {
  dictionary ??= calibrate();
  const dict = await dictionary;
  const conns = await Promise.all(Array.from({ length: spec.connections }, () => RawH2Connection.connect(spec.port, dict, spec.tls)));
  for (const c of conns) c.onConnectionError = (what) => onError("connection:" + what);
  return {
    call: (slot, body, done) => (conns[slot % conns.length] as RawH2Connection).call(headerBlock, body, done),
    async close() {
      for (const c of conns) c.close();
    },
  };
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const errorKinds: Record<string, number> = {};
  const countError = (k: string): void => {
    errorKinds[k] = (errorKinds[k] ?? 0) + 1;
  };
  const next = bodyMaker({ workload: spec.workload, accounts: spec.accounts, keyTag: nextKeyTag() });
  const authority = `127.0.0.1:${spec.port}`;
  const timeout = spec.deadlineMs > 0 ? `${Math.round(spec.deadlineMs)}m` : null;
  const transport = await rawTransport(spec, requestHeaderBlock(PATHS[spec.workload], authority, timeout, spec.authorization), countError);

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
    transport.call(slot, next(), (status, latencyMs) => {
      if (measuring || seeding) {
        calls++;
        if (status === "0") {
          ok++;
          if (nLat === lat.length) {
            const bigger = new Float64Array(lat.length * 2);
            bigger.set(lat);
            lat = bigger;
          }
          lat[nLat++] = latencyMs;
        } else {
          errors++;
          countError(status);
        }
      }
      fire(slot);
    });
  };

  inFlight = spec.concurrency;
  for (let i = 0; i < spec.concurrency; i++) fire(i);

  let seconds = 0;
  let genCpu = 0;
  let srvCpu: number | null = null;
  let otherCpu: number | null = null;
  if (!seeding) {
    await new Promise((r) => setTimeout(r, spec.warmupMs));
    measuring = true;
    measureStart = performance.now();
    const cpu0 = process.cpuUsage();
    const srv0 = spec.serverPid !== undefined ? procCpuSeconds(spec.serverPid) : null;
    const all0 = machineBusySeconds();
    await new Promise((r) => setTimeout(r, spec.durationMs));
    const all1 = machineBusySeconds();
    measuring = false;
    seconds = (performance.now() - measureStart) / 1000;
    const cpu = process.cpuUsage(cpu0);
    genCpu = ((cpu.user + cpu.system) / 1e6 / seconds) * 100;
    const srv1 = spec.serverPid !== undefined ? procCpuSeconds(spec.serverPid) : null;
    srvCpu = srv0 !== null && srv1 !== null ? ((srv1 - srv0) / seconds) * 100 : null;
    otherCpu = all0 !== null && all1 !== null ? Math.max(0, ((all1 - all0) / seconds) * 100 - genCpu - (srvCpu ?? 0)) : null;
    stopping = true;
  } else {
    measureStart = performance.now();
  }
  await finished;
  if (seeding) seconds = (performance.now() - measureStart) / 1000;
  await transport.close();

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
    serverCpuUsPerCall: srvCpu === null || calls === 0 ? null : ((srvCpu / 100) * seconds * 1e6) / calls,
    generatorCpuPct: genCpu,
    otherCpuPct: otherCpu,
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

/**
 * What the reserve check costs a mint. Two service processes side
 * by side, ABBA runs of MintUsdc at one concurrency: "off" has no reserve set
 * (supply still counted, not capped), "on" has a reserve far above anything
 * the run mints, so every mint is checked and passes. On PostgreSQL each side
 * has its own fresh database: the reserve is one row per database, the hot
 * spot every mint locks.
 */
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { MintServiceClient } from "../gen/usdc/mint/v1/mint.js";
import type { LoadResult, LoadSpec } from "./load-gen.js";
import { startServer, type Launch, type ServerProcess } from "./servers.js";

export interface ReserveSideRuns {
  readonly off: LoadResult[];
  readonly on: LoadResult[];
}

const PG_SERVER = process.env.BENCH_PG_SERVER ?? "postgres://postgres@127.0.0.1:5432";

async function freshDatabase(name: string): Promise<string> {
  const c = new pg.Client({ connectionString: `${PG_SERVER}/postgres` });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${name}`);
  } finally {
    await c.end();
  }
  return `${PG_SERVER}/${name}`;
}

function setReserve(server: ServerProcess): Promise<void> {
  const client = new MintServiceClient(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  return new Promise<void>((resolve, reject) => {
    client.setReserve({ amount: "1" + "0".repeat(24), attestationRef: "bench" }, (err) => {
      client.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Runs `pairs` ABBA pairs of mint load against the two sides; `load` runs one
 * measured window (the bench's generator) against a server.
 */
export async function runReserveComparison(opts: {
  readonly store: "memory" | "postgres";
  readonly launch: Launch;
  readonly pairs: number;
  readonly spec: (server: ServerProcess) => LoadSpec;
  readonly load: (spec: LoadSpec) => Promise<LoadResult>;
  readonly log: (line: string) => void;
}): Promise<ReserveSideRuns> {
  const envOf = async (side: "off" | "on"): Promise<Record<string, string>> =>
    opts.store === "memory" ? {} : { MINT_STORE: await freshDatabase(`usdc_bench_reserve_${side}`), MINT_PG_POOL_SIZE: "10" };
  const off = await startServer("service", { launch: opts.launch, env: await envOf("off") });
  const on = await startServer("service", { launch: opts.launch, env: await envOf("on") });
  try {
    await setReserve(on);
    const runs: ReserveSideRuns = { off: [], on: [] };
    for (let i = 0; i < opts.pairs; i++) {
      const order: ("off" | "on")[] = i % 2 === 0 ? ["off", "on"] : ["on", "off"];
      for (const side of order) runs[side].push(await opts.load(opts.spec(side === "off" ? off : on)));
      const a = runs.off[i] as LoadResult;
      const b = runs.on[i] as LoadResult;
      opts.log(
        `  reserve ${opts.store} pair ${i + 1}/${opts.pairs}: off ${a.rps.toFixed(0)}/s ${a.serverCpuUsPerCall?.toFixed(1) ?? "?"} µs/call, ` +
          `on ${b.rps.toFixed(0)}/s ${b.serverCpuUsPerCall?.toFixed(1) ?? "?"} µs/call${a.errors + b.errors > 0 ? ` ERRORS ${JSON.stringify({ ...a.errorKinds, ...b.errorKinds })}` : ""}`,
      );
    }
    return runs;
  } finally {
    await Promise.all([off.stop(), on.stop()]);
  }
}

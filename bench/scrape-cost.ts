/**
 * What one metrics scrape costs with many idempotency keys in PostgreSQL: the
 * service's own registry (every series, the pool gauges, the key gauge) read
 * as a scrape reads it, at `--keys` keys (default 1 000 000) and at none, with
 * the key gauge as the service reads it (PostgreSQL's live-row statistic) and
 * as a `count(*)` over the table (what a scrape cost before). Not a test and
 * not part of `npm run bench`: it takes a minute and a database.
 *
 *   node --import tsx bench/scrape-cost.ts [--keys 1000000] [--scrapes 50]
 */
import { performance } from "node:perf_hooks";
import pg from "pg";
import { openPostgresStores } from "../src/adapters/postgres/index.js";
import { systemClock } from "../src/domain/clock.js";
import { ServiceMetrics } from "../src/observability/metrics.js";
import { grpcMethodsOf } from "../src/transport/grpc/metrics-link.js";
import { MintServiceService } from "../gen/usdc/mint/v1/mint.js";

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? def : Number(process.argv[i + 1]);
};
const KEYS = arg("keys", 1_000_000);
const SCRAPES = arg("scrapes", 50);
const SERVER = process.env.MINT_BENCH_PG_URL ?? "postgres://postgres@127.0.0.1:5432";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function main(): Promise<void> {
  const name = `scrape_cost_${process.pid}`;
  const admin = new pg.Client({ connectionString: `${SERVER}/postgres` });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = `${SERVER}/${name}`;
  try {
    const stores = await openPostgresStores({ url, poolSize: 4, statementTimeoutMs: 600_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 86_400_000, auditJournal: true, clock: systemClock });
    const metricsFor = (keys: () => Promise<number>): ServiceMetrics => {
      // Without Node's default series (their event-loop gauges make a scrape's time noisy); the service's own only.
      const m = new ServiceMetrics({ grpcMethods: grpcMethodsOf(MintServiceService), nodeDefaults: false });
      m.watch({ idempotencyKeys: keys, pgPool: () => stores.poolStats(), lockWaiters: () => 0, callsInFlight: () => 0 });
      return m;
    };
    const estimated = metricsFor(() => (stores.idempotency.estimatedSize?.() ?? stores.idempotency.size()));
    const counted = metricsFor(() => stores.idempotency.size());
    const scrapeMs = async (m: ServiceMetrics, n: number): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await m.text();
        times.push(performance.now() - t0);
      }
      return median(times);
    };
    const readMs = async (read: () => Promise<number>, n: number): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await read();
        times.push(performance.now() - t0);
      }
      return median(times);
    };
    const report = async (label: string): Promise<void> => {
      await scrapeMs(estimated, 10); // warm-up
      const estRead = await readMs(() => (stores.idempotency.estimatedSize?.() ?? stores.idempotency.size()), SCRAPES);
      const cntRead = await readMs(() => stores.idempotency.size(), Math.max(3, Math.min(SCRAPES, 9)));
      console.log(`${label}: key gauge read: estimate ${estRead.toFixed(2)} ms, count(*) ${cntRead.toFixed(2)} ms (median)`);
      const est = await scrapeMs(estimated, SCRAPES);
      const cnt = await scrapeMs(counted, Math.max(3, Math.min(SCRAPES, 9)));
      const gauge = (await estimated.text()).match(/^usdc_mint_idempotency_keys (\d+)$/m)?.[1];
      console.log(`${label}: scrape with the estimate ${est.toFixed(2)} ms (gauge ${gauge}); with count(*) ${cnt.toFixed(2)} ms (median)`);
    };
    await report("0 keys");
    const t0 = performance.now();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(
      `INSERT INTO idempotency_keys (scope, key, fingerprint, result, state, expires_at)
       SELECT 'mint', 'bench-' || g, 'f', '{}'::jsonb, 'completed', now() + interval '1 day' FROM generate_series(1, $1::int) g`,
      [KEYS],
    );
    await c.end();
    console.log(`inserted ${KEYS} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    // The statistic reaches other sessions once the inserting session has reported it (at its end).
    await new Promise((r) => setTimeout(r, 1_500));
    await report(`${KEYS} keys`);
    await stores.close();
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

void main();

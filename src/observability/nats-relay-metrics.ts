/**
 * The JetStream relay's series, read from the relay when Prometheus scrapes:
 * - `usdc_mint_nats_relay_published_total`, `..._publish_failures_total`,
 *   `..._duplicates_total` (JetStream already held the event),
 *   `..._events_missed_total` (the feed deleted events before they were published);
 * - `usdc_mint_nats_relay_lag_events` and `..._lag_seconds` (events in the
 *   feed not yet in the stream, the age of the oldest; 0 on a standby);
 * - `usdc_mint_nats_relay_active` (1 on the one replica that publishes) and
 *   `usdc_mint_nats_relay_up` (0 while JetStream cannot be reached).
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { RelayStatus } from "../workers/nats-relay.js";

export function registerNatsRelayMetrics(registry: Registry, status: () => RelayStatus): void {
  const counter = (name: string, help: string, read: (s: RelayStatus) => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        // The relay counts (its counts never decrease); the series shows them.
        this.reset();
        this.inc(read(status()));
      },
    });
  };
  const gauge = (name: string, help: string, read: (s: RelayStatus) => number): void => {
    new Gauge({ name, help, registers: [registry], collect() { this.set(read(status())); } });
  };
  counter("usdc_mint_nats_relay_published_total", "Ledger events the relay published to JetStream (acknowledged, stored once)", (s) => s.published);
  counter("usdc_mint_nats_relay_publish_failures_total", "Publishes to JetStream that failed (timeout, refused, connection lost); the relay retries from the stream's tail", (s) => s.failed);
  counter("usdc_mint_nats_relay_duplicates_total", "Publishes JetStream acknowledged as duplicates (the event was already in the stream)", (s) => s.duplicates);
  counter("usdc_mint_nats_relay_events_missed_total", "Times the event feed had deleted events (MINT_WATCH_RETENTION) before the relay published them", (s) => s.missed);
  gauge("usdc_mint_nats_relay_lag_events", "Events in the ledger's feed not yet in the JetStream stream (active relay; 0 on a standby)", (s) => s.lagEvents);
  gauge("usdc_mint_nats_relay_lag_seconds", "Age of the oldest event not yet in the JetStream stream, in seconds (0 when caught up or on a standby)", (s) => s.lagSeconds);
  gauge("usdc_mint_nats_relay_active", "1 when this replica holds the stream's relay lock (one replica publishes)", (s) => (s.active ? 1 : 0));
  gauge("usdc_mint_nats_relay_up", "0 while the relay cannot reach JetStream (it retries), else 1", (s) => (s.state === "unavailable" ? 0 : 1));
}

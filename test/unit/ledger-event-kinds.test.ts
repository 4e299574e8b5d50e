/**
 * The event kinds are written three times: the proto enum, the domain's list
 * and the SDK's (the SDK cannot import the server). They must name the same
 * kinds in the same order, or a filter or a decoded event would disagree.
 */
import { describe, expect, it } from "vitest";
import { LedgerEventKind } from "../../gen/usdc/mint/v1/mint.js";
import { LEDGER_EVENT_KINDS as SDK_KINDS } from "../../packages/client/src/watch.js";
import { LEDGER_EVENT_KINDS as DOMAIN_KINDS } from "../../src/domain/ledger-events.js";

const PREFIX = "LEDGER_EVENT_KIND_";
const protoKinds = Object.entries(LedgerEventKind)
  .filter((e): e is [string, number] => typeof e[1] === "number" && e[1] > 0)
  .sort((x, y) => x[1] - y[1])
  .map(([name]) => name.slice(PREFIX.length));

describe("ledger event kinds", () => {
  it("the domain lists the proto's kinds, in the proto's order", () => {
    expect(protoKinds.length).toBeGreaterThan(0);
    expect([...DOMAIN_KINDS]).toEqual(protoKinds);
  });

  it("the SDK lists the same kinds as the domain", () => {
    expect([...SDK_KINDS]).toEqual([...DOMAIN_KINDS]);
  });
});

/**
 * What a new user following the README on one server meets: the grpcurl
 * walk-through, the SDK example and the mintctl example each use idempotency
 * keys of their own (a key shared with another request would end in
 * IDEMPOTENCY_KEY_REUSED), and the private keys the certificate recipe
 * writes under secrets/ are kept out of git.
 */
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { blocks, readPage, ROOT_DIR } from "../support/doc-snippets.js";

describe("README examples on one server", () => {
  const readme = readPage("README.md");
  const all = blocks(readme);
  const text = (pick: (b: (typeof all)[number]) => boolean): string => all.filter(pick).map((b) => b.body).join("\n");
  const keys = (s: string, re: RegExp): Set<string> => new Set([...s.matchAll(re)].map((m) => m[1] as string));

  it("the grpcurl walk-through, the SDK example and the mintctl example use idempotency keys that do not collide", () => {
    const sets = {
      grpcurl: keys(text((b) => b.lang === "sh" && b.body.includes("grpcurl ")), /"idempotency_key":"([^"]+)"/g),
      sdk: keys(text((b) => b.lang === "ts" && b.body.includes("createMintClient(")), /idempotencyKey: "([^"]+)"/g),
      mintctl: keys(text((b) => b.lang === "sh" && b.body.includes("mintctl mint ")), /--idempotency-key (\S+)/g),
    };
    for (const [name, s] of Object.entries(sets)) expect(s.size, `${name} keys`).toBeGreaterThan(0);
    const names = Object.keys(sets) as (keyof typeof sets)[];
    for (const a of names) {
      for (const b of names) {
        if (a >= b) continue;
        expect([...sets[a]].filter((k) => sets[b].has(k)), `${a} and ${b} share keys`).toEqual([]);
      }
    }
  });

  it("keeps secrets/ (where the certificate recipe writes private keys) out of git", () => {
    expect(readPage("docs/security.md")).toContain("mkdir -p secrets && cd secrets");
    // check-ignore exits 0 and prints the paths when they are ignored, 1 when they are not.
    const out = execFileSync("git", ["check-ignore", "--no-index", "secrets/server.key", "secrets/auth.yaml"], { cwd: ROOT_DIR, encoding: "utf8" });
    expect(out.split("\n").filter(Boolean)).toEqual(["secrets/server.key", "secrets/auth.yaml"]);
  });
});

/**
 * Every relative link in README.md and docs/ points at a file of the
 * repository, and every `#anchor` at a heading of the page it names (GitHub's
 * slugs); docs/README.md, the index, links every page of docs/.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { docPages, readPage, ROOT_DIR } from "../support/doc-snippets.js";

/** The text of a page outside fenced code blocks (a `#` line in a shell block is no heading). */
function prose(markdown: string): string {
  return markdown.replace(/^```[^\n]*\n[\s\S]*?^```\s*$/gm, "");
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2, ... */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const m of prose(markdown).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = (m[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, "$1");
    const base = text
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, "")
      .replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** Markdown links `[text](target)` outside code, absolute URLs left out. */
function links(markdown: string): string[] {
  const text = prose(markdown).replace(/`[^`\n]*`/g, "");
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1] as string).filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

const PAGES = docPages();

describe("links in README.md and docs/", () => {
  it.each(PAGES)("%s: every relative link and anchor resolves", (page) => {
    const text = readPage(page);
    const broken: string[] = [];
    for (const target of links(text)) {
      const [path, anchor] = target.split("#", 2) as [string, string | undefined];
      const file = path === "" ? join(ROOT_DIR, page) : normalize(join(ROOT_DIR, dirname(page), path));
      if (relative(ROOT_DIR, file).startsWith("..") || !existsSync(file)) {
        broken.push(`${target}: no such file in the repository`);
        continue;
      }
      if (anchor === undefined) continue;
      if (statSync(file).isDirectory() || !file.endsWith(".md")) {
        broken.push(`${target}: an anchor into a file that is not Markdown`);
        continue;
      }
      if (!anchors(readPage(relative(ROOT_DIR, file))).has(anchor)) broken.push(`${target}: no heading #${anchor}`);
    }
    expect(broken).toEqual([]);
  });

  it("docs/README.md indexes every page of docs/, and the README links the index", () => {
    const index = new Set(links(readPage("docs/README.md")).map((t) => t.split("#")[0]));
    const pages = PAGES.filter((p) => p.startsWith("docs/") && p !== "docs/README.md").map((p) => p.slice("docs/".length));
    expect(pages.filter((p) => !index.has(p))).toEqual([]);
    expect(links(readPage("README.md"))).toContain("docs/README.md");
  });

  it("the anchor rules match GitHub's on the headings these pages use", () => {
    const a = anchors("# Audit journal\n## The hash's canonical encoding\n## No global queue: unsealed records and the sealer (PostgreSQL)\n## Large mints: M-of-N approval\n## 2. Call it with grpcurl\n## Tests\n## Tests\n```sh\n# not a heading\n```\n");
    expect([...a]).toEqual(["audit-journal", "the-hashs-canonical-encoding", "no-global-queue-unsealed-records-and-the-sealer-postgresql", "large-mints-m-of-n-approval", "2-call-it-with-grpcurl", "tests", "tests-1"]);
  });
});

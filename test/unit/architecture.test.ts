/**
 * STYLE habit 1: the core (src/domain) imports no transport, storage or
 * logging, and never reads the environment. The sources are parsed with the
 * TypeScript compiler, so comments and strings do not count and every kind of
 * import does (static, re-export, `import type`, dynamic `import()`,
 * `require`, `import x = require()`, `typeof import()`).
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOMAIN_DIR = path.join(ROOT, "src", "domain");

/** Bare specifiers (and their subpaths) the core must never import. */
const FORBIDDEN_PACKAGES = ["@grpc/grpc-js", "@grpc/proto-loader", "pg", "ioredis", "pino", "prom-client", "process", "node:process"];

function domainFiles(dir = DOMAIN_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return domainFiles(full);
    return /\.(ts|mts|cts|js|mjs)$/.test(e.name) ? [full] : [];
  });
}

/** Every module specifier the source refers to. */
function moduleSpecifiers(source: ts.SourceFile): string[] {
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      out.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      out.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && (node.expression.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(node.expression) && node.expression.text === "require"))) {
      const arg = node.arguments[0];
      if (arg !== undefined && ts.isStringLiteralLike(arg)) out.push(arg.text);
      else if (arg !== undefined) out.push("<computed>");
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push(node.argument.literal.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Places where the code uses the global `process` (process.env, process["env"], const { env } = process, ...). */
function processReferences(source: ts.SourceFile): string[] {
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isIdentifier(node) && node.text === "process") {
      const parent = node.parent;
      // `foo.process` and `{ process: 1 }` name a property, not the global.
      const isPropertyName =
        (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
        (ts.isPropertyAssignment(parent) && parent.name === node) ||
        (ts.isPropertyDeclaration(parent) && parent.name === node) ||
        (ts.isPropertySignature(parent) && parent.name === node) ||
        (ts.isMethodDeclaration(parent) && parent.name === node);
      if (!isPropertyName) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
        out.push(`line ${line + 1}: ${parent.getText(source).slice(0, 60)}`);
      }
    }
    if (ts.isPropertyAccessExpression(node) && node.name.text === "env" && node.expression.getText(source).endsWith("process")) {
      out.push(`process.env: ${node.getText(source)}`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The rule, as one function so it can be tested on sources that break it. */
function violations(fileName: string, text: string): string[] {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const problems: string[] = [];
  for (const spec of moduleSpecifiers(source)) {
    if (spec === "<computed>") {
      problems.push("imports a computed module name");
      continue;
    }
    if (FORBIDDEN_PACKAGES.some((p) => spec === p || spec.startsWith(p + "/"))) problems.push(`imports ${spec}`);
    if (/(^|\/)gen(\/|$)/.test(spec)) problems.push(`imports generated code ${spec}`);
    if (/(^|\/)(adapters|transport)(\/|$)/.test(spec)) problems.push(`imports ${spec}`);
    if (spec.startsWith(".")) {
      // Relative imports must stay inside src/domain.
      const target = path.resolve(path.dirname(fileName), spec);
      const rel = path.relative(DOMAIN_DIR, target);
      if (rel.startsWith("..") || path.isAbsolute(rel)) problems.push(`imports ${spec}, outside src/domain`);
    }
  }
  for (const ref of processReferences(source)) problems.push(`uses the global process (${ref})`);
  return problems;
}

describe("architecture: src/domain imports no transport or storage (STYLE habit 1)", () => {
  const files = domainFiles();

  it("finds the domain sources", () => {
    const names = files.map((f) => path.basename(f));
    expect(names).toEqual(expect.arrayContaining(["money.ts", "mint-core.ts", "ports.ts", "account-locks.ts"]));
  });

  it.each(files.map((f) => [path.relative(ROOT, f), f]))("%s imports nothing forbidden and never reads process.env", (_rel, file) => {
    expect(violations(file, readFileSync(file, "utf8"))).toEqual([]);
  });

  describe("the checker itself catches each kind of violation", () => {
    const file = path.join(DOMAIN_DIR, "probe.ts");
    it.each([
      [`import { Server } from "@grpc/grpc-js";`, "imports @grpc/grpc-js"],
      [`import type { ServiceError } from "@grpc/grpc-js";`, "imports @grpc/grpc-js"],
      [`import * as grpc from "@grpc/grpc-js/build/src/index.js";`, "imports @grpc/grpc-js/build/src/index.js"],
      [`import { MintServiceService } from "../../gen/usdc/mint/v1/mint.js";`, "imports generated code"],
      [`import pg from "pg";`, "imports pg"],
      [`import { Pool } from "pg/lib/index.js";`, "imports pg/lib/index.js"],
      [`import Redis from "ioredis";`, "imports ioredis"],
      [`import pino from "pino";`, "imports pino"],
      [`import { MemoryLedgerStore } from "../adapters/memory/memory-ledger-store.js";`, "imports ../adapters/memory/memory-ledger-store.js"],
      [`export { createServer } from "../transport/grpc/server.js";`, "imports ../transport/grpc/server.js"],
      [`import { loadConfig } from "../config.js";`, "outside src/domain"],
      [`const m = await import("ioredis");`, "imports ioredis"],
      [`const name = "pg"; const m = await import(name);`, "computed module name"],
      [`const pg = require("pg");`, "imports pg"],
      [`import pg = require("pg");`, "imports pg"],
      [`type P = typeof import("pino");`, "imports pino"],
      [`import { env } from "node:process";`, "imports node:process"],
      [`export const url = process.env.MINT_STORE;`, "uses the global process"],
      [`export const url = process["env"]["MINT_STORE"];`, "uses the global process"],
      [`const { env } = process;`, "uses the global process"],
      [`export const url = globalThis.process.env.X;`, "process.env"],
    ])("%s", (source, expected) => {
      const found = violations(file, source);
      expect(found.join("; ")).toContain(expected);
    });

    it("ignores comments, strings and property names", () => {
      const clean = [
        `// never import "@grpc/grpc-js" or read process.env here`,
        `/** import pg from "pg"; */`,
        `export const doc = "process.env is read by src/config.ts; see ../adapters";`,
        `export const o = { process: 1 }; export const p = o.process;`,
        `import { invalid } from "./errors.js";`,
        `import { Mutex } from "async-mutex";`,
        `import { createHmac } from "node:crypto";`,
      ].join("\n");
      expect(violations(file, clean)).toEqual([]);
    });
  });
});

/** Every source file below `dir`. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return /\.(ts|mts|cts)$/.test(e.name) ? [full] : [];
  });
}

const ADAPTERS_DIR = path.join(ROOT, "src", "adapters");

/** The adapter (src/adapters/<name>) a file belongs to, or null. */
function adapterOf(file: string): string | null {
  const rel = path.relative(ADAPTERS_DIR, file);
  if (rel.startsWith("..") || path.isAbsolute(rel)) return null;
  return rel.split(path.sep)[0] ?? null;
}

/** Imports of one adapter's file that reach into another adapter. */
function crossAdapterImports(fileName: string, text: string): string[] {
  const own = adapterOf(fileName);
  if (own === null) return [];
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  return moduleSpecifiers(source)
    .filter((spec) => spec.startsWith("."))
    .filter((spec) => {
      const other = adapterOf(path.resolve(path.dirname(fileName), spec));
      return other !== null && other !== own;
    });
}

describe("architecture: no adapter imports another adapter's code", () => {
  const files = sourceFiles(ADAPTERS_DIR);

  it("finds the adapters", () => {
    const adapters = new Set(files.map((f) => adapterOf(f)));
    expect([...adapters]).toEqual(expect.arrayContaining(["memory", "postgres", "redis"]));
  });

  it.each(files.map((f) => [path.relative(ROOT, f), f]))("%s", (_rel, file) => {
    expect(crossAdapterImports(file, readFileSync(file, "utf8"))).toEqual([]);
  });

  it("the checker catches an import of another adapter", () => {
    const file = path.join(ADAPTERS_DIR, "postgres", "probe.ts");
    expect(crossAdapterImports(file, `import { MemoryLedgerStore } from "../memory/memory-ledger-store.js";`)).toEqual(["../memory/memory-ledger-store.js"]);
    expect(crossAdapterImports(file, `import { x } from "./pg-database.js"; import { y } from "../../domain/model.js";`)).toEqual([]);
  });
});

/**
 * Every grpcurl, mintctl and SDK snippet of README.md and docs/ runs against a
 * real server (in-process on 127.0.0.1:0, one per page, restarted where a page
 * says `<!-- test: server ... -->`), top to bottom, as a reader would run it;
 * and every TypeScript snippet compiles under `tsc --strict` against the SDK.
 * How a page steers its snippets: test/support/doc-snippets.ts.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import { ServerReflectionClient } from "../../gen/grpc/reflection/v1/reflection.js";
import { runCli } from "../../packages/mintctl/src/run.js";
import { ERROR_DOMAIN } from "../../src/transport/grpc/status.js";
import { blocks, DOC_ADDRESS, docPages, parseGrpcurl, PLACEHOLDER_MINT_ID, readPage, Reflection, ROOT_DIR, runGrpcurl, shellLines, shellWords, type Block } from "../support/doc-snippets.js";
import { decodeError, startTestServer, type TestServer } from "../support/test-server.js";

const WORK = join(ROOT_DIR, "test/.tmp", `doc-snippets-${process.pid}`);
mkdirSync(WORK, { recursive: true });
afterAll(() => rmSync(WORK, { recursive: true, force: true }));

const MINT_ID = /\bmint_[0-9A-Z]{26}\b/;

/** What ran, for the assertions a page's prose makes. */
interface Ran {
  readonly page: string;
  readonly line: string;
  readonly json?: Record<string, unknown>;
  readonly out?: string;
}

/** One page's session: its server, its directory, the last mint id it saw. */
class Session {
  server: TestServer | undefined;
  reflection: Reflection | undefined;
  channel: grpc.Client | undefined;
  lastMintId = "";
  /** Shell variables a `test: bash NAME…` block set, expanded in later command lines. */
  readonly vars: Record<string, string> = {};
  /** `export MINTCTL_…=` lines of the page (the address is always this page's server). */
  readonly mintctlEnv: Record<string, string> = {};
  readonly ran: Ran[] = [];
  readonly dir: string;

  constructor(readonly page: string) {
    this.dir = join(WORK, page.replace(/[/.]/g, "_"));
    mkdirSync(this.dir, { recursive: true });
  }

  async start(env: Record<string, string>): Promise<void> {
    await this.stop();
    this.server = await startTestServer(env);
    this.reflection = new Reflection(new ServerReflectionClient(this.server.address, grpc.credentials.createInsecure()));
    this.channel = new grpc.Client(this.server.address, grpc.credentials.createInsecure());
  }

  async stop(): Promise<void> {
    this.channel?.close();
    await this.server?.stop();
    this.server = undefined;
  }

  where(b: Block, line: string): string {
    return `${this.page}:${b.line}: ${line}`;
  }

  /** Runs a setup block with bash in the page's directory and keeps the named variables. */
  bash(b: Block, names: string[]): void {
    const capture = names.map((n) => `printf '%s=%s\\n' ${n} "\${${n}:-}"`).join("\n");
    const out = execFileSync("bash", ["-euo", "pipefail", "-c", `${b.body}\n${capture}`], { cwd: this.dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    for (const n of names) {
      const v = new RegExp(`^${n}=(.*)$`, "m").exec(out)?.[1];
      expect(v, `${this.page}:${b.line} sets ${n}`).toBeTruthy();
      this.vars[n] = v as string;
    }
  }

  /** `$NAME` and `${NAME}` of the variables a setup block set; mint_01KB... as the last mint id. */
  expand(line: string): string {
    let out = line.split(PLACEHOLDER_MINT_ID).join(this.lastMintId);
    for (const [n, v] of Object.entries(this.vars)) out = out.split(`\${${n}}`).join(v).split(`$${n}`).join(v);
    return out;
  }

  /** A file a command names, relative to the page's directory (where its setup ran). */
  file(name: string): Buffer {
    return readFileSync(join(this.dir, name));
  }

  async grpcurl(b: Block, line: string): Promise<void> {
    const cmd = parseGrpcurl(this.expand(line));
    let reflection = this.reflection as Reflection;
    let channel = this.channel as grpc.Client;
    if (cmd.tls.cacert !== undefined) {
      // TLS to the name the server certificate carries, at this server's address.
      const [host] = cmd.address.split(":") as [string];
      const creds = grpc.credentials.createSsl(this.file(cmd.tls.cacert), cmd.tls.key === undefined ? null : this.file(cmd.tls.key), cmd.tls.cert === undefined ? null : this.file(cmd.tls.cert));
      const options = { "grpc.ssl_target_name_override": host, "grpc.default_authority": cmd.address };
      const address = (this.server as TestServer).address;
      const headers = new grpc.Metadata();
      for (const [k, v] of Object.entries(cmd.headers)) headers.set(k, v);
      reflection = new Reflection(new ServerReflectionClient(address, creds, options), headers);
      channel = new grpc.Client(address, creds, options);
    } else expect(cmd.address, this.where(b, line)).toBe(DOC_ADDRESS);
    let r;
    try {
      r = await runGrpcurl(cmd, reflection, channel);
    } finally {
      if (channel !== this.channel) channel.close();
    }
    if (r.kind === "list") expect(r.services, this.where(b, line)).toContain("usdc.mint.v1.MintService");
    if (r.kind !== "call") return;
    if (cmd.formatError) {
      expect(r.err, `${this.where(b, line)} must fail`).not.toBeNull();
      const e = decodeError(r.err);
      expect(e.domain, this.where(b, line)).toBe(ERROR_DOMAIN);
      expect(e.reason, this.where(b, line)).not.toBe("");
      return;
    }
    expect(r.err?.details ?? null, this.where(b, line)).toBeNull();
    this.ran.push({ page: this.page, line, json: r.json });
    if (r.method === "MintUsdc") this.lastMintId = String((r.json?.mint as { mintId: string }).mintId);
  }

  async mintctl(b: Block, line: string): Promise<void> {
    const { words, comment } = shellWords(this.expand(line));
    const expected = Number(/^exit (\d+)\b/.exec(comment)?.[1] ?? 0);
    // A file the page wrote (test: file NAME) is found where the page's commands run;
    // --address names the host a reader has, this page's server stands in for it.
    const address = (this.server as TestServer).address;
    const args = words.slice(1).map((w, i, all) => (all[i - 1] === "--address" ? address : existsSync(join(this.dir, w)) ? join(this.dir, w) : w));
    let out = "";
    let err = "";
    const code = await runCli(args, {
      out: (s) => (out += s),
      err: (s) => (err += s),
      env: { ...this.mintctlEnv, MINTCTL_ADDRESS: address },
      stderrIsTTY: false,
    });
    expect({ code, err: code === expected ? "" : err }, this.where(b, line)).toEqual({ code: expected, err: "" });
    this.ran.push({ page: this.page, line, out });
    if (args[0] === "mint" && !args.includes("--from-csv")) this.lastMintId = MINT_ID.exec(out)?.[0] ?? this.lastMintId;
  }

  /** `export MINTCTL_X=value` (quotes and `$VAR` as a shell reads them); MINTCTL_ADDRESS stays this page's server. */
  exportMintctl(line: string): void {
    const m = /^export (\w+)=(?:"([^"]*)"|'([^']*)'|(\S*))/.exec(this.expand(line)) as RegExpExecArray;
    if (m[1] !== "MINTCTL_ADDRESS") this.mintctlEnv[m[1] as string] = m[2] ?? m[3] ?? m[4] ?? "";
  }

  async typescript(b: Block, index: number): Promise<void> {
    const client = JSON.stringify(join(ROOT_DIR, "packages/client/src/index.js"));
    const compat = JSON.stringify(join(ROOT_DIR, "src/client/index.js"));
    const source = b.body.split('"@usdc-mint/client"').join(client).split('"usdc-mint-service/client"').join(compat).split(DOC_ADDRESS).join((this.server as TestServer).address);
    const file = join(this.dir, `snippet-${index}.ts`);
    writeFileSync(file, `${source}\nexport {};\n`);
    await import(file);
    this.ran.push({ page: this.page, line: `ts block at line ${b.line}` });
  }
}

/** Runs every runnable snippet of one page; returns what ran. */
async function runPage(page: string): Promise<Ran[]> {
  const s = new Session(page);
  try {
    await s.start({});
    let index = 0;
    for (const b of blocks(readPage(page))) {
      const d = b.directive ?? "";
      if (d.startsWith("skip")) continue;
      if (d.startsWith("server")) {
        // A value naming a file the page wrote is that file's path.
        const env = Object.fromEntries(
          d
            .split(/\s+/)
            .slice(1)
            .map((kv) => kv.split("=", 2) as [string, string])
            .map(([k, v]) => [k, existsSync(join(s.dir, v)) ? join(s.dir, v) : v]),
        );
        await s.start(env);
      }
      if (d.startsWith("bash")) {
        s.bash(b, d.split(/\s+/).slice(1));
        continue;
      }
      if (d.startsWith("file ")) {
        writeFileSync(join(s.dir, d.slice(5).trim()), `${b.body}\n`);
        continue;
      }
      if (b.lang === "sh") {
        for (const line of shellLines(b.body)) {
          if (line.startsWith("grpcurl ")) await s.grpcurl(b, line);
          else if (line.startsWith("mintctl ")) await s.mintctl(b, line);
          else if (/^export MINTCTL_\w+=/.test(line)) s.exportMintctl(line);
        }
      } else if (b.lang === "ts") await s.typescript(b, ++index);
    }
    return s.ran;
  } finally {
    await s.stop();
  }
}

/** Pages with something to run. */
const RUNNABLE = docPages().filter((p) => blocks(readPage(p)).some((b) => (b.lang === "ts" || /^(grpcurl|mintctl) /m.test(b.body)) && !(b.directive ?? "").startsWith("skip")));

describe("doc snippets run against a real server", () => {
  it("the pages a reader starts from have snippets", () => {
    expect(RUNNABLE).toEqual(expect.arrayContaining(["README.md", "docs/getting-started.md", "docs/sdk.md", "docs/mintctl.md", "docs/controls.md"]));
  });

  it("no grpcurl or mintctl line hides in a block the test does not run", () => {
    const hidden = docPages().flatMap((page) =>
      blocks(readPage(page))
        .filter((b) => b.lang !== "sh" && /^(grpcurl|mintctl) /m.test(b.body))
        .map((b) => `${page}:${b.line} (\`\`\`${b.lang})`),
    );
    expect(hidden).toEqual([]);
    const unexplained = docPages().flatMap((page) => blocks(readPage(page)).filter((b) => b.directive === "skip").map((b) => `${page}:${b.line}`));
    expect(unexplained, "a skipped block says what runs it instead").toEqual([]);
  });

  it.each(RUNNABLE)("%s", { timeout: 120_000 }, async (page) => {
    const ran = await runPage(page);
    expect(ran.length).toBeGreaterThan(0);
    if (page === "README.md") {
      // The first mint applies, the same key replays it; the later steps' keys did not collide with it.
      const mints = ran.filter((r) => r.line.includes("/MintUsdc"));
      expect(mints.map((r) => r.json?.replayed ?? false)).toEqual([false, true]);
      expect(ran.find((r) => r.line.startsWith("mintctl balance alice"))?.out).toMatch(/^balance +70\.5$/m);
      expect(ran.some((r) => r.line.startsWith("ts block"))).toBe(true);
    }
    if (page === "docs/getting-started.md") {
      // What the walk-through says it shows.
      const remint = ran.find((r) => r.line.includes("-emit-defaults"));
      expect(remint?.json?.replayed).toBe(false);
      const balance = ran.find((r) => r.line.includes("/GetBalance"));
      expect(balance?.json?.balance).toBe("75.5");
      const reconciled = ran.find((r) => r.line.includes("/ReconcileMint"));
      expect((reconciled?.json?.mint as { status: string }).status).toBe("MINT_STATUS_REVERSED");
    }
    if (page === "docs/security.md") {
      // The mTLS mint (payments-api) and the token's read (ops-console) reached the TLS server as their principals.
      expect(ran.find((r) => r.line.includes("balance treasury:ops"))?.out).toMatch(/^balance +15$/m);
    }
    if (page === "docs/mintctl.md") {
      const balance = ran.find((r) => r.line.startsWith("mintctl balance alice"));
      expect(balance?.out).toMatch(/^balance +75\.5$/m);
    }
  });
});

describe("TypeScript snippets compile under tsc --strict against the SDK", () => {
  it("every ts block of README.md and docs/", { timeout: 180_000 }, () => {
    const dir = join(WORK, "tsc");
    mkdirSync(dir, { recursive: true });
    const files: string[] = [];
    for (const page of docPages()) {
      blocks(readPage(page))
        .filter((b) => b.lang === "ts")
        .forEach((b) => {
          const file = join(dir, `${page.replace(/[/.]/g, "_")}-${b.line}.ts`);
          writeFileSync(file, `${b.body}\nexport {};\n`);
          files.push(file);
        });
    }
    expect(files.length).toBeGreaterThan(0);
    const program = ts.createProgram(files, {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ["node"],
      skipLibCheck: true,
      paths: { "@usdc-mint/client": [join(ROOT_DIR, "packages/client/src/index.ts")], "usdc-mint-service/client": [join(ROOT_DIR, "src/client/index.ts")] },
    });
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
    expect(diagnostics).toEqual([]);
  });
});

/**
 * Reads the runnable snippets out of the Markdown docs and runs them the way
 * a reader would: grpcurl lines through server reflection (no generated code,
 * JSON in and JSON out, as grpcurl does), mintctl lines through the real CLI,
 * TypeScript blocks through the SDK. Everything a page shows runs against one
 * server, top to bottom, so a page's keys and ids must fit together.
 *
 * A page steers its snippets with HTML comments right before a fence:
 * - `<!-- test: server K=V ... -->` restarts the page's server with these settings;
 * - `<!-- test: file NAME -->` writes the block to NAME in the page's directory
 *   (mintctl arguments naming NAME get its path);
 * - `<!-- test: skip WHY -->` does not run the block (WHY says what runs it instead).
 * In a shell block, `mint_01KB...` stands for the last mint id a MintUsdc
 * (grpcurl) or `mintctl mint` answered; a mintctl line whose comment starts
 * `# exit N` must exit N (otherwise 0); a grpcurl line with `-format-error`
 * must fail with our ErrorInfo (otherwise succeed).
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { createFileRegistry, fromBinary, fromJson, toBinary, toJson, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { ServerReflectionClient, type ServerReflectionResponse } from "../../gen/grpc/reflection/v1/reflection.js";

export const ROOT_DIR = new URL("../../", import.meta.url).pathname;
export const PLACEHOLDER_MINT_ID = "mint_01KB...";
export const DOC_ADDRESS = "127.0.0.1:50051";

/** README.md and every Markdown file under docs/, as paths relative to the repository. */
export function docPages(): string[] {
  const pages = ["README.md"];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT_DIR, dir), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".md")) pages.push(p);
    }
  };
  walk("docs");
  return pages;
}

export function readPage(page: string): string {
  return readFileSync(join(ROOT_DIR, page), "utf8");
}

export interface Block {
  readonly lang: string;
  readonly body: string;
  /** The `<!-- test: ... -->` directive right before the fence, without `test:`. */
  readonly directive: string | undefined;
  /** 1-based line of the opening fence. */
  readonly line: number;
}

/** The fenced blocks of a page, in order, with the directive before each. */
export function blocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const out: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i] as string);
    if (open === null) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end] as string)) end++;
    let prev = i - 1;
    while (prev >= 0 && (lines[prev] as string).trim() === "") prev--;
    const d = prev >= 0 ? /^<!--\s*test:\s*(.*?)\s*-->$/.exec((lines[prev] as string).trim()) : null;
    out.push({ lang: open[1] ?? "", body: lines.slice(i + 1, end).join("\n"), directive: d?.[1], line: i + 1 });
    i = end;
  }
  return out;
}

/** The command lines of a shell block, continuation lines joined, comments kept. */
export function shellLines(body: string): string[] {
  return body
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

/** Splits a command line into words and its trailing `# comment` (single and double quotes, no expansions). */
export function shellWords(line: string): { words: string[]; comment: string } {
  const words: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(#.*$)|(\S+)/g;
  let comment = "";
  for (let m = re.exec(line); m !== null; m = re.exec(line)) {
    if (m[3] !== undefined) {
      comment = m[3].slice(1).trim();
      break;
    }
    words.push(m[1] ?? m[2]?.replace(/\\(.)/g, "$1") ?? (m[4] as string));
  }
  return { words, comment };
}

export interface Grpcurl {
  readonly data?: string;
  readonly emitDefaults: boolean;
  readonly formatError: boolean;
  readonly headers: Record<string, string>;
  /** -cacert, -cert, -key: TLS (mutual with the last two). */
  readonly tls: { readonly cacert?: string; readonly cert?: string; readonly key?: string };
  /** -proto given: grpcurl reads the proto files instead of asking reflection. */
  readonly protoFiles: boolean;
  readonly address: string;
  /** After the address: ["list"], ["describe", symbol] or ["pkg.Service/Method"]. */
  readonly verb: string[];
}

/** The grpcurl flags the docs use; any other flag fails the test, so a new one is taught here first. */
export function parseGrpcurl(line: string): Grpcurl {
  const words = shellWords(line).words.slice(1);
  let data: string | undefined;
  let emitDefaults = false;
  let formatError = false;
  const headers: Record<string, string> = {};
  const tls: { cacert?: string; cert?: string; key?: string } = {};
  let protoFiles = false;
  const rest: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    if (w === "-plaintext") continue;
    else if (w === "-emit-defaults") emitDefaults = true;
    else if (w === "-format-error") formatError = true;
    else if (w === "-d") data = words[++i];
    else if (w === "-H") {
      const h = words[++i] as string;
      const colon = h.indexOf(":");
      headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
    } else if (w === "-cacert" || w === "-cert" || w === "-key") tls[w.slice(1) as "cacert" | "cert" | "key"] = words[++i] as string;
    else if (w === "-import-path") i++;
    else if (w === "-proto") {
      protoFiles = true;
      i++;
    }    else if (w.startsWith("-")) throw new Error(`the snippet test does not know grpcurl flag ${w} (in: ${line})`);
    else rest.push(w);
  }
  return { data, emitDefaults, formatError, headers, tls, protoFiles, address: rest[0] as string, verb: rest.slice(1) };
}

/** Asks reflection (v1) what grpcurl asks: services, or the files defining a symbol and all their imports. */
export class Reflection {
  private readonly files = new Map<string, FileDescriptorProto>();
  constructor(
    private readonly client: ServerReflectionClient,
    private readonly metadata = new grpc.Metadata(),
  ) {}

  private ask(req: { listServices?: string; fileContainingSymbol?: string; fileByFilename?: string }): Promise<ServerReflectionResponse> {
    return new Promise((resolve, reject) => {
      const call = this.client.serverReflectionInfo(this.metadata);
      call.once("data", (r: ServerReflectionResponse) => {
        call.end();
        resolve(r);
      });
      call.once("error", reject);
      call.write({ host: "", ...req });
    });
  }

  async services(): Promise<string[]> {
    const r = await this.ask({ listServices: "*" });
    return (r.listServicesResponse?.service ?? []).map((s) => s.name);
  }

  /** The registry of the file defining `symbol` and, transitively, every file it imports. */
  async registryFor(symbol: string) {
    const r = await this.ask({ fileContainingSymbol: symbol });
    if (r.errorResponse !== undefined) throw new Error(`reflection: ${r.errorResponse.errorMessage}`);
    const pending = [...(r.fileDescriptorResponse?.fileDescriptorProto ?? [])];
    while (pending.length > 0) {
      const f = fromBinary(FileDescriptorProtoSchema, pending.pop() as Uint8Array);
      if (this.files.has(f.name)) continue;
      this.files.set(f.name, f);
      for (const dep of f.dependency) {
        if (this.files.has(dep)) continue;
        const d = await this.ask({ fileByFilename: dep });
        pending.push(...(d.fileDescriptorResponse?.fileDescriptorProto ?? []));
      }
    }
    return createFileRegistry({ $typeName: "google.protobuf.FileDescriptorSet", file: [...this.files.values()] } as never);
  }
}

export type GrpcurlResult =
  | { readonly kind: "list"; readonly services: string[] }
  | { readonly kind: "describe" }
  | { readonly kind: "call"; readonly method: string; readonly err: grpc.ServiceError | null; readonly json?: Record<string, unknown> };

/** Runs one parsed grpcurl command on `channel` as grpcurl would (the placeholder already replaced in `data`). */
export async function runGrpcurl(cmd: Grpcurl, reflection: Reflection, channel: grpc.Client): Promise<GrpcurlResult> {
  const [verb, arg] = cmd.verb;
  if (verb === "list") return { kind: "list", services: await reflection.services() };
  if (verb === "describe") {
    await reflection.registryFor(arg as string);
    return { kind: "describe" };
  }
  const [service, methodName] = (verb as string).split("/") as [string, string];
  const registry = cmd.protoFiles ? localRegistry() : await reflection.registryFor(service);
  const method = registry.getService(service)?.methods.find((m) => m.name === methodName) as DescMethod | undefined;
  if (method === undefined) throw new Error(`no method ${verb}`);
  const request = toBinary(method.input, fromJson(method.input, JSON.parse(cmd.data ?? "{}") as JsonValue, { registry }));
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(cmd.headers)) metadata.set(k, v);
  const answer = await new Promise<{ err: grpc.ServiceError | null; bytes?: Buffer }>((resolve) =>
    channel.makeUnaryRequest(
      `/${service}/${methodName}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(request),
      metadata,
      (err, bytes) => resolve({ err, bytes }),
    ),
  );
  if (answer.err !== null) return { kind: "call", method: methodName, err: answer.err };
  const json = toJson(method.output, fromBinary(method.output, answer.bytes as Buffer), { registry, alwaysEmitImplicit: cmd.emitDefaults }) as Record<string, unknown>;
  return { kind: "call", method: methodName, err: null, json };
}

/** What grpcurl builds from `-import-path proto -proto …`: the repository's own descriptor set (buf build of proto/). */
export function localRegistry() {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(join(ROOT_DIR, "descriptors/descriptor.binpb"))));
}

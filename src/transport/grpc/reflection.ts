// gRPC server reflection (grpc.reflection.v1 and v1alpha), so that grpcurl and
// similar tools can list, describe and call our services with no .proto files.
//
// We serve it ourselves instead of using @grpc/reflection because that package
// rebuilds descriptors from a loaded package definition, which drops file
// imports (grpcurl then cannot resolve google.protobuf.Timestamp) and answers
// NOT_FOUND to all_extension_numbers_of_type, which grpcurl treats as fatal.
// Here every answer is a file exactly as `buf build` serialized it, source
// code info (comments) included, plus its transitive imports.
import { readFileSync } from "node:fs";

import * as grpc from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

import {
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  type ServerReflectionServer,
  ServerReflectionService as ServerReflectionV1,
} from "../../../gen/grpc/reflection/v1/reflection.js";
import { ServerReflectionService as ServerReflectionV1Alpha } from "../../../gen/grpc/reflection/v1alpha/reflection.js";

/** The names under which reflection itself is served; list them in `services`. */
export const REFLECTION_SERVICES = [
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
] as const;

/**
 * Where `buf build` output lives, relative to this module. The same relative
 * path works from source (src/transport/grpc -> descriptors/) and from the
 * build (dist/src/transport/grpc -> dist/descriptors/, copied by
 * scripts/copy-assets.mjs). It is not under gen/, because `buf generate`
 * (clean: true) empties gen/ and only `buf build` writes the set.
 * The second entry covers a dist/ built without the copy step.
 */
const DESCRIPTOR_SET_CANDIDATES = ["../../../descriptors/descriptor.binpb", "../../../../descriptors/descriptor.binpb"] as const;

/**
 * Reads the serialized google.protobuf.FileDescriptorSet that reflection
 * serves. With no argument, tries DESCRIPTOR_SET_CANDIDATES in order and throws
 * naming every path tried; meant for start-up, so it reads synchronously.
 */
export function loadDescriptorSet(path?: string | URL): Uint8Array {
  if (path !== undefined) return readFileSync(path);
  const tried: string[] = [];
  for (const candidate of DESCRIPTOR_SET_CANDIDATES) {
    const url = new URL(candidate, import.meta.url);
    try {
      return readFileSync(url);
    } catch (error: unknown) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      tried.push(url.pathname);
    }
  }
  throw new Error(`descriptor set not found; tried ${tried.join(", ")} (run \`npm run gen\` or \`npm run build\`)`);
}

/** Handle returned by addReflection. */
export interface ReflectionHandle {
  /**
   * Ends every open reflection stream with OK, so that grpc.Server.tryShutdown
   * is not held up by an idle grpcurl or IDE session until its deadline.
   */
  shutdown(): void;
}

export interface ReflectionOptions {
  /**
   * Told about an unexpected exception while answering; the stream then ends
   * with INTERNAL and a fixed message. Defaults to doing nothing.
   */
  readonly onInternalError?: (error: unknown) => void;
  /**
   * Decides, once per stream before anything is read, whether the caller may
   * use reflection; a returned error ends the stream with it. Absent: everyone.
   */
  readonly admit?: (call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>) => Partial<grpc.StatusObject> | undefined;
}

/**
 * Registers grpc.reflection.v1.ServerReflection and
 * grpc.reflection.v1alpha.ServerReflection on `server` (call before bindAsync).
 *
 * @param descriptorSet a serialized FileDescriptorSet holding every served file
 *   and all of its imports, e.g. from loadDescriptorSet().
 * @param services the fully-qualified services that list_services reports; each
 *   must be defined in the set. Include REFLECTION_SERVICES and
 *   grpc.health.v1.Health when those are served too.
 * @throws Error when the set is malformed, a file imports one that is not in
 *   the set, a symbol is defined twice, or a listed service is not defined:
 *   all are build bugs, better caught at start-up than by a client.
 */
export function addReflection(
  server: grpc.Server,
  descriptorSet: Uint8Array,
  services: readonly string[],
  options: ReflectionOptions = {},
): ReflectionHandle {
  const index = new DescriptorIndex(descriptorSet);
  for (const service of services) {
    if (!index.isService(service)) {
      throw new Error(`reflection: service ${service} is not defined in the descriptor set`);
    }
  }
  const listed = [...new Set(services)];
  const open = new Set<grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>>();
  const implementation: ServerReflectionServer = {
    serverReflectionInfo: (call) => {
      const refusal = options.admit?.(call);
      if (refusal !== undefined) {
        call.emit("error", refusal);
        return;
      }
      serve(call, index, listed, open, options.onInternalError);
    },
  };
  // The two versions are the same protocol under two package names; old
  // clients (grpcurl before 1.9, many IDEs) still ask for v1alpha only.
  server.addService(ServerReflectionV1, implementation);
  server.addService(ServerReflectionV1Alpha, implementation);
  return {
    shutdown: () => {
      for (const call of [...open]) {
        open.delete(call);
        call.end();
      }
    },
  };
}

function serve(
  call: grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>,
  index: DescriptorIndex,
  services: readonly string[],
  open: Set<grpc.ServerDuplexStream<ServerReflectionRequest, ServerReflectionResponse>>,
  onInternalError: ((error: unknown) => void) | undefined,
): void {
  open.add(call);
  const forget = (): void => {
    open.delete(call);
  };
  call.once("cancelled", forget);
  call.once("close", forget);
  call.on("data", (request: ServerReflectionRequest) => {
    // After shutdown() ended our side, late requests have no one to answer.
    if (call.writableEnded) return;
    let response: ServerReflectionResponse;
    try {
      response = answer(request, index, services);
    } catch (error: unknown) {
      onInternalError?.(error);
      forget();
      call.emit("error", { code: grpc.status.INTERNAL, details: "internal error" });
      return;
    }
    // Respect backpressure: a client that sends requests faster than it
    // reads answers would otherwise make us buffer without bound.
    if (!call.write(response)) {
      call.pause();
      call.once("drain", () => call.resume());
    }
  });
  // The client half-closed: it asks nothing more, so we are done too.
  call.once("end", () => {
    forget();
    call.end();
  });
}

/** One request in, one response out; lookup failures are error_response values. */
function answer(
  request: ServerReflectionRequest,
  index: DescriptorIndex,
  services: readonly string[],
): ServerReflectionResponse {
  const base = { validHost: request.host, originalRequest: request };
  const notFound = (what: string): ServerReflectionResponse => ({
    ...base,
    errorResponse: { errorCode: grpc.status.NOT_FOUND, errorMessage: `${what} not found` },
  });
  const files = (name: string): ServerReflectionResponse => ({
    ...base,
    fileDescriptorResponse: { fileDescriptorProto: index.fileWithDependencies(name) },
  });

  if (request.listServices !== undefined) {
    return { ...base, listServicesResponse: { service: services.map((name) => ({ name })) } };
  }
  if (request.fileByFilename !== undefined) {
    const name = request.fileByFilename;
    return index.hasFile(name) ? files(name) : notFound(`file ${JSON.stringify(name)}`);
  }
  if (request.fileContainingSymbol !== undefined) {
    const symbol = stripDot(request.fileContainingSymbol);
    const file = index.fileOfSymbol(symbol);
    return file === undefined ? notFound(`symbol ${JSON.stringify(symbol)}`) : files(file);
  }
  if (request.fileContainingExtension !== undefined) {
    const { containingType, extensionNumber } = request.fileContainingExtension;
    const file = index.fileOfExtension(stripDot(containingType), extensionNumber);
    return file === undefined ? notFound(`extension ${extensionNumber} of ${JSON.stringify(containingType)}`) : files(file);
  }
  if (request.allExtensionNumbersOfType !== undefined) {
    const type = stripDot(request.allExtensionNumbersOfType);
    const numbers = index.extensionNumbersOf(type);
    // A known message with no extensions is an empty list, not an error:
    // grpcurl asks this for every message it describes and gives up on errors.
    return numbers === undefined
      ? notFound(`message type ${JSON.stringify(type)}`)
      : { ...base, allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: numbers } };
  }
  return {
    ...base,
    errorResponse: { errorCode: grpc.status.INVALID_ARGUMENT, errorMessage: "request names no known message_request" },
  };
}

/** Clients may send ".pkg.Name" as written in descriptors; we index "pkg.Name". */
function stripDot(name: string): string {
  return name.startsWith(".") ? name.slice(1) : name;
}

/**
 * Files of a FileDescriptorSet by name and by the symbols they define. Keeps
 * each file's bytes exactly as serialized, so nothing (source code info,
 * options, unknown fields) is lost in a decode/encode round trip.
 */
class DescriptorIndex {
  readonly #bytesByFile = new Map<string, Buffer>();
  readonly #dependenciesByFile = new Map<string, readonly string[]>();
  readonly #fileBySymbol = new Map<string, string>();
  readonly #services = new Set<string>();
  /** Every message type -> its extension numbers (usually none). */
  readonly #extensionsByMessage = new Map<string, number[]>();
  /** "extendee#number" -> file that declares the extension. */
  readonly #fileByExtension = new Map<string, string>();
  /** Answers to fileWithDependencies, computed once; the set never changes. */
  readonly #closureByFile = new Map<string, Buffer[]>();

  constructor(descriptorSet: Uint8Array) {
    const extensions: { file: string; field: FieldDescriptorProto }[] = [];
    for (const bytes of splitFileDescriptorSet(descriptorSet)) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      if (this.#bytesByFile.has(file.name)) throw new Error(`descriptor set: file ${file.name} appears twice`);
      this.#bytesByFile.set(file.name, bytes);
      this.#dependenciesByFile.set(file.name, file.dependency);
      this.#indexFile(file, extensions);
    }
    for (const [name, dependencies] of this.#dependenciesByFile) {
      for (const dependency of dependencies) {
        if (!this.#bytesByFile.has(dependency)) {
          throw new Error(`descriptor set: ${name} imports ${dependency}, which is not in the set`);
        }
      }
    }
    // Extensions may extend a message of another file, so they are resolved
    // once every message is known.
    for (const { file, field } of extensions) {
      const extendee = stripDot(field.extendee);
      const numbers = this.#extensionsByMessage.get(extendee);
      if (numbers === undefined) throw new Error(`descriptor set: ${file} extends unknown ${extendee}`);
      numbers.push(field.number);
      this.#fileByExtension.set(`${extendee}#${field.number}`, file);
    }
  }

  hasFile(name: string): boolean {
    return this.#bytesByFile.has(name);
  }

  isService(name: string): boolean {
    return this.#services.has(name);
  }

  fileOfSymbol(symbol: string): string | undefined {
    return this.#fileBySymbol.get(symbol);
  }

  fileOfExtension(extendee: string, fieldNumber: number): string | undefined {
    return this.#fileByExtension.get(`${extendee}#${fieldNumber}`);
  }

  /** Extension numbers of a message type, or undefined when it is no known message. */
  extensionNumbersOf(messageType: string): number[] | undefined {
    const numbers = this.#extensionsByMessage.get(messageType);
    return numbers === undefined ? undefined : [...numbers];
  }

  /**
   * The named file first, then every file it imports, transitively, each once.
   * Clients resolve imports by name and would fail on one we did not send.
   */
  fileWithDependencies(name: string): Buffer[] {
    const cached = this.#closureByFile.get(name);
    if (cached !== undefined) return cached;
    const seen = new Set<string>();
    const order: Buffer[] = [];
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const bytes = this.#bytesByFile.get(file);
      if (bytes === undefined) throw new Error(`descriptor index: no file ${file}`);
      order.push(bytes);
      for (const dependency of this.#dependenciesByFile.get(file) ?? []) visit(dependency);
    };
    visit(name);
    this.#closureByFile.set(name, order);
    return order;
  }

  #indexFile(file: FileDescriptorProto, extensions: { file: string; field: FieldDescriptorProto }[]): void {
    const prefix = file.package === "" ? "" : `${file.package}.`;
    const define = (symbol: string): void => {
      const previous = this.#fileBySymbol.get(symbol);
      if (previous !== undefined && previous !== file.name) {
        throw new Error(`descriptor set: ${symbol} is defined in both ${previous} and ${file.name}`);
      }
      this.#fileBySymbol.set(symbol, file.name);
    };
    for (const service of file.service) {
      const name = `${prefix}${service.name}`;
      define(name);
      this.#services.add(name);
      for (const method of service.method) define(`${name}.${method.name}`);
    }
    for (const message of file.messageType) this.#indexMessage(prefix, message, define, file.name, extensions);
    for (const enumType of file.enumType) indexEnum(prefix, enumType, define);
    for (const field of file.extension) {
      define(`${prefix}${field.name}`);
      extensions.push({ file: file.name, field });
    }
  }

  #indexMessage(
    prefix: string,
    message: DescriptorProto,
    define: (symbol: string) => void,
    fileName: string,
    extensions: { file: string; field: FieldDescriptorProto }[],
  ): void {
    const name = `${prefix}${message.name}`;
    define(name);
    this.#extensionsByMessage.set(name, []);
    for (const field of message.field) define(`${name}.${field.name}`);
    for (const oneof of message.oneofDecl) define(`${name}.${oneof.name}`);
    for (const nested of message.nestedType) this.#indexMessage(`${name}.`, nested, define, fileName, extensions);
    for (const enumType of message.enumType) indexEnum(`${name}.`, enumType, define);
    for (const field of message.extension) {
      define(`${name}.${field.name}`);
      extensions.push({ file: fileName, field });
    }
  }
}

/**
 * Enum values live in the enum's enclosing scope in protobuf (pkg.VALUE), which
 * is what protoc-based clients ask for; some tools ask pkg.Enum.VALUE, so both
 * resolve.
 */
function indexEnum(prefix: string, enumType: EnumDescriptorProto, define: (symbol: string) => void): void {
  const name = `${prefix}${enumType.name}`;
  define(name);
  for (const value of enumType.value) {
    define(`${prefix}${value.name}`);
    define(`${name}.${value.name}`);
  }
}

/**
 * The `file` entries (field 1) of a serialized FileDescriptorSet, each as its
 * own copy of the original bytes. A hand split rather than decode + re-encode,
 * so the bytes served are exactly those that buf wrote.
 */
function splitFileDescriptorSet(descriptorSet: Uint8Array): Buffer[] {
  const reader = new BinaryReader(descriptorSet);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      files.push(Buffer.from(reader.bytes()));
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  if (files.length === 0) throw new Error("descriptor set: no files");
  return files;
}

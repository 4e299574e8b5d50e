/**
 * What every command shares: the global flags (each with an environment
 * fallback), the client built from them, and how a result or an error is
 * printed. A command only says which call to make and how to show its answer.
 */
import { readFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { createMintClient, type MintClient } from "../../client/src/client.js";
import { MintServiceError, toMintServiceError } from "../../client/src/errors.js";
import { EXIT_OK, EXIT_USAGE, exitCodeFor } from "./exit-codes.js";
import { json, type Io } from "./output.js";

export const DEFAULT_ADDRESS = "127.0.0.1:50051";

/** The global flags, as commander hands them over. */
export interface GlobalFlags {
  readonly address?: string;
  readonly token?: string;
  readonly tls?: boolean;
  readonly allowPlaintextToken?: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly json?: boolean;
  readonly deadlineMs?: string;
}

/** Each global flag and the environment variable that stands in for it. */
export const ENV_FALLBACKS: Record<Exclude<keyof GlobalFlags, "json" | "tls" | "allowPlaintextToken">, string> = {
  address: "MINTCTL_ADDRESS",
  token: "MINTCTL_TOKEN",
  ca: "MINTCTL_CA",
  cert: "MINTCTL_CERT",
  key: "MINTCTL_KEY",
  deadlineMs: "MINTCTL_DEADLINE_MS",
};

/** A mistake in how mintctl was called (exit 2), told in one line. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

export class Context {
  readonly io: Io;
  readonly flags: GlobalFlags;
  #client: MintClient | undefined;

  constructor(io: Io, flags: GlobalFlags) {
    this.io = io;
    this.flags = flags;
  }

  get jsonOutput(): boolean {
    return this.flags.json === true;
  }

  /** A flag's value, else its environment variable, else undefined. */
  setting(name: keyof typeof ENV_FALLBACKS): string | undefined {
    const v = this.flags[name] ?? this.io.env[ENV_FALLBACKS[name]];
    return v === undefined || v === "" ? undefined : v;
  }

  #read(flag: "ca" | "cert" | "key"): Buffer | undefined {
    const path = this.setting(flag);
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      throw new UsageError(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }

  credentials(): grpc.ChannelCredentials {
    const ca = this.#read("ca");
    const cert = this.#read("cert");
    const key = this.#read("key");
    if ((cert === undefined) !== (key === undefined)) throw new UsageError("--cert and --key go together (mutual TLS needs both)");
    if (ca === undefined && cert === undefined && this.flags.tls !== true) return grpc.credentials.createInsecure();
    return grpc.credentials.createSsl(ca ?? null, key ?? null, cert ?? null);
  }

  deadlineMs(): number | undefined {
    const text = this.setting("deadlineMs");
    if (text === undefined) return undefined;
    const ms = Number(text);
    if (!Number.isInteger(ms) || ms < 1 || ms > 3_600_000) throw new UsageError(`--deadline-ms (${ENV_FALLBACKS.deadlineMs}) must be an integer from 1 to 3600000, got ${JSON.stringify(text)}`);
    return ms;
  }

  client(): MintClient {
    if (this.#client === undefined) {
      const credentials = this.credentials();
      const secure = this.flags.tls === true || this.setting("ca") !== undefined || this.setting("cert") !== undefined;
      try {
        this.#client = createMintClient({
          addresses: this.setting("address") ?? DEFAULT_ADDRESS,
          // Plaintext is passed as "no credentials" so the SDK's plaintext-token guard applies.
          credentials: secure ? credentials : undefined,
          token: this.setting("token"),
          allowPlaintextToken: this.flags.allowPlaintextToken === true,
          defaultDeadlineMs: this.deadlineMs(),
        });
      } catch (err) {
        // The SDK refuses bad options with a TypeError: for mintctl that is a usage error.
        if (err instanceof TypeError) throw new UsageError(err.message.replace(/^createMintClient: /, "").replace("allowPlaintextToken: true", "--allow-plaintext-token"));
        throw err;
      }
    }
    return this.#client;
  }

  close(): void {
    this.#client?.close();
  }

  /** Prints a result: `human()` as text, or `value` as JSON with --json. */
  print(value: unknown, human: () => string): number {
    this.io.out(this.jsonOutput ? json(value) : human());
    return EXIT_OK;
  }

  /** Prints a failed call and returns its exit code (10 + the gRPC code). */
  fail(err: unknown): number {
    const e = err instanceof MintServiceError ? err : toMintServiceError(err);
    const body = {
      error: {
        code: e.code,
        reason: e.reason,
        message: e.message,
        ...(e.fieldViolations.length > 0 ? { fieldViolations: e.fieldViolations } : {}),
        ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
        ...(e.differingFields.length > 0 ? { differingFields: e.differingFields } : {}),
        ...(e.requestId !== undefined ? { requestId: e.requestId } : {}),
        metadata: e.metadata,
        attempts: e.attempts,
      },
    };
    if (this.jsonOutput) this.io.out(json(body));
    else {
      const extra = [
        ...e.fieldViolations.map((v) => `field ${v.field}${v.description === e.message ? "" : `: ${v.description}`}`),
        ...(e.differingFields.length > 0 ? [`differing fields: ${e.differingFields.join(", ")}`] : []),
        ...(e.retryAfterMs !== undefined ? [`retry after ${Math.ceil(e.retryAfterMs)} ms`] : []),
        ...(e.requestId !== undefined ? [`request id ${e.requestId}`] : []),
      ];
      this.io.err(`mintctl: ${e.code}${e.reason === "" ? "" : ` ${e.reason}`}: ${e.message}${e.attempts > 1 ? ` (after ${e.attempts} attempts)` : ""}\n`);
      for (const line of extra) this.io.err(`  ${line}\n`);
    }
    return exitCodeFor(e.code);
  }
}

export { EXIT_USAGE };

/**
 * The principals file (MINT_AUTH_FILE): who may call, with which roles, on
 * which accounts, and how each proves itself. YAML or JSON (JSON is YAML, so
 * one parser reads both). Validated whole at start and on every SIGHUP
 * reload; the first bad entry stops the load with one line naming it, and a
 * reload that fails keeps the previous file in force.
 *
 *   principals:
 *     - name: payments-api
 *       roles: [minter, reader]
 *       scopes: ["treasury:*"]
 *       certificate_identities: ["URI:spiffe://mint.example/payments-api", "DNS:payments.internal"]
 *       token_sha256: ["<64 hex digits: SHA-256 of the bearer token>"]
 *
 * Tokens are stored only as SHA-256 digests. A bearer token here is a random
 * secret of at least 128 bits (`openssl rand -base64 32`), not a password:
 * nobody can guess its way back from the digest, so a slow password hash
 * (bcrypt, argon2) would add only cost — tens of ms on every call — and no
 * safety. Digests are compared in constant time (authenticate.ts).
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { isRole, isScopePattern, RESERVED_PRINCIPAL_NAMES, ROLES, type Principal, type Role } from "../domain/authorization.js";

/** A principal as the file defines it: the public part plus how it proves itself. */
export interface PrincipalEntry {
  readonly principal: Principal;
  /** SAN entries as Node prints them: `URI:spiffe://…` or `DNS:host`. */
  readonly certificateIdentities: readonly string[];
  /** SHA-256 digests (32 bytes each) of the principal's bearer tokens. */
  readonly tokenDigests: readonly Buffer[];
}

export interface PrincipalsFile {
  readonly entries: readonly PrincipalEntry[];
}

export class AuthFileError extends Error {
  override readonly name = "AuthFileError";
}

/** Most principals one file may define; the token check scans every digest, so this bounds its cost. */
export const MAX_PRINCIPALS = 1000;
/** Most tokens and certificate identities per principal (rotation needs two; a few more is plenty). */
export const MAX_CREDENTIALS_PER_PRINCIPAL = 16;
/** Largest auth file read, in bytes. */
export const MAX_AUTH_FILE_BYTES = 1024 * 1024;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** `URI:` then a URI without spaces or commas, or `DNS:` then a host name (a leading `*.` for a wildcard certificate). */
const IDENTITY = /^(URI:[A-Za-z][A-Za-z0-9+.-]*:[^\s,]{1,1000}|DNS:(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*)$/;
const ENTRY_KEYS = new Set(["name", "roles", "scopes", "certificate_identities", "token_sha256"]);

/** Reads and validates the file at `path`. Throws AuthFileError with one line naming the bad entry. */
export function loadPrincipalsFile(path: string): PrincipalsFile {
  let text: string;
  try {
    const bytes = readFileSync(path);
    if (bytes.length > MAX_AUTH_FILE_BYTES) throw new AuthFileError(`${path}: larger than ${MAX_AUTH_FILE_BYTES} bytes`);
    text = bytes.toString("utf8");
  } catch (err) {
    if (err instanceof AuthFileError) throw err;
    throw new AuthFileError(`${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parsePrincipalsFile(text, path);
}

/** Parses and validates file content; `source` names the file in errors. */
export function parsePrincipalsFile(text: string, source: string): PrincipalsFile {
  let doc: unknown;
  try {
    // uniqueKeys (the default) refuses duplicate keys; maxAliasCount bounds alias expansion ("billion laughs").
    doc = parseYaml(text, { maxAliasCount: 100, prettyErrors: false });
  } catch (err) {
    const firstLine = ((err as Error).message.split("\n")[0] ?? "").trim();
    throw new AuthFileError(`${source}: not valid YAML or JSON: ${firstLine}`);
  }
  if (!isObject(doc) || !Array.isArray(doc.principals)) {
    throw new AuthFileError(`${source}: expected a top-level "principals" list`);
  }
  for (const key of Object.keys(doc)) {
    if (key !== "principals") throw new AuthFileError(`${source}: unknown top-level key ${JSON.stringify(key)} (expected only "principals")`);
  }
  const list: unknown[] = doc.principals;
  if (list.length > MAX_PRINCIPALS) throw new AuthFileError(`${source}: ${list.length} principals, at most ${MAX_PRINCIPALS}`);

  const names = new Set<string>();
  const identities = new Map<string, string>();
  const digests = new Map<string, string>();
  const entries: PrincipalEntry[] = [];
  list.forEach((raw, i) => {
    const label = isObject(raw) && typeof raw.name === "string" ? `principals[${i}] (${JSON.stringify(raw.name)})` : `principals[${i}]`;
    const bad = (what: string): never => {
      throw new AuthFileError(`${source}: ${label}: ${what}`);
    };
    if (!isObject(raw)) bad("expected a mapping with name, roles, scopes, certificate_identities and/or token_sha256");
    const entry = raw as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (!ENTRY_KEYS.has(key)) bad(`unknown key ${JSON.stringify(key)} (expected ${[...ENTRY_KEYS].join(", ")})`);
    }

    const name = entry.name;
    if (typeof name !== "string" || !NAME.test(name)) bad(`name must match ${NAME.source}`);
    const principalName = name as string;
    if (RESERVED_PRINCIPAL_NAMES.includes(principalName)) bad(`name ${JSON.stringify(principalName)} is reserved for the service itself`);
    if (names.has(principalName)) bad(`name ${JSON.stringify(principalName)} is defined twice`);
    names.add(principalName);

    const roles = stringList(entry.roles, "roles", bad, { required: true });
    if (roles.length === 0) bad("roles must name at least one role");
    const roleSet = new Set<Role>();
    roles.forEach((r, j) => {
      if (!isRole(r)) bad(`roles[${j}] ${JSON.stringify(r)} is not a role (${ROLES.join(", ")})`);
      if (roleSet.has(r as Role)) bad(`roles[${j}] ${JSON.stringify(r)} is listed twice`);
      roleSet.add(r as Role);
    });

    const scopes = stringList(entry.scopes, "scopes", bad, { required: false });
    scopes.forEach((s, j) => {
      if (!isScopePattern(s)) bad(`scopes[${j}] ${JSON.stringify(s)} is not an account id, a prefix ending in *, or *`);
    });

    const ids = stringList(entry.certificate_identities, "certificate_identities", bad, { required: false });
    ids.forEach((id, j) => {
      if (!IDENTITY.test(id)) bad(`certificate_identities[${j}] ${JSON.stringify(id)} must be URI:<uri> or DNS:<host name>`);
      const owner = identities.get(id);
      if (owner !== undefined) bad(`certificate_identities[${j}] ${JSON.stringify(id)} is already ${JSON.stringify(owner)}'s`);
      identities.set(id, principalName);
    });

    const tokens = stringList(entry.token_sha256, "token_sha256", bad, { required: false });
    const tokenDigests = tokens.map((t, j) => {
      // The value itself is not echoed: an operator who pasted a token instead of its digest must not see it in a log.
      if (!SHA256_HEX.test(t)) bad(`token_sha256[${j}] must be 64 lowercase hex digits (the SHA-256 of the token, not the token)`);
      const owner = digests.get(t);
      if (owner !== undefined) bad(`token_sha256[${j}] is already ${JSON.stringify(owner)}'s`);
      digests.set(t, principalName);
      return Buffer.from(t, "hex");
    });

    if (ids.length === 0 && tokens.length === 0) bad("needs certificate_identities or token_sha256 (it could never authenticate)");
    if (ids.length > MAX_CREDENTIALS_PER_PRINCIPAL || tokens.length > MAX_CREDENTIALS_PER_PRINCIPAL) {
      bad(`at most ${MAX_CREDENTIALS_PER_PRINCIPAL} certificate identities and ${MAX_CREDENTIALS_PER_PRINCIPAL} tokens`);
    }

    entries.push({
      principal: Object.freeze({ name: principalName, roles: roleSet, scopes: Object.freeze([...scopes]) }),
      certificateIdentities: Object.freeze([...ids]),
      tokenDigests: Object.freeze(tokenDigests),
    });
  });
  return { entries: Object.freeze(entries) };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, field: string, bad: (what: string) => never, opts: { required: boolean }): string[] {
  if (v === undefined || v === null) {
    if (opts.required) bad(`${field} is required`);
    return [];
  }
  if (!Array.isArray(v)) bad(`${field} must be a list of strings`);
  const list = v as unknown[];
  list.forEach((item, j) => {
    if (typeof item !== "string") bad(`${field}[${j}] must be a string`);
  });
  return list as string[];
}

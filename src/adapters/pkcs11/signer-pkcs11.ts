/**
 * A signer whose secp256k1 key lives in a PKCS#11 token (an HSM; SoftHSM2 in
 * tests) and never leaves it: the key must be sensitive, non-extractable and
 * generated on the token, or the signer refuses to start.
 *
 * - The token is found by its label, never by slot number (SoftHSM renumbers
 *   slots whenever a token is added).
 * - A PKCS#11 session runs one signing operation at a time (C_SignInit then
 *   C_Sign), so signatures are serialised by a mutex.
 * - CKM_ECDSA signs the 32-byte digest as given and returns raw (r, s); the
 *   Ethereum form (low s, recovery bit) is made by `SigningKey`, which
 *   also checks that the signature verifies against the token's public key.
 */
import { createRequire } from "node:module";
import { Mutex } from "async-mutex";
import type * as Pkcs11Types from "pkcs11js";
import { SigningKey } from "./ecdsa.js";
import { isDigest, type Address, type EcdsaSignature, type Hex, type Signer } from "../../domain/settlement/ports.js";

// pkcs11js is a native CommonJS module; loaded lazily so that a service that
// never uses PKCS#11 never loads it.
const require = createRequire(import.meta.url);
type Pkcs11Module = typeof Pkcs11Types;
function pkcs11js(): Pkcs11Module {
  return require("pkcs11js") as Pkcs11Module;
}

/** DER of the secp256k1 curve OID 1.3.132.0.10, the value of CKA_EC_PARAMS. */
export const SECP256K1_EC_PARAMS = Buffer.from("06052b8104000a", "hex");

export interface Pkcs11Settings {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly keyLabel: string;
  /** The user PIN (read from MINT_PKCS11_PIN_FILE; never logged). */
  readonly pin: string;
}

/** What the token says about the private key; the signer refuses any key that is not all of these. */
export interface KeyAttributes {
  readonly sensitive: boolean;
  readonly extractable: boolean;
  readonly neverExtractable: boolean;
  /** Generated on the token (not imported). */
  readonly local: boolean;
  readonly ecParams: string;
}

/**
 * One loaded module per path, initialised once per process and finalised when
 * its last user closes: C_Initialize twice in one process is an error, and
 * C_Finalize would end every other user's sessions.
 */
const modules = new Map<string, { lib: Pkcs11Types.PKCS11; users: number }>();

function openModule(modulePath: string): Pkcs11Types.PKCS11 {
  const known = modules.get(modulePath);
  if (known !== undefined) {
    known.users++;
    return known.lib;
  }
  const p = pkcs11js();
  const lib = new p.PKCS11();
  lib.load(modulePath);
  lib.C_Initialize();
  modules.set(modulePath, { lib, users: 1 });
  return lib;
}

function closeModule(modulePath: string): void {
  const known = modules.get(modulePath);
  if (known === undefined) return;
  if (--known.users > 0) return;
  modules.delete(modulePath);
  // C_Finalize only: the module stays loaded. Unloading it (dlclose) lets the
  // process's exit run SoftHSM's static destructors from unmapped code, which
  // can kill a stopping worker with a signal instead of exit 0. A later open
  // loads it again (dlopen counts) and C_Initialize after C_Finalize is allowed.
  known.lib.C_Finalize();
}

function findSlotByLabel(lib: Pkcs11Types.PKCS11, tokenLabel: string): Pkcs11Types.Handle {
  const matches = lib.C_GetSlotList(true).filter((slot) => lib.C_GetTokenInfo(slot).label.trim() === tokenLabel);
  if (matches.length === 0) throw new Error(`pkcs11: no token labelled ${JSON.stringify(tokenLabel)}`);
  if (matches.length > 1) throw new Error(`pkcs11: ${matches.length} tokens labelled ${JSON.stringify(tokenLabel)}; labels must be unique`);
  return matches[0] as Pkcs11Types.Handle;
}

function login(lib: Pkcs11Types.PKCS11, session: Pkcs11Types.Handle, pin: string): void {
  const p = pkcs11js();
  try {
    lib.C_Login(session, p.CKU_USER, pin);
  } catch (err) {
    // Login state belongs to the application, not the session: a second
    // session of this process on the same token is already logged in.
    if (!(err instanceof p.Pkcs11Error && err.code === p.CKR_USER_ALREADY_LOGGED_IN)) throw err;
  }
}

function findObjects(lib: Pkcs11Types.PKCS11, session: Pkcs11Types.Handle, template: Pkcs11Types.Template): Pkcs11Types.Handle[] {
  lib.C_FindObjectsInit(session, template);
  try {
    return lib.C_FindObjects(session, 16);
  } finally {
    lib.C_FindObjectsFinal(session);
  }
}

/** The 65-byte uncompressed point from CKA_EC_POINT (DER OCTET STRING, or bare on some tokens). */
function ecPoint(value: Buffer): Uint8Array {
  if (value.length === 67 && value[0] === 0x04 && value[1] === 0x41) return value.subarray(2);
  if (value.length === 65 && value[0] === 0x04) return value;
  throw new Error("pkcs11: CKA_EC_POINT is not an uncompressed secp256k1 point");
}

function readKeyAttributes(lib: Pkcs11Types.PKCS11, session: Pkcs11Types.Handle, key: Pkcs11Types.Handle): KeyAttributes {
  const p = pkcs11js();
  const attrs = lib.C_GetAttributeValue(session, key, [
    { type: p.CKA_SENSITIVE },
    { type: p.CKA_EXTRACTABLE },
    { type: p.CKA_NEVER_EXTRACTABLE },
    { type: p.CKA_LOCAL },
    { type: p.CKA_EC_PARAMS },
  ]);
  const flag = (i: number): boolean => {
    const v = attrs[i]?.value;
    return Buffer.isBuffer(v) ? v[0] === 1 : v === true;
  };
  const params = attrs[4]?.value;
  return {
    sensitive: flag(0),
    extractable: flag(1),
    neverExtractable: flag(2),
    local: flag(3),
    ecParams: Buffer.isBuffer(params) ? params.toString("hex") : "",
  };
}

export class Pkcs11Signer implements Signer {
  readonly kind = "pkcs11" as const;
  readonly address: Address;
  private readonly mutex = new Mutex();
  private closed = false;

  private constructor(
    private readonly modulePath: string,
    private readonly lib: Pkcs11Types.PKCS11,
    private readonly session: Pkcs11Types.Handle,
    private readonly key: Pkcs11Types.Handle,
    private readonly publicKey: SigningKey,
    /** As read at open; the signer only opens keys that are sensitive, non-extractable and generated on the token. */
    readonly keyAttributes: KeyAttributes,
  ) {
    this.address = publicKey.address;
  }

  /**
   * Opens the token by label, logs in and finds the key pair labelled
   * `keyLabel`. Throws with one line when the token or key is missing, the
   * curve is not secp256k1, or the key could ever leave the token.
   */
  static open(settings: Pkcs11Settings): Pkcs11Signer {
    const p = pkcs11js();
    const lib = openModule(settings.modulePath);
    let session: Pkcs11Types.Handle | null = null;
    try {
      const slot = findSlotByLabel(lib, settings.tokenLabel);
      session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION);
      login(lib, session, settings.pin);
      const label = { type: p.CKA_LABEL, value: settings.keyLabel };
      const keys = findObjects(lib, session, [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }, { type: p.CKA_KEY_TYPE, value: p.CKK_EC }, label]);
      if (keys.length !== 1) throw new Error(`pkcs11: expected one EC private key labelled ${JSON.stringify(settings.keyLabel)}, found ${keys.length}`);
      const pubs = findObjects(lib, session, [{ type: p.CKA_CLASS, value: p.CKO_PUBLIC_KEY }, { type: p.CKA_KEY_TYPE, value: p.CKK_EC }, label]);
      if (pubs.length !== 1) throw new Error(`pkcs11: expected one EC public key labelled ${JSON.stringify(settings.keyLabel)}, found ${pubs.length}`);
      const key = keys[0] as Pkcs11Types.Handle;
      const attrs = readKeyAttributes(lib, session, key);
      if (attrs.ecParams !== SECP256K1_EC_PARAMS.toString("hex")) throw new Error(`pkcs11: key ${JSON.stringify(settings.keyLabel)} is not on secp256k1`);
      if (!attrs.sensitive || attrs.extractable || !attrs.neverExtractable || !attrs.local) {
        throw new Error(`pkcs11: key ${JSON.stringify(settings.keyLabel)} must be generated on the token, sensitive and never extractable (${JSON.stringify(attrs)})`);
      }
      const [point] = lib.C_GetAttributeValue(session, pubs[0] as Pkcs11Types.Handle, [{ type: p.CKA_EC_POINT }]);
      const publicKey = new SigningKey(ecPoint(point?.value as Buffer));
      return new Pkcs11Signer(settings.modulePath, lib, session, key, publicKey, attrs);
    } catch (err) {
      if (session !== null) lib.C_CloseSession(session);
      closeModule(settings.modulePath);
      throw err;
    }
  }

  async signDigest(digest: Hex): Promise<EcdsaSignature> {
    if (!isDigest(digest)) throw new Error("signDigest: the digest must be 32 bytes of hex");
    const raw = await this.mutex.runExclusive(async () => {
      if (this.closed) throw new Error("pkcs11: signer is closed");
      this.lib.C_SignInit(this.session, { mechanism: pkcs11js().CKM_ECDSA }, this.key);
      return this.lib.C_SignAsync(this.session, Buffer.from(digest.slice(2), "hex"), Buffer.alloc(64));
    });
    return this.publicKey.toEthereumSignature(digest, raw);
  }

  async close(): Promise<void> {
    await this.mutex.runExclusive(() => {
      if (this.closed) return;
      this.closed = true;
      this.lib.C_CloseSession(this.session);
      closeModule(this.modulePath);
    });
  }
}

/**
 * Generates a secp256k1 key pair ON the token (CKM_EC_KEY_PAIR_GEN), private
 * half sensitive and non-extractable, labelled `keyLabel`; returns its
 * address. An existing key with that label is kept (idempotent), so an
 * operator's setup script can run twice.
 */
export async function generatePkcs11Key(settings: Pkcs11Settings): Promise<Address> {
  const p = pkcs11js();
  const lib = openModule(settings.modulePath);
  try {
    const slot = findSlotByLabel(lib, settings.tokenLabel);
    const session = lib.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
    try {
      login(lib, session, settings.pin);
      const label = { type: p.CKA_LABEL, value: settings.keyLabel };
      const existing = findObjects(lib, session, [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }, label]);
      if (existing.length === 0) {
        const id = { type: p.CKA_ID, value: Buffer.from(settings.keyLabel, "utf8") };
        lib.C_GenerateKeyPair(
          session,
          { mechanism: p.CKM_EC_KEY_PAIR_GEN },
          [
            { type: p.CKA_CLASS, value: p.CKO_PUBLIC_KEY },
            { type: p.CKA_KEY_TYPE, value: p.CKK_EC },
            { type: p.CKA_TOKEN, value: true },
            { type: p.CKA_VERIFY, value: true },
            { type: p.CKA_EC_PARAMS, value: SECP256K1_EC_PARAMS },
            label,
            id,
          ],
          [
            { type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY },
            { type: p.CKA_KEY_TYPE, value: p.CKK_EC },
            { type: p.CKA_TOKEN, value: true },
            { type: p.CKA_PRIVATE, value: true },
            { type: p.CKA_SIGN, value: true },
            { type: p.CKA_SENSITIVE, value: true },
            { type: p.CKA_EXTRACTABLE, value: false },
            label,
            id,
          ],
        );
      }
    } finally {
      lib.C_CloseSession(session);
    }
  } finally {
    closeModule(settings.modulePath);
  }
  const signer = Pkcs11Signer.open(settings);
  await signer.close();
  return signer.address;
}

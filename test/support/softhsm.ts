/**
 * A SoftHSM2 token in a temporary directory, with a secp256k1 key generated
 * on it, for the signer and settlement tests (and the local demo).
 *
 * SoftHSM reads SOFTHSM2_CONF when the module is initialised, once per
 * process, so the first token of a process fixes the directory: later calls
 * add tokens to the same directory (found by their unique labels).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { randomBytes } from "node:crypto";
import { generatePkcs11Key, type Pkcs11Settings } from "../../src/adapters/pkcs11/signer-pkcs11.js";
import type { Address } from "../../src/domain/settlement/ports.js";

export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

let configDir: string | null = null;

/** The SoftHSM configuration of this process (created on first use). */
export function softhsmConfig(): string {
  if (configDir === null) {
    const existing = process.env.SOFTHSM2_CONF;
    if (existing !== undefined && existing !== "") return existing;
    configDir = mkdtempSync(path.join(tmpdir(), "mint-softhsm-"));
    mkdirSync(path.join(configDir, "tokens"));
    writeFileSync(path.join(configDir, "softhsm2.conf"), `directories.tokendir = ${path.join(configDir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
    process.env.SOFTHSM2_CONF = path.join(configDir, "softhsm2.conf");
    process.on("exit", () => {
      if (configDir !== null) rmSync(configDir, { recursive: true, force: true });
    });
  }
  return process.env.SOFTHSM2_CONF as string;
}

export interface DevToken {
  readonly settings: Pkcs11Settings;
  readonly address: Address;
  readonly soPin: string;
}

/** Creates a token with a fresh label and PINs, and generates the key on it. */
export async function createDevToken(keyLabel = "treasury"): Promise<DevToken> {
  const conf = softhsmConfig();
  const tokenLabel = `mint-${randomBytes(4).toString("hex")}`;
  const pin = randomBytes(6).toString("hex");
  const soPin = randomBytes(6).toString("hex");
  execFileSync("softhsm2-util", ["--init-token", "--free", "--label", tokenLabel, "--pin", pin, "--so-pin", soPin], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: "pipe",
  });
  const settings: Pkcs11Settings = { modulePath: SOFTHSM_MODULE, tokenLabel, keyLabel, pin };
  const address = await generatePkcs11Key(settings);
  return { settings, address, soPin };
}

/**
 * The signer variables for a process that uses `token` (the service or the
 * settlement worker): writes the PIN file (mode 600) into `dir`.
 */
export function pkcs11SignerEnv(token: DevToken, dir: string): Record<string, string> {
  const pinFile = path.join(dir, `pin-${token.settings.tokenLabel}`);
  writeFileSync(pinFile, token.settings.pin + "\n", { mode: 0o600 });
  return {
    SOFTHSM2_CONF: softhsmConfig(),
    MINT_SIGNER: "pkcs11",
    MINT_PKCS11_MODULE: token.settings.modulePath,
    MINT_PKCS11_TOKEN_LABEL: token.settings.tokenLabel,
    MINT_PKCS11_KEY_LABEL: token.settings.keyLabel,
    MINT_PKCS11_PIN_FILE: pinFile,
  };
}

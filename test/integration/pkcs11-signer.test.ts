/**
 * The PKCS#11 signer on a real SoftHSM2 token: the key is generated on the
 * token and cannot leave it; signatures are Ethereum-ready (low s, recovery
 * bit) and serialised per session; bad settings fail with one clear line.
 */
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keccak256, recoverAddress, toHex } from "viem";
import type * as Pkcs11Types from "pkcs11js";
import { Pkcs11Signer, SECP256K1_EC_PARAMS, type Pkcs11Settings } from "../../src/adapters/pkcs11/signer-pkcs11.js";
import { createDevToken, SOFTHSM_MODULE, type DevToken } from "../support/softhsm.js";

const require = createRequire(import.meta.url);
const pkcs11js = require("pkcs11js") as typeof Pkcs11Types;
const HALF_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n >> 1n;

let token: DevToken;
let spare: DevToken[];
let signer: Pkcs11Signer;

beforeAll(async () => {
  // SoftHSM lists the tokens in its directory when the module is initialised
  // (once per process): every token the tests use is created before the first open.
  token = await createDevToken();
  spare = [];
  for (let i = 0; i < 5; i++) spare.push(await createDevToken());
  signer = Pkcs11Signer.open(token.settings);
});

/** A token of its own for a test that could spoil the shared one (a wrong PIN counts against it). */
function spareToken(): DevToken {
  const t = spare.pop();
  if (t === undefined) throw new Error("out of spare tokens: create more in beforeAll");
  return t;
}

afterAll(async () => {
  await signer?.close();
});

/** Opens a raw session on the test token, to look at the key the way an attacker with the PIN would. */
function withSession<T>(settings: Pkcs11Settings, fn: (lib: Pkcs11Types.PKCS11, session: Pkcs11Types.Handle) => T): T {
  const lib = new pkcs11js.PKCS11();
  lib.load(SOFTHSM_MODULE);
  try {
    lib.C_Initialize();
  } catch (err) {
    if (!(err instanceof pkcs11js.Pkcs11Error && err.code === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED)) throw err;
  }
  const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === settings.tokenLabel);
  if (slot === undefined) throw new Error("token not found");
  const session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    try {
      lib.C_Login(session, pkcs11js.CKU_USER, settings.pin);
    } catch (err) {
      if (!(err instanceof pkcs11js.Pkcs11Error && err.code === pkcs11js.CKR_USER_ALREADY_LOGGED_IN)) throw err;
    }
    return fn(lib, session);
  } finally {
    lib.C_CloseSession(session);
  }
}

describe("PKCS#11 signer (SoftHSM2)", () => {
  it("the key was generated on the token, is secp256k1, sensitive and never extractable", () => {
    expect(signer.keyAttributes).toEqual({ sensitive: true, extractable: false, neverExtractable: true, local: true, ecParams: SECP256K1_EC_PARAMS.toString("hex") });
    expect(signer.address).toBe(token.address);
  });

  it("the token refuses to reveal the private value, even to a logged-in session", () => {
    const outcome = withSession(token.settings, (lib, session) => {
      lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: token.settings.keyLabel }]);
      const [key] = lib.C_FindObjects(session, 2);
      lib.C_FindObjectsFinal(session);
      try {
        lib.C_GetAttributeValue(session, key as Pkcs11Types.Handle, [{ type: pkcs11js.CKA_VALUE }]);
        return "revealed";
      } catch (err) {
        return err instanceof pkcs11js.Pkcs11Error ? err.code : "other error";
      }
    });
    expect(outcome).toBe(pkcs11js.CKR_ATTRIBUTE_SENSITIVE);
  });

  it("signs digests that recover its address, always with a low s (EIP-2), 100 at once (one operation at a time per session)", async () => {
    const digests = Array.from({ length: 100 }, (_, i) => keccak256(toHex(`message ${i}`)));
    const sigs = await Promise.all(digests.map((d) => signer.signDigest(d)));
    for (const [i, sig] of sigs.entries()) {
      expect(BigInt(sig.s)).toBeLessThanOrEqual(HALF_ORDER);
      expect(await recoverAddress({ hash: digests[i] as `0x${string}`, signature: sig })).toBe(signer.address);
    }
    // ECDSA with a fresh nonce each time: no two signatures of one digest coincide.
    const again = await signer.signDigest(digests[0] as `0x${string}`);
    expect(again.r).not.toBe(sigs[0]?.r);
  });

  it.each([["0x1234"], ["0x" + "zz".repeat(32)], [keccak256(toHex("x")) + "00"]])("refuses a digest that is not 32 bytes of hex: %s", async (digest) => {
    await expect(signer.signDigest(digest as `0x${string}`)).rejects.toThrow(/32 bytes/);
  });

  it.each([
    ["an unknown token label", { tokenLabel: "no-such-token" }, /no token labelled "no-such-token"/],
    ["a wrong PIN", { pin: "wrong-pin" }, /CKR_PIN_INCORRECT|PIN/],
    ["an unknown key label", { keyLabel: "nope" }, /expected one EC private key labelled "nope", found 0/],
    ["a missing module", { modulePath: "/nonexistent/libpkcs11.so" }, /nonexistent/],
  ])("refuses to open with %s", (_what, change, message) => {
    const other = spareToken();
    expect(() => Pkcs11Signer.open({ ...other.settings, ...change })).toThrow(message);
  });

  it("refuses a key that could leave the token (extractable)", () => {
    const other = spareToken();
    withSession(other.settings, (lib, session) => {
      const label = { type: pkcs11js.CKA_LABEL, value: "leaky" };
      lib.C_GenerateKeyPair(
        session,
        { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_EC_PARAMS, value: SECP256K1_EC_PARAMS }, { type: pkcs11js.CKA_VERIFY, value: true }, label],
        [{ type: pkcs11js.CKA_TOKEN, value: true }, { type: pkcs11js.CKA_SIGN, value: true }, { type: pkcs11js.CKA_SENSITIVE, value: false }, { type: pkcs11js.CKA_EXTRACTABLE, value: true }, label],
      );
    });
    expect(() => Pkcs11Signer.open({ ...other.settings, keyLabel: "leaky" })).toThrow(/must be generated on the token, sensitive and never extractable/);
  });

  it("a closed signer refuses to sign", async () => {
    const s = Pkcs11Signer.open(token.settings);
    await s.close();
    await expect(s.signDigest(keccak256(toHex("late")))).rejects.toThrow(/closed/);
  });
});

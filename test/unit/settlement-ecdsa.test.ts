import { describe, expect, it } from "vitest";
import { secp256k1 } from "@noble/curves/secp256k1";
import { keccak256, toHex, hexToBytes, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAddress, sign } from "viem/accounts";
import { addressOfPublicKey, SigningKey } from "../../src/adapters/pkcs11/ecdsa.js";
import type { Address, EcdsaSignature } from "../../src/domain/settlement/ports.js";

/** The key of `privateKey` as the PKCS#11 signer holds it: only the public half. */
function keyOf(privateKey: Hex): SigningKey {
  return new SigningKey(secp256k1.getPublicKey(privateKey.slice(2), false));
}

const keys = new Map<Address, SigningKey>();
/** As the signer calls it: the raw (r ‖ s) the token returned, for the key at `address`. */
async function toEthereumSignature(digest: Hex, raw: Uint8Array, address: Address): Promise<EcdsaSignature> {
  const key = keys.get(address);
  if (key === undefined) throw new Error(`signature does not recover ${address} (no such key)`);
  return key.toEthereumSignature(digest, raw);
}
import { DevKeySigner } from "../../src/adapters/evm/signer-dev-key.js";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const hex32 = (n: bigint): string => n.toString(16).padStart(64, "0");

describe("toEthereumSignature (raw r ‖ s from an HSM)", () => {
  const key = generatePrivateKey();
  const address = privateKeyToAddress(key);
  keys.set(address, keyOf(key));
  const digest = keccak256(toHex("settle"));

  it("moves a high s to the lower half and finds the recovery bit", async () => {
    const good = await sign({ hash: digest, privateKey: key });
    // The same signature with s' = n − s is equally valid ECDSA; HSMs return either.
    const highS = N - BigInt(good.s);
    const raw = hexToBytes(`0x${hex32(BigInt(good.r))}${hex32(highS)}`);
    const sig = await toEthereumSignature(digest, raw, address);
    expect(sig).toEqual({ r: good.r, s: good.s, yParity: good.yParity });
  });

  it("keeps a low s as it is", async () => {
    const good = await sign({ hash: digest, privateKey: key });
    const raw = hexToBytes(`0x${hex32(BigInt(good.r))}${hex32(BigInt(good.s))}`);
    expect(await toEthereumSignature(digest, raw, address)).toEqual({ r: good.r, s: good.s, yParity: good.yParity });
  });

  it("throws when the signature is not from the expected key, malformed or out of range", async () => {
    const good = await sign({ hash: digest, privateKey: key });
    const raw = hexToBytes(`0x${hex32(BigInt(good.r))}${hex32(BigInt(good.s))}`);
    const other = generatePrivateKey();
    keys.set(privateKeyToAddress(other), keyOf(other));
    await expect(toEthereumSignature(digest, raw, privateKeyToAddress(other))).rejects.toThrow(/does not verify against the signer's key/);
    // Another digest under the right key fails the same way.
    await expect(toEthereumSignature(keccak256(toHex("other")), raw, address)).rejects.toThrow(/does not verify/);
    await expect(toEthereumSignature(digest, raw.subarray(1), address)).rejects.toThrow(/64 bytes/);
    await expect(toEthereumSignature(digest, new Uint8Array(64), address)).rejects.toThrow(/out of range/);
    await expect(toEthereumSignature(digest, hexToBytes(`0x${hex32(N)}${hex32(1n)}`), address)).rejects.toThrow(/out of range/);
  });

  it("agrees with the recovery bit noble-curves computes, over many signatures", async () => {
    for (let i = 0; i < 50; i++) {
      const d = keccak256(toHex(`m${i}`));
      const good = await sign({ hash: d, privateKey: key });
      const raw = hexToBytes(`0x${hex32(BigInt(good.r))}${hex32(i % 2 === 0 ? BigInt(good.s) : N - BigInt(good.s))}`);
      expect(await toEthereumSignature(d, raw, address)).toEqual({ r: good.r, s: good.s, yParity: good.yParity });
    }
  });

  it("derives the address of an uncompressed public key and refuses anything else", () => {
    expect(keyOf(key).address).toBe(address);
    expect(() => addressOfPublicKey(new Uint8Array(33))).toThrow(/uncompressed/);
    expect(() => addressOfPublicKey(new Uint8Array(65))).toThrow(/uncompressed/);
  });
});

describe("dev-key signer", () => {
  it("signs digests that recover its address", async () => {
    const key = generatePrivateKey();
    const signer = new DevKeySigner(key);
    expect(signer.address).toBe(privateKeyToAddress(key));
    const digest = keccak256(toHex("x"));
    const sig = await signer.signDigest(digest);
    expect(keyOf(key).toEthereumSignature(digest, hexToBytes(`0x${sig.r.slice(2)}${sig.s.slice(2)}`))).toEqual(sig);
  });

  it("refuses a malformed key or digest", async () => {
    expect(() => new DevKeySigner("0x1234")).toThrow(/32 bytes/);
    await expect(new DevKeySigner(generatePrivateKey()).signDigest("0x12")).rejects.toThrow(/32 bytes/);
  });
});

import { describe, expect, it } from "vitest";
import { keccak256, toHex, hexToBytes } from "viem";
import { generatePrivateKey, privateKeyToAddress, sign } from "viem/accounts";
import { addressOfPublicKey, toEthereumSignature } from "../../src/settlement/ecdsa.js";
import { DevKeySigner } from "../../src/settlement/signer-dev-key.js";

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const hex32 = (n: bigint): string => n.toString(16).padStart(64, "0");

describe("toEthereumSignature (raw r ‖ s from an HSM)", () => {
  const key = generatePrivateKey();
  const address = privateKeyToAddress(key);
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
    await expect(toEthereumSignature(digest, raw, privateKeyToAddress(generatePrivateKey()))).rejects.toThrow(/does not recover/);
    await expect(toEthereumSignature(digest, raw.subarray(1), address)).rejects.toThrow(/64 bytes/);
    await expect(toEthereumSignature(digest, new Uint8Array(64), address)).rejects.toThrow(/out of range/);
    await expect(toEthereumSignature(digest, hexToBytes(`0x${hex32(N)}${hex32(1n)}`), address)).rejects.toThrow(/out of range/);
  });

  it("derives the address of an uncompressed public key and refuses anything else", () => {
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
    expect(await toEthereumSignature(digest, hexToBytes(`0x${sig.r.slice(2)}${sig.s.slice(2)}`), signer.address)).toEqual(sig);
  });

  it("refuses a malformed key or digest", async () => {
    expect(() => new DevKeySigner("0x1234")).toThrow(/32 bytes/);
    await expect(new DevKeySigner(generatePrivateKey()).signDigest("0x12")).rejects.toThrow(/32 bytes/);
  });
});

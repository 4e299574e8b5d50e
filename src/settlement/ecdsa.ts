/**
 * secp256k1 details an HSM leaves to the caller. PKCS#11's CKM_ECDSA returns
 * the bare (r, s) pair: Ethereum nodes refuse a high s (EIP-2), and a
 * transaction needs the recovery bit, which the device does not report, so
 * it is found by recovering the public key from each candidate.
 */
import { recoverAddress, isAddressEqual, getAddress, keccak256 } from "viem";
import type { Address, EcdsaSignature, Hex } from "./ports.js";

/** The order n of secp256k1's base point. */
const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HALF_ORDER = CURVE_ORDER >> 1n;

function toHex32(n: bigint): Hex {
  return `0x${n.toString(16).padStart(64, "0")}`;
}

/**
 * Turns a raw 64-byte (r ‖ s) signature into an Ethereum signature for
 * `address`: s moved to the lower half (n − s), the recovery bit found by
 * recovery. Throws when neither bit recovers `address` (the wrong key signed,
 * or the device returned garbage).
 */
export async function toEthereumSignature(digest: Hex, rawRs: Uint8Array, address: Address): Promise<EcdsaSignature> {
  if (rawRs.length !== 64) throw new Error(`ECDSA signature must be 64 bytes (r ‖ s), got ${rawRs.length}`);
  const r = BigInt("0x" + Buffer.from(rawRs.subarray(0, 32)).toString("hex"));
  let s = BigInt("0x" + Buffer.from(rawRs.subarray(32)).toString("hex"));
  if (r === 0n || r >= CURVE_ORDER || s === 0n || s >= CURVE_ORDER) throw new Error("ECDSA signature out of range");
  if (s > HALF_ORDER) s = CURVE_ORDER - s;
  for (const yParity of [0, 1] as const) {
    const candidate = { r: toHex32(r), s: toHex32(s), yParity };
    const recovered = await recoverAddress({ hash: digest, signature: candidate });
    if (isAddressEqual(recovered, address)) return candidate;
  }
  throw new Error(`signature does not recover the signer's address ${address}`);
}

/** The address of an uncompressed secp256k1 public key (0x04 ‖ X ‖ Y). */
export function addressOfPublicKey(uncompressed: Uint8Array): Address {
  if (uncompressed.length !== 65 || uncompressed[0] !== 0x04) throw new Error("expected a 65-byte uncompressed secp256k1 point");
  const hash = keccak256(uncompressed.subarray(1));
  return getAddress(`0x${hash.slice(-40)}`);
}

/** True for a 32-byte hex digest. */
export function isDigest(digest: string): digest is Hex {
  return /^0x[0-9a-fA-F]{64}$/.test(digest);
}

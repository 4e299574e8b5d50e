/**
 * Minter allowances in memory: what is left of each minter's allowance, its
 * generation (bumped by every Set: a Set is final, so a refund of a charge
 * taken before it never raises the value it set), and the generation each
 * charged mint was taken from. Every method is synchronous, so a check and
 * its change share one stretch of the store's critical section.
 */
import { assert } from "../../domain/errors.js";
import type { MintRecord, NewMint } from "../../domain/model.js";
import { fail, ok, type Result } from "../../domain/result.js";

interface Allowance {
  remainingMicros: bigint;
  generation: number;
}

export class MemoryAllowances {
  /** What is left of each minter's allowance, and its generation (bumped by every Set). */
  private readonly byPrincipal = new Map<string, Allowance>();
  /** The allowance generation each charged mint was taken from, until it is refunded or final. */
  private readonly chargedGeneration = new Map<string, number>();

  /** What is left of the principal's allowance; 0 when never set. */
  remaining(principal: string): bigint {
    return this.byPrincipal.get(principal)?.remainingMicros ?? 0n;
  }

  /** Sets what is left and starts a new generation; with `expectedMicros`, only while what is left is exactly that. */
  set(principal: string, amountMicros: bigint, expectedMicros?: bigint): Result<void> {
    assert(amountMicros >= 0n, "an allowance is not negative");
    const current = this.byPrincipal.get(principal);
    const remainingMicros = current?.remainingMicros ?? 0n;
    if (expectedMicros !== undefined && remainingMicros !== expectedMicros) return fail({ code: "ALLOWANCE_CHANGED", principal, remainingMicros, expectedMicros });
    this.byPrincipal.set(principal, { remainingMicros: amountMicros, generation: (current?.generation ?? 0) + 1 });
    return ok(undefined);
  }

  /** Remembers the generation a charged mint took from, until it is refunded. */
  charged(mintId: string, generation: number): void {
    this.chargedGeneration.set(mintId, generation);
  }

  /**
   * Consumes the requester's allowance for a mint that charges one
   * (synchronous: check and take in one stretch); returns the generation
   * taken from, or null when the mint charges nothing.
   */
  charge(cmd: NewMint): Result<number | null> {
    if (cmd.chargeAllowance !== true) return ok(null);
    const principal = cmd.requester ?? "";
    const a = this.byPrincipal.get(principal);
    const left = a?.remainingMicros ?? 0n;
    if (a === undefined || left < cmd.amountMicros) return fail({ code: "ALLOWANCE_EXCEEDED", principal, remainingMicros: left, amountMicros: cmd.amountMicros });
    a.remainingMicros = left - cmd.amountMicros;
    return ok(a.generation);
  }

  /** Gives a charge back when its generation is still current (no Set since). */
  giveBack(principal: string, amountMicros: bigint, generation: number): boolean {
    const a = this.byPrincipal.get(principal);
    if (a === undefined || a.generation !== generation) return false;
    a.remainingMicros += amountMicros;
    return true;
  }

  /**
   * The refund of a rejected or reversed mint: null when it charged no
   * allowance, else whether the amount went back (false: the allowance was
   * set since the charge, and the Set stands). Once per mint.
   */
  refund(mint: MintRecord): boolean | null {
    if (mint.allowanceCharged !== true || mint.requester === undefined) return null;
    const generation = this.chargedGeneration.get(mint.mintId);
    assert(generation !== undefined, "a charged mint remembers its allowance generation until refunded");
    this.chargedGeneration.delete(mint.mintId);
    return this.giveBack(mint.requester, mint.amountMicros, generation);
  }
}

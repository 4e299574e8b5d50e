/**
 * The deadline link: how much earlier than the caller the server gives up
 * waiting. Short deadlines get a margin of at least 20 ms (so an answer has
 * room to reach the caller before its own timer resets the stream), long ones
 * at most 50 ms, a quarter of the time left in between; a caller with no
 * deadline gets none. And the call's cancellation flag, which the hot path
 * reads without making an AbortSignal.
 */
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { Call, type Answer, type EdgeCall } from "../../src/transport/grpc/chain.js";
import { deadline } from "../../src/transport/grpc/links.js";
import { isAborted } from "../../src/domain/ports.js";
import { FakeClock } from "../support/fake-clock.js";

/** The core's deadline, relative to the clock's now, for a caller with `remainingMs` left (Infinity: none). */
async function serverWaitMs(remainingMs: number): Promise<number> {
  const clock = new FakeClock();
  const wallDeadline = remainingMs === Infinity ? Infinity : Date.now() + remainingMs;
  const raw = { getDeadline: () => wallDeadline, once: () => undefined } as unknown as ConstructorParameters<typeof Call>[1];
  const call = new Call("Transfer", raw, Infinity);
  let seen: EdgeCall | undefined;
  await deadline(clock)(call, (c) => {
    seen = c;
    return Promise.resolve<Answer>({ ok: true, value: null });
  });
  return (seen as EdgeCall).deadlineMs - clock.nowMs();
}

describe("deadline link", () => {
  it("stops waiting at least 20 ms before a short deadline: with 20 ms or less left, it does not wait at all", async () => {
    expect(await serverWaitMs(20)).toBeLessThanOrEqual(0);
    expect(await serverWaitMs(10)).toBeLessThanOrEqual(-9);
    expect(await serverWaitMs(40)).toBeCloseTo(20, -0.5);
  });

  it("takes a quarter of the time left in between, and at most 50 ms", async () => {
    expect(await serverWaitMs(100)).toBeCloseTo(75, -0.5);
    expect(await serverWaitMs(1_000)).toBeCloseTo(950, -0.5);
    expect(await serverWaitMs(60_000)).toBeCloseTo(59_950, -0.5);
  });

  it("answers a call whose deadline has already passed DEADLINE_EXCEEDED without running it", async () => {
    const raw = { getDeadline: () => Date.now() - 1, once: () => undefined } as unknown as ConstructorParameters<typeof Call>[1];
    let ran = false;
    const answer = await deadline(new FakeClock())(new Call("Transfer", raw, Infinity), () => {
      ran = true;
      return Promise.resolve<Answer>({ ok: true, value: null });
    });
    expect([ran, answer.ok ? "ok" : answer.error.code]).toEqual([false, "DEADLINE_EXCEEDED"]);
  });

  it("leaves a call without a deadline without one", async () => {
    expect(await serverWaitMs(Infinity)).toBe(Infinity);
  });
});

describe("the call's cancellation flag", () => {
  const raw = { getDeadline: () => Infinity, once: () => undefined } as unknown as ConstructorParameters<typeof Call>[1];

  it("is read without making the AbortSignal; a cancel before the answer aborts the signal, made then or later", () => {
    const call = new Call("MintUsdc", raw, Infinity);
    expect(call.aborted).toBe(false);
    expect(isAborted(call)).toBe(false);
    const early = call.signal;
    call.cancel();
    expect([call.aborted, early.aborted, isAborted(call)]).toEqual([true, true, true]);

    const late = new Call("MintUsdc", raw, Infinity);
    late.cancel();
    expect([late.aborted, late.signal.aborted]).toEqual([true, true]);
  });

  it("grpc-js's 'cancelled' after the answer (it comes on every call) aborts nothing", () => {
    const call = new Call("MintUsdc", raw, Infinity);
    const signal = call.signal;
    let aborts = 0;
    signal.addEventListener("abort", () => aborts++);
    call.answered();
    call.cancel();
    expect([signal.aborted, aborts]).toEqual([false, 0]);
  });

  it("reads grpc-js's `cancelled` on its call: no listener until a signal is made, which then aborts when the caller goes away", () => {
    const grpcCall = Object.assign(new EventEmitter(), { cancelled: false, getDeadline: () => Infinity });
    const call = new Call("Transfer", grpcCall as unknown as ConstructorParameters<typeof Call>[1], Infinity);
    expect([call.aborted, grpcCall.listenerCount("cancelled")]).toEqual([false, 0]);
    const signal = call.signal;
    expect(grpcCall.listenerCount("cancelled")).toBe(1);
    grpcCall.cancelled = true;
    expect(call.aborted).toBe(true);
    grpcCall.emit("cancelled");
    expect(signal.aborted).toBe(true);
  });

  it("a signal made after the caller went away is aborted at once", () => {
    const grpcCall = Object.assign(new EventEmitter(), { cancelled: true, getDeadline: () => Infinity });
    const call = new Call("Transfer", grpcCall as unknown as ConstructorParameters<typeof Call>[1], Infinity);
    expect([call.aborted, call.signal.aborted, grpcCall.listenerCount("cancelled")]).toEqual([true, true, 0]);
  });

  it("a plain Wait without the flag falls back to its signal", () => {
    const c = new AbortController();
    expect(isAborted({ deadlineMs: Infinity, signal: c.signal })).toBe(false);
    c.abort();
    expect(isAborted({ deadlineMs: Infinity, signal: c.signal })).toBe(true);
    expect(isAborted({ deadlineMs: Infinity })).toBe(false);
  });
});

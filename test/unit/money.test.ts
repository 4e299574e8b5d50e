import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Failure } from "../../src/domain/errors.js";
import { formatMicros, MICROS_PER_USDC, parseAmount, parseConfigAmount } from "../../src/domain/money.js";
import type { Result } from "../../src/domain/result.js";

/** API.md's default maximum: 1,000,000,000,000 USDC, in micro-USDC. */
const DEFAULT_MAX_MICROS = 1_000_000_000_000n * MICROS_PER_USDC;
/** A maximum far beyond 2^53 micro-USDC, so exactness of large values can be checked. */
const HUGE_MAX_MICROS = 10n ** 40n;

/** The wire grammar of API.md, and the canonical form (no trailing fractional zeros). */
const GRAMMAR = /^(0|[1-9][0-9]*)(\.[0-9]{1,6})?$/;
const CANONICAL = /^(0|[1-9][0-9]*)(\.[0-9]{0,5}[1-9])?$/;

function expectFailure(r: Result<bigint>): Failure {
  expect(r.ok).toBe(false);
  if (r.ok) throw new Error(`expected a failure, got ${r.value}`);
  return r.error;
}

function expectMicros(r: Result<bigint>): bigint {
  if (!r.ok) throw new Error(`expected an amount, got ${JSON.stringify(r.error)}`);
  return r.value;
}

describe("parseAmount: every malformed amount of API.md is INVALID_ARGUMENT / INVALID_AMOUNT", () => {
  const bad: [string, string][] = [
    ["empty", ""],
    ["zero", "0"],
    ["zero with decimals", "0.000000"],
    ["zero with one decimal", "0.0"],
    ["negative", "-1"],
    ["negative fraction", "-0.5"],
    ["explicit plus", "+1"],
    ["exponent", "1e3"],
    ["upper-case exponent", "1E3"],
    ["fractional exponent", "1.5e2"],
    ["leading zero", "01"],
    ["leading zeros before a fraction", "00.1"],
    ["leading zero on a whole", "007"],
    ["trailing dot", "1."],
    ["leading dot", ".5"],
    ["lone dot", "."],
    ["7 decimals", "1.0000001"],
    ["7 decimals, all zero after the 6th", "1.0000000"],
    ["7 decimals below one micro", "0.0000001"],
    ["leading space", " 1"],
    ["trailing space", "1 "],
    ["inner space", "1 000"],
    ["trailing newline", "1\n"],
    ["tab", "\t1"],
    ["comma thousands", "1,000"],
    ["comma decimal", "1,5"],
    ["underscore separator", "1_000"],
    ["hex", "0x10"],
    ["upper-case hex", "0X1F"],
    ["binary literal", "0b1"],
    ["octal literal", "0o7"],
    ["full-width digits", "\uff11\uff12\uff13"],
    ["Arabic-Indic digits", "\u0661\u0662"],
    ["full-width dot", "1\uff0e5"],
    ["NaN", "NaN"],
    ["Infinity", "Infinity"],
    ["-Infinity", "-Infinity"],
    ["letters", "abc"],
    ["currency suffix", "1USDC"],
    ["dollar prefix", "$1"],
    ["two dots", "1.2.3"],
    ["bigint literal suffix", "1n"],
    ["very long digits", "1".repeat(100_000)],
    ["very long fraction", "1." + "0".repeat(10_000) + "1"],
    ["very long zeros", "0".repeat(70)],
    ["NUL", "1\u0000"],
  ];

  it.each(bad)("%s (%j)", (_name, text) => {
    const err = expectFailure(parseAmount(text, DEFAULT_MAX_MICROS));
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", reason: "INVALID_AMOUNT", field: "amount" });
    if (err.code === "INVALID_ARGUMENT") expect(err.message.length).toBeGreaterThan(0);
  });

  it("names the field it was given (e.g. a transfer's amount under another name)", () => {
    const err = expectFailure(parseAmount("-1", DEFAULT_MAX_MICROS, "reason"));
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", reason: "INVALID_AMOUNT", field: "reason" });
  });

  it("never throws and never accepts a string outside the grammar (random strings)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.stringMatching(/^[-+0-9.eE, x]{0,12}$/)), (text) => {
        const r = parseAmount(text, DEFAULT_MAX_MICROS);
        if (r.ok) {
          expect(text).toMatch(GRAMMAR);
          expect(r.value).toBeGreaterThan(0n);
          expect(r.value).toBeLessThanOrEqual(DEFAULT_MAX_MICROS);
        } else {
          expect(r.error.code).toBe("INVALID_ARGUMENT");
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("parseAmount: the maximum", () => {
  it("accepts exactly the maximum", () => {
    expect(expectMicros(parseAmount("1000000000000", DEFAULT_MAX_MICROS))).toBe(DEFAULT_MAX_MICROS);
    expect(expectMicros(parseAmount("1000000000000.000000", DEFAULT_MAX_MICROS))).toBe(DEFAULT_MAX_MICROS);
  });

  it("refuses one micro-USDC above the maximum with AMOUNT_TOO_LARGE", () => {
    const err = expectFailure(parseAmount("1000000000000.000001", DEFAULT_MAX_MICROS));
    expect(err).toMatchObject({ code: "INVALID_ARGUMENT", reason: "AMOUNT_TOO_LARGE", field: "amount" });
    if (err.code === "INVALID_ARGUMENT") expect(err.message).toContain("1000000000000");
  });

  it("refuses far larger (still well-formed) amounts with AMOUNT_TOO_LARGE", () => {
    for (const text of ["1000000000001", "99999999999999999999", "18446744073709551616.5"]) {
      expect(expectFailure(parseAmount(text, DEFAULT_MAX_MICROS))).toMatchObject({ reason: "AMOUNT_TOO_LARGE", field: "amount" });
    }
  });

  it("applies a small configured maximum exactly", () => {
    expect(expectMicros(parseAmount("0.000005", 5n))).toBe(5n);
    expect(expectFailure(parseAmount("0.000006", 5n))).toMatchObject({ reason: "AMOUNT_TOO_LARGE" });
  });

  it("checks the grammar before the maximum (a malformed huge amount is INVALID_AMOUNT)", () => {
    expect(expectFailure(parseAmount("-99999999999999999999", DEFAULT_MAX_MICROS))).toMatchObject({ reason: "INVALID_AMOUNT" });
  });
});

describe("parseAmount: values", () => {
  it.each([
    ["1", 1_000_000n],
    ["0.000001", 1n],
    ["0.5", 500_000n],
    ["100.50", 100_500_000n],
    ["7", 7_000_000n],
    ["7.000000", 7_000_000n],
    ["7.0", 7_000_000n],
    ["123.456789", 123_456_789n],
    ["10", 10_000_000n],
  ] as const)("%j = %s micro-USDC", (text, micros) => {
    expect(expectMicros(parseAmount(text, DEFAULT_MAX_MICROS))).toBe(micros);
  });

  it('"7" and "7.000000" are the same amount', () => {
    expect(parseAmount("7", DEFAULT_MAX_MICROS)).toEqual(parseAmount("7.000000", DEFAULT_MAX_MICROS));
  });

  it("is exact past 2^53 micro-USDC (where a double would round)", () => {
    // 2^53 + 1 micro-USDC is not representable as a double.
    const twoTo53Plus1 = 2n ** 53n + 1n;
    expect(BigInt(Number(twoTo53Plus1))).not.toBe(twoTo53Plus1); // a double would lose it
    expect(expectMicros(parseAmount("9007199254.740993", HUGE_MAX_MICROS))).toBe(twoTo53Plus1);
    expect(formatMicros(twoTo53Plus1)).toBe("9007199254.740993");

    const big = "123456789012345678.123456";
    const micros = expectMicros(parseAmount(big, HUGE_MAX_MICROS));
    expect(micros).toBe(123_456_789_012_345_678_123_456n);
    expect(formatMicros(micros)).toBe(big);

    const max = "999999999999999999999999.999999";
    expect(formatMicros(expectMicros(parseAmount(max, HUGE_MAX_MICROS)))).toBe(max);
  });

  it("keeps the default maximum (10^18 micro-USDC, past 2^53) exact", () => {
    expect(expectMicros(parseAmount("999999999999.999999", DEFAULT_MAX_MICROS))).toBe(DEFAULT_MAX_MICROS - 1n);
    expect(formatMicros(DEFAULT_MAX_MICROS - 1n)).toBe("999999999999.999999");
  });
});

describe("formatMicros: canonical form", () => {
  it.each([
    [100_500_000n, "100.5"],
    [7_000_000n, "7"],
    [1n, "0.000001"],
    [0n, "0"],
    [10n, "0.00001"],
    [1_000_000n, "1"],
    [10_000_000n, "10"],
    [1_100_000n, "1.1"],
    [123_456_789n, "123.456789"],
    [-3_250_000n, "-3.25"],
    [-1n, "-0.000001"],
  ] as const)("%s micro-USDC -> %j", (micros, text) => {
    expect(formatMicros(micros)).toBe(text);
  });

  it('"100.50" -> "100.5", "7.000000" -> "7", "0.000001" stays', () => {
    const canon = (t: string) => formatMicros(expectMicros(parseAmount(t, DEFAULT_MAX_MICROS)));
    expect(canon("100.50")).toBe("100.5");
    expect(canon("7.000000")).toBe("7");
    expect(canon("0.000001")).toBe("0.000001");
    expect(canon("0.100000")).toBe("0.1");
  });
});

describe("money properties", () => {
  it("format then parse gives back the same micros, and the format is canonical", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.bigInt({ min: 1n, max: DEFAULT_MAX_MICROS }),
          fc.bigInt({ min: 1n, max: 10_000_000n }),
          fc.bigInt({ min: 1n, max: 1_000_000_000n }).map((w) => w * MICROS_PER_USDC),
        ),
        (micros) => {
          const text = formatMicros(micros);
          expect(text).toMatch(GRAMMAR);
          expect(text).toMatch(CANONICAL);
          expect(text.endsWith(".")).toBe(false);
          expect(expectMicros(parseAmount(text, DEFAULT_MAX_MICROS))).toBe(micros);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("round-trips past 2^53 with a large maximum", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: HUGE_MAX_MICROS }), (micros) => {
        const text = formatMicros(micros);
        expect(text).toMatch(CANONICAL);
        expect(expectMicros(parseAmount(text, HUGE_MAX_MICROS))).toBe(micros);
      }),
      { numRuns: 300 },
    );
  });

  it("any grammatical spelling (trailing zeros padded) parses to the value of its canonical form", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: DEFAULT_MAX_MICROS }), fc.nat({ max: 6 }), (micros, extraZeros) => {
        const canonical = formatMicros(micros);
        const frac = canonical.includes(".") ? canonical.split(".")[1]!.length : 0;
        const pad = Math.min(extraZeros, 6 - frac);
        const spelled = pad === 0 ? canonical : canonical + (frac === 0 ? "." : "") + "0".repeat(pad);
        expect(spelled).toMatch(GRAMMAR);
        expect(expectMicros(parseAmount(spelled, DEFAULT_MAX_MICROS))).toBe(micros);
        expect(formatMicros(expectMicros(parseAmount(spelled, DEFAULT_MAX_MICROS)))).toBe(canonical);
      }),
      { numRuns: 500 },
    );
  });
});

describe("parseConfigAmount (MINT_MAX_AMOUNT)", () => {
  it("accepts up to what numeric(38,0) holds and refuses one micro more", () => {
    expect(parseConfigAmount("99999999999999999999999999999999.999999")).toBe(10n ** 38n - 1n);
    expect(parseConfigAmount("100000000000000000000000000000000")).toBeNull();
  });

  it("parses well-formed positive amounts, including ones past 2^53 micros", () => {
    expect(parseConfigAmount("1000000000000")).toBe(DEFAULT_MAX_MICROS);
    expect(parseConfigAmount("0.5")).toBe(500_000n);
    expect(parseConfigAmount("123456789012345678.123456")).toBe(123_456_789_012_345_678_123_456n);
  });

  it.each(["", "0", "-1", "1e3", "abc", "1.0000001", " "])("refuses %j", (text) => {
    expect(parseConfigAmount(text)).toBeNull();
  });
});

/**
 * Comparing computed numbers with a fixture's, with float32 tolerances:
 * an element passes when |a − e| ≤ max(atol, rtol·|e|) (README of the
 * reference fixtures: relative 1e-4, absolute 1e-5 near zero).
 */
export interface Comparison {
  maxAbsErr: number;
  maxRelErr: number;
  passed: boolean;
  /** Where the worst element is, for the report. */
  worst?: string;
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

export const FLOAT32_TOLERANCE: Tolerance = { rtol: 1e-4, atol: 1e-5 };

/** Flatten nested number arrays (row-major). */
export function flatten(x: unknown): number[] {
  if (typeof x === 'number') return [x];
  if (!Array.isArray(x)) throw new Error(`expected a number or nested list, got ${typeof x}`);
  const out: number[] = [];
  const walk = (y: unknown): void => {
    if (Array.isArray(y)) y.forEach(walk);
    else out.push(Number(y));
  };
  walk(x);
  return out;
}

/** Shape of a nested list. */
export function shapeOf(x: unknown): number[] {
  const s: number[] = [];
  let y = x;
  while (Array.isArray(y)) {
    s.push(y.length);
    y = y[0];
  }
  return s;
}

export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tolerance = FLOAT32_TOLERANCE): Comparison {
  if (actual.length !== expected.length) {
    return { maxAbsErr: Infinity, maxRelErr: Infinity, passed: false, worst: `length ${actual.length} ≠ expected ${expected.length}` };
  }
  let maxAbs = 0;
  let maxRel = 0;
  let passed = true;
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const abs = Math.abs(a - e);
    const rel = abs / Math.max(Math.abs(e), 1e-12);
    if (!(abs <= Math.max(tol.atol, tol.rtol * Math.abs(e)))) passed = false;
    if (!Number.isFinite(a)) passed = false;
    maxAbs = Math.max(maxAbs, abs);
    if (Math.abs(e) > tol.atol) maxRel = Math.max(maxRel, rel);
    const ratio = abs / Math.max(tol.atol, tol.rtol * Math.abs(e));
    if (ratio > worstRatio || Number.isNaN(a)) {
      worstRatio = ratio;
      worst = i;
    }
  }
  return {
    maxAbsErr: maxAbs,
    maxRelErr: maxRel,
    passed,
    worst: worst >= 0 ? `element ${worst}: got ${actual[worst]}, expected ${expected[worst]}` : undefined,
  };
}

/** Merge several comparisons into one line's numbers. */
export function combine(parts: Comparison[]): Comparison {
  const failed = parts.find((p) => !p.passed);
  return {
    maxAbsErr: Math.max(0, ...parts.map((p) => p.maxAbsErr)),
    maxRelErr: Math.max(0, ...parts.map((p) => p.maxRelErr)),
    passed: parts.every((p) => p.passed),
    worst: failed?.worst,
  };
}

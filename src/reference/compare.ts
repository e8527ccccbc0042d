/**
 * Comparing computed numbers with a fixture's — the one pass rule every
 * reference check uses: an element passes when |a − e| ≤ max(atol, rtol·|e|)
 * (README of the reference fixtures: float32, relative 1e-4, absolute 1e-5
 * near zero). `compare` takes two arrays; `Comparer` collects values one at a
 * time (metrics, votes) under the same rule.
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

/** Collects (actual, expected) pairs one at a time under `compare`'s rule, remembering the first failure. */
export class Comparer {
  private maxAbs = 0;
  private maxRel = 0;
  private bad = 0;
  private firstBad = '';

  constructor(private readonly tol: Tolerance = FLOAT32_TOLERANCE) {}

  add(actual: number, expected: number, where: string): void {
    const abs = Math.abs(actual - expected);
    // NaN compares false everywhere: count it as a failure explicitly.
    if (!(abs <= Math.max(this.tol.atol, this.tol.rtol * Math.abs(expected))) || !Number.isFinite(actual)) {
      this.bad++;
      if (!this.firstBad) this.firstBad = `${where}: got ${actual}, expected ${expected}`;
    }
    if (Number.isNaN(abs)) {
      this.maxAbs = Infinity;
      return;
    }
    this.maxAbs = Math.max(this.maxAbs, abs);
    if (Math.abs(expected) > this.tol.atol) this.maxRel = Math.max(this.maxRel, abs / Math.abs(expected));
  }

  /** The comparison so far; `problems` (other checks that failed) are listed after the value failures. */
  result(problems: string[] = []): Comparison & { detail?: string } {
    const all = this.bad > 0 ? [`${this.bad} value(s) outside tolerance, first ${this.firstBad}`, ...problems] : problems;
    const out: Comparison & { detail?: string } = { maxAbsErr: this.maxAbs, maxRelErr: this.maxRel, passed: all.length === 0 };
    if (all.length) out.detail = all.join('; ');
    return out;
  }
}

/** The fixture formats `verify-reference` knows (recognised by content). */
export type FixtureKind = 'ibot_loss' | 'vit_forward' | 'ibot_head' | 'knn' | 'cluster_metrics' | 'schedules';

export interface FixtureResult extends Comparison {
  file: string;
  kind: FixtureKind;
  /** Case label within the file. */
  name: string;
  detail?: string;
}


/**
 * Checks of the evaluation code against reference fixtures computed by an
 * independent PyTorch / scikit-learn implementation (`knn.json`,
 * `cluster_metrics.json`; format in the fixtures' README). Each function
 * takes the parsed JSON and returns one entry per case; the CLI's
 * `verify-reference` prints them. The k-NN check runs tf ops on the active
 * backend, so set one first.
 */
import * as tf from '@tensorflow/tfjs-core';
import { knnClassify, type KnnResult } from '../eval/knn';
import { ari, fmi, hungarianAccuracy, nmi, purity } from '../eval/metrics';
import { Comparer, type Comparison } from './compare';

/** One case of a fixture: its name, the errors against the expected values, and what failed. */
export interface ReferenceCheck extends Comparison {
  name: string;
  detail?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function numArray(v: unknown, what: string): number[] {
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) throw new Error(`${what} must be an array of numbers`);
  return v as number[];
}

function matrix(v: unknown, what: string): { data: Float32Array; rows: number; cols: number } {
  if (!Array.isArray(v) || v.length === 0) throw new Error(`${what} must be a non-empty array of rows`);
  const rows = v.length;
  const first = numArray(v[0], `${what}[0]`);
  const cols = first.length;
  const data = new Float32Array(rows * cols);
  v.forEach((r, i) => {
    const row = numArray(r, `${what}[${i}]`);
    if (row.length !== cols) throw new Error(`${what}[${i}] has ${row.length} entries, row 0 has ${cols}`);
    data.set(row, i * cols);
  });
  return { data, rows, cols };
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number') throw new Error(`${what} must be a number`);
  return v;
}

function casesOf(json: unknown, file: string): unknown[] {
  if (!isRecord(json) || !Array.isArray(json.cases)) {
    throw new Error(`${file}: expected an object with a 'cases' array (is this the right fixture file?)`);
  }
  return json.cases;
}

function caseName(c: unknown, kind: string, i: number, extra: string): string {
  const given = isRecord(c) && typeof c.name === 'string' ? c.name : `case ${i}`;
  return `${kind} ${given}${extra ? ` (${extra})` : ''}`;
}

function failed(name: string, e: unknown): ReferenceCheck {
  return { name, maxAbsErr: Infinity, maxRelErr: Infinity, passed: false, detail: e instanceof Error ? e.message : String(e) };
}

function result(name: string, s: Comparer, problems: string[]): ReferenceCheck {
  return { name, ...s.result(problems) };
}

const KNN_EXPECTED = new Set(['predictions', 'votes', 'top1', 'top5']);

async function checkKnnCase(c: unknown, name: string): Promise<ReferenceCheck> {
  if (!isRecord(c)) throw new Error('case must be an object');
  const k = num(c.k, 'k');
  const temperature = num(c.temperature, 'temperature');
  const numClasses = num(c.numClasses, 'numClasses');
  const train = matrix(c.trainFeatures, 'trainFeatures');
  const test = matrix(c.testFeatures, 'testFeatures');
  const trainLabels = numArray(c.trainLabels, 'trainLabels');
  const testLabels = c.testLabels === undefined ? undefined : numArray(c.testLabels, 'testLabels');
  const exp = c.expected;
  if (!isRecord(exp)) throw new Error('expected must be an object');

  const trainT = tf.tensor2d(train.data, [train.rows, train.cols]);
  const testT = tf.tensor2d(test.data, [test.rows, test.cols]);
  let res: KnnResult;
  try {
    // The fixture's features are already unit-norm and the reference did not renormalise.
    res = await knnClassify(trainT, trainLabels, testT, { k, temperature, numClasses, testLabels, normalize: false, returnVotes: true });
  } finally {
    trainT.dispose();
    testT.dispose();
  }

  const s = new Comparer();
  const problems: string[] = [];
  const unknown = Object.keys(exp).filter((key) => !KNN_EXPECTED.has(key));
  if (unknown.length) problems.push(`unchecked expected field(s): ${unknown.join(', ')}`);
  if (exp.predictions !== undefined) {
    const p = numArray(exp.predictions, 'expected.predictions');
    if (p.length !== test.rows) problems.push(`expected.predictions has ${p.length} entries for ${test.rows} test rows`);
    const wrong: number[] = [];
    for (let i = 0; i < Math.min(p.length, test.rows); i++) if (res.predictions[i] !== p[i]) wrong.push(i);
    if (wrong.length) problems.push(`predictions differ at test rows ${wrong.slice(0, 10).join(', ')}${wrong.length > 10 ? ', …' : ''}`);
  }
  if (exp.votes !== undefined) {
    const v = matrix(exp.votes, 'expected.votes');
    if (v.rows !== test.rows || v.cols !== numClasses) {
      problems.push(`expected.votes is [${v.rows}, ${v.cols}], want [${test.rows}, ${numClasses}]`);
    } else {
      const got = res.votes as Float32Array;
      for (let i = 0; i < v.data.length; i++) s.add(got[i], v.data[i], `votes[${Math.floor(i / numClasses)}][${i % numClasses}]`);
    }
  }
  for (const key of ['top1', 'top5'] as const) {
    if (exp[key] === undefined) continue;
    if (!testLabels) problems.push(`expected.${key} given but the case has no testLabels`);
    else s.add(res[key] as number, num(exp[key], `expected.${key}`), key);
  }
  return result(name, s, problems);
}

/** Run every case of a `knn` fixture (weighted k-NN predictions and vote sums). */
export async function checkKnnFixture(json: unknown): Promise<ReferenceCheck[]> {
  const out: ReferenceCheck[] = [];
  for (const [i, c] of casesOf(json, 'knn fixture').entries()) {
    const extra = isRecord(c) ? `k=${String(c.k)}, T=${String(c.temperature)}` : '';
    const name = caseName(c, 'knn', i, extra);
    try {
      out.push(await checkKnnCase(c, name));
    } catch (e) {
      out.push(failed(name, e));
    }
  }
  return out;
}

const CLUSTER_METRICS: Record<string, (l: number[], c: number[]) => number> = {
  nmi: (l, c) => nmi(l, c),
  ari,
  fmi,
  acc: hungarianAccuracy,
  purity,
};

function checkClusterCase(c: unknown, name: string): ReferenceCheck {
  if (!isRecord(c)) throw new Error('case must be an object');
  const labels = numArray(c.labels, 'labels');
  const clusters = numArray(c.clusters, 'clusters');
  const exp = c.expected;
  if (!isRecord(exp)) throw new Error('expected must be an object');
  const s = new Comparer();
  const problems: string[] = [];
  for (const [key, value] of Object.entries(exp)) {
    const f = CLUSTER_METRICS[key];
    if (!f) {
      problems.push(`unchecked expected field '${key}' (known: ${Object.keys(CLUSTER_METRICS).join(', ')})`);
      continue;
    }
    s.add(f(labels, clusters), num(value, `expected.${key}`), key);
  }
  return result(name, s, problems);
}

/** Run every case of a `cluster_metrics` fixture (NMI, ARI, FMI, Hungarian accuracy, purity). */
export function checkClusterMetricsFixture(json: unknown): ReferenceCheck[] {
  return casesOf(json, 'cluster_metrics fixture').map((c, i) => {
    const extra = isRecord(c) && Array.isArray(c.labels) ? `n=${c.labels.length}` : '';
    const name = caseName(c, 'cluster_metrics', i, extra);
    try {
      return checkClusterCase(c, name);
    } catch (e) {
      return failed(name, e);
    }
  });
}

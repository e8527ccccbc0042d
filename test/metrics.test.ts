import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Rng } from '../src/util/rng';
import {
  ari,
  clusterMetrics,
  confusionMatrix,
  contingencyMatrix,
  entropy,
  fmi,
  hungarianAccuracy,
  matchClusters,
  nmi,
  pairConfusionMatrix,
  purity,
} from '../src/eval/metrics';
import { checkClusterMetricsFixture } from '../src/reference/eval-checks';
import { REFERENCE_DIR } from './helpers';

const close = (a: number, b: number, tol = 1e-12, msg?: string): void =>
  assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} got ${a}, expected ${b}`);

const FIXTURE = `${REFERENCE_DIR}/cluster_metrics.json`;

test('cluster_metrics.json fixture: every case passes', async () => {
  const results = checkClusterMetricsFixture(JSON.parse(fs.readFileSync(FIXTURE, 'utf8')));
  assert.ok(results.length > 0);
  for (const r of results) assert.ok(r.passed, `${r.name}: ${r.detail ?? ''} (abs ${r.maxAbsErr})`);
});

test('perfect clustering up to renaming gives 1 everywhere', async () => {
  const labels = [0, 0, 1, 1, 2, 2, 2];
  const clusters = [5, 5, 9, 9, 1, 1, 1];
  const m = clusterMetrics(labels, clusters);
  close(m.nmi, 1);
  close(m.ari, 1);
  close(m.fmi, 1);
  assert.equal(m.acc, 1);
  assert.equal(m.purity, 1);
});

test('metrics are invariant to permuting cluster ids and to swapping label names', async () => {
  const rng = new Rng(3);
  const labels = Array.from({ length: 300 }, () => rng.randint(0, 4));
  const clusters = labels.map((l) => (rng.bernoulli(0.3) ? rng.randint(0, 6) : l));
  const perm = rng.permutation(7);
  const renamed = clusters.map((c) => perm[c] * 3 + 11);
  const a = clusterMetrics(labels, clusters);
  const b = clusterMetrics(labels, renamed);
  for (const key of ['nmi', 'ari', 'fmi', 'acc', 'purity'] as const) close(a[key], b[key], 1e-12, key);
  // NMI, ARI and FMI are symmetric in their two arguments.
  close(nmi(clusters, labels), a.nmi, 1e-12);
  close(ari(clusters, labels), a.ari, 1e-12);
  close(fmi(clusters, labels), a.fmi, 1e-12);
});

// Expected values below were produced once with Debian's python3-sklearn 1.2.1 /
// scipy 1.10.1 (normalized_mutual_info_score, adjusted_rand_score,
// fowlkes_mallows_score, linear_sum_assignment on -contingency_matrix).
const SKLEARN_CASES: { name: string; labels: number[]; clusters: number[]; nmi: number; nmiGeo: number; ari: number; fmi: number; acc: number }[] = [
  { name: 'sklearn docs example', labels: [0, 0, 0, 1, 1, 1], clusters: [0, 0, 1, 1, 2, 2], nmi: 0.5158037429793888, nmiGeo: 0.5295405780575618, ari: 0.24242424242424243, fmi: 0.4714045207910317, acc: 0.6666666666666666 },
  { name: 'more labels than clusters', labels: [0, 0, 1, 1, 2, 2, 3, 3, 3], clusters: [5, 5, 5, 7, 7, 7, 7, 9, 9], nmi: 0.5717826706954658, nmiGeo: 0.5764345471801028, ari: 0.21052631578947367, fmi: 0.3872983346207417, acc: 0.6666666666666666 },
  { name: 'negative and sparse label values', labels: [-1, -1, 4, 4, 4, 10], clusters: [2, 2, 2, 3, 3, 3], nmi: 0.4398695005110288, nmiGeo: 0.44774304335588627, ari: 0.11764705882352941, fmi: 0.408248290463863, acc: 0.6666666666666666 },
  { name: 'one class, every sample its own cluster', labels: [0, 0, 0, 0], clusters: [0, 1, 2, 3], nmi: 0, nmiGeo: 0, ari: 0, fmi: 0, acc: 0.25 },
  { name: 'two classes, one cluster', labels: [0, 0, 1, 1], clusters: [0, 0, 0, 0], nmi: 0, nmiGeo: 0, ari: 0, fmi: 0.5773502691896257, acc: 0.5 },
  { name: 'single class and single cluster', labels: [3, 3, 3], clusters: [7, 7, 7], nmi: 1, nmiGeo: 1, ari: 1, fmi: 1, acc: 1 },
];

for (const c of SKLEARN_CASES) {
  test(`matches sklearn: ${c.name}`, async () => {
    close(nmi(c.labels, c.clusters), c.nmi, 1e-12, 'nmi');
    close(nmi(c.labels, c.clusters, 'geometric'), c.nmiGeo, 1e-12, 'nmi geometric');
    close(ari(c.labels, c.clusters), c.ari, 1e-12, 'ari');
    close(fmi(c.labels, c.clusters), c.fmi, 1e-12, 'fmi');
    close(hungarianAccuracy(c.labels, c.clusters), c.acc, 1e-12, 'acc');
  });
}

test('large n: ARI pair counts stay exact past 2^53 (sklearn 1.2.1 values)', async () => {
  // y = repeat(arange(10), 6000); p = (y + (i % 7 == 0)) % 10, as in the python cross-check.
  const n = 60000;
  const y = Int32Array.from({ length: n }, (_, i) => Math.floor(i / 6000));
  const p = Int32Array.from(y, (v, i) => (v + (i % 7 === 0 ? 1 : 0)) % 10);
  close(ari(y, p), 0.7278352191564007, 1e-12, 'ari');
  close(nmi(y, p), 0.8218813416838436, 1e-12, 'nmi');
  close(fmi(y, p), 0.7550476148522108, 1e-12, 'fmi');
});

test('independent random labellings: ARI ≈ 0, NMI small, ACC near chance', async () => {
  const rng = new Rng(11);
  const n = 5000;
  const a = Array.from({ length: n }, () => rng.randint(0, 9));
  const b = Array.from({ length: n }, () => rng.randint(0, 9));
  assert.ok(Math.abs(ari(a, b)) < 0.01, `ari ${ari(a, b)}`);
  assert.ok(nmi(a, b) < 0.02, `nmi ${nmi(a, b)}`);
  const acc = hungarianAccuracy(a, b);
  assert.ok(acc > 0.1 && acc < 0.15, `acc ${acc}`);
});

test('hand-derived small case: contingency, pair counts, purity, matching', async () => {
  const labels = [0, 0, 0, 1, 1, 2];
  const clusters = [1, 1, 0, 0, 0, 0];
  const ct = contingencyMatrix(labels, clusters);
  assert.deepEqual(ct.classes, [0, 1, 2]);
  assert.deepEqual(ct.clusters, [0, 1]);
  assert.deepEqual(ct.counts, [
    [1, 2],
    [2, 0],
    [1, 0],
  ]);
  // Ordered pairs of distinct samples. Σn_ij² = 1+4+4+1 = 10, so tp = 10 − 6 = 4.
  // Same cluster: Σ colsum² − n = 16+4 − 6 = 14 = tp + fp, so fp = 10.
  // Same class: Σ rowsum² − n = 9+4+1 − 6 = 8 = tp + fn, so fn = 4.
  // tn = n(n−1) − tp − fp − fn = 30 − 18 = 12.
  const [[tn, fp], [fn, tp]] = pairConfusionMatrix(labels, clusters);
  assert.deepEqual([tn, fp, fn, tp], [12n, 10n, 4n, 4n]);
  close(ari(labels, clusters), (2 * (4 * 12 - 4 * 10)) / ((4 + 4) * (4 + 12) + (4 + 10) * (10 + 12)));
  close(fmi(labels, clusters), Math.sqrt((4 / 14) * (4 / 8)));
  // Cluster 0 → label 1 (2 samples), cluster 1 → label 0 (2 samples): 4 of 6.
  const m = matchClusters(labels, clusters);
  assert.equal(m.matched, 4);
  assert.deepEqual([...m.mapping.entries()].sort(), [
    [0, 1],
    [1, 0],
  ]);
  close(hungarianAccuracy(labels, clusters), 4 / 6);
  // Majorities: cluster 0 → label 1 (2 of 4), cluster 1 → label 0 (2 of 2).
  close(purity(labels, clusters), 4 / 6);
  close(entropy([0, 0, 1, 1]), Math.log(2));
  assert.equal(entropy([5, 5, 5]), 0);
});

test('Hungarian accuracy with more clusters than labels counts unmatched clusters as errors; purity does not', async () => {
  // Each label split into two pure clusters: purity 1, but only one cluster per label can match.
  const labels = [0, 0, 0, 0, 1, 1, 1, 1];
  const clusters = [0, 0, 0, 1, 2, 2, 3, 3];
  close(purity(labels, clusters), 1);
  close(hungarianAccuracy(labels, clusters), (3 + 2) / 8);
});

test('confusionMatrix: rows are true classes, columns predictions', async () => {
  assert.deepEqual(confusionMatrix([0, 1, 1, 2], [0, 2, 1, 2]), [
    [1, 0, 0],
    [0, 1, 1],
    [0, 0, 1],
  ]);
  assert.deepEqual(confusionMatrix([0], [0], 2), [
    [1, 0],
    [0, 0],
  ]);
  assert.throws(() => confusionMatrix([0, 3], [0, 1], 2), /numClasses/);
});

test('bad input gives clear errors', async () => {
  assert.throws(() => nmi([0, 1], [0]), /one cluster id per labelled sample/);
  assert.throws(() => ari([0, NaN], [0, 1]), /finite/);
  assert.throws(() => hungarianAccuracy([], []), /at least one/);
  assert.throws(() => nmi([0, 1], [0, 1], 'median' as 'min'), /average/);
});

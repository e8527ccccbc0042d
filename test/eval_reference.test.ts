import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import { checkClusterMetricsFixture, checkKnnFixture } from '../src/reference/eval-checks';
import { REFERENCE_DIR } from './helpers';

before(async () => {
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
});

const DIR = REFERENCE_DIR;
const load = (f: string): { cases: Record<string, unknown>[] } => JSON.parse(fs.readFileSync(`${DIR}/${f}`, 'utf8'));

test('the checkers report errors: a perturbed expectation fails, the original passes', async () => {
  const knn = load('knn.json');
  assert.ok((await checkKnnFixture(knn)).every((r) => r.passed));
  const votes = (knn.cases[0].expected as { votes: number[][] }).votes;
  votes[0][0] *= 1.001; // 10x the relative tolerance
  const r = await checkKnnFixture(knn);
  assert.equal(r[0].passed, false);
  assert.match(r[0].detail ?? '', /votes\[0\]\[0\]/);
  assert.ok(r[0].maxRelErr > 5e-4 && r[0].maxRelErr < 2e-3);
  assert.ok(r.slice(1).every((x) => x.passed));

  const knn2 = load('knn.json');
  const preds = (knn2.cases[0].expected as { predictions: number[] }).predictions;
  preds[3] = (preds[3] + 1) % (knn2.cases[0].numClasses as number);
  const r2 = await checkKnnFixture(knn2);
  assert.equal(r2[0].passed, false);
  assert.match(r2[0].detail ?? '', /predictions differ at test rows 3/);

  const cm = load('cluster_metrics.json');
  assert.ok(checkClusterMetricsFixture(cm).every((x) => x.passed));
  (cm.cases[1].expected as { ari: number }).ari += 1e-3;
  const r3 = checkClusterMetricsFixture(cm);
  assert.deepEqual(
    r3.map((x) => x.passed),
    cm.cases.map((_, i) => i !== 1),
  );
  assert.match(r3[1].detail ?? '', /ari/);
});

test('malformed or unknown fixture content gives a failed entry with a reason, not a crash', async () => {
  await assert.rejects(async () => checkKnnFixture({ nope: 1 }), /'cases' array/);
  const [bad] = await checkKnnFixture({ cases: [{ k: 1, temperature: 0.07, numClasses: 2, trainFeatures: [[1, 0]], trainLabels: [0] }] });
  assert.equal(bad.passed, false);
  assert.match(bad.detail ?? '', /testFeatures/);
  const [unknown] = checkClusterMetricsFixture({ cases: [{ name: 'x', labels: [0, 1], clusters: [0, 1], expected: { nmi: 1, vmeasure: 1 } }] });
  assert.equal(unknown.passed, false);
  assert.match(unknown.detail ?? '', /vmeasure/);
  assert.equal(unknown.name, 'cluster_metrics x (n=2)');
  const [ok] = checkClusterMetricsFixture({ cases: [{ labels: [0, 0, 1, 1], clusters: [1, 1, 0, 0], expected: { nmi: 1, ari: 1, fmi: 1, acc: 1, purity: 1 } }] });
  assert.ok(ok.passed, ok.detail);
});

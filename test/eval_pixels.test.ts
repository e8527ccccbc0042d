/**
 * Sanity of the protocols on raw Fashion-MNIST pixels of the bundled split
 * (8,000 train / 2,000 test). Reference numbers on the same split from
 * scikit-learn 1.2: LogisticRegression(C=1) 82.8% test accuracy,
 * KNeighborsClassifier(20, metric='cosine') 78.2%, (5, euclidean) 81.0%.
 * On the full 60k/10k set the usual figures are ~84% (LR) and ~85% (k-NN).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { pixelFeatures } from '../src/eval/features';
import { accuracy, predictLinear } from '../src/eval/classifier';
import { fitLogisticRegression } from '../src/eval/logistic';
import { knnClassifyMulti } from '../src/eval/knn';

before(async () => {
  await setup();
});

test('raw pixels: logistic regression (C=1) and weighted k-NN land where scikit-learn does', async () => {
  const { train, test: te } = loadEmbeddedFashionMnist();
  const xtr = pixelFeatures(train);
  const xte = pixelFeatures(te);
  try {
    const [k5, k20] = await knnClassifyMulti(xtr, train.labels, xte, [5, 20], { testLabels: te.labels });
    assert.ok((k20.top1 as number) > 76 && (k20.top1 as number) < 82, `k-NN k=20: ${k20.top1}%`);
    assert.ok((k5.top1 as number) > 78 && (k5.top1 as number) < 84, `k-NN k=5: ${k5.top1}%`);
    // sklearn's own tolerance (max |grad| ≤ 1e-4) on its objective.
    const m = await fitLogisticRegression(xtr, train.labels, { C: 1, tol: 1e-4 });
    const acc = accuracy(await predictLinear(m, xte), te.labels);
    assert.ok(acc > 81.5 && acc < 84, `logistic regression: ${acc}%`);
    // sklearn's optimum of the same objective (tol 1e-6) is 0.28742.
    assert.ok(m.loss > 0.2874 && m.loss < 0.2880, `objective ${m.loss}`);
  } finally {
    tf.dispose([xtr, xte]);
  }
});

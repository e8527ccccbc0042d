/**
 * The step's head on masked patches only (train/patch-rows.ts) against the
 * official formulation (head on every patch, unmasked ones weighted by zero),
 * which the reference fixtures check: same loss, same gradients, same centre.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup, fdDirectional, assertSameGrads } from './helpers';
import { rowBucket, selectMaskedPatches, patchRows, disposePatchRows } from '../src/train/patch-rows';
import { gatherRows } from '../src/model/layers';
import { pretrainPreset } from '../src/train/presets';
import { buildModel, PretrainConfig } from '../src/train/config';
import { ibotBatch, disposeIBOTBatch } from '../src/augment/batch';
import { loadEmbeddedFashionMnist, toTensor } from '../src/data';
import { Rng } from '../src/util/rng';

before(setup);

describe('masked patch rows', () => {
  it('selects the masked patches in image order with weights 1/(#masked)/(G·B), padded with distinct unmasked patches', () => {
    // Image 0: patches 0 and 2 masked; image 1: none; image 2: patch 3 masked.
    const mask = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const s = selectMaskedPatches(mask, 3, 4, 8);
    assert.equal(s.count, 3);
    assert.equal(s.patch.length, 8);
    assert.deepEqual(Array.from(s.patch.slice(0, 3)), [0, 2, 11]);
    assert.deepEqual(Array.from(s.weight), [1 / 2 / 3, 1 / 2 / 3, 1 / 3, 0, 0, 0, 0, 0].map((w) => Math.fround(w)));
    assert.equal(new Set(s.patch).size, 8, 'no patch twice');
    for (const p of s.patch.slice(3)) assert.equal(mask[p], 0, 'padding rows are unmasked patches');
    // The weights of each masked image sum to 1/(G·B): the mean over images of per-image means.
    assert.ok(Math.abs(s.weight.reduce((a, b) => a + b, 0) - 2 / 3) < 1e-6);
  });

  it('pads to the bucket and never beyond the patches there are', () => {
    assert.equal(rowBucket(6272), 200);
    const none = selectMaskedPatches(new Uint8Array(20), 4, 5, 8);
    assert.equal(none.count, 0);
    assert.equal(none.patch.length, 8);
    const all = selectMaskedPatches(new Uint8Array(20).fill(1), 4, 5, 8);
    assert.equal(all.patch.length, 20);
    assert.deepEqual(Array.from(all.patch), Array.from({ length: 20 }, (_, i) => i));
    assert.throws(() => selectMaskedPatches([1, 0], 2, 2), /G·B = 2 images of N = 2/);
  });

  it('token rows skip each image\'s [CLS]: patch b·N + n is token b·(N+1) + 1 + n', async () => {
    const rows = patchRows(selectMaskedPatches([0, 1, 1, 0], 2, 2, 2), 2, 2);
    // The [CLS] rows (0, 3) first, then the patches' token rows (2, 4).
    assert.deepEqual(Array.from(await rows.headRows.data()), [0, 3, 2, 4]);
    assert.deepEqual(Array.from(await rows.real.data()), [1, 1]);
    disposePatchRows(rows);
  });

  it('gatherRows: rows out, gradient scattered back (finite differences)', () => {
    const x = tf.randomNormal([7, 3], 0, 1, 'float32', 1) as tf.Tensor2D;
    const idx = tf.tensor1d([5, 0, 3], 'int32');
    const w = tf.randomNormal([3, 3], 0, 1, 'float32', 2);
    const f = (v: tf.Tensor): tf.Scalar => tf.sum(tf.mul(tf.square(gatherRows(v as tf.Tensor2D, idx)), w));
    const g = tf.grad(f)(x);
    const gv = g.arraySync() as number[][];
    for (const r of [1, 2, 4, 6]) assert.deepEqual(gv[r], [0, 0, 0], `row ${r} was not gathered`);
    const { relErr } = fdDirectional(f, x, g, 3);
    assert.ok(relErr < 1e-3, `relErr ${relErr}`);
    assert.deepEqual(gatherRows(x, idx).arraySync(), [x.arraySync()[5], x.arraySync()[0], x.arraySync()[3]]);
    tf.dispose([x, idx, w, g]);
  });

  const variants = [
    { centering: 'ema', shared: true },
    { centering: 'ema', shared: false },
    { centering: 'sinkhorn-knopp', shared: true },
    { centering: 'sinkhorn-knopp', shared: false },
  ] as const;
  for (const { centering, shared } of variants) {
    it(`the step's loss and gradients equal the all-patch formulation (${centering} centering, ${shared ? 'shared' : 'separate'} patch head, KoLeo, local crops)`, async () => {
      const base = pretrainPreset('tiny');
      const head = shared ? { ...base.model.head, sharedHead: true, patchOutDim: base.model.head.outDim } : { ...base.model.head, sharedHead: false, patchOutDim: 48 };
      const cfg: PretrainConfig = {
        ...base,
        batchSize: 8,
        model: { ...base.model, loss: { ...base.model.loss, centering, koleoWeight: 0.1 }, head, sharedHeadTeacher: shared },
      };
      const model = buildModel(cfg, 3);
      const K = cfg.model.head.outDim;
      // Non-zero centres, so that centering takes part in both paths.
      model.loss.setCenters(Float32Array.from({ length: K }, (_, i) => Math.sin(i) * 0.3), Float32Array.from({ length: model.loss.config.patchOutDim }, (_, i) => Math.cos(i) * 0.3));
      const ds = loadEmbeddedFashionMnist().train;
      const images = toTensor(ds, Array.from({ length: 8 }, (_, i) => i * 3));
      const batch = ibotBatch(images, { multiCrop: cfg.crops, masking: cfg.masking, patchSize: cfg.model.vit.patchSize, epoch: 1 }, new Rng(5));
      // The backbone caches its position-embedding interpolation for the local crops on first use.
      const warm = model.studentForward(batch, 0);
      tf.dispose([warm.cls, warm.patch, warm.backboneCls as tf.Tensor]);
      const before = tf.memory().numTensors;
      const vars = model.studentParams.filter((p) => p.trainable).map((p) => p.variable);
      const epoch = 2;

      // Targets outside the gradient, as the step makes them.
      const fullTargets = tf.tidy(() => model.loss.teacherTargets(model.teacherForward(batch.global), epoch, batch.masks));
      const full = tf.variableGrads(() => model.loss.compute(model.studentForward(batch, 11), fullTargets, batch.masks).total, vars);
      const rows = await model.patchRowsOf(batch);
      assert.ok(rows.count > 0 && rows.count < batch.masks.size, `some but not all patches masked (${rows.count})`);
      const rowTargets = tf.tidy(() => model.loss.teacherRowTargets(model.teacherRows(batch.global, rows), epoch, rows));
      const fast = tf.variableGrads(() => model.loss.computeRows(model.studentRows(batch, rows, 11), rowTargets, rows).total, vars);
      tf.dispose([fullTargets.cls, fullTargets.patch, rowTargets.cls, rowTargets.patch]);

      const a = (await full.value.data())[0];
      const b = (await fast.value.data())[0];
      assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(a), `loss ${a} vs ${b}`);
      await assertSameGrads(full.grads, fast.grads, 1e-4);
      tf.dispose([full.value, fast.value, ...Object.values(full.grads), ...Object.values(fast.grads)]);

      // The patch centre from the mean unit vector equals the mean over every patch's output.
      if (centering === 'ema') {
        const t = model.teacherRows(batch.global, rows);
        const allPatches = tf.tidy(() => tf.mean(model.teacherForward(batch.global).patch, [0, 1]));
        const m1 = await allPatches.data();
        const m2 = await (t.patchMean as tf.Tensor2D).data();
        for (let i = 0; i < m1.length; i++) assert.ok(Math.abs(m1[i] - m2[i]) <= 1e-5, `centre ${i}: ${m1[i]} vs ${m2[i]}`);
        tf.dispose([t.cls, t.patch, t.patchMean as tf.Tensor, allPatches]);
      }
      disposePatchRows(rows);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
      disposeIBOTBatch(batch);
      images.dispose();
      model.dispose();
    });
  }
});

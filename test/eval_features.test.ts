import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { backboneFeatureSet, disposeFeatureSet, modelInput, pixelFeatureSet } from '../src/eval/features';

before(setup);

const close = (a: number, e: number, tol: number) => assert.ok(Math.abs(a - e) <= tol, `${a} vs ${e}`);

describe('feature sets', () => {
  it('feature sets: pixel features are the scaled pixels; backbone sets slice the last [CLS]', async () => {
    const { train, test } = loadEmbeddedFashionMnist();
    const tr = { ...train, n: 20, images: train.images.subarray(0, 20 * 784), labels: train.labels.subarray(0, 20) };
    const te = { ...test, n: 10, images: test.images.subarray(0, 10 * 784), labels: test.labels.subarray(0, 10) };
    const before = tf.memory().numTensors;
    const px = await pixelFeatureSet(tr, te);
    assert.deepEqual(px.train.shape, [20, 784]);
    close(px.train.dataSync()[300], tr.images[300] / 255, 1e-6);
    disposeFeatureSet(px);
    const vit = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 16, depth: 2, numHeads: 2 }), 0);
    const fsb = await backboneFeatureSet({ name: 'v', backbone: vit, normalize: null }, tr, te);
    assert.deepEqual(fsb.linearTrain?.shape, [20, 32]);
    assert.deepEqual(fsb.train.shape, [20, 16]);
    // The k-NN feature is the last block's half of the linear-probe feature.
    const lt = fsb.linearTrain?.arraySync() as number[][];
    const t = fsb.train.arraySync();
    close(t[3][5], lt[3][16 + 5], 1e-6);
    disposeFeatureSet(fsb);
    vit.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
  it('modelInput: grayscale repeated to RGB, resized, normalised; wrong channel counts are refused', async () => {
    const { test } = loadEmbeddedFashionMnist();
    const before = tf.memory().numTensors;
    const x = modelInput(test, [0, 1], { channels: 3, imageSize: 56, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
    assert.deepEqual(x.shape, [2, 56, 56, 3]);
    const v = x.dataSync();
    // The three channels are the same grey, and (p − 0.5)/0.25 stays in [−2, 2].
    for (let i = 0; i < v.length; i += 3) assert.ok(v[i] === v[i + 1] && v[i] === v[i + 2] && v[i] >= -2 && v[i] <= 2);
    // Upsampling by 2 with half-pixel centres keeps the mean of the image.
    const small = modelInput(test, [0], {});
    const [big, orig] = tf.tidy(() => [tf.mean(x.slice([0, 0, 0, 0], [1, 56, 56, 1])).dataSync()[0], tf.mean(small).dataSync()[0]]);
    close(big * 0.25 + 0.5, orig, 5e-3);
    tf.dispose([x, small]);
    assert.equal(tf.memory().numTensors, before);
    const rgb = { ...test, channels: 3 };
    assert.throws(() => modelInput(rgb, [0], { channels: 1 }), /3 channel\(s\) but the model takes 1/);
  });
});

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { backboneFeatureSet, disposeFeatureSet, modelInput, pixelFeatureSet } from '../src/eval/features';
import { pixelKnn } from '../src/eval/protocols';

before(setup);

const close = (a: number, e: number, tol: number) => assert.ok(Math.abs(a - e) <= tol, `${a} vs ${e}`);

describe('feature sets', () => {
  it('pixelKnn: every image is its own nearest neighbour by cosine, also at half brightness; no tensor is left', async () => {
    const { train } = loadEmbeddedFashionMnist();
    const tr = { ...train, n: 30, images: train.images.subarray(0, 30 * 784), labels: train.labels.subarray(0, 30) };
    // Halved pixels: the same directions, so only an L2-normalised k-NN still finds each image itself.
    const te = { ...tr, images: Uint8Array.from(tr.images, (v) => v - (v % 2)).map((v) => v / 2) };
    const before = tf.memory().numTensors;
    const same = await pixelKnn(tr, tr, { k: 1 });
    assert.equal(same.top1, 100);
    assert.deepEqual([same.k, same.numTrain, same.numTest], [1, 30, 30]);
    const half = await pixelKnn(tr, te, { k: 1 });
    assert.ok(half.top1 >= 95, `half brightness: top-1 ${half.top1}`);
    assert.equal(tf.memory().numTensors, before);
  });

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

describe('nearest neighbours and PCA pictures of patch features', () => {
  it('nearestNeighbours: each row\'s most similar other rows by cosine, never itself', async () => {
    const { nearestNeighbours } = await import('../src/eval/knn');
    const x = tf.tensor2d([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0]]);
    const nn = await nearestNeighbours(x, 2);
    x.dispose();
    assert.deepEqual(nn.map((r) => r.map((n) => n.index)), [[1, 3], [0, 3], [3, 1], [2, 1], [2, 3]]);
    close(nn[0][0].similarity, 0.9 / Math.hypot(0.9, 0.1), 1e-6);
  });

  it('principalComponents finds the spread directions; patchPcaImages colours equal patches equally, in [0, 1]', async () => {
    const { principalComponents, patchPcaImages } = await import('../src/viz/projection');
    // Points spread along (3, 4)/5 with little noise across it.
    const rows = Array.from({ length: 50 }, (_, i) => {
      const t = i - 25;
      const e = ((i * 7) % 5) * 0.01;
      return [0.6 * t - 0.8 * e, 0.8 * t + 0.6 * e];
    });
    const pc = await principalComponents(rows, 2);
    close(Math.abs(pc.components[0][0]), 0.6, 1e-4);
    close(Math.abs(pc.components[0][1]), 0.8, 1e-4);
    assert.ok(pc.explained[0] > 0.999);
    // Two images of 2×2 patches; patches 0 and 3 of both images share a token.
    const a = [1, 0, 0, 0];
    const tokens = tf.tensor3d([a, [0, 1, 0, 0], [0, 0, 1, 0], a, a, [0, 0, 0, 1], [0, 1, 1, 0], a].flat(), [2, 4, 4]);
    const tokens2 = tf.clone(tokens);
    const { images } = await patchPcaImages(tokens, [2, 2]);
    tokens.dispose();
    assert.deepEqual(images.map((im) => [im.width, im.height, im.channels]), [[2, 2, 3], [2, 2, 3]]);
    const px = (im: { data: Float32Array }, i: number) => Array.from(im.data.subarray(3 * i, 3 * i + 3));
    assert.deepEqual(px(images[0], 0), px(images[0], 3));
    assert.deepEqual(px(images[0], 0), px(images[1], 0));
    for (const im of images) for (const v of im.data) assert.ok(v >= 0 && v <= 1);
    // patchSize 3: each patch a 3×3 block of its colour.
    const big = (await patchPcaImages(tokens2, [2, 2], { patchSize: 3 })).images;
    assert.deepEqual([big[0].width, big[0].height], [6, 6]);
    const at = (x: number, y: number) => Array.from(big[0].data.subarray(3 * (y * 6 + x), 3 * (y * 6 + x) + 3));
    assert.deepEqual(at(0, 0), px(images[0], 0));
    assert.deepEqual(at(2, 2), px(images[0], 0));
    assert.deepEqual(at(5, 0), px(images[0], 1));
    assert.deepEqual(at(0, 5), px(images[0], 2));
    assert.deepEqual(at(4, 4), px(images[0], 3));
    tokens2.dispose();
  });
});

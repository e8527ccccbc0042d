/**
 * Every kind of figure, written as one standalone page (plotly.js inlined)
 * and opened in headless Chromium: each must be drawn by plotly. Skipped
 * locally without Chromium, fails under CI. The screenshot is kept in
 * .cache/notebooks/screenshots/viz-gallery.png.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import * as viz from '../src/viz';
import { packageRoot, loadEmbeddedFashionMnist } from '../src/data/registry';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { IBOTHead } from '../src/model/head';
import { Rng } from '../src/util/rng';
import { toTensor } from '../src/data/dataset';
import { multiCrop, multiCropPreset } from '../src/augment';
import { blockMaskWithBlocks } from '../src/augment/masking';

before(setup);

const ROOT = packageRoot();

interface Tools {
  CHROMIUM_APT: string;
  findChromium(): string | undefined;
}
interface PageReport {
  figures: number;
  rendered: number;
  problems: string[];
  ok: boolean;
}
interface BrowserCheck {
  checkPage(file: string, opts: { chrome?: string; screenshot?: string; minFigures?: number }): PageReport;
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const tools = require(path.join(ROOT, 'scripts', 'jupyter.js')) as Tools;
// eslint-disable-next-line @typescript-eslint/no-var-requires
const browser = require(path.join(ROOT, 'scripts', 'browser-check.js')) as BrowserCheck;

/** One of each figure on real data and a small random network. */
async function gallery(): Promise<viz.PageItem[]> {
  const { test } = loadEmbeddedFashionMnist();
  const rng = new Rng(1);
  const items: viz.PageItem[] = [];
  const h = new viz.TrainingHistory();
  h.numPrototypes = 64;
  for (let s = 1; s <= 30; s++) {
    h.points.push({ step: s, epoch: s / 10, lr: 1e-4 * Math.min(1, s / 5), wd: 0.04, momentum: 0.99 + s * 3e-4, loss: 5 - Math.log(s), clsLoss: 3 - 0.5 * Math.log(s), patchLoss: 2 - 0.4 * Math.log(s), teacherTemp: 0.04, teacherPatchTemp: 0.07, agreement: s / 30, teacherEntropy: 4 - s * 0.05, teacherMeanEntropy: 4.1, gradNorm: 2, koleoLoss: 0, imagesPerSec: 100 });
  }
  items.push(viz.trainingCurvesFigure(h));
  const x = toTensor(test, [0, 1, 2, 3]);
  const views = multiCrop(x, multiCropPreset('gray28', { normalize: 'none', localCrops: 2 }), rng);
  const masks = [blockMaskWithBlocks(7, 7, 15, rng).mask, blockMaskWithBlocks(7, 7, 10, rng).mask];
  items.push(viz.multiCropGalleryFigure({ original: viz.datasetImage(test, 0), global: await Promise.all(views.global.map(async (g) => (await viz.imagesFromTensor(g))[0])), local: await Promise.all(views.local.map(async (l) => (await viz.imagesFromTensor(l))[0])), masks, patchSize: 4 }));
  items.push(viz.maskGalleryFigure({ images: [0, 1].map((i) => viz.datasetImage(test, i)), masks, patchSize: 4 }));
  const vit = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 32, depth: 2, numHeads: 2 }), 0);
  const head = new IBOTHead({ inDim: 32, outDim: 32, patchOutDim: 32, hiddenDim: 32, bottleneckDim: 16, nlayers: 2, normLastLayer: true, sharedHead: true }, 1);
  const out = vit.forward(x, { attentionOf: -1 });
  const att = await Promise.all([0, 1].map(async (b) => ({ image: viz.datasetImage(test, b), maps: await viz.clsAttentionMaps(out.attention as tf.Tensor4D, b) })));
  items.push(viz.attentionMapsFigure(att, { patchSize: 4 }), viz.attentionMapsFigure(att, { patchSize: 4, threshold: 0.6 }));
  const patch = tf.tidy(() => head.forwardTokens(out.tokens).patch);
  const a = await viz.patchAssignments(patch);
  const groups = viz.dominantPatterns(a, { top: 3, perPrototype: 4 });
  const imgs = [0, 1, 2, 3].map((i) => viz.datasetImage(test, i));
  items.push(viz.patchPatternsFigure({ images: imgs, groups, gridW: 7, patchSize: 4 }), viz.prototypeLayoutFigure({ images: imgs, indices: [0, 1], assignment: a, groups, grid: [7, 7], patchSize: 4 }));
  const feats = tf.randomNormal([60, 8], 0, 1, 'float32', 3) as tf.Tensor2D;
  const labels = Array.from({ length: 60 }, (_, i) => i % 3);
  items.push(viz.projectionFigure({ points: await viz.pca2d(feats), labels, classNames: ['a', 'b', 'c'] }));
  items.push(viz.projectionFigure({ points: await viz.umap2d(feats, { seed: 0, nEpochs: 50 }), labels }));
  const cm = [
    [5, 1],
    [2, 4],
  ];
  items.push(viz.confusionMatrixFigure(cm, { classNames: ['x', 'y'] }), { html: viz.confusionMatrixHtml(cm) }, { html: viz.tableHtml([{ a: 1, b: 'two' }]) });
  items.push(viz.sortedProbabilitiesFigure([{ name: 'p', probs: [0.7, 0.2, 0.1] }]));
  items.push(viz.barChartFigure(['k-NN', 'linear'], [{ name: 'iBOT', values: [50, 60] }]), viz.lineChartFigure([1, 10, 100], [{ name: 'LR', values: [20, 40, 60] }], { logX: true }));
  items.push(viz.clusterGalleryFigure({ images: (i) => imgs[i], assignments: [0, 1, 1, 0], labels: [0, 1, 1, 0] }));
  tf.dispose([x, ...views.global, ...views.local, out.tokens, out.attention as tf.Tensor4D, patch, feats]);
  vit.dispose();
  head.dispose();
  return items;
}

describe('figures in a browser', () => {
  const chrome = tools.findChromium();
  it('a standalone page of every figure renders in headless Chromium', { timeout: 180_000, skip: !chrome && !process.env.CI ? 'needs Chromium' : false }, async () => {
    if (!chrome) assert.fail(`Chromium is not installed; install it: ${tools.CHROMIUM_APT}`);
    const items = await gallery();
    const expected = items.filter((i) => 'data' in i).length;
    const dir = path.join(ROOT, '.cache', 'notebooks');
    const file = viz.writeStandaloneHtml(path.join(dir, 'html', 'viz-gallery.html'), items, { title: 'ibotlab figure gallery' });
    const report = browser.checkPage(file, { chrome, screenshot: path.join(dir, 'screenshots', 'viz-gallery.png'), minFigures: expected });
    assert.ok(report.ok, report.problems.join('\n'));
    assert.equal(report.rendered, expected);
    assert.ok(fs.statSync(path.join(dir, 'screenshots', 'viz-gallery.png')).size > 10_000);
  });
});

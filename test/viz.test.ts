import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setup } from './helpers';
import * as viz from '../src/viz';
import type { PretrainEvent } from '../src/train/pretrain';
import type { StepStats } from '../src/train/ibot';
import { VisionTransformer, vitConfig } from '../src/model/vit';
import { IBOTModel } from '../src/train/ibot';
import { Rng } from '../src/util/rng';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { backboneFeatureSet, disposeFeatureSet, pixelFeatureSet } from '../src/eval/features';

before(setup);

const close = (a: number, b: number, tol = 1e-5, msg?: string): void => assert.ok(Math.abs(a - b) <= tol, msg ?? `${a} vs ${b}`);

function stats(over: Partial<StepStats> = {}): StepStats {
  return {
    loss: 1,
    clsLoss: 0.6,
    patchLoss: 0.4,
    teacherTemp: 0.04,
    teacherPatchTemp: 0.07,
    agreement: 0.5,
    teacherEntropy: 2,
    teacherMeanEntropy: 5,
    koleoLoss: 0,
    maskedPatches: 10,
    gradNorm: 1,
    ms: { teacher: 1, student: 1, optimizer: 1 },
    ...over,
  };
}

function stepEvent(step: number, loss: number): PretrainEvent {
  return { type: 'step', step, totalSteps: 10, epoch: step / 5, lr: 1e-3, wd: 0.04, momentum: 0.99, stats: stats({ loss }), imagesPerSec: 100, elapsedSec: step, msAugment: 1 };
}

describe('subplotGrid', () => {
  it('tiles the paper without overlap, row-major from the top-left', async () => {
    const cells = viz.subplotGrid(2, 3, { hgap: 0.1, vgap: 0.2 });
    assert.equal(cells.length, 6);
    assert.deepEqual(
      cells.map((c) => c.xaxis),
      ['x', 'x2', 'x3', 'x4', 'x5', 'x6'],
    );
    // Width of a cell: (1 − 2·0.1)/3; height: (1 − 0.2)/2.
    close(cells[0].x[1] - cells[0].x[0], 0.8 / 3, 1e-4);
    close(cells[0].y[1] - cells[0].y[0], 0.4, 1e-4);
    assert.equal(cells[0].y[1], 1);
    assert.equal(cells[3].y[0], 0);
    for (let i = 1; i < 3; i++) assert.ok(cells[i].x[0] >= cells[i - 1].x[1]);
    assert.throws(() => viz.subplotGrid(0, 2), /positive integers/);
  });
});

describe('images and overlays', () => {
  it('imagesFromTensor undoes (x − mean)/std and clamps to [0, 1]', async () => {
    const x = tf.tensor4d([0, 1, -2, 10], [1, 2, 2, 1]);
    const [img] = await viz.imagesFromTensor(x, { mean: [0.5], std: [0.25] });
    // 0·0.25+0.5, 1·0.25+0.5, −2·0.25+0.5 = 0, 10·0.25+0.5 → clamped 1
    assert.deepEqual(Array.from(img.data), [0.5, 0.75, 0, 1]);
    assert.equal(img.width, 2);
    x.dispose();
  });

  it('a patch overlay covers exactly the pixels of each patch', async () => {
    const t = viz.patchOverlayTrace({ values: [1, 0, 0, 1], grid: [2, 2], patchSize: 4 }, { xaxis: 'x', yaxis: 'y' });
    // Cell centres at 1.5 and 5.5: cell j spans [4j − 0.5, 4j + 3.5], i.e. pixels 4j … 4j+3.
    assert.equal(t.x0, 1.5);
    assert.equal(t.dx, 4);
    assert.deepEqual(t.z, [
      [1, 0],
      [0, 1],
    ]);
    assert.equal(t.xaxis, 'x');
    assert.equal('x' in t, false, 'axis domains must not leak into the trace');
    assert.throws(() => viz.patchOverlayTrace({ values: [1, 0], grid: [2, 2], patchSize: 4 }, { xaxis: 'x', yaxis: 'y' }), /2 values for a 2×2 grid/);
  });

  it('imageGridFigure: one heatmap per grey image, one more per overlay, boxes as shapes', async () => {
    const img: viz.HostImage = { width: 4, height: 4, channels: 1, data: new Float32Array(16).fill(0.5) };
    const fig = viz.imageGridFigure(
      [{ image: img, title: 'a' }, { image: img, overlay: { values: [1, 0, 0, 0], grid: [2, 2], patchSize: 2 }, boxes: [viz.patchBox(3, 2, 2)] }],
      { cols: 2, title: 'grid' },
    );
    assert.equal(fig.data.length, 3);
    assert.equal(fig.data[2].xaxis, 'x2');
    const shapes = fig.layout.shapes as Array<Record<string, number>>;
    // Patch 3 of a 2-wide grid is row 1, col 1: pixels 2..3 → edges 1.5 and 3.5.
    assert.deepEqual([shapes[0].x0, shapes[0].x1, shapes[0].y0, shapes[0].y1], [1.5, 3.5, 1.5, 3.5]);
  });

  it('multiCropGalleryFigure reports the masked share of each global crop', async () => {
    const g: viz.HostImage = { width: 8, height: 8, channels: 1, data: new Float32Array(64) };
    const l: viz.HostImage = { width: 4, height: 4, channels: 1, data: new Float32Array(16) };
    const mask = Uint8Array.from([1, 0, 0, 0]); // 1 of 4 patches
    const fig = viz.multiCropGalleryFigure({ original: g, global: [g, g], local: [l, l, l], masks: [mask, undefined], patchSize: 4 });
    const titles = (fig.layout.annotations as Array<{ text: string }>).map((a) => a.text);
    assert.ok(titles.includes('global 1 · 25% masked'), titles.join(' | '));
    assert.ok(titles.includes('global 2 · 8px'));
    assert.equal(titles.filter((t) => t.startsWith('local')).length, 3);
    assert.throws(() => viz.multiCropGalleryFigure({ original: g, global: [g], local: [], masks: [Uint8Array.from([1, 0])], patchSize: 4 }), /mask 0 has 2 cells/);
  });
});

describe('attention', () => {
  it("attentionMassMask keeps DINO's top set holding the requested mass", async () => {
    // Ascending: 0.1, 0.2, 0.2, 0.5 → cumulative 0.1, 0.3, 0.5, 1.0; keep cum > 0.4 → the 0.2 at index 3 and the 0.5.
    assert.deepEqual(Array.from(viz.attentionMassMask([0.1, 0.5, 0.2, 0.2], 0.6)), [0, 1, 0, 1]);
    // Unnormalised input gives the same set; the kept mass (0.7) is the smallest ≥ 0.6 among top sets.
    assert.deepEqual(Array.from(viz.attentionMassMask([1, 5, 2, 2], 0.6)), [0, 1, 0, 1]);
    // A one-hot map keeps only its peak for any mass.
    assert.deepEqual(Array.from(viz.attentionMassMask([0, 0, 3, 0], 0.9)), [0, 0, 1, 0]);
    assert.throws(() => viz.attentionMassMask([1], 0), /mass/);
  });

  it('clsAttentionMaps reads the [CLS] row of each head, without the [CLS] column', async () => {
    // B=1, heads=2, 1+N = 3: head h row 0 = [c, a, b].
    const att = tf.tensor4d(
      [
        [0.2, 0.3, 0.5, 0, 0, 0, 0, 0, 0],
        [0.1, 0.6, 0.3, 0, 0, 0, 0, 0, 0],
      ].flat(),
      [1, 2, 3, 3],
    );
    const before = tf.memory().numTensors;
    const maps = await viz.clsAttentionMaps(att, 0);
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(maps.map((m) => Array.from(m).map((v) => Math.round(v * 10) / 10)), [
      [0.3, 0.5],
      [0.6, 0.3],
    ]);
    await assert.rejects(async () => viz.clsAttentionMaps(att, 1), /outside the batch/);
    att.dispose();
  });

  it('a real ViT gives one map per head that with [CLS]→[CLS] sums to 1', async () => {
    const vit = new VisionTransformer(vitConfig('vit-tiny-28', { embedDim: 32, depth: 1, numHeads: 2 }), 3);
    const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 1) as tf.Tensor4D;
    const out = vit.forward(x, { attentionOf: -1 });
    const maps = await viz.clsAttentionMaps(out.attention as tf.Tensor4D, 1);
    const self = tf.tidy(() => tf.slice(out.attention as tf.Tensor4D, [1, 0, 0, 0], [1, 2, 1, 1]).dataSync());
    assert.equal(maps.length, 2);
    maps.forEach((m, h) => {
      assert.equal(m.length, 49);
      close(m.reduce((a, b) => a + b, 0) + self[h], 1, 1e-4);
    });
    const fig = viz.attentionMapsFigure([{ image: { width: 28, height: 28, channels: 1, data: new Float32Array(784) }, maps }], { patchSize: 4, threshold: 0.6 });
    // Image + 2 heads + mean, each head panel with an overlay.
    assert.equal(fig.data.length, 1 + 3 * 2);
    tf.dispose([x, out.tokens, out.attention as tf.Tensor4D]);
    vit.dispose();
  });
});

describe('patch patterns', () => {
  it('dominantPatterns ranks prototypes by population and members by score, one per image', async () => {
    // 2 images × 3 patches. Prototype 7 wins 4 patches, prototype 2 wins 2.
    const a: viz.PatchAssignment = {
      numImages: 2,
      numPatches: 3,
      prototype: Int32Array.from([7, 7, 2, 7, 2, 7]),
      score: Float32Array.from([0.1, 0.9, 0.5, 0.8, 0.4, 0.3]),
    };
    const g = viz.dominantPatterns(a, { top: 2, perPrototype: 3 });
    assert.deepEqual(
      g.map((x) => [x.prototype, x.count]),
      [
        [7, 4],
        [2, 2],
      ],
    );
    // Best of prototype 7: 0.9 (image 0, patch 1), then 0.8 (image 1, patch 0); other patches repeat an image.
    assert.deepEqual(g[0].members.map((m) => [m.image, m.patch]), [
      [0, 1],
      [1, 0],
    ]);
    const all = viz.dominantPatterns(a, { top: 1, perPrototype: 4, onePerImage: false });
    assert.deepEqual(all[0].members.map((m) => m.score), [0.9, 0.8, 0.3, 0.1].map((v) => Math.fround(v)));
  });

  it('patchAssignments takes argmax and max over prototypes without leaking tensors', async () => {
    const s = tf.tensor3d([0.1, 0.9, 0.3, 0.7, 0.2, 0.1], [1, 2, 3]);
    const before = tf.memory().numTensors;
    const a = await viz.patchAssignments(s);
    assert.equal(tf.memory().numTensors, before);
    assert.deepEqual(Array.from(a.prototype), [1, 0]);
    assert.deepEqual(Array.from(a.score), [0.9, 0.7].map((v) => Math.fround(v)));
    s.dispose();
  });

  it('mimPredictions: an untrained pair agrees on unmasked inputs everywhere, and counts only masked patches', async () => {
    const cfg = {
      vit: vitConfig('vit-tiny-28', { embedDim: 32, depth: 1, numHeads: 2 }),
      head: { outDim: 16, patchOutDim: 16, hiddenDim: 32, bottleneckDim: 8, nlayers: 2, normLastLayer: true, sharedHead: true },
      sharedHeadTeacher: true,
      loss: { globalCrops: 2, localCrops: 0, studentTemp: 0.1, warmupTeacherTemp: 0.04, teacherTemp: 0.04, warmupTeacherPatchTemp: 0.04, teacherPatchTemp: 0.07, warmupTeacherTempEpochs: 1, epochs: 1, lambda1: 1, lambda2: 1, centerMomentum: 0.9 },
      clipGrad: 0,
      clipGlobalNorm: 0,
      freezeLastLayerEpochs: 0,
    };
    const model = new IBOTModel(cfg, 1);
    const x = tf.randomNormal([2, 28, 28, 1], 0, 1, 'float32', 2) as tf.Tensor4D;
    // All-zero masks: student = teacher (same weights, no stochastic depth) → no masked patch to score.
    const none = tf.zeros([2, 49]) as tf.Tensor2D;
    const p0 = await viz.mimPredictions(model, x, none);
    assert.deepEqual(Array.from(p0.student), Array.from(p0.teacher));
    assert.equal(p0.agreement, 0);
    const m = tf.tensor2d(Array.from({ length: 98 }, (_, i) => (i % 7 === 0 ? 1 : 0)), [2, 49]);
    const p = await viz.mimPredictions(model, x, m);
    assert.equal(p.masked.reduce((s, v) => s + v, 0), 14);
    const fig = viz.mimFigure({ images: [0, 1].map(() => ({ width: 28, height: 28, channels: 1 as const, data: new Float32Array(784) })), predictions: p, grid: [7, 7], patchSize: 4 });
    assert.equal(fig.data.length, 8);
    tf.dispose([x, none, m]);
    model.dispose();
  });
});

describe('projections', () => {
  it('pca2d finds the principal directions of a hand-made cloud', async () => {
    // Points t·u + s·v with u = (0.6, 0.8), v = (−0.8, 0.6); t and s centred and uncorrelated.
    const t = [-2, -1, 0, 1, 2];
    const s = [0.5, -0.5, 0, -0.5, 0.5];
    const rows = t.map((ti, i) => [0.6 * ti - 0.8 * s[i], 0.8 * ti + 0.6 * s[i]]);
    const before = tf.memory().numTensors;
    const p = await viz.pca2d(rows);
    assert.equal(tf.memory().numTensors, before);
    // var(t) = 10/4, var(s) = 1/4 → explained 2.5/2.75 and 0.25/2.75.
    close(p.explained[0], 2.5 / 2.75, 1e-4);
    close(p.explained[1], 0.25 / 2.75, 1e-4);
    // Sign convention: largest-magnitude entry positive → (0.6, 0.8) and (0.8, −0.6).
    close(p.components[0][0], 0.6, 1e-4);
    close(p.components[0][1], 0.8, 1e-4);
    close(p.components[1][0], 0.8, 1e-4);
    close(p.components[1][1], -0.6, 1e-4);
    t.forEach((ti, i) => {
      close(p.x[i], ti, 1e-4);
      close(p.y[i], -s[i], 1e-4);
    });
  });

  it('umap2d is reproducible for a seed and keeps separated clusters apart', async () => {
    const rng = new Rng(4);
    const rows: number[][] = [];
    for (let i = 0; i < 60; i++) {
      const c = i < 30 ? 0 : 10;
      rows.push(Array.from({ length: 5 }, () => c + rng.normal() * 0.3));
    }
    const a = await viz.umap2d(rows, { seed: 1, nNeighbors: 8, nEpochs: 100 });
    const b = await viz.umap2d(rows, { seed: 1, nNeighbors: 8, nEpochs: 100 });
    assert.deepEqual(Array.from(a.x), Array.from(b.x));
    const mean = (xs: Float32Array, lo: number, hi: number): number => xs.slice(lo, hi).reduce((s, v) => s + v, 0) / (hi - lo);
    const gap = Math.hypot(mean(a.x, 0, 30) - mean(a.x, 30, 60), mean(a.y, 0, 30) - mean(a.y, 30, 60));
    const spread = (lo: number, hi: number): number => {
      const mx = mean(a.x, lo, hi);
      const my = mean(a.y, lo, hi);
      let s = 0;
      for (let i = lo; i < hi; i++) s += Math.hypot(a.x[i] - mx, a.y[i] - my);
      return s / (hi - lo);
    };
    assert.ok(gap > 2 * Math.max(spread(0, 30), spread(30, 60)), `clusters not separated: gap ${gap}`);
  });

  it('projectionFigure draws one trace per class with image index and class on hover', async () => {
    const fig = viz.projectionFigure({
      points: { x: Float32Array.from([0, 1, 2]), y: Float32Array.from([0, 1, 2]) },
      labels: [1, 0, 1],
      classNames: ['zero', 'one'],
      indices: [10, 11, 12],
    });
    assert.deepEqual(
      fig.data.map((d) => [d.name, (d.x as number[]).length]),
      [
        ['zero', 1],
        ['one', 2],
      ],
    );
    assert.deepEqual(fig.data[1].text, ['image 10<br>one', 'image 12<br>one']);
    assert.throws(() => viz.projectionFigure({ points: { x: new Float32Array(2), y: new Float32Array(2) }, labels: [0] }), /one label per point/);
  });
});

describe('training curves', () => {
  it('smooth is a bias-corrected EMA', async () => {
    // β = 0.5: s1 = 0/0.5 = 0; s2 = (0.5·0 + 0.5·1)/(0.75) = 2/3.
    const s = viz.smooth([0, 1], 0.5);
    close(s[0], 0);
    close(s[1], 2 / 3);
    assert.deepEqual(viz.smooth([3, 3, 3], 0.9).map((v) => Math.round(v * 1e9) / 1e9), [3, 3, 3]);
  });

  it('TrainingHistory collects steps, replaces repeated (resumed) ones, and the figure has the ln K line', async () => {
    const h = new viz.TrainingHistory();
    const cfgEvent = { type: 'start', totalSteps: 10, itersPerEpoch: 5, epochs: 2, resumedFrom: 0, config: { model: { head: { outDim: 64 } } } } as unknown as PretrainEvent;
    h.push(cfgEvent);
    for (let s = 1; s <= 4; s++) h.push(stepEvent(s, 10 - s));
    h.push(stepEvent(3, 0.5)); // resumed from a checkpoint at step 2
    assert.deepEqual(
      h.points.map((p) => [p.step, p.loss]),
      [
        [1, 9],
        [2, 8],
        [3, 0.5],
      ],
    );
    const fig = viz.trainingCurvesFigure(h, { smoothing: 0 });
    const lnK = fig.data.find((d) => String(d.name).startsWith('ln K'));
    assert.ok(lnK);
    close((lnK.y as number[])[0], Math.log(64));
    const loss = fig.data.find((d) => d.name === 'total');
    assert.deepEqual(loss?.y, [9, 8, 0.5]);
    // 8 panels, 8 axes pairs.
    assert.ok('xaxis8' in fig.layout && 'yaxis8' in fig.layout);
  });

  it('fromLog reads log.jsonl, keeps the last record per step and tolerates a torn last line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-viz-'));
    const file = path.join(dir, 'log.jsonl');
    const rec = (step: number, loss: number): string => JSON.stringify({ step, totalSteps: 5, epoch: 0, lr: 1, wd: 0, momentum: 0.9, imagesPerSec: 1, stats: stats({ loss }) });
    fs.writeFileSync(file, [rec(1, 3), rec(2, 2), rec(2, 1.5), '{"step": 3, "sta'].join('\n'));
    const h = viz.TrainingHistory.fromLog(file, 32);
    assert.deepEqual(
      h.points.map((p) => [p.step, p.loss]),
      [
        [1, 3],
        [2, 1.5],
      ],
    );
    assert.equal(h.totalSteps, 5);
    assert.throws(() => viz.TrainingHistory.fromLog(path.join(dir, 'none.jsonl')), /no training log/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('tables and charts', () => {
  it('tableHtml escapes text, formats numbers and bolds the column maximum', async () => {
    const html = viz.tableHtml(
      [
        { method: '<b>knn</b>', top1: 71.234, n: 500 },
        { method: 'linear', top1: 75.5, n: 500 },
      ],
      { highlightMax: ['top1'], caption: 'a & b' },
    );
    assert.ok(html.includes('&lt;b&gt;knn&lt;/b&gt;'));
    assert.ok(html.includes('>71.23<'));
    assert.ok(/font-weight:bold">75.50</.test(html));
    assert.ok(html.includes('a &amp; b'));
    assert.ok(html.includes('>500<'));
  });

  it('confusionMatrixFigure normalises rows and titles the accuracy', async () => {
    const m = [
      [3, 1],
      [0, 4],
    ];
    const fig = viz.confusionMatrixFigure(m, { classNames: ['a', 'b'] });
    assert.deepEqual(fig.data[0].z, [
      [0.75, 0.25],
      [0, 1],
    ]);
    // 7 of 8 correct.
    assert.match(String((fig.layout.title as { text: string }).text), /87\.5%/);
    assert.deepEqual(fig.data[0].text, [
      ['75%', '25%'],
      ['', '100%'],
    ]);
    const html = viz.confusionMatrixHtml(m, { classNames: ['a', 'b'] });
    assert.equal((html.match(/font-weight:bold">/g) ?? []).length, 2);
    assert.throws(() => viz.confusionMatrixFigure([[1, 2]]), /square/);
  });

  it('sortedProbabilitiesFigure sorts and reports entropy', async () => {
    const fig = viz.sortedProbabilitiesFigure([{ name: 'p', probs: [0.25, 0.5, 0.25] }]);
    assert.deepEqual(fig.data[0].y, [0.5, 0.25, 0.25]);
    // H = −(0.5 ln 0.5 + 2 · 0.25 ln 0.25) = 1.5 ln 2 ≈ 1.04
    assert.match(String(fig.data[0].name), /H = 1\.04 nats/);
    close(viz.entropyOf([0.5, 0.5]), Math.log(2));
  });

  it('bar, line and cluster-gallery charts check their inputs', async () => {
    assert.throws(() => viz.barChartFigure(['a', 'b'], [{ name: 's', values: [1] }]), /1 values for 2 categories/);
    const bars = viz.barChartFigure(['a'], [{ name: 's', values: [12.345] }], { digits: 1 });
    assert.deepEqual(bars.data[0].text, ['12.3']);
    assert.throws(() => viz.lineChartFigure([1, 2], [{ name: 's', values: [1] }]), /1 values for 2 x/);
    const img: viz.HostImage = { width: 2, height: 2, channels: 1, data: new Float32Array(4) };
    const fig = viz.clusterGalleryFigure({ images: () => img, assignments: [5, 5, 3], labels: [1, 1, 0], classNames: ['x', 'y'], perCluster: 2 });
    const labels = (fig.layout.annotations as Array<{ text: string }>).map((a) => a.text);
    // Largest cluster first: 5 (2 images, all class y), then 3.
    assert.deepEqual(labels, ['cluster 5<br>2 images<br>100% y', 'cluster 3<br>1 images<br>100% x']);
  });
});

describe('html', () => {
  it('figureJson turns typed arrays into arrays, non-finite into null and escapes </script>', async () => {
    const json = viz.figureJson({ data: [{ type: 'scatter', x: Float32Array.from([1, 2.5]), y: [NaN, 1 / 3], name: '</script><script>' }], layout: {} });
    const back = JSON.parse(json) as { data: Array<{ x: number[]; y: Array<number | null>; name: string }> };
    assert.deepEqual(back.data[0].x, [1, 2.5]);
    assert.equal(back.data[0].y[0], null);
    close(back.data[0].y[1] as number, 1 / 3, 1e-6);
    assert.equal(back.data[0].name, '</script><script>');
    assert.ok(!json.includes('</script'));
  });

  it('figureHtml makes a div and a newPlot call; standalone pages inline plotly once', async () => {
    const fig = viz.barChartFigure(['a'], [{ name: 's', values: [1] }]);
    const html = viz.figureHtml(fig, { id: 'fig-a' });
    assert.ok(html.startsWith('<div class="ibotlab-figure" id="fig-a"'));
    assert.ok(html.includes('Plotly.newPlot'));
    assert.throws(() => viz.figureHtml(fig, { id: '1 bad' }), /id/);
    const page = viz.standaloneHtml([fig, { html: '<p>note</p>' }, fig], { title: 'T' });
    assert.equal(page.split('Plotly.newPlot').length - 1, 2);
    assert.ok(page.includes('id="ibotlab-fig-0"') && page.includes('id="ibotlab-fig-2"'));
    assert.ok(page.length > 1_000_000, 'plotly.js is inlined');
    assert.equal(page.indexOf(viz.plotlySource().slice(0, 200)), page.lastIndexOf(viz.plotlySource().slice(0, 200)));
  });
});

describe('notebook display helpers', () => {
  interface Sent {
    id: number;
    html: string;
  }
  function fakeDisplay(): { api: viz.DisplayApi; sent: Sent[] } {
    const sent: Sent[] = [];
    let next = 1;
    const mk = (id: number): viz.HtmlDisplay => ({ html: (s: string) => sent.push({ id, html: s }) });
    return { api: { display: mk(0), newDisplay: () => mk(next++) }, sent };
  }

  it('show sends plotly.js once, then one output per item', async () => {
    const { api, sent } = fakeDisplay();
    viz.useDisplay(api);
    const fig = viz.barChartFigure(['a'], [{ name: 's', values: [1] }]);
    viz.show(fig, { html: '<p>x</p>' });
    viz.show(fig);
    assert.equal(sent.length, 4);
    assert.ok(sent[0].html.includes('ibotlab-plotly') && sent[0].html.length > 1_000_000);
    assert.ok(sent[1].html.includes('Plotly.newPlot'));
    assert.equal(sent[2].html, '<p>x</p>');
    assert.ok(sent.slice(1).every((s) => s.html.length < 100_000), 'plotly.js is sent only once');
    viz.useDisplay(undefined);
  });

  it('LiveTrainingCurves redraws one display, throttled, and always at done', async () => {
    const { api, sent } = fakeDisplay();
    viz.useDisplay(api);
    const live = new viz.LiveTrainingCurves({ minIntervalMs: 60_000 });
    for (let s = 1; s <= 5; s++) await live.push(stepEvent(s, 5 - s));
    await live.push({ type: 'done', step: 5, totalSteps: 10, elapsedSec: 1, finished: false });
    const figs = sent.filter((s) => s.html.includes('Plotly.newPlot'));
    // First step draws, the next 4 are throttled, done forces a final draw; both into the same display.
    assert.equal(figs.length, 2);
    assert.equal(new Set(figs.map((f) => f.id)).size, 1);
    assert.notEqual(figs[0].id, 0);
    assert.equal(live.history.points.length, 5);
    viz.useDisplay(undefined);
  });

  it('outside a tslab kernel show() explains what to do', async () => {
    viz.useDisplay(undefined);
    assert.throws(() => viz.show({ html: 'x' }), /tslab/);
  });
});


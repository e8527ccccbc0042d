/**
 * Which recipe learns most per minute? Short pretraining probes of a list of
 * recipes under one time budget each, every probe evaluated the same way
 * (k-NN on [CLS] and on [CLS] + mean patch token, linear probe, k-means NMI /
 * ARI / ACC, logistic regression with 1% of the labels), next to raw pixels
 * and the untrained network. One arquero table (CSV) and a plotly page.
 *
 *   npm run sweep                                  # every recipe, 3 minutes each
 *   npm run sweep -- --minutes 2 --recipes default,sinkhorn,koleo
 *   npm run sweep -- --out benchmarks/results/sweep-2026-11-30
 *
 * Recipes are the `fashion-mnist` preset as it was before the sweep (K = 256,
 * no KoLeo: the `default` row) with one change each (see RECIPES);
 * the data is the embedded 8,000 / 2,000 Fashion-MNIST split.
 */
import * as path from 'node:path';
import * as aq from 'arquero';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, describeBackend } from '../src/backend';
import { loadEmbeddedFashionMnist } from '../src/data/registry';
import { ImageDataset } from '../src/data/dataset';
import { resolveNormalize } from '../src/data/normalize';
import { PretrainConfig, buildModel } from '../src/train/config';
import { pretrainPreset } from '../src/train/presets';
import { Pretrainer } from '../src/train/pretrain';
import { IBOTModel } from '../src/train/ibot';
import { VisionTransformer } from '../src/model/vit';
import { extractFeatures, pixelFeatures } from '../src/eval/features';
import { knnClassify } from '../src/eval/knn';
import { linearProbe } from '../src/eval/linear';
import { kmeansClustering, headClustering } from '../src/eval/cluster';
import { semiSupervised } from '../src/eval/semi';
import { saveTable } from '../src/eval/results';
import { barChartFigure, writeStandaloneHtml, tableHtml } from '../src/viz';
import { ProgressBar } from '../src/util/progress';

/** One change to the default recipe, with where it comes from. */
interface Recipe {
  name: string;
  source: string;
  apply: (c: PretrainConfig) => PretrainConfig;
}

const loss = (c: PretrainConfig, patch: Partial<PretrainConfig['model']['loss']>): PretrainConfig => ({ ...c, model: { ...c.model, loss: { ...c.model.loss, ...patch } } });
const head = (c: PretrainConfig, patch: Partial<PretrainConfig['model']['head']>): PretrainConfig => ({ ...c, model: { ...c.model, head: { ...c.model.head, ...patch } } });
const separate = (c: PretrainConfig): PretrainConfig => ({ ...c, model: { ...c.model, head: { ...c.model.head, sharedHead: false }, sharedHeadTeacher: false } });
const vit = (c: PretrainConfig, patch: Partial<PretrainConfig['model']['vit']>): PretrainConfig => ({ ...c, model: { ...c.model, vit: { ...c.model.vit, ...patch } } });

export const RECIPES: Recipe[] = [
  { name: 'default', source: 'the fashion-mnist preset before the sweep (K = 256, no KoLeo)', apply: (c) => c },
  { name: 'sinkhorn', source: 'DINOv2: Sinkhorn-Knopp centering, teacher temperature 0.07', apply: (c) => loss(c, { centering: 'sinkhorn-knopp', teacherTemp: 0.07 }) },
  { name: 'koleo', source: 'DINOv2: KoLeo 0.1 on the student [CLS]', apply: (c) => loss(c, { koleoWeight: 0.1 }) },
  { name: 'sinkhorn+koleo', source: 'DINOv2: both', apply: (c) => loss(c, { centering: 'sinkhorn-knopp', teacherTemp: 0.07, koleoWeight: 0.1 }) },
  { name: 'layerscale', source: 'DINOv2/CaiT: LayerScale, init 0.1', apply: (c) => vit(c, { layerScale: 0.1 }) },
  { name: 'separate-patch-head', source: 'iBOT: last_layer2 for patches (shared_head false)', apply: separate },
  { name: 'lr x2', source: 'a faster learning rate (4e-3 per 256)', apply: (c) => ({ ...c, lr: 2 * c.lr }) },
  { name: 'batch 64', source: 'fewer, larger steps', apply: (c) => ({ ...c, batchSize: 64 }) },
  { name: 'teacher 0.996', source: 'the paper\'s teacher momentum', apply: (c) => ({ ...c, momentumTeacher: 0.996 }) },
  { name: '4 local crops', source: 'more local views (paper: 10)', apply: (c) => ({ ...c, crops: { ...c.crops, localCrops: 4 } }) },
  // Second round: combinations of what helped in the first, and a few bolder changes.
  { name: 'koleo seed 1', source: 'KoLeo 0.1, another seed (how much is noise)', apply: (c) => ({ ...loss(c, { koleoWeight: 0.1 }), seed: 1 }) },
  { name: 'koleo 0.3', source: 'a stronger KoLeo', apply: (c) => loss(c, { koleoWeight: 0.3 }) },
  { name: 'koleo+sep', source: 'KoLeo 0.1 and a separate patch head', apply: (c) => separate(loss(c, { koleoWeight: 0.1 })) },
  { name: 'koleo+sep+lr x2', source: 'KoLeo 0.1, separate patch head, lr 4e-3', apply: (c) => ({ ...separate(loss(c, { koleoWeight: 0.1 })), lr: 2 * c.lr }) },
  { name: 'koleo+lr x2', source: 'KoLeo 0.1, lr 4e-3', apply: (c) => ({ ...loss(c, { koleoWeight: 0.1 }), lr: 2 * c.lr }) },
  { name: 'koleo K64', source: 'KoLeo 0.1, K = 64 (fewer prototypes to share out)', apply: (c) => head(loss(c, { koleoWeight: 0.1 }), { outDim: 64, patchOutDim: 64 }) },
  { name: 'koleo K1024', source: 'KoLeo 0.1, K = 1024', apply: (c) => head(loss(c, { koleoWeight: 0.1 }), { outDim: 1024, patchOutDim: 1024 }) },
  { name: 'koleo no-MIM', source: 'KoLeo 0.1, λ2 = 0 ([CLS] self-distillation only, i.e. DINO)', apply: (c) => loss(c, { koleoWeight: 0.1, lambda2: 0 }) },
  // Third round: fewer prototypes, the clearest gain of the second.
  { name: 'koleo K64 seed 1', source: 'KoLeo 0.1, K = 64, another seed', apply: (c) => ({ ...head(loss(c, { koleoWeight: 0.1 }), { outDim: 64, patchOutDim: 64 }), seed: 1 }) },
  { name: 'koleo K32', source: 'KoLeo 0.1, K = 32', apply: (c) => head(loss(c, { koleoWeight: 0.1 }), { outDim: 32, patchOutDim: 32 }) },
  { name: 'koleo K64+sep+lr x2', source: 'KoLeo 0.1, K = 64, separate patch head, lr 4e-3', apply: (c) => ({ ...separate(head(loss(c, { koleoWeight: 0.1 }), { outDim: 64, patchOutDim: 64 })), lr: 2 * c.lr }) },
  { name: 'koleo K64 no-local', source: 'KoLeo 0.1, K = 64, 2 global crops only', apply: (c) => ({ ...head(loss(c, { koleoWeight: 0.1 }), { outDim: 64, patchOutDim: 64 }), crops: { ...c.crops, localCrops: 0 } }) },
  { name: 'koleo K64 no-local seed 1', source: 'KoLeo 0.1, K = 64, 2 global crops only, another seed', apply: (c) => ({ ...head(loss(c, { koleoWeight: 0.1 }), { outDim: 64, patchOutDim: 64 }), crops: { ...c.crops, localCrops: 0 }, seed: 1 }) },
  { name: 'koleo no-local', source: 'KoLeo 0.1, 2 global crops only (cheaper steps)', apply: (c) => ({ ...loss(c, { koleoWeight: 0.1 }), crops: { ...c.crops, localCrops: 0 } }) },
];

interface Args {
  minutes: number;
  recipes: string[];
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { minutes: 3, recipes: RECIPES.map((r) => r.name), out: path.join('benchmarks', 'results', 'sweep') };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--minutes') a.minutes = Number(argv[++i]);
    else if (v === '--recipes') a.recipes = argv[++i].split(',').map((s) => s.trim());
    else if (v === '--out') a.out = argv[++i];
    else throw new Error(`unknown argument '${v}' (usage: sweep.js [--minutes M] [--recipes a,b] [--out PREFIX])`);
  }
  if (!(a.minutes > 0)) throw new Error('--minutes must be positive');
  for (const r of a.recipes) if (!RECIPES.some((x) => x.name === r)) throw new Error(`unknown recipe '${r}'; known: ${RECIPES.map((x) => x.name).join(', ')}`);
  return a;
}

interface Row {
  recipe: string;
  source: string;
  steps: number;
  epochs: number;
  minutes: number;
  knn: number;
  knnAvgPool: number;
  linear: number;
  nmi: number;
  ari: number;
  acc: number;
  headNmi: number;
  semi1: number;
  teacherEntropy: number;
}

/** Every protocol of the sweep on one backbone (head: the teacher's, for head-argmax NMI). */
async function evaluate(name: string, backbone: VisionTransformer | null, head: IBOTModel['teacher']['head'] | null, cfg: PretrainConfig, train: ImageDataset, test: ImageDataset): Promise<Omit<Row, 'recipe' | 'source' | 'steps' | 'epochs' | 'minutes' | 'teacherEntropy'>> {
  const norm = resolveNormalize(cfg.crops.normalize, train.channels);
  const opts = { mean: norm?.mean, std: norm?.std };
  const feats = (ds: ImageDataset, o: { avgPool?: boolean; lastBlocks?: number } = {}): tf.Tensor2D =>
    backbone ? extractFeatures(backbone, ds, { ...opts, ...o }) : pixelFeatures(ds);
  const tr = feats(train);
  const te = feats(test);
  const trA = backbone ? feats(train, { avgPool: true }) : tr;
  const teA = backbone ? feats(test, { avgPool: true }) : te;
  const trL = backbone ? feats(train, { lastBlocks: 4 }) : tr;
  const teL = backbone ? feats(test, { lastBlocks: 4 }) : te;
  try {
    const knn = await knnClassify(tr, train.labels, te, { k: 20, temperature: 0.07, testLabels: test.labels });
    const knnA = await knnClassify(trA, train.labels, teA, { k: 20, temperature: 0.07, testLabels: test.labels });
    const lin = await linearProbe(trL, train.labels, teL, test.labels, { seed: 0 });
    const km = await kmeansClustering(te, test.labels, { seed: 0 });
    const semi = await semiSupervised(tr, train.labels, te, test.labels, { fractions: [0.01], seed: 0, logistic: { Cs: [1, 10, 100] } });
    const headNmi = backbone && head ? (await headClustering(head, te, test.labels)).metrics.nmi : NaN;
    process.stderr.write(`  ${name}: k-NN ${knn.top1?.toFixed(2)} (+avgpool ${knnA.top1?.toFixed(2)}), linear ${lin.top1.toFixed(2)}, NMI ${(100 * km.metrics.nmi).toFixed(1)}, 1% ${semi[0].logistic.top1.toFixed(2)}\n`);
    return {
      knn: knn.top1 as number,
      knnAvgPool: knnA.top1 as number,
      linear: lin.top1,
      nmi: 100 * km.metrics.nmi,
      ari: 100 * km.metrics.ari,
      acc: 100 * km.metrics.acc,
      headNmi: 100 * headNmi,
      semi1: semi[0].logistic.top1,
    };
  } finally {
    tf.dispose([...new Set([tr, te, trA, teA, trL, teL])]);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const info = await initBackend({ quiet: true });
  const { train, test } = loadEmbeddedFashionMnist();
  // Every recipe is a change to the `fashion-mnist` preset as it was before this sweep (K = 256, no
  // KoLeo), so the committed tables stay reproducible now that the preset has KoLeo and K = 64.
  const base = head(loss(pretrainPreset('fashion-mnist'), { koleoWeight: 0 }), { outDim: 256, patchOutDim: 256 });
  process.stderr.write(`sweep on ${describeBackend(info)}: ${args.recipes.length} recipes × ${args.minutes} min on ${train.n} images, evaluated on ${test.n}\n`);
  const rows: Row[] = [];
  const baselineRow = async (recipe: string, source: string, backbone: VisionTransformer | null, head: IBOTModel['teacher']['head'] | null): Promise<void> => {
    rows.push({ recipe, source, steps: 0, epochs: 0, minutes: 0, teacherEntropy: NaN, ...(await evaluate(recipe, backbone, head, base, train, test)) });
  };
  await baselineRow('raw pixels', 'flattened pixels in [0, 1]', null, null);
  const initial = buildModel(base);
  await baselineRow('random init', 'the default ViT before training', initial.teacher.backbone, initial.teacher.head);
  initial.dispose();

  for (const name of args.recipes) {
    const recipe = RECIPES.find((r) => r.name === name) as Recipe;
    const cfg = recipe.apply(base);
    const trainer = new Pretrainer(cfg, train, { minutes: args.minutes });
    let bar: ProgressBar | undefined;
    let entropy = NaN;
    const t0 = Date.now();
    for await (const ev of trainer.run()) {
      if (ev.type === 'start') bar = new ProgressBar(ev.totalSteps, { label: name });
      if (ev.type === 'step') {
        entropy = ev.stats.teacherEntropy;
        bar?.update(ev.step, `loss ${ev.stats.loss.toFixed(3)} H ${entropy.toFixed(2)}`);
      }
    }
    bar?.done();
    const minutes = (Date.now() - t0) / 60000;
    const model = trainer.model as IBOTModel;
    const r = await evaluate(name, model.teacher.backbone, model.teacher.head, cfg, train, test);
    rows.push({ recipe: name, source: recipe.source, steps: trainer.step, epochs: trainer.step / trainer.itersPerEpoch, minutes, teacherEntropy: entropy, ...r });
    trainer.dispose();
    // Written after every probe: a long sweep that is stopped keeps what it measured.
    write(args.out, rows, args.minutes, describeBackend(info));
  }
  write(args.out, rows, args.minutes, describeBackend(info));
  process.stderr.write(`wrote ${args.out}.csv and ${args.out}.html\n`);
}

function write(out: string, rows: Row[], minutes: number, backend: string): void {
  const round = (v: number): number => (Number.isFinite(v) ? Math.round(v * 100) / 100 : NaN);
  const table = aq.from(rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, typeof v === 'number' ? round(v) : v]))));
  saveTable(table, `${out}.csv`);
  const names = rows.map((r) => r.recipe);
  const metric = (k: keyof Row, label: string): { name: string; values: number[] } => ({ name: label, values: rows.map((r) => r[k] as number) });
  writeStandaloneHtml(`${out}.html`, [
    barChartFigure(names, [metric('knn', 'k-NN [CLS]'), metric('knnAvgPool', 'k-NN [CLS]+avgpool'), metric('linear', 'linear probe')], { title: `Accuracy after ${minutes} minutes of pretraining (%)`, yRange: [0, 100], width: 1100 }),
    barChartFigure(names, [metric('nmi', 'k-means NMI'), metric('ari', 'k-means ARI'), metric('acc', 'k-means ACC'), metric('semi1', '1% labels')], { title: 'Clustering and 1% labels (%)', yRange: [0, 100], width: 1100 }),
    { html: tableHtml(table.objects() as Array<Record<string, string | number>>) },
  ], { title: `ibotlab recipe sweep — ${minutes} min per recipe, ${backend}` });
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

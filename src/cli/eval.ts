/**
 * `ibotlab eval`: the paper's evaluation protocols on a checkpoint's teacher,
 * on the same architecture at random initialisation, or on raw pixels.
 *
 *   ibotlab eval --checkpoint runs/<name> [--protocol knn|linear|logistic|semi|cluster|all] [--json]
 *   ibotlab eval --features pixels|random [--preset P] …
 *
 * Features are extracted once per (model weights, dataset, options) and
 * cached: under `<checkpoint>/features/` for a checkpoint, `.cache/features/`
 * for pixels and random init.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, labelSubset, subset } from '../data/dataset';
import { IBOTModel } from '../train/ibot';
import { PretrainConfig, pretrainPreset } from '../train/presets';
import { hasCheckpoint, loadCheckpoint, readCheckpointState } from '../io/checkpoint';
import { resolveNormalize } from '../augment/multicrop';
import { FeatureSet, backboneFeatureSet, disposeFeatureSet, pixelFeatureSet } from '../eval/features';
import { ALL_PROTOCOLS, EvalReport, ProtocolName, evaluateFeatures } from '../eval/protocols';
import { SemiResult, semiFineTune } from '../eval/semi';
import { ClusterResult } from '../eval/cluster';
import { LinearProbeResult } from '../eval/linear';
import { confusionTable, formatTable, reportJson, resultsTable, saveTable, sweepTable } from '../eval/results';
import { loadSplits } from './pretrain';

export type FeatureSource = 'checkpoint' | 'pixels' | 'random';

export interface EvalArgs {
  /** Run folder written by `ibotlab pretrain` (holds checkpoint.json). */
  checkpoint?: string;
  dataset: string;
  dataPath?: string;
  /** knn | linear | logistic | semi | cluster | all, or a comma-separated list. */
  protocol: string;
  /** Default 'checkpoint' when a checkpoint is given. */
  features?: FeatureSource;
  /** Architecture (and pixel normalisation) for `--features random` without a checkpoint. */
  preset: string;
  json: boolean;
  seed?: number;
  /** Also fine-tune end to end on the 10% split (semi protocol; slow). */
  finetune?: boolean;
  /** Save the full results table (.csv or .json). */
  out?: string;
  /** Where pixel / random-init features are cached. Default `.cache/features`. */
  cacheDir?: string;
  /** Evaluate on a class-balanced subset (per class) of each split: for quick checks. */
  perClass?: { train: number; test: number };
  /** Progress bars on stderr. Default true. */
  progress?: boolean;
  /** Where results are printed (default stdout). */
  write?: (text: string) => void;
  /** Where progress messages go (default stderr). */
  log?: (text: string) => void;
}

/** Parse the --protocol value. */
export function parseProtocols(spec: string): ProtocolName[] {
  const parts = spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (parts.length === 0 || parts.includes('all')) return [...ALL_PROTOCOLS];
  for (const p of parts) {
    if (!(ALL_PROTOCOLS as readonly string[]).includes(p)) {
      throw new Error(`unknown protocol '${p}'; choose from ${ALL_PROTOCOLS.join(', ')} or all (a comma-separated list works too)`);
    }
  }
  return parts as ProtocolName[];
}

interface Source {
  name: string;
  config: PretrainConfig;
  model?: IBOTModel;
  cacheDir: string;
}

function openSource(a: EvalArgs, kind: FeatureSource): Source {
  const defaultCache = a.cacheDir ?? path.join('.cache', 'features');
  if (kind === 'pixels') return { name: 'pixels', config: pretrainPreset(a.preset), cacheDir: defaultCache };
  let config: PretrainConfig;
  if (a.checkpoint) {
    if (!fs.existsSync(a.checkpoint)) {
      throw new Error(
        `checkpoint folder '${a.checkpoint}' does not exist. Train one with 'ibotlab pretrain --out ${a.checkpoint}', ` +
          "or evaluate a baseline without one: 'ibotlab eval --features pixels' or '--features random --preset fashion-mnist'",
      );
    }
    if (kind === 'checkpoint' && !hasCheckpoint(a.checkpoint)) {
      throw new Error(
        `'${a.checkpoint}' holds no complete checkpoint (checkpoint.json + checkpoint.safetensors). ` +
          `Train with 'ibotlab pretrain --out ${a.checkpoint}' (or '--resume' to continue a stopped run)`,
      );
    }
    config = readCheckpointState<PretrainConfig>(a.checkpoint).config;
    if (!config || !config.model) throw new Error(`${a.checkpoint}/checkpoint.json has no model config; it was not written by 'ibotlab pretrain'`);
  } else if (kind === 'checkpoint') {
    throw new Error(
      "no checkpoint given: pass --checkpoint runs/<name> (a folder written by 'ibotlab pretrain --out runs/<name>'), " +
        'or evaluate a baseline with --features pixels or --features random',
    );
  } else {
    config = pretrainPreset(a.preset);
  }
  const model = new IBOTModel(config.model, config.seed);
  if (kind === 'checkpoint') {
    try {
      loadCheckpoint(a.checkpoint as string, model);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return { name: a.checkpoint as string, config, model, cacheDir: path.join(a.checkpoint as string, 'features') };
  }
  return { name: 'random', config, model, cacheDir: defaultCache };
}

function balanced(ds: ImageDataset, perClass: number, seed: number): ImageDataset {
  return subset(ds, labelSubset(ds.labels, { perClass }, seed, ds.numClasses), `${ds.name}[${perClass}/class]`);
}

/** Extract (or load cached) features of both splits: [CLS] for most protocols, last-blocks [CLS] for the linear probe. */
function featureSet(src: Source, train: ImageDataset, test: ImageDataset, progress: boolean, log: (t: string) => void): Promise<FeatureSet> {
  if (!src.model) return pixelFeatureSet(train, test, { cacheDir: src.cacheDir });
  const norm = resolveNormalize(src.config.crops.normalize, train.channels);
  const { backbone, head } = src.model.teacher;
  return backboneFeatureSet({ name: src.name, backbone, head, normalize: norm, cacheDir: src.cacheDir, progress, log }, train, test);
}

/** Run the evaluation and return the report (no printing of results). */
export async function evalReport(a: EvalArgs): Promise<EvalReport> {
  const log = a.log ?? ((t: string) => process.stderr.write(t + '\n'));
  const progress = a.progress ?? true;
  const kind: FeatureSource = a.features ?? 'checkpoint';
  if (!['checkpoint', 'pixels', 'random'].includes(kind)) throw new Error(`--features must be checkpoint, pixels or random, got '${kind}'`);
  const protocols = parseProtocols(a.protocol);
  const seed = a.seed ?? 0;
  const src = openSource(a, kind);
  try {
    if (a.checkpoint && kind !== 'pixels' && src.config.dataset && src.config.dataset !== a.dataset) {
      log(`note: ${a.checkpoint} was pretrained on '${src.config.dataset}' and is evaluated on '${a.dataset}'`);
    }
    let splits: { train: ImageDataset; test: ImageDataset };
    try {
      splits = await loadSplits(a.dataset, a.dataPath);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n(the bundled 'fashion-mnist-embedded' needs no download: --dataset fashion-mnist-embedded)`);
    }
    let { train, test } = splits;
    if (a.perClass) {
      train = balanced(train, a.perClass.train, seed);
      test = balanced(test, a.perClass.test, seed + 1);
    }
    const fset = await featureSet(src, train, test, progress, log);
    try {
      const report = await evaluateFeatures(fset, {
        protocols,
        seed,
        onProtocol: (p) => log(`${p}…`),
        onProtocolDone: (p, sec) => log(`${p} done in ${sec.toFixed(1)} s`),
      });
      report.dataset = a.dataset;
      if (a.finetune && protocols.includes('semi')) {
        if (!src.model) {
          log('fine-tuning needs a model: skipped for --features pixels');
        } else {
          const norm = resolveNormalize(src.config.crops.normalize, train.channels);
          log('fine-tuning on the 10% split…');
          const ft = await semiFineTune(src.model.teacher.backbone, train, test, 0.1, {
            projectionHead: src.model.teacher.head,
            mean: norm?.mean,
            std: norm?.std,
            seed,
            progress,
          });
          const target = report.results.find((r): r is SemiResult => r.protocol === 'semi' && Math.abs(r.fraction - 0.1) < 1e-9);
          if (target) target.finetune = ft;
          else report.results.push(ft);
        }
      }
      return report;
    } finally {
      disposeFeatureSet(fset);
    }
  } finally {
    src.model?.dispose();
  }
}

/** The `ibotlab eval` command: evaluate, print a table (or JSON), optionally save. */
export async function runEval(a: EvalArgs): Promise<number> {
  const write = a.write ?? ((t: string) => process.stdout.write(t + '\n'));
  const t0 = Date.now();
  const report = await evalReport(a);
  if (a.out) saveTable(resultsTable(report), a.out);
  if (a.json) {
    write(JSON.stringify(reportJson(report, { details: true })));
    return 0;
  }
  write(`${report.features} on ${a.dataset}  (${((Date.now() - t0) / 1000).toFixed(1)} s; accuracies and cluster scores in %)`);
  write(formatTable(resultsTable(report, { details: false })));
  for (const r of report.results) {
    if (r.protocol === 'linear') {
      const lp = r as LinearProbeResult;
      write(`\nlinear probe sweep (validation top-1 on ${lp.numVal} held-out train images; retrained on all with the chosen setting):`);
      write(formatTable(sweepTable(lp)));
    } else if (r.protocol === 'cluster') {
      const c = r as ClusterResult;
      write(`\n${c.method}: ${c.numClusters} clusters used; rows = true class, columns = matched cluster`);
      write(formatTable(confusionTable(c)));
    }
  }
  if (a.out) write(`\nsaved ${a.out}`);
  return 0;
}

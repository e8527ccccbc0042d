/**
 * `ibotlab eval`: the paper's evaluation protocols on a run's teacher, on a
 * pretrained ViT from a `.safetensors` file, on the same architecture at
 * random initialisation, or on raw pixels.
 *
 *   ibotlab eval --checkpoint runs/<name> [--protocol knn|linear|logistic|semi|cluster|all] [--json]
 *   ibotlab eval --weights vit_small_patch16_224.dino.safetensors [--heads 6] --protocol knn
 *   ibotlab eval --features pixels|random [--preset P] …
 *
 * Features are extracted once per (model weights, dataset, options) and
 * cached: under `<checkpoint>/features/` for a checkpoint, `.cache/features/`
 * otherwise.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageDataset, labelSubset, subset } from '../data/dataset';
import { loadSplits } from '../data/registry';
import { NormalizeConfig, resolveNormalize } from '../data/normalize';
import { VisionTransformer } from '../model/vit';
import { IBOTHead } from '../model/head';
import { formatPretrainedReport, loadPretrainedViT } from '../model/pretrained';
import { PretrainConfig, buildModel } from '../train/config';
import { pretrainPreset } from '../train/presets';
import { hasCheckpoint, loadRun, readCheckpointState } from '../train/checkpoint';
import { FeatureSet, backboneFeatureSet, disposeFeatureSet, pixelFeatureSet } from '../eval/features';
import { ALL_PROTOCOLS, EvalReport, ProtocolName, evaluateFeatures } from '../eval/protocols';
import { SemiResult, semiFineTune } from '../eval/semi';
import { ClusterResult } from '../eval/cluster';
import { LinearProbeResult } from '../eval/linear';
import { confusionTable, formatTable, reportJson, resultsTable, saveTable, sweepTable } from '../eval/results';
import { CommandSpec, OptionValues, flag, num, str } from './args';

export type FeatureSource = 'checkpoint' | 'weights' | 'pixels' | 'random';

export const EVAL_COMMAND: CommandSpec = {
  name: 'eval',
  summary: 'evaluation protocols of the paper on frozen features (a run\'s teacher, pretrained weights, random init or pixels)',
  options: [
    { name: 'checkpoint', type: 'string', value: 'DIR', help: "run folder written by pretrain (e.g. runs/fashion-mnist)" },
    { name: 'weights', type: 'string', value: 'FILE', help: 'a ViT backbone in .safetensors with timm/DINO/iBOT names (see `ibotlab weights`)' },
    { name: 'heads', type: 'integer', value: 'N', help: "with --weights: attention heads (default: the file's metadata, else width/64)" },
    { name: 'protocol', type: 'string', value: 'P', help: 'knn, linear, logistic, semi, cluster or all (default; a comma list works too)' },
    { name: 'features', type: 'string', value: 'F', help: 'pixels (no model), random (the architecture at random init); default: the checkpoint or weights' },
    { name: 'dataset', type: 'string', value: 'NAME', help: "data to evaluate on (default: the checkpoint's, else the preset's)" },
    { name: 'data-path', type: 'string', value: 'DIR', help: "where the dataset's files are" },
    { name: 'preset', type: 'string', value: 'NAME', help: 'architecture and normalisation for --features random/pixels without a checkpoint (default fashion-mnist)' },
    { name: 'per-class', type: 'integer', value: 'N', help: 'evaluate on N train and ceil(N/4) test images per class (quick checks)' },
    { name: 'seed', type: 'integer', value: 'N', help: 'seed of every split, initialisation and k-means' },
    { name: 'finetune', type: 'boolean', help: 'with semi: also fine-tune end to end on the 10% split (slow)' },
    { name: 'out', type: 'string', value: 'FILE', help: 'save the full results table (.csv or .json)' },
    { name: 'json', type: 'boolean', help: 'print one JSON object with every metric instead of tables' },
  ],
};

export interface EvalArgs {
  /** Run folder written by `ibotlab pretrain` (holds checkpoint.json). */
  checkpoint?: string;
  /** A ViT backbone in .safetensors (timm/DINO/iBOT names). */
  weights?: string;
  /** Heads of the `weights` model when its metadata does not say. */
  heads?: number;
  /** Dataset name; default: the checkpoint's, else the preset's. */
  dataset?: string;
  dataPath?: string;
  /** knn | linear | logistic | semi | cluster | all, or a comma-separated list. */
  protocol: string;
  /** Default 'checkpoint' with a checkpoint, 'weights' with weights. */
  features?: FeatureSource;
  /** Architecture (and pixel normalisation) for `--features random/pixels` without a checkpoint. */
  preset: string;
  json: boolean;
  seed?: number;
  /** Also fine-tune end to end on the 10% split (semi protocol; slow). */
  finetune?: boolean;
  /** Save the full results table (.csv or .json). */
  out?: string;
  /** Where pixel / random-init / weights features are cached. Default `.cache/features`. */
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

/** The command's options as `EvalArgs`. */
export function evalArgs(v: OptionValues): EvalArgs {
  const perClass = num(v, 'per-class');
  if (perClass !== undefined && perClass < 1) throw new Error(`--per-class must be at least 1, got ${perClass}`);
  return {
    checkpoint: str(v, 'checkpoint'),
    weights: str(v, 'weights'),
    heads: num(v, 'heads'),
    dataset: str(v, 'dataset'),
    dataPath: str(v, 'data-path'),
    protocol: str(v, 'protocol') ?? 'all',
    features: str(v, 'features') as FeatureSource | undefined,
    preset: str(v, 'preset') ?? 'fashion-mnist',
    json: flag(v, 'json'),
    seed: num(v, 'seed'),
    finetune: flag(v, 'finetune'),
    out: str(v, 'out'),
    perClass: perClass !== undefined ? { train: perClass, test: Math.ceil(perClass / 4) } : undefined,
  };
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

/** Where features come from: a model (or none, for pixels), its normalisation and a name for tables. */
interface Source {
  name: string;
  /** What an image folder is read as: the model's input size and channels. */
  input: { imageSize: number; channels: 1 | 3 };
  /** The dataset the model was made for, when known. */
  dataset?: string;
  backbone?: VisionTransformer;
  head?: IBOTHead;
  normalize: NormalizeConfig | null;
  /** Resize images to this side (a pretrained ViT's input size). */
  imageSize?: number;
  /** For fine-tuning. */
  config?: PretrainConfig;
  cacheDir: string;
  dispose(): void;
}

function checkpointConfig(dir: string, kind: FeatureSource): void {
  if (!fs.existsSync(dir)) {
    throw new Error(
      `checkpoint folder '${dir}' does not exist. Train one with 'ibotlab pretrain --out ${dir}', ` +
        "or evaluate a baseline without one: 'ibotlab eval --features pixels' or '--features random --preset fashion-mnist'",
    );
  }
  if (kind === 'checkpoint' && !hasCheckpoint(dir)) {
    throw new Error(`'${dir}' holds no complete checkpoint (checkpoint.json + checkpoint.safetensors). Train with 'ibotlab pretrain --out ${dir}' (or '--resume' to continue a stopped run)`);
  }
}

async function openSource(a: EvalArgs, kind: FeatureSource, log: (t: string) => void): Promise<Source> {
  const defaultCache = a.cacheDir ?? path.join('.cache', 'features');
  const none = (): void => undefined;
  if (kind === 'weights' || (kind === 'random' && a.weights)) {
    if (!a.weights) throw new Error("--features weights needs --weights FILE.safetensors");
    const { model, report } = await loadPretrainedViT(a.weights, { heads: a.heads });
    log(formatPretrainedReport(report));
    if (kind === 'random') {
      // The same architecture at random initialisation: the baseline a pretrained model is compared with.
      const fresh = new VisionTransformer(model.config, a.seed ?? 0);
      model.dispose();
      return { name: 'random', input: inputOf(fresh.config), backbone: fresh, normalize: report.normalization, imageSize: fresh.config.imgSize, cacheDir: defaultCache, dispose: () => fresh.dispose() };
    }
    return { name: path.basename(a.weights), input: inputOf(model.config), backbone: model, normalize: report.normalization, imageSize: model.config.imgSize, cacheDir: defaultCache, dispose: () => model.dispose() };
  }
  if (kind === 'pixels') {
    const preset = a.checkpoint && hasCheckpoint(a.checkpoint) ? loadRunConfig(a.checkpoint) : pretrainPreset(a.preset);
    return { name: 'pixels', input: inputOf(preset.model.vit), dataset: preset.dataset, normalize: null, cacheDir: defaultCache, dispose: none };
  }
  if (a.checkpoint) {
    checkpointConfig(a.checkpoint, kind);
    if (kind === 'checkpoint') {
      const run = loadRun(a.checkpoint);
      const { backbone, head } = run.model.teacher;
      return { name: a.checkpoint, input: inputOf(run.config.model.vit), dataset: run.config.dataset, backbone, head, normalize: run.normalize, config: run.config, cacheDir: path.join(a.checkpoint, 'features'), dispose: () => run.model.dispose() };
    }
  } else if (kind === 'checkpoint') {
    throw new Error(
      "no checkpoint given: pass --checkpoint runs/<name> (a folder written by 'ibotlab pretrain --out runs/<name>'), " +
        'pretrained weights with --weights FILE.safetensors, or evaluate a baseline with --features pixels or --features random',
    );
  }
  const config = a.checkpoint ? loadRunConfig(a.checkpoint) : pretrainPreset(a.preset);
  const model = buildModel(config, a.seed ?? config.seed);
  const normalize = resolveNormalize(config.crops.normalize, config.model.vit.inChans);
  const { backbone, head } = model.teacher;
  return { name: 'random', input: inputOf(config.model.vit), dataset: config.dataset, backbone, head, normalize, config, cacheDir: defaultCache, dispose: () => model.dispose() };
}

function inputOf(vit: { imgSize: number; inChans: number }): Source['input'] {
  return { imageSize: vit.imgSize, channels: vit.inChans === 1 ? 1 : 3 };
}

function loadRunConfig(dir: string): PretrainConfig {
  return readCheckpointState(dir).config;
}

function balanced(ds: ImageDataset, perClass: number, seed: number): ImageDataset {
  return subset(ds, labelSubset(ds.labels, { perClass }, seed, ds.numClasses), `${ds.name}[${perClass}/class]`);
}

/** Extract (or load cached) features of both splits: [CLS] for most protocols, last-blocks [CLS] for the linear probe. */
function featureSet(src: Source, train: ImageDataset, test: ImageDataset, progress: boolean, log: (t: string) => void): Promise<FeatureSet> {
  if (!src.backbone) return pixelFeatureSet(train, test, { cacheDir: src.cacheDir });
  return backboneFeatureSet({ name: src.name, backbone: src.backbone, head: src.head, normalize: src.normalize, imageSize: src.imageSize, cacheDir: src.cacheDir, progress, log }, train, test);
}

/** Run the evaluation and return the report (no printing of results). */
export async function evalReport(a: EvalArgs): Promise<EvalReport> {
  const log = a.log ?? ((t: string) => process.stderr.write(t + '\n'));
  const progress = a.progress ?? true;
  if (a.checkpoint && a.weights) throw new Error('pass either --checkpoint DIR or --weights FILE, not both');
  const kind: FeatureSource = a.features ?? (a.weights ? 'weights' : 'checkpoint');
  if (!['checkpoint', 'weights', 'pixels', 'random'].includes(kind)) throw new Error(`--features must be checkpoint, weights, pixels or random, got '${kind}'`);
  const protocols = parseProtocols(a.protocol);
  const seed = a.seed ?? 0;
  const src = await openSource(a, kind, log);
  try {
    const dataset = a.dataset ?? src.dataset ?? pretrainPreset(a.preset).dataset;
    if (a.checkpoint && kind === 'checkpoint' && src.dataset && src.dataset !== dataset) {
      log(`note: ${a.checkpoint} was pretrained on '${src.dataset}' and is evaluated on '${dataset}'`);
    }
    let splits: { train: ImageDataset; test: ImageDataset };
    try {
      splits = await loadSplits(dataset, a.dataPath, src.input);
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
      report.dataset = dataset;
      if (a.finetune && protocols.includes('semi')) {
        if (!src.backbone) {
          log('fine-tuning needs a model: skipped for --features pixels');
        } else {
          log('fine-tuning on the 10% split…');
          const ft = await semiFineTune(src.backbone, train, test, 0.1, {
            projectionHead: src.head,
            mean: src.normalize?.mean,
            std: src.normalize?.std,
            imageSize: src.imageSize,
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
    src.dispose();
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
  write(`${report.features} on ${report.dataset}  (${((Date.now() - t0) / 1000).toFixed(1)} s; accuracies and cluster scores in %)`);
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

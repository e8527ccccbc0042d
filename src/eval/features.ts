/**
 * Frozen features for evaluation, as the official protocols extract them:
 * the [CLS] token after the final norm (k-NN), optionally the [CLS] of the
 * last n blocks concatenated and the average-pooled patch tokens (linear
 * evaluation: `n_last_blocks`, `avgpool_patchtokens`), optionally
 * L2-normalised. Baselines (raw pixels, a randomly initialised model) come
 * through the same call so every protocol compares like with like.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset, toTensor } from '../data/dataset';
import { VisionTransformer } from '../model/vit';
import { IBOTHead } from '../model/head';
import { normalizeImages } from '../data/normalize';
import { ProgressBar } from '../util/progress';
import { makeDirs } from '../util/fs';

export interface FeatureOptions {
  /** Images per forward pass (default 256). */
  batchSize?: number;
  /** Concatenate the [CLS] of the last n blocks (official linear eval: 4 for ViT-S, 1 for ViT-B). Default 1. */
  lastBlocks?: number;
  /** Append the mean of the last block's patch tokens (official `avgpool_patchtokens`). Default false. */
  avgPool?: boolean;
  /** L2-normalise each feature row (k-NN does; default false). */
  normalize?: boolean;
  /** Per-channel normalisation applied to pixels in [0,1] before the model (must match pretraining). */
  mean?: number[];
  std?: number[];
  /** Resize images (bilinear) to this side first, e.g. a pretrained ViT's 224 for 28 px data. Default: as they are. */
  imageSize?: number;
  /** Show a progress bar on stderr. */
  progress?: boolean;
}

/**
 * Images `idx` of `ds` as a model takes them: pixels in [0, 1], grayscale
 * repeated to 3 channels for an RGB model, resized to `imageSize`, then
 * normalised with mean/std. A new tensor the caller owns.
 */
export function modelInput(ds: ImageDataset, idx: ArrayLike<number>, opts: { channels?: number; imageSize?: number; mean?: number[]; std?: number[] } = {}): tf.Tensor4D {
  const channels = opts.channels ?? ds.channels;
  if (channels !== ds.channels && !(ds.channels === 1 && channels === 3)) {
    throw new Error(`${ds.name} has ${ds.channels} channel(s) but the model takes ${channels}; only grayscale → RGB is converted`);
  }
  return tf.tidy(() => {
    let x = toTensor(ds, idx);
    if (channels !== ds.channels) x = tf.tile(x, [1, 1, 1, channels]);
    if (opts.imageSize !== undefined && (opts.imageSize !== ds.height || opts.imageSize !== ds.width)) {
      x = tf.image.resizeBilinear(x, [opts.imageSize, opts.imageSize], false, true);
    }
    return opts.mean && opts.std ? normalizeImages(x, { mean: opts.mean, std: opts.std }) : x;
  });
}

/** Features of every image of `ds` under `model` (its [CLS] etc.), as a [N, F] tensor the caller owns. */
export function extractFeatures(model: VisionTransformer, ds: ImageDataset, opts: FeatureOptions = {}): tf.Tensor2D {
  const bs = opts.batchSize ?? 256;
  const n = opts.lastBlocks ?? 1;
  const chunks: tf.Tensor2D[] = [];
  const bar = opts.progress ? new ProgressBar(ds.n, { label: 'features' }) : undefined;
  for (let start = 0; start < ds.n; start += bs) {
    const idx = Int32Array.from({ length: Math.min(bs, ds.n - start) }, (_, i) => start + i);
    chunks.push(
      tf.tidy(() => {
        const x = modelInput(ds, idx, { ...opts, channels: model.config.inChans });
        const out = model.forward(x, { lastBlocks: n > 1 ? n : undefined });
        const blocks = n > 1 ? (out.blocks as tf.Tensor3D[]) : [out.tokens];
        const [B, N1, D] = out.tokens.shape;
        const parts: tf.Tensor2D[] = blocks.map((t) => tf.reshape(tf.slice(t, [0, 0, 0], [B, 1, D]), [B, D]) as tf.Tensor2D);
        if (opts.avgPool) parts.push(tf.mean(tf.slice(out.tokens, [0, 1, 0], [B, N1 - 1, D]), 1) as tf.Tensor2D);
        const f = parts.length === 1 ? parts[0] : (tf.concat(parts, 1) as tf.Tensor2D);
        return opts.normalize ? l2rows(f) : f;
      }),
    );
    bar?.update(start + idx.length);
  }
  bar?.done();
  const all = tf.concat(chunks, 0) as tf.Tensor2D;
  tf.dispose(chunks);
  return all;
}

/** Raw pixels as features (flattened, optionally normalised): the baseline every method must beat. */
export function pixelFeatures(ds: ImageDataset, opts: Pick<FeatureOptions, 'normalize' | 'mean' | 'std'> = {}): tf.Tensor2D {
  return tf.tidy(() => {
    const x = modelInput(ds, Int32Array.from({ length: ds.n }, (_, i) => i), opts);
    const f = tf.reshape(x, [ds.n, -1]) as tf.Tensor2D;
    return opts.normalize ? l2rows(f) : f;
  });
}

function l2rows(f: tf.Tensor2D): tf.Tensor2D {
  return tf.div(f, tf.maximum(tf.norm(f, 2, 1, true), 1e-12)) as tf.Tensor2D;
}

/**
 * Cached extraction: features are stored under `cacheDir` keyed by a hash of
 * the model weights, the dataset and the options, so a repeated evaluation of
 * the same checkpoint is instant.
 */
export async function cachedFeatures(
  cacheDir: string,
  key: { model?: VisionTransformer; dataset: ImageDataset; opts: FeatureOptions; tag: string },
  compute: () => tf.Tensor2D | Promise<tf.Tensor2D>,
): Promise<tf.Tensor2D> {
  const h = crypto.createHash('sha256');
  h.update(key.tag);
  h.update(JSON.stringify({ ...key.opts, progress: undefined }));
  h.update(`${key.dataset.name}:${key.dataset.n}:${key.dataset.height}x${key.dataset.width}x${key.dataset.channels}`);
  h.update(Buffer.from(key.dataset.images.buffer, key.dataset.images.byteOffset, Math.min(key.dataset.images.byteLength, 1 << 20)));
  if (key.model) {
    for (const p of key.model.params.params) {
      const v = (await p.variable.data()) as Float32Array;
      h.update(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    }
  }
  const file = path.join(cacheDir, `${h.digest('hex').slice(0, 24)}.f32`);
  if (fs.existsSync(file)) {
    const buf = fs.readFileSync(file);
    const rows = buf.readUInt32LE(0);
    const cols = buf.readUInt32LE(4);
    if (buf.length === 8 + rows * cols * 4) {
      const data = new Float32Array(buf.buffer.slice(buf.byteOffset + 8, buf.byteOffset + buf.length));
      return tf.tensor2d(data, [rows, cols]);
    }
  }
  const f = await compute();
  const [rows, cols] = f.shape;
  const head = Buffer.alloc(8);
  head.writeUInt32LE(rows, 0);
  head.writeUInt32LE(cols, 4);
  const data = (await f.data()) as Float32Array;
  makeDirs(cacheDir);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
  fs.renameSync(tmp, file);
  return f;
}

/** Frozen features of one source, train and test, with their labels: what every protocol takes. The owner disposes it (`disposeFeatureSet`). */
export interface FeatureSet {
  /** Name shown in tables ('pixels', 'random', a run folder…). */
  name: string;
  /** The [CLS] token after the final norm (or pixels): k-NN, logistic regression, semi-supervised, k-means, head argmax. */
  train: tf.Tensor2D;
  test: tf.Tensor2D;
  /** Features for the linear probe (e.g. [CLS] of the last 4 blocks); default `train` / `test`. */
  linearTrain?: tf.Tensor2D;
  linearTest?: tf.Tensor2D;
  trainLabels: Int32Array;
  testLabels: Int32Array;
  numClasses: number;
  classNames?: string[];
  /** The teacher's projection head, for the head-argmax clustering. */
  head?: IBOTHead;
}

export interface BackboneFeatureOptions {
  /** Name shown in result tables. */
  name: string;
  backbone: VisionTransformer;
  /** The teacher head, for head-argmax clustering. */
  head?: IBOTHead;
  /** Pixel normalisation the backbone expects (null: none). */
  normalize: { mean: number[]; std: number[] } | null;
  /** Cache folder for extracted features (keyed by weights, data and options); none = no cache. */
  cacheDir?: string;
  /** Resize images to this side first (a pretrained ViT's input size); default: as they are. */
  imageSize?: number;
  /** Progress bars on stderr. */
  progress?: boolean;
  /** Told which split is being extracted. */
  log?: (line: string) => void;
}

/**
 * Frozen features of a backbone for every protocol, as the official
 * evaluations take them: the last [CLS] for k-NN, logistic regression,
 * semi-supervised and clustering; the [CLS] of the last min(4, depth) blocks
 * for the linear probe (the official ViT-S setting).
 */
export async function backboneFeatureSet(o: BackboneFeatureOptions, train: ImageDataset, test: ImageDataset): Promise<FeatureSet> {
  const lastBlocks = Math.min(4, o.backbone.config.depth);
  const opts: FeatureOptions = { lastBlocks, mean: o.normalize?.mean, std: o.normalize?.std, imageSize: o.imageSize, progress: o.progress };
  const D = o.backbone.config.embedDim;
  const get = async (ds: ImageDataset): Promise<{ all: tf.Tensor2D; cls: tf.Tensor2D }> => {
    o.log?.(`features of ${ds.name} (${ds.n} images)…`);
    const compute = (): tf.Tensor2D => extractFeatures(o.backbone, ds, opts);
    const all = o.cacheDir ? await cachedFeatures(o.cacheDir, { model: o.backbone, dataset: ds, opts, tag: `backbone:${o.name}` }, compute) : compute();
    const cls = tf.tidy(() => tf.slice(all, [0, (lastBlocks - 1) * D], [-1, D]) as tf.Tensor2D);
    return { all, cls };
  };
  const tr = await get(train);
  const te = await get(test);
  return {
    name: o.name,
    train: tr.cls,
    test: te.cls,
    linearTrain: tr.all,
    linearTest: te.all,
    trainLabels: train.labels,
    testLabels: test.labels,
    numClasses: train.numClasses,
    classNames: train.classNames,
    head: o.head,
  };
}

/** Raw pixels (flattened, in [0, 1]) as features: the baseline every representation must beat. */
export async function pixelFeatureSet(train: ImageDataset, test: ImageDataset, opts: { name?: string; cacheDir?: string } = {}): Promise<FeatureSet> {
  const get = (ds: ImageDataset): Promise<tf.Tensor2D> | tf.Tensor2D =>
    opts.cacheDir ? cachedFeatures(opts.cacheDir, { dataset: ds, opts: {}, tag: 'pixels' }, () => pixelFeatures(ds)) : pixelFeatures(ds);
  return {
    name: opts.name ?? 'pixels',
    train: await get(train),
    test: await get(test),
    trainLabels: train.labels,
    testLabels: test.labels,
    numClasses: train.numClasses,
    classNames: train.classNames,
  };
}

/** Dispose every tensor a feature set owns (not the head). */
export function disposeFeatureSet(f: FeatureSet): void {
  tf.dispose([f.train, f.test, ...(f.linearTrain ? [f.linearTrain] : []), ...(f.linearTest ? [f.linearTest] : [])]);
}

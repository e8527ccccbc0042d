/**
 * Finds and loads datasets by name.
 *
 * Named datasets and their on-disk formats:
 *   'fashion-mnist', 'mnist'  IDX files train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]
 *                             (split 'train') and t10k-* (split 'test')
 *   'cifar10'                 CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin),
 *                             directly in the folder or in cifar-10-batches-bin/
 *   'fashion-mnist-embedded'  the official Fashion-MNIST 10k test set shipped in
 *                             datasets/fashion-mnist/, split 8,000 train / 2,000 test
 *                             (see loadEmbeddedFashionMnist)
 *   any other name            a folder found as below: IDX or CIFAR files if present, else an
 *                             image folder <dir>/<split>/<class>/<image> (needs imageSize)
 *
 * Lookup order for a named dataset's folder:
 *   1. opts.path, if given (then only there: an explicit path that lacks the
 *      files is an error, never silently replaced by another copy);
 *   2. <opts.root>/<name>, if opts.root is given;
 *   3. <package root>/datasets/<name> (package root found by walking up from
 *      this file to ibotlab's package.json, so it works from src/ via tsx and
 *      from dist/src/ after tsc);
 *   4. <cwd>/datasets/<name>;
 *   5. /usr/share/datasets/<name> (Debian: apt-get install dataset-fashion-mnist).
 * A folder counts only if it holds every file the requested split needs.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Rng } from '../util/rng';
import { stratifiedSplit, subset, type ImageDataset } from './dataset';
import { readIdxDataset } from './idx';
import { CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES, missingCifarFiles, readCifar10, resolveCifarDir } from './cifar';
import { readImageFolder } from './folder';

export type Split = 'train' | 'test';
export type KnownDatasetName = 'fashion-mnist' | 'mnist' | 'cifar10' | 'fashion-mnist-embedded';

export interface LoadDatasetOptions {
  split: Split;
  /** Folder holding the dataset's files (overrides the search). */
  path?: string;
  /** Extra datasets root searched first: <root>/<name>. */
  root?: string;
  /** Image folders only: output size (side or [height, width]). Required for image folders. */
  imageSize?: number | [number, number];
  /** Image folders only: 1 or 3 channels. Default 3. */
  channels?: 1 | 3;
  /** Image folders only: resize mode, see ImageFolderOptions.fit. Default 'cover'. */
  fit?: 'cover' | 'fill' | 'contain';
}

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];
export const MNIST_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** Where Debian's dataset-* packages install data. */
export const DEBIAN_DATASETS_DIR = '/usr/share/datasets';

/** The seeded, class-balanced split of the embedded 10k Fashion-MNIST images. */
export const EMBEDDED_SPLIT = {
  seed: 0,
  trainPerClass: 800,
  testPerClass: 200,
} as const;

let cachedPackageRoot: string | undefined;

/**
 * ibotlab's package root: the nearest ancestor of this file whose
 * package.json is named 'ibotlab' (src/data -> ../.., dist/src/data ->
 * ../../..), falling back to the working directory.
 */
export function packageRoot(): string {
  if (cachedPackageRoot !== undefined) return cachedPackageRoot;
  let dir = __dirname;
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: string }).name === 'ibotlab') {
          cachedPackageRoot = dir;
          return dir;
        }
      } catch {
        // unreadable package.json: keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  cachedPackageRoot = process.cwd();
  return cachedPackageRoot;
}

/** The package's own datasets/ folder (holds the embedded files and fetch.sh). */
export function packageDatasetsDir(): string {
  return join(packageRoot(), 'datasets');
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

function canonicalName(name: string): string {
  const n = name.toLowerCase();
  if (n === 'cifar-10' || n === 'cifar_10') return 'cifar10';
  if (n === 'fashion_mnist' || n === 'fashionmnist') return 'fashion-mnist';
  return name;
}

/** Folders searched for `name`, in order, without duplicates. */
export function datasetSearchPaths(name: string, opts: { path?: string; root?: string } = {}): string[] {
  if (opts.path !== undefined) return [resolve(opts.path)];
  const out: string[] = [];
  const add = (p: string): void => {
    const r = resolve(p);
    if (!out.includes(r)) out.push(r);
  };
  if (opts.root !== undefined) add(join(opts.root, name));
  add(join(packageDatasetsDir(), name));
  add(join(process.cwd(), 'datasets', name));
  add(join(DEBIAN_DATASETS_DIR, name));
  return out;
}

/** First existing file among the usual spellings of an IDX file, or undefined. */
function findIdxFile(dir: string, prefix: 'train' | 't10k', kind: 'images' | 'labels'): string | undefined {
  const idx = kind === 'images' ? 'idx3' : 'idx1';
  for (const base of [`${prefix}-${kind}-${idx}-ubyte`, `${prefix}-${kind}.${idx}-ubyte`]) {
    for (const f of [`${base}.gz`, base]) {
      const p = join(dir, f);
      if (existsSync(p)) return p;
    }
  }
  return undefined;
}

/** Where a dataset split was found and in which format. */
export type DatasetLocation =
  | { format: 'idx'; dir: string; imagesPath: string; labelsPath: string }
  | { format: 'cifar10'; dir: string }
  | { format: 'folder'; dir: string };

function idxPrefix(split: Split): 'train' | 't10k' {
  return split === 'train' ? 'train' : 't10k';
}

function probeIdx(dir: string, split: Split): { found?: DatasetLocation; why: string } {
  if (!isDir(dir)) return { why: 'no such folder' };
  const p = idxPrefix(split);
  const imagesPath = findIdxFile(dir, p, 'images');
  const labelsPath = findIdxFile(dir, p, 'labels');
  if (imagesPath && labelsPath) return { found: { format: 'idx', dir, imagesPath, labelsPath }, why: '' };
  const missing = [
    imagesPath ? undefined : `${p}-images-idx3-ubyte[.gz]`,
    labelsPath ? undefined : `${p}-labels-idx1-ubyte[.gz]`,
  ].filter((x): x is string => x !== undefined);
  return { why: `folder exists but lacks ${missing.join(' and ')}` };
}

function probeCifar(dir: string, split: Split): { found?: DatasetLocation; why: string } {
  if (!isDir(dir)) return { why: 'no such folder' };
  const missing = missingCifarFiles(dir, split);
  if (missing.length === 0) return { found: { format: 'cifar10', dir }, why: '' };
  return { why: `folder exists but ${resolveCifarDir(dir)} lacks ${missing.join(', ')}` };
}

function probeCustom(dir: string, split: Split): { found?: DatasetLocation; why: string } {
  if (!isDir(dir)) return { why: 'no such folder' };
  const idx = probeIdx(dir, split);
  if (idx.found) return idx;
  const cifar = probeCifar(dir, split);
  if (cifar.found) return cifar;
  if (isDir(join(dir, split))) return { found: { format: 'folder', dir: join(dir, split) }, why: '' };
  return {
    why:
      `folder exists but holds neither ${idxPrefix(split)}-images/labels IDX files, CIFAR-10 batches, ` +
      `nor an image folder ${join(dir, split)}/<class>/<image>`,
  };
}

function fixHints(name: string): string[] {
  const fetchCmd = `cd ${packageRoot()} && bash datasets/fetch.sh ${name}`;
  const hints: string[] = [];
  if (name === 'fashion-mnist') {
    hints.push('apt-get install dataset-fashion-mnist   (Debian/Ubuntu, as root; installs /usr/share/datasets/fashion-mnist)');
  }
  if (name === 'fashion-mnist' || name === 'mnist' || name === 'cifar10') {
    hints.push(`${fetchCmd}   (downloads from the official site and verifies checksums)`);
  }
  hints.push(`pass { path: '/folder/with/the/files' }`);
  if (name === 'fashion-mnist') {
    hints.push(`use 'fashion-mnist-embedded' (bundled: 10,000 official test images split 8,000 train / 2,000 test)`);
  }
  return hints;
}

/**
 * Locates `name`'s folder for `split` (see module comment for the order).
 * Throws an error listing every folder looked at, why it did not qualify,
 * and the commands that would fix it.
 */
export function findDataset(name: string, opts: LoadDatasetOptions): DatasetLocation {
  const canon = canonicalName(name);
  const probe =
    canon === 'fashion-mnist' || canon === 'mnist' ? probeIdx : canon === 'cifar10' ? probeCifar : probeCustom;
  const tried: string[] = [];
  for (const dir of datasetSearchPaths(canon, opts)) {
    const r = probe(dir, opts.split);
    if (r.found) return r.found;
    tried.push(`  - ${dir}: ${r.why}`);
  }
  const what =
    canon === 'fashion-mnist' || canon === 'mnist'
      ? `${idxPrefix(opts.split)}-images-idx3-ubyte[.gz] and ${idxPrefix(opts.split)}-labels-idx1-ubyte[.gz]`
      : canon === 'cifar10'
        ? (opts.split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES).join(', ')
        : `IDX files, CIFAR-10 batches or an image folder <dir>/${opts.split}/<class>/<image>`;
  throw new Error(
    `Dataset '${name}' (split '${opts.split}') not found. Looked for ${what} in:\n` +
      `${tried.join('\n')}\n` +
      `To fix, do one of:\n${fixHints(canon)
        .map((h) => `  - ${h}`)
        .join('\n')}`,
  );
}

/**
 * Loads one split of a dataset by name (see module comment for names,
 * formats and where it looks). Async because image folders decode
 * asynchronously; IDX and CIFAR files are read synchronously inside.
 */
export async function loadDataset(
  name: KnownDatasetName | (string & Record<never, never>),
  opts: LoadDatasetOptions,
): Promise<ImageDataset> {
  if (opts.split !== 'train' && opts.split !== 'test') {
    throw new Error(`loadDataset: split must be 'train' or 'test', got ${JSON.stringify(opts.split)}`);
  }
  const canon = canonicalName(name);
  if (canon === 'fashion-mnist-embedded') {
    return loadEmbeddedFashionMnist({ root: opts.root, path: opts.path })[opts.split];
  }
  const found = findDataset(name, opts);
  const dsName = `${canon}/${opts.split}`;
  switch (found.format) {
    case 'idx':
      return readIdxDataset({
        imagesPath: found.imagesPath,
        labelsPath: found.labelsPath,
        name: dsName,
        numClasses: 10,
        classNames:
          canon === 'fashion-mnist' ? FASHION_MNIST_CLASSES : canon === 'mnist' ? MNIST_CLASSES : undefined,
      });
    case 'cifar10':
      return readCifar10(found.dir, opts.split, dsName);
    case 'folder':
      if (opts.imageSize === undefined) {
        throw new Error(
          `Dataset '${name}' is an image folder (${found.dir}); pass imageSize (e.g. { imageSize: 32 }) ` +
            'so every image is resized to the same size.',
        );
      }
      return readImageFolder(found.dir, {
        size: opts.imageSize,
        channels: opts.channels,
        fit: opts.fit,
        name: dsName,
      });
  }
}

export interface EmbeddedOptions {
  /** Split seed. Default EMBEDDED_SPLIT.seed (0); change it only to study split variance. */
  seed?: number;
  /** Folder holding t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (default: searched). */
  path?: string;
  root?: string;
}

/**
 * The bundled Fashion-MNIST subset: the official 10,000-image test set
 * (datasets/fashion-mnist/t10k-*.gz, 1,000 per class) split class-balanced
 * into 8,000 train (800 per class) and 2,000 test (200 per class) by
 * `stratifiedSplit(labels, 0.2, new Rng(seed))`. Both parts keep the
 * original file order. Pretraining uses `train` without labels; k-NN and
 * linear evaluation fit on `train` labels and score on `test`.
 * These images ARE the official test set: never evaluate a model pretrained
 * on them against the official 'fashion-mnist' test split.
 */
export function loadEmbeddedFashionMnist(opts: EmbeddedOptions = {}): { train: ImageDataset; test: ImageDataset } {
  let found: DatasetLocation;
  try {
    found = findDataset('fashion-mnist', { split: 'test', path: opts.path, root: opts.root });
  } catch (e) {
    throw new Error(
      'The embedded Fashion-MNIST files (t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) are missing; ' +
        `they ship in ${join(packageDatasetsDir(), 'fashion-mnist')}. Restore them from the repository ` +
        `(git checkout -- datasets/fashion-mnist) or from Debian's dataset-fashion-mnist package.\n` +
        (e as Error).message,
    );
  }
  if (found.format !== 'idx') throw new Error('internal: fashion-mnist must be IDX');
  const all = readIdxDataset({
    imagesPath: found.imagesPath,
    labelsPath: found.labelsPath,
    name: 'fashion-mnist-embedded',
    numClasses: 10,
    classNames: FASHION_MNIST_CLASSES,
  });
  const testFraction = EMBEDDED_SPLIT.testPerClass / (EMBEDDED_SPLIT.trainPerClass + EMBEDDED_SPLIT.testPerClass);
  const s = stratifiedSplit(all.labels, testFraction, new Rng(opts.seed ?? EMBEDDED_SPLIT.seed), 10);
  return {
    train: subset(all, s.train, 'fashion-mnist-embedded/train'),
    test: subset(all, s.test, 'fashion-mnist-embedded/test'),
  };
}

/**
 * The train and test splits of a dataset by name (the embedded Fashion-MNIST
 * gives its own 8,000 / 2,000 split). What pretraining and every evaluation
 * load.
 */
export async function loadSplits(
  dataset: string,
  dataPath?: string,
  folder: Pick<LoadDatasetOptions, 'imageSize' | 'channels'> = {},
): Promise<{ train: ImageDataset; test: ImageDataset }> {
  if (dataset === 'fashion-mnist-embedded') return loadEmbeddedFashionMnist({ path: dataPath });
  const [train, test] = await Promise.all([
    loadDataset(dataset, { split: 'train', path: dataPath, ...folder }),
    loadDataset(dataset, { split: 'test', path: dataPath, ...folder }),
  ]);
  return { train, test };
}

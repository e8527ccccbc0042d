/**
 * Datasets: readers on the embedded Fashion-MNIST files (checked against
 * published checksums and labels), corrupt-input errors, CIFAR and image
 * folder readers on tiny files written here, splits and label subsets.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import { Rng } from '../src/util/rng';
import {
  assertDataset,
  batches,
  classCounts,
  labelSubset,
  numBatches,
  split,
  stratifiedSplit,
  subset,
  toTensor,
  type ImageDataset,
} from '../src/data/dataset';
import { readIdxDataset, readIdxImages, readIdxLabels } from '../src/data/idx';
import { readCifar10, readCifar10Batch, CIFAR10_CLASSES } from '../src/data/cifar';
import { readImageFolder } from '../src/data/folder';
import {
  datasetSearchPaths,
  EMBEDDED_SPLIT,
  FASHION_MNIST_CLASSES,
  loadDataset,
  loadEmbeddedFashionMnist,
  packageRoot,
} from '../src/data/registry';

// packageRoot() works from test/ (tsx) and dist/test/ (tsc) alike.
const EMBEDDED_DIR = join(packageRoot(), 'datasets', 'fashion-mnist');
const T10K_IMAGES = join(EMBEDDED_DIR, 't10k-images-idx3-ubyte.gz');
const T10K_LABELS = join(EMBEDDED_DIR, 't10k-labels-idx1-ubyte.gz');

// Published sha256 of the decompressed official Fashion-MNIST t10k files
// (pinned by many independent projects; Debian's copy decompresses to the same bytes).
const SHA256_T10K_IMAGES = '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b';
const SHA256_T10K_LABELS = '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ibotlab-data-'));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function sha256(...parts: Uint8Array[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
}

function be32(...xs: number[]): Uint8Array {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeUInt32BE(x, 4 * i));
  return b;
}

/** An IDX file (optionally gzipped) written to the temp dir. */
function writeIdx(name: string, magic: number, dims: number[], payload: Uint8Array, gz = true): string {
  const raw = Buffer.concat([be32(magic, ...dims), payload]);
  const p = join(tmp, name);
  writeFileSync(p, gz ? gzipSync(raw) : raw);
  return p;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

describe('embedded Fashion-MNIST files', () => {
  test('decode to exactly the published official t10k content', async () => {
    const img = readIdxImages(T10K_IMAGES);
    assert.equal(img.n, 10000);
    assert.equal(img.height, 28);
    assert.equal(img.width, 28);
    assert.equal(img.data.length, 10000 * 28 * 28);
    // Rebuild the file from what the reader returned and compare with the published hash.
    assert.equal(sha256(be32(0x803, 10000, 28, 28), img.data), SHA256_T10K_IMAGES);
    const labels = readIdxLabels(T10K_LABELS, 10);
    assert.equal(sha256(be32(0x801, 10000), Uint8Array.from(labels)), SHA256_T10K_LABELS);
  });

  test('10000 images, 28x28x1, labels 0..9 with 1000 each, known first labels', async () => {
    const ds = readIdxDataset({ imagesPath: T10K_IMAGES, labelsPath: T10K_LABELS, name: 't10k' });
    assert.equal(ds.n, 10000);
    assert.deepEqual([ds.height, ds.width, ds.channels, ds.numClasses], [28, 28, 1, 10]);
    assert.deepEqual(classCounts(ds.labels, 10), new Array(10).fill(1000));
    // First test labels of Fashion-MNIST: ankle boot, pullover, trouser, trouser, shirt, ...
    assert.deepEqual(Array.from(ds.labels.subarray(0, 10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
  });

  test('loadEmbeddedFashionMnist: seeded class-balanced 8000/2000 split covering every image once', async () => {
    const { train, test: te } = loadEmbeddedFashionMnist();
    assert.equal(train.n, 8000);
    assert.equal(te.n, 2000);
    assert.deepEqual(classCounts(train.labels, 10), new Array(10).fill(EMBEDDED_SPLIT.trainPerClass));
    assert.deepEqual(classCounts(te.labels, 10), new Array(10).fill(EMBEDDED_SPLIT.testPerClass));
    assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
    // Total pixel mass of all 10k images (computed independently with Python's gzip module).
    let total = 0;
    for (const d of [train, te]) for (const v of d.images) total += v;
    assert.equal(total, 573469082);
    // Disjoint and complete: the split of the raw labels partitions 0..9999.
    const labels = readIdxLabels(T10K_LABELS, 10);
    const s = stratifiedSplit(labels, 0.2, new Rng(EMBEDDED_SPLIT.seed), 10);
    const all = [...s.train, ...s.test].sort((a, b) => a - b);
    assert.deepEqual(all, range(10000));
    // The datasets hold exactly those images, in ascending index order.
    const ds = readIdxDataset({ imagesPath: T10K_IMAGES, labelsPath: T10K_LABELS, name: 't10k' });
    const k = s.test[123];
    assert.deepEqual(te.images.subarray(123 * 784, 124 * 784), ds.images.subarray(k * 784, (k + 1) * 784));
  });

  test('embedded split is reproducible and seed-dependent; loadDataset names it', async () => {
    const a = loadEmbeddedFashionMnist();
    const b = await loadDataset('fashion-mnist-embedded', { split: 'train' });
    assert.deepEqual(b.labels, a.train.labels);
    assert.deepEqual(b.images, a.train.images);
    assert.equal(b.name, 'fashion-mnist-embedded/train');
    const c = loadEmbeddedFashionMnist({ seed: 1 });
    assert.notDeepEqual(c.test.images, a.test.images);
    assert.deepEqual(classCounts(c.test.labels, 10), new Array(10).fill(200));
  });

  test('loadDataset fashion-mnist test split from an explicit path', async () => {
    const ds = await loadDataset('fashion-mnist', { split: 'test', path: EMBEDDED_DIR });
    assert.equal(ds.n, 10000);
    assert.equal(ds.name, 'fashion-mnist/test');
    assert.equal(ds.classNames?.[9], 'Ankle boot');
  });
});

describe('IDX errors', () => {
  const labelsRaw = (): Buffer => gunzipSync(readFileSync(T10K_LABELS));

  test('raw (not gzipped) IDX files read the same as gzipped ones', async () => {
    const p = join(tmp, 'raw-labels-idx1-ubyte');
    writeFileSync(p, labelsRaw());
    assert.deepEqual(readIdxLabels(p), readIdxLabels(T10K_LABELS));
  });

  test('truncated payload names the file and the expected length', async () => {
    const p = join(tmp, 'trunc-labels-idx1-ubyte.gz');
    writeFileSync(p, gzipSync(labelsRaw().subarray(0, 5000)));
    assert.throws(() => readIdxLabels(p), (e: Error) => {
      assert.match(e.message, /trunc-labels-idx1-ubyte\.gz/);
      assert.match(e.message, /truncated/);
      assert.match(e.message, /10008 bytes/); // 8-byte header + 10000 labels
      assert.match(e.message, /only 5000/);
      assert.match(e.message, /fetch/);
      return true;
    });
  });

  test('truncated gzip stream', async () => {
    const p = join(tmp, 'cut.gz');
    const gz = readFileSync(T10K_LABELS);
    writeFileSync(p, gz.subarray(0, gz.length >> 1));
    assert.throws(() => readIdxLabels(p), /cut\.gz: starts like a gzip file \(1f 8b\) but could not be decompressed/);
  });

  test('truncated header', async () => {
    const p = join(tmp, 'short-images.gz');
    writeFileSync(p, gzipSync(Buffer.from([0, 0, 8, 3, 0, 0])));
    assert.throws(() => readIdxImages(p), /short-images\.gz: truncated IDX image file: header needs 16 bytes but the file has 6/);
  });

  test('wrong magic: images passed as labels says which file is which', async () => {
    assert.throws(() => readIdxLabels(T10K_IMAGES), (e: Error) => {
      assert.match(e.message, /t10k-images-idx3-ubyte\.gz: not an IDX label file/);
      assert.match(e.message, /expected magic number 0x00000801/);
      assert.match(e.message, /magic 0x00000803\), which is an IDX image file/);
      assert.match(e.message, /swapped/);
      return true;
    });
  });

  test('garbage that is neither gzip nor IDX', async () => {
    const p = join(tmp, 'garbage.gz');
    writeFileSync(p, Buffer.from('<html>404 Not Found</html>'));
    assert.throws(() => readIdxImages(p), (e: Error) => {
      assert.match(e.message, /garbage\.gz: not an IDX image file: expected magic number 0x00000803/);
      assert.match(e.message, /first bytes 3c 68 74 6d/);
      assert.match(e.message, /neither gzip \(1f 8b\) nor IDX/);
      return true;
    });
  });

  test('trailing bytes are rejected', async () => {
    const p = writeIdx('long-labels', 0x801, [3], Uint8Array.from([1, 2, 3, 4]));
    assert.throws(() => readIdxLabels(p), /long-labels: IDX label file has 1 unexpected trailing bytes/);
  });

  test('image/label count mismatch', async () => {
    const lp = writeIdx('fifty-labels.gz', 0x801, [50], new Uint8Array(50));
    assert.throws(
      () => readIdxDataset({ imagesPath: T10K_IMAGES, labelsPath: lp, name: 'x' }),
      /count mismatch: .*t10k-images-idx3-ubyte\.gz holds 10000 images but .*fifty-labels\.gz holds 50 labels/,
    );
  });

  test('label out of range', async () => {
    const lp = writeIdx('bad-label.gz', 0x801, [4], Uint8Array.from([0, 9, 10, 1]));
    assert.throws(() => readIdxLabels(lp, 10), /bad-label\.gz: label 10 at index 2 is out of range: expected 0\.\.9/);
  });

  test('missing file', async () => {
    assert.throws(() => readIdxLabels(join(tmp, 'nope.gz')), /File not found: .*nope\.gz/);
  });

  test('small synthetic IDX pair decodes pixel-exactly', async () => {
    const pix = Uint8Array.from(range(2 * 2 * 3), (i) => i * 10);
    const ip = writeIdx('s-images.gz', 0x803, [2, 2, 3], pix);
    const lp = writeIdx('s-labels', 0x801, [2], Uint8Array.from([3, 1]), false);
    const ds = readIdxDataset({ imagesPath: ip, labelsPath: lp, name: 's', numClasses: 4 });
    assert.deepEqual([ds.n, ds.height, ds.width, ds.channels], [2, 2, 3, 1]);
    assert.deepEqual(Array.from(ds.images), Array.from(pix));
    assert.deepEqual(Array.from(ds.labels), [3, 1]);
  });
});

describe('dataset lookup', () => {
  test('search order: root, package datasets/, cwd datasets/, Debian; no duplicates', async () => {
    const paths = datasetSearchPaths('mnist', { root: tmp });
    assert.equal(paths[0], join(tmp, 'mnist'));
    assert.equal(paths[1], join(packageRoot(), 'datasets', 'mnist'));
    assert.equal(paths[paths.length - 1], '/usr/share/datasets/mnist');
    assert.equal(new Set(paths).size, paths.length);
    assert.ok(paths.includes(join(process.cwd(), 'datasets', 'mnist')));
    assert.deepEqual(datasetSearchPaths('mnist', { path: tmp, root: '/elsewhere' }), [tmp]);
  });

  test('package root is found from source and build layouts', async () => {
    const pj = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { name: string };
    assert.equal(pj.name, 'ibotlab');
  });

  test('missing dataset at an explicit path lists it and the fixing commands', async () => {
    const where = join(tmp, 'does-not-exist');
    await assert.rejects(loadDataset('fashion-mnist', { split: 'train', path: where }), (e: Error) => {
      assert.match(e.message, /Dataset 'fashion-mnist' \(split 'train'\) not found/);
      assert.match(e.message, /train-images-idx3-ubyte\[\.gz\]/);
      assert.ok(e.message.includes(`${where}: no such folder`));
      assert.match(e.message, /apt-get install dataset-fashion-mnist/);
      assert.match(e.message, /bash datasets\/fetch\.sh fashion-mnist/);
      assert.match(e.message, /fashion-mnist-embedded/);
      return true;
    });
  });

  test('folder present but files missing says which', async () => {
    const d = join(tmp, 'half-mnist');
    mkdirSync(d, { recursive: true });
    writeIdx('half-mnist/train-labels-idx1-ubyte.gz', 0x801, [1], new Uint8Array(1));
    await assert.rejects(
      loadDataset('mnist', { split: 'train', path: d }),
      /half-mnist: folder exists but lacks train-images-idx3-ubyte\[\.gz\][\s\S]*fetch\.sh mnist/,
    );
  });

  test('unknown dataset name lists every place looked', async () => {
    await assert.rejects(loadDataset('no-such-set', { split: 'test', root: tmp }), (e: Error) => {
      for (const p of datasetSearchPaths('no-such-set', { root: tmp })) assert.ok(e.message.includes(`${p}: no such folder`), p);
      return true;
    });
  });
});

/** Writes a CIFAR-10 binary batch whose pixel values encode (record, channel, position). */
function cifarRecord(label: number, seed: number): Uint8Array {
  const r = new Uint8Array(3073);
  r[0] = label;
  for (let ch = 0; ch < 3; ch++) for (let p = 0; p < 1024; p++) r[1 + ch * 1024 + p] = (seed * 31 + ch * 85 + p) & 0xff;
  return r;
}

describe('CIFAR-10 binary reader', () => {
  let dir: string;
  before(() => {
    dir = join(tmp, 'cifar', 'cifar-10-batches-bin');
    mkdirSync(dir, { recursive: true });
    for (let b = 1; b <= 5; b++) {
      writeFileSync(join(dir, `data_batch_${b}.bin`), Buffer.concat([cifarRecord(b, b), cifarRecord(9 - b, 10 + b)]));
    }
    writeFileSync(join(dir, 'test_batch.bin'), cifarRecord(7, 99));
    writeFileSync(join(dir, 'batches.meta.txt'), 'a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n');
  });

  test('CHW records become NHWC', async () => {
    const b = readCifar10Batch(join(dir, 'data_batch_2.bin'));
    assert.equal(b.n, 2);
    assert.deepEqual(Array.from(b.labels), [2, 7]);
    // Record 1 (seed 12), row 5, column 7, channel 2 (blue): position p = 5*32+7.
    const p = 5 * 32 + 7;
    assert.equal(b.images[1 * 3072 + p * 3 + 2], (12 * 31 + 2 * 85 + p) & 0xff);
    assert.equal(b.images[0 * 3072 + p * 3 + 0], (2 * 31 + p) & 0xff);
  });

  test('train split concatenates batches 1..5; class names from batches.meta.txt; via loadDataset', async () => {
    const ds = await loadDataset('cifar10', { split: 'train', path: join(tmp, 'cifar') });
    assert.deepEqual([ds.n, ds.height, ds.width, ds.channels, ds.numClasses], [10, 32, 32, 3, 10]);
    assert.deepEqual(Array.from(ds.labels), [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]);
    assert.equal(ds.classNames?.[3], 'a3');
    const te = readCifar10(dir, 'test');
    assert.equal(te.n, 1);
    assert.equal(te.labels[0], 7);
  });

  test('without batches.meta.txt the standard class names are used', async () => {
    const d = join(tmp, 'cifar-nometa');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'test_batch.bin'), cifarRecord(0, 1));
    assert.deepEqual(readCifar10(d, 'test').classNames, CIFAR10_CLASSES);
  });

  test('wrong size, bad label, missing batch', async () => {
    const d = join(tmp, 'cifar-bad');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'test_batch.bin'), Buffer.concat([cifarRecord(1, 1), Buffer.alloc(100)]));
    assert.throws(() => readCifar10(d, 'test'), /test_batch\.bin: size 3173 bytes is not a positive multiple of the CIFAR-10 record size 3073/);
    writeFileSync(join(d, 'test_batch.bin'), cifarRecord(12, 1));
    assert.throws(() => readCifar10(d, 'test'), /record 0 has label 12, expected 0\.\.9/);
    assert.throws(() => readCifar10(d, 'train'), /missing data_batch_1\.bin, data_batch_2\.bin/);
  });
});

describe('image folder reader', () => {
  let root: string;
  const grey = (v: number, w = 4, h = 4): Promise<Buffer> =>
    sharp(Buffer.alloc(w * h, v), { raw: { width: w, height: h, channels: 1 } }).png().toBuffer();

  before(async () => {
    root = join(tmp, 'imgs', 'train');
    mkdirSync(join(root, 'b_red'), { recursive: true });
    mkdirSync(join(root, 'a_grey', 'nested'), { recursive: true });
    // A 4x4 grey ramp: value = 16*row + col.
    const ramp = Buffer.from(range(16).map((i) => 16 * (i >> 2) + (i & 3)));
    writeFileSync(join(root, 'a_grey', '1.png'), await sharp(ramp, { raw: { width: 4, height: 4, channels: 1 } }).png().toBuffer());
    writeFileSync(join(root, 'a_grey', 'nested', '2.png'), await grey(200, 8, 8));
    writeFileSync(join(root, 'a_grey', 'notes.txt'), 'not an image');
    const red = Buffer.alloc(4 * 4 * 3);
    for (let i = 0; i < 16; i++) red.set([250, 10, 60], i * 3);
    writeFileSync(join(root, 'b_red', 'r.png'), await sharp(red, { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer());
    writeFileSync(
      join(root, 'b_red', 'r.jpg'),
      await sharp(red, { raw: { width: 4, height: 4, channels: 3 } }).jpeg({ quality: 100 }).toBuffer(),
    );
  });

  test('sorted class folders, nested files, exact pixels, RGB', async () => {
    const ds = await readImageFolder(root, { size: 4, channels: 3 });
    assert.deepEqual(ds.classNames, ['a_grey', 'b_red']);
    assert.deepEqual([ds.n, ds.height, ds.width, ds.channels, ds.numClasses], [4, 4, 4, 3, 2]);
    // Order: a_grey/1.png, a_grey/nested/2.png, b_red/r.jpg, b_red/r.png.
    assert.deepEqual(Array.from(ds.labels), [0, 0, 1, 1]);
    // Grey ramp replicated to 3 channels: pixel (row 2, col 3) = 35.
    const at = (n: number, r: number, c: number, ch: number): number => ds.images[((n * 4 + r) * 4 + c) * 3 + ch];
    assert.deepEqual([at(0, 2, 3, 0), at(0, 2, 3, 1), at(0, 2, 3, 2)], [35, 35, 35]);
    // 8x8 uniform 200 resized to 4x4 stays 200.
    assert.equal(at(1, 1, 1, 0), 200);
    assert.deepEqual([at(3, 0, 0, 0), at(3, 0, 0, 1), at(3, 0, 0, 2)], [250, 10, 60]);
    // JPEG is lossy: close, not exact.
    for (const [ch, v] of [[0, 250], [1, 10], [2, 60]]) assert.ok(Math.abs(at(2, 3, 3, ch) - v) <= 8, `jpeg ch${ch}`);
  });

  test('greyscale output keeps grey values', async () => {
    const ds = await readImageFolder(root, { size: [4, 4], channels: 1 });
    assert.equal(ds.channels, 1);
    assert.deepEqual(Array.from(ds.images.subarray(0, 16)), range(16).map((i) => 16 * (i >> 2) + (i & 3)));
  });

  test('loadDataset finds a custom image-folder dataset under root/<name>/<split>/', async () => {
    const ds = await loadDataset('imgs', { split: 'train', root: tmp, imageSize: 2, channels: 1 });
    assert.equal(ds.n, 4);
    assert.equal(ds.name, 'imgs/train');
    await assert.rejects(loadDataset('imgs', { split: 'train', root: tmp }), /pass imageSize/);
  });

  test('corrupt image names the file; missing folder and empty layouts are explained', async () => {
    const bad = join(tmp, 'badimgs');
    mkdirSync(join(bad, 'c'), { recursive: true });
    const png = await grey(5, 16, 16);
    writeFileSync(join(bad, 'c', 'ok.png'), png);
    writeFileSync(join(bad, 'c', 'broken.png'), png.subarray(0, png.length - 30));
    await assert.rejects(readImageFolder(bad, { size: 4 }), /Cannot decode image .*broken\.png/);
    writeFileSync(join(bad, 'c', 'broken.png'), 'garbage');
    await assert.rejects(readImageFolder(bad, { size: 4 }), /Cannot decode image .*broken\.png/);
    await assert.rejects(readImageFolder(join(tmp, 'no-folder'), { size: 4 }), /Image folder not found: .*no-folder/);
    mkdirSync(join(tmp, 'flat'), { recursive: true });
    await assert.rejects(readImageFolder(join(tmp, 'flat'), { size: 4 }), /has no class sub-folders/);
    mkdirSync(join(bad, 'empty'), { recursive: true });
    await assert.rejects(readImageFolder(bad, { size: 4 }), /empty contains no images/);
  });
});

describe('label subsets, splits and batches', () => {
  const embeddedTrainLabels = (): Int32Array => loadEmbeddedFashionMnist().train.labels;

  test('1% and 10% of the 8000-image train split: 8 and 80 per class', async () => {
    const labels = embeddedTrainLabels();
    for (const [fraction, per] of [[0.01, 8], [0.1, 80]]) {
      const idx = labelSubset(labels, { fraction }, 42, 10);
      assert.equal(idx.length, 10 * per);
      assert.deepEqual(classCounts(Array.from(idx, (i) => labels[i]), 10), new Array(10).fill(per));
      for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1], 'sorted, unique');
    }
  });

  test('60000 balanced labels: 60 / 600 per class (Fashion-MNIST train sizes)', async () => {
    const labels = Int32Array.from(range(60000), (i) => i % 10);
    assert.equal(labelSubset(labels, { fraction: 0.01 }, 0).length, 600);
    assert.equal(labelSubset(labels, { fraction: 0.1 }, 0).length, 6000);
  });

  test('reproducible by seed, different across seeds, 1% nested in 10%', async () => {
    const labels = embeddedTrainLabels();
    const a = labelSubset(labels, { fraction: 0.01 }, 7);
    assert.deepEqual(labelSubset(labels, { fraction: 0.01 }, 7), a);
    assert.notDeepEqual(labelSubset(labels, { fraction: 0.01 }, 8), a);
    const ten = new Set(labelSubset(labels, { fraction: 0.1 }, 7));
    for (const i of a) assert.ok(ten.has(i));
    assert.deepEqual(labelSubset(labels, { perClass: 8 }, 7), a);
  });

  test('rounding: perClass = max(1, round(fraction * N / K)); too few examples is an error', async () => {
    // N=1000, K=3: 0.01*1000/3 = 3.33 -> 3; 0.005*1000/3 = 1.67 -> 2; 0.0001 -> 0.03 -> 1.
    const labels = Int32Array.from(range(1000), (i) => i % 3);
    assert.equal(labelSubset(labels, { fraction: 0.01 }, 1).length, 9);
    assert.equal(labelSubset(labels, { fraction: 0.005 }, 1).length, 6);
    assert.equal(labelSubset(labels, { fraction: 0.0001 }, 1).length, 3);
    const skewed = Int32Array.from([0, 0, 0, 0, 1]);
    assert.throws(() => labelSubset(skewed, { perClass: 2 }, 0), /class 1 has only 1 examples but 2 per class/);
    assert.throws(() => labelSubset(skewed, { fraction: 0 }, 0), /fraction must be in \(0, 1\]/);
  });

  test('stratifiedSplit rounds per class and partitions the indices', async () => {
    // Class sizes 5 and 3 at 0.3: round(1.5)=2 and round(0.9)=1 held out.
    const labels = [0, 1, 0, 0, 1, 0, 1, 0];
    const s = stratifiedSplit(labels, 0.3, new Rng(3));
    assert.deepEqual(classCounts(Array.from(s.test, (i) => labels[i]), 2), [2, 1]);
    assert.deepEqual([...s.train, ...s.test].sort((a, b) => a - b), range(8));
  });

  test('split + subset copy images and labels consistently', async () => {
    const ds: ImageDataset = {
      name: 'toy',
      images: Uint8Array.from(range(6 * 2), (i) => i),
      labels: Int32Array.from([0, 1, 0, 1, 0, 1]),
      n: 6,
      height: 1,
      width: 2,
      channels: 1,
      numClasses: 2,
    };
    const sub = subset(ds, [4, 1]);
    assert.deepEqual(Array.from(sub.images), [8, 9, 2, 3]);
    assert.deepEqual(Array.from(sub.labels), [0, 1]);
    const { train, val } = split(ds, 1 / 3, new Rng(0));
    assert.equal(train.n + val.n, 6);
    assert.deepEqual(classCounts(val.labels, 2), [1, 1]);
    for (const d of [train, val]) for (let i = 0; i < d.n; i++) assert.equal(d.images[2 * i] % 4 === 0, d.labels[i] === 0);
    assert.throws(() => subset(ds, [6]), /index 6 .* out of range/);
  });

  test('assertDataset accepts readers\' output and rejects inconsistent shapes', async () => {
    const { test: te } = loadEmbeddedFashionMnist();
    assertDataset(te);
    assert.throws(() => assertDataset({ ...te, n: te.n + 1 }), /images has 1568000 bytes but n\*height\*width\*channels = 2001\*28\*28\*1 = 1568784/);
    assert.throws(() => assertDataset({ ...te, numClasses: 9 }), /label 9 at index \d+ is outside \[0, 9\)/);
  });

  test('batches: each index once per epoch, dropLast, seeded order', async () => {
    const all = [...batches(10, 3, new Rng(5))];
    assert.deepEqual(all.map((b) => b.length), [3, 3, 3, 1]);
    assert.deepEqual(all.flatMap((b) => Array.from(b)).sort((a, b) => a - b), range(10));
    assert.equal(numBatches(10, 3), 4);
    const dropped = [...batches(10, 3, new Rng(5), { dropLast: true })];
    assert.equal(dropped.length, numBatches(10, 3, true));
    assert.deepEqual(dropped, all.slice(0, 3));
    assert.deepEqual([...batches(5, 2)].map((b) => Array.from(b)), [[0, 1], [2, 3], [4]]);
    const rng = new Rng(5);
    const e1 = [...batches(10, 10, rng)][0];
    const e2 = [...batches(10, 10, rng)][0];
    assert.notDeepEqual(e1, e2, 'a new permutation each epoch');
  });
});

describe('toTensor', () => {
  before(async () => {
    require('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend('wasm');
  });

  test('float32 NHWC in [0,1], picked by indices, no leaked tensors', async () => {
    const ds: ImageDataset = {
      name: 'toy',
      images: Uint8Array.from([0, 255, 51, 102, 0, 0, 10, 20, 30, 40, 50, 60]),
      labels: Int32Array.from([0, 1]),
      n: 2,
      height: 1,
      width: 2,
      channels: 3,
      numClasses: 2,
    };
    const before = tf.memory().numTensors;
    for (let rep = 0; rep < 3; rep++) {
      const t = toTensor(ds, [1, 0]);
      assert.deepEqual(t.shape, [2, 1, 2, 3]);
      assert.equal(t.dtype, 'float32');
      const v = Array.from(t.dataSync());
      const want = [10, 20, 30, 40, 50, 60, 0, 255, 51, 102, 0, 0].map((x) => x / 255);
      v.forEach((x, i) => assert.ok(Math.abs(x - want[i]) < 1e-6));
      t.dispose();
      const whole = toTensor(ds);
      assert.deepEqual(whole.shape, [2, 1, 2, 3]);
      whole.dispose();
    }
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => toTensor(ds, [2]), /out of range/);
  });
});

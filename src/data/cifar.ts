/**
 * CIFAR-10 binary-version reader (cifar-10-binary.tar.gz, extracted):
 * data_batch_1.bin .. data_batch_5.bin (train, 10,000 records each) and
 * test_batch.bin. A record is 1 label byte then 3072 pixel bytes stored
 * channel-major (1024 R, 1024 G, 1024 B, each 32x32 row-major); we convert
 * to the NHWC layout of ImageDataset.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageDataset } from './dataset';

export const CIFAR10_CLASSES = [
  'airplane',
  'automobile',
  'bird',
  'cat',
  'deer',
  'dog',
  'frog',
  'horse',
  'ship',
  'truck',
];

const SIDE = 32;
const PLANE = SIDE * SIDE;
const RECORD = 1 + 3 * PLANE;

export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILES = ['test_batch.bin'];

const FIX_HINT =
  'The file is probably damaged or from an interrupted download: delete it and run ' +
  'bash datasets/fetch.sh cifar10 (which verifies the published md5).';

/** Reads one CIFAR-10 binary batch file into NHWC bytes and labels. */
export function readCifar10Batch(path: string, numClasses = 10): { n: number; images: Uint8Array; labels: Int32Array } {
  if (!existsSync(path)) throw new Error(`CIFAR-10 batch file not found: ${path}`);
  const buf = readFileSync(path);
  if (buf.length === 0 || buf.length % RECORD !== 0) {
    throw new Error(
      `${path}: size ${buf.length} bytes is not a positive multiple of the CIFAR-10 record size ${RECORD} ` +
        `(1 label byte + 3x32x32 pixels); an official batch is 10000 records = ${10000 * RECORD} bytes. ${FIX_HINT}`,
    );
  }
  const n = buf.length / RECORD;
  const images = new Uint8Array(n * 3 * PLANE);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const rec = i * RECORD;
    const y = buf[rec];
    if (y >= numClasses) {
      throw new Error(
        `${path}: record ${i} has label ${y}, expected 0..${numClasses - 1}. ` +
          `Is this a CIFAR-100 file (2 label bytes per record) rather than CIFAR-10? ${FIX_HINT}`,
      );
    }
    labels[i] = y;
    const src = rec + 1;
    const dst = i * 3 * PLANE;
    // CHW -> HWC: pixel p of channel c moves to 3*p + c.
    for (let p = 0; p < PLANE; p++) {
      images[dst + 3 * p] = buf[src + p];
      images[dst + 3 * p + 1] = buf[src + PLANE + p];
      images[dst + 3 * p + 2] = buf[src + 2 * PLANE + p];
    }
  }
  return { n, images, labels };
}

/**
 * The directory holding the batch files: `dir` itself, or the
 * `cifar-10-batches-bin/` folder the official archive extracts to.
 */
export function resolveCifarDir(dir: string): string {
  const nested = join(dir, 'cifar-10-batches-bin');
  if (existsSync(nested) && statSync(nested).isDirectory()) return nested;
  return dir;
}

/** Class names from batches.meta.txt (one per line), if present and well formed. */
export function readCifarClassNames(dir: string, numClasses = 10): string[] | undefined {
  const p = join(dir, 'batches.meta.txt');
  if (!existsSync(p)) return undefined;
  const names = readFileSync(p, 'utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return names.length === numClasses ? names : undefined;
}

/** The batch files a split needs that are missing from `dir` (after resolveCifarDir). */
export function missingCifarFiles(dir: string, split: 'train' | 'test'): string[] {
  const d = resolveCifarDir(dir);
  const files = split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  return files.filter((f) => !existsSync(join(d, f)));
}

/**
 * CIFAR-10 split from a directory of binary batches: train = the five
 * data_batch_*.bin in order (50,000 images), test = test_batch.bin (10,000).
 */
export function readCifar10(dir: string, split: 'train' | 'test', name = `cifar10/${split}`): ImageDataset {
  const d = resolveCifarDir(dir);
  const missing = missingCifarFiles(dir, split);
  if (missing.length > 0) {
    throw new Error(
      `CIFAR-10 ${split} split incomplete in ${d}: missing ${missing.join(', ')}. ` +
        'Extract cifar-10-binary.tar.gz there, or run bash datasets/fetch.sh cifar10.',
    );
  }
  const files = split === 'train' ? CIFAR10_TRAIN_FILES : CIFAR10_TEST_FILES;
  const parts = files.map((f) => readCifar10Batch(join(d, f)));
  const n = parts.reduce((a, p) => a + p.n, 0);
  const images = new Uint8Array(n * 3 * PLANE);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * 3 * PLANE);
    labels.set(p.labels, at);
    at += p.n;
  }
  return {
    name,
    images,
    labels,
    n,
    height: SIDE,
    width: SIDE,
    channels: 3,
    numClasses: 10,
    classNames: readCifarClassNames(d) ?? CIFAR10_CLASSES.slice(),
  };
}

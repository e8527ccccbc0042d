/**
 * IDX reader for MNIST-format files (MNIST, Fashion-MNIST), gzip-compressed
 * or raw. Format (big-endian): two zero bytes, a type code (0x08 = unsigned
 * byte), the number of dimensions, one uint32 per dimension, then the data.
 * Images are 3-D (magic 0x00000803: count, rows, columns), labels 1-D
 * (magic 0x00000801: count).
 *
 * Every failure names the file, what was expected, what was found and what
 * to do, because the usual causes are an interrupted download or a
 * mixed-up file.
 */
import { readFileSync, existsSync, statSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type { ImageDataset } from './dataset';

export const IDX_IMAGES_MAGIC = 0x00000803;
export const IDX_LABELS_MAGIC = 0x00000801;

const REFETCH_HINT =
  'The file is probably damaged or from an interrupted download: delete it and fetch it again ' +
  '(bash datasets/fetch.sh <dataset>, or apt-get install --reinstall dataset-fashion-mnist).';

function hex(bytes: Uint8Array, n: number): string {
  return Array.from(bytes.subarray(0, n), (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/**
 * File contents, gunzipped when the file starts with the gzip magic 1f 8b
 * (the name's extension is not trusted either way).
 */
export function readMaybeGzip(path: string): Uint8Array {
  if (!existsSync(path)) throw new Error(`File not found: ${path}`);
  if (statSync(path).isDirectory()) throw new Error(`Expected a file but found a directory: ${path}`);
  const raw = readFileSync(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      throw new Error(
        `${path}: starts like a gzip file (1f 8b) but could not be decompressed (${(e as Error).message}). ` +
          REFETCH_HINT,
      );
    }
  }
  return raw;
}

export interface IdxArray {
  /** File it came from (for messages). */
  path: string;
  /** Dimension sizes from the header. */
  dims: number[];
  /** The unsigned-byte payload, prod(dims) long. */
  data: Uint8Array;
}

/**
 * Reads and validates one IDX file of unsigned bytes. `expectedMagic`
 * (IDX_IMAGES_MAGIC or IDX_LABELS_MAGIC) fixes the type and the number of
 * dimensions.
 */
export function readIdx(path: string, expectedMagic: number): IdxArray {
  const bytes = readMaybeGzip(path);
  const kind = expectedMagic === IDX_IMAGES_MAGIC ? 'IDX image file' : 'IDX label file';
  const expectHex = `0x${expectedMagic.toString(16).padStart(8, '0')}`;
  if (bytes.length < 4) {
    throw new Error(
      `${path}: only ${bytes.length} bytes, too short to be an ${kind} (expected magic ${expectHex}). ${REFETCH_HINT}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  if (magic !== expectedMagic) {
    let found = `found first bytes ${hex(bytes, 4)} (magic 0x${magic.toString(16).padStart(8, '0')})`;
    if (magic === IDX_IMAGES_MAGIC) found += ', which is an IDX image file';
    else if (magic === IDX_LABELS_MAGIC) found += ', which is an IDX label file';
    else if (bytes[0] !== 0 || bytes[1] !== 0) found += ', which is neither gzip (1f 8b) nor IDX (00 00 08 ..)';
    throw new Error(
      `${path}: not an ${kind}: expected magic number ${expectHex}, ${found}. ` +
        'Check that the images and labels paths are not swapped and that the file is an MNIST-format ' +
        `(*-idx${expectedMagic & 0xff}-ubyte[.gz]) file; otherwise ${REFETCH_HINT}`,
    );
  }
  const ndim = expectedMagic & 0xff;
  const headerLen = 4 + 4 * ndim;
  if (bytes.length < headerLen) {
    throw new Error(
      `${path}: truncated ${kind}: header needs ${headerLen} bytes but the file has ${bytes.length}. ${REFETCH_HINT}`,
    );
  }
  const dims: number[] = [];
  for (let d = 0; d < ndim; d++) dims.push(view.getUint32(4 + 4 * d, false));
  const payload = dims.reduce((a, b) => a * b, 1);
  const expectedLen = headerLen + payload;
  if (bytes.length < expectedLen) {
    throw new Error(
      `${path}: truncated ${kind}: header says dimensions ${dims.join('x')} so ${expectedLen} bytes ` +
        `(after decompression) are expected, but there are only ${bytes.length}. ${REFETCH_HINT}`,
    );
  }
  if (bytes.length > expectedLen) {
    throw new Error(
      `${path}: ${kind} has ${bytes.length - expectedLen} unexpected trailing bytes: header says dimensions ` +
        `${dims.join('x')} so ${expectedLen} bytes are expected, found ${bytes.length}. ${REFETCH_HINT}`,
    );
  }
  // A plain Uint8Array view, not a Buffer: Buffer#slice shares memory, which
  // would surprise users calling images.slice() to copy.
  return { path, dims, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLen, payload) };
}

/** Images of an IDX image file: n x rows x cols bytes (one channel). */
export function readIdxImages(path: string): { n: number; height: number; width: number; data: Uint8Array } {
  const a = readIdx(path, IDX_IMAGES_MAGIC);
  const [n, height, width] = a.dims;
  if (height === 0 || width === 0) {
    throw new Error(`${path}: IDX image file declares an empty image size ${height}x${width}. ${REFETCH_HINT}`);
  }
  return { n, height, width, data: a.data };
}

/** Labels of an IDX label file, optionally checked to lie in [0, numClasses). */
export function readIdxLabels(path: string, numClasses?: number): Int32Array {
  const a = readIdx(path, IDX_LABELS_MAGIC);
  const labels = Int32Array.from(a.data);
  if (numClasses !== undefined) {
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] >= numClasses) {
        throw new Error(
          `${path}: label ${labels[i]} at index ${i} is out of range: expected 0..${numClasses - 1} ` +
            `for a ${numClasses}-class dataset. Check that this label file belongs to this dataset; ` +
            `otherwise ${REFETCH_HINT}`,
        );
      }
    }
  }
  return labels;
}

export interface IdxDatasetSpec {
  imagesPath: string;
  labelsPath: string;
  name: string;
  /** Default 10 (MNIST and Fashion-MNIST). */
  numClasses?: number;
  classNames?: string[];
}

/** An ImageDataset (channels = 1) from a matching pair of IDX image and label files. */
export function readIdxDataset(spec: IdxDatasetSpec): ImageDataset {
  const numClasses = spec.numClasses ?? 10;
  const img = readIdxImages(spec.imagesPath);
  const labels = readIdxLabels(spec.labelsPath, numClasses);
  if (labels.length !== img.n) {
    throw new Error(
      `IDX count mismatch: ${spec.imagesPath} holds ${img.n} images but ${spec.labelsPath} holds ` +
        `${labels.length} labels; they must be the same split (train-* with train-*, t10k-* with t10k-*). ` +
        'Use matching files, or re-download both.',
    );
  }
  const ds: ImageDataset = {
    name: spec.name,
    images: img.data,
    labels,
    n: img.n,
    height: img.height,
    width: img.width,
    channels: 1,
    numClasses,
  };
  if (spec.classNames) ds.classNames = spec.classNames.slice();
  return ds;
}

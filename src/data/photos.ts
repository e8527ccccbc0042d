/**
 * Photographs of any size, brought to a model's input size the way timm and
 * DINO evaluate: resize the shorter side to size / cropFraction, then take the
 * centre size×size square (Resize(256) + CenterCrop(224) at 224 px, scaled to
 * other sizes). Pixels come back in [0, 1]; the mean/std that go with a
 * weights file are applied separately (`normalizeImages`, src/augment), so the same
 * batch can be shown as a picture and fed to the model.
 *
 * Decoding reuses the image-folder reader's sharp (libvips), so the same
 * formats, EXIF rotation and corrupt-file errors apply.
 */
import { existsSync, statSync } from 'node:fs';
import { basename, relative } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { DEFAULT_IMAGE_EXTENSIONS, listFilesRecursive, loadSharp } from './folder';

export interface PhotoOptions {
  /** Output side S in pixels (the model's input size, e.g. 224). */
  size: number;
  /**
   * Fraction of the resized shorter side the centre crop keeps. Default
   * 0.875 = 224/256, timm's and DINO's evaluation; 1 crops the shorter side
   * exactly (no margin).
   */
  cropFraction?: number;
  /** 1 = greyscale, 3 = RGB (greyscale photos are repeated over 3 channels). Default 3. */
  channels?: 1 | 3;
  /**
   * Resampling kernel. Default 'cubic' (Catmull-Rom, the bicubic kernel of
   * PIL that timm's eval transform uses; libvips antialiases when shrinking as PIL does).
   */
  kernel?: 'nearest' | 'linear' | 'cubic' | 'lanczos3';
  /** Images decoded at once. Default 4. */
  concurrency?: number;
}

export interface PhotoFolderOptions extends PhotoOptions {
  /** Lower-case extensions to read; others (README.md, …) are skipped. Default .png .jpg .jpeg. */
  extensions?: string[];
  /** Also read sub-folders. Default false. */
  recursive?: boolean;
}

export interface PhotoBatch {
  /** [N, S, S, C] float32 in [0, 1], in the order of `files`. The caller disposes it. */
  images: tf.Tensor4D;
  /** Paths as read. */
  files: string[];
  /** File names relative to the folder (or base names for an explicit list), for labels in figures. */
  names: string[];
  /** Each photo's [height, width] before resizing, after EXIF rotation. */
  sizes: Array<[number, number]>;
}

/** timm's eval resize: the resized [height, width] before the centre crop (shorter side floor(size / cropFraction)). */
export function evalResizeShape(height: number, width: number, size: number, cropFraction = 0.875): [number, number] {
  const scaled = Math.max(size, Math.floor(size / cropFraction));
  // torchvision Resize(int): the shorter side becomes `scaled`, the longer one int(scaled · long / short).
  if (height <= width) return [scaled, Math.max(size, Math.floor((scaled * width) / height))];
  return [Math.max(size, Math.floor((scaled * height) / width)), scaled];
}

/** Read every photo of a folder (sorted by name), see the module comment. */
export async function readPhotoFolder(dir: string, opts: PhotoFolderOptions): Promise<PhotoBatch> {
  if (!existsSync(dir)) throw new Error(`Photo folder not found: ${dir}. Pass a folder of .png/.jpg images.`);
  if (!statSync(dir).isDirectory()) throw new Error(`Expected a folder of photos but ${dir} is a file; use readPhotos([file]) for single files.`);
  const exts = new Set((opts.extensions ?? DEFAULT_IMAGE_EXTENSIONS).map((e) => e.toLowerCase()));
  let files = listFilesRecursive(dir, exts);
  if (!opts.recursive) files = files.filter((f) => relative(dir, f) === basename(f));
  if (files.length === 0) throw new Error(`Photo folder ${dir} has no images with extensions ${[...exts].join(', ')}.`);
  const batch = await readPhotos(files, opts);
  return { ...batch, names: files.map((f) => relative(dir, f)) };
}

/** Read the given image files, each resized and centre-cropped to size×size. */
export async function readPhotos(files: string[], opts: PhotoOptions): Promise<PhotoBatch> {
  const S = opts.size;
  if (!Number.isInteger(S) || S < 1) throw new Error(`readPhotos: size must be a positive integer, got ${S}`);
  const crop = opts.cropFraction ?? 0.875;
  if (!(crop > 0 && crop <= 1)) throw new Error(`readPhotos: cropFraction must be in (0, 1], got ${crop}`);
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new Error(`readPhotos: channels must be 1 or 3, got ${channels}`);
  if (files.length === 0) throw new Error('readPhotos: no files given');
  const kernel = opts.kernel ?? 'cubic';
  const sharp = await loadSharp();
  const per = S * S * channels;
  const out = new Float32Array(files.length * per);
  const sizes: Array<[number, number]> = new Array(files.length);

  const decodeOne = async (i: number): Promise<void> => {
    const file = files[i];
    let data: Buffer;
    let info: { width: number; height: number; channels: number };
    try {
      const meta = await sharp(file, { failOn: 'error' }).metadata();
      if (!meta.width || !meta.height) throw new Error('no image size in the header');
      // EXIF orientations 5–8 are quarter turns: the photo as seen has width and height swapped.
      const turned = (meta.orientation ?? 1) >= 5;
      const [h, w] = turned ? [meta.width, meta.height] : [meta.height, meta.width];
      sizes[i] = [h, w];
      const [rh, rw] = evalResizeShape(h, w, S, crop);
      let p = sharp(file, { failOn: 'error' })
        .rotate()
        .flatten({ background: { r: 0, g: 0, b: 0 } })
        .resize(rw, rh, { fit: 'fill', kernel })
        // extract after resize crops the resized image (sharp orders them by call order).
        .extract({ left: roundHalfEven((rw - S) / 2), top: roundHalfEven((rh - S) / 2), width: S, height: S });
      p = channels === 1 ? p.grayscale() : p.toColourspace('srgb');
      ({ data, info } = await p.raw().toBuffer({ resolveWithObject: true }));
    } catch (e) {
      throw new Error(`Cannot decode image ${file}: ${(e as Error).message}. The file is corrupt or not a PNG/JPEG; replace or delete it.`);
    }
    if (info.width !== S || info.height !== S || info.channels !== channels || data.length !== per) {
      throw new Error(`Image ${file} decoded to ${info.width}x${info.height}x${info.channels}, expected ${S}x${S}x${channels}`);
    }
    const off = i * per;
    for (let j = 0; j < per; j++) out[off + j] = data[j] / 255;
  };

  const concurrency = Math.max(1, opts.concurrency ?? 4);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) await decodeOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return { images: tf.tensor4d(out, [files.length, S, S, channels]), files: [...files], names: files.map((f) => basename(f)), sizes };
}

/** Python's round(): halves go to the even neighbour, so crops match torchvision's CenterCrop pixel for pixel. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

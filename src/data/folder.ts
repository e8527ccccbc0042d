/**
 * Folder-of-images reader in the torchvision ImageFolder layout:
 *
 *   root/<class name>/**\/<image>.png|.jpg|.jpeg
 *
 * Classes are the immediate sub-folders sorted by name (byte order, as
 * Python's sorted()), so class index c is the c-th folder. Images are decoded
 * with sharp (libvips, shipped prebuilt in npm packages), auto-rotated by
 * their EXIF orientation, resized to a fixed size and converted to 1 (grey)
 * or 3 (sRGB) channels. sharp is loaded lazily so the IDX / CIFAR readers
 * work even where it is unavailable.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { Sharp } from 'sharp';
import type { ImageDataset } from './dataset';

export interface ImageFolderOptions {
  /** Output size: a square side, or [height, width]. */
  size: number | [number, number];
  /** 1 = greyscale, 3 = RGB. Default 3. */
  channels?: 1 | 3;
  /**
   * How to reach `size` when the aspect ratio differs: 'cover' scales the
   * shorter side and centre-crops (torchvision Resize + CenterCrop),
   * 'fill' stretches, 'contain' letterboxes on black. Default 'cover'.
   */
  fit?: 'cover' | 'fill' | 'contain';
  /** Dataset name; default the folder path. */
  name?: string;
  /** Lower-case file extensions to read; others are ignored. Default .png .jpg .jpeg. */
  extensions?: string[];
  /** Images decoded at once. Default 4. */
  concurrency?: number;
}

export const DEFAULT_IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg'];

export type SharpFactory = (input: string, options?: { failOn?: 'none' | 'truncated' | 'error' | 'warning' }) => Sharp;

/** sharp, loaded on first use so the IDX / CIFAR readers work where it is missing. */
export async function loadSharp(): Promise<SharpFactory> {
  try {
    const mod = await import('sharp');
    return mod.default as unknown as SharpFactory;
  } catch (e) {
    throw new Error(
      `Reading image folders needs the 'sharp' package, which failed to load (${(e as Error).message}). ` +
        'Run npm install sharp (it ships prebuilt libvips for Linux, macOS and Windows).',
    );
  }
}

/** Files under `dir` with one of `exts` (lower-case, with the dot), sorted by name per folder, hidden ones skipped. */
export function listFilesRecursive(dir: string, exts: Set<string>): string[] {
  const out: string[] = [];
  const entries = readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.'))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFilesRecursive(p, exts));
    else if (e.isFile() && exts.has(extname(e.name).toLowerCase())) out.push(p);
  }
  return out;
}

/** Class names (sorted sub-folder names) and the image files of each. */
export function scanImageFolder(
  root: string,
  extensions: string[] = DEFAULT_IMAGE_EXTENSIONS,
): { classNames: string[]; files: string[][] } {
  if (!existsSync(root)) {
    throw new Error(
      `Image folder not found: ${root}. Expected a folder with one sub-folder per class, e.g. ${join(root, 'cat', '001.png')}.`,
    );
  }
  if (!statSync(root).isDirectory()) throw new Error(`Expected an image folder but ${root} is a file.`);
  const exts = new Set(extensions.map((e) => e.toLowerCase()));
  const classNames = readdirSync(root, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (classNames.length === 0) {
    throw new Error(
      `Image folder ${root} has no class sub-folders. Put each class's images in its own sub-folder, ` +
        `e.g. ${join(root, 'cat', '001.png')} and ${join(root, 'dog', '001.png')}.`,
    );
  }
  const files = classNames.map((c) => listFilesRecursive(join(root, c), exts));
  files.forEach((fs, c) => {
    if (fs.length === 0) {
      throw new Error(
        `Class folder ${join(root, classNames[c])} contains no images with extensions ${[...exts].join(', ')}. ` +
          'Add images or remove the folder.',
      );
    }
  });
  return { classNames, files };
}

/**
 * Reads a folder-of-images dataset (see module comment). Any file that
 * cannot be decoded aborts the read with an error naming that file.
 */
export async function readImageFolder(root: string, opts: ImageFolderOptions): Promise<ImageDataset> {
  const [height, width] = typeof opts.size === 'number' ? [opts.size, opts.size] : opts.size;
  if (!(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0)) {
    throw new Error(`readImageFolder: size must be positive integers, got ${JSON.stringify(opts.size)}`);
  }
  const channels = opts.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw new Error(`readImageFolder: channels must be 1 or 3, got ${channels}`);
  const fit = opts.fit ?? 'cover';
  const { classNames, files } = scanImageFolder(root, opts.extensions);
  const list: { file: string; label: number }[] = [];
  files.forEach((fs, c) => fs.forEach((file) => list.push({ file, label: c })));

  const sharp = await loadSharp();
  const per = height * width * channels;
  const images = new Uint8Array(list.length * per);
  const labels = new Int32Array(list.length);

  const decodeOne = async (i: number): Promise<void> => {
    const { file, label } = list[i];
    let data: Buffer;
    let info: { width: number; height: number; channels: number };
    try {
      // failOn 'error' rejects truncated or corrupt files instead of
      // silently returning partly grey images.
      let p = sharp(file, { failOn: 'error' })
        .rotate()
        .resize(width, height, { fit, position: 'centre', background: { r: 0, g: 0, b: 0 } })
        .flatten({ background: { r: 0, g: 0, b: 0 } });
      p = channels === 1 ? p.grayscale() : p.toColourspace('srgb');
      ({ data, info } = await p.raw().toBuffer({ resolveWithObject: true }));
    } catch (e) {
      throw new Error(
        `Cannot decode image ${file}: ${(e as Error).message}. The file is corrupt or not a PNG/JPEG; ` +
          'replace or delete it.',
      );
    }
    if (info.width !== width || info.height !== height || info.channels !== channels || data.length !== per) {
      throw new Error(
        `Image ${file} decoded to ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x${channels}`,
      );
    }
    images.set(data, i * per);
    labels[i] = label;
  };

  // A small pool: libvips decodes on its own threads, so a few requests in
  // flight keep it busy without queueing thousands of promises.
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < list.length) await decodeOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, list.length) }, worker));

  return {
    name: opts.name ?? root,
    images,
    labels,
    n: list.length,
    height,
    width,
    channels,
    numClasses: classNames.length,
    classNames,
  };
}

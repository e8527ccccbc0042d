/**
 * What iBOT trains on, drawn: an image, its global and local crops, and the
 * blockwise masks over the global crops' patches (the student sees masked
 * global crops; the teacher the same crops unmasked).
 */
import { Figure } from './figure';
import { HostImage, ImagePanel, imageGridFigure } from './images';

export interface CropGalleryInput {
  original: HostImage;
  /** Global crops of `original` (de-normalised, in [0, 1]). */
  global: HostImage[];
  local: HostImage[];
  /** One mask per global crop (1 = masked patch, row-major over its patch grid); undefined = unmasked. */
  masks?: Array<Uint8Array | undefined>;
  patchSize: number;
  title?: string;
  /** Panel size in pixels. Default 130. */
  cellSize?: number;
}

function maskFraction(m: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < m.length; i++) s += m[i];
  return m.length ? s / m.length : 0;
}

/**
 * Row 1: the image, then each global crop with its mask (translucent red
 * cells = patches replaced by the [MASK] embedding for the student).
 * Row 2: the local crops, drawn at their true size relative to the global
 * ones. Titles give each crop's size and masked fraction.
 */
export function multiCropGalleryFigure(input: CropGalleryInput): Figure {
  const { original, global, local, patchSize } = input;
  if (global.length === 0) throw new Error('multiCropGalleryFigure: no global crops');
  const cols = Math.max(1 + global.length, local.length);
  const panels: ImagePanel[] = [{ image: original }];
  global.forEach((g, i) => {
    const m = input.masks?.[i];
    if (m && g.width % patchSize !== 0) throw new Error(`multiCropGalleryFigure: global crop ${g.width} px is not a multiple of patch size ${patchSize}`);
    const grid: [number, number] = [g.height / patchSize, g.width / patchSize];
    if (m && m.length !== grid[0] * grid[1]) throw new Error(`multiCropGalleryFigure: mask ${i} has ${m.length} cells for a ${grid[0]}×${grid[1]} patch grid`);
    panels.push({
      image: g,
      title: `global ${i + 1}${m ? ` · ${Math.round(maskFraction(m) * 100)}% masked` : ` · ${g.width}px`}`,
      overlay: m ? { values: m, grid, patchSize, label: 'masked' } : undefined,
    });
  });
  // Blank cells pad row 1 so local crops start a new row.
  const blank: HostImage = { width: 1, height: 1, channels: 1, data: new Float32Array([1]) };
  while (panels.length < cols) panels.push({ image: blank });
  local.forEach((l, i) => panels.push({ image: l, title: `local ${i + 1} · ${l.width}px` }));
  panels[0].title = `image · ${original.width}px`;
  const frame = Math.max(original.width, ...global.map((g) => g.width), ...local.map((l) => l.width));
  return imageGridFigure(panels, {
    cols,
    frame,
    cellSize: input.cellSize ?? 130,
    title: input.title ?? 'multi-crop views and blockwise masks',
  });
}

export interface MaskGalleryInput {
  images: HostImage[];
  masks: Uint8Array[];
  patchSize: number;
  titles?: string[];
  title?: string;
  cols?: number;
  cellSize?: number;
}

/** Several images, each with its mask drawn over the patch grid. */
export function maskGalleryFigure(input: MaskGalleryInput): Figure {
  if (input.images.length !== input.masks.length) {
    throw new Error(`maskGalleryFigure: ${input.images.length} images but ${input.masks.length} masks; pass one mask per image`);
  }
  const panels: ImagePanel[] = input.images.map((img, i) => {
    const grid: [number, number] = [img.height / input.patchSize, img.width / input.patchSize];
    return {
      image: img,
      title: input.titles?.[i] ?? `${Math.round(maskFraction(input.masks[i]) * 100)}% masked`,
      overlay: { values: input.masks[i], grid, patchSize: input.patchSize, label: 'masked' },
    };
  });
  return imageGridFigure(panels, { cols: input.cols, cellSize: input.cellSize ?? 120, title: input.title ?? 'blockwise masks' });
}

/**
 * Images as plotly traces, and a generic grid of image panels with optional
 * per-patch overlays (masks, attention, prototype ids) and boxes, on which the
 * crop, mask, attention and pattern figures are built.
 *
 * Images live on the host as `HostImage` (HWC float32 in [0, 1]); grayscale
 * ones become `heatmap` traces with a grey colour scale (crisp pixels, hover
 * shows the value), RGB ones `image` traces. The y axis is reversed so row 0
 * is at the top, as in the image.
 */
import * as tf from '@tensorflow/tfjs-core';
import { ImageDataset } from '../data/dataset';
import { AxisRef, Figure, Layout, Trace, baseLayout, cellTitle, subplotGrid } from './figure';

export interface HostImage {
  width: number;
  height: number;
  channels: 1 | 3;
  /** height·width·channels values in [0, 1], row-major HWC. */
  data: Float32Array;
}

export interface DenormalizeOptions {
  /** Per-channel mean that was subtracted (e.g. the multi-crop normalisation); omitted = none. */
  mean?: number[];
  /** Per-channel std that was divided by. */
  std?: number[];
}

/** Images of a [B, H, W, C] tensor, undoing a (x − mean)/std normalisation and clamping to [0, 1]. */
export async function imagesFromTensor(x: tf.Tensor4D, opts: DenormalizeOptions = {}): Promise<HostImage[]> {
  const [B, H, W, C] = x.shape;
  if (C !== 1 && C !== 3) throw new Error(`imagesFromTensor: expected 1 or 3 channels, got ${C}`);
  const mean = opts.mean ?? new Array<number>(C).fill(0);
  const std = opts.std ?? new Array<number>(C).fill(1);
  if (mean.length !== C || std.length !== C) throw new Error(`imagesFromTensor: mean/std need ${C} entries, got ${mean.length}/${std.length}`);
  const v = await x.data();
  const per = H * W * C;
  const out: HostImage[] = [];
  for (let b = 0; b < B; b++) {
    const data = new Float32Array(per);
    for (let j = 0; j < per; j++) {
      const c = j % C;
      data[j] = Math.min(1, Math.max(0, v[b * per + j] * std[c] + mean[c]));
    }
    out.push({ width: W, height: H, channels: C as 1 | 3, data });
  }
  return out;
}

/** Image i of a dataset (pixels / 255). */
export function datasetImage(ds: ImageDataset, i: number): HostImage {
  if (!(Number.isInteger(i) && i >= 0 && i < ds.n)) throw new Error(`datasetImage: index ${i} is outside [0, ${ds.n}) of '${ds.name}'`);
  if (ds.channels !== 1 && ds.channels !== 3) throw new Error(`datasetImage: ${ds.channels}-channel images cannot be drawn`);
  const per = ds.height * ds.width * ds.channels;
  const data = new Float32Array(per);
  for (let j = 0; j < per; j++) data[j] = ds.images[i * per + j] / 255;
  return { width: ds.width, height: ds.height, channels: ds.channels as 1 | 3, data };
}

/** Rows of the image's channel c (or the grey value), as plotly wants a `z` matrix. */
function rows(img: HostImage, c = 0): number[][] {
  const out: number[][] = [];
  for (let y = 0; y < img.height; y++) {
    const r: number[] = [];
    for (let x = 0; x < img.width; x++) r.push(img.data[(y * img.width + x) * img.channels + c]);
    out.push(r);
  }
  return out;
}

export interface ImageTraceOptions {
  /** Pixel offset of the image's top-left pixel centre (to centre small crops in a larger frame). */
  x0?: number;
  y0?: number;
  /** Hover label. */
  name?: string;
}

/** One image as a trace on the given axes (heatmap for grey, `image` for RGB). */
export function imageTrace(img: HostImage, axes: AxisRef, opts: ImageTraceOptions = {}): Trace {
  const x0 = opts.x0 ?? 0;
  const y0 = opts.y0 ?? 0;
  if (img.channels === 1) {
    return {
      type: 'heatmap',
      z: rows(img),
      x0,
      dx: 1,
      y0,
      dy: 1,
      zmin: 0,
      zmax: 1,
      colorscale: [
        [0, '#000000'],
        [1, '#ffffff'],
      ],
      showscale: false,
      name: opts.name ?? '',
      hovertemplate: 'x %{x}, y %{y}: %{z:.2f}<extra>' + (opts.name ?? '') + '</extra>',
      xaxis: axes.xaxis,
      yaxis: axes.yaxis,
    };
  }
  const z: number[][][] = [];
  for (let y = 0; y < img.height; y++) {
    const r: number[][] = [];
    for (let x = 0; x < img.width; x++) {
      const o = (y * img.width + x) * 3;
      r.push([Math.round(img.data[o] * 255), Math.round(img.data[o + 1] * 255), Math.round(img.data[o + 2] * 255)]);
    }
    z.push(r);
  }
  return { type: 'image', z, x0, dx: 1, y0, dy: 1, name: opts.name ?? '', hoverinfo: 'x+y', xaxis: axes.xaxis, yaxis: axes.yaxis };
}

/** Values on the patch grid drawn over an image (one cell per patch). */
export interface PatchOverlay {
  /** gridH·gridW values, row-major over the patch grid. */
  values: ArrayLike<number>;
  grid: [number, number];
  patchSize: number;
  /** Plotly colour scale; default translucent red for 1, transparent for 0 (a mask). */
  colorscale?: Array<[number, string]> | string;
  /** Trace opacity (default 1; the default colour scale is already translucent). */
  opacity?: number;
  zmin?: number;
  zmax?: number;
  /** Label of the value in the hover text. Default 'value'. */
  label?: string;
}

export const MASK_COLORSCALE: Array<[number, string]> = [
  [0, 'rgba(0,0,0,0)'],
  [1, 'rgba(230,40,40,0.6)'],
];

/** A heatmap whose cells cover the image's patches exactly: cell j spans pixels [j·p, (j+1)·p). */
export function patchOverlayTrace(o: PatchOverlay, axes: AxisRef, offset: [number, number] = [0, 0]): Trace {
  const [gh, gw] = o.grid;
  if (o.values.length !== gh * gw) throw new Error(`patchOverlayTrace: ${o.values.length} values for a ${gh}×${gw} grid`);
  const z: number[][] = [];
  for (let i = 0; i < gh; i++) {
    const r: number[] = [];
    for (let j = 0; j < gw; j++) r.push(o.values[i * gw + j]);
    z.push(r);
  }
  const p = o.patchSize;
  // Pixel centres sit at integer coordinates, so a p-pixel patch spans [j·p − 0.5, (j+1)·p − 0.5].
  return {
    type: 'heatmap',
    z,
    x0: offset[0] + (p - 1) / 2,
    dx: p,
    y0: offset[1] + (p - 1) / 2,
    dy: p,
    zmin: o.zmin ?? 0,
    zmax: o.zmax ?? 1,
    colorscale: o.colorscale ?? MASK_COLORSCALE,
    opacity: o.opacity ?? 1,
    showscale: false,
    hovertemplate: `${o.label ?? 'value'} %{z:.3f}<extra></extra>`,
    xaxis: axes.xaxis,
    yaxis: axes.yaxis,
  };
}

/** A rectangle in pixel coordinates of a panel's image (drawn as an outline). */
export interface PixelBox {
  top: number;
  left: number;
  height: number;
  width: number;
  color?: string;
}

export interface ImagePanel {
  image: HostImage;
  title?: string;
  overlay?: PatchOverlay;
  boxes?: PixelBox[];
}

export interface ImageGridOptions {
  /** Panels per row. Default: all in one row. */
  cols?: number;
  title?: string;
  /** Pixel size of each panel. Default 150. */
  cellSize?: number;
  /**
   * Frame side in image pixels for every panel (default: the largest image).
   * Smaller images are centred in it, so a 12-px local crop looks smaller
   * than a 28-px global one, as it is.
   */
  frame?: number;
  /** Row labels drawn left of each row. */
  rowLabels?: string[];
}

/** A grid of images, each optionally with a patch overlay and outlined boxes. */
export function imageGridFigure(panels: ImagePanel[], opts: ImageGridOptions = {}): Figure {
  if (panels.length === 0) throw new Error('imageGridFigure: no panels to draw');
  const cols = Math.max(1, Math.min(opts.cols ?? panels.length, panels.length));
  const nrows = Math.ceil(panels.length / cols);
  // Panel titles may have several lines (`<br>`); reserve room for the longest.
  const titleLines = Math.max(0, ...panels.map((p) => (p.title ? p.title.split('<br>').length : 0)));
  const cellSize = opts.cellSize ?? 150;
  const titleSpace = titleLines ? 8 + 14 * titleLines : 4;
  // The first row's panel titles sit above the plot area: keep the figure title clear of them.
  const top = opts.title ? 36 + titleSpace : 10;
  const height = nrows * (cellSize + titleSpace) + top + 10;
  const left = opts.rowLabels ? 115 : 10;
  const plotWidth = cols * (cellSize + 8);
  // Wide enough for the figure title (about 8 px per character at 15 px); the extra goes to the right
  // margin so the panels keep their size and spacing.
  const width = Math.max(plotWidth + left + 10, opts.title ? opts.title.length * 8 + 40 : 0);
  const right = width - plotWidth - left;
  const cells = subplotGrid(nrows, cols, { hgap: 8 / plotWidth, vgap: titleSpace / (height - top - 10) });
  const frame = opts.frame ?? Math.max(...panels.map((p) => Math.max(p.image.width, p.image.height)));
  const data: Trace[] = [];
  const annotations: Record<string, unknown>[] = [];
  const shapes: Record<string, unknown>[] = [];
  const layout: Layout = baseLayout(opts.title, {
    width,
    height,
    margin: { l: left, r: right, t: top, b: 10 },
  });
  panels.forEach((panel, i) => {
    const cell = cells[i];
    const ox = (frame - panel.image.width) / 2;
    const oy = (frame - panel.image.height) / 2;
    data.push(imageTrace(panel.image, cell, { x0: ox, y0: oy, name: panel.title }));
    if (panel.overlay) data.push(patchOverlayTrace(panel.overlay, cell, [ox, oy]));
    for (const b of panel.boxes ?? []) {
      shapes.push({
        type: 'rect',
        xref: cell.xaxis,
        yref: cell.yaxis,
        x0: ox + b.left - 0.5,
        x1: ox + b.left + b.width - 0.5,
        y0: oy + b.top - 0.5,
        y1: oy + b.top + b.height - 0.5,
        line: { color: b.color ?? '#ff3030', width: 2 },
      });
    }
    if (panel.title) annotations.push(cellTitle(cell, panel.title, 11));
    layout[cell.xKey] = { domain: cell.x, range: [-0.5, frame - 0.5], visible: false, fixedrange: true, constrain: 'domain' };
    layout[cell.yKey] = { domain: cell.y, range: [frame - 0.5, -0.5], visible: false, fixedrange: true, scaleanchor: cell.xaxis, constrain: 'domain' };
  });
  if (opts.rowLabels) {
    opts.rowLabels.forEach((label, r) => {
      const cell = cells[r * cols];
      if (!cell) return;
      annotations.push({
        text: label,
        x: 0,
        y: (cell.y[0] + cell.y[1]) / 2,
        xref: 'paper',
        yref: 'paper',
        xanchor: 'right',
        yanchor: 'middle',
        xshift: -6,
        showarrow: false,
        align: 'right',
        font: { size: 11 },
      });
    });
  }
  layout.annotations = annotations;
  layout.shapes = shapes;
  // Fixed axes: the zoom/pan toolbar would only get in the way.
  return { data, layout, config: { displayModeBar: false } };
}

/** Patch (row, col) of patch index k on a grid gw wide, as a pixel box. */
export function patchBox(k: number, gridW: number, patchSize: number, color?: string): PixelBox {
  const r = Math.floor(k / gridW);
  const c = k % gridW;
  return { top: r * patchSize, left: c * patchSize, height: patchSize, width: patchSize, color };
}

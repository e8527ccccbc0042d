/**
 * Patch-token patterns, as in the iBOT paper's pattern figures (Fig. 1 and
 * §4.4): the teacher's patch head assigns every patch to its most likely
 * prototype (argmax of the patch output). Grouping patches by that dominant
 * prototype and showing the most confident members of the most populated
 * groups reveals what the online tokenizer has learned — recurring parts
 * (collars, soles, handles…) rather than classes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Figure } from './figure';
import { categoryColor } from './figure';
import { HostImage, ImagePanel, imageGridFigure, patchBox } from './images';

/** Dominant prototype of every patch of a batch. */
export interface PatchAssignment {
  numImages: number;
  numPatches: number;
  /** [numImages·numPatches] argmax prototype, image-major. */
  prototype: Int32Array;
  /** [numImages·numPatches] the winning score (the head's output, a cosine similarity for a weight-normalised head). */
  score: Float32Array;
}

/** Argmax and max over the prototypes of patch scores [B, N, K] (e.g. `IBOTHead.forwardTokens(...).patch`). */
export async function patchAssignments(patchScores: tf.Tensor3D): Promise<PatchAssignment> {
  const [B, N] = patchScores.shape;
  const [idx, max] = tf.tidy(() => [tf.argMax(patchScores, -1), tf.max(patchScores, -1)]);
  let prototype: Int32Array;
  let score: Float32Array;
  try {
    prototype = Int32Array.from(await idx.data());
    score = Float32Array.from(await max.data());
  } finally {
    tf.dispose([idx, max]);
  }
  return { numImages: B, numPatches: N, prototype, score };
}

export interface PatternMember {
  image: number;
  patch: number;
  score: number;
}

export interface PatternGroup {
  prototype: number;
  /** Patches (over all images) whose dominant prototype this is. */
  count: number;
  /** The highest-scoring members, best first. */
  members: PatternMember[];
}

export interface PatternOptions {
  /** Most populated prototypes to return. Default 8. */
  top?: number;
  /** Members per prototype. Default 8. */
  perPrototype?: number;
  /** At most one member patch per image, so a group shows different images. Default true. */
  onePerImage?: boolean;
}

/**
 * The `top` prototypes that win the most patches (ties: lower id first), each
 * with its `perPrototype` best-scoring patches.
 */
export function dominantPatterns(a: PatchAssignment, opts: PatternOptions = {}): PatternGroup[] {
  const top = opts.top ?? 8;
  const per = opts.perPrototype ?? 8;
  const onePerImage = opts.onePerImage ?? true;
  const total = a.numImages * a.numPatches;
  if (a.prototype.length !== total || a.score.length !== total) {
    throw new Error(`dominantPatterns: expected ${total} assignments (${a.numImages} images × ${a.numPatches} patches), got ${a.prototype.length}/${a.score.length}`);
  }
  const members = new Map<number, number[]>();
  for (let i = 0; i < total; i++) {
    const p = a.prototype[i];
    let list = members.get(p);
    if (!list) members.set(p, (list = []));
    list.push(i);
  }
  const ranked = [...members.entries()].sort((x, y) => y[1].length - x[1].length || x[0] - y[0]).slice(0, top);
  return ranked.map(([prototype, idx]) => {
    const sorted = idx.slice().sort((i, j) => a.score[j] - a.score[i] || i - j);
    const chosen: PatternMember[] = [];
    const seen = new Set<number>();
    for (const i of sorted) {
      const image = Math.floor(i / a.numPatches);
      if (onePerImage && seen.has(image)) continue;
      seen.add(image);
      chosen.push({ image, patch: i % a.numPatches, score: a.score[i] });
      if (chosen.length >= per) break;
    }
    return { prototype, count: idx.length, members: chosen };
  });
}

export interface PatternFigureInput {
  /** The images the assignment was computed on, in the same order. */
  images: HostImage[];
  groups: PatternGroup[];
  /** Patch grid width and patch size of the images. */
  gridW: number;
  patchSize: number;
  title?: string;
  cellSize?: number;
}

/**
 * One row per prototype (most populated first): its best member patches,
 * each outlined in its image so the pattern is seen in context.
 */
export function patchPatternsFigure(input: PatternFigureInput): Figure {
  const { groups } = input;
  if (groups.length === 0) throw new Error('patchPatternsFigure: no groups (run dominantPatterns first)');
  const cols = Math.max(...groups.map((g) => g.members.length));
  const blank: HostImage = { width: 1, height: 1, channels: 1, data: new Float32Array([1]) };
  const panels: ImagePanel[] = [];
  groups.forEach((g, r) => {
    for (let c = 0; c < cols; c++) {
      const m = g.members[c];
      if (!m) {
        panels.push({ image: blank });
        continue;
      }
      const img = input.images[m.image];
      if (!img) throw new Error(`patchPatternsFigure: member image ${m.image} is not among the ${input.images.length} images given`);
      panels.push({ image: img, boxes: [patchBox(m.patch, input.gridW, input.patchSize, categoryColor(r))] });
    }
  });
  const frame = Math.max(...input.images.map((i) => Math.max(i.width, i.height)));
  return imageGridFigure(panels, {
    cols,
    frame,
    cellSize: input.cellSize ?? 80,
    rowLabels: groups.map((g) => `prototype ${g.prototype}<br>${g.count} patches`),
    title: input.title ?? 'patch patterns: the most populated prototypes and their most confident patches',
  });
}

export interface PrototypeLayoutInput {
  images: HostImage[];
  /** Which images of the assignment to draw. */
  indices: number[];
  assignment: PatchAssignment;
  groups: PatternGroup[];
  grid: [number, number];
  patchSize: number;
  title?: string;
  cols?: number;
  cellSize?: number;
}

/**
 * Images with each patch coloured by its dominant prototype when that is one
 * of `groups` (colour = the group's row colour in `patchPatternsFigure`); other
 * patches stay clear. Shows how the tokenizer splits an image into parts.
 */
export function prototypeLayoutFigure(input: PrototypeLayoutInput): Figure {
  const { assignment: a, groups } = input;
  const rank = new Map(groups.map((g, i) => [g.prototype, i + 1]));
  const G = groups.length;
  // Discrete colour scale: value r in 1..G gets the colour of group r − 1, 0 is transparent.
  const colorscale: Array<[number, string]> = [
    [0, 'rgba(0,0,0,0)'],
    [0.5 / (G + 0.5), 'rgba(0,0,0,0)'],
  ];
  for (let r = 1; r <= G; r++) {
    const lo = (r - 0.5) / (G + 0.5);
    const hi = Math.min(1, (r + 0.5) / (G + 0.5));
    const col = hexToRgba(categoryColor(r - 1), 0.6);
    colorscale.push([lo + 1e-6, col], [hi, col]);
  }
  const panels: ImagePanel[] = input.indices.map((i) => {
    if (i < 0 || i >= a.numImages) throw new Error(`prototypeLayoutFigure: image ${i} is outside the ${a.numImages} assigned images`);
    const values = new Float32Array(a.numPatches);
    for (let k = 0; k < a.numPatches; k++) values[k] = rank.get(a.prototype[i * a.numPatches + k]) ?? 0;
    return {
      image: input.images[i],
      title: `image ${i}`,
      overlay: { values, grid: input.grid, patchSize: input.patchSize, colorscale, zmin: 0, zmax: G, label: 'group' },
    };
  });
  return imageGridFigure(panels, {
    cols: input.cols ?? Math.min(8, panels.length),
    cellSize: input.cellSize ?? 110,
    title: input.title ?? 'patches coloured by dominant prototype (top groups only)',
  });
}

function hexToRgba(hex: string, alpha: number): string {
  const v = parseInt(hex.slice(1), 16);
  return `rgba(${(v >> 16) & 255},${(v >> 8) & 255},${v & 255},${alpha})`;
}

/** What masked image modeling predicts, patch by patch (see `mimPredictions`). */
export interface MimPredictions {
  numImages: number;
  numPatches: number;
  /** [B·N] the teacher's dominant prototype on the unmasked image: the MIM target's mode. */
  teacher: Int32Array;
  /** [B·N] the student's dominant prototype on the masked image. */
  student: Int32Array;
  /** [B·N] 1 where the patch was masked for the student. */
  masked: Uint8Array;
  /** Fraction of masked patches where the student's top prototype is the teacher's. */
  agreement: number;
}

/** Any student/teacher pair with heads (an `IBOTModel`). */
export interface StudentTeacher {
  student: { backbone: { forward(x: tf.Tensor4D, o?: { masks?: tf.Tensor2D }): { tokens: tf.Tensor3D } }; head: { forwardTokens(t: tf.Tensor3D): { patch: tf.Tensor3D } } };
  teacher: { backbone: { forward(x: tf.Tensor4D): { tokens: tf.Tensor3D } }; head: { forwardTokens(t: tf.Tensor3D): { patch: tf.Tensor3D } } };
}

/**
 * MIM in action: the teacher sees the images, the student the same images
 * with `masks` (1 = masked) replaced by [MASK]; both heads' dominant patch
 * prototypes are compared on the masked patches. `images` must be normalised
 * as in training. Inputs are not disposed.
 */
export async function mimPredictions(model: StudentTeacher, images: tf.Tensor4D, masks: tf.Tensor2D): Promise<MimPredictions> {
  const [B, N] = masks.shape;
  const [t, s] = tf.tidy(() => [
    tf.argMax(model.teacher.head.forwardTokens(model.teacher.backbone.forward(images).tokens).patch, -1),
    tf.argMax(model.student.head.forwardTokens(model.student.backbone.forward(images, { masks }).tokens).patch, -1),
  ]);
  let teacher: Int32Array;
  let student: Int32Array;
  try {
    teacher = Int32Array.from(await t.data());
    student = Int32Array.from(await s.data());
  } finally {
    tf.dispose([t, s]);
  }
  const masked = Uint8Array.from(await masks.data(), (v) => (v > 0 ? 1 : 0));
  let hit = 0;
  let total = 0;
  for (let i = 0; i < B * N; i++) {
    if (!masked[i]) continue;
    total++;
    if (teacher[i] === student[i]) hit++;
  }
  return { numImages: B, numPatches: N, teacher, student, masked, agreement: total ? hit / total : 0 };
}

/**
 * Per image: the masked input, then the masked patches coloured green where
 * the student recovered the teacher's prototype and red where it did not.
 */
export function mimFigure(input: {
  images: HostImage[];
  predictions: MimPredictions;
  grid: [number, number];
  patchSize: number;
  labels?: string[];
  /** Draw only the first n images (the title's overall rate still covers all). */
  maxImages?: number;
  title?: string;
  cellSize?: number;
}): Figure {
  const p = input.predictions;
  const N = p.numPatches;
  if (input.images.length !== p.numImages) throw new Error(`mimFigure: ${input.images.length} images for predictions of ${p.numImages}`);
  const images = input.images.slice(0, input.maxImages ?? input.images.length);
  const outcome: Array<[number, string]> = [
    [0, 'rgba(0,0,0,0)'],
    [0.33, 'rgba(0,0,0,0)'],
    [0.34, 'rgba(230,40,40,0.65)'],
    [0.66, 'rgba(230,40,40,0.65)'],
    [0.67, 'rgba(30,200,80,0.65)'],
    [1, 'rgba(30,200,80,0.65)'],
  ];
  const panels: ImagePanel[] = [];
  images.forEach((img, b) => {
    const mask = p.masked.subarray(b * N, (b + 1) * N);
    const values = new Float32Array(N);
    let hit = 0;
    let total = 0;
    for (let k = 0; k < N; k++) {
      if (!mask[k]) continue;
      total++;
      const ok = p.teacher[b * N + k] === p.student[b * N + k];
      if (ok) hit++;
      values[k] = ok ? 2 : 1;
    }
    panels.push({ image: img, title: input.labels?.[b] ?? `image ${b}`, overlay: { values: mask, grid: input.grid, patchSize: input.patchSize, label: 'masked' } });
    panels.push({
      image: img,
      title: `${hit}/${total} recovered`,
      overlay: { values, grid: input.grid, patchSize: input.patchSize, colorscale: outcome, zmin: 0, zmax: 2, label: '1 wrong, 2 right' },
    });
  });
  return imageGridFigure(panels, {
    cols: Math.min(8, panels.length),
    cellSize: input.cellSize ?? 110,
    title: input.title ?? `masked patches: student's prototype = teacher's? (green yes, red no; ${(100 * p.agreement).toFixed(0)}% overall)`,
  });
}

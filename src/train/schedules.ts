/**
 * Schedules as the official DINO/iBOT code builds them: arrays indexed by
 * global iteration (lr, weight decay, teacher momentum) or by epoch
 * (teacher temperatures).
 */

/** numpy.linspace(start, stop, num) (endpoint included). */
export function linspace(start: number, stop: number, num: number): number[] {
  if (num <= 0) return [];
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : start + i * step));
}

export interface CosineScheduleConfig {
  /** Value at the end of warm-up (and start of the cosine). */
  base: number;
  /** Value reached at the last iteration. */
  final: number;
  epochs: number;
  itersPerEpoch: number;
  /** Linear warm-up from `startWarmup` to `base` over this many epochs. */
  warmupEpochs?: number;
  startWarmup?: number;
  /** Warm-up length in iterations; overrides warmupEpochs (DINO's `warmup_steps`). */
  warmupIters?: number;
}

/** DINO's `cosine_scheduler`: linear warm-up, then base→final along half a cosine; one value per iteration. */
export function cosineSchedule(c: CosineScheduleConfig): Float64Array {
  const total = Math.round(c.epochs * c.itersPerEpoch);
  const warmup = Math.min(total, c.warmupIters ?? Math.round((c.warmupEpochs ?? 0) * c.itersPerEpoch));
  const out = new Float64Array(total);
  const ramp = linspace(c.startWarmup ?? 0, c.base, warmup);
  for (let i = 0; i < warmup; i++) out[i] = ramp[i];
  const rest = total - warmup;
  for (let i = 0; i < rest; i++) out[warmup + i] = c.final + 0.5 * (c.base - c.final) * (1 + Math.cos((Math.PI * i) / rest));
  return out;
}

/**
 * iBOT's teacher temperature per epoch: linear warm-up then constant. With
 * `startEpoch` > 0 (the patch temperature when masked image modelling starts
 * late) the warm-up value holds until then and the warm-up begins there.
 */
export function teacherTempSchedule(warmup: number, final: number, warmupEpochs: number, epochs: number, startEpoch = 0): Float64Array {
  // Runs sized in minutes end mid-epoch: the last, partial epoch gets its own entry.
  const n = Math.max(1, Math.ceil(epochs - 1e-9));
  const out = new Float64Array(n);
  const ramp = linspace(warmup, final, warmupEpochs);
  for (let e = 0; e < n; e++) {
    const k = e - startEpoch;
    out[e] = k < 0 ? warmup : k < warmupEpochs ? ramp[k] : final;
  }
  return out;
}

/** The paper's linear scaling rule: lr = base_lr · batch / 256. */
export function scaledLr(baseLr: number, batchSize: number): number {
  return (baseLr * batchSize) / 256;
}

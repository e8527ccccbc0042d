/**
 * Training curves of a pretraining run: the loss and its two terms, the
 * schedules (learning rate, weight decay, teacher momentum, temperatures) and
 * the collapse monitors.
 *
 * How to read the monitors (DINO §5.3 / iBOT §3): the teacher's per-image
 * entropy falls as sharpening makes its outputs confident; the entropy of its
 * *mean* output must stay high (near ln K for K prototypes), otherwise every
 * image lands on the same few prototypes — collapse. Centering pushes the
 * mean entropy up, sharpening pushes the per-image entropy down; a healthy
 * run keeps them far apart.
 */
import * as fs from 'node:fs';
import type { PretrainEvent } from '../train/pretrain';
import type { StepStats } from '../train/ibot';
import { Figure, Layout, Trace, baseLayout, cellTitle, subplotGrid } from './figure';

/** One logged training step (a `step` event or a line of a run's `log.jsonl`). */
export type TrainingPoint = Omit<StepStats, 'ms' | 'maskedPatches'> & {
  step: number;
  epoch: number;
  lr: number;
  wd: number;
  momentum: number;
  imagesPerSec: number;
};

/** The steps of one run, filled from pretraining events or read from `log.jsonl`. */
export class TrainingHistory {
  readonly points: TrainingPoint[] = [];
  /** Steps the run was planned for (from the 'start' event), for the x range. */
  totalSteps?: number;
  /** Number of [CLS] prototypes K: ln K is the highest possible entropy, drawn as a reference line. */
  numPrototypes?: number;

  /** Record a pretraining event; returns true when it added a step. */
  push(ev: PretrainEvent): boolean {
    if (ev.type === 'start') {
      this.totalSteps = ev.totalSteps;
      this.numPrototypes = ev.config.model.head.outDim;
      return false;
    }
    if (ev.type !== 'step') return false;
    // A resumed run repeats the steps after its last checkpoint: the new values replace the old.
    while (this.points.length && this.points[this.points.length - 1].step >= ev.step) this.points.pop();
    this.points.push(pointOf(ev.step, ev.epoch, ev.lr, ev.wd, ev.momentum, ev.stats, ev.imagesPerSec));
    return true;
  }

  get last(): TrainingPoint | undefined {
    return this.points[this.points.length - 1];
  }

  /** Read a run folder's `log.jsonl` (written by `Pretrainer`); resumed runs keep the last record of each step. */
  static fromLog(file: string, numPrototypes?: number): TrainingHistory {
    if (!fs.existsSync(file)) throw new Error(`no training log at ${file}; a run writes log.jsonl into its outDir while it trains`);
    const h = new TrainingHistory();
    h.numPrototypes = numPrototypes;
    const byStep = new Map<number, TrainingPoint>();
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!line.trim()) return;
      let r: LogRecord;
      try {
        r = JSON.parse(line) as LogRecord;
      } catch {
        // A run killed mid-write leaves a partial last line; anything else is damage.
        if (i >= lines.length - 2) return;
        throw new Error(`${file}:${i + 1} is not JSON; the log is damaged`);
      }
      if (typeof r.step !== 'number' || !r.stats) return;
      byStep.set(r.step, pointOf(r.step, r.epoch, r.lr, r.wd, r.momentum, r.stats, r.imagesPerSec));
      if (typeof r.totalSteps === 'number') h.totalSteps = r.totalSteps;
    });
    h.points.push(...[...byStep.values()].sort((a, b) => a.step - b.step));
    return h;
  }
}

interface LogRecord {
  step: number;
  totalSteps?: number;
  epoch: number;
  lr: number;
  wd: number;
  momentum: number;
  imagesPerSec: number;
  stats: StepStats;
}

function pointOf(step: number, epoch: number, lr: number, wd: number, momentum: number, s: StepStats, imagesPerSec: number): TrainingPoint {
  return {
    step,
    epoch,
    lr,
    wd,
    momentum,
    loss: s.loss,
    clsLoss: s.clsLoss,
    patchLoss: s.patchLoss,
    teacherTemp: s.teacherTemp,
    teacherPatchTemp: s.teacherPatchTemp,
    agreement: s.agreement,
    teacherEntropy: s.teacherEntropy,
    teacherMeanEntropy: s.teacherMeanEntropy,
    gradNorm: s.gradNorm,
    // Logs written before the KoLeo option have no such field.
    koleoLoss: s.koleoLoss ?? 0,
    imagesPerSec,
  };
}

/**
 * Exponential moving average with bias correction (as TensorBoard's smoothing):
 * s_t = β·s_{t−1} + (1−β)·x_t, divided by 1 − β^t. β = 0 returns a copy.
 */
export function smooth(xs: ArrayLike<number>, beta: number): number[] {
  if (!(beta >= 0 && beta < 1)) throw new Error(`smooth: beta must be in [0, 1), got ${beta}`);
  const out: number[] = [];
  let s = 0;
  let w = 0;
  for (let i = 0; i < xs.length; i++) {
    s = beta * s + (1 - beta) * xs[i];
    w = beta * w + (1 - beta);
    out.push(s / w);
  }
  return out;
}

export interface CurvesOptions {
  title?: string;
  /** Smoothing β of the noisy curves (losses, entropies, agreement, grad norm). Default 0.6; 0 = raw. */
  smoothing?: number;
  /** K, for the ln K line on the entropy panel (default: the history's). */
  numPrototypes?: number;
  /** Figure size in pixels. Default 1100 × 560. */
  width?: number;
  height?: number;
}

interface Series {
  key: keyof TrainingPoint;
  name: string;
  color: string;
  dash?: string;
  smooth?: boolean;
}

interface Panel {
  title: string;
  series: Series[];
  log?: boolean;
  yTitle?: string;
}

const PANELS: Panel[] = [
  {
    title: 'loss',
    series: [
      { key: 'loss', name: 'total', color: '#222222', smooth: true },
      { key: 'clsLoss', name: '[CLS] (self-distillation)', color: '#1f77b4', smooth: true },
      { key: 'patchLoss', name: 'patch (MIM)', color: '#ff7f0e', smooth: true },
    ],
  },
  {
    title: 'teacher entropy (nats)',
    series: [
      { key: 'teacherEntropy', name: 'per-image entropy', color: '#d62728', smooth: true },
      { key: 'teacherMeanEntropy', name: 'entropy of the mean', color: '#2ca02c', smooth: true },
    ],
  },
  { title: 'student–teacher agreement', series: [{ key: 'agreement', name: 'agreement (top-1 prototype)', color: '#9467bd', smooth: true }] },
  { title: 'gradient norm (before clipping)', series: [{ key: 'gradNorm', name: 'grad norm', color: '#8c564b', smooth: true }] },
  {
    title: 'learning rate & weight decay',
    log: true,
    series: [
      { key: 'lr', name: 'learning rate', color: '#1f77b4' },
      { key: 'wd', name: 'weight decay', color: '#7f7f7f', dash: 'dot' },
    ],
  },
  {
    title: 'teacher temperatures',
    series: [
      { key: 'teacherTemp', name: 'τ teacher [CLS]', color: '#e377c2' },
      { key: 'teacherPatchTemp', name: 'τ teacher patch', color: '#17becf', dash: 'dash' },
    ],
  },
  { title: 'teacher EMA momentum', series: [{ key: 'momentum', name: 'momentum', color: '#bcbd22' }] },
  { title: 'throughput (images/s)', series: [{ key: 'imagesPerSec', name: 'images/s', color: '#7f7f7f', smooth: true }] },
];

/**
 * A 2 × 4 panel figure of a run: loss terms, collapse monitors (with ln K),
 * agreement, gradient norm, lr/wd (log scale), temperatures, momentum and
 * throughput against the step.
 */
export function trainingCurvesFigure(history: TrainingHistory | TrainingPoint[], opts: CurvesOptions = {}): Figure {
  const points = Array.isArray(history) ? history : history.points;
  const K = opts.numPrototypes ?? (Array.isArray(history) ? undefined : history.numPrototypes);
  const totalSteps = Array.isArray(history) ? undefined : history.totalSteps;
  const beta = opts.smoothing ?? 0.6;
  const cells = subplotGrid(2, 4, { hgap: 0.055, vgap: 0.2, top: 0.06 });
  const steps = points.map((p) => p.step);
  const data: Trace[] = [];
  const annotations: Record<string, unknown>[] = [];
  const layout: Layout = baseLayout(opts.title ?? 'iBOT pretraining', {
    width: opts.width ?? 1100,
    height: opts.height ?? 560,
    showlegend: true,
    legend: { orientation: 'h', x: 0, y: -0.1, font: { size: 10 } },
    margin: { l: 50, r: 20, t: 70, b: 70 },
  });
  PANELS.forEach((panel, i) => {
    const cell = cells[i];
    for (const s of panel.series) {
      const raw = points.map((p) => p[s.key]);
      data.push({
        type: 'scatter',
        mode: 'lines',
        x: steps,
        y: s.smooth && beta > 0 ? smooth(raw, beta) : raw,
        name: s.name,
        line: { color: s.color, width: 1.6, dash: s.dash ?? 'solid' },
        hovertemplate: `step %{x}: %{y:.4g}<extra>${s.name}</extra>`,
        xaxis: cell.xaxis,
        yaxis: cell.yaxis,
      });
    }
    if (i === 1 && K && K > 1) {
      const lnK = Math.log(K);
      data.push({
        type: 'scatter',
        mode: 'lines',
        x: steps.length ? [steps[0], Math.max(steps[steps.length - 1], totalSteps ?? 0)] : [0, 1],
        y: [lnK, lnK],
        name: `ln K = ${lnK.toFixed(2)} (uniform)`,
        line: { color: '#2ca02c', width: 1, dash: 'dot' },
        hoverinfo: 'skip',
        xaxis: cell.xaxis,
        yaxis: cell.yaxis,
      });
    }
    annotations.push(cellTitle(cell, panel.title, 12));
    layout[cell.xKey] = {
      domain: cell.x,
      anchor: cell.yaxis,
      title: cell.row === 1 ? { text: 'step', font: { size: 10 } } : undefined,
      range: totalSteps ? [0, totalSteps] : undefined,
      zeroline: false,
      gridcolor: '#eeeeee',
    };
    layout[cell.yKey] = {
      domain: cell.y,
      anchor: cell.xaxis,
      type: panel.log ? 'log' : 'linear',
      zeroline: false,
      gridcolor: '#eeeeee',
      exponentformat: 'power',
      // Entropies, agreement and temperatures read best from 0 (a constant temperature would otherwise get a ±1 range).
      rangemode: panel.log ? undefined : i === 1 || i === 2 || i === 5 ? 'tozero' : undefined,
    };
  });
  const last = points[points.length - 1];
  if (last) {
    annotations.push({
      text:
        `step ${last.step}${totalSteps ? `/${totalSteps}` : ''} · epoch ${last.epoch.toFixed(2)} · loss ${last.loss.toFixed(3)} ` +
        `(cls ${last.clsLoss.toFixed(3)}, mim ${last.patchLoss.toFixed(3)}) · ${last.imagesPerSec.toFixed(0)} img/s`,
      x: 1,
      y: 1.06,
      xref: 'paper',
      yref: 'paper',
      xanchor: 'right',
      yanchor: 'bottom',
      showarrow: false,
      font: { size: 11, color: '#555555' },
    });
  }
  layout.annotations = annotations;
  return { data, layout };
}

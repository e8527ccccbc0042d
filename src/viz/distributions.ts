/**
 * Probability distributions over prototypes, sorted: how peaked the teacher's
 * sharpened targets are compared with the student's predictions, and what
 * centering does. A uniform distribution is a flat line at 1/K; a collapsed
 * (one-hot) one is a single spike.
 */
import { Figure, Trace, baseLayout, categoryColor } from './figure';

export interface DistributionSeries {
  name: string;
  /** Probabilities over the K prototypes (any order; they are sorted here). */
  probs: ArrayLike<number>;
  color?: string;
  dash?: string;
}

export interface DistributionOptions {
  title?: string;
  /** Show only the largest `top` probabilities. Default all. */
  top?: number;
  /** Log-scale y axis (default true: tails span orders of magnitude). */
  logY?: boolean;
  width?: number;
  height?: number;
}

/** Entropy in nats of a probability vector (0·log 0 = 0). */
export function entropyOf(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) h -= p[i] * Math.log(p[i]);
  return h;
}

/** Each distribution sorted in decreasing order against its rank; legend shows its entropy. */
export function sortedProbabilitiesFigure(series: DistributionSeries[], opts: DistributionOptions = {}): Figure {
  if (series.length === 0) throw new Error('sortedProbabilitiesFigure: no distributions');
  const data: Trace[] = series.map((s, i) => {
    const sorted = Array.from(s.probs).sort((a, b) => b - a);
    const shown = opts.top ? sorted.slice(0, opts.top) : sorted;
    return {
      type: 'scatter',
      mode: 'lines',
      x: shown.map((_, r) => r + 1),
      y: shown,
      name: `${s.name} (H = ${entropyOf(s.probs).toFixed(2)} nats)`,
      line: { color: s.color ?? categoryColor(i), width: 2, dash: s.dash ?? 'solid' },
      hovertemplate: 'rank %{x}: p = %{y:.3g}<extra></extra>',
    };
  });
  const K = series[0].probs.length;
  return {
    data,
    layout: baseLayout(opts.title ?? 'probabilities over prototypes, sorted', {
      width: opts.width ?? 720,
      height: opts.height ?? 460,
      showlegend: true,
      legend: { orientation: 'h', x: 0, y: -0.3 },
      margin: { l: 60, r: 20, t: 50, b: 110 },
      xaxis: { title: { text: `prototype rank (of ${K})` }, type: 'log', gridcolor: '#eeeeee' },
      yaxis: { title: { text: 'probability' }, type: opts.logY === false ? 'linear' : 'log', gridcolor: '#eeeeee', exponentformat: 'power' },
    }),
  };
}

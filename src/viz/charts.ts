/**
 * Plain result charts: grouped bars (e.g. top-1 of each protocol for each
 * feature source) and lines over a numeric x (e.g. accuracy against the
 * fraction of labels), plus a gallery of cluster members.
 */
import { Figure, Trace, baseLayout, categoryColor } from './figure';
import { HostImage, ImagePanel, imageGridFigure } from './images';

export interface ChartSeries {
  name: string;
  /** One value per category (bars) or per x (lines); null = missing. */
  values: Array<number | null>;
  color?: string;
  dash?: string;
}

export interface ChartOptions {
  title?: string;
  yTitle?: string;
  xTitle?: string;
  /** Fixed y range, e.g. [0, 100] for accuracies. */
  yRange?: [number, number];
  width?: number;
  height?: number;
  /** Decimals of the value labels on bars. Default 1. */
  digits?: number;
}

/** Grouped bars: categories on x, one bar per series in each group, value printed on each bar. */
export function barChartFigure(categories: string[], series: ChartSeries[], opts: ChartOptions = {}): Figure {
  for (const s of series) {
    if (s.values.length !== categories.length) throw new Error(`barChartFigure: series '${s.name}' has ${s.values.length} values for ${categories.length} categories`);
  }
  const d = opts.digits ?? 1;
  const data: Trace[] = series.map((s, i) => ({
    type: 'bar',
    name: s.name,
    x: categories,
    y: s.values,
    text: s.values.map((v) => (v === null ? '' : v.toFixed(d))),
    textposition: 'outside',
    cliponaxis: false,
    marker: { color: s.color ?? categoryColor(i) },
    hovertemplate: `%{x}: %{y:.${d}f}<extra>${s.name}</extra>`,
  }));
  return {
    data,
    layout: baseLayout(opts.title, {
      barmode: 'group',
      width: opts.width ?? 760,
      height: opts.height ?? 420,
      showlegend: true,
      xaxis: { title: { text: opts.xTitle ?? '' } },
      yaxis: { title: { text: opts.yTitle ?? '' }, range: opts.yRange, gridcolor: '#eeeeee' },
    }),
  };
}

/** Lines with markers over a numeric x (log x with `logX`). */
export function lineChartFigure(x: number[], series: ChartSeries[], opts: ChartOptions & { logX?: boolean } = {}): Figure {
  for (const s of series) {
    if (s.values.length !== x.length) throw new Error(`lineChartFigure: series '${s.name}' has ${s.values.length} values for ${x.length} x positions`);
  }
  const data: Trace[] = series.map((s, i) => ({
    type: 'scatter',
    mode: 'lines+markers',
    name: s.name,
    x,
    y: s.values,
    connectgaps: true,
    line: { color: s.color ?? categoryColor(i), width: 2, dash: s.dash ?? 'solid' },
    marker: { size: 7 },
    hovertemplate: `%{x}: %{y:.2f}<extra>${s.name}</extra>`,
  }));
  return {
    data,
    layout: baseLayout(opts.title, {
      width: opts.width ?? 760,
      height: opts.height ?? 420,
      showlegend: true,
      xaxis: { title: { text: opts.xTitle ?? '' }, type: opts.logX ? 'log' : 'linear', tickvals: x, gridcolor: '#eeeeee' },
      yaxis: { title: { text: opts.yTitle ?? '' }, range: opts.yRange, gridcolor: '#eeeeee' },
    }),
  };
}

export interface ClusterGalleryInput {
  /** Image of each sample (same order as `assignments`). */
  images: (i: number) => HostImage;
  assignments: ArrayLike<number>;
  /** True labels, to name each cluster's majority class. */
  labels?: ArrayLike<number>;
  classNames?: string[];
  /** Members shown per cluster (the first ones in sample order). Default 8. */
  perCluster?: number;
  /** Clusters to show, in this order. Default: all, largest first. */
  clusters?: number[];
  /** Show at most this many clusters (after ordering). */
  maxClusters?: number;
  title?: string;
  cellSize?: number;
}

/** One row per cluster: its size, majority class, and some members. */
export function clusterGalleryFigure(input: ClusterGalleryInput): Figure {
  const per = input.perCluster ?? 8;
  const members = new Map<number, number[]>();
  for (let i = 0; i < input.assignments.length; i++) {
    const c = input.assignments[i];
    let m = members.get(c);
    if (!m) members.set(c, (m = []));
    m.push(i);
  }
  const order = (input.clusters ?? [...members.keys()].sort((a, b) => (members.get(b)?.length ?? 0) - (members.get(a)?.length ?? 0) || a - b)).slice(
    0,
    input.maxClusters ?? Infinity,
  );
  if (order.length === 0) throw new Error('clusterGalleryFigure: no clusters');
  const blank: HostImage = { width: 1, height: 1, channels: 1, data: new Float32Array([1]) };
  const panels: ImagePanel[] = [];
  const rowLabels: string[] = [];
  for (const c of order) {
    const m = members.get(c) ?? [];
    let label = `cluster ${c}<br>${m.length} images`;
    if (input.labels && m.length) {
      const counts = new Map<number, number>();
      for (const i of m) counts.set(input.labels[i], (counts.get(input.labels[i]) ?? 0) + 1);
      const [top, n] = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0];
      label += `<br>${Math.round((100 * n) / m.length)}% ${input.classNames?.[top] ?? `class ${top}`}`;
    }
    rowLabels.push(label);
    for (let j = 0; j < per; j++) panels.push(j < m.length ? { image: input.images(m[j]) } : { image: blank });
  }
  return imageGridFigure(panels, {
    cols: per,
    cellSize: input.cellSize ?? 70,
    rowLabels,
    frame: Math.max(...panels.map((p) => Math.max(p.image.width, p.image.height))),
    title: input.title ?? 'clusters and some of their members',
  });
}

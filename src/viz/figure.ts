/**
 * Plotly figure specs as plain data: every builder in `viz/` is a pure
 * function returning `{ data, layout }`, which `figureHtml` (a web page or a
 * notebook output) hands to `Plotly.newPlot`. Nothing here touches a DOM, so
 * figures are built and tested in Node and rendered wherever plotly.js runs.
 *
 * The types are a deliberately small, open subset of plotly's schema: the
 * keys a builder sets are documented by the builder, and anything plotly
 * accepts can be added by the caller (`layout.title`, `config`, …).
 */

/** One plotly trace (`scatter`, `heatmap`, `image`, …); values are JSON-able. */
export interface Trace {
  type: string;
  [key: string]: unknown;
}

/** A plotly layout object. */
export type Layout = Record<string, unknown>;

export interface Figure {
  data: Trace[];
  layout: Layout;
  /** plotly `config` (display options); `figureHtml` adds responsive defaults. */
  config?: Record<string, unknown>;
}

/** Which axes a trace draws on, e.g. `{ xaxis: 'x2', yaxis: 'y2' }`. */
export interface AxisRef {
  xaxis: string;
  yaxis: string;
}

/** Paper coordinates of one subplot cell. */
export interface Cell extends AxisRef {
  row: number;
  col: number;
  /** Horizontal domain in paper units [0, 1]. */
  x: [number, number];
  /** Vertical domain in paper units [0, 1] (0 = bottom). */
  y: [number, number];
  /** Layout keys of the axes, e.g. 'xaxis2' / 'yaxis2'. */
  xKey: string;
  yKey: string;
}

export interface GridOptions {
  /** Horizontal gap between cells, fraction of the width. Default 0.04. */
  hgap?: number;
  /** Vertical gap between cells, fraction of the height. Default 0.08. */
  vgap?: number;
  /** Space kept free at the top for the figure title, fraction of the height. Default 0. */
  top?: number;
}

/**
 * A rows × cols grid of independent subplots, row-major (cell 0 top-left).
 * Plotly's own `layout.grid` cannot place per-cell titles, so domains are
 * computed here and titles become annotations (`cellTitle`).
 */
export function subplotGrid(rows: number, cols: number, opts: GridOptions = {}): Cell[] {
  if (!(Number.isInteger(rows) && rows >= 1 && Number.isInteger(cols) && cols >= 1)) {
    throw new Error(`subplotGrid: rows and cols must be positive integers, got ${rows}×${cols}`);
  }
  const hgap = opts.hgap ?? 0.04;
  const vgap = opts.vgap ?? 0.08;
  const top = opts.top ?? 0;
  const w = (1 - hgap * (cols - 1)) / cols;
  const h = (1 - top - vgap * (rows - 1)) / rows;
  const cells: Cell[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c + 1;
      const suffix = i === 1 ? '' : String(i);
      const x0 = c * (w + hgap);
      const y1 = 1 - top - r * (h + vgap);
      cells.push({
        row: r,
        col: c,
        xaxis: `x${suffix}`,
        yaxis: `y${suffix}`,
        xKey: `xaxis${suffix}`,
        yKey: `yaxis${suffix}`,
        x: [round4(x0), round4(x0 + w)],
        y: [round4(Math.max(0, y1 - h)), round4(y1)],
      });
    }
  }
  return cells;
}

/** A title annotation centred above a cell. */
export function cellTitle(cell: Cell, text: string, size = 12): Record<string, unknown> {
  return {
    text,
    x: (cell.x[0] + cell.x[1]) / 2,
    y: cell.y[1],
    xref: 'paper',
    yref: 'paper',
    xanchor: 'center',
    yanchor: 'bottom',
    showarrow: false,
    font: { size },
  };
}

/** Qualitative colours (Plotly's D3 / Tableau-10 palette), one per class. */
export const CATEGORY_COLORS: readonly string[] = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

/** Colour of category i (cycles through `CATEGORY_COLORS`). */
export function categoryColor(i: number): string {
  return CATEGORY_COLORS[((i % CATEGORY_COLORS.length) + CATEGORY_COLORS.length) % CATEGORY_COLORS.length];
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** Layout defaults shared by every figure: white background, compact margins. */
export function baseLayout(title?: string, extra: Layout = {}): Layout {
  const layout: Layout = {
    paper_bgcolor: 'white',
    plot_bgcolor: 'white',
    font: { family: 'DejaVu Sans, Arial, sans-serif', size: 12 },
    margin: { l: 50, r: 20, t: title ? 60 : 30, b: 40 },
    showlegend: false,
    ...extra,
  };
  if (title) layout.title = { text: title, x: 0.02, xanchor: 'left', font: { size: 15 } };
  return layout;
}

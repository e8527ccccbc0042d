/**
 * Result tables and confusion matrices as HTML (self-contained, styled
 * inline so they look the same in Jupyter, an exported page and a browser)
 * and confusion matrices as plotly heatmaps.
 */
import { Figure, baseLayout } from './figure';

export type TableCell = string | number | boolean | null | undefined;
export type TableRow = Record<string, TableCell>;

/** Escape text for HTML element content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export interface TableOptions {
  /** Column order (default: keys of the first row, then any new keys in order of appearance). */
  columns?: string[];
  caption?: string;
  /** Decimals for non-integer numbers. Default 2. */
  digits?: number;
  /** Numeric columns whose largest value is shown in bold. */
  highlightMax?: string[];
}

function formatCell(v: TableCell, digits: number): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  }
  return escapeHtml(String(v));
}

const TABLE_STYLE = 'border-collapse:collapse;font-family:DejaVu Sans,Arial,sans-serif;font-size:13px;margin:6px 0';
const TH_STYLE = 'border-bottom:2px solid #444;padding:4px 10px;text-align:left;background:#f4f4f4';
const TD_STYLE = 'border-bottom:1px solid #ddd;padding:4px 10px';

/**
 * An HTML table of plain objects (e.g. `arquero` `table.objects()`); numbers
 * right-aligned with fixed decimals, text escaped.
 */
export function tableHtml(rows: TableRow[], opts: TableOptions = {}): string {
  const digits = opts.digits ?? 2;
  const columns = opts.columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const maxOf = new Map<string, number>();
  for (const c of opts.highlightMax ?? []) {
    const vals = rows.map((r) => r[c]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (vals.length) maxOf.set(c, Math.max(...vals));
  }
  const head = columns.map((c) => `<th style="${TH_STYLE}">${escapeHtml(c)}</th>`).join('');
  const body = rows
    .map((r) => {
      const tds = columns.map((c) => {
        const v = r[c];
        const num = typeof v === 'number';
        const bold = num && maxOf.get(c) === v ? ';font-weight:bold' : '';
        // Alignment is explicit: notebook front-ends right-align table cells by default.
        return `<td style="${TD_STYLE}${num ? ';text-align:right;font-variant-numeric:tabular-nums' : ';text-align:left'}${bold}">${formatCell(v, digits)}</td>`;
      });
      return `<tr>${tds.join('')}</tr>`;
    })
    .join('\n');
  const caption = opts.caption ? `<caption style="caption-side:top;text-align:left;font-weight:bold;padding:4px 0">${escapeHtml(opts.caption)}</caption>` : '';
  return `<table class="ibotlab-table" style="${TABLE_STYLE}">${caption}<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody></table>`;
}

function checkSquare(m: number[][], classNames: string[] | undefined, fn: string): void {
  const n = m.length;
  if (n === 0 || m.some((r) => r.length !== n)) throw new Error(`${fn}: the matrix must be square and non-empty`);
  if (classNames && classNames.length !== n) throw new Error(`${fn}: ${classNames.length} class names for a ${n}×${n} matrix`);
}

/** Each row divided by its sum (recall per true class); empty rows stay 0. */
export function rowNormalize(m: number[][]): number[][] {
  return m.map((r) => {
    const s = r.reduce((a, b) => a + b, 0);
    return r.map((v) => (s > 0 ? v / s : 0));
  });
}

export interface ConfusionOptions {
  classNames?: string[];
  /** 'row': show each true class's row as fractions (default); 'none': counts. */
  normalize?: 'row' | 'none';
  title?: string;
  /** Label of the predicted axis (e.g. 'cluster (matched)'). Default 'predicted'. */
  predictedLabel?: string;
  width?: number;
  height?: number;
}

/**
 * Confusion matrix heatmap: rows = true class (top to bottom), columns =
 * prediction; cell text shows the count and, normalised, the row fraction.
 */
export function confusionMatrixFigure(m: number[][], opts: ConfusionOptions = {}): Figure {
  checkSquare(m, opts.classNames, 'confusionMatrixFigure');
  const n = m.length;
  const names = opts.classNames ?? Array.from({ length: n }, (_, i) => String(i));
  const norm = (opts.normalize ?? 'row') === 'row';
  const z = norm ? rowNormalize(m) : m.map((r) => r.slice());
  // Empty cells stay blank so the pattern of errors stands out.
  const text = m.map((r, i) => r.map((v, j) => (v === 0 ? '' : norm ? `${Math.round(z[i][j] * 100)}%` : String(v))));
  const correct = m.reduce((s, r, i) => s + r[i], 0);
  const total = m.reduce((s, r) => s + r.reduce((a, b) => a + b, 0), 0);
  return {
    data: [
      {
        type: 'heatmap',
        z,
        x: names,
        y: names,
        text,
        texttemplate: '%{text}',
        textfont: { size: 10 },
        colorscale: [
          [0, '#f7fbff'],
          [0.25, '#c6dbef'],
          [0.5, '#6baed6'],
          [0.75, '#2171b5'],
          [1, '#08306b'],
        ],
        zmin: 0,
        zmax: norm ? 1 : undefined,
        customdata: m,
        hovertemplate: 'true %{y}<br>predicted %{x}<br>count %{customdata}<extra></extra>',
        colorbar: { title: { text: norm ? 'row fraction' : 'count' }, thickness: 12 },
      },
    ],
    layout: baseLayout(opts.title ?? `confusion matrix (accuracy ${total ? ((100 * correct) / total).toFixed(1) : '0'}%)`, {
      width: opts.width ?? 620,
      height: opts.height ?? 560,
      margin: { l: 110, r: 20, t: 60, b: 110 },
      xaxis: { title: { text: opts.predictedLabel ?? 'predicted' }, tickangle: -40, type: 'category' },
      yaxis: { title: { text: 'true class' }, autorange: 'reversed', type: 'category' },
    }),
  };
}

/** The confusion matrix as an HTML table of counts, diagonal highlighted. */
export function confusionMatrixHtml(m: number[][], opts: { classNames?: string[]; caption?: string } = {}): string {
  checkSquare(m, opts.classNames, 'confusionMatrixHtml');
  const names = opts.classNames ?? m.map((_, i) => String(i));
  const head = `<tr><th style="${TH_STYLE}">true \\ predicted</th>${names.map((c) => `<th style="${TH_STYLE}">${escapeHtml(c)}</th>`).join('')}</tr>`;
  const body = m
    .map(
      (r, i) =>
        `<tr><th style="${TH_STYLE}">${escapeHtml(names[i])}</th>${r
          .map((v, j) => `<td style="${TD_STYLE};text-align:right${i === j ? ';background:#dbe9f6;font-weight:bold' : ''}">${v}</td>`)
          .join('')}</tr>`,
    )
    .join('\n');
  const caption = opts.caption ? `<caption style="caption-side:top;text-align:left;font-weight:bold;padding:4px 0">${escapeHtml(opts.caption)}</caption>` : '';
  return `<table class="ibotlab-table" style="${TABLE_STYLE}">${caption}<thead>${head}</thead>\n<tbody>\n${body}\n</tbody></table>`;
}

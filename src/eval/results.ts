/**
 * Evaluation results as tables: every protocol's typed result becomes rows
 * of (features, protocol, setting, metric, value) in an arquero table, which
 * prints, saves as CSV/JSON, and pivots into a side-by-side comparison of
 * several feature sources (a checkpoint vs random init vs raw pixels).
 *
 * Units in the `value` column: accuracies and cluster scores (NMI, ARI, FMI,
 * ACC, purity) in percent, as the paper's tables; hyper-parameters (lr,
 * weight_decay, C, k) and counts (clusters, labelled) as they are.
 *
 * arquero is ESM-only; Node ≥ 20.19 loads it through `require()` from this
 * CommonJS build (and tsx/tslab, which compile to CommonJS, do the same).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as aq from 'arquero';
import type { ColumnTable } from 'arquero';
import type { EvalReport, EvalResult } from './protocols';
import type { ClusterResult } from './cluster';
import type { LinearProbeResult } from './linear';
import { makeDirs } from '../util/fs';

export type { ColumnTable } from 'arquero';

/** One number of one protocol for one feature source. */
export interface MetricRow {
  features: string;
  protocol: string;
  setting: string;
  metric: string;
  value: number;
}

export interface RowOptions {
  /** Also emit the sweep / per-C / per-k detail rows (default true for tables, false for comparisons). */
  details?: boolean;
}

export const ROW_COLUMNS = ['features', 'protocol', 'setting', 'metric', 'value'] as const;

function pct(fraction: number): string {
  return `${+(fraction * 100).toFixed(2)}%`;
}

/** The rows of one result. */
export function resultRows(result: EvalResult, features: string, options: RowOptions = {}): MetricRow[] {
  const details = options.details ?? true;
  const rows: MetricRow[] = [];
  const add = (protocol: string, setting: string, metric: string, value: number): void => {
    rows.push({ features, protocol, setting, metric, value });
  };
  switch (result.protocol) {
    case 'knn':
      for (const e of result.entries) {
        add('knn', `k=${e.k}`, 'top1', e.top1);
        add('knn', `k=${e.k}`, 'top5', e.top5);
      }
      break;
    case 'linear':
      add('linear', 'best-of-sweep', 'top1', result.top1);
      add('linear', 'best-of-sweep', 'val_top1', result.best.valTop1);
      add('linear', 'best-of-sweep', 'lr', result.best.lr);
      add('linear', 'best-of-sweep', 'weight_decay', result.best.weightDecay);
      if (details) for (const e of result.sweep) add('linear/sweep', `lr=${e.lr} wd=${e.weightDecay}`, 'val_top1', e.valTop1);
      break;
    case 'logistic':
      add('logistic', 'selected', 'top1', result.top1);
      add('logistic', 'selected', 'C', result.selectedC);
      if (details) {
        for (const e of result.entries) {
          add('logistic/C', `C=${e.C}`, 'top1', e.top1);
          if (e.valTop1 !== undefined) add('logistic/C', `C=${e.C}`, 'val_top1', e.valTop1);
        }
      }
      break;
    case 'semi': {
      const s = pct(result.fraction);
      add('semi/logistic', s, 'top1', result.logistic.top1);
      add('semi/logistic', s, 'C', result.logistic.selectedC);
      add('semi/knn', s, 'top1', result.knn.top1);
      if (details) {
        add('semi/knn', s, 'k', result.knn.k);
        add('semi/logistic', s, 'labelled', result.numLabelled);
        for (const e of result.logistic.entries) {
          add('semi/logistic/C', `${s} C=${e.C}`, 'top1', e.top1);
          if (e.valTop1 !== undefined) add('semi/logistic/C', `${s} C=${e.C}`, 'val_top1', e.valTop1);
        }
      }
      if (result.finetune) rows.push(...resultRows({ ...result.finetune, fraction: result.fraction }, features, options));
      break;
    }
    case 'finetune': {
      const protocol = result.fraction !== undefined ? 'semi/finetune' : 'finetune';
      const setting = result.fraction !== undefined ? pct(result.fraction) : `n=${result.numTrain}`;
      add(protocol, setting, 'top1', result.top1);
      if (details) {
        add(protocol, setting, 'steps', result.steps);
        if (result.trainLossBefore !== undefined) add(protocol, setting, 'train_loss_before', result.trainLossBefore);
        if (result.trainLossAfter !== undefined) add(protocol, setting, 'train_loss_after', result.trainLossAfter);
      }
      break;
    }
    case 'cluster': {
      const m = result.metrics;
      for (const [k, v] of [
        ['nmi', m.nmi],
        ['ari', m.ari],
        ['fmi', m.fmi],
        ['acc', m.acc],
        ['purity', m.purity],
      ] as const)
        add('cluster', result.method, k, 100 * v);
      add('cluster', result.method, 'clusters', result.numClusters);
      break;
    }
    default: {
      const never: never = result;
      throw new Error(`resultRows: unknown result ${JSON.stringify(never)}`);
    }
  }
  return rows;
}

/** Rows of every result of one or more reports. */
export function reportRows(reports: EvalReport | readonly EvalReport[], options: RowOptions = {}): MetricRow[] {
  const list = Array.isArray(reports) ? (reports as readonly EvalReport[]) : [reports as EvalReport];
  return list.flatMap((r) => r.results.flatMap((res) => resultRows(res, r.features, options)));
}

/** An arquero table with columns features, protocol, setting, metric, value. */
export function resultsTable(input: EvalReport | readonly EvalReport[] | readonly MetricRow[], options: RowOptions = {}): ColumnTable {
  const rows = isRowList(input) ? (input as readonly MetricRow[]) : reportRows(input as EvalReport | readonly EvalReport[], options);
  return aq.table({
    features: rows.map((r) => r.features),
    protocol: rows.map((r) => r.protocol),
    setting: rows.map((r) => r.setting),
    metric: rows.map((r) => r.metric),
    value: rows.map((r) => r.value),
  });
}

function isRowList(x: unknown): boolean {
  return Array.isArray(x) && (x.length === 0 || (typeof x[0] === 'object' && x[0] !== null && 'metric' in x[0] && 'value' in x[0]));
}

/**
 * Several feature sources side by side: one row per (protocol, setting,
 * metric), one value column per report in the order given (missing where a
 * source lacks that protocol, e.g. head clustering for pixels). Detail rows
 * are left out unless asked for.
 */
export function compareRuns(reports: readonly EvalReport[], options: RowOptions = {}): ColumnTable {
  const names = reports.map((r) => r.features);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`compareRuns: two reports are both named '${dup}'; give each feature source a distinct name`);
  const keyOf = (r: MetricRow): string => `${r.protocol}\u0000${r.setting}\u0000${r.metric}`;
  const order: MetricRow[] = [];
  const cells = new Map<string, Map<string, number>>();
  for (const row of reportRows(reports, { details: options.details ?? false })) {
    const key = keyOf(row);
    if (!cells.has(key)) {
      cells.set(key, new Map());
      order.push(row);
    }
    (cells.get(key) as Map<string, number>).set(row.features, row.value);
  }
  const cols: Record<string, Array<string | number | null>> = {
    protocol: order.map((r) => r.protocol),
    setting: order.map((r) => r.setting),
    metric: order.map((r) => r.metric),
  };
  for (const name of names) {
    if (name in cols) throw new Error(`compareRuns: a feature source may not be named '${name}' (a key column)`);
    cols[name] = order.map((r) => (cells.get(keyOf(r)) as Map<string, number>).get(name) ?? null);
  }
  return aq.table(cols);
}

/** The linear probe's sweep as a table: lr, weight_decay, val_top1 (and which one was chosen). */
export function sweepTable(result: LinearProbeResult): ColumnTable {
  return aq.table({
    lr: result.sweep.map((e) => e.lr),
    weight_decay: result.sweep.map((e) => e.weightDecay),
    val_top1: result.sweep.map((e) => e.valTop1),
    chosen: result.sweep.map((e) => e.lr === result.best.lr && e.weightDecay === result.best.weightDecay),
  });
}

/** A clustering's matched confusion matrix: one row per true class, one column per matched cluster (and 'unmatched'). */
export function confusionTable(result: ClusterResult): ColumnTable {
  const names = result.classNames ?? Array.from({ length: result.numClasses }, (_, i) => String(i));
  const cols: Record<string, Array<string | number>> = { class: names.slice() };
  names.forEach((name, j) => {
    cols[`→${name}`] = result.confusion.map((row) => row[j]);
  });
  if (result.unmatched.some((u) => u > 0)) cols.unmatched = result.unmatched.slice();
  return aq.table(cols);
}

export interface FormatOptions {
  /** Decimals for non-integer numbers. Default 2. */
  digits?: number;
  /** Show at most this many rows (default all). */
  maxRows?: number;
}

/** Plain-text rendering with aligned columns (numbers right-aligned), for terminals and logs. */
export function formatTable(table: ColumnTable, options: FormatOptions = {}): string {
  const digits = options.digits ?? 2;
  const names = table.columnNames();
  const n = Math.min(table.numRows(), options.maxRows ?? Infinity);
  const objs = table.objects({ limit: n }) as Array<Record<string, unknown>>;
  const fmt = (v: unknown): string => {
    if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) return '–';
    if (typeof v === 'number') {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return a !== 0 && (a < 10 ** -digits || a >= 1e7) ? v.toExponential(digits) : v.toFixed(digits);
    }
    return String(v);
  };
  const numeric = names.map((c) => objs.some((o) => typeof o[c] === 'number') && objs.every((o) => o[c] === null || o[c] === undefined || typeof o[c] === 'number'));
  const cells = objs.map((o) => names.map((c) => fmt(o[c])));
  const widths = names.map((c, j) => Math.max(c.length, ...cells.map((r) => r[j].length)));
  const line = (vals: string[]): string =>
    vals
      .map((v, j) => (numeric[j] ? v.padStart(widths[j]) : v.padEnd(widths[j])))
      .join('  ')
      .trimEnd();
  const out = [line(names), widths.map((w) => '─'.repeat(w)).join('  '), ...cells.map(line)];
  if (table.numRows() > n) out.push(`… ${table.numRows() - n} more rows`);
  return out.join('\n');
}

/** Save a table as CSV or JSON, chosen by the file extension (.csv, .json). */
export function saveTable(table: ColumnTable, file: string): void {
  const ext = path.extname(file).toLowerCase();
  let text: string;
  if (ext === '.csv') text = table.toCSV();
  else if (ext === '.json') text = JSON.stringify(table.objects(), null, 1);
  else throw new Error(`saveTable: unknown extension '${ext}' of ${file}; use .csv or .json`);
  makeDirs(path.dirname(path.resolve(file)));
  fs.writeFileSync(file, text.endsWith('\n') ? text : text + '\n');
}

/** Read back a table written by `saveTable` (CSV values typed as numbers where they parse). */
export function loadTable(file: string): ColumnTable {
  const text = fs.readFileSync(file, 'utf8');
  const ext = path.extname(file).toLowerCase();
  if (ext === '.csv') return aq.fromCSV(text);
  if (ext === '.json') return aq.from(JSON.parse(text) as object[]);
  throw new Error(`loadTable: unknown extension '${ext}' of ${file}; use .csv or .json`);
}

/** Table rows as typed metric rows (e.g. after `loadTable`). */
export function tableRows(table: ColumnTable): MetricRow[] {
  const missing = ROW_COLUMNS.filter((c) => !table.columnNames().includes(c));
  if (missing.length) throw new Error(`tableRows: the table lacks column(s) ${missing.join(', ')}; expected ${ROW_COLUMNS.join(', ')}`);
  return (table.objects() as Array<Record<string, unknown>>).map((o) => ({
    features: String(o.features),
    protocol: String(o.protocol),
    setting: String(o.setting),
    metric: String(o.metric),
    value: Number(o.value),
  }));
}

/** One JSON-ready object per report: every metric under 'protocol/setting/metric', plus the typed results. */
export function reportJson(report: EvalReport, options: RowOptions = {}): { features: string; dataset?: string; metrics: Record<string, number>; results: EvalResult[] } {
  const metrics: Record<string, number> = {};
  for (const r of reportRows(report, options)) metrics[`${r.protocol}/${r.setting}/${r.metric}`] = r.value;
  const out: { features: string; dataset?: string; metrics: Record<string, number>; results: EvalResult[] } = { features: report.features, metrics, results: report.results };
  if (report.dataset !== undefined) out.dataset = report.dataset;
  return out;
}

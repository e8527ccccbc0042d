/**
 * Showing figures in a TypeScript notebook (tslab kernel).
 *
 *   import * as viz from '../dist/src/viz';
 *   viz.show(viz.confusionMatrixFigure(m));        // a figure, a table, HTML…
 *   const live = new viz.LiveTrainingCurves();     // curves that redraw while a cell trains
 *   for await (const ev of trainer.run()) await live.push(ev);
 *
 * plotly.js is inlined into the notebook once, as its own (invisible) output
 * the first time anything is shown, so figures render offline and in the
 * exported HTML. Live figures use tslab's updatable display: one output that
 * is replaced by a redraw at most every `minIntervalMs`.
 */
import type { PretrainEvent } from '../train/pretrain';
import { Figure } from './figure';
import { CurvesOptions, TrainingHistory, trainingCurvesFigure } from './curves';
import { PageItem, figureHtml, plotlyScriptTag } from './html';
import { TableOptions, TableRow, tableHtml } from './tables';

/** The part of tslab's `Display` used here. */
export interface HtmlDisplay {
  html(s: string): void;
}

/** Where outputs go: tslab's module (`import * as tslab from 'tslab'`) or a stand-in. */
export interface DisplayApi {
  display: HtmlDisplay;
  /** A display that later calls overwrite in place. */
  newDisplay(): HtmlDisplay;
}

let api: DisplayApi | undefined;
let plotlyShown = false;

/**
 * Use this display API instead of tslab's (for other front-ends and tests).
 * Resets the plotly-loaded flag, since a new target has not seen it.
 */
export function useDisplay(d: DisplayApi | undefined): void {
  api = d;
  plotlyShown = false;
}

function displayApi(): DisplayApi {
  if (api) return api;
  try {
    // Resolved lazily: the library must load outside notebooks, where tslab is absent.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    api = require('tslab') as DisplayApi;
  } catch {
    throw new Error("showing figures needs the tslab kernel: run this in a notebook started with 'npm run lab' (or call viz.useDisplay)");
  }
  return api;
}

function emit(d: HtmlDisplay, html: string): void {
  try {
    d.html(html);
  } catch (e) {
    if ((e as Error).message === 'Not ready') {
      throw new Error('tslab display is not ready: viz.show works inside a running tslab notebook kernel only; outside, write a page with viz.writeStandaloneHtml');
    }
    throw e;
  }
}

/** Forget that plotly.js was sent (after reloading the page without restarting the kernel): the next figure sends it again. */
export function resetPlotly(): void {
  plotlyShown = false;
}

/** Send plotly.js to the notebook once. */
export function ensurePlotly(): void {
  if (plotlyShown) return;
  emit(displayApi().display, `${plotlyScriptTag()}<div class="ibotlab-plotly" style="display:none">plotly.js loaded</div>`);
  plotlyShown = true;
}

function isFigure(x: PageItem): x is Figure {
  return 'data' in x && 'layout' in x;
}

function itemHtml(it: PageItem): string {
  return isFigure(it) ? figureHtml(it) : it.html;
}

/** Show figures and HTML fragments, each as one output. */
export function show(...items: PageItem[]): void {
  if (items.some(isFigure)) ensurePlotly();
  const d = displayApi().display;
  for (const it of items) emit(d, itemHtml(it));
}

/** Show an HTML fragment. */
export function showHtml(html: string): void {
  emit(displayApi().display, html);
}

/** Show rows as an HTML table. */
export function showTable(rows: TableRow[], opts: TableOptions = {}): void {
  showHtml(tableHtml(rows, opts));
}

/** Let the kernel flush queued output messages to the front-end. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

export interface LiveOptions {
  /** Redraw at most this often (ms). Default 2000. */
  minIntervalMs?: number;
}

/** One output that shows the latest figure, redrawn at most every `minIntervalMs`. */
export class LiveFigure {
  private display?: HtmlDisplay;
  private lastDraw = -Infinity;
  private pending?: () => Figure;
  readonly minIntervalMs: number;
  /** Number of redraws sent. */
  draws = 0;

  constructor(opts: LiveOptions = {}) {
    this.minIntervalMs = opts.minIntervalMs ?? 2000;
  }

  /**
   * Show the figure now if the interval has passed (or `force`); otherwise keep
   * it for the next call or `flush`. A function is only called when drawing.
   */
  async update(fig: Figure | (() => Figure), force = false): Promise<boolean> {
    const make = typeof fig === 'function' ? fig : () => fig;
    const now = performance.now();
    if (!force && now - this.lastDraw < this.minIntervalMs) {
      this.pending = make;
      return false;
    }
    ensurePlotly();
    this.display ??= displayApi().newDisplay();
    emit(this.display, figureHtml(make()));
    this.pending = undefined;
    this.lastDraw = now;
    this.draws++;
    await yieldToEventLoop();
    return true;
  }

  /** Draw the last figure that was throttled away, if any. */
  async flush(): Promise<void> {
    if (this.pending) await this.update(this.pending, true);
  }
}

export interface LiveCurvesOptions extends LiveOptions {
  curves?: CurvesOptions;
  /** Start from an existing history (e.g. `TrainingHistory.fromLog` when resuming a run). */
  history?: TrainingHistory;
}

/**
 * Training curves that update while a cell trains: push every pretraining
 * event; the figure redraws every `minIntervalMs` and once more at 'done'.
 */
export class LiveTrainingCurves {
  readonly history: TrainingHistory;
  private readonly live: LiveFigure;
  private readonly curves: CurvesOptions;
  /** History length at the last draw. */
  private drawnPoints = -1;

  constructor(opts: LiveCurvesOptions = {}) {
    this.history = opts.history ?? new TrainingHistory();
    this.live = new LiveFigure(opts);
    this.curves = opts.curves ?? {};
  }

  get draws(): number {
    return this.live.draws;
  }

  /** The current figure. */
  figure(): Figure {
    return trainingCurvesFigure(this.history, this.curves);
  }

  async push(ev: PretrainEvent): Promise<void> {
    const added = this.history.push(ev);
    if (ev.type === 'done') await this.finish();
    else if (added) {
      const n = this.history.points.length;
      if (await this.live.update(() => this.figure())) this.drawnPoints = n;
    }
  }

  /** Draw the final state (unless the last draw already showed it). */
  async finish(): Promise<void> {
    if (this.live.draws > 0 && this.drawnPoints === this.history.points.length) return;
    await this.live.update(this.figure(), true);
    this.drawnPoints = this.history.points.length;
  }
}

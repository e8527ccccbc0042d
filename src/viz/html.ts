/**
 * Figures to HTML: a `<div>` plus a script calling `Plotly.newPlot`, and
 * standalone pages with plotly.js inlined (no CDN: pages and notebooks render
 * offline, e.g. on a cluster node or in CI's headless browser).
 *
 * Each figure div gets `data-ibotlab-rendered="ok"` once plotly has drawn it
 * (or "error" with a message), which the notebook browser check reads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { Figure } from './figure';
import { escapeHtml } from './tables';
import { makeDirs } from '../util/fs';

let plotlyCache: string | undefined;

/** The minified plotly.js bundle shipped in `plotly.js-dist-min` (read once). */
export function plotlySource(): string {
  if (plotlyCache === undefined) {
    let file: string;
    try {
      file = require.resolve('plotly.js-dist-min/plotly.min.js');
    } catch {
      throw new Error("plotly.js is missing: install the dependencies with 'npm ci' (package plotly.js-dist-min)");
    }
    plotlyCache = fs.readFileSync(file, 'utf8');
  }
  return plotlyCache;
}

/** `<script>` tag defining `window.Plotly`; the bundle has no `</script>` inside, checked here to be safe. */
export function plotlyScriptTag(): string {
  const src = plotlySource();
  if (/<\/script/i.test(src)) throw new Error('the plotly.js bundle contains </script> and cannot be inlined');
  return `<script type="text/javascript">${src}</script>`;
}

/** Significant digits kept for non-integer numbers in figure JSON (pixels and curves need no more). */
const DIGITS = 6;

/**
 * JSON of a figure for embedding in a `<script>`: typed arrays become arrays,
 * floats are shortened, `undefined` keys dropped and `</` escaped.
 */
export function figureJson(fig: Figure): string {
  const json = JSON.stringify(fig, (_key, value: unknown) => {
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return null;
      return Number.isInteger(value) ? value : Number(value.toPrecision(DIGITS));
    }
    if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return Array.from(value as unknown as ArrayLike<number>);
    return value;
  });
  return json.replace(/<\//g, '<\\/').replace(/<!--/g, '<\\!--');
}

export interface FigureHtmlOptions {
  /** Element id (default: random, so re-run cells never collide with old outputs). */
  id?: string;
  /** Wait this long (ms) for `window.Plotly` before giving up with a message. Default 15000. */
  waitMs?: number;
}

/** A figure as a div and a script that draws it as soon as `window.Plotly` exists. */
export function figureHtml(fig: Figure, opts: FigureHtmlOptions = {}): string {
  const id = opts.id ?? `ibotlab-fig-${crypto.randomBytes(6).toString('hex')}`;
  if (!/^[A-Za-z][\w-]*$/.test(id)) throw new Error(`figureHtml: id '${id}' must be letters, digits, '-' or '_' and start with a letter`);
  const w = typeof fig.layout.width === 'number' ? `width:${fig.layout.width}px;` : 'width:100%;';
  const h = typeof fig.layout.height === 'number' ? `height:${fig.layout.height}px;` : 'height:450px;';
  const config = { displaylogo: false, responsive: false, ...fig.config };
  const spec = figureJson({ data: fig.data, layout: fig.layout, config });
  const tries = Math.ceil((opts.waitMs ?? 15000) / 50);
  return (
    `<div class="ibotlab-figure" id="${id}" style="${w}${h}max-width:100%"></div>\n` +
    `<script type="text/javascript">(function(){var id=${JSON.stringify(id)},spec=${spec},tries=0;` +
    `function fail(el,msg){el.setAttribute('data-ibotlab-rendered','error');el.textContent=msg;}` +
    `function draw(){var el=document.getElementById(id);if(!el)return;` +
    `if(!window.Plotly){if(++tries<${tries})return void setTimeout(draw,50);` +
    `return fail(el,'plotly.js did not load: re-run the cell (in a notebook, call viz.resetPlotly() first)');}` +
    `window.Plotly.newPlot(el,spec.data,spec.layout,spec.config).then(function(){el.setAttribute('data-ibotlab-rendered','ok');},` +
    `function(e){fail(el,'plotly error: '+e);});}draw();})();</script>`
  );
}

/** Anything a page can hold: a figure, or a fragment of HTML (tables, headings, text). */
export type PageItem = Figure | { html: string };

function isFigure(x: PageItem): x is Figure {
  return 'data' in x && 'layout' in x;
}

export interface PageOptions {
  title?: string;
  /** Inline plotly.js (default true); false expects it to be loaded already. */
  inlinePlotly?: boolean;
}

/** A complete HTML page of figures and fragments, with plotly.js inlined: opens offline in any browser. */
export function standaloneHtml(items: PageItem[], opts: PageOptions = {}): string {
  const title = opts.title ?? 'ibotlab';
  const body = items.map((it, i) => (isFigure(it) ? figureHtml(it, { id: `ibotlab-fig-${i}` }) : it.html)).join('\n');
  return (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n' +
    `<title>${escapeHtml(title)}</title>\n` +
    '<style>body{font-family:DejaVu Sans,Arial,sans-serif;margin:16px;color:#222}.ibotlab-figure{margin:8px 0}</style>\n' +
    `${opts.inlinePlotly === false ? '' : plotlyScriptTag()}\n</head><body>\n<h2>${escapeHtml(title)}</h2>\n${body}\n</body></html>\n`
  );
}

/** Write `standaloneHtml` to a file (folders created); returns the absolute path. */
export function writeStandaloneHtml(file: string, items: PageItem[], opts: PageOptions = {}): string {
  const abs = path.resolve(file);
  makeDirs(path.dirname(abs));
  fs.writeFileSync(abs, standaloneHtml(items, opts));
  return abs;
}

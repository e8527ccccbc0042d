#!/usr/bin/env node
// @ts-check
/**
 * Open HTML pages in headless Chromium and check that every ibotlab figure
 * was drawn by plotly: each `<div class="ibotlab-figure">` must carry
 * `data-ibotlab-rendered="ok"` (set by the figure's script once
 * `Plotly.newPlot` resolved) and contain plotly's `main-svg`. Also takes a
 * full-page PNG screenshot.
 *
 *   node scripts/browser-check.js page.html [--screenshot out.png]
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { findChromium, CHROMIUM_APT } = require('./jupyter');

const BASE_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--hide-scrollbars',
  '--mute-audio',
];

/** Run chromium once with a fresh profile; returns stdout. */
function runChromium(chrome, args, timeoutMs) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-chromium-'));
  try {
    const r = spawnSync(chrome, [...BASE_FLAGS, `--user-data-dir=${profile}`, ...args], {
      encoding: 'utf8',
      timeout: timeoutMs,
      maxBuffer: 512 * 1024 * 1024,
    });
    if (r.error) throw new Error(`${chrome} failed to run: ${r.error.message}`);
    if (r.status !== 0) throw new Error(`${chrome} exited with ${r.status}: ${String(r.stderr).slice(-2000)}`);
    return r.stdout;
  } finally {
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** A script that records the rendered page height on <html> a moment after load (read back from --dump-dom). */
const PROBE =
  '<script>window.addEventListener("load",function(){setTimeout(function(){' +
  'document.documentElement.setAttribute("data-page-height",String(Math.ceil(document.documentElement.scrollHeight)));},3000);});</script>';

function attr(tag, name) {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  return m ? m[1] : undefined;
}

/**
 * Figures found in a rendered DOM: id, render state, whether plotly's SVG is inside,
 * and the error text a failed figure shows.
 */
function figuresInDom(dom) {
  const re = /<div\b[^>]*\bclass="ibotlab-figure\b[^"]*"[^>]*>/g;
  const hits = [];
  let m;
  while ((m = re.exec(dom)) !== null) hits.push({ tag: m[0], index: m.index });
  return hits.map((h, i) => {
    const end = i + 1 < hits.length ? hits[i + 1].index : dom.length;
    const inner = dom.slice(h.index + h.tag.length, end);
    const state = attr(h.tag, 'data-ibotlab-rendered') ?? 'pending';
    const svg = /class="main-svg"/.test(inner);
    return { id: attr(h.tag, 'id') ?? `#${i}`, state, svg, message: state === 'error' ? inner.replace(/<[^>]*>/g, '').slice(0, 300) : '' };
  });
}

/**
 * Check one HTML file: every figure rendered, at least `minFigures` of them,
 * screenshot written. Returns a report; `ok` is false on any problem.
 */
function checkPage(htmlFile, opts = {}) {
  const chrome = opts.chrome ?? findChromium();
  if (!chrome) throw new Error(`no Chromium found; install it: ${CHROMIUM_APT} (or set IBOTLAB_CHROMIUM)`);
  const budget = String(opts.budgetMs ?? 30000);
  const width = opts.width ?? 1280;
  const timeoutMs = opts.timeoutMs ?? 180000;
  // A copy with the height probe, next to the original so relative links still resolve.
  const probeFile = htmlFile.replace(/\.html?$/, '') + '.probe.html';
  const html = fs.readFileSync(htmlFile, 'utf8');
  fs.writeFileSync(probeFile, html.includes('</body>') ? html.replace(/<\/body>(?![\s\S]*<\/body>)/, `${PROBE}</body>`) : html + PROBE);
  try {
    const url = 'file://' + path.resolve(probeFile);
    const dom = runChromium(chrome, [`--virtual-time-budget=${budget}`, `--window-size=${width},1000`, '--dump-dom', url], timeoutMs);
    const figures = figuresInDom(dom);
    const hm = /data-page-height="(\d+)"/.exec(dom);
    const height = Math.min(opts.maxHeight ?? 16000, Math.max(600, hm ? Number(hm[1]) + 40 : 4000));
    let screenshot;
    if (opts.screenshot) {
      fs.mkdirSync(path.dirname(opts.screenshot), { recursive: true });
      runChromium(chrome, [`--virtual-time-budget=${budget}`, `--window-size=${width},${height}`, `--screenshot=${path.resolve(opts.screenshot)}`, url], timeoutMs);
      if (!fs.existsSync(opts.screenshot)) throw new Error(`chromium wrote no screenshot to ${opts.screenshot}`);
      screenshot = opts.screenshot;
    }
    const bad = figures.filter((f) => f.state !== 'ok' || !f.svg);
    const problems = bad.map((f) => `figure ${f.id}: ${f.state}${f.svg ? '' : ', no plotly svg'}${f.message ? ` (${f.message})` : ''}`);
    const minFigures = opts.minFigures ?? 0;
    if (figures.length < minFigures) problems.push(`found ${figures.length} figure(s), expected at least ${minFigures}`);
    return { file: htmlFile, figures: figures.length, rendered: figures.length - bad.length, height, screenshot, problems, ok: problems.length === 0 };
  } finally {
    fs.rmSync(probeFile, { force: true });
  }
}

module.exports = { checkPage, figuresInDom, runChromium };

if (require.main === module) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    console.error('usage: node scripts/browser-check.js page.html [--screenshot out.png]');
    process.exit(2);
  }
  const si = args.indexOf('--screenshot');
  const report = checkPage(file, { screenshot: si >= 0 ? args[si + 1] : undefined });
  console.log(JSON.stringify(report, null, 1));
  process.exit(report.ok ? 0 : 1);
}

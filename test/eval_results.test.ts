import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EvalReport } from '../src/eval/protocols';
import { compareRuns, confusionTable, formatTable, loadTable, reportJson, resultRows, resultsTable, saveTable, sweepTable, tableRows } from '../src/eval/results';
import { evaluateClusters } from '../src/eval/cluster';

function report(name: string, knnTop1: number, withHead: boolean): EvalReport {
  const results: EvalReport['results'] = [
    { protocol: 'knn', temperature: 0.07, entries: [{ k: 20, top1: knnTop1, top5: 99 }], numTrain: 100, numTest: 50, seconds: 0.1 },
    {
      protocol: 'linear',
      top1: 81.5,
      best: { lr: 0.01, weightDecay: 1e-4, valTop1: 80 },
      sweep: [
        { lr: 0.001, weightDecay: 1e-4, valTop1: 70 },
        { lr: 0.01, weightDecay: 1e-4, valTop1: 80 },
      ],
      optimizer: 'sgd',
      epochs: 30,
      batchSize: 256,
      standardize: true,
      numTrain: 100,
      numVal: 10,
      numTest: 50,
      seconds: 1,
    },
    evaluateClusters([0, 0, 1, 1], [1, 1, 0, 1], 'kmeans'),
  ];
  if (withHead) results.push(evaluateClusters([0, 0, 1, 1], [4, 4, 9, 9], 'head-argmax'));
  return { features: name, dataset: 'toy', results };
}

test('results become (features, protocol, setting, metric, value) rows in percent', async () => {
  const rows = resultRows(report('a', 77, false).results[2], 'a');
  // labels [0,0,1,1] vs clusters [1,1,0,1]: 3 of 4 matched, one cluster pure and one mixed.
  assert.deepEqual(
    rows.map((r) => [r.protocol, r.setting, r.metric]),
    [
      ['cluster', 'kmeans', 'nmi'],
      ['cluster', 'kmeans', 'ari'],
      ['cluster', 'kmeans', 'fmi'],
      ['cluster', 'kmeans', 'acc'],
      ['cluster', 'kmeans', 'purity'],
      ['cluster', 'kmeans', 'clusters'],
    ],
  );
  assert.equal(rows.find((r) => r.metric === 'acc')?.value, 75);
  assert.equal(rows.find((r) => r.metric === 'clusters')?.value, 2);
  const t = resultsTable(report('a', 77, false));
  assert.deepEqual(t.columnNames(), ['features', 'protocol', 'setting', 'metric', 'value']);
  // knn: 2 rows; linear: 4 + 2 sweep rows; kmeans: 6 rows.
  assert.equal(t.numRows(), 14);
  assert.equal(resultsTable(report('a', 77, false), { details: false }).numRows(), 12);
});

test('CSV and JSON round trips keep every row', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-results-'));
  const t = resultsTable([report('a', 77.25, true), report('b', 60, false)]);
  for (const ext of ['csv', 'json']) {
    const file = path.join(dir, `r.${ext}`);
    saveTable(t, file);
    const back = tableRows(loadTable(file));
    assert.deepEqual(back, tableRows(t), ext);
  }
  assert.throws(() => saveTable(t, path.join(dir, 'r.xlsx')), /use \.csv or \.json/);
  fs.rmSync(dir, { recursive: true });
});

test('compareRuns puts feature sources side by side, with gaps where a protocol is missing', async () => {
  const t = compareRuns([report('checkpoint', 90, true), report('pixels', 78.8, false)]);
  assert.deepEqual(t.columnNames(), ['protocol', 'setting', 'metric', 'checkpoint', 'pixels']);
  const rows = t.objects() as Array<Record<string, unknown>>;
  const knn = rows.find((r) => r.protocol === 'knn' && r.metric === 'top1');
  assert.deepEqual(knn, { protocol: 'knn', setting: 'k=20', metric: 'top1', checkpoint: 90, pixels: 78.8 });
  const head = rows.find((r) => r.setting === 'head-argmax' && r.metric === 'acc');
  assert.equal(head?.checkpoint, 100);
  assert.equal(head?.pixels, null);
  assert.ok(!rows.some((r) => r.protocol === 'linear/sweep'), 'detail rows are left out by default');
  assert.throws(() => compareRuns([report('x', 1, false), report('x', 2, false)]), /both named 'x'/);
  const text = formatTable(t);
  assert.match(text.split('\n')[0], /^protocol\s+setting\s+metric\s+checkpoint\s+pixels$/);
  assert.ok(text.includes('–'), 'missing values print as a dash');
});

test('sweep and confusion tables, plain-text formatting and the JSON report', async () => {
  const r = report('a', 77, true);
  const sweep = sweepTable(r.results[1] as Parameters<typeof sweepTable>[0]);
  assert.deepEqual(sweep.array('chosen'), [false, true]);
  const conf = confusionTable(r.results[2] as Parameters<typeof confusionTable>[0]);
  assert.deepEqual(conf.columnNames(), ['class', '→0', '→1']);
  // Cluster 1 (3 samples: two of class 0, one of class 1) is matched to class 0, cluster 0 to class 1.
  assert.deepEqual(conf.objects(), [
    { class: '0', '→0': 2, '→1': 0 },
    { class: '1', '→0': 1, '→1': 1 },
  ]);
  const lines = formatTable(resultsTable(r, { details: false }), { digits: 1 }).split('\n');
  assert.equal(lines.length, 2 + 2 + 4 + 6 + 6);
  // Numbers are right-aligned in their column: every value cell ends at the same column.
  const ends = lines.slice(2).map((l) => l.length);
  assert.ok(ends.every((e) => e === ends[0]), 'value column right-aligned');
  const j = reportJson(r);
  assert.equal(j.features, 'a');
  assert.equal(j.metrics['knn/k=20/top1'], 77);
  assert.equal(j.metrics['cluster/head-argmax/acc'], 100);
  assert.equal(JSON.parse(JSON.stringify(j)).results.length, 4);
});

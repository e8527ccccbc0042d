import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { setup } from './helpers';
import * as lab from '../src/lab';
import { IBOTModel } from '../src/train/ibot';

before(setup);

describe('notebook settings and the shared checkpoint', () => {
  it('reads IBOTLAB_QUICK, IBOTLAB_RUNS and IBOTLAB_CHECKPOINT', async () => {
    const q = lab.notebookSettings({ IBOTLAB_QUICK: '1', IBOTLAB_RUNS: '/tmp/r' });
    assert.equal(q.quick, true);
    assert.equal(q.pretrainDir, path.join('/tmp/r', 'notebook-fashion-mnist-quick'));
    const f = lab.notebookSettings({ IBOTLAB_QUICK: '0' });
    assert.equal(f.quick, false);
    assert.equal(path.basename(f.pretrainDir), 'notebook-fashion-mnist');
    assert.equal(lab.notebookSettings({ IBOTLAB_CHECKPOINT: '/x/run' }).pretrainDir, '/x/run');
  });

  it('the quick recipe is consistent: whole epochs, matching crop counts in the loss', async () => {
    const c = lab.notebookPretrainConfig(true);
    assert.equal(c.model.vit.depth, 2);
    assert.equal(c.model.vit.embedDim, 64);
    assert.equal(c.preset, 'fashion-mnist-quick');
    const s = lab.notebookSettings({ IBOTLAB_QUICK: '1' });
    assert.equal(s.quickSteps % Math.floor(s.quickPretrainImages / c.batchSize), 0);
  });

  it('ensurePretrained trains when no checkpoint exists, then loads it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ibotlab-nb-'));
    const base = lab.notebookSettings({ IBOTLAB_QUICK: '1', IBOTLAB_RUNS: dir });
    const s = { ...base, quickSteps: 2, quickPretrainImages: 64, trainImages: 64 };
    const lines: string[] = [];
    const a = await lab.ensurePretrained(s, { log: (l) => lines.push(l) });
    assert.ok(lines[0].startsWith('no checkpoint'));
    assert.equal(a.state.step, 2);
    assert.ok(a.normalize && a.normalize.mean.length === 1);
    const b = await lab.ensurePretrained(s, { log: (l) => lines.push(l) });
    assert.ok(lines[lines.length - 1].startsWith('using the checkpoint'));
    // Same weights both times.
    const w = (m: IBOTModel): number[] => Array.from(m.teacher.backbone.params.params[0].variable.dataSync());
    assert.deepEqual(w(a.model), w(b.model));
    a.model.dispose();
    b.model.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

});

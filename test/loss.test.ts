import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setup } from './helpers';
import { IBOTLoss, LOSS_DEFAULTS } from '../src/train/loss';
import { teacherTempSchedule } from '../src/train/schedules';
import { modelConfig } from '../src/train/config';
import { pretrainPreset } from '../src/train/presets';
import { maskingConfig } from '../src/augment/masking';

before(setup);

const close = (a: ArrayLike<number>, e: number[]) => {
  assert.equal(a.length, e.length);
  for (let i = 0; i < e.length; i++) assert.ok(Math.abs(a[i] - e[i]) < 1e-12, `[${i}] ${a[i]} vs ${e[i]}`);
};

describe('teacher temperatures when masked image modelling starts late (official pred_start_epoch → mim_start_epoch)', () => {
  it('the warm-up value holds until the start, then the linear warm-up, then the final value', async () => {
    // linspace(0.04, 0.07, 3) = 0.04, 0.055, 0.07, beginning at epoch 2.
    close(teacherTempSchedule(0.04, 0.07, 3, 8, 2), [0.04, 0.04, 0.04, 0.055, 0.07, 0.07, 0.07, 0.07]);
    close(teacherTempSchedule(0.04, 0.07, 3, 8), [0.04, 0.055, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07]);
  });

  it('IBOTLoss delays only the patch temperature; the [CLS] one warms up from epoch 0', async () => {
    const loss = new IBOTLoss({ ...LOSS_DEFAULTS, warmupTeacherTemp: 0.04, teacherTemp: 0.07, warmupTeacherPatchTemp: 0.04, teacherPatchTemp: 0.07, warmupTeacherTempEpochs: 3, outDim: 4, patchOutDim: 4, globalCrops: 2, localCrops: 0, epochs: 8, mimStartEpoch: 2 });
    const cls = [0, 1, 2, 3, 4].map((e) => loss.teacherTemp(e));
    const patch = [0, 1, 2, 3, 4].map((e) => loss.teacherPatchTemp(e));
    loss.dispose();
    close(cls, [0.04, 0.055, 0.07, 0.07, 0.07]);
    close(patch, [0.04, 0.04, 0.04, 0.055, 0.07]);
  });

  it("a run's masking.predStartEpoch reaches the loss through the model config", async () => {
    const cfg = pretrainPreset('fashion-mnist', { epochs: 20, masking: maskingConfig({ predStartEpoch: 5 }) });
    assert.equal(modelConfig(cfg).loss.mimStartEpoch, 5);
  });
});

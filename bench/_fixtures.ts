import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend';
import { checkFixtureFile } from '../src/reference/fixtures';
import { hasFusedKernels } from '../src/kernels';
(async () => {
  await initBackend({ quiet: true });
  console.log('fused kernels:', hasFusedKernels(), tf.getBackend());
  for (const f of ['vit_forward', 'ibot_head', 'ibot_loss']) {
    const rs = checkFixtureFile(`/work/shared/reference/${f}.json`);
    for (const r of rs) console.log(f, JSON.stringify(r).slice(0, 200));
  }
})();

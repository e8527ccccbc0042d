import * as tf from '@tensorflow/tfjs-core';
import { registerWasmKernels, kernelsFor } from '../src/kernels';
require('@tensorflow/tfjs-backend-wasm');
(async () => {
  await tf.setBackend('wasm');
  registerWasmKernels();
  const k = kernelsFor(tf.backend() as any);
  const n = 6400 * 512;
  for (const [name, x] of [['randn', tf.randomNormal([n])], ['zeros', tf.zeros([n])], ['ones', tf.ones([n])]] as [string, tf.Tensor][]) {
    const y = tf.zeros([n]);
    const px = k.offset(x.dataId), py = k.offset(y.dataId);
    for (const op of ['exp', 'gelu'] as const) {
      const ts: number[] = [];
      for (let i = 0; i < 10; i++) { const t0 = performance.now(); (k.exports as any)[op](px, py, n); ts.push(performance.now() - t0); }
      ts.sort((a, b) => a - b);
      console.log(name, op, ts.slice(0, 5).map((v) => v.toFixed(2)).join(' '));
    }
    const ts: number[] = [];
    for (let i = 0; i < 10; i++) { const t0 = performance.now(); k.exports.gelu_grad(px, px, py, n); ts.push(performance.now() - t0); }
    ts.sort((a, b) => a - b);
    console.log(name, 'gelu_grad', ts.slice(0, 5).map((v) => v.toFixed(2)).join(' '));
  }
})();

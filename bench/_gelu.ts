import * as tf from '@tensorflow/tfjs-core';
import { registerWasmKernels, fusedGelu, fusedGeluGrad } from '../src/kernels';
import { initBackend } from '../src/backend';
(async () => {
  const threads = Number(process.env.T ?? 2);
  await initBackend({ quiet: true, threads });
  registerWasmKernels({ threads });
  const x = tf.randomNormal([6400, 512]);
  const dy = tf.randomNormal([6400, 512]);
  const w = tf.randomNormal([512, 128]);
  const t = (name: string, f: () => tf.Tensor) => {
    const ts: number[] = [];
    for (let i = 0; i < 15; i++) { const t0 = performance.now(); f().dispose(); ts.push(performance.now() - t0); }
    ts.sort((a, b) => a - b); console.log(name.padEnd(20), ts.slice(0, 8).map((v) => v.toFixed(1)).join(' '));
  };
  t('gelu', () => fusedGelu(x));
  t('geluGrad', () => fusedGeluGrad(x, dy));
  t('exp', () => tf.exp(x));
  t('mul', () => tf.mul(x, dy));
  t('add', () => tf.add(x, dy));
  t('fused mm 512x128', () => tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: tf.zeros([128]) }));
  t('dW transA', () => tf.matMul(x as tf.Tensor2D, dy as tf.Tensor2D, true, false));
})();

/**
 * Micro-benchmark: ms per forward+backward of the tiny ViT (`vit-tiny-28`:
 * width 128, depth 4, 4 heads, 49 patches) on the active backend, with a
 * plain supervised-style loss on its [CLS] token. `npm run bench:vit [-- --batch 64 --steps 8]`.
 */
import * as tf from '@tensorflow/tfjs-core';
import '../src/util/gradients';
import { describeBackend, initBackend } from '../src/backend';
import { VisionTransformer, vitConfig } from '../src/model/vit';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function main(): Promise<void> {
  const info = await initBackend({ quiet: true });
  const B = arg('batch', 64);
  const steps = arg('steps', 8);
  const vit = new VisionTransformer(vitConfig('vit-tiny-28'));
  const x = tf.randomNormal([B, 28, 28, 1]) as tf.Tensor4D;
  const r = tf.randomNormal([B, 128]);
  const vars = vit.params.params.map((p) => p.variable);
  const times: number[] = [];
  for (let i = 0; i < steps + 2; i++) {
    const t0 = performance.now();
    const { value, grads } = tf.variableGrads(() => {
      const { cls } = VisionTransformer.split(vit.forward(x, { training: true }).tokens);
      return tf.sum(tf.mul(cls, r)) as tf.Scalar;
    }, vars);
    await value.data();
    tf.dispose([value, ...Object.values(grads)]);
    if (i >= 2) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)];
  console.log(`vit-tiny-28 forward+backward, batch ${B}, ${describeBackend(info)}: median ${med.toFixed(1)} ms (fastest ${times[0].toFixed(1)} ms) over ${steps} steps; ${((B * 1000) / med).toFixed(0)} images/s`);
  vit.dispose();
  tf.dispose([x, r]);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});

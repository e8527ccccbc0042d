import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { clippedAdamW, setup } from './helpers';
import { AdamW, clipGlobalNorm, clipPerParam, freezeLastLayer } from '../src/train/optim';
import { emaUpdate } from '../src/train/teacher';
import { Param, ParamSet, usesWeightDecay } from '../src/model/params';

before(setup);

const close = (a: ArrayLike<number>, e: number[], tol = 1e-6) => {
  assert.equal(a.length, e.length);
  for (let i = 0; i < e.length; i++) assert.ok(Math.abs(a[i] - e[i]) <= tol, `[${i}] ${a[i]} vs ${e[i]}`);
};

function params(): { set: ParamSet; list: Param[] } {
  const set = new ParamSet();
  set.add('a.weight', tf.tensor2d([[1, -2]]), 'same', [1, 2]);
  set.add('a.bias', tf.tensor1d([1]), 'same', [1]);
  return { set, list: set.params };
}

describe('AdamW (torch.optim.AdamW semantics)', () => {
  it('two steps match the hand-derived values; biases and 1-D parameters get no weight decay', async () => {
    const { set, list } = params();
    assert.deepEqual(list.map(usesWeightDecay), [true, false]);
    const opt = new AdamW(list);
    const grads = () => new Map<string, tf.Tensor>([['a.weight', tf.tensor2d([[0.5, -1]])], ['a.bias', tf.tensor1d([2])]]);
    // Step 1: w·(1−lr·wd) = [0.999, −1.998]; m̂/√v̂ = sign(g) → −lr·sign(g): [0.899, −1.898]; bias 1 − 0.1 = 0.9.
    let g = grads();
    opt.step(g, 0.1, 0.01);
    tf.dispose([...g.values()]);
    close(set.get('a.weight').dataSync(), [0.899, -1.898]);
    close(set.get('a.bias').dataSync(), [0.9]);
    // Step 2 with the same gradient: decay to [0.898101, −1.896102], then again −0.1·sign(g).
    g = grads();
    opt.step(g, 0.1, 0.01);
    tf.dispose([...g.values()]);
    close(set.get('a.weight').dataSync(), [0.798101, -1.796102]);
    close(set.get('a.bias').dataSync(), [0.8]);
    // State round trip (checkpoints) keeps steps and moments.
    const st = await opt.getState();
    assert.deepEqual(st.steps, { 'a.weight': 2, 'a.bias': 2 });
    close(st.m['a.weight'], [0.095, -0.19]);
    const n0 = tf.memory().numTensors;
    opt.setState(st);
    assert.equal(tf.memory().numTensors, n0);
    opt.dispose();
    set.dispose();
  });

  it('a parameter without a gradient this step is untouched (no decay, no moment update)', async () => {
    const { set, list } = params();
    const opt = new AdamW(list);
    const g = new Map<string, tf.Tensor>([['a.bias', tf.tensor1d([2])]]);
    opt.step(g, 0.1, 0.5);
    tf.dispose([...g.values()]);
    close(set.get('a.weight').dataSync(), [1, -2]);
    assert.equal((await opt.getState()).steps['a.weight'], undefined);
    opt.dispose();
    set.dispose();
  });
});

describe('gradient clipping and freezing', () => {
  it('per-parameter clipping scales each gradient above the bound to norm clip (official clip_gradients)', async () => {
    const g = new Map<string, tf.Tensor>([['x', tf.tensor1d([3, 4])], ['y', tf.tensor1d([0.6, 0.8])]]);
    const { grads, norms } = clipPerParam(g, 2.5);
    close(norms.dataSync(), [5, 1], 1e-6);
    norms.dispose();
    close(grads.get('x')!.dataSync(), [1.5, 2], 1e-5);
    close(grads.get('y')!.dataSync(), [0.6, 0.8]);
    tf.dispose([...grads.values()]);
  });

  it('clipping factors applied by AdamW give the same update as clipped gradients, bit for bit (flat and per-parameter paths)', async () => {
    for (const missing of [undefined, 'b.weight']) {
      const n0 = tf.memory().numTensors;
      assert.deepEqual(await clippedAdamW(true, missing), await clippedAdamW(false, missing), `missing ${missing}`);
      assert.equal(tf.memory().numTensors, n0, 'no tensor left behind');
    }
  });

  it('global-norm clipping scales all gradients together', async () => {
    const g = new Map<string, tf.Tensor>([['x', tf.tensor1d([3, 4])], ['y', tf.tensor1d([12])]]);
    const { grads, norm } = clipGlobalNorm(g, 6.5);
    assert.ok(Math.abs(norm.dataSync()[0] - 13) < 1e-5);
    norm.dispose();
    close(grads.get('x')!.dataSync(), [1.5, 2], 1e-5);
    close(grads.get('y')!.dataSync(), [6], 1e-5);
    tf.dispose([...grads.values()]);
  });

  it('the prototypes (last_layer, last_layer2) get no gradient before freezeLastLayer epochs, then do', async () => {
    const mk = () => new Map<string, tf.Tensor>([['head.last_layer.weight_v', tf.ones([2])], ['head.last_layer2.weight_v', tf.ones([2])], ['head.mlp.0.weight', tf.ones([2])]]);
    const early = freezeLastLayer(mk(), 0.5, 1);
    assert.deepEqual([...early.keys()], ['head.mlp.0.weight']);
    const late = freezeLastLayer(mk(), 1, 1);
    assert.equal(late.size, 3);
    tf.dispose([...early.values(), ...late.values()]);
  });

  it('EMA teacher update: θt ← m·θt + (1−m)·θs on same-named parameters', async () => {
    const t = new ParamSet();
    const s = new ParamSet();
    t.add('w', tf.tensor1d([1, 2]), 'same', [2]);
    s.add('w', tf.tensor1d([3, -2]), 'same', [2]);
    t.add('only_teacher', tf.tensor1d([5]), 'same', [1]);
    emaUpdate(t, s, 0.9);
    close(t.get('w').dataSync(), [1.2, 1.6], 1e-6);
    close(t.get('only_teacher').dataSync(), [5]);
    t.dispose();
    s.dispose();
  });
});

#!/usr/bin/env node
/**
 * The `ibotlab` command: thin wrappers over the library.
 *   ibotlab verify-reference [DIR]
 *   ibotlab pretrain [--dataset D] [--preset P] [--epochs N | --minutes M] [--out DIR] [--resume]
 *   ibotlab eval --checkpoint DIR [--protocol knn|linear|logistic|semi|cluster|all] [--features pixels|random] [--json]
 *   ibotlab info
 */
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { initBackend, describeBackend } from '../backend';
import type { BackendName } from '../backend';
import { verifyReference } from './verify';
import { runPretrain } from './pretrain';
import { FeatureSource, runEval } from './eval';

const USAGE = `usage: ibotlab <command> [options]

commands:
  pretrain            iBOT pretraining, checkpoints, then a k-NN evaluation
      --dataset NAME      fashion-mnist-embedded (default, no download), fashion-mnist, mnist, cifar10, or a folder name
      --data-path DIR     where the dataset's files are (default: datasets/<name>, then /usr/share/datasets/<name>)
      --preset NAME       fashion-mnist (default), bench, cifar10, vit-s16, tiny (seconds-long smoke runs)
      --epochs N          schedule length in epochs
      --minutes M         size the run to about M minutes on this machine (overrides --epochs)
      --out DIR           run folder (default runs/<preset>)
      --resume            continue the run in --out from its last checkpoint
      --batch-size N, --lr X (per 256 images), --seed N, --checkpoint-every N (steps)
      --no-eval           skip the closing k-NN evaluation
      --subset N          train on the first N training images only
  eval                evaluation protocols of the paper on frozen features (teacher backbone)
      --checkpoint DIR    run folder written by pretrain (e.g. runs/fashion-mnist)
      --protocol P        knn, linear, logistic, semi, cluster or all (default; a comma list works too)
      --features F        checkpoint (default with --checkpoint), pixels (no model), random (the
                          checkpoint's or --preset's architecture at random initialisation)
      --dataset NAME, --data-path DIR, --preset NAME, --seed N  as for pretrain
      --finetune          with semi: also fine-tune end to end on the 10% split (slow)
      --out FILE          save the full results table (.csv or .json)
      --json              print one JSON object with every metric instead of tables
  verify-reference [DIR]  check the library against reference fixtures (default ../shared/reference)
  info                show the TensorFlow.js backend that would be used

common options:
  --backend NAME      tensorflow | webgpu | wasm | cpu (default: best available)
  --threads N         wasm threads (default: all cores)
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE);
    return cmd ? 0 : 1;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      backend: { type: 'string' },
      threads: { type: 'string' },
      dataset: { type: 'string', default: 'fashion-mnist-embedded' },
      'data-path': { type: 'string' },
      preset: { type: 'string', default: 'fashion-mnist' },
      epochs: { type: 'string' },
      minutes: { type: 'string' },
      out: { type: 'string' },
      resume: { type: 'boolean', default: false },
      'batch-size': { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'no-eval': { type: 'boolean', default: false },
      subset: { type: 'string' },
      json: { type: 'boolean', default: false },
      checkpoint: { type: 'string' },
      protocol: { type: 'string', default: 'all' },
      features: { type: 'string' },
      finetune: { type: 'boolean', default: false },
    },
  });
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isFinite(x)) throw new Error(`--${name} expects a number, got '${v}'`);
    return x;
  };
  const info = await initBackend({
    backend: values.backend as BackendName | undefined,
    threads: num('threads', values.threads),
    quiet: true,
  });
  process.stderr.write(`backend: ${describeBackend(info)}\n`);
  switch (cmd) {
    case 'info':
      console.log(JSON.stringify(info, null, 1));
      return 0;
    case 'verify-reference':
      return await verifyReference(positionals[0] ?? path.join('..', 'shared', 'reference'));
    case 'pretrain':
      return runPretrain({
        dataset: values.dataset as string,
        dataPath: values['data-path'],
        preset: values.preset as string,
        epochs: num('epochs', values.epochs),
        minutes: num('minutes', values.minutes),
        out: values.out ?? path.join('runs', values.preset as string),
        resume: values.resume as boolean,
        batchSize: num('batch-size', values['batch-size']),
        lr: num('lr', values.lr),
        seed: num('seed', values.seed),
        checkpointEvery: num('checkpoint-every', values['checkpoint-every']),
        eval: !values['no-eval'],
        subset: num('subset', values.subset),
      });
    case 'eval':
      return runEval({
        checkpoint: values.checkpoint,
        dataset: values.dataset as string,
        dataPath: values['data-path'],
        protocol: values.protocol as string,
        features: values.features as FeatureSource | undefined,
        preset: values.preset as string,
        json: values.json as boolean,
        seed: num('seed', values.seed),
        finetune: values.finetune as boolean,
        out: values.out,
      });
    default:
      process.stderr.write(`unknown command '${cmd}'\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`ibotlab: ${err.message}\n`);
    process.exit(1);
  },
);

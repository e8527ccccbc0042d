/**
 * ibotlab's iBOT step against a PyTorch peer on the same cores, interleaved
 * (ibotlab, PyTorch, ibotlab, PyTorch, …) so that drifting load hits both
 * alike; the ratio is taken round by round.
 *
 *   node dist/bench/vs-pytorch.js                         # 3 rounds, 2 threads, Debian PyTorch
 *   node dist/bench/vs-pytorch.js --rounds 5 --cores 4 --pin --out benchmarks/results/x.json
 *
 * The peer is `torch_ibot_bench.py` (`--peer FILE`, default
 * ../shared/tools/torch_ibot_bench.py): the same step (bench config, batch 64)
 * written in PyTorch. Its threads: with `--blas` (Debian's PyTorch 1.13 on
 * OpenBLAS, as issue 12 measures it) 1 torch thread and OPENBLAS_NUM_THREADS =
 * cores; otherwise TORCH_THREADS = cores (a current PyTorch on oneDNN).
 * `--pin` runs both under `taskset -c 0-(cores−1)`. `--python` picks the
 * interpreter (default /usr/bin/python3, which has Debian's torch).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { median } from '../src/util/stats';
import { runJson } from './run-json';

interface Args {
  rounds: number;
  cores: number;
  pin: boolean;
  blas: boolean;
  peer: string;
  python: string;
  steps: number;
  out?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { rounds: 3, cores: 2, pin: false, blas: false, peer: path.resolve(__dirname, '..', '..', '..', 'shared', 'tools', 'torch_ibot_bench.py'), python: '/usr/bin/python3', steps: 8 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    const next = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${v} needs a value`);
      return x;
    };
    if (v === '--rounds') a.rounds = Number(next());
    else if (v === '--cores') a.cores = Number(next());
    else if (v === '--steps') a.steps = Number(next());
    else if (v === '--pin') a.pin = true;
    else if (v === '--blas') a.blas = true;
    else if (v === '--peer') a.peer = next();
    else if (v === '--python') a.python = next();
    else if (v === '--out') a.out = next();
    else throw new Error(`unknown flag ${v} (usage: vs-pytorch.js [--rounds N] [--cores N] [--pin] [--blas] [--steps N] [--peer FILE] [--python EXE] [--out FILE])`);
  }
  for (const k of ['rounds', 'cores', 'steps'] as const) if (!Number.isInteger(a[k]) || a[k] < 1) throw new Error(`--${k} takes a positive integer`);
  if (!fs.existsSync(a.peer)) throw new Error(`no PyTorch peer at ${a.peer}: pass --peer FILE (the project's torch_ibot_bench.py)`);
  return a;
}

/** Runs a command, pinned to the first `cores` cores when asked, and returns the last JSON line it printed. */
function runPinned(cmd: string[], env: NodeJS.ProcessEnv, a: Args): Record<string, unknown> {
  return runJson(a.pin ? ['taskset', '-c', `0-${a.cores - 1}`, ...cmd] : cmd, env);
}

function main(): void {
  const a = parseArgs(process.argv.slice(2));
  const step = path.resolve(__dirname, 'step.js');
  const peerEnv: NodeJS.ProcessEnv = a.blas ? { OPENBLAS_NUM_THREADS: String(a.cores), TORCH_THREADS: '1' } : { TORCH_THREADS: String(a.cores), OMP_NUM_THREADS: String(a.cores) };
  const rows: Array<Record<string, unknown>> = [];
  const ratios: number[] = [];
  let torchVersion = '';
  for (let r = 0; r < a.rounds; r++) {
    // wasm explicitly: on a machine with a GPU the default backend would be WebGPU.
    const ours = runPinned([process.execPath, step, '--json', '--backend', 'wasm', '--threads', String(a.cores), '--steps', String(a.steps)], {}, a);
    const peer = runPinned([a.python, a.peer, String(a.steps + 2)], peerEnv, a);
    torchVersion = String(peer.torch);
    const o = Number(ours.imagesPerSec);
    const p = Number(peer.imagesPerSecond);
    ratios.push(o / p);
    rows.push({ round: r + 1, ibotlab: o, ibotlabBest: ours.bestImagesPerSec, pytorch: p, ratio: o / p, simd: ours.simd, gflopPerStep: ours.gflopPerStep, load: ours.loadAverage });
    console.log(`round ${r + 1}: ibotlab ${o.toFixed(1)} img/s, PyTorch ${torchVersion} ${p.toFixed(1)} img/s → ${(o / p).toFixed(2)}`);
  }
  const result = {
    date: new Date().toISOString(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    logicalCores: os.cpus().length,
    node: process.version,
    cores: a.cores,
    pinned: a.pin,
    peer: `PyTorch ${torchVersion}, ${a.blas ? `1 torch thread, OPENBLAS_NUM_THREADS=${a.cores}` : `TORCH_THREADS=${a.cores}`}`,
    config: 'bench (batch 64)',
    rows,
    medianRatio: median(ratios),
  };
  console.log(`median ratio ibotlab / PyTorch: ${result.medianRatio.toFixed(2)} (${a.cores} cores${a.pin ? ', pinned' : ''}; ${result.cpu})`);
  if (a.out) {
    fs.mkdirSync(path.dirname(a.out), { recursive: true });
    fs.writeFileSync(a.out, JSON.stringify(result, null, 2) + '\n');
    console.log(`saved ${a.out}`);
  }
}

try {
  main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
}

#!/usr/bin/env node
/**
 * The `ibotlab` command: thin wrappers over the library, one module per
 * command, each declaring its options once (`args.ts` turns the table into
 * both the parser and the usage text).
 */
import * as path from 'node:path';
import { initBackend, describeBackend } from '../backend';
import type { BackendInfo, BackendName } from '../backend';
import { CommandSpec, commandUsage, num, parseCommand, str, usage } from './args';
import { PRETRAIN_COMMAND, runPretrain } from './pretrain';
import { EVAL_COMMAND, evalArgs, runEval } from './eval';
import { VERIFY_COMMAND, verifyReference } from './verify';
import { WEIGHTS_COMMAND, runWeights } from './weights';

const INFO_COMMAND: CommandSpec = { name: 'info', summary: 'the TensorFlow.js backend that would be used, the adapter found, and why', options: [] };

const COMMANDS: Array<{ spec: CommandSpec; run: (v: ReturnType<typeof parseCommand>, backend: BackendInfo) => Promise<number> }> = [
  { spec: PRETRAIN_COMMAND, run: ({ values }, b) => runPretrain(values, { gpu: b.gpu }) },
  { spec: EVAL_COMMAND, run: ({ values }) => runEval(evalArgs(values)) },
  { spec: VERIFY_COMMAND, run: ({ positionals }) => verifyReference(positionals[0] ?? path.join('..', 'shared', 'reference')) },
  { spec: WEIGHTS_COMMAND, run: ({ values, positionals }) => runWeights(values, positionals) },
  {
    spec: INFO_COMMAND,
    run: async (_, info) => {
      console.log(JSON.stringify(info, null, 1));
      return 0;
    },
  },
];

/** Commands that compute with tensors need a backend first. */
const NEEDS_BACKEND = new Set(['pretrain', 'eval', 'verify-reference', 'info']);

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const specs = COMMANDS.map((c) => c.spec);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(usage(specs));
    return cmd ? 0 : 1;
  }
  const command = COMMANDS.find((c) => c.spec.name === cmd);
  if (!command) {
    process.stderr.write(`unknown command '${cmd}'\n\n${usage(specs)}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandUsage(command.spec));
    return 0;
  }
  const parsed = parseCommand(command.spec, rest);
  let info: BackendInfo = { name: 'cpu', package: '', threads: 1, simd: false, gpu: false, reasons: [] };
  if (NEEDS_BACKEND.has(cmd)) {
    info = await initBackend({ backend: str(parsed.values, 'backend') as BackendName | undefined, threads: num(parsed.values, 'threads'), quiet: true });
    process.stderr.write(`backend: ${describeBackend(info)}${info.name !== 'webgpu' && info.reasons.some((r) => r.startsWith('webgpu')) ? ` (${info.reasons.find((r) => r.startsWith('webgpu'))})` : ''}\n`);
  }
  return command.run(parsed, info);
}


main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`ibotlab: ${err.message}\n`);
    process.exit(1);
  },
);

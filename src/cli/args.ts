/**
 * Command-line options, declared once per command: the same table parses the
 * arguments (with one clear line for a bad value) and writes the usage text,
 * so the help can never drift from what a command accepts.
 */
import { parseArgs } from 'node:util';

export type OptionType = 'string' | 'number' | 'integer' | 'boolean';

export interface OptionSpec {
  /** Long name without dashes, e.g. 'batch-size'. */
  name: string;
  type: OptionType;
  /** Placeholder shown in the usage, e.g. 'DIR'. */
  value?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** Positional part of the usage line, e.g. '[DIR]'. */
  positionals?: string;
  summary: string;
  options: OptionSpec[];
}

/** Options every command takes. */
export const COMMON_OPTIONS: OptionSpec[] = [
  { name: 'backend', type: 'string', value: 'NAME', help: 'tensorflow | webgpu | wasm | cpu (default: the fastest available; a GPU when there is one)' },
  { name: 'threads', type: 'integer', value: 'N', help: 'wasm threads (default: all cores)' },
];

export type OptionValues = Record<string, string | number | boolean | undefined>;

/** Parse `argv` (after the command name) against a command's options; throws one line naming the option and what it takes. */
export function parseCommand(spec: CommandSpec, argv: string[]): { values: OptionValues; positionals: string[] } {
  const all = [...spec.options, ...COMMON_OPTIONS];
  const options = Object.fromEntries(all.map((o) => [o.name, { type: o.type === 'boolean' ? ('boolean' as const) : ('string' as const) }]));
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    throw new Error(`${msg} (see 'ibotlab ${spec.name} --help')`);
  }
  const values: OptionValues = {};
  for (const o of all) {
    const raw = parsed.values[o.name];
    if (raw === undefined) continue;
    if (o.type === 'boolean' || o.type === 'string') {
      values[o.name] = raw as string | boolean;
      continue;
    }
    const x = Number(raw);
    if (String(raw).trim() === '' || !Number.isFinite(x)) throw new Error(`--${o.name} expects a number, got '${String(raw)}'`);
    if (o.type === 'integer' && !Number.isInteger(x)) throw new Error(`--${o.name} expects a whole number, got '${String(raw)}'`);
    values[o.name] = x;
  }
  const positionals = parsed.positionals;
  if (!spec.positionals && positionals.length > 0) {
    throw new Error(`unexpected argument '${positionals[0]}' for 'ibotlab ${spec.name}' (see 'ibotlab ${spec.name} --help')`);
  }
  return { values, positionals };
}

function optionLines(options: OptionSpec[]): string[] {
  const left = options.map((o) => `--${o.name}${o.value ? ` ${o.value}` : ''}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return options.map((o, i) => `      ${left[i].padEnd(width)}${o.help}`);
}

/** Usage of one command (for `ibotlab CMD --help`). */
export function commandUsage(spec: CommandSpec): string {
  return [`usage: ibotlab ${spec.name}${spec.positionals ? ` ${spec.positionals}` : ''} [options]`, '', `  ${spec.summary}`, '', ...optionLines(spec.options), '', '  common options:', ...optionLines(COMMON_OPTIONS), ''].join('\n');
}

/** The overall usage: every command with its options. */
export function usage(specs: CommandSpec[]): string {
  const lines = ['usage: ibotlab <command> [options]     (ibotlab <command> --help for one command)', '', 'commands:'];
  for (const s of specs) {
    lines.push(`  ${s.name}${s.positionals ? ` ${s.positionals}` : ''}`.padEnd(28) + s.summary);
    if (s.options.length) lines.push(...optionLines(s.options));
  }
  lines.push('', 'common options:', ...optionLines(COMMON_OPTIONS).map((l) => l.slice(4)), '');
  return lines.join('\n');
}

export const str = (v: OptionValues, k: string): string | undefined => v[k] as string | undefined;
export const num = (v: OptionValues, k: string): number | undefined => v[k] as number | undefined;
export const flag = (v: OptionValues, k: string): boolean => v[k] === true;

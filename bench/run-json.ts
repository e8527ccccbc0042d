/** Child processes of the benchmarks: run one and take the JSON object it printed last. */
import { spawnSync } from 'node:child_process';

/** Runs `cmd` (with `env` over this process's) and returns the last line of its output that is a JSON object; throws with the tail of its stderr when it fails or prints none. */
export function runJson(cmd: string[], env: NodeJS.ProcessEnv = {}): Record<string, unknown> {
  const r = spawnSync(cmd[0], cmd.slice(1), { env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 26 });
  const line = (r.stdout ?? '').trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line) throw new Error(`${cmd.join(' ')} failed (exit ${r.status}): ${(r.stderr ?? '').slice(-800)}`);
  return JSON.parse(line) as Record<string, unknown>;
}

/**
 * Runs the reference fixtures (numbers from an independent PyTorch /
 * scikit-learn implementation) through the library. Each fixture kind is
 * recognised by its content, so new fixtures of the same format work whatever
 * their file name; the checks themselves live in `model-checks.ts` and
 * `eval-checks.ts`, all under `compare.ts`'s one pass rule.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkClusterMetricsFixture, checkKnnFixture } from './eval-checks';
import { checkIbotHead, checkIbotLoss, checkSchedules, checkVitForward } from './model-checks';

export type { FixtureKind, FixtureResult } from './compare';
import type { FixtureKind, FixtureResult } from './compare';

type Json = Record<string, unknown>;

export function detectKind(json: Json): FixtureKind | undefined {
  const cases = Array.isArray(json.cases) ? (json.cases as Json[]) : undefined;
  const first = cases?.[0];
  const inputs = (json.inputs ?? first?.inputs) as Json | undefined;
  if (inputs && 'studentCls' in inputs) return 'ibot_loss';
  if (inputs && 'imagesNCHW' in inputs) return 'vit_forward';
  if (inputs && 'tokens' in inputs) return 'ibot_head';
  if (first && 'trainFeatures' in first) return 'knn';
  if (first && 'labels' in first && 'clusters' in first) return 'cluster_metrics';
  if (first && (first.kind === 'cosine' || first.kind === 'teacherTemp')) return 'schedules';
  return undefined;
}

export async function checkFixtureFile(file: string): Promise<FixtureResult[]> {
  let json: Json;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return [{ file, kind: 'schedules', name: 'parse', maxAbsErr: NaN, maxRelErr: NaN, passed: false, detail: `cannot read JSON: ${(e as Error).message}` }];
  }
  const kind = detectKind(json);
  const wrap = (rs: Array<Omit<FixtureResult, 'file' | 'kind'> & Partial<FixtureResult>>, k: FixtureKind): FixtureResult[] =>
    rs.map((r) => ({ ...r, file, kind: k }) as FixtureResult);
  try {
    switch (kind) {
      case 'ibot_loss':
        return await checkIbotLoss(json, file);
      case 'vit_forward':
        return await checkVitForward(json, file);
      case 'ibot_head':
        return await checkIbotHead(json, file);
      case 'schedules':
        return checkSchedules(json, file);
      case 'knn':
        return wrap(await checkKnnFixture(json), 'knn');
      case 'cluster_metrics':
        return wrap(checkClusterMetricsFixture(json), 'cluster_metrics');
      default:
        return [{ file, kind: 'schedules', name: 'unknown', maxAbsErr: NaN, maxRelErr: NaN, passed: false, detail: 'unrecognised fixture format' }];
    }
  } catch (e) {
    return [{ file, kind: kind ?? 'schedules', name: 'error', maxAbsErr: NaN, maxRelErr: NaN, passed: false, detail: (e as Error).message }];
  }
}

/** Every `*.json` fixture in a folder (README and other non-fixture JSON are skipped). */
export function fixtureFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) throw new Error(`reference folder ${dir} does not exist; pass the folder holding the fixture JSON files`);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => path.join(dir, f));
}


/** `ibotlab weights`: list and download known pretrained ViT backbones. */
import { KNOWN_WEIGHTS, cachedWeightsPath, defaultWeightsCacheDir, fetchWeights } from '../io/weights-fetch';
import { ProgressBar } from '../util/progress';
import { CommandSpec, OptionValues, flag, str } from './args';

export const WEIGHTS_COMMAND: CommandSpec = {
  name: 'weights',
  positionals: 'list | fetch NAME',
  summary: 'list known pretrained backbones, or download one into the cache (needs network)',
  options: [
    { name: 'cache', type: 'string', value: 'DIR', help: 'cache folder (default $IBOTLAB_CACHE/weights, else ~/.cache/ibotlab/weights)' },
    { name: 'force', type: 'boolean', help: 'download again even if a verified copy is cached' },
  ],
};

export async function runWeights(v: OptionValues, positionals: string[]): Promise<number> {
  const [verb, name] = positionals;
  const cacheDir = str(v, 'cache') ?? defaultWeightsCacheDir();
  if (verb === 'list' || verb === undefined) {
    for (const w of Object.values(KNOWN_WEIGHTS)) {
      console.log(`${w.name}\n  ${w.description ?? ''}\n  heads ${w.heads ?? '?'}, licence ${w.license ?? '?'}\n  ${cachedWeightsPath(w, cacheDir)}`);
    }
    return 0;
  }
  if (verb !== 'fetch') throw new Error(`unknown 'weights' action '${verb}'; use 'ibotlab weights list' or 'ibotlab weights fetch NAME'`);
  if (!name) throw new Error(`'ibotlab weights fetch' needs a name: one of ${Object.keys(KNOWN_WEIGHTS).join(', ')}`);
  let bar: ProgressBar | undefined;
  const r = await fetchWeights(name, {
    cacheDir,
    force: flag(v, 'force'),
    onProgress: (p) => {
      if (p.total === undefined) return;
      bar ??= new ProgressBar(Math.round(p.total / 1e6), { label: `${name} (MB)` });
      bar.update(Math.min(Math.round(p.received / 1e6), Math.round(p.total / 1e6)));
    },
  });
  bar?.done();
  console.log(`${r.file}\n  sha256 ${r.sha256} (${r.verified}${r.downloaded ? ', downloaded' : ', cached'})`);
  console.log(`  try: ibotlab eval --weights ${r.file}${r.spec.heads ? ` --heads ${r.spec.heads}` : ''} --protocol knn --per-class 100`);
  return 0;
}

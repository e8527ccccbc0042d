/**
 * Batches of different token counts stacked in the rows of one qkv matrix
 * (the student's global and local crops), as kernels take them: a `groups`
 * attribute [B1, N1, B2, N2, …]. One place for the format, written by
 * `ops.ts` and read by the wasm kernels (`register.ts`) and the WebGPU
 * programs (`webgpu.ts`).
 */

/** A batch inside a stacked token matrix: `images` images of `tokens` tokens each ([CLS] included). */
export interface TokenBatch {
  images: number;
  tokens: number;
}

/** Batches stacked in the rows of one qkv matrix. */
export type StackedBatches = readonly TokenBatch[];

/** A batch of the stack: B images of N tokens, starting at qkv row `row`. */
export interface StackedGroup {
  B: number;
  N: number;
  row: number;
}

/** The `groups` attribute of `batches`. */
export function groupsAttr(batches: StackedBatches): number[] {
  return batches.flatMap((b) => [b.images, b.tokens]);
}

/** The batches of a `groups` attribute with their first rows, and the rows of the whole stack. */
export function parseGroups(name: string, groups: unknown): { groups: StackedGroup[]; rows: number } {
  const g = groups as number[];
  if (!Array.isArray(g) || g.length === 0 || g.length % 2 !== 0) throw new Error(`${name}: groups must be [B1, N1, B2, N2, …], got [${g}]`);
  const out: StackedGroup[] = [];
  let row = 0;
  for (let i = 0; i < g.length; i += 2) {
    out.push({ B: g[i], N: g[i + 1], row });
    row += g[i] * g[i + 1];
  }
  return { groups: out, rows: row };
}

/**
 * Views that lie back to back in the same memory, merged: one view per run, in order, without
 * copying. A run of a single view is that view itself. Consecutive reads into one read arena,
 * and the instructions parsed from them, come out as one run (read-arenas.ts).
 */
export function byteRuns(views: readonly Buffer[]): Buffer[] {
  const runs: Buffer[] = [];
  let first = 0;
  // `.buffer` is a call into the runtime, not a field read: once per view, not twice.
  let parent = views[0]!.buffer;
  let end = views[0]!.byteOffset + views[0]!.length;
  for (let i = 1; i <= views.length; i++) {
    const v = views[i];
    const vParent = v?.buffer;
    if (v !== undefined && vParent === parent && v.byteOffset === end) {
      end += v.length;
      continue;
    }
    const start = views[first]!;
    runs.push(i - first === 1 ? start : Buffer.from(parent, start.byteOffset, end - start.byteOffset));
    if (v === undefined) break;
    first = i;
    parent = vParent!;
    end = v.byteOffset + v.length;
  }
  return runs;
}

/** The views' bytes as one buffer: a view when they lie back to back, else a copy. */
export function joinViews(views: readonly Buffer[]): Buffer {
  const runs = byteRuns(views);
  return runs.length === 1 ? runs[0]! : Buffer.concat(runs);
}

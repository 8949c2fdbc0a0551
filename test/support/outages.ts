// Outages in a series of probes sent at a steady rate: runs of unanswered probes, each from its first lost probe to
// the first answered one after it (so a single lost probe at 50 Hz is a 20 ms outage); a run still open at the end
// runs to the last probe. Shared by the speaker's namespace lab and the VIP e2e, whose probes say "answered"
// differently.
export function outages<P extends { at: number }>(probes: readonly P[], answered: (probe: P) => boolean): { from: number; ms: number }[] {
  const result: { from: number; ms: number }[] = [];
  let start: number | undefined;
  for (const p of probes) {
    if (!answered(p)) start ??= p.at;
    else if (start !== undefined) {
      result.push({ from: start, ms: p.at - start });
      start = undefined;
    }
  }
  const last = probes[probes.length - 1];
  if (start !== undefined && last) result.push({ from: start, ms: last.at - start });
  return result;
}

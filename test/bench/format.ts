// Number formatting and aligned plain-text tables for the printed report.
export function fmtInt(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-';
  return Math.round(v).toLocaleString('en-US');
}
export function fmtUs(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return v >= 100 ? String(Math.round(v)) : v.toFixed(1);
}
export function fmtPct(v: number | null | undefined): string {
  if (v === null || v === undefined) return '-';
  return v < 10 ? v.toFixed(2) : v.toFixed(1);
}

/** Columns of strings, right-aligned except the first; a row of "|" separators stays aligned. */
export function table(header: string[][], rows: string[][]): string {
  const all = [...header, ...rows];
  const widths = all[0]!.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c === '|' ? '|' : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [...header.map(line), sep, ...rows.map(line)].join('\n');
}

// Parse the Prometheus text exposition format (what GET /metrics returns) into samples,
// and a few helpers to pick values out. Used by the local-mode dashboard and the tests.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseValue(s: string): number {
  // Like Go's strconv.ParseFloat (what Prometheus uses): NaN and Inf in any letter case
  // (prom-client prints "Nan" for an empty event-loop histogram).
  switch (s.toLowerCase()) {
    case '+inf':
    case 'inf':
    case '+infinity':
    case 'infinity':
      return Infinity;
    case '-inf':
    case '-infinity':
      return -Infinity;
    case 'nan':
      return NaN;
    default: {
      const v = Number(s);
      if (s === '' || Number.isNaN(v)) throw new Error(`bad sample value ${JSON.stringify(s)}`);
      return v;
    }
  }
}

/** Parse exposition text. Comment and blank lines are skipped; a malformed line throws with its line number. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  const lines = text.split('\n');
  for (let ln = 0; ln < lines.length; ln++) {
    const line = lines[ln]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    try {
      let i = 0;
      while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i]!)) i++;
      const name = line.slice(0, i);
      if (!name || /^[0-9]/.test(name)) throw new Error('bad metric name');
      const labels: Record<string, string> = {};
      if (line[i] === '{') {
        i++;
        for (;;) {
          while (line[i] === ' ' || line[i] === ',') i++;
          if (line[i] === '}') {
            i++;
            break;
          }
          const start = i;
          while (i < line.length && /[a-zA-Z0-9_]/.test(line[i]!)) i++;
          const key = line.slice(start, i);
          if (!key) throw new Error('bad label name');
          while (line[i] === ' ') i++;
          if (line[i] !== '=') throw new Error(`expected = after label ${key}`);
          i++;
          while (line[i] === ' ') i++;
          if (line[i] !== '"') throw new Error(`expected " for label ${key}`);
          i++;
          let value = '';
          for (;;) {
            if (i >= line.length) throw new Error('unterminated label value');
            const c = line[i]!;
            if (c === '\\') {
              const n = line[i + 1];
              value += n === 'n' ? '\n' : n === '\\' ? '\\' : n === '"' ? '"' : `\\${n ?? ''}`;
              i += 2;
            } else if (c === '"') {
              i++;
              break;
            } else {
              value += c;
              i++;
            }
          }
          labels[key] = value;
        }
      }
      const rest = line.slice(i).trim().split(/\s+/);
      if (rest.length < 1 || rest.length > 2 || rest[0] === '') throw new Error('expected value [timestamp]');
      out.push({ name, labels, value: parseValue(rest[0]!) });
    } catch (err) {
      throw new Error(`metrics line ${ln + 1}: ${(err as Error).message}: ${line}`, { cause: err });
    }
  }
  return out;
}

function matches(s: Sample, name: string, labels?: Record<string, string>): boolean {
  if (s.name !== name) return false;
  if (labels) for (const [k, v] of Object.entries(labels)) if (s.labels[k] !== v) return false;
  return true;
}

/** Samples with this name whose labels include all of the given ones. */
export function select(samples: Sample[], name: string, labels?: Record<string, string>): Sample[] {
  return samples.filter((s) => matches(s, name, labels));
}

/** Sum of the matching samples (0 when none match). */
export function sumOf(samples: Sample[], name: string, labels?: Record<string, string>): number {
  let total = 0;
  for (const s of samples) if (matches(s, name, labels)) total += s.value;
  return total;
}

/** The single matching sample's value, or undefined when none match. */
export function valueOf(
  samples: Sample[],
  name: string,
  labels?: Record<string, string>,
): number | undefined {
  return samples.find((s) => matches(s, name, labels))?.value;
}

/** GET url and parse it. Throws on a non-200 answer or a network error. */
export async function scrapeMetrics(url: string, timeoutMs = 2000): Promise<Sample[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return parsePrometheusText(await res.text());
}

// Secret redaction. Everything the automation layer emits (events, job results, error messages,
// logs) passes through a Redactor built from the job's secret values, so a secret given in a spec
// never reaches a response body, an event stream, the job store or a log line.

export const REDACTED = '[secret]';

export class Redactor {
  private readonly secrets: string[];

  constructor(secretValues: Iterable<string> = []) {
    // Longest first, so a secret containing another is replaced whole.
    this.secrets = [...new Set([...secretValues].filter((s) => s.length > 0))].sort(
      (a, b) => b.length - a.length,
    );
    // Also catch secrets as they appear inside JSON-encoded text (quotes and backslashes escaped).
    for (const s of [...this.secrets]) {
      const escaped = JSON.stringify(s).slice(1, -1);
      if (escaped !== s) this.secrets.push(escaped);
    }
  }

  get size(): number {
    return this.secrets.length;
  }

  /** A redactor that redacts both this one's and the other's secrets. */
  with(other: Iterable<string>): Redactor {
    return new Redactor([...this.secrets, ...other]);
  }

  string(s: string): string {
    let out = s;
    for (const secret of this.secrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    return out;
  }

  /** Deep copy of a JSON-like value with every string (keys included) redacted. */
  value<T>(v: T): T {
    return this.walk(v) as T;
  }

  private walk(v: unknown): unknown {
    if (typeof v === 'string') return this.string(v);
    if (Array.isArray(v)) return v.map((x) => this.walk(x));
    if (v !== null && typeof v === 'object') {
      if (v instanceof Date) return v;
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[this.string(k)] = this.walk(x);
      return out;
    }
    return v;
  }
}

/** Output map as the Automation API returns it: values flagged secret are replaced. */
export function redactOutputs(
  outputs: Record<string, { value: unknown; secret: boolean }>,
  redactor: Redactor = new Redactor(),
): Record<string, { value: unknown; secret: boolean }> {
  const out: Record<string, { value: unknown; secret: boolean }> = {};
  for (const [k, o] of Object.entries(outputs)) {
    out[k] = o.secret ? { value: REDACTED, secret: true } : { value: redactor.value(o.value), secret: false };
  }
  return out;
}

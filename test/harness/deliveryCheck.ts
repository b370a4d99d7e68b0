// Pure checks over "per session: sequence numbers in arrival order", used for backends (exactly once,
// in order) and for echo replies at the client (every reply arrived).

export interface Expected {
  /** Session ids that were sent. */
  sessions: number[];
  /** Datagrams per session, sequence numbers 0 .. perSession-1. */
  perSession: number;
}

export interface DeliveryReport {
  expected: number;
  received: number;
  distinct: number;
  /** Expected (session, seq) pairs never received. */
  missing: number;
  /** Receptions of a pair already received. */
  duplicates: number;
  /** New pairs that arrived after a higher sequence number of the same session. */
  outOfOrder: number;
  /** Pairs from sessions that were not sent or with seq >= perSession. */
  unexpected: number;
  /** Sessions with at least one problem. */
  sessionsWithProblems: number;
  /** Up to 10 human-readable examples. */
  examples: string[];
}

function ranges(nums: number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < nums.length && parts.length < 6) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j]! + 1) j++;
    parts.push(i === j ? String(nums[i]) : `${nums[i]}-${nums[j]}`);
    i = j + 1;
  }
  if (i < nums.length) parts.push('...');
  return parts.join(',');
}

export function analyzeDelivery(
  bySession: ReadonlyMap<number, readonly number[]>,
  exp: Expected,
): DeliveryReport {
  const r: DeliveryReport = {
    expected: exp.sessions.length * exp.perSession,
    received: 0,
    distinct: 0,
    missing: 0,
    duplicates: 0,
    outOfOrder: 0,
    unexpected: 0,
    sessionsWithProblems: 0,
    examples: [],
  };
  const expectedSessions = new Set(exp.sessions);
  const note = (s: string): void => {
    if (r.examples.length < 10) r.examples.push(s);
  };
  for (const [session, seqs] of bySession) {
    r.received += seqs.length;
    if (!expectedSessions.has(session)) {
      r.unexpected += seqs.length;
      r.sessionsWithProblems++;
      note(`session ${session}: ${seqs.length} datagrams from a session that was not sent`);
    }
  }
  for (const session of exp.sessions) {
    const seqs = bySession.get(session) ?? [];
    const seen = new Uint8Array(exp.perSession);
    let max = -1;
    let dup = 0;
    let ooo = 0;
    let unexpected = 0;
    let firstOoo: string | undefined;
    for (const seq of seqs) {
      if (seq >= exp.perSession || seq < 0) {
        unexpected++;
        continue;
      }
      if (seen[seq]) {
        dup++;
        continue;
      }
      seen[seq] = 1;
      if (seq < max) {
        ooo++;
        firstOoo ??= `${seq} after ${max}`;
      }
      if (seq > max) max = seq;
    }
    const missing: number[] = [];
    for (let i = 0; i < exp.perSession; i++) if (!seen[i]) missing.push(i);
    r.distinct += exp.perSession - missing.length;
    r.missing += missing.length;
    r.duplicates += dup;
    r.outOfOrder += ooo;
    r.unexpected += unexpected;
    if (missing.length || dup || ooo || unexpected) {
      r.sessionsWithProblems++;
      const bits: string[] = [];
      if (missing.length) bits.push(`missing ${missing.length} (${ranges(missing)})`);
      if (dup) bits.push(`${dup} duplicates`);
      if (ooo) bits.push(`${ooo} out of order (first: ${firstOoo})`);
      if (unexpected) bits.push(`${unexpected} with seq >= ${exp.perSession}`);
      note(`session ${session}: ${bits.join(', ')}`);
    }
  }
  return r;
}

/** True when every expected datagram arrived exactly once, in order, and nothing else arrived. */
export function exactlyOnceInOrder(r: DeliveryReport): boolean {
  return (
    r.missing === 0 &&
    r.duplicates === 0 &&
    r.outOfOrder === 0 &&
    r.unexpected === 0 &&
    r.received === r.expected
  );
}

export function formatReport(label: string, r: DeliveryReport): string {
  return (
    `${label}: expected ${r.expected}, received ${r.received} (${r.distinct} distinct); missing ${r.missing}, ` +
    `duplicates ${r.duplicates}, out of order ${r.outOfOrder}, unexpected ${r.unexpected}, ` +
    `sessions with problems ${r.sessionsWithProblems}` +
    (r.examples.length ? `\n    ${r.examples.join('\n    ')}` : '')
  );
}

/** Per session, arrivals whose sequence number is not higher than an earlier arrival's (order or duplicate violations). */
export function orderViolations(bySession: ReadonlyMap<number, readonly number[]>): {
  violations: number;
  examples: string[];
} {
  let violations = 0;
  const examples: string[] = [];
  for (const [session, seqs] of bySession) {
    let max = -1;
    for (const seq of seqs) {
      if (seq <= max) {
        violations++;
        if (examples.length < 10) examples.push(`session ${session}: ${seq} after ${max}`);
      } else max = seq;
    }
  }
  return { violations, examples };
}

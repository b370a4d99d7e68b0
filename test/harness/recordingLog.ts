// What a recording backend saw: (session, seq) of every valid datagram in arrival order, the upstream
// sources per session, invalid datagrams, and named marks (arrival indexes). Serializable, so a backend
// running in a child process can hand it to the test; the checks run on it in the test process.
import { analyzeDelivery, orderViolations, type DeliveryReport, type Expected } from './deliveryCheck.ts';

export interface RecordingLogData {
  arrivalSession: number[];
  arrivalSeq: number[];
  sources: [number, string[]][];
  invalid: number;
  invalidExamples: string[];
  marks: [string, number][];
}

export class RecordingLog {
  readonly arrivalSession: number[] = [];
  readonly arrivalSeq: number[] = [];
  private readonly bySession = new Map<number, number[]>();
  private readonly seen = new Set<number>();
  private readonly sourcesBySession = new Map<number, Set<string>>();
  private readonly allSources = new Set<string>();
  private readonly marks = new Map<string, number>();
  invalid = 0;
  readonly invalidExamples: string[] = [];

  add(session: number, seq: number, source: string): void {
    this.arrivalSession.push(session);
    this.arrivalSeq.push(seq);
    let list = this.bySession.get(session);
    if (!list) {
      list = [];
      this.bySession.set(session, list);
    }
    list.push(seq);
    this.seen.add(session * 4294967296 + seq);
    let srcs = this.sourcesBySession.get(session);
    if (!srcs) {
      srcs = new Set();
      this.sourcesBySession.set(session, srcs);
    }
    if (srcs.size < 16) srcs.add(source);
    if (this.allSources.size < 1_000_000) this.allSources.add(source);
  }

  addInvalid(reason: string): void {
    this.invalid++;
    if (this.invalidExamples.length < 10) this.invalidExamples.push(reason);
  }

  /** Valid datagrams received. */
  get count(): number {
    return this.arrivalSeq.length;
  }

  /** Distinct (session, seq) pairs received. */
  get distinct(): number {
    return this.seen.size;
  }

  has(session: number, seq: number): boolean {
    return this.seen.has(session * 4294967296 + seq);
  }

  /** Distinct source address:port pairs over all sessions. */
  get sourceCount(): number {
    return this.allSources.size;
  }

  /** Distinct upstream sources one session's datagrams came from. */
  sourcesOf(session: number): number {
    return this.sourcesBySession.get(session)?.size ?? 0;
  }

  /** Remember the current arrival index under a label. */
  mark(label: string): number {
    this.marks.set(label, this.count);
    return this.count;
  }

  markIndex(label: string): number {
    const i = this.marks.get(label);
    if (i === undefined) throw new Error(`no mark ${label}`);
    return i;
  }

  /** Per session: sequence numbers in arrival order, for arrivals with index in [from, to). */
  seqsBySession(from = 0, to = this.count): Map<number, number[]> {
    if (from === 0 && to === this.count) return this.bySession;
    const out = new Map<number, number[]>();
    for (let i = from; i < to; i++) {
      const s = this.arrivalSession[i]!;
      let list = out.get(s);
      if (!list) {
        list = [];
        out.set(s, list);
      }
      list.push(this.arrivalSeq[i]!);
    }
    return out;
  }

  /** Exactly-once/in-order report over all arrivals (or those in [from, to)). */
  report(expected: Expected, from = 0, to = this.count): DeliveryReport {
    return analyzeDelivery(this.seqsBySession(from, to), expected);
  }

  /** Order/duplicate violations among arrivals in [from, to). */
  orderViolations(from = 0, to = this.count): { violations: number; examples: string[] } {
    return orderViolations(this.seqsBySession(from, to));
  }

  toJSON(): RecordingLogData {
    return {
      arrivalSession: this.arrivalSession,
      arrivalSeq: this.arrivalSeq,
      sources: [...this.sourcesBySession].map(([s, set]) => [s, [...set]]),
      invalid: this.invalid,
      invalidExamples: this.invalidExamples,
      marks: [...this.marks],
    };
  }

  static fromJSON(d: RecordingLogData): RecordingLog {
    const log = new RecordingLog();
    const sources = new Map(d.sources);
    const firstSource = new Map<number, string>();
    for (const [s, list] of sources) if (list[0] !== undefined) firstSource.set(s, list[0]);
    for (let i = 0; i < d.arrivalSeq.length; i++)
      log.add(d.arrivalSession[i]!, d.arrivalSeq[i]!, firstSource.get(d.arrivalSession[i]!) ?? '?');
    for (const [s, list] of sources) {
      const set = log.sourcesBySession.get(s) ?? new Set<string>();
      for (const src of list) {
        set.add(src);
        log.allSources.add(src);
      }
      log.sourcesBySession.set(s, set);
    }
    log.invalid = d.invalid;
    log.invalidExamples.push(...d.invalidExamples);
    for (const [k, v] of d.marks) log.marks.set(k, v);
    return log;
  }
}

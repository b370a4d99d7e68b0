import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { analyzeDelivery, exactlyOnceInOrder, orderViolations } from './deliveryCheck.ts';
import { decodePayload, encodePayload } from './payload.ts';
import { startRecordingBackend } from './recordingBackend.ts';
import { waitFor } from './wait.ts';

const exp = { sessions: [1, 2], perSession: 5 };

describe('harness: delivery checks', () => {
  it('accepts exactly-once in-order delivery, interleaved across sessions', () => {
    const r = analyzeDelivery(
      new Map([
        [1, [0, 1, 2, 3, 4]],
        [2, [0, 1, 2, 3, 4]],
      ]),
      exp,
    );
    assert.ok(exactlyOnceInOrder(r), JSON.stringify(r));
    assert.equal(r.received, 10);
    assert.equal(r.distinct, 10);
  });

  it('counts missing, duplicate, out-of-order and unexpected datagrams', () => {
    const r = analyzeDelivery(
      new Map([
        [1, [0, 2, 1, 3, 3, 4]], // 1 after 2: out of order; 3 twice: duplicate
        [2, [0, 1, 4, 9]], // 2,3 missing; 9 unexpected
        [7, [0]], // session never sent
      ]),
      exp,
    );
    assert.equal(r.missing, 2);
    assert.equal(r.duplicates, 1);
    assert.equal(r.outOfOrder, 1);
    assert.equal(r.unexpected, 2);
    assert.equal(r.sessionsWithProblems, 3);
    assert.equal(exactlyOnceInOrder(r), false);
    assert.match(r.examples.join('\n'), /session 2: missing 2 \(2-3\)/);
    assert.match(r.examples.join('\n'), /1 after 2/);
  });

  it('a session that never arrived is all missing', () => {
    const r = analyzeDelivery(new Map([[1, [0, 1, 2, 3, 4]]]), exp);
    assert.equal(r.missing, 5);
    assert.equal(exactlyOnceInOrder(r), false);
  });

  it('orderViolations flags repeats and regressions only', () => {
    assert.equal(orderViolations(new Map([[1, [3, 4, 7]]])).violations, 0);
    assert.equal(orderViolations(new Map([[1, [3, 4, 4, 2, 8]]])).violations, 2);
  });

  it('payload round-trips and detects corruption', () => {
    const b = encodePayload(42, 7, 64);
    assert.deepEqual(decodePayload(b), { ok: true, session: 42, seq: 7 });
    const c = Buffer.from(b);
    c[40] = c[40]! ^ 1;
    assert.equal(decodePayload(c).ok, false);
    assert.equal(decodePayload(b.subarray(0, 63)).ok, false);
    assert.throws(() => encodePayload(1, 1, 8));
  });

  it('recording backend records arrival order per session, echoes, splits at marks', async () => {
    const backend = await startRecordingBackend();
    const client = createSocket('udp4');
    const echoes: number[] = [];
    client.on('message', (m) => {
      const d = decodePayload(m);
      if (d.ok) echoes.push(d.seq);
    });
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    try {
      const send = (session: number, seq: number): Promise<void> =>
        new Promise((r) =>
          client.send(encodePayload(session, seq, 32), backend.port, '127.0.0.1', () => r()),
        );
      for (const seq of [0, 1, 2]) await send(1, seq);
      await waitFor(() => backend.count === 3, { timeoutMs: 2000, what: '3 datagrams recorded' });
      const mark = backend.mark('restart');
      for (const seq of [2, 3, 4]) await send(1, seq);
      await send(2, 0);
      await new Promise<void>((r) =>
        client.send(Buffer.from('garbage'), backend.port, '127.0.0.1', () => r()),
      );
      await waitFor(() => backend.count === 7 && backend.invalid === 1, {
        timeoutMs: 2000,
        what: 'all recorded',
      });
      assert.equal(mark, 3);
      assert.deepEqual(backend.seqsBySession().get(1), [0, 1, 2, 2, 3, 4]);
      assert.deepEqual(backend.seqsBySession(mark).get(1), [2, 3, 4]);
      assert.equal(backend.orderViolations(mark).violations, 0);
      assert.equal(backend.orderViolations().violations, 1);
      const r = backend.report({ sessions: [1], perSession: 5 });
      assert.equal(r.duplicates, 1);
      assert.equal(r.unexpected, 1); // session 2 was not expected
      assert.equal(backend.sourcesOf(1), 1);
      await waitFor(() => echoes.length === 7, { timeoutMs: 2000, what: 'echoes of the 7 valid datagrams' });
    } finally {
      client.close();
      await backend.close();
    }
  });
});

describe('harness: recording backend in a child process', () => {
  it('records, marks and hands over a snapshot that round-trips through JSON', async function () {
    this.timeout(20_000);
    const { startRemoteRecordingBackend } = await import('./remoteRecordingBackend.ts');
    const backend = await startRemoteRecordingBackend('remote-test');
    const client = createSocket('udp4');
    const echoes: number[] = [];
    client.on('message', () => echoes.push(1));
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    try {
      const send = (session: number, seq: number): Promise<void> =>
        new Promise((r) =>
          client.send(encodePayload(session, seq, 40), backend.port, '127.0.0.1', () => r()),
        );
      await send(5, 0);
      await send(5, 1);
      await waitFor(async () => (await backend.stats()).count === 2, { timeoutMs: 5000, what: '2 recorded' });
      assert.equal(await backend.mark('m'), 2);
      await send(5, 1);
      await send(6, 0);
      await waitFor(async () => (await backend.stats()).count === 4, { timeoutMs: 5000, what: '4 recorded' });
      const stats = await backend.stats();
      assert.deepEqual(
        { count: stats.count, distinct: stats.distinct, invalid: stats.invalid },
        { count: 4, distinct: 3, invalid: 0 },
      );
      const log = await backend.snapshot();
      assert.equal(log.markIndex('m'), 2);
      assert.deepEqual(log.seqsBySession().get(5), [0, 1, 1]);
      assert.deepEqual(log.seqsBySession(2).get(5), [1]);
      assert.equal(log.sourcesOf(5), 1);
      assert.equal(log.sourceCount, 1);
      assert.ok(log.has(6, 0) && !log.has(6, 1));
      const r = log.report({ sessions: [5, 6], perSession: 2 });
      assert.equal(r.duplicates, 1);
      assert.equal(r.missing, 1);
      await waitFor(() => echoes.length === 4, { timeoutMs: 5000, what: '4 echoes' });
    } finally {
      client.close();
      await backend.close();
    }
  });
});

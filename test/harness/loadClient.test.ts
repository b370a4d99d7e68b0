import assert from 'node:assert/strict';
import { exactlyOnceInOrder, formatReport } from './deliveryCheck.ts';
import { startLoad } from './loadClient.ts';
import { startRecordingBackend } from './recordingBackend.ts';
import { waitFor } from './wait.ts';

describe('harness: load client against the recording backend (no replicator)', () => {
  it('paces S sessions x N datagrams, each from its own socket, and collects every echo', async function () {
    this.timeout(30_000);
    const backend = await startRecordingBackend();
    const run = await startLoad({
      host: '127.0.0.1',
      port: backend.port,
      sessions: 50,
      perSession: 200,
      rate: 10_000,
    });
    try {
      await run.done;
      const secs = (run.finishedAt - run.startedAt) / 1000;
      assert.ok(secs > 0.8 && secs < 8, `10k datagrams at 10k/s took ${secs}s`);
      await waitFor(() => backend.count >= run.total && run.repliesReceived >= run.total, {
        timeoutMs: 10_000,
        what: 'all datagrams and echoes arrived',
        detail: () =>
          `backend ${backend.count}, replies ${run.repliesReceived}, kernel drops ${backend.kernelDrops}`,
      });
      const r = backend.report(run.expected);
      assert.ok(exactlyOnceInOrder(r), formatReport('backend', r));
      const rr = run.replyReport();
      assert.equal(rr.missing, 0, formatReport('replies', rr));
      assert.equal(rr.duplicates, 0);
      for (const s of run.sessionIds.slice(0, 5)) assert.equal(backend.sourcesOf(s), 1);
      assert.equal(new Set(run.localPorts()).size, 50);
      assert.deepEqual(run.nth(0), { session: 1, seq: 0 });
      assert.deepEqual(run.nth(51), { session: 2, seq: 1 });
    } finally {
      await run.close();
      await backend.close();
    }
  });

  it('maxInFlight stops sending while echoes are outstanding', async function () {
    this.timeout(10_000);
    const backend = await startRecordingBackend({ reply: false });
    const run = await startLoad({
      host: '127.0.0.1',
      port: backend.port,
      sessions: 4,
      perSession: 100,
      rate: 100_000,
      maxInFlight: 25,
    });
    try {
      await waitFor(() => backend.count >= 25, { timeoutMs: 2000, what: '25 datagrams arrived' });
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(run.sent, 25);
    } finally {
      await run.close();
      await backend.close();
    }
  });
});

describe('harness: load client pacing after a stall', () => {
  it('does not burst more than 20 ms worth of datagrams when the event loop was blocked', async function () {
    this.timeout(10_000);
    const backend = await startRecordingBackend({ reply: false });
    const run = await startLoad({
      host: '127.0.0.1',
      port: backend.port,
      sessions: 10,
      perSession: 2000,
      rate: 10_000,
    });
    try {
      await run.whenSent(500);
      const before = run.sent;
      const until = Date.now() + 300; // block the event loop: 3,000 datagrams "due" meanwhile
      while (Date.now() < until) {
        /* busy */
      }
      await new Promise((r) => setTimeout(r, 0));
      await new Promise((r) => setImmediate(r));
      const burst = run.sent - before;
      assert.ok(burst <= 10_000 / 50 + 50, `sent ${burst} right after a 300 ms stall`);
    } finally {
      await run.close();
      await backend.close();
    }
  });
});

// Operations endpoint: /metrics for Prometheus, /healthz (the process works), /readyz (it should get
// traffic: holds an epoch, listens, not draining), /status (JSON for humans, local mode and CRD status).
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { ReplicatorSnapshot } from './stats.ts';

export async function startHttpServer(opts: {
  address: string;
  port: number;
  registry: Registry;
  snapshot: () => ReplicatorSnapshot;
}): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', opts.registry.contentType);
    return opts.registry.metrics();
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const s = opts.snapshot();
    const body = { ready: s.ready, draining: s.draining, etcdUp: s.etcdUp, epoch: s.epoch };
    return reply.code(s.ready ? 200 : 503).send(body);
  });
  app.get('/status', async () => opts.snapshot());
  await app.listen({ host: opts.address, port: opts.port });
  return app;
}

// Structured JSON logs (pino): one line per event on stdout, machine-readable for Loki/Cloud Logging.
import { pino, type Logger } from 'pino';

export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  // Synchronous writes: logs are rare, and a SIGKILLed replicator must not take its last lines with it.
  return pino(
    { level, base: { svc: 'udpmesh-replicator', ...bindings }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 1, sync: true }),
  );
}

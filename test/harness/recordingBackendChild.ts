// Child-process entry of remoteRecordingBackend.ts: runs one RecordingBackend and answers requests
// over the IPC channel. Exits when the parent disconnects.
import { RecordingBackend } from './recordingBackend.ts';

type Request =
  | { id: number; op: 'stats' }
  | { id: number; op: 'mark'; label: string }
  | { id: number; op: 'snapshot' }
  | { id: number; op: 'close' };

const backend = await new RecordingBackend({ name: process.env.RECORDING_BACKEND_NAME ?? 'backend' }).start();
process.send?.({ op: 'ready', port: backend.port });
process.on('message', (raw) => {
  const req = raw as Request;
  switch (req.op) {
    case 'stats':
      // No kernel drop count here: reading /proc/net/udp can take many milliseconds on a busy host,
      // time in which this process would not drain its socket. The parent reads it when it needs it.
      process.send?.({
        id: req.id,
        result: { count: backend.count, distinct: backend.distinct, invalid: backend.invalid },
      });
      break;
    case 'mark':
      process.send?.({ id: req.id, result: backend.mark(req.label) });
      break;
    case 'snapshot':
      process.send?.({ id: req.id, result: backend.log.toJSON() });
      break;
    case 'close':
      void backend.close().then(() => {
        process.send?.({ id: req.id, result: true }, () => process.exit(0));
      });
      break;
  }
});
process.on('disconnect', () => process.exit(0));

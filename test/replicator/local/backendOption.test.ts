// Local mode's --backend: one service for every cloud, or one per cloud (aws=host:port), with clear errors.
import assert from 'node:assert/strict';
import { parseBackends } from '../../../replicator/local/backendOption.ts';

describe('local mode --backend', () => {
  it('host:port is every cloud; cloud=host:port one cloud; later options win', () => {
    assert.deepEqual(parseBackends(['127.0.0.1:5353']), {
      aws: '127.0.0.1:5353',
      gcp: '127.0.0.1:5353',
      azure: '127.0.0.1:5353',
    });
    assert.deepEqual(parseBackends(['aws=127.0.0.1:1', 'gcp=[::1]:2']), {
      aws: '127.0.0.1:1',
      gcp: '[::1]:2',
    });
    assert.deepEqual(parseBackends(['10.0.0.1:9', 'azure=10.0.0.2:9']).azure, '10.0.0.2:9');
  });

  it('names the problem: unknown cloud, missing port, port out of range', () => {
    assert.throws(() => parseBackends(['oci=127.0.0.1:1']), /unknown cloud "oci".*aws, gcp or azure/);
    assert.throws(() => parseBackends(['aws=127.0.0.1']), /expected host:port or cloud=host:port/);
    assert.throws(() => parseBackends(['127.0.0.1:70000']), /expected host:port/);
  });
});

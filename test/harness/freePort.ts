// Free loopback ports for tests (outside the ephemeral range, never handed out twice): see replicator/local/freePort.ts.
export { freePort, freePorts, isPortFree } from '../../replicator/local/freePort.ts';

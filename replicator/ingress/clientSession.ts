// A client session at the ingress: one client address on one ingress socket. Its datagrams get
// positions (origin, epoch, session, seq); in reply mode it owns an upstream socket so the backend's
// replies come back to this session alone (as nginx and Envoy do).
import type { UdpSocketIo } from '../io/udpIo.ts';
import type { OriginSession } from '../replication/peerSet.ts';
import type { Backend } from '../delivery/backendPool.ts';
import type { TableEntry } from './sessionTable.ts';
import type { Bucket } from './admission.ts';

export interface ClientSession extends TableEntry, Bucket, OriginSession {
  id: number;
  address: string;
  port: number;
  /** The ingress socket the client talks to: replies leave from it. */
  listener: UdpSocketIo;
  nextSeq: number;
  /** Consistent-hash key shared by every cluster for this session. */
  hashKey: number;
  /** Reply mode: this session's own socket, connected to its backend. */
  upstream: UdpSocketIo | undefined;
  upstreamBackend: Backend | undefined;
  upstreamConnected: boolean;
  /** Datagrams that arrived while the upstream socket was still connecting (bounded). */
  upstreamQueue: Buffer[] | undefined;
  backend: Backend | undefined;
  backendVersion: number;
}

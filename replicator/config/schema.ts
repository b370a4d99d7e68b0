// The replicator's configuration: one zod schema is the type, the validator and the reference
// (README "Configuration reference" mirrors it). Defaults live here and nowhere else.
import { isIP } from 'node:net';
import { z } from 'zod';
import { MAX_DATA_HEADER_BYTES, RECORD_HEADER_BYTES } from '../protocol/frame.ts';
import { TRAILER_BYTES } from '../protocol/frameAuth.ts';
import { safeMaxFrameBytes, safeMaxPayloadBytes } from '../delivery/payloadBudget.ts';

/** The largest DATA header, one record header and the authentication trailer. */
export const FRAME_OVERHEAD_BYTES = MAX_DATA_HEADER_BYTES + RECORD_HEADER_BYTES + TRAILER_BYTES;

const port = z.number().int().min(1).max(65535);
const hostPort = z
  .string()
  .regex(
    /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/,
    'expected host:port, e.g. 10.0.0.5:5353 or [::1]:5353',
  )
  .refine((v) => {
    // Five digits also match 0 and 65536-99999: the backend pool would refuse them at runtime.
    const m = /:(\d{1,5})$/.exec(v);
    return m === null || (Number(m[1]) >= 1 && Number(m[1]) <= 65535);
  }, 'the port must be 1-65535, e.g. 10.0.0.5:5353');
const cidr = z.string().refine(
  (v) => {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(v);
    if (!m) return false;
    const fam = isIP(m[1]);
    const bits = Number(m[2]);
    return (fam === 4 && bits <= 32) || (fam === 6 && bits <= 128);
  },
  { message: 'expected a CIDR such as 10.0.0.0/8 or 2001:db8::/32' },
);
const name = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, 'use 1-32 lowercase letters, digits or dashes, e.g. aws');

export const peerSchema = z.strictObject({
  /** Member id of the peer replicator (cluster/instance); informational for static peers. */
  cluster: name,
  instance: z.string().min(1).max(63).optional(),
  address: z.string().min(1),
  port,
});

export const replicatorConfigSchema = z
  .strictObject({
    /** The cloud/cluster this replicator runs in: aws, gcp, azure or any short name. */
    cluster: name,
    /** This replicator's id inside its cluster (the pod name in Kubernetes). Defaults to the cluster name. */
    instance: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,63}$/, 'use 1-63 letters, digits, dots, dashes or underscores')
      .optional(),
    /** Namespace of this mesh in etcd: several meshes can share one etcd. */
    mesh: name.default('default'),
    ingress: z
      .strictObject({
        ports: z.array(port).min(1).max(16).default([7001]),
        /** Addresses to bind; "::" listens on IPv6 (and IPv4-mapped where the OS allows). */
        addresses: z.array(z.string().min(1)).min(1).default(['0.0.0.0']),
        /**
         * Largest datagram accepted; larger ones are dropped and counted, never truncated. The default is the
         * largest payload that crosses every cloud pair's VPN unfragmented in one replication frame and
         * reaches a backend behind a PROXY v2 header (delivery/payloadBudget.ts; docs/protocol.md, MTU budget).
         */
        maxPayloadBytes: z.number().int().min(1).max(65000).default(safeMaxPayloadBytes()),
        maxSessions: z.number().int().min(1).max(10_000_000).default(100_000),
        sessionIdleTimeoutMs: z.number().int().min(100).max(86_400_000).default(60_000),
        /** reply: one upstream socket per session relays backend replies; oneway: telemetry/syslog, no replies. */
        mode: z.enum(['reply', 'oneway']).default('reply'),
        /** Client sources allowed (empty: all); checked when a session opens. */
        allowCidrs: z.array(cidr).default([]),
        /** Client sources refused, even when allowed above. */
        denyCidrs: z.array(cidr).default([]),
        /** Per-client token bucket; datagrams over it are dropped and counted (rate_limited). */
        rateLimit: z
          .strictObject({
            datagramsPerSecond: z.number().positive().max(10_000_000),
            burst: z.number().int().min(1).max(10_000_000),
          })
          .optional(),
      })
      .prefault({}),
    replication: z
      .strictObject({
        address: z.string().min(1).default('0.0.0.0'),
        port: port.default(7946),
        /** Address peers should send to (the interconnect address); defaults to address, or 127.0.0.1 for 0.0.0.0. */
        advertiseAddress: z.string().min(1).optional(),
        /** Port peers should send to; differs from port behind a NAT or a test proxy. Defaults to port. */
        advertisePort: port.optional(),
        /** Per-peer retransmit buffer bound; beyond it the oldest unacknowledged datagrams are dropped and counted. */
        retransmitBufferBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .max(4 * 1024 * 1024 * 1024)
          .default(64 * 1024 * 1024),
        /**
         * Largest replication frame (UDP payload, authentication trailer included). The default is the
         * smallest cloud-pair VPN inner MTU (Azure, 1400) minus IPv6 (40) and UDP (8) headers
         * (delivery/payloadBudget.ts).
         */
        maxFrameBytes: z.number().int().min(512).max(65000).default(safeMaxFrameBytes()),
        /**
         * Frame authentication (HMAC-SHA256). Keys come from these files (first signs, all verify: list the
         * new key first during a rollover) and from UDPMESH_CLUSTER_KEY / UDPMESH_CLUSTER_KEY_PREVIOUS.
         */
        auth: z
          .strictObject({
            keyFiles: z.array(z.string().min(1)).max(2).default([]),
            /** Accept unsigned frames (only while turning authentication on across the mesh). */
            allowUnsigned: z.boolean().default(false),
            /**
             * Speak to members whose etcd record has no public key (replicators older than link keys v3)
             * with the cluster-key-only link key, during a rolling upgrade. Off by default: their frames are
             * dropped and counted (no_peer_key), because that key lets any key holder speak as them.
             */
            legacyLinkKeys: z.boolean().default(false),
            /**
             * Run without any key on a non-loopback replication address. Off by default: without a key any
             * host that reaches the port could inject datagrams (docs/protocol.md, "Keys").
             */
            insecure: z.boolean().default(false),
            /** Key files are re-read this often, so a rotated Kubernetes Secret takes effect without a restart. */
            reloadMs: z.number().int().min(1000).max(3_600_000).default(10_000),
          })
          .prefault({}),
        /** Static peers, merged with the members discovered in etcd (used when etcd is unreachable at start). */
        peers: z.array(peerSchema).default([]),
      })
      .prefault({}),
    delivery: z
      .strictObject({
        /** Local service endpoints as host:port; sessions spread over them by consistent hashing. */
        backends: z.array(hostPort).default([]),
        /** Or a DNS name:port resolving to several addresses (a headless Service), re-resolved periodically. */
        dns: hostPort.optional(),
        dnsRefreshMs: z.number().int().min(500).max(3_600_000).default(10_000),
        /** Datagrams held per origin while waiting for a gap to fill. */
        reorderBufferDatagrams: z.number().int().min(16).max(1_000_000).default(8192),
        /** Ignored since protocol v2: only the sender abandons data (docs/protocol.md). Accepted for old files. */
        gapTimeoutMs: z.number().int().min(10).max(600_000).default(2000),
        /**
         * How a backend tells sessions apart, in every cluster (set it mesh-wide): socket = one source
         * socket per session (any UDP service works unchanged); proxy-v2 = a PROXY v2 header with the real
         * client address on every datagram (for backends that speak it); none = remote sessions share one
         * socket per backend. See docs/application-contract.md.
         */
        sessionIdentity: z.enum(['socket', 'proxy-v2', 'none']).default('socket'),
      })
      .prefault({})
      .refine((d) => d.backends.length > 0 || d.dns !== undefined, {
        message: 'set delivery.backends (e.g. ["127.0.0.1:5353"]) or delivery.dns (e.g. "echo.svc:5353")',
        path: ['backends'],
      }),
    /**
     * Socket I/O of the data plane. batched: the udp_batch addon (recvmmsg/sendmmsg, UDP GSO/GRO, one JS
     * callback per batch; Linux, built at install). dgram: Node's sockets, one syscall per datagram. auto:
     * batched when the addon loads, else dgram (the log and /status say why).
     */
    io: z.enum(['auto', 'batched', 'dgram']).default('auto'),
    /** Worker processes sharing the ingress ports with SO_REUSEPORT; each owns the sessions the kernel hashes to it. */
    workers: z.number().int().min(1).max(64).default(1),
    etcd: z
      .strictObject({
        endpoints: z.array(z.string().url('expected a URL such as http://127.0.0.1:2379')).min(1),
        leaseTtlSeconds: z.number().int().min(2).max(300).default(10),
        dialTimeoutMs: z.number().int().min(100).max(60_000).default(3000),
        tls: z
          .strictObject({
            caFile: z.string().min(1),
            certFile: z.string().min(1).optional(),
            keyFile: z.string().min(1).optional(),
          })
          .optional(),
      })
      .optional(),
    metrics: z
      .strictObject({
        address: z.string().min(1).default('0.0.0.0'),
        port: port.default(9100),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      })
      .prefault({}),
    drain: z
      .strictObject({
        /** On SIGTERM: stop taking new sessions, retransmit until every peer acknowledged or this deadline. */
        deadlineMs: z.number().int().min(0).max(600_000).default(10_000),
      })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    if (c.ingress.maxPayloadBytes + FRAME_OVERHEAD_BYTES <= c.replication.maxFrameBytes) return;
    ctx.addIssue({
      code: 'custom',
      path: ['ingress', 'maxPayloadBytes'],
      message:
        `ingress.maxPayloadBytes (${c.ingress.maxPayloadBytes}) + ${FRAME_OVERHEAD_BYTES} bytes of frame headers and ` +
        `trailer must fit replication.maxFrameBytes (${c.replication.maxFrameBytes}): lower maxPayloadBytes to ` +
        `${c.replication.maxFrameBytes - FRAME_OVERHEAD_BYTES} or raise maxFrameBytes`,
    });
  });

export type ReplicatorConfigInput = z.input<typeof replicatorConfigSchema>;
export type ReplicatorConfig = z.output<typeof replicatorConfigSchema>;
export type PeerConfig = z.output<typeof peerSchema>;

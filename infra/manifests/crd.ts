// The UdpReplicator CustomResourceDefinition: spec = the desired replicator deployment in a cluster,
// status = what the replicator observes (peers, lag, sessions), written by replicator/k8s/statusReporter.ts.
import type { K8sObject } from './types.ts';

export const CRD_GROUP = 'udpmesh.io';
export const CRD_VERSION = 'v1alpha1';
export const CRD_PLURAL = 'udpreplicators';

const portSchema = { type: 'integer', minimum: 1, maximum: 65535 };

export function udpReplicatorCrd(): K8sObject {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${CRD_PLURAL}.${CRD_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'udpmesh' } },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: {
        plural: CRD_PLURAL,
        singular: 'udpreplicator',
        kind: 'UdpReplicator',
        listKind: 'UdpReplicatorList',
        shortNames: ['udpr'],
      },
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Cloud', type: 'string', jsonPath: '.spec.cloud' },
            { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
            { name: 'Sessions', type: 'integer', jsonPath: '.status.sessions' },
            { name: 'Etcd', type: 'boolean', jsonPath: '.status.etcdUp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              required: ['spec'],
              properties: {
                spec: {
                  type: 'object',
                  required: [
                    'cloud',
                    'mesh',
                    'image',
                    'replicas',
                    'ingressPorts',
                    'replicationPort',
                    'metricsPort',
                  ],
                  properties: {
                    cloud: { type: 'string', enum: ['aws', 'gcp', 'azure'] },
                    mesh: { type: 'string' },
                    image: { type: 'string' },
                    replicas: { type: 'integer', minimum: 1 },
                    maxReplicas: { type: 'integer', minimum: 1 },
                    ingressPorts: { type: 'array', minItems: 1, items: portSchema },
                    replicationPort: portSchema,
                    metricsPort: portSchema,
                    peers: { type: 'array', items: { type: 'string' } },
                    etcdEndpoints: { type: 'array', items: { type: 'string' } },
                  },
                },
                status: {
                  type: 'object',
                  properties: {
                    peers: {
                      type: 'array',
                      items: {
                        type: 'object',
                        required: ['name', 'up'],
                        properties: {
                          name: { type: 'string' },
                          up: { type: 'boolean' },
                          lagDatagrams: { type: 'integer', minimum: 0 },
                        },
                      },
                    },
                    sessions: { type: 'integer', minimum: 0 },
                    etcdUp: { type: 'boolean' },
                    reporter: { type: 'string' },
                    observedAt: { type: 'string', format: 'date-time' },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
}

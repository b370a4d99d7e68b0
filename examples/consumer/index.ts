// Example consumer: reads a udpmesh stack's outputs through the typed StackReference helper and
// exports where clients should send datagrams. Run as its own Pulumi project with
//   pulumi config set udpmeshStack <org>/udpmesh/prod
import * as pulumi from '@pulumi/pulumi';
import { udpEndpoints, udpmeshStackOutputs } from '../../infra/outputs.ts';

const cfg = new pulumi.Config();
const mesh = udpmeshStackOutputs(cfg.require('udpmeshStack'));

export const endpoints = mesh.apply((o) =>
  udpEndpoints(o).map((e) => `${e.cloud}: ${e.address}:${e.ports.join(',')}`),
);
export const etcd = mesh.apply((o) => o.etcdClientEndpoints);
export const contractVersion = mesh.apply((o) => o.contractVersion);

// Pulumi entry point (Pulumi.yaml main). Validates the stack config and deploys the estate; the
// exported names are the outputs contract in infra/outputs.ts / docs/infra.md.
import { udpmeshProgram } from './program.ts';

const outputs = await udpmeshProgram();

export const contractVersion = outputs.contractVersion;
export const mesh = outputs.mesh;
export const clouds = outputs.clouds;
export const udpPorts = outputs.udpPorts;
export const etcdClientEndpoints = outputs.etcdClientEndpoints;
export const grafanaUrl = outputs.grafanaUrl;
export const target = outputs.target;
export const prometheusUrl = outputs.prometheusUrl;
export const localStateDir = outputs.localStateDir;
export const awsMetricsUrl = outputs.awsMetricsUrl;
export const gcpMetricsUrl = outputs.gcpMetricsUrl;
export const azureMetricsUrl = outputs.azureMetricsUrl;
export const grafanaAdminPassword = outputs.grafanaAdminPassword;
export const udpHostname = outputs.udpHostname;
export const awsClusterName = outputs.awsClusterName;
export const awsKubeconfig = outputs.awsKubeconfig;
export const awsUdpEndpoint = outputs.awsUdpEndpoint;
export const gcpClusterName = outputs.gcpClusterName;
export const gcpKubeconfig = outputs.gcpKubeconfig;
export const gcpUdpEndpoint = outputs.gcpUdpEndpoint;
export const azureClusterName = outputs.azureClusterName;
export const azureKubeconfig = outputs.azureKubeconfig;
export const azureUdpEndpoint = outputs.azureUdpEndpoint;

/* eslint-disable @typescript-eslint/no-explicit-any -- mock inputs and schemas are untyped JSON */
// Mock harness for the Pulumi program: records every registered resource (inputs as the engine would
// see them) and the SDK-side props (to check secretness), runs the program for a spec and waits for
// every resource to finish registering.
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../../infra/config/schema.ts';

export interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  provider: string;
}

export interface RecordedProps {
  type: string;
  name: string;
  props: Record<string, unknown>;
  opts: pulumi.CustomResourceOptions;
  resource: pulumi.Resource;
}

/**
 * What a random password generator may legally return for these inputs, worst case first: a leading
 * '0' when digits are allowed and a special character when specials are allowed (providers reject some
 * such values, e.g. an AWS VPN pre-shared key starting with 0), padded with letters from the name.
 */
export function worstCaseRandom(name: string, inputs: Record<string, any>): string {
  const length = Number(inputs.length ?? 16);
  let s = '';
  if (inputs.numeric !== false) s += '0';
  if (inputs.special !== false) s += '!';
  const letters = name.replace(/[^a-z]/gi, '').toLowerCase() || 'x';
  while (s.length < length) s += letters;
  return s.slice(0, length);
}

const SECRET_SIG = '4dabf18193072939515e22adb298388d';

/** Unwraps secret envelopes the mock monitor leaves in nested inputs. */
export function unwrapSecrets(v: any): any {
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (v && typeof v === 'object') {
    if (v[SECRET_SIG] !== undefined && 'value' in v) return unwrapSecrets(v.value);
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  }
  return v;
}

export function promiseOf<T>(o: pulumi.Input<T> | undefined): Promise<T | undefined> {
  if (o === undefined) return Promise.resolve(undefined);
  return new Promise((resolve) => pulumi.output(o).apply((v) => resolve(v as T)));
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

function mockOutputs(type: string, name: string, inputs: Record<string, any>): Record<string, unknown> {
  switch (type) {
    case 'aws:eks/cluster:Cluster':
      return {
        endpoint: `https://${name}.eks.example`,
        certificateAuthority: { data: b64('ca') },
        vpcConfig: { ...inputs.vpcConfig, clusterSecurityGroupId: 'sg-cluster' },
      };
    case 'azure-native:containerservice:ManagedCluster':
      return { name: inputs.resourceName, identity: { ...inputs.identity, principalId: 'aks-principal' } };
    case 'azure-native:resources:ResourceGroup':
      return { id: `/subscriptions/sub/resourceGroups/${inputs.resourceGroupName}` };
    case 'gcp:container/cluster:Cluster':
      return { endpoint: '203.0.113.10', masterAuth: { clusterCaCertificate: b64('ca') } };
    case 'gcp:compute/haVpnGateway:HaVpnGateway':
      return {
        vpnInterfaces: [
          { id: 0, ipAddress: '198.51.100.1' },
          { id: 1, ipAddress: '198.51.100.2' },
        ],
      };
    case 'aws:ec2/vpnConnection:VpnConnection':
      return { tunnel1Address: `192.0.2.${name.length}`, tunnel2Address: `192.0.2.${name.length + 100}` };
    case 'azure-native:network:PublicIPAddress':
      return { ipAddress: `203.0.113.${name.endsWith('0') ? 20 : 21}` };
    case 'random:index/randomPassword:RandomPassword':
    case 'random:index/randomString:RandomString':
      return { result: worstCaseRandom(name, inputs) };
    case 'tls:index/privateKey:PrivateKey':
      return { privateKeyPem: `-----BEGIN PRIVATE KEY-----\n${name}\n-----END PRIVATE KEY-----\n` };
    case 'tls:index/selfSignedCert:SelfSignedCert':
    case 'tls:index/locallySignedCert:LocallySignedCert':
      return { certPem: `-----BEGIN CERTIFICATE-----\n${name}\n-----END CERTIFICATE-----\n` };
    case 'tls:index/certRequest:CertRequest':
      return { certRequestPem: `csr-${name}` };
    case 'kubernetes:core/v1:Service':
      // AWS load balancers have DNS names; GCP and Azure ones report an IP.
      if (inputs.spec?.type === 'LoadBalancer' && /^(gcp|azure)-/.test(name))
        return {
          status: { loadBalancer: { ingress: [{ ip: `203.0.113.${name.startsWith('gcp') ? 30 : 40}` }] } },
        };
      return inputs.spec?.type === 'LoadBalancer' || name.endsWith('-grafana')
        ? { status: { loadBalancer: { ingress: [{ hostname: `${name}.lb.example` }] } } }
        : {};
    case 'aws:route53/healthCheck:HealthCheck':
      return { id: `hc-${name}` };
    default:
      return {};
  }
}

export interface RunResult {
  resources: Registered[];
  props: RecordedProps[];
  outputs: Record<string, unknown>;
  rawOutputs: Record<string, unknown>;
}

/** Installs the cloud mocks; every registered resource is appended to `resources`. */
export async function installMocks(resources: Registered[]): Promise<void> {
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        const state = { ...args.inputs, ...mockOutputs(args.type, args.name, args.inputs) };
        resources.push({
          type: args.type,
          name: args.name,
          inputs: unwrapSecrets(args.inputs),
          provider: args.provider ?? '',
        });
        const id = typeof state.id === 'string' ? state.id : `${args.name}-id`;
        return { id, state };
      },
      call(args) {
        if (args.token === 'azure-native:containerservice:listManagedClusterUserCredentials') {
          return { kubeconfigs: [{ name: 'clusterUser', value: b64('apiVersion: v1\nkind: Config\n') }] };
        }
        if (args.token === 'aws:lb/getHostedZoneId:getHostedZoneId') return { id: 'Z26RNL4JYFTOTI' };
        if (args.token === 'azure-native:authorization:getClientConfig') {
          return {
            subscriptionId: '00000000-0000-0000-0000-000000000000',
            tenantId: 't',
            clientId: 'c',
            objectId: 'o',
          };
        }
        return {};
      },
    },
    'udpmesh',
    'test',
    false,
  );
}

export async function runProgram(spec: StackConfig): Promise<RunResult> {
  const resources: Registered[] = [];
  await installMocks(resources);
  const props: RecordedProps[] = [];
  const created: pulumi.Resource[] = [];
  const { udpmeshProgram } = await import('../../infra/program.ts');
  const outputs = await udpmeshProgram({
    spec,
    transformations: [
      (args) => {
        props.push({
          type: args.type,
          name: args.name,
          props: args.props,
          opts: args.opts,
          resource: args.resource,
        });
        created.push(args.resource);
        return undefined;
      },
    ],
  });
  // Wait until every resource is registered.
  await Promise.all(created.map((r) => promiseOf(r.urn)));
  const resolved: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(outputs)) if (v !== undefined) resolved[k] = await promiseOf(v);
  return { resources, props, outputs: resolved, rawOutputs: outputs as Record<string, unknown> };
}

export function ofType(r: RunResult, type: string): Registered[] {
  return r.resources.filter((x) => x.type === type);
}

// One global name for clients: Route 53 weighted A records, one per cloud's UDP load balancer, each tied
// to a Route 53 health check that asks the replicator itself (HTTP /readyz on the metrics port, served
// through the same load balancer as the datagrams: a TCP port on the UDP Service, outside the sidecar).
// An unhealthy cloud's record is withdrawn from answers; when every record is unhealthy Route 53 answers
// with all of them (fail open). AWS's record is an alias to the NLB (its address set changes); GCP's and
// Azure's are plain A records with the load balancer IP and the configured TTL.
//
// Failover time = failureThreshold x interval (detection, default 3 x 10 s) + TTL (default 30 s) + any
// resolver that clamps TTLs upward: about a minute. docs/infra.md explains what happens to sessions.
import * as aws from '@pulumi/aws';
import * as pulumi from '@pulumi/pulumi';
import type { Cloud, StackConfig } from '../config/schema.ts';

export interface GlobalDnsArgs {
  spec: StackConfig;
  /** Public address (hostname or IP) of each enabled cloud's UDP load balancer. */
  endpoints: Partial<Record<Cloud, pulumi.Output<string>>>;
  /** The AWS provider to use (the EKS one when AWS is enabled; else one is created for Route 53). */
  awsProvider?: aws.Provider;
}

const isIp = (s: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(s);

export class GlobalDns extends pulumi.ComponentResource {
  readonly hostname: pulumi.Output<string>;

  constructor(name: string, args: GlobalDnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:GlobalDns', name, {}, opts);
    const { spec } = args;
    const dns = spec.aws.globalDns;
    if (!dns) throw new Error('GlobalDns needs udpmesh:aws.globalDns');
    const provider =
      args.awsProvider ??
      new aws.Provider(`${name}-provider`, { region: spec.aws.region as aws.Region }, { parent: this });
    const p = { parent: this, provider };
    const nlbZone = aws.lb.getHostedZoneIdOutput(
      { loadBalancerType: 'network', region: spec.aws.region },
      { parent: this, provider },
    );
    for (const [cloud, endpoint] of Object.entries(args.endpoints) as [Cloud, pulumi.Output<string>][]) {
      const check = new aws.route53.HealthCheck(
        `${name}-${cloud}-check`,
        {
          type: 'HTTP',
          resourcePath: '/readyz',
          port: spec.replicator.metricsPort,
          ipAddress: endpoint.apply((e) => (isIp(e) ? e : undefined)) as pulumi.Output<string>,
          fqdn: endpoint.apply((e) => (isIp(e) ? undefined : e)) as pulumi.Output<string>,
          requestInterval: dns.healthCheckIntervalSeconds,
          failureThreshold: dns.failureThreshold,
          tags: { Name: `${spec.mesh}-${cloud}-udp` },
        },
        p,
      );
      const common = {
        zoneId: dns.hostedZoneId,
        name: dns.name,
        type: 'A',
        setIdentifier: `${spec.mesh}-${cloud}`,
        weightedRoutingPolicies: [{ weight: 1 }],
        healthCheckId: check.id,
      };
      new aws.route53.Record(
        `${name}-${cloud}`,
        cloud === 'aws'
          ? {
              ...common,
              aliases: [{ name: endpoint, zoneId: nlbZone.id, evaluateTargetHealth: true }],
            }
          : { ...common, ttl: dns.ttl, records: [endpoint] },
        p,
      );
    }
    this.hostname = pulumi.output(dns.name);
    this.registerOutputs({ hostname: this.hostname });
  }
}

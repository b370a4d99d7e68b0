// EKS: VPC with public/private subnets over the availability zones, IAM roles, the cluster and a
// managed node group, plus the AWS Load Balancer Controller that implements the NLB annotations.
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../config/schema.ts';
import { enabledClouds } from '../config/schema.ts';
import { advertisedRanges } from '../interconnect/plan.ts';
import { awsSubnets } from '../config/network.ts';
import type { ClusterHandle } from './types.ts';

export interface AwsClusterArgs {
  spec: StackConfig;
}

export class AwsCluster extends pulumi.ComponentResource implements ClusterHandle {
  readonly cloud = 'aws' as const;
  readonly vpc: aws.ec2.Vpc;
  readonly privateRouteTable: aws.ec2.RouteTable;
  readonly publicRouteTable: aws.ec2.RouteTable;
  readonly cluster: aws.eks.Cluster;
  readonly nodeGroup: aws.eks.NodeGroup;
  readonly clusterName: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly awsProvider: aws.Provider;

  constructor(name: string, args: AwsClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:AwsCluster', name, {}, opts);
    const { spec } = args;
    const a = spec.aws;
    const tags = { 'udpmesh.io/mesh': spec.mesh, 'app.kubernetes.io/managed-by': 'pulumi' };
    const clusterName = `${spec.mesh}-aws`;
    this.awsProvider = new aws.Provider(
      `${name}-provider`,
      { region: a.region as aws.Region, defaultTags: { tags } },
      { parent: this },
    );
    const p = { parent: this, provider: this.awsProvider };

    this.vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      {
        cidrBlock: a.vpcCidr,
        enableDnsHostnames: true,
        enableDnsSupport: true,
        tags: { Name: `${spec.mesh}-aws` },
      },
      p,
    );
    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: this.vpc.id }, p);
    this.publicRouteTable = new aws.ec2.RouteTable(
      `${name}-public`,
      { vpcId: this.vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }] },
      p,
    );
    const plan = awsSubnets(spec);
    const subnets = plan.map(
      (s) =>
        new aws.ec2.Subnet(
          `${name}-${s.public ? 'public' : 'private'}-${s.az}`,
          {
            vpcId: this.vpc.id,
            cidrBlock: s.cidr,
            availabilityZone: s.az,
            mapPublicIpOnLaunch: s.public,
            tags: {
              Name: s.name,
              [`kubernetes.io/cluster/${clusterName}`]: 'shared',
              ...(s.public ? { 'kubernetes.io/role/elb': '1' } : { 'kubernetes.io/role/internal-elb': '1' }),
            },
          },
          p,
        ),
    );
    const publicSubnets = subnets.filter((_, i) => plan[i].public);
    const privateSubnets = subnets.filter((_, i) => !plan[i].public);
    // One NAT gateway keeps the bill down; use one per AZ for production egress HA.
    const eip = new aws.ec2.Eip(`${name}-nat`, { domain: 'vpc' }, p);
    const nat = new aws.ec2.NatGateway(
      `${name}-nat`,
      { allocationId: eip.id, subnetId: publicSubnets[0].id },
      { ...p, dependsOn: [igw] },
    );
    this.privateRouteTable = new aws.ec2.RouteTable(
      `${name}-private`,
      { vpcId: this.vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }] },
      p,
    );
    publicSubnets.forEach(
      (s, i) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-public-${i}`,
          { subnetId: s.id, routeTableId: this.publicRouteTable.id },
          p,
        ),
    );
    privateSubnets.forEach(
      (s, i) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-private-${i}`,
          { subnetId: s.id, routeTableId: this.privateRouteTable.id },
          p,
        ),
    );

    const assume = (service: string) =>
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: service }, Action: 'sts:AssumeRole' }],
      });
    const clusterRole = new aws.iam.Role(
      `${name}-cluster-role`,
      { assumeRolePolicy: assume('eks.amazonaws.com') },
      p,
    );
    new aws.iam.RolePolicyAttachment(
      `${name}-cluster-policy`,
      { role: clusterRole.name, policyArn: 'arn:aws:iam::aws:policy/AmazonEKSClusterPolicy' },
      p,
    );
    const nodeRole = new aws.iam.Role(
      `${name}-node-role`,
      { assumeRolePolicy: assume('ec2.amazonaws.com') },
      p,
    );
    const nodePolicies = [
      'arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy',
      'arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy',
      'arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly',
      // The AWS Load Balancer Controller runs on the nodes; production should use IRSA/Pod Identity instead.
      'arn:aws:iam::aws:policy/ElasticLoadBalancingFullAccess',
    ];
    const attachments = nodePolicies.map(
      (arn, i) =>
        new aws.iam.RolePolicyAttachment(
          `${name}-node-policy-${i}`,
          { role: nodeRole.name, policyArn: arn },
          p,
        ),
    );

    this.cluster = new aws.eks.Cluster(
      `${name}-eks`,
      {
        name: clusterName,
        version: a.kubernetesVersion,
        roleArn: clusterRole.arn,
        vpcConfig: {
          subnetIds: privateSubnets.map((s) => s.id),
          endpointPrivateAccess: true,
          endpointPublicAccess: true,
        },
        kubernetesNetworkConfig: { serviceIpv4Cidr: a.serviceCidr },
        accessConfig: { authenticationMode: 'API_AND_CONFIG_MAP' },
      },
      p,
    );
    this.nodeGroup = new aws.eks.NodeGroup(
      `${name}-nodes`,
      {
        clusterName: this.cluster.name,
        nodeRoleArn: nodeRole.arn,
        subnetIds: privateSubnets.map((s) => s.id),
        instanceTypes: [a.nodePool.machineType],
        diskSize: a.nodePool.diskSizeGb,
        scalingConfig: {
          minSize: a.nodePool.minNodes,
          maxSize: a.nodePool.maxNodes,
          desiredSize: a.nodePool.desiredNodes,
        },
        updateConfig: { maxUnavailable: 1 },
      },
      { ...p, dependsOn: attachments },
    );
    // Allow the other clouds' ranges (over the VPN) into the cluster security group.
    for (const cloud of enabledClouds(spec).filter((c) => c !== 'aws')) {
      advertisedRanges(spec, cloud).forEach(
        (cidr, i) =>
          new aws.vpc.SecurityGroupIngressRule(
            `${name}-from-${cloud}-${i}`,
            {
              securityGroupId: this.cluster.vpcConfig.clusterSecurityGroupId,
              cidrIpv4: cidr,
              ipProtocol: '-1',
              description: `udpmesh interconnect: ${cloud} ${cidr}`,
            },
            p,
          ),
      );
    }

    this.clusterName = this.cluster.name;
    this.kubeconfig = pulumi.secret(
      pulumi
        .all([this.cluster.name, this.cluster.endpoint, this.cluster.certificateAuthority])
        .apply(([n, endpoint, ca]) =>
          JSON.stringify({
            apiVersion: 'v1',
            kind: 'Config',
            clusters: [{ name: n, cluster: { server: endpoint, 'certificate-authority-data': ca?.data } }],
            contexts: [{ name: n, context: { cluster: n, user: n } }],
            'current-context': n,
            users: [
              {
                name: n,
                user: {
                  exec: {
                    apiVersion: 'client.authentication.k8s.io/v1beta1',
                    command: 'aws',
                    args: ['eks', 'get-token', '--cluster-name', n, '--region', a.region],
                  },
                },
              },
            ],
          }),
        ),
    );
    this.provider = new k8s.Provider(
      `${name}-k8s`,
      { kubeconfig: this.kubeconfig, enableServerSideApply: true },
      { parent: this, dependsOn: [this.nodeGroup] },
    );
    new k8s.helm.v3.Release(
      `${name}-aws-lb-controller`,
      {
        chart: 'aws-load-balancer-controller',
        version: '1.13.4',
        namespace: 'kube-system',
        repositoryOpts: { repo: 'https://aws.github.io/eks-charts' },
        values: { clusterName, region: a.region, vpcId: this.vpc.id },
      },
      { parent: this, provider: this.provider },
    );
    this.registerOutputs({ clusterName: this.clusterName, kubeconfig: this.kubeconfig, vpcId: this.vpc.id });
  }
}

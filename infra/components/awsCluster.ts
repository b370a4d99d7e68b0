// EKS: VPC with public/private subnets over the availability zones, IAM roles, the cluster and a
// managed node group, plus what a bare EKS cluster lacks for udpmesh (docs/infra-review.md):
// - the VPC CNI add-on with its network-policy agent (NetworkPolicies are not enforced otherwise);
// - EKS Pod Identity (agent add-on) so add-ons get IAM through their own service accounts;
// - the EBS CSI driver add-on and a default gp3 StorageClass (EKS >= 1.30 has neither: PVCs stay Pending);
// - the AWS Load Balancer Controller with its own IAM policy on its service account (not the node role);
// - metrics-server (an HPA on CPU reads nothing without it).
// The cluster and node group depend on their role policy attachments so destroy detaches last.
import * as aws from '@pulumi/aws';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { StackConfig } from '../config/schema.ts';
import { enabledClouds } from '../config/schema.ts';
import { advertisedRanges } from '../interconnect/plan.ts';
import { awsSubnets } from '../config/network.ts';
import { awsLbControllerPolicy } from './awsLbControllerPolicy.ts';
import type { ClusterAddons, ClusterHandle } from './types.ts';
import { NO_ADDONS } from './types.ts';

/** Trust policy for roles assumed through EKS Pod Identity. */
const POD_IDENTITY_TRUST = JSON.stringify({
  Version: '2012-10-17',
  Statement: [
    {
      Effect: 'Allow',
      Principal: { Service: 'pods.eks.amazonaws.com' },
      Action: ['sts:AssumeRole', 'sts:TagSession'],
    },
  ],
});

export interface AwsClusterArgs {
  spec: StackConfig;
}

export class AwsCluster extends pulumi.ComponentResource implements ClusterHandle {
  readonly cloud = 'aws' as const;
  readonly vpc?: aws.ec2.Vpc;
  readonly privateRouteTable?: aws.ec2.RouteTable;
  readonly publicRouteTable?: aws.ec2.RouteTable;
  readonly cluster?: aws.eks.Cluster;
  readonly nodeGroup?: aws.eks.NodeGroup;
  readonly clusterName: pulumi.Output<string>;
  readonly kubeconfig: pulumi.Output<string>;
  readonly provider: k8s.Provider;
  readonly awsProvider: aws.Provider;
  readonly addons: ClusterAddons;
  /** What the interconnect attaches to: the VPC and the route tables that learn the other clouds' routes. */
  readonly net: { vpcId: pulumi.Input<string>; routeTableIds: pulumi.Input<string>[] };
  readonly lbController?: k8s.helm.v3.Release;

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
    const existing = a.existingCluster;
    if (existing) {
      // An existing cluster: only its kubeconfig and network parts. Its add-ons are prerequisites
      // (docs/infra.md "Existing clusters"): AWS LB controller, EBS CSI + default StorageClass,
      // metrics-server and VPC CNI network policy.
      this.clusterName = pulumi.output(existing.name);
      this.kubeconfig = pulumi.secret(existing.kubeconfig);
      this.provider = new k8s.Provider(
        `${name}-k8s`,
        { kubeconfig: this.kubeconfig, enableServerSideApply: true },
        { parent: this },
      );
      this.net = { vpcId: existing.vpcId, routeTableIds: existing.routeTableIds };
      this.addons = NO_ADDONS;
      this.allowMeshIngress(name, spec, existing.clusterSecurityGroupId, p);
      this.registerOutputs({ clusterName: this.clusterName, kubeconfig: this.kubeconfig });
      return;
    }

    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      {
        cidrBlock: a.vpcCidr,
        enableDnsHostnames: true,
        enableDnsSupport: true,
        tags: { Name: `${spec.mesh}-aws` },
      },
      p,
    );
    const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id }, p);
    const publicRouteTable = new aws.ec2.RouteTable(
      `${name}-public`,
      { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', gatewayId: igw.id }] },
      p,
    );
    this.vpc = vpc;
    const plan = awsSubnets(spec);
    const subnets = plan.map(
      (s) =>
        new aws.ec2.Subnet(
          `${name}-${s.public ? 'public' : 'private'}-${s.az}`,
          {
            vpcId: vpc.id,
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
    this.publicRouteTable = publicRouteTable;
    const publicSubnets = subnets.filter((_, i) => plan[i].public);
    const privateSubnets = subnets.filter((_, i) => !plan[i].public);
    // One NAT gateway keeps the bill down; use one per AZ for production egress HA.
    const eip = new aws.ec2.Eip(`${name}-nat`, { domain: 'vpc' }, p);
    const nat = new aws.ec2.NatGateway(
      `${name}-nat`,
      { allocationId: eip.id, subnetId: publicSubnets[0].id },
      { ...p, dependsOn: [igw] },
    );
    const privateRouteTable = new aws.ec2.RouteTable(
      `${name}-private`,
      { vpcId: vpc.id, routes: [{ cidrBlock: '0.0.0.0/0', natGatewayId: nat.id }] },
      p,
    );
    this.privateRouteTable = privateRouteTable;
    publicSubnets.forEach(
      (s, i) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-public-${i}`,
          { subnetId: s.id, routeTableId: publicRouteTable.id },
          p,
        ),
    );
    privateSubnets.forEach(
      (s, i) =>
        new aws.ec2.RouteTableAssociation(
          `${name}-private-${i}`,
          { subnetId: s.id, routeTableId: privateRouteTable.id },
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
    const clusterPolicy = new aws.iam.RolePolicyAttachment(
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
          publicAccessCidrs: a.apiServerAuthorizedCidrs,
        },
        kubernetesNetworkConfig: { serviceIpv4Cidr: a.serviceCidr },
        accessConfig: { authenticationMode: 'API_AND_CONFIG_MAP' },
      },
      { ...p, dependsOn: [clusterPolicy] },
    );
    // VPC CNI as a managed add-on with its network-policy agent: without it NetworkPolicies are accepted
    // by the API server and silently not enforced.
    const vpcCni = new aws.eks.Addon(
      `${name}-vpc-cni`,
      {
        clusterName: this.cluster.name,
        addonName: 'vpc-cni',
        resolveConflictsOnCreate: 'OVERWRITE',
        resolveConflictsOnUpdate: 'OVERWRITE',
        configurationValues: JSON.stringify({ enableNetworkPolicy: 'true' }),
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
      { ...p, dependsOn: [...attachments, vpcCni] },
    );
    const podIdentityAgent = new aws.eks.Addon(
      `${name}-pod-identity-agent`,
      { clusterName: this.cluster.name, addonName: 'eks-pod-identity-agent' },
      { ...p, dependsOn: [this.nodeGroup] },
    );
    const podRole = (id: string, policyArn: pulumi.Input<string>) => {
      const role = new aws.iam.Role(`${name}-${id}-role`, { assumeRolePolicy: POD_IDENTITY_TRUST }, p);
      const attachment = new aws.iam.RolePolicyAttachment(
        `${name}-${id}-policy`,
        { role: role.name, policyArn },
        p,
      );
      return { role, attachment };
    };
    // EBS CSI driver: its controller's IAM comes through Pod Identity on ebs-csi-controller-sa.
    const ebs = podRole('ebs-csi', 'arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy');
    const ebsAddon = new aws.eks.Addon(
      `${name}-ebs-csi`,
      {
        clusterName: this.cluster.name,
        addonName: 'aws-ebs-csi-driver',
        podIdentityAssociations: [{ roleArn: ebs.role.arn, serviceAccount: 'ebs-csi-controller-sa' }],
      },
      { ...p, dependsOn: [this.nodeGroup, podIdentityAgent, ebs.attachment] },
    );
    // The AWS Load Balancer Controller's own policy, on its own service account.
    const lbPolicy = new aws.iam.Policy(
      `${name}-lb-controller`,
      {
        description: `AWS Load Balancer Controller for ${clusterName}`,
        policy: JSON.stringify(awsLbControllerPolicy()),
      },
      p,
    );
    const lb = podRole('lb-controller', lbPolicy.arn);
    const lbAssociation = new aws.eks.PodIdentityAssociation(
      `${name}-lb-controller`,
      {
        clusterName: this.cluster.name,
        namespace: 'kube-system',
        serviceAccount: 'aws-load-balancer-controller',
        roleArn: lb.role.arn,
      },
      { ...p, dependsOn: [podIdentityAgent, lb.attachment] },
    );
    this.allowMeshIngress(name, spec, this.cluster.vpcConfig.clusterSecurityGroupId, p);
    this.net = { vpcId: vpc.id, routeTableIds: [privateRouteTable.id, publicRouteTable.id] };

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
    const k = { parent: this, provider: this.provider };
    this.lbController = new k8s.helm.v3.Release(
      `${name}-aws-lb-controller`,
      {
        chart: 'aws-load-balancer-controller',
        version: '1.13.4',
        namespace: 'kube-system',
        repositoryOpts: { repo: 'https://aws.github.io/eks-charts' },
        values: {
          clusterName,
          region: a.region,
          vpcId: vpc.id,
          serviceAccount: { create: true, name: 'aws-load-balancer-controller' },
          // Two replicas: its webhooks gate every Service and pod in the cluster.
          replicaCount: 2,
        },
      },
      { ...k, dependsOn: [lbAssociation] },
    );
    const metricsServer = new k8s.helm.v3.Release(
      `${name}-metrics-server`,
      {
        chart: 'metrics-server',
        version: '3.13.0',
        namespace: 'kube-system',
        repositoryOpts: { repo: 'https://kubernetes-sigs.github.io/metrics-server/' },
      },
      k,
    );
    // EBS volumes are zonal: bind when the pod is scheduled, in the pod's zone.
    const storageClass = new k8s.storage.v1.StorageClass(
      `${name}-gp3`,
      {
        metadata: {
          name: 'gp3',
          annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' },
        },
        provisioner: 'ebs.csi.aws.com',
        volumeBindingMode: 'WaitForFirstConsumer',
        allowVolumeExpansion: true,
        reclaimPolicy: 'Delete',
        parameters: { type: 'gp3', encrypted: 'true' },
      },
      { ...k, dependsOn: [ebsAddon] },
    );
    this.addons = {
      loadBalancers: [this.lbController],
      storage: [storageClass],
      metrics: [metricsServer],
      networkPolicy: [vpcCni],
    };
    this.registerOutputs({ clusterName: this.clusterName, kubeconfig: this.kubeconfig, vpcId: vpc.id });
  }

  /** Allow the other clouds' ranges (over the VPN) into the cluster security group. */
  private allowMeshIngress(
    name: string,
    spec: StackConfig,
    securityGroupId: pulumi.Input<string>,
    p: pulumi.CustomResourceOptions,
  ): void {
    for (const cloud of enabledClouds(spec).filter((c) => c !== 'aws')) {
      advertisedRanges(spec, cloud).forEach(
        (cidr, i) =>
          new aws.vpc.SecurityGroupIngressRule(
            `${name}-from-${cloud}-${i}`,
            {
              securityGroupId,
              cidrIpv4: cidr,
              ipProtocol: '-1',
              description: `udpmesh interconnect: ${cloud} ${cidr}`,
            },
            p,
          ),
      );
    }
  }
}

// etcd PKI generated in the program (@pulumi/tls): a CA, per member a serving certificate (SANs = its
// fixed interconnect address and in-cluster names) and a SAN-less peer client certificate, and a client
// certificate for the replicators. Private keys are secrets.
//
// Why a separate SAN-less peer client certificate: with --peer-client-cert-auth, etcd >= 3.2 checks the
// *remote IP* of every incoming peer connection against the IP/DNS SANs of the client certificate
// (client/pkg/transport/listener.go checkCertSAN, etcd PR #8895). Across clusters that remote IP is a node,
// pod or NAT address behind the VPN, never the member's own internal-LB address, so a certificate naming
// that address is refused. checkCertSAN skips certificates without any SAN; --peer-cert-allowed-cn then
// admits only certificates with the mesh's peer CN signed by the mesh's own CA.
import * as pulumi from '@pulumi/pulumi';
import * as tls from '@pulumi/tls';
import type { StackConfig } from '../config/schema.ts';
import { etcdMembers } from '../config/network.ts';
import { etcdPeerCn } from '../manifests/etcd.ts';

export interface EtcdPkiArgs {
  spec: StackConfig;
}

export interface CertPair {
  cert: pulumi.Output<string>;
  key: pulumi.Output<string>;
}

export interface MemberCerts extends CertPair {
  peerClientCert: pulumi.Output<string>;
  peerClientKey: pulumi.Output<string>;
}

export class EtcdPki extends pulumi.ComponentResource {
  readonly caCert: pulumi.Output<string>;
  readonly members: Record<string, MemberCerts> = {};
  readonly client: CertPair;

  constructor(name: string, args: EtcdPkiArgs, opts?: pulumi.ComponentResourceOptions) {
    super('udpmesh:infra:EtcdPki', name, {}, opts);
    const { spec } = args;
    const p = { parent: this };
    const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: 'ECDSA', ecdsaCurve: 'P256' }, p);
    const ca = new tls.SelfSignedCert(
      `${name}-ca`,
      {
        privateKeyPem: caKey.privateKeyPem,
        isCaCertificate: true,
        validityPeriodHours: 24 * 365 * 5,
        allowedUses: ['cert_signing', 'crl_signing', 'digital_signature'],
        subject: { commonName: `${spec.mesh} etcd CA`, organization: 'udpmesh' },
      },
      p,
    );
    this.caCert = ca.certPem;
    const issue = (
      id: string,
      commonName: string,
      uses: string[],
      ipAddresses: string[],
      dnsNames: string[],
    ): CertPair => {
      const key = new tls.PrivateKey(`${name}-${id}-key`, { algorithm: 'ECDSA', ecdsaCurve: 'P256' }, p);
      const csr = new tls.CertRequest(
        `${name}-${id}-csr`,
        {
          privateKeyPem: key.privateKeyPem,
          subject: { commonName, organization: 'udpmesh' },
          ipAddresses,
          dnsNames,
        },
        p,
      );
      const cert = new tls.LocallySignedCert(
        `${name}-${id}-cert`,
        {
          certRequestPem: csr.certRequestPem,
          caPrivateKeyPem: caKey.privateKeyPem,
          caCertPem: ca.certPem,
          validityPeriodHours: 24 * 365,
          earlyRenewalHours: 24 * 30,
          allowedUses: uses,
        },
        p,
      );
      return { cert: cert.certPem, key: pulumi.secret(key.privateKeyPem) };
    };
    for (const m of etcdMembers(spec)) {
      const ns = spec.namespace;
      const serving = issue(
        m.name,
        m.name,
        ['digital_signature', 'key_encipherment', 'server_auth', 'client_auth'],
        [m.address, '127.0.0.1'],
        [
          m.name,
          `${m.name}.${ns}`,
          `${m.name}.${ns}.svc`,
          `${m.name}-0.etcd-headless.${ns}.svc`,
          'localhost',
        ],
      );
      const peerClient = issue(
        `${m.name}-peer-client`,
        etcdPeerCn(spec.mesh),
        ['digital_signature', 'key_encipherment', 'client_auth'],
        [],
        [],
      );
      this.members[m.name] = {
        ...serving,
        peerClientCert: peerClient.cert,
        peerClientKey: peerClient.key,
      };
    }
    this.client = issue(
      'replicator-client',
      'udpmesh-replicator',
      ['digital_signature', 'key_encipherment', 'client_auth'],
      [],
      [],
    );
    this.registerOutputs({ caCert: this.caCert });
  }
}

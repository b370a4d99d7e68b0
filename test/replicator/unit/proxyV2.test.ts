// The PROXY v2 DGRAM header as HAProxy's proxy-protocol.txt (section 2.2) lays it out, byte for byte,
// and the session announcements that carry a client's address to the other clusters.
import assert from 'node:assert/strict';
import {
  decodeProxyV2,
  encodeProxyV2,
  ipv6Bytes,
  PROXY_V2_SIGNATURE,
  sessionTlv,
  TLV_ORIGIN_CLUSTER,
  TLV_SESSION,
} from '../../../replicator/delivery/proxyV2.ts';
import { decodeAnnounce, encodeAnnounce } from '../../../replicator/delivery/sessionAnnounce.ts';

describe('PROXY protocol v2 (DGRAM)', () => {
  it('IPv4: signature, version 2 PROXY, INET+DGRAM, length, addresses, ports, TLVs in the spec layout', () => {
    const h = encodeProxyV2({ address: '203.0.113.7', port: 40000 }, { address: '10.0.0.1', port: 7001 }, [
      [TLV_ORIGIN_CLUSTER, Buffer.from('aws')],
    ]);
    const expected = Buffer.concat([
      PROXY_V2_SIGNATURE,
      Buffer.from([0x21, 0x12, 0x00, 12 + 3 + 3]),
      Buffer.from([203, 0, 113, 7, 10, 0, 0, 1, 0x9c, 0x40, 0x1b, 0x59]),
      Buffer.from([0xe0, 0x00, 0x03]),
      Buffer.from('aws'),
    ]);
    assert.deepEqual(h, expected);
  });

  it('round-trips IPv6, maps ::ffff:a.b.c.d to IPv4, and carries the session TLV', () => {
    const tlv = sessionTlv(0xdeadbeef, 7, 42);
    const six = decodeProxyV2(
      Buffer.concat([
        encodeProxyV2({ address: '2001:db8::1', port: 5 }, { address: '::', port: 7001 }, [
          [TLV_SESSION, tlv],
        ]),
        Buffer.from('hello'),
      ]),
    );
    assert.ok(six.ok);
    assert.equal(six.header.family, 6);
    assert.deepEqual(six.header.source, { address: '2001:db8::1', port: 5 });
    assert.deepEqual(six.header.destination, { address: '::', port: 7001 });
    assert.deepEqual(six.header.tlvs.get(TLV_SESSION), tlv);
    assert.equal(six.payload.toString(), 'hello');
    const mapped = decodeProxyV2(
      encodeProxyV2({ address: '::ffff:192.0.2.9', port: 9 }, { address: '::', port: 7001 }, []),
    );
    assert.ok(mapped.ok);
    assert.equal(mapped.header.family, 4);
    assert.deepEqual(mapped.header.source, { address: '192.0.2.9', port: 9 });
    assert.deepEqual(mapped.header.destination, { address: '0.0.0.0', port: 7001 });
  });

  it('an unknown source gives an UNSPEC header that still carries the TLVs', () => {
    const d = decodeProxyV2(encodeProxyV2(undefined, undefined, [[TLV_ORIGIN_CLUSTER, Buffer.from('gcp')]]));
    assert.ok(d.ok);
    assert.equal(d.header.family, 0);
    assert.equal(d.header.source, undefined);
    assert.equal(d.header.tlvs.get(TLV_ORIGIN_CLUSTER)?.toString(), 'gcp');
  });

  it('rejects malformed headers with a reason, never throws', () => {
    const good = encodeProxyV2({ address: '192.0.2.1', port: 1 }, { address: '192.0.2.2', port: 2 }, [
      [0xe0, Buffer.from('x')],
    ]);
    assert.deepEqual(decodeProxyV2(good.subarray(0, 10)), { ok: false, reason: 'truncated' });
    const sig = Buffer.from(good);
    sig[0] = 0;
    assert.deepEqual(decodeProxyV2(sig), { ok: false, reason: 'bad_signature' });
    const ver = Buffer.from(good);
    ver[12] = 0x11;
    assert.deepEqual(decodeProxyV2(ver), { ok: false, reason: 'bad_version' });
    const fam = Buffer.from(good);
    fam[13] = 0x31;
    assert.deepEqual(decodeProxyV2(fam), { ok: false, reason: 'bad_family' });
    const tlv = Buffer.from(good);
    tlv.writeUInt16BE(9, 16 + 12 + 1);
    assert.deepEqual(decodeProxyV2(tlv), { ok: false, reason: 'bad_tlv' });
  });

  it('parses IPv6 text forms', () => {
    assert.equal(ipv6Bytes('::1').toString('hex'), '00000000000000000000000000000001');
    assert.equal(ipv6Bytes('::ffff:1.2.3.4').toString('hex'), '00000000000000000000ffff01020304');
    assert.throws(() => ipv6Bytes('1::2::3'), RangeError);
  });
});

describe('session announcements (records of session 0)', () => {
  it('round-trip IPv4 and IPv6 endpoints, with and without a destination', () => {
    for (const a of [
      {
        session: 1,
        source: { address: '198.51.100.4', port: 53000 },
        destination: { address: '10.1.2.3', port: 7001 },
      },
      { session: 0xffffffff, source: { address: '2001:db8:0:0:0:0:0:9', port: 1 }, destination: undefined },
    ]) {
      const d = decodeAnnounce(encodeAnnounce(a));
      assert.ok(d.ok);
      assert.equal(d.announce.session, a.session);
      assert.equal(d.announce.source.port, a.source.port);
      assert.deepEqual(ipv6OrV4(d.announce.source.address), ipv6OrV4(a.source.address));
      assert.equal(d.announce.destination?.port, a.destination?.port);
    }
  });

  it('rejects unknown kinds, bad families, truncation and trailing bytes', () => {
    const good = encodeAnnounce({
      session: 5,
      source: { address: '192.0.2.1', port: 9 },
      destination: undefined,
    });
    assert.deepEqual(decodeAnnounce(Buffer.from([9])), { ok: false, reason: 'unknown_kind' });
    assert.deepEqual(decodeAnnounce(good.subarray(0, 7)), { ok: false, reason: 'truncated' });
    const fam = Buffer.from(good);
    fam[5] = 5;
    assert.deepEqual(decodeAnnounce(fam), { ok: false, reason: 'bad_family' });
    assert.deepEqual(decodeAnnounce(Buffer.concat([good, Buffer.from([0])])), {
      ok: false,
      reason: 'trailing_bytes',
    });
  });
});

function ipv6OrV4(a: string): string {
  return a.includes(':') ? ipv6Bytes(a).toString('hex') : a;
}

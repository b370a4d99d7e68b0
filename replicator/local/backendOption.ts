// Local mode's `--backend` option: one UDP service behind every cloud (`host:port`), or one per cloud
// (`aws=host:port`), since one service behind three "clouds" receives every datagram three times.
// Separate from main.ts so it can be tested without starting local mode.

export const CLOUDS = ['aws', 'gcp', 'azure'] as const;
export type LocalCloud = (typeof CLOUDS)[number];

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/;

/** `host:port` for every cloud, or `cloud=host:port` for one; later options override earlier ones. */
export function parseBackends(values: readonly string[]): Partial<Record<LocalCloud, string>> {
  const out: Partial<Record<LocalCloud, string>> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const cloud = eq >= 0 ? v.slice(0, eq) : undefined;
    const hp = eq >= 0 ? v.slice(eq + 1) : v;
    if (cloud !== undefined && !(CLOUDS as readonly string[]).includes(cloud))
      throw new Error(`--backend: unknown cloud "${cloud}" in ${v}; use aws, gcp or azure`);
    const m = HOST_PORT.exec(hp);
    const port = m ? Number(/:(\d+)$/.exec(hp)![1]) : 0;
    if (!m || port < 1 || port > 65535)
      throw new Error(
        `--backend: expected host:port or cloud=host:port, e.g. 127.0.0.1:5353 or aws=127.0.0.1:5353, got ${v}`,
      );
    for (const c of cloud ? [cloud as LocalCloud] : CLOUDS) out[c] = hp;
  }
  return out;
}

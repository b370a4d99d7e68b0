// Metrics scraping for tests: parse Prometheus text into {name, labels, value} (parser shared with
// the local-mode dashboard) and pick values out.
export {
  parsePrometheusText,
  scrapeMetrics,
  select,
  sumOf,
  valueOf,
  type Sample,
} from '../../replicator/local/promText.ts';
import { scrapeMetrics, type Sample } from '../../replicator/local/promText.ts';

/** Scrape, returning [] instead of throwing when the endpoint does not answer (process down). */
export async function tryScrape(url: string): Promise<Sample[] | undefined> {
  try {
    return await scrapeMetrics(url, 1500);
  } catch {
    return undefined;
  }
}

/** One line per udpmesh_* sample, for failure messages. */
export function formatSamples(samples: Sample[] | undefined, prefix = 'udpmesh_'): string {
  if (!samples) return '(no answer)';
  return samples
    .filter(
      (s) =>
        s.name.startsWith(prefix) && !s.name.startsWith('udpmesh_process_') && !s.name.endsWith('_bucket'),
    )
    .map((s) => {
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(',');
      return `${s.name}${labels ? `{${labels}}` : ''} ${s.value}`;
    })
    .join('\n');
}

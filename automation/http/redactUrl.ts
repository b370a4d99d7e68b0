// URLs as they are logged: values of query parameters that may carry credentials are replaced, so a
// token sent in the query string (refused: tokens go in the Authorization header) never reaches a log.
const SENSITIVE = /token|key|secret|pass|auth|sig|credential|session/i;

export function redactUrl(url: string): string {
  const i = url.indexOf('?');
  if (i < 0) return url;
  const params = url
    .slice(i + 1)
    .split('&')
    .map((kv) => {
      const eq = kv.indexOf('=');
      const k = eq < 0 ? kv : kv.slice(0, eq);
      let name = k;
      try {
        name = decodeURIComponent(k);
      } catch {
        /* keep raw */
      }
      const v = eq < 0 ? '' : kv.slice(eq + 1);
      return eq < 0 ? k : `${k}=${SENSITIVE.test(name) || /udpm_/.test(v) ? '[redacted]' : v}`;
    });
  return `${url.slice(0, i)}?${params.join('&')}`;
}

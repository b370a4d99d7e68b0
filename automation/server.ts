// Entry point of the automation service: `node dist/automation/server.js` (compiled, production and
// containers) or npm run automation (development).
// node:sqlite prints an ExperimentalWarning on every start; it is noise for operators and breaks
// TOKEN=$(udpmesh token create ...) captures, so that one warning is dropped (others still print)
// before the real entry point (and with it node:sqlite) is loaded.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'ExperimentalWarning' && /SQLite/.test(w.message)) return;
  process.stderr.write(`${w.name}: ${w.message}\n`);
});
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(`usage: node dist/automation/server.js   (development: npm run automation)

The udpmesh automation service (portal API). Takes no arguments; settings are environment variables
(docs/automation.md has the full table): UDPMESH_HOST, UDPMESH_PORT, UDPMESH_DB, UDPMESH_STATE_DIR,
UDPMESH_PROJECT_DIR, UDPMESH_PULUMI_ROOT, UDPMESH_SECRETS_PROVIDER, UDPMESH_MAX_CONCURRENT,
UDPMESH_MAX_QUEUED, UDPMESH_RATE_LIMIT_PER_MINUTE, UDPMESH_BODY_LIMIT, UDPMESH_DRIFT_INTERVAL_MINUTES,
UDPMESH_WEBHOOK_URLS, UDPMESH_WEBHOOK_SECRET; PULUMI_BACKEND_URL and PULUMI_CONFIG_PASSPHRASE as for pulumi.
SIGTERM or SIGINT drains and stops it. Tokens: udpmesh token create <name> <read|operate>.
`);
  process.exit(0);
}
await import('./serverMain.ts');
export {};

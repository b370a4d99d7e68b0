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
await import('./serverMain.ts');
export {};

// Entry point of the udpmesh CLI: npm run -s udpmesh -- <command> or node dist/automation/cli.js.
// node:sqlite prints an ExperimentalWarning on every start; it is noise for operators and breaks
// TOKEN=$(udpmesh token create ...) captures, so that one warning is dropped (others still print)
// before the real entry point (and with it node:sqlite) is loaded.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (w.name === 'ExperimentalWarning' && /SQLite/.test(w.message)) return;
  process.stderr.write(`${w.name}: ${w.message}\n`);
});
await import('./cliMain.ts');
export {};

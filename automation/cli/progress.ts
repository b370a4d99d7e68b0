// Engine events as readable progress lines (the CLI's stderr, and a job's plain-text log).
import type { StackEvent } from '../events.ts';

export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

const SYMBOL: Record<string, string> = {
  create: '+',
  update: '~',
  delete: '-',
  replace: '+-',
  'create-replacement': '++',
  'delete-replaced': '--',
  read: '>',
  refresh: '~',
  import: '=',
};

export function urnName(urn: string): string {
  return urn.split('::').pop() ?? urn;
}
function urnType(urn: string, fallback: string): string {
  const parts = urn.split('::');
  return parts.length >= 4 ? (parts[2]!.split('$').pop() ?? fallback) : fallback;
}

/** Turns engine events into readable progress lines on stderr. */
export function progressPrinter(io: CliIO): (e: StackEvent) => void {
  return (e) => {
    switch (e.type) {
      case 'resource-pre':
        if (e.op === 'same') return;
        io.stderr(
          `  ${(SYMBOL[e.op] ?? '*').padEnd(2)} ${e.op.padEnd(8)} ${urnType(e.urn, e.resourceType)}  ${urnName(e.urn)}${e.planning ? ' (planned)' : ''}\n`,
        );
        return;
      case 'resource-outputs':
        if (e.op === 'same' || e.planning) return;
        io.stderr(`  ok ${e.op.padEnd(8)} ${urnType(e.urn, e.resourceType)}  ${urnName(e.urn)}\n`);
        return;
      case 'resource-failed':
        io.stderr(`  !! ${e.op.padEnd(8)} ${urnType(e.urn, e.resourceType)}  ${urnName(e.urn)} FAILED\n`);
        return;
      case 'diagnostic': {
        const msg = e.message.trim();
        if (!msg) return;
        const where = e.urn ? `${urnName(e.urn)}: ` : '';
        if (e.severity === 'error' || e.severity === 'warning')
          io.stderr(`  ${e.severity}: ${where}${msg}\n`);
        else io.stderr(`  ${where}${msg}\n`);
        return;
      }
      case 'policy':
        io.stderr(`  policy ${e.enforcementLevel} ${e.policyName}: ${e.message.trim()}\n`);
        return;
      case 'summary':
        io.stderr(
          `Resources: ${formatChanges(e.resourceChanges)} (${Math.round(e.durationSeconds)}s)${e.maybeCorrupt ? ' — state may be inconsistent, run refresh' : ''}\n`,
        );
        return;
      case 'cancel':
        io.stderr('  cancellation acknowledged by the engine\n');
        return;
      default:
        return;
    }
  };
}

export function formatChanges(changes: Record<string, number>): string {
  const words: Record<string, string> = {
    create: 'created',
    update: 'updated',
    delete: 'deleted',
    replace: 'replaced',
    same: 'unchanged',
  };
  const parts = Object.entries(changes)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} ${words[op] ?? op}`);
  return parts.length ? parts.join(', ') : 'no changes';
}

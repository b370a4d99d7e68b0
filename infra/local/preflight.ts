// Checks a local stack runs before it registers any resource (in preview and in up), so bad input
// stops before anything starts: missing etcd / prometheus binaries (with the apt command), and
// address:ports held by something other than this stack's own running processes.
import * as pulumi from '@pulumi/pulumi';
import { isPortFree } from '../../replicator/local/freePort.ts';
import { isRunning, readPidFile } from '../../replicator/local/detached.ts';
import { requireBinary } from './providers/common.ts';
import type { LocalPlan } from './plan.ts';

/** Problems found, as messages (empty when the plan can run). */
export async function localPreflightIssues(plan: LocalPlan): Promise<string[]> {
  const issues: string[] = [];
  const binaries: [string, string, string][] = [['etcd', 'etcd-server', 'ETCD_BIN']];
  if (plan.prometheus) binaries.push(['prometheus', 'prometheus', 'PROMETHEUS_BIN']);
  for (const [cmd, pkg, env] of binaries) {
    try {
      requireBinary(cmd, pkg, env);
    } catch (err) {
      issues.push((err as Error).message);
    }
  }
  for (const p of plan.processes) {
    // Our own process holds its ports: nothing to check (an update may restart it in place).
    if (isRunning(readPidFile(p.pidFile))) continue;
    for (const l of p.listeners) {
      if (!(await isPortFree(l.port, l.address))) {
        issues.push(
          `port ${l.port} on ${l.address} (${l.what}) is already in use by another program; stop it or choose another port in the stack config`,
        );
      }
    }
  }
  return issues;
}

/** Throws a RunError (printed without a stack trace) listing every issue. */
export async function localPreflight(plan: LocalPlan): Promise<void> {
  const issues = await localPreflightIssues(plan);
  if (issues.length > 0) {
    throw new pulumi.RunError(`the local target cannot start:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
  }
}

// The one place a StackEngine is built from the settings: the service and the CLI use it, so both
// drive the same backend, state directory, CLI and secrets provider.
import type { AutomationConfig } from './config.ts';
import { PulumiEngine } from './pulumiEngine.ts';

export function engineFromConfig(config: AutomationConfig): PulumiEngine {
  return new PulumiEngine({
    stateDir: config.stateDir,
    projectDir: config.projectDir,
    ...(config.backendUrl ? { backendUrl: config.backendUrl } : {}),
    ...(config.pulumiRoot ? { pulumiRoot: config.pulumiRoot } : {}),
    ...(config.secretsProvider ? { secretsProvider: config.secretsProvider } : {}),
  });
}

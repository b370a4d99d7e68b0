// `npm run openapi`: writes the served OpenAPI document to openapi.json at the repository root
// (committed, so portal teams can generate clients without running the service; a test checks it
// is identical to the served one).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../config.ts';
import { openApiText } from './openapiDocument.ts';

const file = path.join(REPO_ROOT, 'openapi.json');
writeFileSync(file, await openApiText());
process.stdout.write(`wrote ${file}\n`);

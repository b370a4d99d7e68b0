// The HTTP API's request and response schemas, as zod. Fastify validates requests and serializes
// responses with them (fastify-type-provider-zod) and @fastify/swagger generates the OpenAPI
// document from them, so the document cannot drift from what the handlers accept and return.
// Named schemas are registered in `registry` and appear under components.schemas.
import { z } from 'zod';
import { STACK_NAME_PATTERN } from '../spec.ts';
import { JOB_STATUSES } from '../jobs/jobStore.ts';

export const registry = z.registry<{ id: string; description?: string }>();

const named = <T extends z.ZodType>(schema: T, id: string, description?: string): T => {
  registry.add(schema, { id, ...(description ? { description } : {}) });
  return schema;
};

// --- parameters and query values ---

export const stackName = z
  .string()
  .regex(STACK_NAME_PATTERN)
  .refine((s) => !s.includes('..'), 'no ".."')
  .describe('Stack name: 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit.');
export const stackParams = z.strictObject({ stack: stackName });

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const jobParams = z.strictObject({ id: z.string().regex(UUID).describe('Job id (UUID)') });

/**
 * A query integer: decimal digits only (no hex, no exponent, no sign), once (a repeated parameter
 * arrives as an array and is refused by the string type).
 */
export const queryInt = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,9}$/, 'expected a decimal integer')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const message = z.string().max(1000).describe('Recorded with the update in the stack history');

// --- bodies ---

/** The stack spec: documented by the infra schema's JSON Schema, validated by validateSpec. */
export const StackConfig = named(
  z.record(z.string(), z.unknown()),
  'StackConfig',
  'The infra config schema (docs/infra.md)',
);

const urn = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^urn:pulumi:/, 'a Pulumi URN (urn:pulumi:...)');
const engineOptions = {
  targets: z.array(urn).max(100).optional().describe('Only these resources (and their dependents)'),
  replace: z.array(urn).max(100).optional().describe('Replace these resources even if unchanged'),
  refresh: z.boolean().optional().describe('Refresh the state from the clouds first'),
  expectNoChanges: z.boolean().optional().describe('Fail if any change is proposed'),
};

export const upBody = z
  .strictObject({
    ...engineOptions,
    spec: StackConfig.optional().describe(
      'A full spec: only for a stack without a stored spec (then it is stored). Otherwise change ' +
        'the stored spec with PATCH/PUT /v1/stacks/{stack}/spec and send no spec.',
    ),
    message: message.optional(),
    confirmReplace: z
      .boolean()
      .optional()
      .describe('Apply even if the preview replaces clusters or networks'),
    planFrom: z
      .string()
      .regex(UUID)
      .optional()
      .describe(
        'Apply exactly the plan of this preview job (saved with savePlan); refused if the spec changed since',
      ),
  })
  .default({});
export const previewBody = z
  .strictObject({
    ...engineOptions,
    spec: StackConfig.optional().describe('A full spec to preview instead of the stored one (not stored)'),
    savePlan: z
      .boolean()
      .optional()
      .describe(
        'Save the update plan; up with planFrom=<this job id> then applies exactly what was previewed',
      ),
    message: message.optional(),
  })
  .default({});
export const refreshBody = z
  .strictObject({ message: message.optional(), targets: engineOptions.targets })
  .default({});
export const driftBody = z.strictObject({}).default({});
export const destroyBody = z
  .strictObject({
    targets: engineOptions.targets,
    remove: z.boolean().optional().describe('Also remove the stack (state and config) afterwards'),
    message: message.optional(),
  })
  .default({});
export const emptyBody = z.strictObject({}).default({});

// --- responses ---

export const ErrorBody = named(
  z.object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  }),
  'Error',
);

export const JobStatus = named(z.enum(JOB_STATUSES as [string, ...string[]]), 'JobStatus');

export const Job = named(
  z.object({
    id: z.string(),
    stack: z.string(),
    operation: z.enum(['up', 'preview', 'refresh', 'destroy']),
    status: JobStatus,
    requestedBy: z.string(),
    message: z.string().optional(),
    options: z.record(z.string(), z.unknown()),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    result: z.unknown().optional(),
    error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }).optional(),
    eventCount: z.number().int(),
    queuePosition: z.number().int().optional().describe('1-based position while queued'),
    links: z.object({ self: z.string(), events: z.string(), cancel: z.string(), log: z.string() }),
  }),
  'Job',
);

export const Accepted = named(z.object({ jobId: z.string(), job: Job }), 'Accepted');

export const StackSummary = named(
  z.object({
    name: z.string(),
    lastUpdate: z.string().optional(),
    updateInProgress: z.boolean(),
    resourceCount: z.number().int().optional(),
  }),
  'StackSummary',
);

export const Output = named(z.object({ value: z.unknown(), secret: z.boolean() }), 'Output');

export const HistoryEntry = named(
  z.object({
    version: z.number().int(),
    kind: z.string(),
    result: z.string(),
    startTime: z.string(),
    endTime: z.string().optional(),
    message: z.string(),
    resourceChanges: z.record(z.string(), z.number()).optional(),
  }),
  'HistoryEntry',
);

export const AuditEntry = named(
  z.object({
    id: z.number().int(),
    time: z.string(),
    actor: z.string(),
    action: z.string(),
    stack: z.string().optional(),
    jobId: z.string().optional(),
    result: z.string(),
    detail: z.string().optional(),
  }),
  'AuditEntry',
);

export const StoredSpec = named(
  z.object({
    stack: z.string(),
    spec: StackConfig,
    resolved: z.record(z.string(), z.unknown()).describe('The spec with the schema defaults applied'),
    version: z.number().int(),
    updatedAt: z.string(),
    updatedBy: z.string(),
  }),
  'StoredSpec',
);

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'Bad request: malformed_json, invalid_request (unknown or wrong fields), invalid_spec (details.issues), invalid_stack_name, invalid_job_id, spec_required, invalid_plan',
  401: 'unauthorized: missing, invalid, revoked or expired bearer token',
  403: 'forbidden: the token lacks the role',
  404: 'Not found: stack_not_found, job_not_found, spec_not_found',
  405: 'method_not_allowed (Allow names the methods)',
  409: 'Conflict: stack_busy (details.runningJobId names the job holding the stack), spec_exists, job_finished, lock_held, stack_protected, idempotency_key_reused, plan_stale',
  413: 'body_too_large',
  414: 'uri_too_long',
  415: 'unsupported_media_type: send application/json',
  429: 'Too many: queue_full, too_many_streams, rate_limited (Retry-After says when to retry)',
  502: 'engine_failure: the Pulumi engine failed (details.diagnostics)',
  503: 'Unavailable: pulumi_cli_missing, pulumi_cli_too_old, draining (Retry-After)',
};

export const idempotencyHeaders = z.looseObject({
  'idempotency-key': z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,200}$/, '1-200 characters from [A-Za-z0-9._:-]')
    .optional()
    .describe(
      'Repeating a POST with the same key (per token, 24 h) returns the first job instead of a new one',
    ),
});

/** Error responses a route can give, by status. */
export const errors = (...codes: number[]) =>
  Object.fromEntries(
    codes.map((c) => [
      c,
      {
        description: ERROR_DESCRIPTIONS[c] ?? 'Error',
        content: { 'application/json': { schema: ErrorBody } },
      },
    ]),
  ) as Record<number, { description: string; content: { 'application/json': { schema: typeof ErrorBody } } }>;

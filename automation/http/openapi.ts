// The OpenAPI 3.1 document of the service, served unauthenticated at OPENAPI_PATH. The stack spec
// schema is the infra config schema's JSON Schema (one source of truth).
import { stackConfigJsonSchema } from '../spec.ts';

export const OPENAPI_PATH = '/openapi.json';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ 'application/json': { schema } });
const errorResponse = (description: string) => ({ description, content: json(ref('Error')) });

const stackParam = {
  name: 'stack',
  in: 'path',
  required: true,
  description: 'Stack name: 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit.',
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' },
};
const jobParam = { name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } };
const limitParams = [
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500 } },
  { name: 'offset', in: 'query', schema: { type: 'integer', minimum: 0 } },
];
const common = {
  '400': errorResponse('Bad request: malformed JSON, unknown fields, invalid stack name or spec'),
  '401': errorResponse('Missing or invalid bearer token'),
  '403': errorResponse('The token lacks the required role'),
};

function operation(op: string, summary: string, body: unknown, bodyRequired: boolean) {
  return {
    post: {
      operationId: `${op}Stack`,
      summary,
      tags: ['operations'],
      'x-required-role': 'operate',
      parameters: [stackParam],
      requestBody: { required: bodyRequired, content: json(body) },
      responses: {
        '202': {
          description: 'Accepted: the job was created; follow links.events for progress',
          headers: { Location: { schema: { type: 'string' }, description: 'The job URL' } },
          content: json(ref('Accepted')),
        },
        ...common,
        '409': errorResponse('Another job is running on this stack; details.runningJobId names it'),
        '413': errorResponse('Request body too large'),
        '415': errorResponse('Body is not application/json'),
      },
    },
  };
}

export function buildOpenApiDocument(): Record<string, unknown> {
  const { $schema: _drop, ...specSchema } = stackConfigJsonSchema as Record<string, unknown>;
  const specBody = {
    type: 'object',
    additionalProperties: false,
    required: ['spec'],
    properties: { spec: ref('StackConfig'), message: { type: 'string', maxLength: 1000 } },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'udpmesh automation service',
      version: '1.0.0',
      description:
        'Drives the udpmesh Pulumi stacks. Operations run as jobs (202 + job id); one job per stack at a time. ' +
        'Authenticate with `Authorization: Bearer <token>` (roles: read, operate).',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [{ name: 'operations' }, { name: 'jobs' }, { name: 'stacks' }, { name: 'meta' }],
    paths: {
      '/v1/stacks/{stack}/up': operation('up', 'Create or update the stack from a spec', specBody, true),
      '/v1/stacks/{stack}/preview': operation(
        'preview',
        'Preview the changes a spec would make',
        specBody,
        true,
      ),
      '/v1/stacks/{stack}/refresh': operation(
        'refresh',
        'Refresh the stack state from the clouds',
        {
          type: 'object',
          additionalProperties: false,
          properties: { message: { type: 'string', maxLength: 1000 } },
        },
        false,
      ),
      '/v1/stacks/{stack}/destroy': operation(
        'destroy',
        'Destroy every resource of the stack (optionally remove the stack)',
        {
          type: 'object',
          additionalProperties: false,
          properties: {
            remove: { type: 'boolean', default: false },
            message: { type: 'string', maxLength: 1000 },
          },
        },
        false,
      ),
      '/v1/stacks': {
        get: {
          operationId: 'listStacks',
          tags: ['stacks'],
          'x-required-role': 'read',
          responses: {
            '200': {
              description: 'Stacks',
              content: json({
                type: 'object',
                properties: { stacks: { type: 'array', items: ref('StackSummary') } },
              }),
            },
            ...common,
          },
        },
      },
      '/v1/stacks/{stack}/outputs': {
        get: {
          operationId: 'getOutputs',
          tags: ['stacks'],
          'x-required-role': 'read',
          parameters: [stackParam],
          responses: {
            '200': {
              description: 'Stack outputs; secret outputs have the value "[secret]"',
              content: json({
                type: 'object',
                properties: {
                  stack: { type: 'string' },
                  outputs: {
                    type: 'object',
                    additionalProperties: {
                      type: 'object',
                      properties: { value: {}, secret: { type: 'boolean' } },
                    },
                  },
                },
              }),
            },
            ...common,
            '404': errorResponse('No such stack'),
            '503': errorResponse('Pulumi CLI missing or too old'),
          },
        },
      },
      '/v1/stacks/{stack}/history': {
        get: {
          operationId: 'getStackHistory',
          tags: ['stacks'],
          'x-required-role': 'read',
          parameters: [
            stackParam,
            { name: 'pageSize', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500 } },
            { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1 } },
          ],
          responses: {
            '200': {
              description: 'Pulumi update history, newest first',
              content: json({
                type: 'object',
                properties: {
                  stack: { type: 'string' },
                  updates: { type: 'array', items: ref('HistoryEntry') },
                },
              }),
            },
            ...common,
            '404': errorResponse('No such stack'),
          },
        },
      },
      '/v1/jobs': {
        get: {
          operationId: 'listJobs',
          tags: ['jobs'],
          'x-required-role': 'read',
          parameters: [
            { name: 'stack', in: 'query', schema: { type: 'string' } },
            { name: 'status', in: 'query', schema: ref('JobStatus') },
            ...limitParams,
          ],
          responses: {
            '200': {
              description: 'Jobs, newest first',
              content: json({ type: 'object', properties: { jobs: { type: 'array', items: ref('Job') } } }),
            },
            ...common,
          },
        },
      },
      '/v1/jobs/{id}': {
        get: {
          operationId: 'getJob',
          tags: ['jobs'],
          'x-required-role': 'read',
          parameters: [jobParam],
          responses: {
            '200': { description: 'The job', content: json(ref('Job')) },
            ...common,
            '404': errorResponse('No such job'),
          },
        },
      },
      '/v1/jobs/{id}/events': {
        get: {
          operationId: 'streamJobEvents',
          tags: ['jobs'],
          'x-required-role': 'read',
          description:
            'Server-sent events: every event of the job from the start (or after Last-Event-ID / ?after=), then live ' +
            'events; the stream ends after the `result` event. Event types: status, engine, result. Each `data` is ' +
            'a JSON JobEvent; `id` is its seq.',
          parameters: [
            jobParam,
            { name: 'Last-Event-ID', in: 'header', schema: { type: 'integer', minimum: 0 } },
            { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 } },
          ],
          responses: {
            '200': {
              description: 'text/event-stream of JobEvent',
              content: { 'text/event-stream': { schema: ref('JobEvent') } },
            },
            ...common,
            '404': errorResponse('No such job'),
          },
        },
      },
      '/v1/jobs/{id}/cancel': {
        post: {
          operationId: 'cancelJob',
          tags: ['jobs'],
          'x-required-role': 'operate',
          parameters: [jobParam],
          responses: {
            '202': {
              description: 'Cancellation requested (a queued job is cancelled at once)',
              content: json(ref('Accepted')),
            },
            ...common,
            '404': errorResponse('No such job'),
            '409': errorResponse('The job has already finished'),
          },
        },
      },
      '/v1/audit': {
        get: {
          operationId: 'listAudit',
          tags: ['jobs'],
          'x-required-role': 'operate',
          parameters: [{ name: 'stack', in: 'query', schema: { type: 'string' } }, ...limitParams],
          responses: {
            '200': {
              description: 'Audit entries, newest first',
              content: json({
                type: 'object',
                properties: { entries: { type: 'array', items: ref('AuditEntry') } },
              }),
            },
            ...common,
          },
        },
      },
      [OPENAPI_PATH]: {
        get: {
          operationId: 'openapi',
          tags: ['meta'],
          security: [],
          responses: { '200': { description: 'This document' } },
        },
      },
      '/healthz': {
        get: {
          operationId: 'health',
          tags: ['meta'],
          security: [],
          responses: { '200': { description: 'Alive' } },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'udpm_<id>_<secret>, created with `udpmesh token create`',
        },
      },
      schemas: {
        StackConfig: specSchema,
        JobStatus: {
          type: 'string',
          enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'],
        },
        Job: {
          type: 'object',
          required: ['id', 'stack', 'operation', 'status', 'requestedBy', 'createdAt', 'eventCount'],
          properties: {
            id: { type: 'string', format: 'uuid' },
            stack: { type: 'string' },
            operation: { type: 'string', enum: ['up', 'preview', 'refresh', 'destroy'] },
            status: ref('JobStatus'),
            requestedBy: { type: 'string' },
            message: { type: 'string' },
            options: { type: 'object' },
            createdAt: { type: 'string', format: 'date-time' },
            startedAt: { type: 'string', format: 'date-time' },
            finishedAt: { type: 'string', format: 'date-time' },
            result: {
              type: 'object',
              description:
                'On success: operation, stack, changes (by op), outputs (up only; secrets "[secret]"), durationMs',
            },
            error: ref('ErrorBody'),
            eventCount: { type: 'integer' },
            links: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        Accepted: {
          type: 'object',
          required: ['jobId', 'job'],
          properties: { jobId: { type: 'string', format: 'uuid' }, job: ref('Job') },
        },
        JobEvent: {
          type: 'object',
          required: ['seq', 'time', 'type', 'data'],
          properties: {
            seq: { type: 'integer' },
            time: { type: 'string', format: 'date-time' },
            type: { type: 'string', enum: ['status', 'engine', 'result'] },
            data: {
              type: 'object',
              description:
                'status: {status}; engine: a StackEvent {type: prelude|resource-pre|resource-outputs|resource-failed|' +
                'diagnostic|stdout|policy|summary|cancel, ...}; result: {status, result?, error?}',
            },
          },
        },
        StackSummary: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            lastUpdate: { type: 'string' },
            updateInProgress: { type: 'boolean' },
            resourceCount: { type: 'integer' },
          },
        },
        HistoryEntry: {
          type: 'object',
          properties: {
            version: { type: 'integer' },
            kind: { type: 'string' },
            result: { type: 'string' },
            startTime: { type: 'string', format: 'date-time' },
            endTime: { type: 'string', format: 'date-time' },
            message: { type: 'string' },
            resourceChanges: { type: 'object', additionalProperties: { type: 'integer' } },
          },
        },
        AuditEntry: {
          type: 'object',
          properties: {
            id: { type: 'integer' },
            time: { type: 'string', format: 'date-time' },
            actor: { type: 'string' },
            action: { type: 'string' },
            stack: { type: 'string' },
            jobId: { type: 'string' },
            result: { type: 'string' },
            detail: { type: 'string' },
          },
        },
        ErrorBody: {
          type: 'object',
          required: ['code', 'message'],
          properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
        },
        Error: { type: 'object', required: ['error'], properties: { error: ref('ErrorBody') } },
      },
    },
  };
}

/**
 * GET /api/openapi.json: the OpenAPI 3.1 document of the service, built at start from the list of
 * calls (operations.ts), the schemas the routes validate with (schemas.ts) and the error statuses
 * and headers rest/errors.ts answers with. Nothing in it is written twice: a schema used in several
 * places is a `$ref` to its one entry in `components.schemas`, and an error response is derived from
 * the codes a call names.
 */
import { readFileSync } from 'node:fs';
import type { RequestHandler } from 'express';
import { Type, type TSchema } from '@sinclair/typebox';
import type { Settings } from '../../config/settings';
import { projectPath } from '../paths';
import { errorHeaders, httpStatus, type HttpErrorCode } from './errors';
import { operations, type AnswerSpec, type Auth, type HeaderSpec, type OperationSpec } from './operations';
import { ErrorBody, NAMED_SCHEMAS } from './schemas';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const SCHEMA_REF = '#/components/schemas/';
const SECURITY_SCHEME = 'bearer';

/** What each code means to a REST caller, for the description of the status that carries it. */
const MEANINGS: Partial<Record<HttpErrorCode, string>> = {
  bad_request: 'the body, a header or the URL is not valid (the detail names what)',
  bad_destination: 'the destination is not one this call can push to',
  unauthenticated: 'no bearer token, or one that is not valid (the detail says why)',
  token_expired: 'the token has expired',
  forbidden: 'the token lacks the scope or the right this call needs',
  not_found: 'no such endpoint, or nothing of that id at it',
  method_not_allowed: 'this path does not answer this method (`Allow` lists those it does)',
  idempotency_conflict: 'this Idempotency-Key was used for the same user with another body',
  payload_too_large: 'the body is larger than REST_BODY_LIMIT_BYTES',
  limit_exceeded: 'a queue on the way is full (its consumers are not keeping up): try again later',
  internal: 'a fault of the service (logged on the instance)',
  not_implemented: 'this instance cannot do it as configured (the detail says why)',
  broker_unavailable: 'the broker is unavailable or did not take the message: not delivered, retry',
  inbox_unavailable: 'the inbox (durable destinations) is off or its store is unreachable',
  draining: 'the instance is shutting down: send it to another instance',
  overloaded: 'the instance has REST_MAX_PUSHES_IN_FLIGHT pushes waiting on the broker: retry shortly',
  not_ready: 'the broker connection is down or the instance is draining (the detail says which)',
};

const HEADERS: Readonly<Record<string, HeaderSpec>> = {
  'WWW-Authenticate': {
    description: 'The scheme to authenticate with (RFC 6750).',
    schema: Type.String({ pattern: '^Bearer ' }),
  },
  'Retry-After': {
    description: 'Seconds to wait before trying again, here or on another instance.',
    schema: Type.Integer({ minimum: 0 }),
  },
  Allow: {
    description: 'The methods this path answers.',
    schema: Type.String({ examples: ['POST, OPTIONS'] }),
  },
};

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(projectPath('package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

/** `schema` as the document holds it: plain JSON, a named schema inside it as a `$ref`. */
function documented(schema: unknown, names: ReadonlyMap<string, string>, self?: string): Json {
  if (Array.isArray(schema)) return schema.map((s) => documented(s, names));
  if (typeof schema !== 'object' || schema === null) return schema as Json;
  const name = names.get(JSON.stringify(schema));
  if (name !== undefined && name !== self) return { $ref: `${SCHEMA_REF}${name}` };
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    // Values, not schemas: an example that happens to equal a schema stays an example.
    const isValue = key === 'examples' || key === 'enum' || key === 'const' || key === 'default';
    out[key] = isValue ? (JSON.parse(JSON.stringify(value)) as Json) : documented(value, names);
  }
  return out;
}

class DocumentBuilder {
  private readonly names = new Map<string, string>();

  constructor() {
    for (const [name, schema] of Object.entries(NAMED_SCHEMAS)) {
      const key = JSON.stringify(schema);
      const other = this.names.get(key);
      // A $ref is found by its schema's JSON: two names for one schema would be one lost.
      if (other !== undefined) throw new Error(`schemas ${other} and ${name} are the same: keep one`);
      this.names.set(key, name);
    }
  }

  schema(schema: TSchema): Json {
    return documented(schema, this.names);
  }

  components(): JsonObject {
    const schemas: JsonObject = {};
    for (const [name, schema] of Object.entries(NAMED_SCHEMAS)) {
      schemas[name] = documented(schema, this.names, name);
    }
    return schemas;
  }

  headers(specs: Readonly<Record<string, HeaderSpec>>): JsonObject {
    const out: JsonObject = {};
    for (const [name, spec] of Object.entries(specs)) {
      out[name] = { description: spec.description, required: true, schema: this.schema(spec.schema) };
    }
    return out;
  }

  answer(spec: AnswerSpec): JsonObject {
    const out: JsonObject = { description: spec.description };
    if (spec.headers) out.headers = this.headers(spec.headers);
    if (spec.schema)
      out.content = { [spec.mediaType ?? 'application/json']: { schema: this.schema(spec.schema) } };
    return out;
  }

  /** One response per status among `codes`: the error body, its code one of those, and its headers. */
  errors(codes: readonly HttpErrorCode[]): JsonObject {
    const byStatus = new Map<number, HttpErrorCode[]>();
    for (const code of codes) {
      const status = httpStatus(code);
      byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
    }
    const out: JsonObject = {};
    for (const [status, group] of [...byStatus].sort(([a], [b]) => a - b)) {
      out[String(status)] = this.errorResponse(status, group);
    }
    return out;
  }

  errorResponse(status: number, codes: readonly HttpErrorCode[]): JsonObject {
    const headers = Object.keys(errorHeaders(status));
    const specs = Object.fromEntries(
      headers.map((name) => {
        const spec = HEADERS[name] as HeaderSpec | undefined;
        if (spec === undefined) throw new Error(`error answers carry header ${name}: describe it in HEADERS`);
        return [name, spec];
      }),
    );
    return {
      description: codes.map((code) => `\`${code}\`: ${MEANINGS[code] ?? code}`).join('; '),
      ...(headers.length > 0 ? { headers: this.headers(specs) } : {}),
      content: {
        'application/json': {
          schema: {
            allOf: [
              { $ref: `${SCHEMA_REF}${this.names.get(JSON.stringify(ErrorBody))}` },
              { type: 'object', properties: { error: { enum: [...codes] } } },
            ],
          },
        },
      },
    };
  }

  operation(op: OperationSpec): JsonObject {
    const out: JsonObject = {
      operationId: op.operationId,
      summary: op.summary,
      description: op.description,
      security: securityOf(op.auth),
    };
    if (op.parameters) {
      out.parameters = op.parameters.map((p) => ({
        name: p.name,
        in: p.in,
        description: p.description,
        required: p.required,
        schema: this.schema(p.schema),
      }));
    }
    if (op.body) {
      out.requestBody = {
        description: op.body.description,
        required: true,
        content: { 'application/json': { schema: this.schema(op.body.schema) } },
      };
    }
    const responses: JsonObject = {};
    for (const [status, answer] of Object.entries(op.answers)) responses[status] = this.answer(answer);
    out.responses = { ...responses, ...this.errors(op.errors) };
    return out;
  }
}

function securityOf(auth: Auth): Json {
  if (auth === 'none') return [];
  return [{ [SECURITY_SCHEME]: auth === 'token' ? [] : [auth] }];
}

const DESCRIPTION = [
  'Realtime push over STOMP: a backend pushes to a user or publishes to a topic over this REST API, ',
  'on any instance; STOMP clients get it on `/ws` (SockJS), `/stomp` (WebSocket) or raw TCP.\n\n',
  'JSON in and out. Every error is `{"error": "<code>", "detail": "<reason>"}` with a fitting status; ',
  '401 answers carry `WWW-Authenticate`, 429 and 503 answers `Retry-After`. A method a path does not ',
  'list answers 405 with `Allow` (`OPTIONS` answers 204 with it), a path not listed under /api 404.',
].join('');

/** The document this instance serves; the dev token call is in it only where it is served. */
export function openApiDocument(settings: Settings): JsonObject {
  const builder = new DocumentBuilder();
  const paths: { [path: string]: JsonObject } = {};
  for (const op of operations(settings)) {
    paths[op.path] = { ...paths[op.path], [op.method]: builder.operation(op) };
  }
  const allow = { Allow: HEADERS.Allow };
  return {
    openapi: '3.1.0',
    info: { title: 'stomp-relay', version: readVersion(), description: DESCRIPTION },
    paths,
    components: {
      schemas: builder.components(),
      responses: {
        NotFound: builder.errorResponse(httpStatus('not_found'), ['not_found']),
        MethodNotAllowed: {
          ...builder.errorResponse(httpStatus('method_not_allowed'), ['method_not_allowed']),
          headers: builder.headers(allow),
        },
        Options: { description: 'The methods this path answers.', headers: builder.headers(allow) },
      },
      securitySchemes: {
        [SECURITY_SCHEME]: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A JWT signed with HS256, RS256 or ES256 (never `none`), checked for `exp`, `nbf`, and ' +
            '`iss`/`aud` when configured; the user is its `sub`. The push calls need `push` in its ' +
            '`scope` claim (a space-separated string or a list), the cluster view `admin`.',
        },
      },
    },
  };
}

/** Serves the document, built once: it depends only on the settings. */
export function apiDescriptionHandler(settings: Settings): RequestHandler {
  const text = JSON.stringify(openApiDocument(settings));
  return (_req, res) => {
    res.type('application/json').send(text);
  };
}

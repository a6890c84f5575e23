/**
 * A REST answer checked against the API description the service serves (GET /api/openapi.json), as
 * a client generated from it would read it: the status must be one the operation documents, the
 * content type one it lists, the JSON body valid against its schema, and every header it documents
 * present and valid. A call no operation describes must be one of the answers the document gives
 * for those: 404, 405 with Allow, OPTIONS' 204 with Allow. Paths outside /api that the document
 * does not name (the page, its scripts) are not part of the API and are not checked.
 *
 * openapi-backend does the routing (method and path template to operation) and the body and header
 * validation, with ajv in JSON Schema 2020-12, the dialect of OpenAPI 3.1. Its own check of the
 * document is the 3.0 one, so it is left to the document's own test (3.1 meta-schema).
 */
import { Ajv2020, type ErrorObject, type Options as AjvOptions, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import OpenAPIBackend, { type Document as OpenApiDocument } from 'openapi-backend';

export interface CallMade {
  method: string;
  /** Path and query, as requested. */
  path: string;
}

export interface AnswerGot {
  status: number;
  headers: Headers;
  /** The raw body text. */
  text: string;
  /** The parsed JSON body when the answer is JSON, else the text. */
  body: unknown;
}

type Document = Record<string, unknown>;

interface ResponseObject {
  description: string;
  headers?: Record<string, { required?: boolean; schema?: object }>;
  content?: Record<string, { schema?: object }>;
}

export function newAjv(options: AjvOptions = {}): Ajv2020 {
  const ajv = new Ajv2020({ allErrors: true, ...options });
  addFormats(ajv);
  return ajv;
}

const ajvs = new Map<string, Ajv2020>();

/**
 * openapi-backend asks for an ajv per operation and purpose; one per set of options is enough, and
 * spares compiling JSON Schema's meta-schema hundreds of times.
 */
function sharedAjv(options: AjvOptions): Ajv2020 {
  const key = JSON.stringify(options);
  let ajv = ajvs.get(key);
  if (ajv === undefined) {
    ajv = newAjv(options);
    ajvs.set(key, ajv);
  }
  return ajv;
}

/** The document without openapi-backend's OpenAPI 3.0 check of it. */
class DescribedApi extends OpenAPIBackend {
  override validateDefinition(): OpenApiDocument {
    return this.document;
  }
}

function describeErrors(where: string, errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map(
    (e) => `${where}${e.instancePath || ''}: ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`,
  );
}

/** The document's answers (components.responses) to calls no operation describes, by status. */
const GENERIC: Readonly<Record<number, string>> = { 404: 'NotFound', 405: 'MethodNotAllowed' };

/** Whether `path` is one of the paths of the OpenAPI path template `template`. */
function templateMatches(template: string, path: string): boolean {
  const pattern = template
    .split(/\{[^}]+\}/)
    .map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&'))
    .join('[^/]+');
  return new RegExp(`^${pattern}$`).test(path);
}

function mediaType(headers: Headers): string | undefined {
  return headers.get('content-type')?.split(';')[0].trim().toLowerCase();
}

function cached(checks: Map<object, ValidateFunction>, schema: object, compile: () => ValidateFunction) {
  let check = checks.get(schema);
  if (check === undefined) {
    check = compile();
    checks.set(schema, check);
  }
  return check;
}

export class ApiDescription {
  private readonly generic: Record<string, ResponseObject>;
  private readonly bodies = newAjv();
  /** Header values are text; coerceTypes reads `Retry-After: 1` as the integer it documents. */
  private readonly headers = newAjv({ coerceTypes: true });
  private readonly bodyChecks = new Map<object, ValidateFunction>();
  private readonly headerChecks = new Map<object, ValidateFunction>();

  private constructor(private readonly api: DescribedApi) {
    const components = api.definition.components as { responses?: Record<string, ResponseObject> };
    this.generic = components.responses ?? {};
  }

  static async from(document: Document): Promise<ApiDescription> {
    const api = new DescribedApi({
      definition: structuredClone(document) as unknown as OpenApiDocument,
      strict: true,
      // Validators compiled when an answer first needs them, not all of them up front (seconds).
      quick: true,
      customizeAjv: (_ajv, options) => sharedAjv(options),
    });
    await api.init();
    return new ApiDescription(api);
  }

  /** What is wrong with `answer` to `call`, as the document describes it; empty when nothing. */
  mismatches(call: CallMade, answer: AnswerGot): string[] {
    const path = call.path.split('?')[0];
    const method = call.method.toUpperCase();
    // express answers HEAD from the GET route, without the body.
    const asMethod = method === 'HEAD' ? 'GET' : method;
    const operation = this.api.router.matchOperation({ method: asMethod, path, headers: {} });
    const label = `${method} ${path} → ${answer.status}`;
    if (operation === undefined) return this.genericMismatches(label, method, path, answer);
    const responses = (operation.responses ?? {}) as Record<string, ResponseObject>;
    const documented =
      responses[String(answer.status)] ??
      responses[`${Math.floor(answer.status / 100)}XX`] ??
      responses.default;
    if (documented === undefined) {
      const statuses = Object.keys(responses).join(', ');
      return [
        `${label}: ${operation.method.toUpperCase()} ${operation.path} documents no ${answer.status} (only ${statuses})`,
      ];
    }
    const problems = [
      ...this.headerMismatches(label, documented, answer),
      ...this.contentMismatches(label, documented, answer, method === 'HEAD'),
    ];
    if (problems.length === 0 && mediaType(answer.headers) === 'application/json' && method !== 'HEAD') {
      const result = this.api.validator.validateResponse(answer.body, operation, answer.status);
      problems.push(...describeErrors(`${label} body`, result.errors));
    }
    return problems;
  }

  /** Throws, listing every mismatch, when `answer` is not as the document describes. */
  check(call: CallMade, answer: AnswerGot): void {
    const problems = this.mismatches(call, answer);
    if (problems.length > 0) {
      throw new Error(
        `the answer does not match /api/openapi.json:\n  ${problems.join('\n  ')}\n  body: ${answer.text.slice(0, 500)}`,
      );
    }
  }

  private genericMismatches(label: string, method: string, path: string, answer: AnswerGot): string[] {
    const documentedPath = this.api.router.getOperations().some((op) => templateMatches(op.path, path));
    if (!documentedPath && !path.startsWith('/api/') && path !== '/api') return [];
    const name = method === 'OPTIONS' && answer.status === 204 ? 'Options' : GENERIC[answer.status];
    const response = name === undefined ? undefined : this.generic[name];
    if (response === undefined) {
      return [
        `${label}: no operation describes this call, and ${answer.status} is not a generic answer (404, 405, OPTIONS 204)`,
      ];
    }
    return [
      ...this.headerMismatches(label, response, answer),
      ...this.contentMismatches(label, response, answer, method === 'HEAD'),
      ...this.schemaMismatches(`${label} body`, response.content?.['application/json']?.schema, answer),
    ];
  }

  private headerMismatches(label: string, response: ResponseObject, answer: AnswerGot): string[] {
    const problems: string[] = [];
    for (const [name, header] of Object.entries(response.headers ?? {})) {
      const value = answer.headers.get(name);
      if (value === null) {
        if (header.required === true) problems.push(`${label}: header ${name} is missing`);
        continue;
      }
      if (header.schema === undefined) continue;
      const validate = this.headerCheck(header.schema);
      if (!validate({ value })) problems.push(...describeErrors(`${label} header ${name}`, validate.errors));
    }
    return problems;
  }

  private contentMismatches(
    label: string,
    response: ResponseObject,
    answer: AnswerGot,
    head: boolean,
  ): string[] {
    const types = Object.keys(response.content ?? {});
    const got = mediaType(answer.headers);
    if (types.length === 0) {
      return answer.text === '' ? [] : [`${label}: documented without a body, got ${got ?? 'a body'}`];
    }
    if (got === undefined || !types.includes(got)) {
      return [`${label}: content type ${got ?? '(none)'} is not one documented (${types.join(', ')})`];
    }
    if (!head && answer.text === '') return [`${label}: documented with a ${got} body, got none`];
    return [];
  }

  private schemaMismatches(where: string, schema: object | undefined, answer: AnswerGot): string[] {
    if (schema === undefined) return [];
    const validate = this.bodyCheck(schema);
    return validate(answer.body) ? [] : describeErrors(where, validate.errors);
  }

  private bodyCheck(schema: object): ValidateFunction {
    return cached(this.bodyChecks, schema, () => this.bodies.compile(schema));
  }

  /** A header's schema, as the `value` of a wrapper: coercion replaces a value in its parent. */
  private headerCheck(schema: object): ValidateFunction {
    return cached(this.headerChecks, schema, () =>
      this.headers.compile({ type: 'object', properties: { value: schema } }),
    );
  }
}

const byDocument = new Map<string, Promise<ApiDescription>>();
const byService = new WeakMap<object, Promise<ApiDescription>>();

async function read(url: string): Promise<ApiDescription> {
  const res = await fetch(`${url}/api/openapi.json`);
  const text = await res.text();
  if (res.status !== 200)
    throw new Error(`GET /api/openapi.json answered ${res.status}: ${text.slice(0, 200)}`);
  let found = byDocument.get(text);
  if (found === undefined) {
    found = ApiDescription.from(JSON.parse(text) as Document);
    byDocument.set(text, found);
  }
  return found;
}

/** The description `service` serves, read from it once; one checker per distinct document. */
export function apiDescriptionOf(service: { url: string }): Promise<ApiDescription> {
  let found = byService.get(service);
  if (found === undefined) {
    found = read(service.url);
    byService.set(service, found);
  }
  return found;
}

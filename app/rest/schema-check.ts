/**
 * A request body checked against its schema (schemas.ts) with ajv, refused with a reason a person
 * reads rather than ajv's own wording: the caller sees "unknown field 'ttl' (allowed: destination,
 * body, headers)", not "must NOT have additional properties". One reason is given, the first in the
 * order the fields are declared, as a hand-written check would find it.
 *
 * Reasons come from the schema where they can (limits, allowed field names) and from the caller's
 * `reasons` for what a field must be; nothing here knows a particular request.
 */
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020';
import type { Static, TObject } from '@sinclair/typebox';
import { printable } from '../destinations/destination';
import { ServiceError } from '../errors';

/**
 * `strict`: a schema with a keyword ajv does not know is a mistake to fail on at start, not a
 * constraint silently unchecked. `allErrors`: so the first field in declaration order can be named.
 */
const ajv = new Ajv2020({ strict: true, allErrors: true });

/** The sentence given when a field is missing, of the wrong type, or not of the allowed form. */
export type FieldReasons = Readonly<Record<string, string>>;

/** The one field of a message's headers (`headers`), whose entries are named on their own. */
const HEADERS = 'headers';

function bad(message: string): ServiceError {
  return new ServiceError('bad_request', message);
}

function unknownFields(body: Record<string, unknown>, allowed: readonly string[]): string {
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  const names = unknown.map((k) => `'${printable(k)}'`).join(', ');
  return `unknown field${unknown.length > 1 ? 's' : ''} ${names} (allowed: ${allowed.join(', ')})`;
}

/** `/headers/x~1y` → ['headers', 'x/y'] (JSON Pointer, RFC 6901). */
function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The top-level field an error is about ('' for the body itself). */
function fieldOf(error: ErrorObject): string {
  if (error.instancePath === '' && error.keyword === 'required') {
    return String((error.params as { missingProperty: string }).missingProperty);
  }
  return pointerSegments(error.instancePath)[0] ?? '';
}

function limitOf(error: ErrorObject): number {
  return Number((error.params as { limit: number }).limit);
}

function headerReason(error: ErrorObject, name: string): string {
  const header = `header '${printable(name)}'`;
  if (error.keyword === 'maxLength') return `${header} is longer than ${limitOf(error)} characters`;
  return `${header} must have a string value`;
}

function reasonFor(error: ErrorObject, data: Record<string, unknown>, reasons: FieldReasons): string {
  const field = fieldOf(error);
  const path = pointerSegments(error.instancePath);
  if (field === HEADERS && path.length > 1) return headerReason(error, path[1]);
  if (field === HEADERS && error.keyword === 'maxProperties') {
    const count = Object.keys(data[HEADERS] as object).length;
    return `at most ${limitOf(error)} headers (got ${count})`;
  }
  if (error.keyword === 'maxLength' && path.length === 1) {
    return `${field} is longer than ${limitOf(error)} characters`;
  }
  return reasons[field] ?? `${field} is not valid`;
}

/**
 * Compiles `schema` (an object schema) once; the returned check passes a valid body through, typed,
 * and throws ServiceError('bad_request') with one readable reason for an invalid one.
 */
export function schemaCheck<T extends TObject>(
  schema: T,
  reasons: FieldReasons,
): (body: unknown) => Static<T> {
  const validate = ajv.compile<Static<T>>(schema);
  const fields = Object.keys(schema.properties);
  const order = (error: ErrorObject): number => {
    if (error.instancePath === '' && error.keyword === 'type') return -2;
    if (error.keyword === 'additionalProperties' && error.instancePath === '') return -1;
    return fields.indexOf(fieldOf(error));
  };
  return (body) => {
    if (validate(body)) return body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw bad('the request body must be a JSON object');
    }
    const data = body as Record<string, unknown>;
    const [first] = [...(validate.errors ?? [])].sort((a, b) => order(a) - order(b));
    if (first === undefined) throw bad('the request body is not valid');
    if (first.keyword === 'additionalProperties' && first.instancePath === '') {
      throw bad(unknownFields(data, fields));
    }
    throw bad(reasonFor(first, data, reasons));
  };
}

import { Validator } from '@seriousme/openapi-schema-validator';
import { expect } from 'chai';
import type { Router } from 'express';

import { createApiRouter } from '../../../app/rest/api';
import { createOpsRouter } from '../../../app/rest/ops';
import { openApiDocument } from '../../../app/rest/openapi';
import { ApiDescription, newAjv, type AnswerGot, type CallMade } from '../../support/api-description';
import { startTestService, testSettings } from '../../support/service';
import { call, startRestApp, type RestApp } from './harness';

interface Document {
  openapi: string;
  paths: Record<string, Record<string, { security?: unknown[] }>>;
  components: { schemas: Record<string, object> };
}

/**
 * Calls SPEC names that the document describes already and whose routes are still to be built.
 * Building one: take it off this list (the route test below fails until then).
 */
const TO_BUILD: string[] = [];

/** `METHOD /path/{param}` for every route a router serves (not the 405 fallbacks). */
function routesOf(router: Router, prefix: string): string[] {
  const routes: string[] = [];
  for (const layer of router.stack) {
    if (layer.route === undefined) continue;
    const path = prefix + layer.route.path.replace(/:(\w+)/g, '{$1}');
    for (const method of new Set(layer.route.stack.map((l) => l.method).filter(Boolean))) {
      routes.push(`${method.toUpperCase()} ${path}`);
    }
  }
  return routes;
}

function operationsOf(document: Document): string[] {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
  );
}

async function metaSchemaErrors(document: unknown): Promise<unknown> {
  const validator = new Validator();
  const result = await validator.validate(document as Record<string, unknown>);
  expect(validator.version).to.equal('3.1');
  return result.valid ? undefined : result.errors;
}

describe('REST GET /api/openapi.json', () => {
  let app: RestApp;
  let document: Document;

  before(async () => {
    app = await startRestApp({ settings: { nodeEnv: 'development' } });
    const answer = await call(app, 'GET', '/api/openapi.json');
    expect(answer.status).to.equal(200);
    document = answer.body as Document;
  });
  after(async () => {
    await app.close();
  });

  it('is an OpenAPI 3.1 document, valid against its meta-schema, served without a token', async () => {
    expect(document.openapi).to.match(/^3\.1\./);
    expect(await metaSchemaErrors(document)).to.equal(undefined);
  });

  it('holds only schemas a strict JSON Schema 2020-12 validator compiles (no keyword ignored)', () => {
    // The named schemas as one JSON Schema, their references moved to where it keeps them.
    const text = JSON.stringify(document.components.schemas).replaceAll('#/components/schemas/', '#/$defs/');
    const $defs = JSON.parse(text) as Record<string, object>;
    for (const name of Object.keys($defs)) {
      expect(() => newAjv({ strict: true }).compile({ $defs, $ref: `#/$defs/${name}` }), name).not.to.throw();
    }
  });

  it('describes every route the service serves, and serves every call it describes', async () => {
    const service = await startTestService({ nodeEnv: 'development' });
    try {
      const served = [
        ...routesOf(createApiRouter(service), '/api'),
        ...routesOf(createOpsRouter({ ...service, isDraining: () => false }), ''),
      ];
      const described = operationsOf(document);
      expect(
        served.filter((r) => !described.includes(r)),
        'served, not described',
      ).to.deep.equal([]);
      expect(
        described.filter((r) => !served.includes(r) && !TO_BUILD.includes(r)),
        'described, not served',
      ).to.deep.equal([]);
      expect(
        TO_BUILD.filter((r) => served.includes(r)),
        'served now: take them off TO_BUILD',
      ).to.deep.equal([]);
    } finally {
      await service.stop();
    }
  });

  it('names the bearer token and the push scope where a call needs them, and nothing where none does', () => {
    const security = (method: string, path: string) => document.paths[path][method].security;
    expect(security('post', '/api/users/{user}/messages')).to.deep.equal([{ bearer: ['push'] }]);
    expect(security('post', '/api/messages')).to.deep.equal([{ bearer: ['push'] }]);
    expect(security('get', '/api/users/{user}/sessions')).to.deep.equal([{ bearer: [] }]);
    for (const path of ['/api/openapi.json', '/healthz', '/readyz', '/metrics']) {
      expect(security('get', path), path).to.deep.equal([]);
    }
  });

  it('leaves the dev token call out where NODE_ENV=production turns it off', async () => {
    const prod = await startRestApp({ settings: { nodeEnv: 'production' } });
    try {
      const answer = await call(prod, 'GET', '/api/openapi.json');
      const paths = Object.keys((answer.body as Document).paths);
      expect(paths).to.include('/api/messages').and.not.include('/api/dev/token');
      expect(await metaSchemaErrors(answer.body)).to.equal(undefined);
    } finally {
      await prod.close();
    }
  });

  it('answers a wrong method with 405 and Allow, like every route', async () => {
    const answer = await call(app, 'POST', '/api/openapi.json');
    expect(answer.status).to.equal(405);
    expect(answer.headers.get('allow')).to.equal('GET, HEAD, OPTIONS');
  });
});

describe('REST answers checked against the API description', () => {
  let description: ApiDescription;

  before(async () => {
    description = await ApiDescription.from(openApiDocument(testSettings()));
  });

  const json = (status: number, body: unknown, headers: Record<string, string> = {}): AnswerGot => ({
    status,
    headers: new Headers({ 'content-type': 'application/json; charset=utf-8', ...headers }),
    text: JSON.stringify(body),
    body,
  });
  const id = '0d2b6a3e-5f4c-4e0a-9a51-7c1d2e3f4a5b';
  const push = { method: 'POST', path: '/api/users/alice/messages' };

  it('takes answers as the service gives them', () => {
    const answers: [CallMade, AnswerGot][] = [
      [push, json(202, { id })],
      [push, json(202, { id, online: false })],
      [push, json(202, { id, seq: 12, stored: true, online: true })],
      [push, json(401, { error: 'token_expired', detail: 'x' }, { 'www-authenticate': 'Bearer realm="r"' })],
      [push, json(503, { error: 'overloaded', detail: 'x' }, { 'retry-after': '1' })],
      [{ method: 'GET', path: '/api/nope' }, json(404, { error: 'not_found', detail: 'x' })],
      [
        { method: 'GET', path: '/api/messages' },
        json(405, { error: 'method_not_allowed', detail: 'x' }, { allow: 'POST, OPTIONS' }),
      ],
    ];
    for (const [made, got] of answers) expect(description.mismatches(made, got), got.text).to.deep.equal([]);
  });

  it('finds what an answer gets wrong', () => {
    const cases: [CallMade, AnswerGot, RegExp][] = [
      [push, json(418, { error: 'teapot', detail: 'x' }), /documents no 418/],
      [push, json(202, {}), /required property 'id'/],
      [push, json(202, { id, delivered: 3 }), /additional properties/],
      [push, json(202, { id: 'not-a-uuid' }), /must match format "uuid"/],
      [push, json(400, { error: 'forbidden', detail: 'x' }), /allowed values/],
      [push, json(400, { error: 'bad_request', detail: { why: 'x' } }), /must be string/],
      [push, json(401, { error: 'unauthenticated', detail: 'x' }), /header WWW-Authenticate is missing/],
      [
        push,
        json(503, { error: 'draining', detail: 'x' }, { 'retry-after': 'soon' }),
        /Retry-After.*integer/,
      ],
      [
        { method: 'GET', path: '/healthz' },
        {
          status: 200,
          headers: new Headers({ 'content-type': 'text/html' }),
          text: '<p>ok</p>',
          body: '<p>ok</p>',
        },
        /content type text\/html/,
      ],
      [{ method: 'GET', path: '/api/nope' }, json(200, { ok: true }), /no operation describes this call/],
      [
        { method: 'GET', path: '/api/messages' },
        json(405, { error: 'method_not_allowed', detail: 'x' }),
        /Allow is missing/,
      ],
    ];
    for (const [made, got, problem] of cases) {
      const found = description.mismatches(made, got);
      expect(found.join('\n'), `${made.method} ${made.path} ${got.text}`).to.match(problem);
    }
  });
});

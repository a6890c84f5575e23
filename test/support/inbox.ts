/**
 * Helpers for the inbox tests: durable pushes and status calls over real HTTP (each answer checked
 * against the API description), devices as raw STOMP clients, and the service setups the inbox
 * runs on (embedded broker with the in-memory store; RabbitMQ with PostgreSQL).
 */

import { header, type Frame } from '../../app/stomp/frame';
import { call, type ApiAnswer } from '../integration/rest/harness';
import type { Instance } from './instances';
import { openWebSocket, type RawClientOptions, type RawStompClient } from './raw-stomp';
import { tokenFor as serviceToken, type RunningService } from './service';
import { waitFor } from './wait';

/** An in-process service or a child instance: both answer HTTP at `url` and accept the tokens we sign. */
export type Endpoint = RunningService | Instance;

function tokenFor(endpoint: Endpoint, user: string, scope = ''): string {
  return 'verifier' in endpoint ? serviceToken(endpoint, user, scope) : endpoint.token(user, scope);
}

export interface PushOptions {
  destination?: string;
  key?: string;
  headers?: Record<string, string>;
}

export function pushDurable(
  service: Endpoint,
  user: string,
  body: unknown,
  options: PushOptions = {},
): Promise<ApiAnswer> {
  return call(service, 'POST', `/api/users/${encodeURIComponent(user)}/messages`, {
    token: tokenFor(service, 'backend', 'push'),
    body: { destination: options.destination ?? '/user/queue/inbox', body, headers: options.headers },
    headers: options.key === undefined ? {} : { 'idempotency-key': options.key },
  });
}

/** A durable push that must answer 202: its `{id, seq}`. */
export async function pushStored(
  service: Endpoint,
  user: string,
  body: unknown,
  options: PushOptions = {},
): Promise<{ id: string; seq: number }> {
  const answer = await pushDurable(service, user, body, options);
  if (answer.status !== 202)
    throw new Error(`push answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  const result = answer.body as { id: string; seq: number; stored: boolean };
  if (result.stored !== true) throw new Error(`push not stored: ${JSON.stringify(result)}`);
  return result;
}

export interface StatusBody {
  id: string;
  seq: number;
  destination: string;
  createdAt: string;
  expiresAt: string;
  state: 'pending' | 'acked' | 'expired';
  devices: Record<string, 'pending' | 'delivered' | 'acked'>;
}

export function statusCall(service: Endpoint, user: string, id: string): Promise<ApiAnswer> {
  return call(service, 'GET', `/api/users/${encodeURIComponent(user)}/messages/${encodeURIComponent(id)}`, {
    token: tokenFor(service, 'backend', 'push'),
  });
}

export async function statusOf(service: Endpoint, user: string, id: string): Promise<StatusBody> {
  const answer = await statusCall(service, user, id);
  if (answer.status !== 200)
    throw new Error(`status answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  return answer.body as StatusBody;
}

/** A device: CONNECT with `device-id`, over a raw WebSocket. */
export async function connectDevice(
  service: Endpoint,
  user: string,
  device?: string,
  options: RawClientOptions = {},
): Promise<RawStompClient> {
  const client = await openWebSocket(service, { ...options, protocols: ['v12.stomp'] });
  try {
    await client.connect(tokenFor(service, user), device === undefined ? {} : { 'device-id': device });
  } catch (err: unknown) {
    client.close();
    throw err;
  }
  return client;
}

/** SUBSCRIBE with a receipt: resolves once the replay has been written. */
export async function subscribeInbox(
  client: RawStompClient,
  options: { id?: string; ack?: string; destination?: string; since?: number } = {},
): Promise<void> {
  await client.sendWithReceipt('SUBSCRIBE', {
    id: options.id ?? 'inbox',
    destination: options.destination ?? '/user/queue/inbox',
    ack: options.ack ?? 'client-individual',
    ...(options.since === undefined ? {} : { 'inbox-since': String(options.since) }),
  });
}

/** The MESSAGE frames received so far (taken or not). */
export function messages(client: RawStompClient): Frame[] {
  return client.all('MESSAGE');
}

export function seqs(frames: Frame[]): number[] {
  return frames.map((f) => Number(header(f, 'inbox-seq')));
}

export function bodies(frames: Frame[]): string[] {
  return frames.map((f) => f.body.toString('utf8'));
}

export async function waitForMessages(
  client: RawStompClient,
  count: number,
  timeoutMs = 5000,
): Promise<Frame[]> {
  await waitFor(() => messages(client).length >= count, timeoutMs, `${count} MESSAGE frames`);
  return messages(client);
}

/** ACK of a 1.2 MESSAGE, with a receipt: resolves once the inbox has recorded it. */
export async function ackMessage(client: RawStompClient, message: Frame, command = 'ACK'): Promise<void> {
  const ack = header(message, 'ack');
  if (ack === undefined) throw new Error('MESSAGE without an ack header (auto mode?)');
  await client.sendWithReceipt(command, { id: ack });
}

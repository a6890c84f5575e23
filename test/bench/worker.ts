/**
 * A load process: holds many clients (subscribers), runs a load generator (publishers.ts), or
 * consumes for the AMQP ceiling (amqp-ceiling.ts), on orders from the harness over the IPC channel
 * (`{ id, cmd, args }` in, `{ id, ok, result }` out). Started by workers.ts with its own raised
 * file-descriptor limit; never shares a process with the server being measured.
 */
import { CeilingConsumer, type CeilingConsumerArgs } from './amqp-ceiling';
import { openClient, type ClientPlan, type LoadClient } from './clients';
import { makeBody } from './payload';
import { publish, type PublishArgs } from './publishers';
import { pump, type PumpOptions, type PumpResult } from './pump';
import { Stats, type PhaseWindow } from './stats';

export interface OpenArgs {
  plan: ClientPlan;
  from: number;
  to: number;
  concurrency: number;
  /** For one client to connect (and subscribe). */
  timeoutMs: number;
  /** No client is started after this long: the rest count as not attempted. */
  maxMs: number;
}

export interface OpenResult {
  opened: number;
  failed: number;
  /** Not started because maxMs ran out. */
  notAttempted: number;
  ms: number;
  errorSamples: string[];
}

/** Each of this worker's clients sends; `{i}` in the destination becomes the client's index. */
export interface ClientSendArgs extends PumpOptions {
  destination: string;
  confirm: boolean;
}

type Command =
  | { cmd: 'open'; args: OpenArgs }
  | { cmd: 'reset'; args?: PhaseWindow }
  | { cmd: 'stats' }
  | { cmd: 'count' }
  | { cmd: 'clientSend'; args: ClientSendArgs }
  | { cmd: 'publish'; args: PublishArgs }
  | { cmd: 'consumeCeiling'; args: CeilingConsumerArgs }
  | { cmd: 'close' };

const stats = new Stats();
const clients: LoadClient[] = [];
let ceiling: CeilingConsumer | undefined;

async function open(args: OpenArgs): Promise<OpenResult> {
  const started = Date.now();
  const stopAt = started + args.maxMs;
  let next = args.from;
  let failed = 0;
  const errorSamples: string[] = [];
  const lane = async (): Promise<void> => {
    while (next < args.to && Date.now() < stopAt) {
      const index = next++;
      try {
        clients.push(await openClient(args.plan, index, stats, args.timeoutMs));
      } catch (err: unknown) {
        failed++;
        if (errorSamples.length < 5) errorSamples.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, args.concurrency) }, lane));
  const notAttempted = args.to - next;
  return { opened: next - args.from - failed, failed, notAttempted, ms: Date.now() - started, errorSamples };
}

async function clientSend(args: ClientSendArgs): Promise<PumpResult> {
  if (clients.length === 0) throw new Error('no clients to send from');
  return pump(args, (seq) => {
    const client = clients[seq % clients.length];
    return client.send(args.destination.replace('{i}', String(client.index)), makeBody(seq), args.confirm);
  });
}

async function consumeCeiling(args: CeilingConsumerArgs): Promise<null> {
  if (ceiling) throw new Error('a ceiling consumer is already running');
  ceiling = await CeilingConsumer.start(args, stats);
  return null;
}

/** Closes every client and the ceiling consumer, if any. */
async function close(): Promise<{ closed: number }> {
  const all = clients.splice(0);
  for (let i = 0; i < all.length; i += 500) await Promise.all(all.slice(i, i + 500).map((c) => c.close()));
  const consumer = ceiling;
  ceiling = undefined;
  await consumer?.stop();
  return { closed: all.length };
}

async function handle(message: Command): Promise<unknown> {
  switch (message.cmd) {
    case 'open':
      return open(message.args);
    case 'reset':
      stats.reset(message.args);
      return null;
    case 'stats':
      return stats.data();
    case 'count':
      return { received: stats.received, lastAt: stats.lastAt, clients: clients.length };
    case 'clientSend':
      return clientSend(message.args);
    case 'publish':
      return publish(message.args);
    case 'consumeCeiling':
      return consumeCeiling(message.args);
    case 'close':
      return close();
  }
}

process.on('message', (message: Command & { id: number }) => {
  handle(message).then(
    (result) => process.send?.({ id: message.id, ok: true, result }),
    (err: unknown) =>
      process.send?.({ id: message.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
// The harness going away (even by kill -9) ends the worker: no orphaned load.
process.on('disconnect', () => process.exit(0));

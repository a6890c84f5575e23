/**
 * The RabbitMQ nodes tests can talk to, each described by where it answers and how to run
 * rabbitmqctl against it, so one set of helpers (test/support/rabbitmq.ts) serves them all:
 *
 * - LOCAL_RABBIT: the machine's own node (3.10 here), which test/support/ensure-rabbitmq.cjs
 *   makes sure of. Shared by everyone: never restart it outside the -x lock (TEAM.md).
 * - RABBIT4: a 4.x node beside it, from a Debian 13 tree that test/support/ensure-rabbitmq4.cjs
 *   builds and starts, with the deprecated features RabbitMQ 4.3 denies by default denied.
 *   `npm test` runs both scripts first. Leave it running, with no queue or connection left.
 * - the nodes of a three-node test cluster (test/support/rabbit-cluster.ts), made per test run.
 */
import { resolve } from 'node:path';

/** How to run rabbitmqctl against a node: `command ...args <your arguments>`, with `env` added. */
export interface RabbitCtl {
  command: string;
  args: readonly string[];
  env?: Readonly<Record<string, string>>;
}

export interface RabbitNode {
  /** The Erlang node name, as cluster_status and the management API's `node` show it. */
  name: string;
  /** RabbitMQ's version once known (rabbitVersion() asks the management API and fills it in). */
  version?: string;
  host: string;
  amqpPort: number;
  stompPort: number;
  managementPort: number;
  /** guest/guest, which RabbitMQ allows from loopback only. */
  amqpUrl: string;
  stompUrl: string;
  /** The management HTTP API's base, e.g. `http://127.0.0.1:15672/api`. */
  managementUrl: string;
  ctl: RabbitCtl;
}

/** A node on 127.0.0.1 with guest/guest on the given ports. */
export function rabbitNodeOn(
  name: string,
  ports: { amqp: number; stomp: number; management: number },
  ctl: RabbitCtl,
): RabbitNode {
  const host = '127.0.0.1';
  return {
    name,
    host,
    amqpPort: ports.amqp,
    stompPort: ports.stomp,
    managementPort: ports.management,
    amqpUrl: `amqp://guest:guest@${host}:${ports.amqp}`,
    stompUrl: `stomp://guest:guest@${host}:${ports.stomp}`,
    managementUrl: `http://${host}:${ports.management}/api`,
    ctl,
  };
}

/** The machine's node; its name is the one /etc/rabbitmq/rabbitmq-env.conf gives it here. */
export const LOCAL_RABBIT: RabbitNode = rabbitNodeOn(
  'rabbit@localhost',
  { amqp: 5672, stomp: 61613, management: 15672 },
  { command: 'rabbitmqctl', args: [] },
);

export const ENSURE_RABBIT4_SCRIPT = resolve(__dirname, 'ensure-rabbitmq4.cjs');

/** The 4.x node (Web-STOMP on 15675 too). Its rabbitmqctl runs inside its tree, through the script. */
export const RABBIT4: RabbitNode = rabbitNodeOn(
  'sr-rabbit4@localhost',
  { amqp: 5673, stomp: 61614, management: 15673 },
  { command: process.execPath, args: [ENSURE_RABBIT4_SCRIPT, '--ctl'] },
);

export const RABBIT4_WEB_STOMP_PORT = 15675;

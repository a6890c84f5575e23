/**
 * docker/compose.cluster.yml (three RabbitMQ nodes under compose.yml's instances) without a Docker
 * engine: `docker compose config` on the pair where a compose plugin exists; everywhere, the two files
 * merged the way compose merges an override, and held to what the README promises: three nodes that
 * find each other from config with one cookie, instances that list every node (each starting at
 * another) in settings the service's own loader accepts, and a cluster.conf whose every key is one
 * the installed RabbitMQ (3.10, and the 4.x test tree when present) knows.
 */
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';
import { effectiveAmqpUrl, loadConfig } from '../../../app/config';
import { PROJECT_ROOT } from '../../support/cluster';

const DOCKER_DIR = join(PROJECT_ROOT, 'docker');
const BASE_FILE = join(DOCKER_DIR, 'compose.yml');
const CLUSTER_FILE = join(DOCKER_DIR, 'compose.cluster.yml');
const NODES = ['rabbitmq', 'rabbitmq-2', 'rabbitmq-3'];
const INSTANCES = ['app1', 'app2', 'app3'];
/** The RabbitMQ trees whose config schemas cluster.conf must satisfy (the 4.x one when provisioned). */
const RABBIT_LIBS = [
  '/usr/lib/rabbitmq/lib',
  '/var/lib/stomp-relay-test/rabbitmq4/root/usr/lib/rabbitmq/lib',
];

type Service = Record<string, unknown> & {
  image?: string;
  hostname?: string;
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] };
};

function load(file: string): Record<string, Service> {
  return (parse(readFileSync(file, 'utf8'), { merge: true }) as { services: Record<string, Service> })
    .services;
}

/** An override merged onto a service as compose does: maps key by key, volumes by container path. */
function mergeService(base: Service, over: Service): Service {
  const out: Service = { ...base, ...over };
  for (const key of ['environment', 'depends_on'] as const) {
    if (base[key] || over[key]) out[key] = { ...(base[key] ?? {}), ...(over[key] ?? {}) } as never;
  }
  const byTarget = new Map<string, string>();
  for (const volume of [...(base.volumes ?? []), ...(over.volumes ?? [])])
    byTarget.set(volume.split(':')[1]!, volume);
  if (byTarget.size > 0) out.volumes = [...byTarget.values()];
  return out;
}

function merged(): Record<string, Service> {
  const base = load(BASE_FILE);
  const over = load(CLUSTER_FILE);
  const out: Record<string, Service> = { ...base };
  for (const [name, svc] of Object.entries(over))
    out[name] = base[name] ? mergeService(base[name], svc) : svc;
  return out;
}

function hostOf(svc: Service, container: string): string | undefined {
  const volume = (svc.volumes ?? []).find((v) => v.split(':')[1] === container);
  return volume === undefined ? undefined : resolve(DOCKER_DIR, volume.split(':')[0]!);
}

/** `key = value` lines of a rabbitmq.conf (new-style, sysctl-like format). */
function confEntries(text: string): [string, string][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = /^([a-z0-9_.$-]+)\s*=\s*(\S.*)$/i.exec(line);
      if (!match) throw new Error(`not a 'key = value' line: ${line}`);
      return [match[1]!, match[2]!.trim()];
    });
}

/** Every `{mapping, "a.b.$var", ...}` of every schema file under an installed RabbitMQ, as regexps. */
function schemaKeys(lib: string): RegExp[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.schema')) files.push(path);
    }
  };
  walk(lib);
  const keys: RegExp[] = [];
  for (const file of files) {
    for (const [, key] of readFileSync(file, 'utf8').matchAll(/\{mapping,\s*"([^"]+)"/g)) {
      const pattern = key!
        .split('.')
        .map((part) => (part.startsWith('$') ? '[^.]+' : part.replace(/[-]/g, '\\-')))
        .join('\\.');
      keys.push(new RegExp(`^${pattern}$`));
    }
  }
  return keys;
}

describe('docker/compose.cluster.yml', () => {
  it('parses with compose.yml: `docker compose config` where a compose plugin exists, else as YAML', () => {
    if (spawnSync('docker', ['compose', 'version'], { timeout: 10_000 }).status === 0) {
      execFileSync('docker', ['compose', '-f', BASE_FILE, '-f', CLUSTER_FILE, 'config', '--quiet'], {
        stdio: 'pipe',
      });
    }
    expect(Object.keys(merged())).to.include.members([...NODES, ...INSTANCES, 'nginx']);
  });

  it('runs three RabbitMQ nodes of one image, with one cookie, the plugins and the cluster config', () => {
    const services = merged();
    const nodes = NODES.map((name) => services[name]!);
    expect(nodes.map((n) => n.hostname)).to.deep.equal(NODES);
    expect(new Set(nodes.map((n) => n.image)).size, 'one image').to.equal(1);
    expect(nodes[0]!.image).to.match(/^rabbitmq:4[^:]*-management$/);
    for (const [i, node] of nodes.entries()) {
      expect(node.environment?.ERLANG_COOKIE, NODES[i]).to.equal(nodes[0]!.environment?.ERLANG_COOKIE);
      expect(node.healthcheck?.test?.join(' '), NODES[i]).to.match(/rabbitmq-diagnostics.*check_running/);
      for (const container of ['/etc/rabbitmq/enabled_plugins', '/etc/rabbitmq/conf.d/20-cluster.conf']) {
        const host = hostOf(node, container);
        expect(host && existsSync(host), `${NODES[i]} mounts ${container} from a file that exists`).to.equal(
          true,
        );
      }
      // The entrypoint writes the cookie where Erlang reads it and hands over to the image's own.
      const script = (node.entrypoint ?? []).at(-1)?.replace(/\$\$/g, '$') ?? '';
      expect(script, NODES[i]).to.match(/"\$ERLANG_COOKIE" > \/var\/lib\/rabbitmq\/\.erlang\.cookie/);
      expect(script, NODES[i]).to.match(/exec docker-entrypoint\.sh rabbitmq-server$/);
      expect(spawnSync('sh', ['-n', '-c', script]).status, `${NODES[i]} entrypoint: sh -n`).to.equal(0);
    }
  });

  it('lists the three nodes in cluster.conf, with keys the installed RabbitMQ versions know', () => {
    const services = merged();
    const conf = readFileSync(hostOf(services.rabbitmq!, '/etc/rabbitmq/conf.d/20-cluster.conf')!, 'utf8');
    const entries = confEntries(conf);
    const value = (key: string): string | undefined => entries.find(([k]) => k === key)?.[1];
    expect(value('cluster_formation.peer_discovery_backend')).to.equal('classic_config');
    expect(
      entries.filter(([k]) => k.startsWith('cluster_formation.classic_config.nodes.')).map(([, v]) => v),
    ).to.deep.equal(NODES.map((host) => `rabbit@${host}`));
    expect(value('cluster_partition_handling')).to.equal('pause_minority');
    const libs = RABBIT_LIBS.filter((lib) => existsSync(lib));
    expect(libs, 'an installed RabbitMQ to check against').to.include(RABBIT_LIBS[0]);
    for (const lib of libs) {
      for (const version of readdirSync(lib).filter((d) => d.startsWith('rabbitmq_server-'))) {
        const keys = schemaKeys(join(lib, version));
        const unknown = entries.map(([k]) => k).filter((k) => !keys.some((re) => re.test(k)));
        expect(unknown, `keys ${version} does not know`).to.deep.equal([]);
      }
    }
  });

  it('gives every instance all three nodes, each list starting at another node, in settings the service accepts', () => {
    const services = merged();
    const firsts: string[] = [];
    for (const name of INSTANCES) {
      const env = services[name]!.environment ?? {};
      const stomp = (env.BROKER_URL ?? '').split(',').map((u) => new URL(u));
      const amqp = (env.AMQP_URL ?? '').split(',').map((u) => new URL(u));
      expect(stomp.map((u) => u.hostname).sort(), `${name} BROKER_URL`).to.deep.equal(NODES);
      expect(
        stomp.every((u) => u.protocol === 'stomp:' && u.port === '61613'),
        name,
      ).to.equal(true);
      expect(
        amqp.map((u) => u.hostname),
        `${name} AMQP_URL in BROKER_URL's order`,
      ).to.deep.equal(stomp.map((u) => u.hostname));
      expect(env.CLIENT_QUEUE_TYPE, name).to.equal('quorum');
      firsts.push(stomp[0]!.hostname);
      // The service's own loader: what would stop the container with a one-line error stops here.
      const interpolated = Object.fromEntries(
        Object.entries(env).map(([k, v]) => [k, v.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]),
      );
      const settings = loadConfig(interpolated);
      expect(effectiveAmqpUrl(settings), name).to.equal(env.AMQP_URL);
      expect(settings.clientQueueType, name).to.equal('quorum');
      for (const node of NODES) {
        expect(services[name]!.depends_on?.[node]?.condition, `${name} waits for ${node}`).to.equal(
          'service_healthy',
        );
      }
    }
    expect(firsts.sort(), 'where each instance starts').to.deep.equal(NODES);
  });
});

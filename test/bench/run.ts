/**
 * `npm run bench`: the service relaying to RabbitMQ, RabbitMQ Web-STOMP direct and a bare-ws
 * ceiling, measured side by side in one run on this machine (see RESULTS.md for the last run).
 *
 *   npm run bench                      full run (under 5 minutes), writes test/bench/results.json + RESULTS.md
 *   npm run bench -- --smoke           a few clients and messages (what the smoke test runs)
 *   npm run bench -- --only fanout,one-to-one,idle   --out DIR   --dist   --cpu-prof
 *   npm run bench -- --rerender [DIR]  rewrite RESULTS.md from results.json
 *
 * Every process is separate: the service, the bare-ws server, a load generator (publishers, REST
 * calls) and client workers (subscribers), each with its own raised file-descriptor limit and its
 * own loopback source address. Every loop is bounded in count and in time.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { coreCount } from './cpu';
import { FULL, SMOKE, type BenchContext } from './harness';
import { listenerPid, startBareWs, startService, type Spawned } from './processes';
import { brokerNode, deleteQueues, portOpen, queuesStartingWith } from './rabbit';
import { markdown, targets, writeResults, type BenchResults } from './report';
import { runFanout, type FanoutResult, type FanoutTarget } from './scenarios/fanout';
import { runIdle, type IdleResult } from './scenarios/idle';
import { runOneToOne, type OneToOneResult } from './scenarios/one-to-one';
import { LoadWorker } from './workers';

export type Scenario = 'fanout' | 'one-to-one' | 'idle';

export interface RunOptions {
  mode: 'full' | 'smoke';
  outDir: string;
  only?: Scenario[];
  /** Run the built service (dist/) instead of the sources through tsx. */
  dist?: boolean;
  /** Profile the service of the fan-out and one-to-one runs (node --cpu-prof) into outDir/profiles. */
  cpuProf?: boolean;
  log?: (message: string) => void;
}

const WEB_STOMP_URL = 'ws://127.0.0.1:15674/ws';
const BROKER_URL = 'stomp://guest:guest@127.0.0.1:61613';
const AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';
const DIRECT_QUEUE_PREFIX = 'stomp-bench.';
const POOL_SIZE = 2; // BROKER_POOL_SIZE default
/** Sockets left free on RabbitMQ for everyone else (other tests, our own pools). */
const BROKER_SOCKET_RESERVE = 60;

export async function runBench(options: RunOptions): Promise<BenchResults> {
  const log = options.log ?? ((m: string) => process.stdout.write(`${m}\n`));
  const started = Date.now();
  const root = resolve(__dirname, '../..');
  const sizes = options.mode === 'full' ? FULL : SMOKE;
  const only = new Set<Scenario>(options.only ?? ['fanout', 'one-to-one', 'idle']);
  // Other work on this machine may be restarting RabbitMQ (stop_app / start_app): give it 30 s.
  for (let i = 0; i < 30 && !(await portOpen(61613)); i++) await new Promise((r) => setTimeout(r, 1000));
  if (!(await portOpen(61613))) {
    throw new Error(
      'RabbitMQ STOMP (127.0.0.1:61613) does not answer: start RabbitMQ with rabbitmq_stomp enabled',
    );
  }
  const webStomp = await portOpen(15674);
  const node = await brokerNode();
  const secret = randomBytes(32).toString('base64url');
  const notes: string[] = [];
  const loadAvgAtStart = loadavg().map((l) => Math.round(l * 100) / 100);
  if (loadAvgAtStart[0] > 0.5 * coreCount()) {
    notes.push(
      `The machine was busy at start (load ${loadAvgAtStart[0]}): other work adds noise to these figures.`,
    );
  }
  if (!webStomp) notes.push('RabbitMQ Web-STOMP (15674) did not answer: the direct peer was not measured.');

  log(`starting ${sizes.workers} client workers and a load generator`);
  const all = await Promise.all(
    Array.from({ length: sizes.workers + 1 }, (_, i) => LoadWorker.start(i, root)),
  );
  const ctx: BenchContext = {
    root,
    sizes,
    workers: all.slice(0, sizes.workers),
    loadgen: all[sizes.workers],
    secret,
    log,
    notes,
  };
  const fanout: FanoutResult[] = [];
  const oneToOne: OneToOneResult[] = [];
  let idle: IdleResult | null = null;
  const running: Spawned[] = [];
  const attempt = async (what: string, work: () => Promise<void>): Promise<void> => {
    try {
      await work();
    } catch (err: unknown) {
      const why = err instanceof Error ? err.message : String(err);
      log(`${what} failed: ${why}`);
      notes.push(`${what} failed: ${why.slice(0, 300)}`);
    }
  };
  const spawnService = async (profile: boolean, inspect = false): Promise<Spawned> => {
    const profileDir = join(options.outDir, 'profiles');
    if (profile) mkdirSync(profileDir, { recursive: true });
    const service = await startService({
      root,
      secret,
      instanceId: `bench-${randomBytes(3).toString('hex')}`,
      brokerUrl: BROKER_URL,
      dist: options.dist ?? false,
      cpuProfDir: profile ? profileDir : undefined,
      inspect,
    });
    running.push(service);
    return service;
  };
  const stop = async (s: Spawned): Promise<void> => {
    running.splice(running.indexOf(s), 1);
    const reconnects = await brokerReconnects(s.url);
    if (reconnects > 0) {
      notes.push(
        `The service lost its RabbitMQ connection ${reconnects} time(s) during the run (RabbitMQ restarted by other work on this machine?): figures from that part are not valid; run again.`,
      );
    }
    await s.stop();
  };

  try {
    const rabbitPid = (await listenerPid(5672)) ?? (await listenerPid(61613));
    const clientPids = ctx.workers.map((w) => w.pid ?? 0);
    const loadgenPids = [ctx.loadgen.pid ?? 0];
    const rabbit = rabbitPid ? [rabbitPid] : [];

    if (only.has('fanout') || only.has('one-to-one')) {
      const service = await spawnService(options.cpuProf ?? false);
      const bare = await startBareWs(root);
      running.push(bare);
      const productUrl = `ws://127.0.0.1:${service.port}/stomp`;
      const jwtAuth = { kind: 'jwt' as const, secret };
      const login = { kind: 'login' as const, login: 'guest', passcode: 'guest', host: '/' };
      const productPids = {
        service: [service.pid],
        rabbitmq: rabbit,
        clients: clientPids,
        loadgen: loadgenPids,
      };

      if (only.has('fanout')) {
        const product: FanoutTarget = {
          system: 'product',
          subscriber: { protocol: 'stomp', url: productUrl, auth: jwtAuth, subscribe: '/topic/bench-fanout' },
          publisher: { protocol: 'stomp', url: productUrl, auth: jwtAuth },
          destination: '/topic/bench-fanout',
          pids: productPids,
        };
        const direct: FanoutTarget = {
          system: 'webstomp',
          subscriber: {
            protocol: 'stomp',
            url: WEB_STOMP_URL,
            auth: login,
            subscribe: '/topic/bench-fanout',
          },
          publisher: { protocol: 'stomp', url: WEB_STOMP_URL, auth: login },
          destination: '/topic/bench-fanout',
          pids: { rabbitmq: rabbit, clients: clientPids, loadgen: loadgenPids },
        };
        const bareTarget: FanoutTarget = {
          system: 'bare-ws',
          subscriber: { protocol: 'ws', url: `${bare.url}/sub` },
          publisher: { protocol: 'ws', url: `${bare.url}/pub` },
          destination: '',
          pids: { bare: [bare.pid], clients: clientPids, loadgen: loadgenPids },
        };
        let compare = Math.min(sizes.fanout.compareSubscribers, sizes.fanout.subscribers);
        if (webStomp) {
          const now = await brokerNode();
          if (now.socketsTotal !== undefined && now.socketsUsed !== undefined) {
            const room = now.socketsTotal - now.socketsUsed - BROKER_SOCKET_RESERVE - 1;
            if (room < compare) {
              notes.push(
                `RabbitMQ had ${now.socketsUsed}/${now.socketsTotal} sockets in use: the Web-STOMP comparison ran at ${Math.max(0, room)} subscribers instead of ${compare}.`,
              );
              compare = Math.max(1, room);
            }
          }
          await attempt('fan-out, Web-STOMP direct', async () => {
            fanout.push(await runFanout(ctx, direct, compare));
          });
        }
        const counts = [...new Set([compare, sizes.fanout.subscribers])];
        for (const n of counts) {
          await attempt(`fan-out, product at ${n}`, async () => {
            fanout.push(await runFanout(ctx, product, n));
          });
          await attempt(`fan-out, bare ws at ${n}`, async () => {
            fanout.push(await runFanout(ctx, bareTarget, n));
          });
        }
      }

      if (only.has('one-to-one')) {
        await attempt('one-to-one, product', async () => {
          oneToOne.push(
            ...(await runOneToOne(
              ctx,
              'product',
              { protocol: 'stomp', url: productUrl, auth: jwtAuth, subscribe: '/user/queue/echo' },
              [
                {
                  name: 'rest',
                  pusher: {
                    kind: 'loadgen',
                    via: { protocol: 'rest', baseUrl: service.url, secret, userPrefix: 'bench-u' },
                    destination: '/queue/echo',
                  },
                },
                { name: 'stomp-send', pusher: { kind: 'clients', destination: '/app/echo' } },
                {
                  name: 'amqp-backend',
                  pusher: {
                    kind: 'loadgen',
                    via: {
                      protocol: 'amqp',
                      url: AMQP_URL,
                      userPrefix: 'bench-u',
                      userDestination: 'queue/echo',
                    },
                    destination: '',
                  },
                },
              ],
              productPids,
            )),
          );
        });
        if (webStomp) {
          await deleteQueues(await queuesStartingWith(DIRECT_QUEUE_PREFIX));
          const queue = `/queue/${DIRECT_QUEUE_PREFIX}u`;
          await attempt('one-to-one, Web-STOMP direct', async () => {
            oneToOne.push(
              ...(await runOneToOne(
                ctx,
                'webstomp',
                { protocol: 'stomp', url: WEB_STOMP_URL, auth: login, subscribe: `${queue}{i}` },
                [
                  {
                    name: 'backend-publisher',
                    pusher: {
                      kind: 'loadgen',
                      via: {
                        protocol: 'stomp',
                        url: WEB_STOMP_URL,
                        auth: login,
                        userPrefix: 'bench-backend-',
                      },
                      destination: `${queue}{k}`,
                    },
                  },
                  { name: 'self-send', pusher: { kind: 'clients', destination: `${queue}{i}` } },
                ],
                { rabbitmq: rabbit, clients: clientPids, loadgen: loadgenPids },
              )),
            );
          });
          await deleteQueues(await queuesStartingWith(DIRECT_QUEUE_PREFIX));
        }
      }
      await stop(bare);
      await stop(service);
    }

    if (only.has('idle')) {
      await attempt('idle sessions', async () => {
        const service = await spawnService(false, true);
        try {
          idle = await runIdle(ctx, service, POOL_SIZE);
        } finally {
          await stop(service);
        }
      });
    }
  } finally {
    await Promise.all(running.splice(0).map((s) => s.stop()));
    for (const w of all) w.stop();
  }

  const results: BenchResults = {
    date: new Date().toISOString(),
    mode: options.mode,
    durationS: Math.round((Date.now() - started) / 1000),
    machine: {
      cores: coreCount(),
      cpuModel: cpus()[0]?.model ?? 'unknown',
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      rabbitmq: node.version ?? 'unknown',
      loadAvgAtStart,
      loadAvgAtEnd: loadavg().map((l) => Math.round(l * 100) / 100),
    },
    sizes,
    fanout,
    oneToOne,
    idle,
    targets: targets(fanout, oneToOne, idle),
    notes: [...methodNotes(node.fdTotal), ...notes],
  };
  mkdirSync(options.outDir, { recursive: true });
  const written = writeResults(options.outDir, results);
  log(`wrote ${written.json} and ${written.md}`);
  return results;
}

/** stomp_broker_reconnects_total of a running service (0 if it cannot be read). */
async function brokerReconnects(url: string): Promise<number> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = /^stomp_broker_reconnects_total\s+(\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function methodNotes(rabbitFds: number | undefined): string[] {
  return [
    'Latency is end to end: the sender writes its wall-clock time (performance.timeOrigin + now, same clock in every process) into the 100-byte body; each receiver subtracts it on arrival. Percentiles from log histograms (1 % buckets).',
    '"max" throughput: the publisher sends as fast as its confirmations come back (at most 100 unconfirmed fan-out messages / 200 unconfirmed pushes), a bounded count; fan-out deliveries are counted over a window in steady state, one-to-one over the whole run. "at N/s": the same fixed offered rate for every system, for comparable latency.',
    'Fan-out publishing: a STOMP client SENDs to /topic/bench-fanout on each system with a RECEIPT per message (the service with test/bench/authorization.json, which adds SEND to /topic/<name>; Web-STOMP as guest). The service confirms a SEND only once RabbitMQ has, like Web-STOMP does with receipts.',
    'One-to-one, product: each user subscribes to /user/queue/echo; "rest" = the load generator POSTs /api/users/{user}/messages (scope push, keep-alive, 200 in flight); "stomp-send" = each user SENDs to /app/echo, whose handler replies to the sender through the broker (publish to the user exchange, back through the per-user queue); "amqp-backend" = the load generator publishes to the exchange stomp-relay.user over AMQP with publisher confirms (Nagle off), as a backend may (README, Replies), so no instance handles the publish, only the deliveries. Direct: each user subscribes to its own durable /queue/stomp-bench.u<i> (deleted after the run); "backend-publisher" = the load generator SENDs over Web-STOMP, "self-send" = each user SENDs to its own queue.',
    `RabbitMQ's file-descriptor limit here is ${rabbitFds ?? 'unknown'}: Web-STOMP direct runs stay within its free sockets (about 600), so the fan-out comparison with it uses that count and the product also runs alone at the full count.`,
    'The service writes every frame due to one client in one event-loop turn as one WebSocket message (app/transport/websocket.ts); the bare-ws server sends one WebSocket message per payload per client, as a plain broadcast loop does. Under saturation the service therefore can deliver more than that "ceiling": it is the reference for a naive ws broadcast on this machine, not an upper bound.',
    'Idle sessions each subscribe to one topic (one shared broker subscription for all). A /user/... subscription instead adds one broker subscription and one auto-delete queue in RabbitMQ per user per instance, on the same pool connections.',
    'Where the product misses a one-to-one target, the profile (npm run bench -- --only one-to-one --cpu-prof) puts the REST push at about 165 µs of service CPU: the HTTP request itself (parsing, express routing, body reading, the 202 answer and its write) about 40 %, the SEND to RabbitMQ and reading back its RECEIPT and the MESSAGE about 20 %, the delivery to the WebSocket 15 %, garbage collection 11 %. RabbitMQ direct spends its per-message work on two cores; the service is one process on one core, behind which RabbitMQ still does the same routing work.',
    'Clients send heart-beat 0,0 (no heart-beats) everywhere. All processes share the same cores, so client-side CPU (parsing frames in the workers) limits what any system can be seen to deliver; the bare-ws row shows that limit.',
  ];
}

function parseArgs(argv: string[]): RunOptions {
  const options: RunOptions = { mode: 'full', outDir: __dirname };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--smoke') options.mode = 'smoke';
    else if (arg === '--dist') options.dist = true;
    else if (arg === '--cpu-prof') options.cpuProf = true;
    else if (arg === '--out') options.outDir = resolve(argv[++i] ?? '.');
    else if (arg === '--only') options.only = (argv[++i] ?? '').split(',') as Scenario[];
    else
      throw new Error(
        `unknown argument ${arg} (use --smoke, --only fanout,one-to-one,idle, --out DIR, --dist, --cpu-prof)`,
      );
  }
  return options;
}

if (require.main === module && process.argv[2] === '--rerender') {
  // Rewrites RESULTS.md from an existing results.json (after a change to the report's wording).
  const dir = resolve(process.argv[3] ?? __dirname);
  const results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as BenchResults;
  results.targets = targets(results.fanout, results.oneToOne, results.idle);
  writeResults(dir, results);
  process.exit(0);
}

if (require.main === module) {
  let options: RunOptions;
  try {
    options = parseArgs(process.argv.slice(2));
  } catch (err: unknown) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  runBench(options).then(
    (results) => {
      process.stdout.write(`\n${markdown(results)}`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(
        `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}

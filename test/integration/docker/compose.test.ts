/**
 * docker/ without a Docker engine: what can be checked is. `docker compose config` where a compose
 * plugin exists; everywhere, the compose file parsed and held to what the README promises (services,
 * ports, the plugin file, shared JWT_SECRET, mounts that exist), the Dockerfile's shape, its
 * HEALTHCHECK one-liner run for real against an instance, and the shared nginx config through
 * `nginx -t` in its local rendering.
 */
import { expect } from 'chai';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { PROJECT_ROOT, freePort } from '../../support/cluster';
import { findNginx, makeCertificate, nginxArgs, writeNginxConfig } from '../../support/nginx';
import { startTestService, type RunningService } from '../../support/service';

const execFileAsync = promisify(execFile);
const DOCKER_DIR = join(PROJECT_ROOT, 'docker');
const COMPOSE_FILE = join(DOCKER_DIR, 'compose.yml');
const INSTANCES = ['app1', 'app2', 'app3'];

interface ComposeService {
  image?: string;
  pull_policy?: string;
  stop_grace_period?: string;
  build?: { context?: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition?: string }>;
  healthcheck?: { test?: string[] };
}

interface ComposeFile {
  services: Record<string, ComposeService>;
}

function loadCompose(): ComposeFile {
  // merge: the instances share one definition through a YAML merge key (<<), as compose reads it.
  return parse(readFileSync(COMPOSE_FILE, 'utf8'), { merge: true }) as ComposeFile;
}

function service(compose: ComposeFile, name: string): ComposeService {
  const found = compose.services[name];
  if (!found) throw new Error(`compose.yml has no service ${name}`);
  return found;
}

/** `host:container[:mode]` volume strings, host side resolved against docker/ as compose does. */
function mounts(svc: ComposeService): { host: string; container: string }[] {
  return (svc.volumes ?? []).map((volume) => {
    const [host, container] = volume.split(':');
    return { host: resolve(DOCKER_DIR, host!), container: container! };
  });
}

/** `${VAR:-default}` as compose interpolates it with VAR unset. */
function interpolated(value: string): string {
  return value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1');
}

function dockerComposeWorks(): boolean {
  return spawnSync('docker', ['compose', 'version'], { timeout: 10_000 }).status === 0;
}

/** Dockerfile instructions (continuations joined), split into stages at each FROM. */
function dockerfileStages(): { from: string; lines: string[] }[] {
  const text = readFileSync(join(DOCKER_DIR, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  const stages: { from: string; lines: string[] }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (/^FROM\s/i.test(line)) stages.push({ from: line, lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  return stages;
}

describe('docker/compose.yml', () => {
  // The rule: `docker compose config` where a compose plugin exists, otherwise a YAML parse
  // (the checks below). Either way this test runs; it never skips.
  it('parses: `docker compose config` where a compose plugin exists, else as YAML with services', () => {
    if (dockerComposeWorks()) {
      execFileSync('docker', ['compose', '-f', COMPOSE_FILE, 'config', '--quiet'], { stdio: 'pipe' });
    } else {
      expect(loadCompose().services, 'services in docker/compose.yml').to.be.an('object');
    }
  });

  it('defines RabbitMQ, three instances and nginx', () => {
    expect(Object.keys(loadCompose().services)).to.include.members(['rabbitmq', ...INSTANCES, 'nginx']);
  });

  it('publishes the page on 8080 (http) and 8443 (https), RabbitMQ on its usual ports, all on 127.0.0.1', () => {
    const compose = loadCompose();
    expect(service(compose, 'nginx').ports).to.include.members([
      '127.0.0.1:8080:8080',
      '127.0.0.1:8443:8443',
    ]);
    expect(service(compose, 'rabbitmq').ports).to.include.members([
      '127.0.0.1:5672:5672',
      '127.0.0.1:15672:15672',
      '127.0.0.1:61613:61613',
    ]);
    // guest/guest (RabbitMQ) and the dev token endpoint (NODE_ENV=development) are for this machine.
    for (const [name, svc] of Object.entries(compose.services))
      for (const port of svc.ports ?? [])
        expect(port, `${name} publishes ${port}`).to.match(/^127\.0\.0\.1:/);
    expect(service(compose, 'rabbitmq').image).to.match(/^rabbitmq:4[^:]*-management/);
  });

  it('enables the STOMP and management plugins by a mounted enabled_plugins file', () => {
    const rabbit = service(loadCompose(), 'rabbitmq');
    const plugins = mounts(rabbit).find((m) => m.container === '/etc/rabbitmq/enabled_plugins');
    expect(plugins, 'a volume onto /etc/rabbitmq/enabled_plugins').to.not.equal(undefined);
    expect(existsSync(plugins!.host), plugins!.host).to.equal(true);
    // An Erlang term: a list of atoms followed by a full stop.
    const term = readFileSync(plugins!.host, 'utf8').trim();
    const match = /^\[([a-z_,\s]*)\]\.$/.exec(term);
    expect(match, `enabled_plugins is not [plugin,...].: ${term}`).to.not.equal(null);
    const listed = match![1]!.split(',').map((p) => p.trim());
    expect(listed).to.include.members(['rabbitmq_stomp', 'rabbitmq_management']);
    expect(rabbit.healthcheck?.test?.join(' ')).to.match(/rabbitmq-diagnostics/);
  });

  it('points every instance at rabbitmq, with one JWT_SECRET and its own INSTANCE_ID', () => {
    const compose = loadCompose();
    const envs = INSTANCES.map((name) => service(compose, name).environment ?? {});
    for (const [i, env] of envs.entries()) {
      const broker = new URL(env.BROKER_URL ?? '');
      expect(broker.protocol, INSTANCES[i]).to.equal('stomp:');
      expect(broker.hostname, INSTANCES[i]).to.equal('rabbitmq');
      expect(broker.port, INSTANCES[i]).to.equal('61613');
      expect(interpolated(env.JWT_SECRET ?? ''), `${INSTANCES[i]} JWT_SECRET`).to.have.length.of.at.least(32);
      expect(env.JWT_SECRET).to.equal(envs[0]!.JWT_SECRET);
      expect(env.PORT).to.equal('8080');
      // Development (the demo page logs in with dev tokens), listening where nginx's container can
      // reach it: both must be explicit, or the instance refuses to start / binds 127.0.0.1.
      expect({ NODE_ENV: env.NODE_ENV, HOST: env.HOST }, INSTANCES[i]).to.deep.equal({
        NODE_ENV: 'development',
        HOST: '0.0.0.0',
      });
    }
    expect(new Set(envs.map((env) => env.INSTANCE_ID)).size).to.equal(INSTANCES.length);
  });

  it('starts instances after RabbitMQ is healthy, and nginx after the instances are', () => {
    const compose = loadCompose();
    for (const name of INSTANCES) {
      expect(service(compose, name).depends_on?.rabbitmq?.condition, name).to.equal('service_healthy');
      expect(service(compose, 'nginx').depends_on?.[name]?.condition).to.equal('service_healthy');
    }
  });

  it('builds one image from docker/Dockerfile (the repository as context) and runs it three times', () => {
    const compose = loadCompose();
    const builders = Object.entries(compose.services).filter(([, svc]) => svc.build);
    expect(builders.map(([name]) => name)).to.deep.equal(['app1']);
    const build = builders[0]![1].build!;
    const context = resolve(DOCKER_DIR, build.context ?? '.');
    expect(context).to.equal(PROJECT_ROOT);
    expect(existsSync(join(context, build.dockerfile ?? 'Dockerfile'))).to.equal(true);
    const image = service(compose, 'app1').image;
    expect(image, 'the image app1 builds has a name').to.be.a('string');
    for (const name of INSTANCES.slice(1)) {
      expect(service(compose, name).image, name).to.equal(image);
      // Never looked for in a registry: app1's build makes it (compose starts app1 first).
      expect(service(compose, name).pull_policy, name).to.equal('never');
      expect(service(compose, name).depends_on?.app1, name).to.not.equal(undefined);
    }
  });

  it('gives each instance longer to stop than its drain (SHUTDOWN_TIMEOUT_MS) takes', () => {
    const compose = loadCompose();
    for (const name of INSTANCES) {
      const svc = service(compose, name);
      const drainMs = Number(svc.environment?.SHUTDOWN_TIMEOUT_MS ?? 10_000);
      const grace = /^(\d+)s$/.exec(svc.stop_grace_period ?? '');
      expect(grace, `${name} stop_grace_period in seconds`).to.not.equal(null);
      // The drain, then closing the broker connections: a few seconds more than the drain.
      expect(Number(grace![1]) * 1000, name).to.be.at.least(drainMs + 5_000);
    }
  });

  it('serves TLS from nginx with a certificate made by docker/tls/make-certificate.sh, mounted, not committed', () => {
    const compose = loadCompose();
    const nginx = service(compose, 'nginx');
    const tls = mounts(nginx).find((m) => m.container === '/etc/nginx/tls');
    expect(tls?.host, 'a volume onto /etc/nginx/tls').to.equal(join(DOCKER_DIR, 'tls'));
    expect(existsSync(join(DOCKER_DIR, 'tls/make-certificate.sh'))).to.equal(true);
    const serverConf = readFileSync(join(DOCKER_DIR, 'nginx/compose/server.conf'), 'utf8');
    expect(serverConf).to.match(/^listen 8443 ssl;/m);
    expect(serverConf).to.match(/^ssl_certificate \/etc\/nginx\/tls\/cert\.pem;/m);
    expect(serverConf).to.match(/^ssl_certificate_key \/etc\/nginx\/tls\/key\.pem;/m);
    const ignored = spawnSync('git', ['check-ignore', '-q', 'docker/tls/key.pem'], { cwd: PROJECT_ROOT });
    expect(ignored.status, 'docker/tls/key.pem is git-ignored').to.equal(0);
    for (const name of INSTANCES)
      expect(service(compose, name).environment?.ALLOWED_ORIGINS, name).to.include('https://localhost:8443');
  });

  it('lets nginx re-resolve the instances (Docker DNS, `resolve`), in an image recent enough for it', () => {
    const servers = readFileSync(join(DOCKER_DIR, 'nginx/compose/upstream-servers.conf'), 'utf8');
    expect(servers).to.match(/^resolver 127\.0\.0\.11\b/m);
    for (const name of INSTANCES)
      expect(servers).to.match(new RegExp(`^server ${name}:8080 resolve max_fails=0;`, 'm'));
    // `resolve` needs the group in shared memory, and nginx 1.27.3 or later.
    expect(readFileSync(join(DOCKER_DIR, 'nginx/nginx.conf'), 'utf8')).to.match(
      /^\s+zone stomp_relay \d+k;/m,
    );
    const tag = /^nginx:(\d+)\.(\d+)/.exec(service(loadCompose(), 'nginx').image ?? '');
    expect(tag, 'nginx image pinned to a version').to.not.equal(null);
    const [major, minor] = [Number(tag![1]), Number(tag![2])];
    expect(major > 1 || minor >= 28, `nginx ${major}.${minor} has upstream resolve`).to.equal(true);
  });

  it('mounts the shared nginx.conf and the compose half of the per-cluster files, which exist', () => {
    const nginx = service(loadCompose(), 'nginx');
    expect(nginx.image).to.match(/^nginx:/);
    const byTarget = new Map(mounts(nginx).map((m) => [m.container, m.host]));
    expect(byTarget.get('/etc/nginx/nginx.conf')).to.equal(join(DOCKER_DIR, 'nginx/nginx.conf'));
    const cluster = byTarget.get('/etc/nginx/cluster');
    expect(cluster, 'a volume onto /etc/nginx/cluster').to.not.equal(undefined);
    const servers = readFileSync(join(cluster!, 'upstream-servers.conf'), 'utf8');
    for (const name of INSTANCES) expect(servers).to.match(new RegExp(`^server ${name}:8080\\b`, 'm'));
    expect(readFileSync(join(cluster!, 'server.conf'), 'utf8')).to.match(/^listen 8080;/m);
  });
});

describe('docker/Dockerfile', () => {
  it('builds with dev dependencies, then runs with production ones only', () => {
    const stages = dockerfileStages();
    expect(stages.length, 'stages').to.be.at.least(2);
    const [build, runtime] = [stages[0]!, stages.at(-1)!];
    expect(build.lines.join('\n')).to.match(/^RUN npm ci\b(?!.*--omit=dev)/m);
    expect(build.lines.join('\n')).to.match(/^RUN npm run build/m);
    expect(runtime.lines.join('\n')).to.match(/^RUN npm ci --omit=dev\b/m);
    expect(runtime.lines.join('\n')).to.match(/^COPY --from=\S+ \/app\/dist \.\/dist$/m);
  });

  it('runs as a non-root user, exposes 8080 and starts dist/app/main.js', () => {
    const runtime = dockerfileStages().at(-1)!.lines;
    const user = runtime.filter((line) => /^USER\s/i.test(line)).at(-1);
    expect(user, 'a USER instruction').to.not.equal(undefined);
    expect(user!.split(/\s+/)[1]).to.not.match(/^(root|0)(:|$)/);
    expect(runtime).to.include('EXPOSE 8080');
    expect(runtime).to.include('CMD ["node", "dist/app/main.js"]');
    // The same entry point as `npm start`, so the image runs what the build produced.
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as {
      scripts: { start: string };
    };
    expect(pkg.scripts.start).to.equal('node dist/app/main.js');
  });

  it('copies only paths that exist, and its ignore file keeps the context small', () => {
    for (const line of dockerfileStages().flatMap((stage) => stage.lines)) {
      const copy = /^COPY (?!--from)(.+) \S+$/.exec(line);
      if (!copy) continue;
      for (const source of copy[1]!.split(/\s+/))
        expect(existsSync(join(PROJECT_ROOT, source)), source).to.equal(true);
    }
    const ignore = readFileSync(join(DOCKER_DIR, 'Dockerfile.dockerignore'), 'utf8').split('\n');
    expect(ignore[ignore.findIndex((l) => !l.startsWith('#'))]).to.equal('**');
    expect(ignore).to.include.members(['!app', '!config', '!public', '!package-lock.json']);
  });

  describe('HEALTHCHECK', () => {
    let service: RunningService | undefined;
    after(async () => service?.stop());

    function healthcheck(): string[] {
      const line = dockerfileStages()
        .at(-1)!
        .lines.find((l) => l.startsWith('HEALTHCHECK '));
      expect(line, 'a HEALTHCHECK').to.not.equal(undefined);
      const json = /\bCMD (\[.*\])$/.exec(line!);
      expect(json, 'HEALTHCHECK CMD in exec form').to.not.equal(null);
      return JSON.parse(json![1]!) as string[];
    }

    it('asks /readyz, with node (no curl in slim images)', () => {
      const [command, ...args] = healthcheck();
      expect(command).to.equal('node');
      expect(args.join(' ')).to.include('/readyz');
    });

    it('passes against a ready instance and fails where nothing answers', async () => {
      const [command, ...args] = healthcheck();
      service = await startTestService();
      const port = String(service.port);
      await execFileAsync(command === 'node' ? process.execPath : command!, args, {
        env: { ...process.env, PORT: port },
        timeout: 10_000,
      });
      const closed = String(await freePort());
      const failed = await execFileAsync(process.execPath, args, {
        env: { ...process.env, PORT: closed },
      }).then(
        () => false,
        () => true,
      );
      expect(failed, 'healthcheck against a closed port fails').to.equal(true);
    });
  });
});

describe('docker/nginx/nginx.conf', () => {
  it('passes nginx -t in its local rendering (a scratch prefix, no system paths), TLS included', async function () {
    const nginx = findNginx();
    expect(nginx, 'nginx on PATH or in /usr/sbin (apt-get install -y nginx; .ci/run installs it)').to.be.a(
      'string',
    );
    const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-nginx-t-'));
    try {
      const tls = makeCertificate(join(dir, 'tls'));
      const listeners = { httpPort: await freePort(), httpsPort: await freePort(), tls };
      const layout = writeNginxConfig(dir, listeners, [8081, 8082, 8083]);
      const result = spawnSync(nginx!, ['-t', ...nginxArgs(layout)], { encoding: 'utf8', timeout: 10_000 });
      expect(result.status, result.stderr).to.equal(0);
      expect(result.stderr).to.include('test is successful');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps the routing in the shared file: hash on the SockJS session, WebSocket upgrades, no buffering', () => {
    const conf = readFileSync(join(DOCKER_DIR, 'nginx/nginx.conf'), 'utf8');
    expect(conf).to.match(/hash \$sockjs_session consistent;/);
    expect(conf).to.match(/map \$uri \$sockjs_session/);
    expect(conf).to.match(/map \$http_upgrade \$connection_upgrade/);
    expect(conf).to.match(/proxy_buffering off;/);
    expect(conf).to.match(/include cluster\/upstream-servers\.conf;/);
    expect(conf).to.match(/include cluster\/server\.conf;/);
  });

  it("never sends a SockJS session's requests to another instance, nor marks instances failed", () => {
    const conf = readFileSync(join(DOCKER_DIR, 'nginx/nginx.conf'), 'utf8');
    const session = /location ~ \^\/ws\/\[\^\/\]\+\/\[\^\/\]\+\/ \{([^}]*)\}/.exec(conf);
    expect(session, 'a location for /ws/{server}/{session}/...').to.not.equal(null);
    expect(session![1]).to.match(/proxy_next_upstream off;/);
    const compose = readFileSync(join(DOCKER_DIR, 'nginx/compose/upstream-servers.conf'), 'utf8');
    const local = readFileSync(join(PROJECT_ROOT, 'test/support/nginx.ts'), 'utf8');
    for (const line of compose.split('\n').filter((l) => l.startsWith('server ')))
      expect(line).to.match(/ max_fails=0;$/);
    expect(local).to.include('max_fails=0;');
  });

  it('makes a certificate for localhost and 127.0.0.1 that its CA signs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'stomp-relay-tls-'));
    try {
      const tls = makeCertificate(dir);
      const cert = new X509Certificate(readFileSync(tls.cert));
      const ca = new X509Certificate(readFileSync(tls.ca));
      expect(cert.verify(ca.publicKey), 'signed by the CA').to.equal(true);
      expect(cert.checkHost('localhost')).to.equal('localhost');
      expect(cert.checkIP('127.0.0.1')).to.equal('127.0.0.1');
      expect(ca.ca, 'the CA is a CA').to.equal(true);
      expect(cert.ca).to.equal(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

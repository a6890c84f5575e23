/**
 * Every setting of the service: its environment variable, its default and what it does, in one
 * place. app/config.ts reads this table, applies config files and the environment, and refuses to
 * start with one line naming the setting when a value is bad.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';

export type Kind =
  | { type: 'int'; min: number; max: number }
  | { type: 'string'; pattern?: RegExp; hint?: string }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'bool' }
  | { type: 'list' };

export interface SettingSpec<T> {
  env: string;
  default: T;
  kind: Kind;
  doc: string;
}

const int = (env: string, def: number, min: number, max: number, doc: string): SettingSpec<number> => ({
  env,
  default: def,
  kind: { type: 'int', min, max },
  doc,
});
const str = (
  env: string,
  def: string,
  doc: string,
  pattern?: RegExp,
  hint?: string,
): SettingSpec<string> => ({
  env,
  default: def,
  kind: { type: 'string', pattern, hint },
  doc,
});

const bool = (env: string, def: boolean, doc: string): SettingSpec<boolean> => ({
  env,
  default: def,
  kind: { type: 'bool' },
  doc,
});

export const SETTINGS = {
  port: int('PORT', 8080, 0, 65535, 'HTTP port: REST API, demo page, /ws (SockJS) and /stomp (WebSocket).'),
  host: str(
    'HOST',
    '',
    'Address the HTTP and TCP listeners bind to. Unset: 127.0.0.1 in development, so the open dev token endpoint is not reachable from other machines (set HOST, e.g. 0.0.0.0, to listen wider, as docker/compose.yml does), and 0.0.0.0 in production.',
  ),
  instanceId: str(
    'INSTANCE_ID',
    `${hostname()}-${randomBytes(3).toString('hex')}`,
    'Name of this instance in logs, CONNECTED frames, session lists and broker queue names.',
    // No '.': it separates the parts of broker queue names (stomp-relay.<instance>.<role>.<name>).
    /^[A-Za-z0-9_-]{1,64}$/,
    'letters, digits, _ and - (at most 64)',
  ),
  nodeEnv: str(
    'NODE_ENV',
    '',
    '`development` or `production`, nothing else (no `test`, `prod` or `Production`: a mode the service would have to guess is refused). `production` turns the dev token endpoint off and requires a JWT key of at least 32 characters. Unset: development when neither a JWT key nor a non-loopback HOST is set (`npm start` on a laptop); with JWT_SECRET, JWT_PUBLIC_KEY or a wide HOST it is refused, since that is a deployment that forgot NODE_ENV=production.',
    /^(development|production)$/,
    'development or production, in lower case',
  ),
  logLevel: {
    env: 'LOG_LEVEL',
    default: 'info',
    kind: { type: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    doc: 'pino log level.',
  } as SettingSpec<string>,
  logFormat: {
    env: 'LOG_FORMAT',
    default: 'auto',
    kind: { type: 'enum', values: ['auto', 'pretty', 'json'] },
    doc: 'Log lines: `json` (one object per line), `pretty` (readable, for a terminal); `auto`: JSON in production, pretty otherwise.',
  } as SettingSpec<string>,

  brokerUrl: str(
    'BROKER_URL',
    '',
    'RabbitMQ STOMP plugin address(es), comma-separated, e.g. stomp://guest:guest@127.0.0.1:61613/%2F. Unset: embedded broker (one instance only).',
  ),
  amqpUrl: str(
    'AMQP_URL',
    '',
    'RabbitMQ AMQP address(es), comma-separated for failover (one set of credentials and vhost). Default: each BROKER_URL host with its credentials on port 5672.',
  ),
  brokerPoolSize: int(
    'BROKER_POOL_SIZE',
    2,
    1,
    64,
    'STOMP connections per instance to RabbitMQ, shared by all sessions.',
  ),
  clientQueueType: {
    env: 'CLIENT_QUEUE_TYPE',
    default: 'classic',
    kind: { type: 'enum', values: ['classic', 'quorum'] },
    doc: "What RabbitMQ queue a client `/queue/<name>` is declared as. `quorum` (replicated: its messages and consumers survive the loss of a minority of a cluster's nodes) on a cluster of three or more nodes; `classic` (one node: while that node is down the queue is unavailable) on a single node. An existing queue keeps its type: delete it to change.",
  } as SettingSpec<string>,
  brokerHeartbeatMs: int(
    'BROKER_HEARTBEAT_MS',
    10000,
    0,
    600000,
    'Heart-beat interval on broker connections, both ways.',
  ),
  brokerPrefetch: int(
    'BROKER_PREFETCH',
    100,
    1,
    65535,
    "Unacknowledged messages per broker subscription (prefetch-count), and the most a client's SUBSCRIBE `prefetch-count` may ask for (a larger one is held to it).",
  ),
  queueDeliveryLimit: int(
    'QUEUE_DELIVERY_LIMIT',
    20,
    0,
    1000,
    'Most deliveries of one `/queue/` message (NACKed or its consumer gone each time): past it the message is given up (dropped, or dead-lettered where its queue has a dead-letter exchange). 0: no limit.',
  ),
  brokerReconnectMaxMs: int(
    'BROKER_RECONNECT_MAX_MS',
    10000,
    100,
    600000,
    'Longest wait between broker reconnect attempts.',
  ),
  directoryAnnounceMs: int(
    'DIRECTORY_ANNOUNCE_MS',
    5000,
    100,
    600000,
    'How often an instance re-announces its sessions; a dead instance leaves the list after 3 intervals.',
  ),

  jwtSecret: str(
    'JWT_SECRET',
    '',
    'HS256 secret shared by all instances. Unset in development: a random one.',
  ),
  jwtPublicKey: str(
    'JWT_PUBLIC_KEY',
    '',
    'PEM public key (RS256 or ES256); takes precedence over JWT_SECRET.',
  ),
  jwtIssuer: str('JWT_ISSUER', '', 'Required `iss` claim, when set.'),
  jwtRequireExp: bool(
    'JWT_REQUIRE_EXP',
    true,
    'Refuse tokens without an `exp` claim (STOMP and REST). `false` accepts them, and such a token is then valid forever: only for an issuer that cannot set `exp`.',
  ),
  jwtAudience: str('JWT_AUDIENCE', '', 'Required `aud` claim, when set.'),
  devTokenTtlS: int('DEV_TOKEN_TTL_S', 3600, 1, 86400, 'Lifetime of tokens from POST /api/dev/token.'),
  allowedOrigins: {
    env: 'ALLOWED_ORIGINS',
    default: [],
    kind: { type: 'list' },
    doc: 'Origins allowed to open /ws and /stomp (comma-separated; `*` for any). Empty: same origin only.',
  } as SettingSpec<string[]>,

  stompTcpPort: int('STOMP_TCP_PORT', -1, -1, 65535, 'Raw STOMP over TCP port; -1 (default) turns it off.'),
  connectTimeoutMs: int('CONNECT_TIMEOUT_MS', 10000, 100, 600000, 'Time a client has to complete CONNECT.'),
  frameTimeoutMs: int(
    'FRAME_TIMEOUT_MS',
    10000,
    100,
    600000,
    'Time a client has to finish a frame once its first byte arrived (ERROR and close after it, however the bytes trickle in). The default lets a MAX_FRAME_BYTES frame arrive at 7 KB/s; raise both together.',
  ),
  heartbeatSendMs: int(
    'HEARTBEAT_SEND_MS',
    10000,
    0,
    600000,
    'Server heart-beat offer: how often it can send.',
  ),
  heartbeatReceiveMs: int(
    'HEARTBEAT_RECEIVE_MS',
    10000,
    0,
    600000,
    'Server heart-beat offer: how often it wants to hear.',
  ),
  maxFrameBytes: int(
    'MAX_FRAME_BYTES',
    65536,
    1024,
    16777216,
    'Largest frame (headers and body) a client may send.',
  ),
  maxHeaders: int('MAX_HEADERS', 64, 4, 1024, 'Most headers in one client frame.'),
  maxHeaderBytes: int('MAX_HEADER_BYTES', 8192, 256, 1048576, 'Longest command or header line.'),
  maxFramesInFlight: int(
    'MAX_FRAMES_IN_FLIGHT',
    256,
    1,
    65536,
    "Flow control, high-water mark: with this many of a client's frames received and not yet handled (waiting on the broker), the session stops reading from that client (a paused socket; a SockJS send answered late) and reads again once at most half as many wait (the low-water mark). Nothing is refused.",
  ),
  maxBytesInFlight: int(
    'MAX_BYTES_IN_FLIGHT',
    1048576,
    1024,
    1073741824,
    'Flow control, high-water mark in bytes (headers and bodies) of the frames MAX_FRAMES_IN_FLIGHT counts; reading resumes at half (the low-water mark).',
  ),
  maxSendsInFlight: int(
    'MAX_SENDS_IN_FLIGHT',
    32,
    1,
    65536,
    'SENDs to /queue/ one session may have sent to the broker and not yet had confirmed: the next waits for room (1: each waits for the confirm of the one before). RECEIPTs and ERRORs still come in the order the frames did.',
  ),
  maxTransactionFrames: int(
    'MAX_TRANSACTION_FRAMES',
    256,
    1,
    65536,
    'SENDs, ACKs and NACKs one open transaction may collect before its COMMIT or ABORT.',
  ),
  maxTransactionBytes: int(
    'MAX_TRANSACTION_BYTES',
    1048576,
    1024,
    1073741824,
    'Message bytes a session may hold in open transactions (BEGIN without COMMIT).',
  ),
  maxSessionsPerUser: int(
    'MAX_SESSIONS_PER_USER',
    50,
    1,
    100000,
    'Live sessions one user may hold on one instance.',
  ),
  maxSubscriptionsPerSession: int(
    'MAX_SUBSCRIPTIONS_PER_SESSION',
    100,
    1,
    100000,
    'Subscriptions per session.',
  ),
  maxFramesPerSecond: int(
    'MAX_FRAMES_PER_SECOND',
    500,
    1,
    1000000,
    'Client frames per second per session (burst: 2 s worth).',
  ),
  sendBufferLimitBytes: int(
    'SEND_BUFFER_LIMIT_BYTES',
    524288,
    1024,
    1073741824,
    'Outgoing bytes queued for a slow client before it is dropped.',
  ),
  sendTimeLimitMs: int(
    'SEND_TIME_LIMIT_MS',
    10000,
    100,
    600000,
    'How long a client may stay behind before it is dropped.',
  ),
  restBodyLimitBytes: int('REST_BODY_LIMIT_BYTES', 65536, 256, 16777216, 'Largest REST request body.'),
  httpKeepAliveTimeoutMs: int(
    'HTTP_KEEP_ALIVE_TIMEOUT_MS',
    65000,
    1000,
    600000,
    "How long an idle keep-alive HTTP connection is kept open; longer than a backend's or a load balancer's own idle timeout, so the client closes first and never sends on a connection the server is closing.",
  ),
  restMaxPushesInFlight: int(
    'REST_MAX_PUSHES_IN_FLIGHT',
    1000,
    1,
    1000000,
    'REST pushes an instance holds waiting for the broker to take them (each holds its body); past it a push answers 503 `overloaded` with Retry-After.',
  ),
  restBatchMax: int(
    'REST_BATCH_MAX',
    1000,
    1,
    100000,
    'Most messages one POST /api/messages/batch may carry, counting each user of a `users` item as one (each is a publish the instance holds until the broker takes it); more answers 413 for the whole call.',
  ),
  restBatchBodyLimitBytes: int(
    'REST_BATCH_BODY_LIMIT_BYTES',
    1048576,
    256,
    67108864,
    "Largest POST /api/messages/batch request body (413 beyond); each item's message body is still held to REST_BODY_LIMIT_BYTES.",
  ),
  restTokenCacheSize: int(
    'REST_TOKEN_CACHE_SIZE',
    1000,
    0,
    1000000,
    'Verified REST bearer tokens remembered until they expire (at most 5 minutes), so a backend reusing its token is not re-verified per push; 0 turns this off.',
  ),
  shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS', 10000, 0, 600000, 'Longest SIGTERM drain before exit.'),
  authorizationFile: str(
    'AUTHORIZATION_FILE',
    '',
    'JSON file with subscribe/send rules (per user or token scope; raw broker destinations only by rules spelled with their prefix); default config/authorization.json.',
  ),
  backendsFile: str(
    'BACKENDS_FILE',
    '',
    'JSON file naming the backend services /app/<service>/... reaches over AMQP, and who may; default config/backends.json.',
  ),

  // The live cluster view (app/admin/): /admin and GET /api/admin/cluster.
  adminEnabled: {
    env: 'ADMIN_ENABLED',
    default: 'auto',
    kind: { type: 'enum', values: ['auto', 'true', 'false'] },
    doc: 'The live cluster view at /admin and GET /api/admin/cluster (a token with scope `admin`). `auto`: on in development, off with NODE_ENV=production; `true` turns it on in production too.',
  } as SettingSpec<string>,
  adminHistoryS: int(
    'ADMIN_HISTORY_S',
    300,
    10,
    3600,
    'Seconds of push and delivery rates the cluster view charts (one point per DIRECTORY_ANNOUNCE_MS, at most 1,000).',
  ),

  // The durable inbox (app/inbox/): SPEC "The inbox: pushes that wait for the user".
  inboxDatabaseUrl: str(
    'INBOX_DATABASE_URL',
    '',
    'PostgreSQL for the inbox, postgres://user:pass@host:5432/db. Unset: the embedded store with the embedded broker; off with BROKER_URL.',
    /^postgres(ql)?:\/\/\S+$/,
    'a postgres:// URL',
  ),
  inboxDataDir: str(
    'INBOX_DATA_DIR',
    '',
    'Directory the embedded inbox store (PGlite) keeps its data in. Unset: in memory, lost at exit.',
  ),
  inboxDestinations: {
    env: 'INBOX_DESTINATIONS',
    default: ['/user/queue/inbox', '/user/queue/inbox.**'],
    kind: { type: 'list' },
    doc: 'Durable user destinations, as patterns in the syntax of the authorization rules (comma-separated).',
  } as SettingSpec<string[]>,
  inboxMaxMessages: int(
    'INBOX_MAX_MESSAGES',
    1000,
    1,
    1000000,
    'Messages kept per user, acknowledged or not, across its durable destinations; beyond it the oldest expire.',
  ),
  inboxTtlS: int(
    'INBOX_TTL_S',
    604800,
    1,
    315360000,
    'Seconds a pushed message is kept; an expired one answers the status call for as long again.',
  ),
  inboxPoolSize: int('INBOX_POOL_SIZE', 4, 1, 100, 'PostgreSQL connections per instance for the inbox.'),
  inboxConnectTimeoutMs: int(
    'INBOX_CONNECT_TIMEOUT_MS',
    2000,
    100,
    60000,
    'Longest wait for an inbox database connection before answering inbox_unavailable.',
  ),
  inboxStatementTimeoutMs: int(
    'INBOX_STATEMENT_TIMEOUT_MS',
    5000,
    100,
    600000,
    'Longest an inbox statement may run before it is cancelled (inbox_unavailable).',
  ),
  inboxSweepIntervalMs: int(
    'INBOX_SWEEP_INTERVAL_MS',
    60000,
    1000,
    3600000,
    'How often an instance expires and deletes inbox messages (bounded work per run).',
  ),
  inboxCatchUpMs: int(
    'INBOX_CATCH_UP_MS',
    5000,
    100,
    3600000,
    'A committed inbox message whose live publish failed is published again this long after (the outbox catch-up looks twice as often).',
  ),
} as const;

type ValueOf<S> = S extends SettingSpec<infer T> ? T : never;

/** The typed configuration the service runs with. */
export type Settings = { -readonly [K in keyof typeof SETTINGS]: ValueOf<(typeof SETTINGS)[K]> };

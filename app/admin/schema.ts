/**
 * The answer of GET /api/admin/cluster as JSON Schema (TypeBox), for the API description
 * (rest/operations.ts); the REST tests check real answers against it. Mirrors cluster-view.ts's
 * ClusterSnapshot; `Static<typeof ClusterAnswer>` must stay assignable from it (checked below).
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ClusterSnapshot } from './cluster-view';

const Count = Type.Integer({ minimum: 0 });
const Rate = Type.Number({ minimum: 0, description: 'Per second.' });

const ByTransport = Type.Record(Type.String(), Count, {
  description:
    'Sessions by transport, as sessions report it: `websocket` (/stomp), `tcp`, and ' +
    '`sockjs/<sub-transport>` for /ws (`sockjs/websocket`, `sockjs/xhr-streaming`, ...); only ' +
    'transports with sessions are listed.',
  examples: [{ websocket: 2, 'sockjs/xhr-streaming': 1 }],
});

const Stats = Type.Object(
  {
    sampledAt: Type.Number({ description: 'When the instance took this sample (epoch ms, its own clock).' }),
    broker: Type.Object(
      {
        kind: Type.String({ examples: ['rabbitmq'] }),
        ready: Type.Boolean({ description: 'Whether its broker connection is up (its /readyz).' }),
        reason: Type.Optional(Type.String({ description: 'Why not, while not ready.' })),
        reconnects: Type.Integer({ minimum: 0, description: 'Broker connections re-made after a loss.' }),
        connections: Type.Optional(
          Type.Object(
            { up: Count, total: Count },
            {
              additionalProperties: false,
              description:
                'Its STOMP connections to RabbitMQ that are up, of BROKER_POOL_SIZE; absent for the embedded broker.',
            },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    draining: Type.Boolean(),
    pushes: Type.Integer({ minimum: 0, description: 'REST pushes and publishes the broker took.' }),
    deliveries: Type.Integer({ minimum: 0, description: 'MESSAGE frames written to clients.' }),
    slowConsumerCuts: Type.Integer({ minimum: 0, description: 'Sessions dropped as too slow.' }),
    pushRate: Rate,
    deliveryRate: Rate,
  },
  {
    additionalProperties: false,
    description: 'Counters since the instance started, and rates over its last announce period.',
  },
);

const Instance = Type.Object(
  {
    id: Type.String({ description: 'Its `INSTANCE_ID`.' }),
    self: Type.Boolean({ description: 'The instance that answered.' }),
    heardAgoMs: Type.Integer({ minimum: 0, description: 'Since the answering instance last heard from it.' }),
    sessions: Count,
    byTransport: ByTransport,
    users: Type.Integer({ minimum: 0, description: 'Distinct users with a session on it.' }),
    subscriptions: Count,
    stats: Type.Union([Stats, Type.Null()], {
      description: 'Null until its first announcement with stats arrives.',
    }),
  },
  { additionalProperties: false },
);

export const ClusterAnswer = Type.Object(
  {
    generatedAt: Type.String({ format: 'date-time' }),
    servedBy: Type.String({ description: 'The instance that answered.' }),
    totals: Type.Object(
      {
        instances: Count,
        sessions: Count,
        byTransport: ByTransport,
        users: Type.Integer({
          minimum: 0,
          description: 'Distinct users online; one on two instances counts once.',
        }),
        subscriptions: Count,
        brokerReady: Type.Integer({ minimum: 0, description: 'Instances whose broker connection is up.' }),
        pushes: Count,
        deliveries: Count,
        slowConsumerCuts: Count,
        pushRate: Rate,
        deliveryRate: Rate,
      },
      { additionalProperties: false },
    ),
    instances: Type.Array(Instance, { description: 'The answering instance first, then the others by id.' }),
    history: Type.Object(
      {
        intervalMs: Type.Integer({ minimum: 1, description: 'Between points (DIRECTORY_ANNOUNCE_MS).' }),
        windowS: Type.Integer({
          minimum: 1,
          description: 'What the points cover at most (ADMIN_HISTORY_S).',
        }),
        points: Type.Array(
          Type.Object(
            { at: Type.String({ format: 'date-time' }), pushRate: Rate, deliveryRate: Rate },
            { additionalProperties: false },
          ),
          { description: "The cluster's rates, oldest first, since this instance started." },
        ),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

// Assignable both ways, or this fails to compile: a field one of them lacks or types differently.
const _toSchema: Static<typeof ClusterAnswer> = {} as ClusterSnapshot;
const _fromSchema: ClusterSnapshot = {} as Static<typeof ClusterAnswer>;
void [_toSchema, _fromSchema];

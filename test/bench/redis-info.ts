/**
 * What the harness reads of the local Redis the Socket.IO peer runs on: the memory it reports
 * (INFO memory), and a clean-up of anything left under this run's key prefix (the adapter and
 * the emitter use only pub/sub channels, which go with their subscribers; this deletes keys only).
 */
import { createClient } from 'redis';

export const REDIS_URL = 'redis://127.0.0.1:6379';

async function withRedis<T>(
  url: string,
  work: (client: ReturnType<typeof createClient>) => Promise<T>,
): Promise<T> {
  const client = createClient({ url });
  client.on('error', () => undefined); // the command's own rejection says what went wrong
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

/** Whether Redis answers PING at `url`. */
export async function redisAnswers(url: string): Promise<boolean> {
  try {
    return (await withRedis(url, (c) => c.ping())) === 'PONG';
  } catch {
    return false;
  }
}

/** `used_memory` of INFO memory, in KiB. */
export async function redisMemoryKiB(url: string): Promise<number | null> {
  try {
    const info = await withRedis(url, (c) => c.info('memory'));
    const m = /^used_memory:(\d+)/m.exec(info);
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** Deletes keys starting with `prefix` (none is expected); returns how many there were. */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  return withRedis(url, async (c) => {
    let deleted = 0;
    for await (const keys of c.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      if (keys.length > 0) deleted += await c.del(keys);
    }
    return deleted;
  });
}

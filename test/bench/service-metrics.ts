/** What the harness reads from a running service's /metrics (null or 0 when it cannot be read). */

async function metric(url: string, name: string): Promise<number | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const m = new RegExp(`^${name}\\s+([\\d.e+]+)`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** V8 heap in use, KiB. */
export async function heapUsedKiB(url: string): Promise<number | null> {
  const bytes = await metric(url, 'nodejs_heap_size_used_bytes');
  return bytes === null ? null : Math.round(bytes / 1024);
}

/** Times the service has reconnected to RabbitMQ since it started. */
export async function brokerReconnects(url: string): Promise<number> {
  return (await metric(url, 'stomp_broker_reconnects_total')) ?? 0;
}

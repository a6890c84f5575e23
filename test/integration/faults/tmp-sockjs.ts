import { startTestService } from '../../support/service';
(async () => {
  const s = await startTestService({});
  const base = `${s.url}/ws/000/abcdef`;
  const r = await fetch(`${base}/xhr`, { method: 'POST' });
  console.log('open', r.status, await r.text());
  const before = process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const big = '["' + 'a'.repeat(50 * 1024 * 1024) + '"]';
  const t = Date.now();
  const res = await fetch(`${base}/xhr_send`, { method: 'POST', body: big, headers: { 'content-type': 'text/plain' } });
  console.log('send', res.status, (await res.text()).slice(0, 100), Date.now() - t, 'ms');
  const m = process.memoryUsage();
  console.log('mem MB', ((m.heapUsed + m.arrayBuffers - before) / 1e6).toFixed(1), 'rss', (m.rss / 1e6).toFixed(0));
  await s.stop();
})();

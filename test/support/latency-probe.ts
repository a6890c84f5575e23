/**
 * A /healthz prober on its own thread: it asks every 10 ms and keeps the worst answer time, so a
 * test can show an instance stayed live while something else kept this thread busy (a fuzzer
 * building and sending messages would delay a prober on the same event loop, and that delay is the
 * test's, not the instance's).
 */
import { Worker } from 'node:worker_threads';

export interface ProbeResult {
  /** Slowest /healthz answer, ms from request to the end of the answer. */
  worstMs: number;
  answers: number;
  /** Requests that failed or did not answer 200. */
  failures: number;
}

const PROBE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let worstMs = 0, answers = 0, failures = 0, stopping = false;
parentPort.on('message', () => { stopping = true; });
function next() {
  if (stopping) { agent.destroy(); parentPort.postMessage({ worstMs, answers, failures }); return; }
  setTimeout(ask, 10);
}
function ask() {
  const started = process.hrtime.bigint();
  http.get(workerData.url + '/healthz', { agent }, (res) => {
    res.resume();
    res.on('end', () => {
      worstMs = Math.max(worstMs, Number(process.hrtime.bigint() - started) / 1e6);
      answers++;
      if (res.statusCode !== 200) failures++;
      next();
    });
  }).on('error', () => { failures++; next(); });
}
ask();
`;

export class HealthzProbe {
  private readonly worker: Worker;

  constructor(url: string) {
    this.worker = new Worker(PROBE, { eval: true, workerData: { url } });
  }

  /** Stops probing; resolves with what was measured. */
  stop(): Promise<ProbeResult> {
    return new Promise((resolve, reject) => {
      this.worker.once('message', (result: ProbeResult) => {
        void this.worker.terminate();
        resolve(result);
      });
      this.worker.once('error', reject);
      this.worker.postMessage('stop');
    });
  }
}

// BullMQ side of the peer benchmarks: the same measurements as ../common.py, one JSON line to $PEER_OUT.
// Run by run.sh; the workers are `node worker.js` processes with BullMQ's default settings.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { Queue } = require('bullmq');
const IORedis = require('ioredis');
const { REDIS_URL, QUEUE, MARK, redisOptions, now } = require('./shared');

const env = (name, fallback) => Number(process.env[name] || fallback);
const N = env('PEER_N', 10000);
const RUNS = env('PEER_RUNS', 3);
const [LAT_N, LAT_RATE] = [env('PEER_LAT_N', 500), 200];
const [DELAY_N, DELAY_AHEAD, DELAY_RATE] = [env('PEER_DELAY_N', 200), 2, 100];
const KILL9_CAP = 90;
const POLL = 0.05;
const SETTLE = 0.2; // after the last mark, so jobs still in flight finish before Redis usage is read (as common.py)
const SETTINGS = 'concurrency 1 (default), lockDuration and stalledInterval 30 s (default)';

// Our own connection (marks, polls, stats, cleanup). Unlike BullMQ's connections it gives up on a command after
// a few reconnection attempts, so an unreachable Redis ends in an error line instead of a hang.
const redis = new IORedis({ ...redisOptions(), maxRetriesPerRequest: 2 });
redis.on('error', () => {}); // reported by the command that fails
let queue; // created once Redis has answered
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, Math.max(0, s) * 1000));

async function clean() {
  for (const pattern of [`bull:${QUEUE}:*`, `${MARK}*`]) {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      if (keys.length) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return null;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

// Polls every 50 ms; resolves to the number of polls made once `check` is true, null on timeout.
async function waitFor(timeout, check) {
  const deadline = now() + timeout;
  let polls = 0;
  while (now() < deadline) {
    polls += 1;
    if (await check()) return polls;
    await sleep(POLL);
  }
  return null;
}

const children = new Set();
// run.sh's timeout sends SIGTERM: take the workers along instead of leaving them running, and the keys.
process.on('SIGTERM', async () => {
  for (const child of children) child.kill('SIGKILL');
  setTimeout(() => process.exit(143), 5000).unref();
  if (queue) await queue.close().catch(() => {}); // no more adds from the loop still running, then clean
  await clean().catch(() => {});
  process.exit(143);
});

function startWorker() {
  const child = spawn(process.execPath, [path.join(__dirname, 'worker.js')], { stdio: 'ignore' });
  children.add(child);
  child.exited = new Promise((resolve) => child.once('exit', resolve)).then(() => children.delete(child));
  return child;
}

async function stopWorker(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
  await child.exited;
  clearTimeout(timer);
}

async function redisStats() { // one INFO call for both sections, so the bookkeeping is one command per snapshot
  const info = await redis.call('INFO', 'cpu', 'commandstats');
  const cpu = Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_user:([\d.]+)/.exec(info)[1]);
  const calls = [...info.matchAll(/calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
  return [cpu, calls];
}

async function timed(fn) {
  const started = now();
  await fn();
  return now() - started;
}

async function enqueueOneByOne(mode, n) {
  for (let i = 0; i < n; i++) await queue.add('peer', { mode, n, t: 0 });
}

async function enqueueBulk(mode, n) {
  for (let i = 0; i < n; i += 1000) {
    const size = Math.min(1000, n - i);
    await queue.addBulk(Array.from({ length: size }, () => ({ name: 'peer', data: { mode, n, t: 0 } })));
  }
}

// N queued jobs, then one fresh worker: N / (last - first), with Redis CPU and commands per job.
async function drain(mode) {
  await clean();
  await enqueueBulk(mode, N);
  const [cpu0, cmds0] = await redisStats();
  const worker = startWorker();
  try {
    const polls = await waitFor(300, async () => (await redis.exists(MARK + 'last')) === 1);
    if (polls === null) throw new Error(`${mode}: ${N} jobs not done in 300 s`);
    await sleep(SETTLE);
    const [cpu1, cmds1] = await redisStats();
    const first = Number(await redis.get(MARK + 'first'));
    const last = Number(await redis.get(MARK + 'last'));
    // Ours between the snapshots: the polls (one EXISTS each) and the first INFO (counted once it returned).
    return [N / Math.max(last - first, 1e-6), ((cpu1 - cpu0) * 1e6) / N, (cmds1 - cmds0 - polls - 1) / N];
  } finally {
    await stopWorker(worker);
  }
}

// `count` jobs at `rate`/s, open loop; t is the send time (latency) or the due time (delayed).
async function sendPaced(mode, count, rate, ahead = 0) {
  const origin = now();
  for (let i = 0; i < count; i++) {
    await sleep(origin + i / rate - now());
    const t = now() + ahead;
    await queue.add('peer', { mode, n: 0, t }, ahead ? { delay: ahead * 1000 } : {});
  }
}

const marks = async (mode) => (await redis.lrange(MARK + mode, 0, -1)).map(Number);

async function latencyAndDelayed(result) {
  await clean();
  const worker = startWorker();
  try {
    await sendPaced('latency', 1, 1); // warm-up: the worker is connected and idle afterwards
    if ((await waitFor(60, async () => (await redis.llen(MARK + 'latency')) >= 1)) === null) {
      throw new Error('worker did not start');
    }
    await redis.del(MARK + 'latency');
    await sendPaced('latency', LAT_N, LAT_RATE);
    await waitFor(60, async () => (await redis.llen(MARK + 'latency')) >= LAT_N);
    const all = (values, count) => (values.length < count ? [] : values); // nulls unless every job ran
    const lat = all(await marks('latency'), LAT_N);
    Object.assign(result, { lat_p50: pct(lat, 50), lat_p95: pct(lat, 95), lat_p99: pct(lat, 99) });
    await sendPaced('delayed', DELAY_N, DELAY_RATE, DELAY_AHEAD);
    await waitFor(DELAY_AHEAD + 60, async () => (await redis.llen(MARK + 'delayed')) >= DELAY_N);
    const late = all(await marks('delayed'), DELAY_N);
    Object.assign(result, { delay_p50: pct(late, 50), delay_p99: pct(late, 99) });
  } finally {
    await stopWorker(worker);
  }
}

// One 120 s job; SIGKILL its worker once it started, start a fresh worker, time kill -> second start.
// The job stays in the active list with a lock (30 s) that nobody renews. The stalled-job check runs at most
// once per stalledInterval (30 s) across workers: one check marks the active jobs, a later one moves a marked job
// whose lock has expired back to wait. So expect about two intervals, ~60 s.
async function kill9Rerun() {
  await clean();
  const workers = [startWorker()];
  try {
    await queue.add('peer', { mode: 'kill9', n: 0, t: 0 });
    if ((await waitFor(60, async () => (await redis.llen(MARK + 'kill9')) >= 1)) === null) {
      throw new Error('kill9 job did not start');
    }
    const killed = now();
    await stopWorker(workers[0], 'SIGKILL');
    workers.push(startWorker());
    const rerun = await waitFor(KILL9_CAP, async () => (await redis.llen(MARK + 'kill9')) >= 2);
    return rerun === null ? null : Number(await redis.lindex(MARK + 'kill9', 1)) - killed;
  } finally {
    for (const w of workers) await stopWorker(w, 'SIGKILL');
  }
}

async function measure() {
  await redis.ping().catch((err) => { throw new Error(`no answer from ${REDIS_URL}: ${err.message}`); });
  queue = new Queue(QUEUE, { connection: redisOptions() });
  const result = { peer: 'bullmq', settings: SETTINGS, n: N };
  const keys = ['enqueue_per_s', 'bulk_per_s', 'drain_per_s', 'drain_incr_per_s', 'redis_cpu_us_per_job',
    'redis_cmds_per_job'];
  const runs = [];
  for (let run = 0; run < RUNS; run++) {
    await clean();
    const enqueue = N / (await timed(() => enqueueOneByOne('enqueue', N)));
    await clean();
    const bulk = N / (await timed(() => enqueueBulk('bulk', N)));
    const [rate, cpu, cmds] = await drain('drain');
    runs.push([enqueue, bulk, rate, (await drain('incr'))[0], cpu, cmds]);
  }
  keys.forEach((key, i) => { result[key] = median(runs.map((run) => run[i])); });
  await latencyAndDelayed(result);
  result.kill9_rerun_s = await kill9Rerun();
  const bullmq = JSON.parse(fs.readFileSync(path.join(__dirname, 'node_modules/bullmq/package.json'))).version;
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))[1];
  result.versions = { bullmq, node: process.versions.node, redis: redisVersion };
  return result;
}

function emit(result) {
  const line = JSON.stringify(result);
  if (process.env.PEER_OUT) fs.appendFileSync(process.env.PEER_OUT, line + '\n');
  console.error(line);
}

(async () => {
  try {
    emit(await measure());
  } catch (err) {
    emit({ peer: 'bullmq', error: String(err && err.message ? err.message : err) });
  } finally {
    await clean().catch(() => {});
    if (queue) await queue.close();
    redis.disconnect();
  }
})();

// One BullMQ worker process with default settings (concurrency 1, lockDuration and stalledInterval 30 s).
// The job body mirrors common.handle on the Python side: a no-op with data {mode, n, t} that writes marks.
'use strict';

const { Worker } = require('bullmq');
const IORedis = require('ioredis');
const { QUEUE, MARK, redisOptions, now } = require('./shared');

const marks = new IORedis(redisOptions()); // a connection of its own, apart from the worker's
let count = 0; // one process, one thread: no lock needed

async function body(job) {
  const started = now();
  const { mode, n, t } = job.data;
  if (mode === 'drain' || mode === 'incr') {
    // Only the first start and the n-th completion cost a Redis call (plus the INCR in incr mode).
    if (mode === 'incr') await marks.incr(MARK + 'count');
    count += 1;
    if (count === 1) await marks.set(MARK + 'first', String(started));
    if (count === n) await marks.set(MARK + 'last', String(now()));
  } else if (mode === 'latency' || mode === 'delayed') {
    await marks.rpush(MARK + mode, String((started - t) * 1000));
  } else if (mode === 'kill9') {
    await marks.rpush(MARK + 'kill9', String(started));
    await new Promise((resolve) => setTimeout(resolve, 120000));
  }
}

const worker = new Worker(QUEUE, body, { connection: redisOptions() });
worker.on('error', (err) => console.error(err));
process.on('SIGTERM', async () => {
  await worker.close();
  marks.disconnect();
  process.exit(0);
});

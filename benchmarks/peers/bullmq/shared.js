// What bench.js and worker.js share: the Redis to use, the queue name, the marks and the clock.
'use strict';

const REDIS_URL = process.env.PEER_REDIS_URL || 'redis://127.0.0.1:6390/0';
const QUEUE = 'peerbench'; // BullMQ's keys are then bull:peerbench:*
const MARK = 'peerbench:';

// ioredis options from the URL; BullMQ wants maxRetriesPerRequest null on the worker's blocking connection.
function redisOptions() {
  const u = new URL(REDIS_URL);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    db: Number(u.pathname.slice(1) || 0),
    username: u.username || undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    maxRetriesPerRequest: null,
  };
}

// Epoch seconds with sub-millisecond precision (Date.now() has only milliseconds).
const now = () => (performance.timeOrigin + performance.now()) / 1000;

module.exports = { REDIS_URL, QUEUE, MARK, redisOptions, now };

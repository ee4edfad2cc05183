# Sidekiq side of the peer benchmarks: the same measurements as ../common.py, one JSON line to $PEER_OUT.
# Run by run.sh; the workers are `sidekiq -r job.rb -q peerbench` processes with default settings.
require "json"
require "socket"
require_relative "job"

N = Integer(ENV.fetch("PEER_N", "10000"))
RUNS = Integer(ENV.fetch("PEER_RUNS", "3"))
LAT_N, LAT_RATE = Integer(ENV.fetch("PEER_LAT_N", "500")), 200.0
DELAY_N, DELAY_AHEAD, DELAY_RATE = Integer(ENV.fetch("PEER_DELAY_N", "200")), 2.0, 100.0
KILL9_CAP = 90.0
POLL = 0.05
SETTLE = 0.2 # after the last mark, so jobs still in flight finish before Redis usage is read (as common.py)
SETTINGS = "concurrency 10 (default), basic fetch"

def redis = (@redis ||= Redis.new(url: REDIS_URL)) # our own connection: marks, polls, stats, cleanup

WORKER_PIDS = []

# Sidekiq has no namespace of its own (redis-namespace is deprecated in 6.x), so delete precisely what our
# jobs and workers wrote: our queue, our job class's entries in the shared sorted sets, the process records of
# our workers (keys "host:pid:nonce", which a killed worker leaves for 60 s), and the marks. The shared
# stat:* counters are left alone.
def clean
  r = redis
  r.del("queue:#{QUEUE}")
  r.srem("queues", QUEUE)
  %w[schedule retry dead].each do |set|
    ours = r.zscan_each(set, match: "*\"PeerJob\"*").map(&:first)
    r.zrem(set, ours) unless ours.empty?
  end
  WORKER_PIDS.each do |pid|
    prefix = "#{Socket.gethostname}:#{pid}:"
    ids = r.smembers("processes").select { |id| id.start_with?(prefix) }
    r.srem("processes", ids) unless ids.empty?
    keys = r.scan_each(match: "#{prefix}*", count: 1000).to_a
    r.del(*keys) unless keys.empty?
  end
  r.scan_each(match: "#{MARK}*", count: 1000).each_slice(1000) { |keys| r.del(*keys) }
end

def median(values)
  s = values.sort
  s.size.odd? ? s[s.size / 2] : (s[s.size / 2 - 1] + s[s.size / 2]) / 2.0
end

def pct(values, p)
  s = values.sort
  s.empty? ? nil : s[((p / 100.0 * s.size).ceil - 1).clamp(0, s.size - 1)]
end

# Polls every 50 ms; returns the number of polls made when the block turns true, nil on timeout.
def wait_for(timeout)
  deadline = now + timeout
  polls = 0
  while now < deadline
    polls += 1
    return polls if yield
    sleep POLL
  end
  nil
end

def start_worker
  pid = Process.spawn("sidekiq", "-r", File.join(__dir__, "job.rb"), "-q", QUEUE, out: File::NULL, err: File::NULL)
  WORKER_PIDS << pid
  pid
end

def stop_worker(pid, signal = "TERM")
  Process.kill(signal, pid)
  Process.wait(pid)
rescue Errno::ESRCH, Errno::ECHILD
  nil
end

def redis_stats # one INFO call for both sections, so the bookkeeping is one command per snapshot
  info = redis.call("INFO", "cpu", "commandstats")
  cpu = info[/used_cpu_sys:([\d.]+)/, 1].to_f + info[/used_cpu_user:([\d.]+)/, 1].to_f
  [cpu, info.scan(/calls=(\d+)/).sum { |(c)| c.to_i }]
end

def timed
  started = now
  yield
  now - started
end

def enqueue_one_by_one(mode, n) = n.times { PeerJob.perform_async(mode, n, 0.0) }

def enqueue_bulk(mode, n)
  (0...n).each_slice(1000) do |chunk|
    Sidekiq::Client.push_bulk("class" => PeerJob, "args" => chunk.map { [mode, n, 0.0] })
  end
end

# N queued jobs, then one fresh worker: N / (last - first), with Redis CPU and commands per job.
def drain(mode)
  clean
  enqueue_bulk(mode, N)
  cpu0, cmds0 = redis_stats
  pid = start_worker
  begin
    polls = wait_for(300) { redis.exists?("#{MARK}last") } or raise "#{mode}: #{N} jobs not done in 300 s"
    sleep SETTLE
    cpu1, cmds1 = redis_stats
    rate = N / [redis.get("#{MARK}last").to_f - redis.get("#{MARK}first").to_f, 1e-6].max
    # Ours between the snapshots: the polls (one EXISTS each) and the first INFO (counted once it returned).
    [rate, (cpu1 - cpu0) * 1e6 / N, (cmds1 - cmds0 - polls - 1).to_f / N]
  ensure
    stop_worker(pid)
  end
end

# `count` jobs at `rate`/s, open loop; t is the send time (latency) or the due time (delayed).
def send_paced(mode, count, rate, ahead = 0.0)
  origin = now
  count.times do |i|
    wait = origin + i / rate - now
    sleep wait if wait > 0
    t = now + ahead
    ahead.zero? ? PeerJob.perform_async(mode, 0, t) : PeerJob.perform_at(t, mode, 0, t)
  end
end

def marks(mode) = redis.lrange("#{MARK}#{mode}", 0, -1).map(&:to_f)

def latency_and_delayed(result)
  clean
  pid = start_worker
  started = now
  begin
    send_paced("latency", 1, 1.0) # warm-up: the worker is connected and idle afterwards
    wait_for(60) { redis.llen("#{MARK}latency") >= 1 } or raise "worker did not start"
    redis.del("#{MARK}latency")
    send_paced("latency", LAT_N, LAT_RATE)
    wait_for(60) { redis.llen("#{MARK}latency") >= LAT_N }
    lat = marks("latency")
    lat = [] if lat.size < LAT_N # nulls unless every job ran, as common.py
    result.merge!(lat_p50: pct(lat, 50), lat_p95: pct(lat, 95), lat_p99: pct(lat, 99))
    # Sidekiq's scheduler sleeps 10-15 s after a worker starts before its first poll; measure steady state.
    sleep [started + 16 - now, 0].max
    send_paced("delayed", DELAY_N, DELAY_RATE, DELAY_AHEAD)
    wait_for(DELAY_AHEAD + 60) { redis.llen("#{MARK}delayed") >= DELAY_N }
    late = marks("delayed")
    late = [] if late.size < DELAY_N
    result.merge!(delay_p50: pct(late, 50), delay_p99: pct(late, 99))
  ensure
    stop_worker(pid)
  end
end

# One 120 s job; SIGKILL its worker once it started, start a fresh worker, time kill -> second start.
def kill9_rerun
  clean
  pids = [start_worker]
  PeerJob.perform_async("kill9", 0, 0.0)
  wait_for(60) { redis.llen("#{MARK}kill9") >= 1 } or raise "kill9 job did not start"
  killed = now
  stop_worker(pids.first, "KILL")
  pids << start_worker
  wait_for(KILL9_CAP) { redis.llen("#{MARK}kill9") >= 2 } ? redis.lindex("#{MARK}kill9", 1).to_f - killed : nil
ensure
  pids&.each { |pid| stop_worker(pid, "KILL") }
end

def measure
  result = { peer: "sidekiq", settings: SETTINGS, n: N }
  runs = Array.new(RUNS) do
    clean
    enqueue = N / timed { enqueue_one_by_one("enqueue", N) }
    clean
    bulk = N / timed { enqueue_bulk("bulk", N) }
    rate, cpu, cmds = drain("drain")
    [enqueue, bulk, rate, drain("incr")[0], cpu, cmds]
  end
  %i[enqueue_per_s bulk_per_s drain_per_s drain_incr_per_s redis_cpu_us_per_job redis_cmds_per_job]
    .each_with_index { |key, i| result[key] = median(runs.map { |run| run[i] }) }
  latency_and_delayed(result)
  result[:kill9_rerun_s] = kill9_rerun
  result[:versions] = { sidekiq: Sidekiq::VERSION, ruby: RUBY_VERSION, redis: redis.info("server")["redis_version"] }
  result
end

def emit(result)
  line = JSON.generate(result)
  File.open(ENV["PEER_OUT"], "a") { |f| f.puts(line) } if ENV["PEER_OUT"]
  warn line
end

begin
  emit(measure)
rescue StandardError => e
  emit(peer: "sidekiq", error: "#{e.class}: #{e.message}")
ensure
  clean
end

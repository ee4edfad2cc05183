# The benchmark's job for Sidekiq, loaded by the client (bench.rb) and by each worker (`sidekiq -r job.rb`).
# The body mirrors common.handle on the Python side: a no-op with arguments (mode, n, t) that writes marks.
require "sidekiq"

REDIS_URL = ENV.fetch("PEER_REDIS_URL", "redis://127.0.0.1:6390/0")
QUEUE = "peerbench"
MARK = "peerbench:"

# Debian pairs sidekiq 6.4 with redis-rb 4.8, which warns on stderr at every SADD Sidekiq's client sends (one
# per push): opting in to 5.0's Integer return silences it, and Sidekiq ignores that return value anyway.
Redis.sadd_returns_boolean = false

Sidekiq.configure_client { |config| config.redis = { url: REDIS_URL } }
Sidekiq.configure_server { |config| config.redis = { url: REDIS_URL } }

def now = Process.clock_gettime(Process::CLOCK_REALTIME)

class PeerJob
  include Sidekiq::Job
  sidekiq_options queue: QUEUE # everything else (retries, logging) stays at Sidekiq's defaults

  @count = 0
  @lock = Mutex.new # the default concurrency is 10 threads in one process
  class << self
    def bump = @lock.synchronize { @count += 1 }
  end

  def perform(mode, n, t)
    started = now
    case mode
    when "drain", "incr"
      # Only the first start and the n-th completion cost a Redis call (plus the INCR in incr mode).
      Sidekiq.redis { |r| r.incr("#{MARK}count") } if mode == "incr"
      count = PeerJob.bump
      Sidekiq.redis { |r| r.set("#{MARK}first", started.to_s) } if count == 1
      Sidekiq.redis { |r| r.set("#{MARK}last", now.to_s) } if count == n
    when "latency", "delayed"
      Sidekiq.redis { |r| r.rpush("#{MARK}#{mode}", ((started - t) * 1000).to_s) }
    when "kill9"
      Sidekiq.redis { |r| r.rpush("#{MARK}kill9", started.to_s) }
      sleep 120
    end
  end
end

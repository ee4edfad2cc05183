"""Observability: Prometheus instruments, the scrape-time Redis collector, the /metrics endpoints, traces.

instruments.py   counters and histograms counted by workers, schedulers and enqueuers (hot path)
collector.py     queue gauges read from Redis when scraped (one pipelined read for all queues)
exposition.py    rendering /metrics, the worker's and supervisor's endpoints, multiprocess merging
tracing.py       OpenTelemetry spans when ``opentelemetry-api`` is installed; no cost when it is not
"""

"""Execution history in SQL: the durable record of every job and attempt, fed from the queues' event streams.

Redis holds live state; the sink (``sink.py``) projects each queue's ``events`` stream into the ``jobs``,
``job_runs`` and ``schedules`` tables (``schema.py``), which operators query for months (``queries.py``).
"""

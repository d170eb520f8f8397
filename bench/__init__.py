"""payproc's benchmark harness (``make bench`` / ``python -m bench.run``).

Every scenario runs real processes against the local RabbitMQ, a fresh database and the
bundled fake gateway on loopback, and is described in its own module:

* ``bench.ceiling``       bare aio-pika confirmed publish and consume+ack: the broker's limit;
* ``bench.payproc_runs``  payproc workers draining a pre-filled queue (0 ms and 50 ms gateway);
* ``bench.peers``         the same job done by Celery and by Dramatiq;
* ``bench.retries``       30 % transient gateway failures: goodput and retry-delay accuracy;
* ``bench.memory``        worker peak RSS while draining a 50,000-message backlog;
* ``bench.admin``         DLQ admin list latency at 100,000 entries and bulk replay rate;
* ``bench.report``        the table (stdout and ``bench/results.md``) with ratios and targets.

Nothing here is imported by payproc itself; the peers (Celery, Dramatiq) are the ``bench``
extra, never runtime dependencies.
"""

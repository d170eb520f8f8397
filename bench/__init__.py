"""payproc's benchmark harness (``make bench`` / ``python -m bench.run``).

Every scenario runs real processes against the local RabbitMQ, a fresh database and the
bundled fake gateway on loopback, and is described in its own module:

* ``bench.ceiling``       bare aio-pika confirmed publish and consume+ack: the broker's limit;
* ``bench.payproc_runs``  payproc workers draining a pre-filled queue (0 ms and 50 ms gateway);
* ``bench.peers``         the same job done by Celery and by Dramatiq;
* ``bench.retries``       30 % transient gateway failures: goodput and retry-delay accuracy;
* ``bench.memory``        worker peak RSS while draining a 50,000-message backlog;
* ``bench.admin``         DLQ admin list latency at 100,000 entries and bulk replay rate;
* ``bench.console``       the operator console's server time per page at 100,000 entries;
* ``bench.sync_rpc``      synchronous charges through the gRPC front door;
* ``bench.rate_limit``    ``PAYPROC_GATEWAY_RATE_LIMIT`` held by 1, 2, 4 workers and under churn.

What they share: ``bench.common`` (child processes, the fake gateway, broker helpers),
``bench.database`` (a fresh database per run), ``bench.accounting`` (peak RSS, CPU split by
owner, the machine), ``bench.figures`` (``Run``: one measured drain; ``Figure``: the median of
several). ``bench.run`` runs the scenarios into a ``bench.results.Results``; ``bench.report``
renders it: the results table (``bench.rows``) and the targets (``bench.targets``, a table of
data judged by one function, with the causes of a gap in ``bench.causes``). The report reads
the results and never imports a scenario.

Adding a benchmark (say, the admin list p95 while a replay job runs) takes four small steps:

1. a module that measures it and returns a ``Run`` (or a small frozen dataclass of figures,
   added to ``bench.results`` with a field on ``Results``);
2. an ``async def scenario_<name>(results)`` in ``bench.run`` that stores it
   (``results.add(Figure(...))`` for a rate), listed in ``RUNNERS`` (that also makes
   ``--only <name>`` work), and its sizes as fields of ``Plan`` (``FULL`` and ``QUICK``);
3. a ``<name>_rows(results)`` function in ``bench.rows``, listed in its ``SECTIONS``;
4. a ``Target(...)`` in ``bench.targets`` (in an existing section or a new one listed in its
   ``SECTIONS``): the quantity it reads, the bound, the text; ``tests/unit/
   test_bench_targets.py`` shows how to check it on fabricated results.

Nothing here is imported by payproc itself; the peers (Celery, Dramatiq) are the ``bench``
extra, never runtime dependencies.
"""

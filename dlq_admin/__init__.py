"""The DLQ admin: ingest parked messages from ``N.dlq`` into the database, browse, group,
replay and discard them.

One module per capability, plain code over the typed ports of ``ports`` (no web, database or
AMQP imports): ``ingest``, ``browse``, ``replay`` (one entry, and the publish-and-settle of
claimed entries every replay goes through), ``discard``; ``audit`` is cross-cutting (the
``@audited`` decorator) and ``access`` audits refused calls; ``validation``, ``selection``
and ``replay_rules`` hold the rules they share. The store returns the typed rows of ``rows``;
``errors`` is the error tree (root ``DlqAdminError``). ``jobs`` is replay jobs, how a
selection of entries is replayed (a frozen selection published paced, fair, behind a
canary, by the admin that holds the job's lease; ``POST /dlq/replay`` creates one, or with
``dry_run`` previews it), and the retention purge. ``service.DlqAdmin`` wires the
capabilities together. ``store`` (SQLAlchemy) and ``amqp``
(aio-pika) are the adapters; ``web`` is the thin FastAPI layer; ``runtime`` is the composition
root of ``payproc admin``; ``cli`` adds ``payproc admin`` and ``payproc dlq``.
"""

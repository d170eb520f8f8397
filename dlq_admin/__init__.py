"""The DLQ admin: ingest parked messages from ``N.dlq`` into the database, browse, group,
replay and discard them.

``service`` holds the use cases as plain code over the ports of ``ports`` (no web imports);
``store`` and ``amqp`` are the adapters; ``web`` is the thin FastAPI layer; ``runtime`` is the
composition root of ``payproc admin``; ``cli`` adds ``payproc admin`` and ``payproc dlq``.
"""

"""The peers: the same payment job written the way a team would write it for Celery and for
Dramatiq (``bench.peers.job``), each with its own worker command and producer."""

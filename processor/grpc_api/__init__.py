"""The synchronous front door: a gRPC ``Payments`` service over the RPC client.

``Charge`` publishes the payment to RabbitMQ with ``reply_to`` through
``processor.rpc_client`` and waits for the worker's answer until the caller's deadline, so a
synchronous payment keeps every guarantee of the asynchronous path (retries, DLQ,
idempotency on ``payment_id``).

Layout:

* ``protos/payproc/v1/payments.proto`` - the contract; the only hand-written protobuf file;
* ``codegen`` - generates the protobuf/gRPC modules into the git-ignored ``_generated/`` at
  first use (``ensure_generated``) and loads them (``load``);
* ``convert`` - proto messages <-> ``schemas`` models;
* ``service`` - the servicer and the server's life cycle;
* ``cli`` - ``payproc grpc``.

Nothing here imports ``grpc`` at package import time: ``payproc --help`` works without the
optional ``grpc`` extra installed.
"""

"""Every error the ``processor`` package raises on purpose, under one root.

The worker's consumer tells the two infrastructure errors apart from bugs: a message whose
store or broker let it down goes back to the queue (it waits, it is never acked without its
outcome), while any other exception counts towards parking it as poison::

    ProcessorError
     +-- ConfigError          a setting is invalid; one line naming PAYPROC_<SETTING>
     |                        (the ``payproc`` command prints it and exits with status 2)
     +-- SchemaBehind         (processor/migrate.py) the PostgreSQL schema is older than the
     |                        code; the line says what to run (exit status 2 as well)
     +-- StoreUnavailable     the database could not be reached or was locked
     +-- PublishFailed        the broker did not confirm one of the worker's publishes
     +-- Unreachable          (processor/startup.py) the broker or the database did not answer
     |                        in time; ``str()`` is the one line ``payproc`` prints (exit 1)
     +-- RpcError             (processor/rpc_client.py) the synchronous client's errors:
     |    +-- InvalidRequest, NotAccepted, ChargeTimeout, ClientClosed
     +-- CodegenError         (processor/grpc_api/codegen.py) grpcio-tools missing or failed

Errors of the layer below stay what they are: ``retry.errors`` (``PolicyError``,
``PublishNotConfirmed``, ...); the worker's publisher turns ``PublishNotConfirmed`` into
``PublishFailed``, the port's own error.

This module imports nothing: use cases and ports raise from here too.
"""

from __future__ import annotations


class ProcessorError(Exception):
    """Root of the errors raised by the ``processor`` package."""


class ConfigError(ProcessorError):
    """A setting is invalid; ``str()`` is one line that names the offending setting."""


class StoreUnavailable(ProcessorError):
    """The database could not be reached or was locked; the message must wait, not be acked."""


class PublishFailed(ProcessorError):
    """The broker did not confirm a publish (nacked, returned or connection lost)."""


__all__ = ["ConfigError", "ProcessorError", "PublishFailed", "StoreUnavailable"]

"""Every error the ``retry`` package raises, under one root.

``retry`` holds the retry policy and the RabbitMQ plumbing the worker and the admin share
(names, topology, confirmed publishing). A caller that wants "anything ``retry`` refused"
catches ``RetryLayerError``; the root is not called ``RetryError`` so that it cannot be
mistaken for tenacity's exception of that name::

    RetryLayerError
     +-- PolicyError           the retry settings are inconsistent (also a ``ValueError``)
     +-- TopologyConflict      a queue or exchange exists with other arguments
     |                         (also a ``RuntimeError``)
     +-- PublishNotConfirmed   the broker did not confirm a publish: nacked, returned as
                               unroutable, timed out, or the channel or connection was lost

This module imports nothing: the pure policy raises from here too.
"""

from __future__ import annotations


class RetryLayerError(Exception):
    """Root of the errors raised by the ``retry`` package."""


class PolicyError(RetryLayerError, ValueError):
    """The retry settings are inconsistent; the message says which rule they break."""


class TopologyConflict(RetryLayerError, RuntimeError):
    """A queue or exchange already exists with different arguments."""


class PublishNotConfirmed(RetryLayerError):
    """The broker did not confirm a publish; the message names the cause (a return, a nack,
    a timeout, a lost channel). Whatever the publish stood for has not happened."""


__all__ = ["PolicyError", "PublishNotConfirmed", "RetryLayerError", "TopologyConflict"]

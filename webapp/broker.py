"""Celery's Redis transport, made to survive a Redis restart or a full Redis.

Why a subclass of kombu's own transport (kombu 5.7, registered under its
``redis`` name by ``use_resilient_redis_transport``):

- Redis restarts while a worker holds tasks it has not acknowledged (the
  drains are acknowledged late). Celery's consumer drops the connection's
  client, then closes its channel; closing puts the unacknowledged tasks back,
  which needs the client just dropped, and kombu raises AttributeError. That
  is not an error Celery's reconnect logic expects: the consumer stops for
  good ("Unrecoverable error") and nothing is drained until someone restarts
  the worker. Here that case is a connection error, which Celery handles by
  reconnecting; the unacknowledged tasks return to their queue after the
  visibility timeout, as kombu arranges, harmless for idempotent drains.
- A worker that starts while Redis is at its ``maxmemory`` (noeviction)
  meets OutOfMemoryError declaring its queues, a response error, and exits.
  Counted as a connection error, it is retried like an unreachable broker
  (``broker_connection_retry_on_startup``) until Redis has room.
"""

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError("the broker connection was already closed")
        return super()._connparams(asynchronous=asynchronous)


class Transport(kombu_redis.Transport):
    Channel = Channel
    connection_errors = kombu_redis.Transport.connection_errors + (redis.exceptions.OutOfMemoryError,)


def use_resilient_redis_transport():
    """Make ``redis://`` (and ``redis+socket://``) brokers use ``Transport``, in this process."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"

"""Look at the broker's queues the same way with Redis and RabbitMQ.

Messages are read with kombu and put back (requeued), so a test can see what
was enqueued without consuming it; the worker started afterwards still gets it.
"""

import contextlib
from dataclasses import dataclass

from amqp.exceptions import ChannelError
from kombu import Queue

from webapp.celery_app import celery_of
from webapp.ops import queue_depths


@dataclass
class QueuedTask:
    task: str
    args: list
    kwargs: dict


def queue_depth(queue, celery_app=None):
    return queue_depths(celery_app or celery_of())[queue]


def broker_name(celery_app, queue):
    """The install's name on the broker of the queue routes and ``-Q`` call ``queue``."""
    return celery_app.amqp.queues[queue].name


def queued_tasks(queue, celery_app=None):
    """The tasks waiting in ``queue`` (of the current app's broker by default), left there."""
    messages = []
    celery_app = celery_app or celery_of()
    with celery_app.connection_for_read() as conn:
        bound = Queue(broker_name(celery_app, queue), channel=conn.channel())
        while (message := bound.get(no_ack=False)) is not None:
            messages.append(message)
        tasks = [QueuedTask(m.headers["task"], *m.decode()[:2]) for m in messages]
        for message in messages:
            message.requeue()
    return tasks


def purge_queues(celery_app, names):
    """Empty the named queues (RabbitMQ keeps them between tests; Redis is flushed anyway)."""
    with celery_app.connection_for_write() as conn:
        for name in names:
            # A queue nobody declared yet is empty; RabbitMQ answers 404 for it.
            with conn.channel() as channel, contextlib.suppress(ChannelError):
                channel.queue_purge(broker_name(celery_app, name))

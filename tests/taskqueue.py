"""Read what was enqueued, whichever broker the settings chose (ORM or Redis)."""

from __future__ import annotations

from typing import Any

from django_q.brokers import get_broker
from django_q.signing import SignedPackage


class TaskQueue:
    def __init__(self) -> None:
        self.broker = get_broker()

    def purge(self) -> None:
        self.broker.purge_queue()

    def size(self) -> int:
        return self.broker.queue_size() or 0

    def drain(self) -> list[dict[str, Any]]:
        """Take every queued task off the queue (acknowledged), oldest first."""
        tasks: list[dict[str, Any]] = []
        while self.size():
            for ack_id, payload in self.broker.dequeue() or []:
                tasks.append(SignedPackage.loads(payload))
                self.broker.acknowledge(ack_id)
        return tasks

    def funcs(self) -> list[str]:
        return [task["func"] for task in self.drain()]

"""Read what was enqueued, whichever broker the settings chose (ORM or Redis)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django_q.brokers import get_broker
from django_q.models import Task
from django_q.signing import SignedPackage

from queries_app.engine import sweep_queries
from queries_app.models import Query


class TaskQueue:
    """The task cluster's queue and the delivery cluster's (webhooks, e-mails) together."""

    def __init__(self) -> None:
        self.broker = get_broker()
        self.brokers = [self.broker, get_broker(settings.DELIVERY_CLUSTER)]

    def purge(self) -> None:
        for broker in self.brokers:
            broker.purge_queue()

    def size(self) -> int:
        return sum(broker.queue_size() or 0 for broker in self.brokers)

    def drain(self) -> list[dict[str, Any]]:
        """Take every queued task off the queues (acknowledged), each queue's oldest first."""
        tasks: list[dict[str, Any]] = []
        while self.size():
            for broker in self.brokers:
                for ack_id, payload in broker.dequeue() or []:
                    tasks.append(SignedPackage.loads(payload))
                    broker.acknowledge(ack_id)
        return tasks

    def funcs_in(self, cluster: str) -> list[str]:
        """The functions of the tasks queued for one cluster (taken off its queue)."""
        broker = get_broker(cluster)
        funcs = []
        while broker.queue_size():
            for ack_id, payload in broker.dequeue() or []:
                funcs.append(SignedPackage.loads(payload)["func"])
                broker.acknowledge(ack_id)
        return funcs

    def funcs(self) -> list[str]:
        return [task["func"] for task in self.drain()]


def run_queued_tasks(queue: TaskQueue, *, until: Any, max_rounds: int = 500) -> int:
    """Execute queued tasks in this process, oldest first, until `until()` holds.
    Returns how many tasks ran. Fails if the queue runs dry before that."""
    from django.utils.module_loading import import_string

    ran = 0
    for _ in range(max_rounds):
        if until():
            return ran
        tasks = queue.drain()
        if not tasks:
            raise AssertionError("the task queue ran dry before the condition held")
        for task in tasks:
            import_string(task["func"])(*task["args"], **task["kwargs"])
            ran += 1
    raise AssertionError("too many rounds of tasks")


def claims_reported(query_id: int) -> int:
    """How many steps of this query the finished `run_query_step` tasks said they ran (each
    step is a claim on it): a lower bound of its claims, since a task killed or broken
    mid-step reports nothing. Read once the clusters have stopped."""
    return sum(
        steps_reported(task.result).get(query_id, 0)
        for task in Task.objects.filter(func="queries_app.tasks.run_query_step", success=True)
    )


def steps_reported(result: Any) -> dict[int, int]:
    """Steps by query in a task's result ("3 steps: #12 x2, #15 x1")."""
    _, _, listed = str(result or "").partition(": ")
    found = {}
    for item in filter(None, listed.split(", ")):
        pk, _, count = item.partition(" x")
        found[int(pk.lstrip("#"))] = int(count)
    return found


def run_through_retries(query: Query, queue: TaskQueue) -> Query:
    """Run the query's tasks, and its retries as the sweep sets them going, until it ends."""
    for _ in range(10):
        run_queued_tasks(
            queue,
            until=lambda: (
                queue.size() == 0
                and (
                    not Query.objects.get(pk=query.pk).is_live
                    or Query.objects.get(pk=query.pk).retry_at is not None
                )
            ),
        )
        query.refresh_from_db()
        if not query.is_live:
            return query
        sweep_queries(now=query.retry_at + timedelta(seconds=1))
    raise AssertionError("the query did not end")

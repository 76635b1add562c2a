"""`manage.py qcluster`, plus one line per task run and per query step appended to
`$BENCH_TASK_LOG`.

django-q2 records when a task was enqueued and when it stopped, not when a worker started
it, and a task runs several query steps (of several accounts) back to back; the benchmark
needs to know when a worker was busy and with which query's step. Two receivers of
django-q2's own worker signals, and a wrapper of the engine's `_run_claimed` (one step),
write

    name <TAB> start <TAB> stop <TAB> result <TAB> waits <TAB> sql

with `task:<task name>` for a task and `query-<id>` for a step
(wall clock, as the simulator's call history), where `waits` lists the step's deliberate
pauses — the portal waits for a lease, a browser slot or a back-off with `time.sleep` — as
`function:start:end` items (pauses of one function less than `MERGE_GAP` apart are one item),
so that waiting for a free browser can be told from the portal's own work; and `sql` is
`statements:seconds` spent in the database (an execute wrapper on each new connection).

Workers are forked from this process, so they inherit the receivers and the sleep wrapper.
Each line is a single O_APPEND write, so lines from concurrent workers never interleave.
The cost is a few microseconds per task and per pause; everything else is the unmodified
cluster.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emodal_portal.settings")

# Seconds: the database polling between two pauses of one wait belongs to the wait.
MERGE_GAP = 0.5

_real_sleep = time.sleep
_log_fd: dict[int, int] = {}
_task_started: dict[str, float] = {}
_waits: list[list[Any]] = []  # [function, start, end] of the task running in this process
_in_task = False
_sql = [0, 0.0]  # statements, seconds of the task running in this process


def _timed_sql(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    if not _in_task:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        _sql[0] += 1
        _sql[1] += time.perf_counter() - started


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    if _timed_sql not in connection.execute_wrappers:
        connection.execute_wrappers.append(_timed_sql)


def _sleep(seconds: float) -> None:
    if not _in_task:
        _real_sleep(seconds)
        return
    function = sys._getframe(1).f_code.co_name
    start = time.time()
    _real_sleep(seconds)
    end = time.time()
    last = _waits[-1] if _waits else None
    if last is not None and last[0] == function and start - last[2] <= MERGE_GAP:
        last[2] = end
    else:
        _waits.append([function, start, end])


def _fd() -> int:
    pid = os.getpid()
    if pid not in _log_fd:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        _log_fd[pid] = os.open(os.environ["BENCH_TASK_LOG"], flags)
    return _log_fd[pid]


def _clean(value: Any) -> str:
    return " ".join(str(value).split())[:80]


def _line(name: str, start: float, stop: float, result: Any, waits: list, sql: list) -> None:
    waits_text = ";".join(f"{function}:{begin:.6f}:{end:.6f}" for function, begin, end in waits)
    fields = [_clean(name), f"{start:.6f}", f"{stop:.6f}"]
    fields += [_clean(result), waits_text, f"{sql[0]}:{sql[1]:.6f}"]
    os.write(_fd(), ("\t".join(fields) + "\n").encode())


_begun: dict[int, tuple[float, int, list[Any]]] = {}


def _step_started(sender: Any, query_id: int, **kwargs: Any) -> None:
    _begun[query_id] = (time.time(), len(_waits), list(_sql))


def _step_finished(sender: Any, query_id: int, outcome: str, **kwargs: Any) -> None:
    start, first_wait, sql_before = _begun.pop(query_id, (time.time(), len(_waits), list(_sql)))
    sql = [_sql[0] - sql_before[0], _sql[1] - sql_before[1]]
    _line(f"query-{query_id}", start, time.time(), outcome, _waits[first_wait:], sql)


def _log_steps() -> None:
    """One line per step, from the engine's public signals."""
    from queries_app.signals import step_finished, step_started

    step_started.connect(_step_started, dispatch_uid="bench-step-start")
    step_finished.connect(_step_finished, dispatch_uid="bench-step-stop")


def before(sender: Any, func: Any, task: dict[str, Any], **kwargs: Any) -> None:
    global _in_task
    _waits.clear()
    _sql[:] = [0, 0.0]
    _in_task = True
    _task_started[str(task.get("id"))] = time.time()


def after(sender: Any, func: Any, task: dict[str, Any], **kwargs: Any) -> None:
    global _in_task
    stop = time.time()
    _in_task = False
    start = _task_started.pop(str(task.get("id")), stop)
    _line(f"task:{task.get('name')}", start, stop, task.get("result"), _waits, _sql)


def main() -> None:
    import django

    time.sleep = _sleep  # the portal's modules call `time.sleep`, looked up at each call
    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.db.backends.signals import connection_created
    from django_q.signals import post_execute_in_worker, pre_execute

    _log_steps()
    pre_execute.connect(before, dispatch_uid="bench-task-start")
    post_execute_in_worker.connect(after, dispatch_uid="bench-task-stop")
    connection_created.connect(_on_connection, dispatch_uid="bench-sql-timer")
    for connection in connections.all(initialized_only=True):
        _on_connection(None, connection)
    call_command("qcluster")


if __name__ == "__main__":
    main()

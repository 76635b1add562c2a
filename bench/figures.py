"""Figures from one measured run, computed from three records that share the wall clock:

- the simulator's call history (`/_sim/calls`): when the upstream was working, for whom;
- the task runs the instrumented cluster logged (`bench/qcluster.py`): when a worker was
  running which query's step, and how the step ended;
- the queries' own timestamps (enqueued, finished).

Nothing here touches Django or the network: it is plain arithmetic on those records.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# Calls that answered (even with a real error) did the work they were asked for; the
# others were wasted by the portal's scheduling (eviction, collision, a session it thought
# alive) or injected.
ANSWERED = ("ok", "error")
LOGIN = "/get_session"
# Requests made within a step that are not one of its upstream operations; they name no
# account, or (a close) the account whose browser the step takes, not the step's own:
# `attribute` gives them to an account by time.
ANONYMOUS = ("/files/{name}", "/sessions", "/health", "/sessions/{id}")
# Bookkeeping with the upstream, not work a query needs (logins are counted apart).
NOT_NEEDED = (LOGIN, "/sessions", "/health", "/sessions/{id}")

# How the time between two upstream calls of an account is spent.
IN_TASK = "in_task"  # a worker runs one of the account's steps, but no call is in flight
HANDOFF = "handoff"  # no step runs, a worker is free: the next step is on its way to one
QUEUE = "queue"  # no step runs and every worker is busy with other accounts
RETRY = "retry"  # a step failed for a passing reason, or was put off, and waits to run again
BROWSER = "browser"  # every step of the account running waits for a free browser
KINDS = (IN_TASK, BROWSER, HANDOFF, QUEUE, RETRY)

# What `run_query_step` returns for a step that will run again later: it failed for a
# passing reason, or it was not tried (breaker open, captcha budget spent).
DEFERRED = ("retry", "waiting")

# Portal functions whose pauses wait for a free browser (the session limit), not for the
# portal's own bookkeeping. A pause elsewhere (the account's lease, a back-off) stays
# in-task time.
BROWSER_WAITS = ("take_or_wait",)


@dataclass(frozen=True)
class Call:
    id: int
    endpoint: str
    start: float
    end: float
    username: str | None
    outcome: str
    upstream: int = 0  # which simulator (several upstreams)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @classmethod
    def from_history(cls, item: dict[str, Any]) -> Call | None:
        """A finished call from `/_sim/calls` (None while it is still running)."""
        if item.get("end") is None:
            return None
        return cls(
            id=int(item["id"]),
            endpoint=str(item["endpoint"]),
            start=float(item["start"]),
            end=float(item["end"]),
            username=item.get("username"),
            outcome=str(item.get("outcome") or ""),
            upstream=int(item.get("upstream") or 0),
        )


@dataclass(frozen=True)
class TaskRun:
    """One task run by a cluster worker (named `task:<name>`), or one query step within it
    (`query-<id>`): the wall clock around it, the start of what it returned, and its pauses
    (function that slept, start, end)."""

    name: str
    start: float
    stop: float
    result: str
    waits: tuple[tuple[str, float, float], ...] = ()
    sql_statements: int = 0
    sql_seconds: float = 0.0

    @property
    def query_id(self) -> int | None:
        prefix, _, number = self.name.partition("-")
        return int(number) if prefix == "query" and number.isdigit() else None

    @classmethod
    def parse(cls, line: str) -> TaskRun | None:
        parts = line.rstrip("\n").split("\t")
        if len(parts) != 6:
            return None
        try:
            waits = []
            for item in filter(None, parts[4].split(";")):
                function, begin, end = item.rsplit(":", 2)
                waits.append((function, float(begin), float(end)))
            statements, seconds = parts[5].split(":")
            return cls(
                parts[0],
                float(parts[1]),
                float(parts[2]),
                parts[3],
                tuple(waits),
                int(statements),
                float(seconds),
            )
        except ValueError:
            return None


class Level:
    """How many of some intervals are open at each moment (a step function of time)."""

    def __init__(self, intervals: Iterable[tuple[float, float]]) -> None:
        events: list[tuple[float, int]] = []
        for start, end in intervals:
            if end > start:
                events += [(start, 1), (end, -1)]
        events.sort()
        self.times: list[float] = []
        self.levels: list[int] = []
        level = 0
        for time, change in events:
            level += change
            if self.times and self.times[-1] == time:
                self.levels[-1] = level
            else:
                self.times.append(time)
                self.levels.append(level)

    def at(self, moment: float) -> int:
        index = bisect_right(self.times, moment) - 1
        return self.levels[index] if index >= 0 else 0

    def changes_within(self, start: float, end: float) -> list[float]:
        return self.times[bisect_right(self.times, start) : bisect_left(self.times, end)]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Account:
    """What the figures need about one account in the measured run."""

    username: str
    query_ids: set[int]
    enqueued: float  # its first query of the run
    finished: float  # its last query of the run
    needed_login: bool  # no live upstream session when the run started


@dataclass
class Timing:
    """Where the accounts' time went, and the per-call overhead samples."""

    calls: int = 0
    samples: list[float] = field(default_factory=list)  # overhead before each call, s
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS, 0.0))
    upstream: dict[str, list[float]] = field(default_factory=dict)  # needed calls' seconds
    by_account: dict[str, dict[str, float]] = field(default_factory=dict)  # totals, each
    sql_statements: int = 0  # in the accounts' steps
    sql_seconds: float = 0.0

    def per_call(self, kind: str) -> float:
        return self.totals[kind] / self.calls if self.calls else 0.0


def attribute(calls: list[Call], accounts: dict[str, Account], tasks: list[TaskRun]) -> list[Call]:
    """Give anonymous requests (file downloads, session listings and closes) the username of
    the account whose step made them, by time: the account with a step running then, no
    call in flight, and the most recent activity (a download follows its call at once)."""
    owner_of_query = {qid: name for name, a in accounts.items() for qid in a.query_ids}
    running: dict[str, Level] = {}
    in_flight: dict[str, Level] = {}
    last_events: dict[str, list[float]] = {}
    for name in accounts:
        own_tasks = [t for t in tasks if owner_of_query.get(t.query_id or -1) == name]
        own_calls = [c for c in calls if c.username == name and c.endpoint not in ANONYMOUS]
        running[name] = Level((t.start, t.stop) for t in own_tasks)
        in_flight[name] = Level((c.start, c.end) for c in own_calls)
        last_events[name] = sorted([t.start for t in own_tasks] + [c.end for c in own_calls])
    result = []
    for call in calls:
        if call.endpoint in ANONYMOUS:
            best: tuple[float, str] | None = None
            for name in accounts:
                if running[name].at(call.start) <= 0 or in_flight[name].at(call.start) > 0:
                    continue
                events = last_events[name]
                index = bisect_right(events, call.start) - 1
                latest = events[index] if index >= 0 else -math.inf
                if best is None or latest > best[0]:
                    best = (latest, name)
            call = replace(call, username=best[1] if best else None)
        result.append(call)
    return result


def needed_calls(calls: list[Call], account: Account) -> list[float]:
    """Durations of the calls the account's run could not do without: every answered call
    except logins, plus its first login if it had no live session at the start."""
    own = sorted((c for c in calls if c.username == account.username), key=lambda c: c.start)
    needed = [c.seconds for c in own if c.outcome in ANSWERED and c.endpoint not in NOT_NEEDED]
    if account.needed_login:
        first = next((c for c in own if c.endpoint == LOGIN and c.outcome == "ok"), None)
        if first is not None:
            needed.append(first.seconds)
    return needed


@dataclass
class _Levels:
    """The step functions that classify an account's time between its calls."""

    upstream: Level  # the account's calls (and its downloads) in flight
    running: Level  # the account's steps running on a worker
    browser: Level  # ... of which waiting for a free browser
    retrying: Level  # the account waits for a failed or put-off step to run again
    busy: Level  # steps of anyone running on the cluster
    workers: int
    # Accounts at work on the account's upstream (from their first call to their last
    # query's end): each holds a browser. Before its own first call, an account finding
    # them all taken waits for a browser, with no worker needed for that.
    holding: Level
    browsers: int
    first_call: float
    # Accounts on that upstream waiting for a browser that got one before this account did:
    # a browser freed goes to them first.
    ahead: Level

    def split(self, start: float, end: float, totals: dict[str, float]) -> float:
        """Add [start, end] to `totals` by kind; return its overhead (in-task + hand-off)."""
        if end <= start:
            return 0.0
        points = sorted(
            {
                start,
                end,
                *self.upstream.changes_within(start, end),
                *self.running.changes_within(start, end),
                *self.browser.changes_within(start, end),
                *self.retrying.changes_within(start, end),
                *self.busy.changes_within(start, end),
                *self.holding.changes_within(start, end),
                *self.ahead.changes_within(start, end),
            }
        )
        overhead = 0.0
        for left, right in zip(points, points[1:], strict=False):
            middle = (left + right) / 2
            if self.upstream.at(middle) > 0:
                continue
            running = self.running.at(middle)
            if running > 0:
                kind = BROWSER if self.browser.at(middle) >= running else IN_TASK
            elif self.retrying.at(middle) > 0:
                kind = RETRY
            elif middle < self.first_call and self.ahead.at(
                middle
            ) >= self.browsers - self.holding.at(middle):
                kind = BROWSER
            elif self.busy.at(middle) >= self.workers:
                kind = QUEUE
            else:
                kind = HANDOFF
            totals[kind] += right - left
            if kind in (IN_TASK, HANDOFF):
                overhead += right - left
        return overhead


def timing(
    calls: list[Call],
    accounts: dict[str, Account],
    tasks: list[TaskRun],
    workers: int,
    browsers: int,
) -> Timing:
    """Split each account's time, from its first enqueue to its last finish, into upstream
    calls and the kinds above; one overhead sample per call (the in-task and hand-off time
    since the account's previous call; the last call also takes the time after it)."""
    calls = attribute(calls, accounts, tasks)
    # Workers are busy for whole tasks (a task runs steps back to back); older logs have
    # only one line per task, which is one step.
    runs = [t for t in tasks if t.name.startswith("task:")] or tasks
    busy = Level((t.start, t.stop) for t in runs)
    owner_of_query = {qid: name for name, a in accounts.items() for qid in a.query_ids}
    first_call: dict[str, Call] = {}
    for call in sorted(calls, key=lambda c: c.start):
        if call.username in accounts and call.endpoint not in ANONYMOUS:
            first_call.setdefault(call.username, call)
    # An account holds a browser from its first step (which takes one, or waits for one on
    # its worker) or first call, whichever comes first.
    first_step: dict[str, float] = {}
    for task in tasks:
        name = owner_of_query.get(task.query_id or -1)
        if name is not None:
            first_step[name] = min(first_step.get(name, task.start), task.start)
    began = {name: min(c.start, first_step.get(name, c.start)) for name, c in first_call.items()}
    holding: dict[int, Level] = {}
    for upstream in {c.upstream for c in first_call.values()}:
        holding[upstream] = Level(
            (began[name], accounts[name].finished)
            for name, c in first_call.items()
            if c.upstream == upstream
        )
    out = Timing()
    for name, account in accounts.items():
        own_tasks = sorted(
            (t for t in tasks if owner_of_query.get(t.query_id or -1) == name),
            key=lambda t: t.start,
        )
        retry_spans = []
        for index, task in enumerate(own_tasks):
            if task.result.startswith(DEFERRED):
                later = [t.start for t in own_tasks[index + 1 :] if t.start >= task.stop]
                retry_spans.append((task.stop, min(later) if later else account.finished))
        own = [c for c in calls if c.username == name]
        counted = sorted((c for c in own if c.endpoint not in ANONYMOUS), key=lambda c: c.start)
        levels = _Levels(
            upstream=Level((c.start, c.end) for c in own),
            running=Level((t.start, t.stop) for t in own_tasks),
            browser=Level(
                (begin, end)
                for t in own_tasks
                for function, begin, end in t.waits
                if function in BROWSER_WAITS
            ),
            retrying=Level(retry_spans),
            busy=busy,
            workers=workers,
            holding=holding.get(first_call[name].upstream, Level(()))
            if name in first_call
            else Level(()),
            browsers=browsers,
            first_call=began.get(name, account.finished),
            ahead=Level(
                (accounts[other].enqueued, began[other])
                for other, c in first_call.items()
                if name in first_call
                and c.upstream == first_call[name].upstream
                and began[other] < began[name]
            ),
        )
        out.upstream[name] = needed_calls(own, account)
        out.sql_statements += sum(t.sql_statements for t in own_tasks)
        out.sql_seconds += sum(t.sql_seconds for t in own_tasks)
        out.calls += len(counted)

        previous_end = account.enqueued
        samples = []
        mine = out.by_account[name] = dict.fromkeys(KINDS, 0.0)
        for call in counted:
            samples.append(levels.split(previous_end, call.start, mine))
            previous_end = max(previous_end, call.end)
        tail = levels.split(previous_end, account.finished, mine)
        if samples:
            samples[-1] += tail
        out.samples += samples
        for kind, seconds in mine.items():
            out.totals[kind] += seconds
    return out


@dataclass
class Bound:
    """The makespan no scheduler could beat with this much upstream work."""

    chain: float  # the longest account's needed upstream time (its calls are sequential)
    total: float  # all accounts' needed upstream time
    parallel: int  # browsers usable at once: min(workers, session limit x upstreams)
    # No call is split: of the k x parallel + 1 longest calls, k + 1 run one after another on
    # one browser — at least the k + 1 shortest of them, for any k. Also a lower bound; the
    # target's formula leaves it out.
    packing: float = 0.0

    @property
    def seconds(self) -> float:
        """The target's bound: max(longest chain, total / parallel)."""
        return max(self.chain, self.total / self.parallel) if self.parallel else 0.0


def bound(calls_by_account: dict[str, list[float]], parallel: int) -> Bound:
    chains = [sum(calls) for calls in calls_by_account.values()]
    longest = sorted((s for calls in calls_by_account.values() for s in calls), reverse=True)
    packing = 0.0
    k = 1
    while parallel > 0 and k * parallel < len(longest):
        packing = max(packing, sum(longest[k * parallel - k : k * parallel + 1]))
        k += 1
    return Bound(max(chains, default=0.0), sum(chains), parallel, packing)


def counter_delta(before: dict[str, Any], after: dict[str, Any], name: str) -> int:
    return int(after.get(name, 0)) - int(before.get(name, 0))

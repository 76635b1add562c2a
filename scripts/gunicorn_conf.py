"""gunicorn settings used by `make serve` (scripts/serve.py); the rest is on its command line.

With PROMETHEUS_MULTIPROC_DIR set, each worker keeps its django-prometheus figures in files
there and any worker answers /metrics for all; a worker that exits hands its gauges back.
"""

from typing import Any

# Requests are short (pages, exports up to a few MB); a stuck worker is restarted.
timeout = 60


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)

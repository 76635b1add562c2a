"""gunicorn settings used by `make serve` (scripts/serve.py); the rest is on its command line.

With PROMETHEUS_MULTIPROC_DIR set, each worker keeps its django-prometheus figures in files
there and any worker answers /metrics for all; a worker that exits hands its gauges back.
"""

from typing import Any

# Imported here, in the master before it forks, not in `child_exit`: an import inside that
# hook is re-entered when several workers exit at once (a stop), and fails half-way with a
# traceback. serve.py sets PROMETHEUS_MULTIPROC_DIR before gunicorn reads this file.
from prometheus_client import multiprocess

# Requests are short (pages, exports up to a few MB); a stuck worker is restarted.
timeout = 60


def child_exit(server: Any, worker: Any) -> None:
    multiprocess.mark_process_dead(worker.pid)

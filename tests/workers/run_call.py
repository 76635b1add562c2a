"""A separate worker process: wait at a file barrier, then run one upstream call for an
account through the SessionManager. Usage: run_call.py ACCOUNT_ID BARRIER_DIR"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import django  # noqa: E402

django.setup()

from sessions_app.models import Account  # noqa: E402
from sessions_app.services import SessionManager  # noqa: E402

account = Account.objects.get(pk=int(sys.argv[1]))
barrier = Path(sys.argv[2])
(barrier / f"ready-{os.getpid()}").touch()
deadline = time.monotonic() + 60
while not (barrier / "go").exists():
    if time.monotonic() > deadline:
        sys.exit("barrier never opened")
    time.sleep(0.005)
result = SessionManager().run(account, lambda api, sid: api.get_appointments(sid))
print("selected", result["selected_count"])

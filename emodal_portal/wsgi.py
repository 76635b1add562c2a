"""The WSGI application (gunicorn emodal_portal.wsgi).

A configuration mistake found by the settings (a missing or malformed key, say) is printed
as one line, and the process exits with status 3: gunicorn reads that from a worker as
"failed to boot" and stops, instead of starting workers that fail the same way for ever.
"""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emodal_portal.settings")

try:
    application = get_wsgi_application()
except ImproperlyConfigured as exc:
    sys.stderr.write(f"Error: {exc}\n")
    sys.stderr.flush()
    raise SystemExit(3) from None

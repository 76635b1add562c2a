"""The query kinds, one module each, registered with `queries_app.registry` when imported (the
app imports this package when it is ready). Shared pieces: `params` (the parameter fields),
`checking` (appointment checks)."""

from . import (  # noqa: F401  (each registers its kind)
    appointment_check,
    appointments,
    availability,
    bulk_info,
    containers,
    lookups,
)

"""The query kinds, one module each, registered with `queries_app.registry` when imported. Every
module of this package is imported when the app is ready, so adding a kind is adding a module.
Shared pieces: `params` (the parameter fields), `checking` (appointment checks)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

"""The operators' rule for where a container is picked up or dropped: the availability run
plans its checks with it and the board shows it, so both read this one function."""

from __future__ import annotations


def operators_terminal(
    *,
    trade_type: str,
    passed_pregate: bool | None,
    origin: str,
    destination: str,
    current_location: str,
) -> str:
    """An export, or an import through pregate (its empty goes back), at its Origin; another
    import (picked up full) at its Destination; each at its Current Loc when that cell is empty.
    An unknown pregate status counts as "not through pregate"."""
    through_origin = trade_type == "EXPORT" or bool(passed_pregate)
    return (origin if through_origin else destination) or current_location

"""The operators' terminal rule, as the availability run plans checks with it and the board
shows it."""

from __future__ import annotations

import pytest

from containers_app.board import terminal_code
from containers_app.models import Container
from queries_app.kinds.availability import plan_check
from queries_app.models import ContainerInfo
from queries_app.terminal_rule import operators_terminal

SHEET = {"origin": "ORIG", "destination": "DEST", "current_location": "HERE"}


@pytest.mark.parametrize(
    ("trade_type", "passed_pregate", "cells", "expected"),
    [
        ("IMPORT", False, SHEET, "DEST"),
        ("IMPORT", None, SHEET, "DEST"),
        ("IMPORT", True, SHEET, "ORIG"),
        ("EXPORT", None, SHEET, "ORIG"),
        ("IMPORT", False, {**SHEET, "destination": ""}, "HERE"),
        ("EXPORT", False, {**SHEET, "origin": ""}, "HERE"),
    ],
)
def test_the_board_and_the_availability_run_read_one_rule(
    trade_type: str, passed_pregate: bool | None, cells: dict[str, str], expected: str
) -> None:
    assert operators_terminal(trade_type=trade_type, passed_pregate=passed_pregate, **cells) == (
        expected
    )
    container = Container(trade_type=trade_type, passed_pregate=passed_pregate, **cells)
    assert terminal_code(container) == expected
    info = ContainerInfo(passed_pregate=passed_pregate, booking_number="")
    candidate = {"container": "MSCU1234567", "trade_type": trade_type, **cells}
    assert plan_check(candidate, info)["terminal_code"] == expected

"""Bulk info: pregate status and milestones of import containers, booking numbers of export
containers, in one upstream call; a container the upstream cannot read is recorded with why."""

from __future__ import annotations

from typing import Any

from .. import parsing
from ..engine.steps import DONE, Outcome, StepContext
from ..models import ContainerInfo, Query
from ..registry import Feed, QueryKind, Step, register
from ..results import write_infos
from .params import MAX_BULK_CONTAINERS, ContainerListField, KindParams

# The contract's timings: 5-10 s per container, one after another.
SECONDS_PER_CONTAINER = 7


class BulkInfoParams(KindParams):
    import_containers = ContainerListField(label="Import containers")
    export_containers = ContainerListField(label="Export containers")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        imports = cleaned.get("import_containers")
        exports = cleaned.get("export_containers")
        if imports is None or exports is None:
            return cleaned  # a list was refused already
        if not imports and not exports:
            self.add_error("import_containers", "Give at least one import or export container.")
        elif len(imports) + len(exports) > MAX_BULK_CONTAINERS:
            self.add_error(
                "import_containers", f"At most {MAX_BULK_CONTAINERS} containers at once."
            )
        both = set(imports) & set(exports)
        if both:
            named = ", ".join(sorted(both)[:5])
            self.add_error(
                "export_containers",
                f"A container is either an import or an export, not both: {named}.",
            )
        return cleaned

    def params(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.fields}


# The contract's types of a `get_info_bulk` entry (the fields the portal reads).
ENTRY_TYPES = {
    "success": (bool,),
    "error": parsing.TEXT_OR_NULL,
    "pregate_status": parsing.FLAG_OR_NULL,
    "pregate_details": parsing.TEXT_OR_NULL,
    "booking_number": parsing.TEXT_OR_NULL,
}


def infos_from_bulk(query: Query, body: dict[str, Any]) -> tuple[list[ContainerInfo], str]:
    """The per-container results of a `get_info_bulk` answer, one row per container (the first
    counts, should the upstream repeat one); failures keep their reason. An entry naming no
    container number is left out, and one whose fields have the wrong types is stored as a
    failure saying so: both are told in the note (the second part)."""
    results = body.get("results")
    results = results if type(results) is dict else {}
    seen: set[str] = set()
    refused: list[Any] = []
    unread: list[str] = []
    infos = []
    for trade_type, key in (("IMPORT", "import_results"), ("EXPORT", "export_results")):
        entries = results.get(key)
        for item in entries if type(entries) is list else []:
            if type(item) is not dict:
                refused.append(item)
                continue
            number = parsing.upstream_container_number(item.get("container_id"))
            if number is None:
                refused.append(item.get("container_id"))
                continue
            if number in seen:
                continue
            seen.add(number)
            infos.append(entry_info(query, number, trade_type, item, unread))
    notes = [parsing.refused_numbers_note("E-Modal's bulk answer", refused, noun="entry")]
    if unread:
        notes.append(
            f"E-Modal's bulk answer for {', '.join(unread[:5])}"
            f"{f' and {len(unread) - 5} more' if len(unread) > 5 else ''} could not be read "
            "(fields of the wrong type): recorded as failed."
        )
    return infos, " ".join(filter(None, notes))


def entry_info(
    query: Query, number: str, trade_type: str, item: dict[str, Any], unread: list[str]
) -> ContainerInfo:
    """One entry's row; an entry whose fields have the wrong types is a failure saying so."""
    timeline = item.get("timeline")
    problems = parsing.wrong_types(item, ENTRY_TYPES)
    if trade_type == "IMPORT":
        problems += parsing.timeline_problems(timeline)
    row = ContainerInfo(query=query, container_number=number, trade_type=trade_type)
    if problems:
        unread.append(number)
        row.success, row.error = False, parsing.unreadable(problems)
        return row
    row.success = item.get("success") is True
    row.error = (item.get("error") or "")[:255]
    if trade_type == "IMPORT":
        row.passed_pregate = item.get("pregate_status")
        row.pregate_details = (item.get("pregate_details") or "")[:255]
        row.milestones = timeline or []
        row.unknown_milestones = parsing.unknown_milestones(row.milestones)
        for name, value in parsing.milestone_dates(row.milestones).items():
            setattr(row, name, value)
    else:
        row.booking_number = parsing.cell(item.get("booking_number"))[:40]
    return row


def read_bulk_info(
    ctx: StepContext, imports: list[str], exports: list[str]
) -> tuple[list[ContainerInfo], Any, str]:
    body = ctx.call(
        lambda api, sid: api.get_info_bulk(
            sid, import_containers=imports, export_containers=exports
        )
    )
    infos, note = infos_from_bulk(ctx.query, body)
    return infos, write_infos(ctx.query, infos), note


def bulk_info(ctx: StepContext) -> Outcome:
    params = ctx.query.params
    _, write, note = read_bulk_info(
        ctx, params.get("import_containers", []), params.get("export_containers", [])
    )
    return Outcome(next_step=DONE, write=write, progress_done=1, progress_total=1, note=note)


def work_left(query: Query) -> int:
    params = query.params or {}
    count = len(params.get("import_containers", [])) + len(params.get("export_containers", []))
    return SECONDS_PER_CONTAINER * max(count, 1) if query.step == "bulk_info" else 0


BULK_INFO = register(
    QueryKind(
        code="bulk_info",
        label="Bulk info",
        params=BulkInfoParams,
        steps={"bulk_info": Step(bulk_info, "Reading container details")},
        first_step="bulk_info",
        work_left=work_left,
        help_text="Pregate and milestones of imports, booking numbers of exports.",
        order=60,
        feeds_board=frozenset({Feed.DETAILS}),
    )
)

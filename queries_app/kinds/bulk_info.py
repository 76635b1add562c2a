"""Bulk info: pregate status and milestones of import containers, booking numbers of export
containers, in one upstream call; a container the upstream cannot read is recorded with why."""

from __future__ import annotations

from typing import Any

from .. import parsing
from ..engine.steps import DONE, Outcome, StepContext
from ..models import ContainerInfo, Query
from ..registry import QueryKind, Step, register
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


def infos_from_bulk(query: Query, body: dict[str, Any]) -> list[ContainerInfo]:
    """The per-container results of a `get_info_bulk` answer, one row per container (the first
    counts, should the upstream repeat one); failures keep their reason."""
    results = body.get("results") or {}
    seen: set[str] = set()

    def first(item: Any) -> bool:
        if not isinstance(item, dict):
            return False
        number = parsing.normalise_container_number(str(item.get("container_id") or ""))
        if not number or number in seen:
            return False
        seen.add(number)
        return True

    def info(item: dict[str, Any], trade_type: str, **fields: Any) -> ContainerInfo:
        return ContainerInfo(
            query=query,
            container_number=parsing.normalise_container_number(item.get("container_id", "")),
            trade_type=trade_type,
            success=bool(item.get("success")),
            error=str(item.get("error") or "")[:255],
            **fields,
        )

    infos = []
    for item in filter(first, results.get("import_results") or []):
        timeline = item.get("timeline") or []
        pregate = item.get("pregate_status")
        infos.append(
            info(
                item,
                "IMPORT",
                passed_pregate=pregate if isinstance(pregate, bool) else None,
                pregate_details=str(item.get("pregate_details") or "")[:255],
                milestones=timeline,
                **parsing.milestone_dates(timeline),
            )
        )
    for item in filter(first, results.get("export_results") or []):
        booking = parsing.cell(item.get("booking_number"))[:40]
        infos.append(info(item, "EXPORT", booking_number=booking))
    return infos


def read_bulk_info(
    ctx: StepContext, imports: list[str], exports: list[str]
) -> tuple[list[ContainerInfo], Any]:
    body = ctx.call(
        lambda api, sid: api.get_info_bulk(
            sid, import_containers=imports, export_containers=exports
        )
    )
    infos = infos_from_bulk(ctx.query, body)
    return infos, write_infos(ctx.query, infos)


def bulk_info(ctx: StepContext) -> Outcome:
    params = ctx.query.params
    _, write = read_bulk_info(
        ctx, params.get("import_containers", []), params.get("export_containers", [])
    )
    return Outcome(next_step=DONE, write=write, progress_done=1, progress_total=1)


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
    )
)

"""What E-Modal's appointment page lists in its dropdowns, kept from its own failures.

The page picks Trucking, Terminal and Move by the option's exact text, then — silently — by the
first option that *contains* the value, and only when neither matches does it fail with
`Option 'X' not found in <Label>. Available options: <the first ten, joined with ", ">`. That
list is the only view of the page's options the portal gets: it is kept (`ListedOption`) and
names staff enter are compared with it, so that a name which would select another option
(`ITS` → `ITS Long Beach`) is shown to staff and never sent."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q
from django.utils import timezone

from ..models import ListedOption

TRUCKING = "Trucking"
TERMINAL = "Terminal"
# Lists that belong to the account (its own trucking companies); the others are E-Modal's.
ACCOUNT_LABELS = frozenset({TRUCKING})

OPTION_MISSING_RE = re.compile(
    r"Option '(?P<value>.*)' not found in (?P<label>[A-Za-z][A-Za-z ]*?)\. "
    r"Available options:(?P<options>.*)$",
    re.DOTALL,
)
# A piece of a ", "-joined list that cannot be an option of its own: the tail of a name with
# a comma in it (`Husky Terminal and Stevedoring, Inc.`, `… Inc. - Tacoma, WA`).
NAME_TAIL_RE = re.compile(r"^(?:Inc\.?|LLC\.?|L\.L\.C\.|Ltd\.?|Corp\.?|Co\.?|[A-Z]{2})$")


@dataclass(frozen=True)
class ListedOptions:
    """One `Option 'X' not found in <Label>. Available options: …` text, read: the dropdown's
    label, the value sent and the options listed (empty: the list had not loaded)."""

    label: str
    value: str
    options: list[str]


def split_options(joined: str, known: Iterable[str] = ()) -> list[str]:
    """The options of a ", "-joined list. Names may hold ", " themselves: a run of pieces that
    spells a known name is that name, and a piece that can only be a name's tail (`Inc.`,
    `WA`) joins the one before it."""
    pieces = [piece.strip() for piece in joined.split(", ")]
    with_commas = {name.strip() for name in known if ", " in name}
    longest = max((name.count(", ") + 1 for name in with_commas), default=1)
    options: list[str] = []
    index = 0
    while index < len(pieces):
        for end in range(min(len(pieces), index + longest), index + 1, -1):
            candidate = ", ".join(pieces[index:end])
            if candidate in with_commas:
                options.append(candidate)
                index = end
                break
        else:
            piece = pieces[index]
            if options and NAME_TAIL_RE.match(piece):
                options[-1] = f"{options[-1]}, {piece}"
            elif piece:
                options.append(piece)
            index += 1
    return options


def known_names_with_commas() -> list[str]:
    return list(
        ListedOption.objects.filter(text__contains=", ").values_list("text", flat=True).distinct()
    )


def listed_options(text: str, known: Iterable[str] = ()) -> ListedOptions | None:
    """An `Option 'X' not found in <Label>. Available options: …` failure text (anywhere in
    `text`, e.g. after `Phase 1 failed - Terminal: `), read; None for any other text. `known`
    names (with commas) help split the list; those already kept are used too."""
    match = OPTION_MISSING_RE.search(text or "")
    if match is None:
        return None
    joined = match["options"].strip()
    names = [*known, *known_names_with_commas()] if ", " in joined else []
    return ListedOptions(
        label=match["label"].strip(), value=match["value"], options=split_options(joined, names)
    )


def record_listed_options(
    label: str, options: Iterable[str], *, account_id: int | None = None
) -> int:
    """Keep the options a dropdown listed (new ones added, known ones marked seen now); the
    number of options kept. Options of the account-owned lists (Trucking) are kept per
    account when one is given."""
    texts = list(dict.fromkeys(text.strip()[:200] for text in options if text and text.strip()))
    if not texts:
        return 0
    owner = account_id if label in ACCOUNT_LABELS else None
    now = timezone.now()
    ListedOption.objects.bulk_create(
        [
            ListedOption(
                account_id=owner, label=label, text=text, first_seen_at=now, last_seen_at=now
            )
            for text in texts
        ],
        ignore_conflicts=True,
    )
    # The account's own list, or E-Modal's (no account).
    owned = Q(account__isnull=True) if owner is None else Q(account_id=owner)
    ListedOption.objects.filter(owned, label=label, text__in=texts).update(last_seen_at=now)
    return len(texts)


def record_options_from_error(
    text: str, *, account_id: int | None = None, known: Iterable[str] = ()
) -> ListedOptions | None:
    """Read an `Option … not found … Available options: …` failure and keep its options
    (nothing is kept from an empty list); None for any other text."""
    listed = listed_options(text, known)
    if listed is not None:
        record_listed_options(listed.label, listed.options, account_id=account_id)
    return listed


def options_for(label: str, *, account_id: int | None = None) -> list[str]:
    """The options kept for a dropdown: for an account-owned list, the account's own (and any
    kept without an account); for the others, every account's."""
    rows = ListedOption.objects.filter(label=label)
    if label in ACCOUNT_LABELS:
        rows = rows.filter(Q(account_id=account_id) | Q(account=None))
    return sorted(set(rows.values_list("text", flat=True)))


def _normalised(value: str) -> str:
    # The page's own comparison: ` - `, ` -`, `- ` → `-`, trimmed; options' spaces collapsed.
    return value.replace(" - ", "-").replace(" -", "-").replace("- ", "-").strip()


def _is_exact(name: str, option: str) -> bool:
    spaced = " ".join(option.split())
    return spaced in (_normalised(name), name)


def _contains(name: str, option: str) -> bool:
    return _normalised(name) in option or name in option


def collision(name: str, options: Iterable[str]) -> str | None:
    """The option the page would select instead of `name`: the first listed option that
    contains it, when no listed option is exactly it (the page picks an exact match first)."""
    options = list(options)
    if not name or any(_is_exact(name, option) for option in options):
        return None
    return next((option for option in options if _contains(name, option)), None)


def ambiguous_name(label: str, name: str, *, account_id: int | None = None) -> str | None:
    """The listed option a check sent with `name` in `label` would select instead (see
    `collision`), or None when the name is not known to be ambiguous."""
    return collision(name, options_for(label, account_id=account_id))


def name_warnings(label: str, name: str, *, account_id: int | None = None) -> list[str]:
    """What staff should know about a name before the page is sent it: that it is not one of
    the options E-Modal has listed (when any are kept), and any listed option it is part of."""
    return warnings_against(label, name, options_for(label, account_id=account_id))


def warnings_against(label: str, name: str, options: list[str]) -> list[str]:
    """`name_warnings` against options already read (a list page reads them once)."""
    if not name or not options:
        return []
    warnings = []
    if not any(_is_exact(name, option) for option in options):
        warnings.append(f"“{name}” is not one of the {label} options E-Modal has listed.")
    others = [o for o in options if not _is_exact(name, o) and _contains(name, o)]
    if others:
        named = ", ".join(f"“{o}”" for o in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        warnings.append(
            f"“{name}” is part of {named}{more}: E-Modal's page could select that option "
            "instead and report it as this one."
        )
    return warnings

"""Getting accounts working upstream sessions, one captcha per need — the `SessionManager`,
and the account-level services around it. Split by concern: the lease (`lease`), the stored
session and its events (`store`), browsers per server (`capacity`), captcha budgets
(`budgets`), logins and their failures (`logins`), accounts' credentials and flags
(`accounts`); `manager` is the facade that builds them, each with what it needs, and puts
them together."""

from .accounts import (
    allow_logins,
    blocked_text,
    drop_session_locally,
    hold_workflow,
    release_workflow,
    update_account_credentials,
)
from .budgets import BUDGET_WINDOW, captcha_budget_frees_at, check_captcha_budget
from .capacity import accounts_in_demand, register_demand_provider, release_slot
from .errors import (
    AccountIncomplete,
    AccountRejected,
    AccountUnreadable,
    BrowsersBusy,
    CaptchaBudgetReached,
    LeaseLost,
    LeaseTimeout,
    SessionError,
    SessionUnavailable,
)
from .lease import Lease, drop_broken_connections
from .logins import may_have_spent_captcha
from .manager import SessionManager, client_for_server
from .options import (
    ListedOptions,
    ambiguous_name,
    listed_options,
    name_warnings,
    record_listed_options,
    record_options_from_error,
)

__all__ = [
    "BUDGET_WINDOW",
    "AccountIncomplete",
    "AccountRejected",
    "AccountUnreadable",
    "BrowsersBusy",
    "CaptchaBudgetReached",
    "Lease",
    "LeaseLost",
    "LeaseTimeout",
    "ListedOptions",
    "SessionError",
    "SessionManager",
    "SessionUnavailable",
    "accounts_in_demand",
    "allow_logins",
    "ambiguous_name",
    "blocked_text",
    "captcha_budget_frees_at",
    "check_captcha_budget",
    "client_for_server",
    "drop_broken_connections",
    "drop_session_locally",
    "hold_workflow",
    "listed_options",
    "may_have_spent_captcha",
    "name_warnings",
    "record_listed_options",
    "record_options_from_error",
    "register_demand_provider",
    "release_workflow",
    "release_slot",
    "update_account_credentials",
]

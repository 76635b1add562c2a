from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .fields import SecretCharField, UndecryptableSecret
from .secret_names import ACCOUNT_SECRET_FIELDS


class AccountQuerySet(models.QuerySet["Account"]):
    def with_session(self) -> AccountQuerySet:
        return self.exclude(session_id=None)

    def rejected(self) -> AccountQuerySet:
        return self.filter(credential_state=Account.CredentialState.REJECTED)

    def needing_a_person(self) -> AccountQuerySet:
        """Accounts that spend nothing until someone fixes or confirms something."""
        return self.filter(credential_state__in=Account.BLOCKING_STATES) | self.exclude(
            appointment_error=""
        )


class Account(models.Model):
    """A portal user's E-Modal credentials and the state of their upstream session."""

    class CredentialState(models.TextChoices):
        UNKNOWN = "unknown", "Not tried yet"
        WORKING = "working", "Working"
        REJECTED = "rejected", "Rejected"
        # The captcha was not solved twice in a row: the key may be refused or out of balance.
        KEY_SUSPECT = "key_suspect", "Captcha key suspect"
        # Logins failed for an unknown reason as often as EMODAL_LOGIN_FAILURE_LIMIT allows.
        LOGIN_FAILING = "login_failing", "Login failing"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="emodal_account"
    )
    emodal_username = SecretCharField("E-Modal username", max_length=150)
    password = SecretCharField("E-Modal password", max_length=255)
    captcha_api_key = SecretCharField("captcha API key", max_length=255)

    # Used by appointment checks; they belong to the company's account, not to code.
    trucking_company = models.CharField(max_length=120, blank=True)
    truck_plate = models.CharField(
        max_length=20,
        blank=True,
        help_text=(
            "E-Modal never refuses a plate: one its list does not hold is silently replaced by "
            "the first listed plate (ABC123 or a blank plate means any plate), so the plate "
            "E-Modal used for a check is not knowable."
        ),
    )
    own_chassis = models.BooleanField(default=False)

    # The upstream server this account's sessions live on (one of EMODAL_API_URLS); assigned
    # on first use to balance accounts across servers. Changing it drops the session.
    upstream_url = models.CharField("upstream server", max_length=200, blank=True)

    credential_state = models.CharField(
        max_length=20, choices=CredentialState.choices, default=CredentialState.UNKNOWN
    )
    credential_error = models.CharField(max_length=255, blank=True)
    # When logins last stopped for a person to act (rejected, key suspect, failing): the board's
    # banner says "since" with it.
    logins_stopped_at = models.DateTimeField(null=True, blank=True)
    credentials_changed_at = models.DateTimeField(default=timezone.now)
    # Failed logins in a row that may have spent a captcha without a verdict on the
    # credentials (captcha not solved, unknown cause); reset by a login that works.
    login_failures = models.PositiveSmallIntegerField(default=0)
    # Set when E-Modal's appointment page does not list the account's trucking company (its
    # options are kept in the text): appointment checks stop until someone edits it. The truck
    # plate is never refused: E-Modal silently uses the first listed plate instead.
    appointment_error = models.CharField(max_length=255, blank=True)
    appointment_error_at = models.DateTimeField(null=True, blank=True)

    # The upstream session id is a bearer token to a logged-in browser: stored encrypted.
    session_id = SecretCharField("upstream session id", max_length=100, null=True, blank=True)
    # Bumped on every change of session_id: encrypted values cannot be compared in SQL, so
    # compare-and-set on the session ("drop it only if it is still the one that failed")
    # compares this number instead.
    session_version = models.PositiveIntegerField(default=0)
    session_created_at = models.DateTimeField(null=True, blank=True)
    session_last_used_at = models.DateTimeField(null=True, blank=True)
    # Calls made with the current session (a reuse is counted here, not as an event per call).
    session_uses = models.PositiveIntegerField("calls with this session", default=0)
    # Whether the portal's own login created the session. One adopted from the upstream
    # (another system's, handed back for the same credentials) is never closed by the portal.
    session_created_here = models.BooleanField(default=False)
    # Failed appointment checks whose workflows the session's browser holds: the upstream
    # closes that browser ten minutes after the first one's last use, whoever is using it
    # then. From `browser_closes_at` (EMODAL_POISON_SECONDS after it) the session is replaced
    # before any new work.
    held_workflows = models.PositiveSmallIntegerField("held check workflows", default=0)
    browser_closes_at = models.DateTimeField(null=True, blank=True)

    # The account's lease: whoever holds it may create a session and drive the account's
    # browser. One holder at a time gives both "one captcha per need" and "one call per
    # browser", across threads, processes and hosts (taken by a conditional UPDATE).
    lease_token = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["user__username"]
        permissions = [("refresh_session", "Can force a session refresh (spends a captcha)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(lease_token="") | Q(lease_expires_at__isnull=False),
                name="account_lease_has_expiry",
            ),
        ]

    def __str__(self) -> str:
        return self.user.get_username()

    SECRET_FIELDS = tuple(ACCOUNT_SECRET_FIELDS)
    # States in which no login is tried (nothing spent) until someone acts.
    BLOCKING_STATES = (
        CredentialState.REJECTED,
        CredentialState.KEY_SUSPECT,
        CredentialState.LOGIN_FAILING,
    )

    def unreadable_secrets(self) -> list[str]:
        return [
            name
            for name in self.SECRET_FIELDS
            if isinstance(getattr(self, name), UndecryptableSecret)
        ]

    def has_credentials(self) -> bool:
        return all(
            getattr(self, name) for name in ("emodal_username", "password", "captcha_api_key")
        )

    @property
    def logins_blocked(self) -> bool:
        return self.credential_state in self.BLOCKING_STATES

    def session_deadline(self) -> datetime | None:
        """When the stored session is to be treated as gone without asking the upstream: never
        with EMODAL_SESSION_IDLE_SECONDS at 0 (the upstream keeps sessions until they are
        evicted or break; only a call can tell)."""
        if not self.session_id or not settings.EMODAL_SESSION_IDLE_SECONDS:
            return None
        if self.session_last_used_at is None:
            return None
        usable = settings.EMODAL_SESSION_IDLE_SECONDS - settings.EMODAL_SESSION_MARGIN_SECONDS
        return self.session_last_used_at + timedelta(seconds=max(usable, 0))

    def session_is_live(self, now: datetime | None = None) -> bool:
        """Alive as far as the portal knows without asking (see `session_deadline`)."""
        if not self.session_id:
            return False
        deadline = self.session_deadline()
        return deadline is None or (now or timezone.now()) < deadline

    def browser_poisoned(self) -> bool:
        """Whether a held workflow is about to close the session's browser: it is given no
        new work before the session has been replaced."""
        if not self.session_id or self.browser_closes_at is None:
            return False
        return timezone.now() >= self.browser_closes_at

    @property
    def session_state(self) -> str:
        if not self.session_id:
            return "none"
        return "live" if self.session_is_live() else "expired"


class SessionEventQuerySet(models.QuerySet["SessionEvent"]):
    def captcha_spent(self) -> SessionEventQuerySet:
        return self.filter(captcha_spent=True)

    def since(self, moment: datetime) -> SessionEventQuerySet:
        return self.filter(created_at__gte=moment)


class SessionEvent(models.Model):
    """One outcome of getting or using an account's session: the audit trail and the source
    of the admin's figures (captcha solves in the last 24 h, ...)."""

    class Kind(models.TextChoices):
        REUSED_STORED = "reused_stored", "Reused stored session"
        REUSED_UPSTREAM = "reused_upstream", "Reused upstream session"
        CREATED = "created", "Created (captcha spent)"
        EXPIRED_LOCALLY = "expired_locally", "Expired by idle time"
        REPLACED = "replaced", "Replaced after upstream said gone"
        POISONED = "poisoned", "Replaced before a held workflow closes its browser"
        REFRESH_FORCED = "refresh_forced", "Refresh forced"
        DROPPED = "dropped", "Dropped"
        CLOSED_FOR_CAPACITY = "closed_for_capacity", "Closed to free a browser"
        REJECTED = "rejected", "Credentials rejected"
        FAILED = "failed", "Failed"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    captcha_spent = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(default=0)
    detail = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = SessionEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The admin's "captcha solves in the last 24 h" per account.
            models.Index(fields=["account", "captcha_spent", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class SessionSlot(models.Model):
    """One of an upstream server's browsers, as the portal counts them. An account holds a slot
    for as long as it keeps a session, so that the number of sessions in use on a server stays
    under EMODAL_MAX_SESSIONS across all workers and hosts (claimed by conditional UPDATE)."""

    server = models.CharField(max_length=200)
    number = models.PositiveSmallIntegerField()
    account = models.OneToOneField(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="slot"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["server", "number"]
        constraints = [
            models.UniqueConstraint(fields=["server", "number"], name="sessionslot_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.server} #{self.number}"


class UpstreamBreaker(models.Model):
    """The circuit breaker of one upstream server, shared by every worker on every host (see
    `breaker.py`). Changed only by conditional UPDATEs, so that exactly one worker opens it,
    and exactly one gets the probe once it may half-open."""

    class State(models.TextChoices):
        CLOSED = "closed", "Closed (calls go through)"
        OPEN = "open", "Open (calls fail fast)"
        HALF_OPEN = "half_open", "Half-open (one probe in flight)"

    server = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLOSED)
    # Transient failures in a row (reset by any answer that shows the server working).
    failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    # The probe's holder and how long its claim lasts (a probe whose worker died expires).
    probe_token = models.CharField(max_length=64, blank=True)
    probe_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["server"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state="closed") | Q(opened_at__isnull=False),
                name="upstreambreaker_open_has_opened_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.server}: {self.get_state_display()}"


class ListedOption(models.Model):
    """An option E-Modal's appointment page listed in one of its dropdowns (`Trucking`,
    `Terminal`, `Move`), as read from an `Option 'X' not found in <Label>. Available options:
    …` failure. The page picks a value by its exact text, then silently by the first option
    that *contains* it: names staff enter are compared with these to catch a name that would
    select another option (`ITS` → `ITS Long Beach`). Only the first ten options of a list are
    ever shown, so a name missing here is not known to be wrong."""

    # The account whose page listed it (a trucking company list is the account's own); null
    # for options recorded without one.
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, null=True, blank=True, related_name="listed_options"
    )
    label = models.CharField(max_length=40)
    text = models.CharField(max_length=200)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["label", "text"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "label", "text"],
                condition=Q(account__isnull=False),
                name="listedoption_unique_per_account",
            ),
            models.UniqueConstraint(
                fields=["label", "text"],
                condition=Q(account__isnull=True),
                name="listedoption_unique_without_account",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.text}"

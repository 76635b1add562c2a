"""What sessions_app tells the rest of the portal, without knowing who listens."""

from django.dispatch import Signal

# Sent by the upstream client after every upstream call, success or not, from the process that
# made it. Keyword arguments: `server` (the base URL), `endpoint` (a label such as
# "/get_session" or "/files/{path}", never a path holding a session id), `outcome` ("ok", or the
# name of the error class raised: "UpstreamUnavailable", "SessionGone", "UpstreamTimeout", ...),
# `status` (the HTTP status, or None without an answer), `duration` (seconds). Receivers must
# be quick and must not raise: they run inside the caller's upstream call path.
upstream_call = Signal()

# Sent when one or more of a server's browsers (session slots) are given back, so that work
# waiting for a browser there need not wait for its retry time. Keyword arguments: `server`,
# `count`.
browser_freed = Signal()

# Sent when the portal stops logging an account in until a person acts: E-Modal rejected its
# username or password (`state` "rejected"), or logins failed too often in a row ("key_suspect",
# "login_failing"). Keyword arguments: `account_id`, `state`, `reason` (readable, never a
# secret). Sent once per stop, from the process whose login found it, inside the transaction
# that makes the account's row say so. Receivers must not raise.
logins_stopped = Signal()

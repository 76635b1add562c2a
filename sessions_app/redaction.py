"""Last line of defence against secrets in log output and error texts.

Code never formats a password, captcha key or session id into a message on purpose; this
catches upstream texts that echo a session id back, and anything that slips through.
"""

import logging
import re

SESSION_ID_RE = re.compile(r"session_\d+_-?\d+")
REDACTED = "session_[redacted]"


def redact(text: str) -> str:
    return SESSION_ID_RE.sub(REDACTED, text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

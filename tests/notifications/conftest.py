"""The webhook receiver and the SMTP server of the API's and the board's tests."""

from ..api.conftest import receiver
from ..containers.conftest import smtp

__all__ = ["receiver", "smtp"]

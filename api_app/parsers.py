"""The API's JSON bodies, held to the portal's request size limit.

DRF reads a body from the request stream, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check
(which guards `request.body` and forms only): without this a client could send any amount.
"""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


class LimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if stream is None:
            return super().parse(stream, media_type, parser_context)
        content = stream.read(limit + 1) if limit is not None else stream.read()
        if limit is not None and len(content) > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit // 1024} KiB.")
        return super().parse(io.BytesIO(content), media_type, parser_context)

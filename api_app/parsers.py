"""The API's JSON parser: DRF's, with the nesting depth of a body bounded before it is decoded.

Python's decoder recurses once per level: a body of 50 000 `[` (100 KB, under the body size
limit) ends in a RecursionError, a 500 with a traceback. No request the API takes nests
deeper than a few levels, so a body nesting deeper than MAX_DEPTH is a 400 `parse_error`."""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json

# Far above any body the API reads (a start request is 3 levels; a webhook's events list 2).
MAX_DEPTH = 32
# A JSON string (skipped whole, so brackets inside text do not count) or a bracket.
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def nesting_depth(text: str, limit: int) -> int:
    """How deep the text's arrays and objects nest, counting no further than `limit` + 1."""
    depth = deepest = 0
    for token in _TOKENS.finditer(text):
        char = token.group()[0]
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


class BoundedJSONParser(JSONParser):
    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
        except UnicodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if nesting_depth(text, MAX_DEPTH) > MAX_DEPTH:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.")
        try:
            parse_constant = json.strict_constant if self.strict else None
            return json.loads(text, parse_constant=parse_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None

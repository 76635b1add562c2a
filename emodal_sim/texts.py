"""The real server's error texts, and the browser-driver exception texts that end up inside
them, as `emodal_business_api.py` (revision 619004d; cited as ``L1234``) composes them.

An endpoint wraps what failed in its own words: a step that returned an error dict becomes
``"<prefix>: <error>"``; an exception raised by Selenium or by the HTTP link to chromedriver
becomes ``str(exception)``. The exception texts below have the shape Python's Selenium client
gives them (``Message: …`` plus Chrome's session info and a stack trace) or, for a browser
whose driver was quit, urllib3's connection-refused error.
"""

from __future__ import annotations

import hashlib

CHROME_VERSION = "141.0.7390.108"
_STACK = (
    "Stacktrace:\n"
    "#0 0x55d0c3b2e4ba <unknown>\n"
    "#1 0x55d0c35d2a70 <unknown>\n"
    "#2 0x55d0c361f9c6 <unknown>\n"
)
_DOCS = "https://www.selenium.dev/documentation/webdriver/troubleshooting/errors"


def selenium_text(message: str, docs_anchor: str = "") -> str:
    """``str()`` of a Selenium WebDriverException raised by Chrome's driver."""
    link = f"; For documentation on this error, please visit: {_DOCS}#{docs_anchor}"
    return (
        f"Message: {message}\n  (Session info: chrome={CHROME_VERSION})"
        f"{link if docs_anchor else ''}\n{_STACK}"
    )


STALE_ELEMENT = selenium_text(
    "stale element reference: stale element not found in the current frame",
    "stale-element-reference-exception",
)
RENDERER_TIMEOUT = selenium_text("timeout: Timed out receiving message from renderer: 29.871")
CLICK_INTERCEPTED = selenium_text(
    'element click intercepted: Element <mat-select role="combobox" class="mat-select">...'
    "</mat-select> is not clickable at point (812, 403). Other element would receive the "
    'click: <div class="cdk-overlay-backdrop cdk-overlay-transparent-backdrop '
    'cdk-overlay-backdrop-showing"></div>',
    "element-click-intercepted-exception",
)
# What a page step raises when it hits a hiccup of the page (picked at random by glitches).
PAGE_EXCEPTIONS = (STALE_ELEMENT, RENDERER_TIMEOUT, CLICK_INTERCEPTED)


def invalid_selector(xpath: str) -> str:
    """Chrome's answer to an XPath that does not parse: every value containing ``'`` breaks the
    page's ``…text())='<value>'`` queries this way, every time."""
    return selenium_text(
        f"invalid selector: Unable to locate an element with the xpath expression {xpath} "
        "because of the following error:\nSyntaxError: Failed to execute 'evaluate' on "
        f"'Document': The string '{xpath}' is not a valid XPath expression.",
        "invalid-selector-exception",
    )


def dead_driver(session_id: str, command: str = "elements") -> str:
    """What every driver command raises once the browser's chromedriver was quit (evicted,
    deleted, poisoned, killed): urllib3 cannot reach the driver's port any more."""
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    port = 33000 + int(digest[:4], 16) % 20000
    return (
        f"HTTPConnectionPool(host='localhost', port={port}): Max retries exceeded with url: "
        f"/session/{digest[:32]}/{command} (Caused by NewConnectionError('<urllib3.connection."
        f"HTTPConnection object at 0x7f{digest[32:42]}>: Failed to establish a new connection: "
        "[Errno 111] Connection refused'))"
    )


# ---------------------------------------------------------------- requests (Flask/Werkzeug)

JSON_ERROR = "Request must be JSON"
BAD_REQUEST = (
    "400 Bad Request: The browser (or proxy) sent a request that this server could not understand."
)
UNSUPPORTED_MEDIA_TYPE = (
    "415 Unsupported Media Type: Did not attempt to load JSON data because the request "
    "Content-Type was not 'application/json'."
)

# ------------------------------------------------------------------------------ sessions

SESSION_GONE = "Missing required fields: username, password, captcha_api_key (or valid session_id)"
CAPACITY = "Failed to allocate session capacity"
NO_CONSOLE = "Manual login interrupted: EOF when reading a line"
DASHBOARD = "Manual login failed - not on eModal dashboard"
VERIFICATION = "Verification failed: login could not be verified"

# ---------------------------------------------------------------------- containers pages

NO_CONTAINERS = "Download failed: No container data extracted"  # L4264


def not_found_after_scrolling(container_id: object) -> str:
    """The search's own text for a container the page does not list (L4830): final."""
    return f"Container '{container_id}' not found after scrolling"


def navigation_error(exc: str) -> str:
    """``navigate_to_containers`` / ``navigate_to_appointment`` when ``driver.get`` raised."""
    return f"Navigation error: {exc}"


PREGATE_MISSING = "Pregate milestone not found"  # L5194
TIMELINE_CONTAINER_MISSING = "Timeline container not found"  # L5280
BULK_EMPTY = "At least one of 'import_containers' or 'export_containers' must be provided"


def expand_row_missing(container_id: object) -> str:
    return f"Container row not found for '{container_id}'"  # L4982


# ------------------------------------------------------------------- appointments page

CONTAINER_TYPE = "container_type must be 'import' or 'export'"  # L7482
CONTAINER_FIELD = (  # L7758
    "Phase 1 failed - Container field not found. Please provide 'line' and 'equip_size' "
    "fields for this form type."
)
CONTAINER_FIELD_MESSAGE = "This form requires 'line' and 'equip_size' instead of 'container_id'"
CONTAINER_FIELD_MISSING = (  # L2666, what make_appointment reports for the same page
    "FIELD_NOT_FOUND: Neither container number nor booking number input field found"
)
BOOKING_INVALID = "Booking number validation failed"  # L7816
NO_OPEN_TRANSACTIONS = "No open transactions for this booking number"
PLATE_MISSING = "Missing required field for Phase 2: truck_plate"
PLATE_FIELD_MISSING = "Truck plate field not found"  # L2938
NO_PLATES = "No truck plates available in dropdown"  # L2986
CHECKBOX_MISSING = "Container checkbox not found"  # L2839
TIME_DROPDOWN_MISSING = "Appointment time dropdown not found after trying all strategies"


def dropdown_missing(label: str) -> str:
    return f"Dropdown '{label}' not found"  # L2471


def option_missing(value: object, label: str, options: list[str]) -> str:
    """L2544-2552: the first 10 options, joined; nothing after the colon when the list had
    not loaded."""
    return f"Option '{value}' not found in {label}. Available options: {', '.join(options[:10])}"


def not_advanced(phase: int) -> str:
    return f"Phase did not advance from {phase}"  # L2806-2820


# ------------------------------------------------------------------- appointments export

CHECKBOX_SELECTION = "Checkbox selection failed"  # L8980
EXCEL_BUTTON = "Excel download failed: Excel download button not found after trying all selectors"
EXCEL_MISSING = "Excel file not found after download"  # L9064-9078

"""The shapes of ids and free text, shared by the request models and the routes.

Plain strings with no imports, so a domain's models can use them without importing the HTTP
vocabulary (``http.py``), which re-exports them for the routers.
"""

from __future__ import annotations

ID_PATTERN = r"^[A-Za-z0-9\-]+$"
"""What an id of this service looks like (UUIDs); anything else cannot name a row."""

FREE_TEXT_PATTERN = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\u202A-\u202E\u2066-\u2069]*$"
"""Free text (labels, notes, reasons): any printable text, tabs and line breaks, but no
control characters and no bidirectional overrides (which can make a note read differently
from what is stored)."""

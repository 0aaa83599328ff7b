"""
The answers the proxy makes itself when a request cannot be served upstream.
"""

from __future__ import annotations

from edgeproxy.core.message import LocalResponse

_REASONS = {
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def error_response(status: int) -> LocalResponse:
    """The short answer for an upstream error."""
    return LocalResponse.text(status, _REASONS.get(status, "Error"))


def filter_answer_reason(filter_name: str, answer: LocalResponse) -> str:
    """The access log's reason for ``answer``, made by the filter ``filter_name``."""
    if answer.reason:
        return f"filter {filter_name}: {answer.reason}"
    return f"filter {filter_name}"

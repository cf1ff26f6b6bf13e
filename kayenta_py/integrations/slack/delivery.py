"""Posting to Slack: retries on rate limits and server errors (bounded Retry-After)."""

from __future__ import annotations

import logging

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from kayenta_py.integrations.outbox_delivery import MAX_BACKOFF_S, MAX_RETRY_AFTER_S, Outcome, retry_after

__all__ = ["HTTP_TIMEOUT_S", "MAX_BACKOFF_S", "MAX_RETRY_AFTER_S", "Outcome", "retry_after", "retry_handlers"]

HTTP_TIMEOUT_S = 10


# slack-sdk logs the request URL (the secret) at DEBUG and INFO: give it a logger that says nothing.
_SDK_LOG = logging.Logger("kayenta_py.slack.sdk", logging.CRITICAL + 1)


class _RateLimitRetry(RateLimitErrorRetryHandler):
    """Retry a 429 after its ``Retry-After`` (whole seconds), unless that is too long to wait inline."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response.headers)
        return wait is not None and wait <= self.max_wait


class _ServerErrorRetry(ServerErrorRetryHandler):
    """Retry any 5xx answer (slack-sdk's own handler retries only 500 and 503)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and 500 <= response.status_code < 600


def retry_handlers(retries: int, *, max_retry_after: float = MAX_RETRY_AFTER_S) -> list[RetryHandler]:
    """Return the retry handlers of a post: 429 (honouring Retry-After), 5xx, connection errors."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        _RateLimitRetry(retries, max_retry_after),
        _ServerErrorRetry(max_retry_count=retries, interval_calculator=backoff),
        ConnectionErrorRetryHandler(max_retry_count=retries, interval_calculator=backoff),
    ]

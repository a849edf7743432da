"""Leases and settle windows come from the whole retry policy of their calls (issue 9, defect 2),
computed in one place that both workflows use."""

from __future__ import annotations

from pathlib import Path

import pytest

from fulfil.audit.outcome import FailureClass
from fulfil.audit.retry import RetryPolicy, lease_seconds, settle_seconds
from fulfil.bestbuy import client as bestbuy_client
from fulfil.canadapost.client import RETRY_LABEL_FETCH, RETRY_NOT_SENT, RETRY_READS
from fulfil.config import load_settings
from fulfil.services import label_workflow, service_budgets, tracking_workflow
from tests.conftest import SENDER_ENV

pytestmark = pytest.mark.unit


def test_the_longest_call_is_every_attempt_to_its_deadline_and_every_wait_at_its_longest() -> None:
    backoff_only = RetryPolicy(max_attempts=3, retry_on=frozenset({FailureClass.NOT_SENT}), backoff_base=1)
    assert backoff_only.longest_wait() == 1 + 2
    assert backoff_only.longest_call(deadline=10) == 3 * 10 + 3
    throttled = RetryPolicy(
        max_attempts=4, retry_on=frozenset({FailureClass.RATE_LIMITED}), backoff_base=0.5, max_retry_after=60
    )
    assert throttled.longest_wait() == 3 * 60  # a Retry-After up to the cap, before each retry
    assert RetryPolicy().longest_call(deadline=7) == 7


def test_a_lease_outlasts_every_call_made_under_it() -> None:
    policy = bestbuy_client.RETRY
    assert lease_seconds(70, policy, policy) >= 2 * (policy.max_attempts * 70 + policy.longest_wait())
    assert lease_seconds(70, RETRY_NOT_SENT) > RETRY_NOT_SENT.max_attempts * 70
    # A purchase refused by Canada Post's gateway (SLM) waits out the pause and goes again, as reads do.
    assert lease_seconds(70, RETRY_NOT_SENT) >= 3 * 70 + 2 * 60
    assert lease_seconds(70, RETRY_READS) >= lease_seconds(70, RETRY_NOT_SENT)


def test_the_settle_window_is_the_deadline_plus_the_allowance() -> None:
    assert settle_seconds(70, 60) == 130


def test_both_workflows_size_their_leases_from_the_configured_deadline() -> None:
    env = {
        **SENDER_ENV,
        "FULFIL_CANADAPOST_USERNAME": "u",
        "FULFIL_CANADAPOST_PASSWORD": "password",
        "FULFIL_CANADAPOST_CUSTOMER_NUMBER": "1234567",
        "FULFIL_BESTBUY_API_KEY": "key-1234",
    }
    short = load_settings({**env, "FULFIL_HTTP_DEADLINE": "5"}, Path("/"))
    long = load_settings({**env, "FULFIL_HTTP_DEADLINE": "50"}, Path("/"))
    labels_short = label_workflow("postgresql:///x", short, None).settings
    labels_long = label_workflow("postgresql:///x", long, None).settings
    # Each call may also wait its longest for a rate budget (a pause of the group's whole window).
    canadapost_wait = service_budgets(long, "CanadaPost").max_wait
    assert canadapost_wait >= 60
    assert labels_short.lease_seconds == lease_seconds(5, RETRY_NOT_SENT, admission_wait=canadapost_wait)
    assert labels_long.lease_seconds == lease_seconds(50, RETRY_NOT_SENT, admission_wait=canadapost_wait)
    assert labels_long.download_lease_seconds == lease_seconds(
        50, RETRY_LABEL_FETCH, admission_wait=canadapost_wait
    )
    assert labels_long.deadline == 50
    policy = bestbuy_client.RETRY
    tracking = tracking_workflow("postgresql:///x", long, None).settings
    bestbuy_wait = service_budgets(long, "BestBuy").max_wait
    assert tracking.lease_seconds == lease_seconds(50, policy, policy, admission_wait=bestbuy_wait)
    # Unset, the deadline is connect + read timeout.
    default = load_settings(env, Path("/"))
    assert default.http().deadline == default.http().connect_timeout + default.http().read_timeout

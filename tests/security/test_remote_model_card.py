"""A remote agent reading a model card over HTTP: the test set stays sealed.

Real parts: a trained run promoted to candidate through the server (which logs the card), then the
card read over streamable HTTP with an agent token and with a human token.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.credentials import issue
from tests.e2e.transports import mlgate_http, streamable_http
from tests.tools.promotion_lab import MODEL, Lab, build_candidate_lab
from tools.sealed import is_sealed

pytestmark = pytest.mark.anyio
CARD_URI = f"mlgate://models/{MODEL}/card"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return build_candidate_lab(tmp_path_factory.mktemp("remote-card"))


async def read_card(lab: Lab, token: str) -> dict[str, Any]:
    with mlgate_http(lab.settings) as url:
        async with streamable_http(url, token) as client:
            result = await client.read_resource(CARD_URI)
    return json.loads(result.contents[0].text)


def sealed_figures(lab: Lab) -> dict[str, float]:
    """The run's test-set figures precise enough not to match another number by chance (0.5, 1.0)."""
    metrics = lab.ports.tracking.get_run(lab.run_id)["metrics"]
    return {name: value for name, value in metrics.items() if is_sealed(name) and len(repr(value)) > 6}


async def test_an_agent_reading_the_model_card_over_http_sees_no_test_set_figure(lab: Lab) -> None:
    figures = sealed_figures(lab)
    assert "test_roc_auc" in figures
    document = await read_card(lab, issue(lab.settings.state_dir, "remote-agent", "agent"))
    text = json.dumps(document)
    leaked = sorted(name for name, value in figures.items() if repr(value) in text)
    assert leaked == [], f"the agent's card holds the sealed figures {leaked}"
    assert document["card"]["reproduction"]["seed_runs"]["seeds"]  # the seeds are shown, their test figures are not


async def test_a_human_reading_the_same_card_over_http_sees_the_test_figures(lab: Lab) -> None:
    document = await read_card(lab, issue(lab.settings.state_dir, "remote-human", "human"))
    assert repr(sealed_figures(lab)["test_roc_auc"]) in json.dumps(document)
    assert document["card"]["reproduction"]["seed_runs"]["values"][0] == sealed_figures(lab)["test_roc_auc"]

"""Model resources: this project's registered model with its aliases, and its card.

A project registers one model, `<client_name>-<project_name>` (tools/promote.model_name). A tracking
store may hold other projects' models too (a shared tracking server): they are neither listed nor
carded here, as runs of other projects are not found (runs.same_project).

The card is the one promote logged (`model_card.json` on the promoted run, tools/model_card.py) for
the version the `champion` alias points at, or the `candidate` version when there is no champion.
When the run's artifact cannot be read, the card fields promote set as version tags (`card.*`) are
served instead, marked as such. Read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from mcp.server.mcpserver.exceptions import ResourceNotFoundError

from policies.promotion import MODEL_NAME
from resources.base import ReadContext, ResourceSpec
from tools import strict_json
from tools.lifecycle import model_name
from tools.model_card import agent_card
from tools.promotion_move import CARD_ARTIFACT

MODELS_URI = "mlgate://models"
CARD_URI = "mlgate://models/{name}/card"
CARD_ALIASES = ("champion", "candidate")


class Registry(Protocol):
    def model(self, name: str) -> dict[str, Any] | None: ...

    def alias_version(self, name: str, alias: str) -> str | None: ...

    def version(self, name: str, version: str) -> dict[str, Any]:
        """{version, run_id, source, tags, aliases}. Raises NotFound."""
        ...


class JsonArtifacts(Protocol):
    def read_json(self, run_id: str, name: str) -> Any | None: ...


def models(registry: Registry, own: str) -> dict[str, Any]:
    """The project's model `own` as the registry lists it (nothing before its first promotion)."""
    found = [model for model in [registry.model(own)] if model is not None]  # other projects' models are not listed
    for model in found:
        model["card_uri"] = f"mlgate://models/{model['name']}/card"
    return {"models": found, "count": len(found)}


def _carded_alias(registry: Registry, name: str) -> tuple[str, str]:
    """(alias, version) of the champion, else the candidate. Raises ResourceNotFoundError."""
    for alias in CARD_ALIASES:
        version = registry.alias_version(name, alias)
        if version is not None:
            return alias, version
    raise ResourceNotFoundError(f"model {name!r} has no champion or candidate version (or does not exist); {MODELS_URI} lists the registered models and their aliases, promote(run_id, alias='candidate') creates one")


def card(registry: Registry, artifacts: JsonArtifacts | None, name: str, reveal: bool = False, own: str | None = None) -> dict[str, Any]:
    """The card of the champion (else candidate) version of the project's model `own`; its sealed
    test figures only when `reveal` (a human reads it: tools/sealed.py). Raises ResourceNotFoundError."""
    if not MODEL_NAME.match(name):
        raise ResourceNotFoundError(f"{name[:60]!r} is not a model name (letters, digits, '_', '.', '-'); {MODELS_URI} lists the models")
    if own is not None and name != own:
        raise ResourceNotFoundError(f"{name!r} is not this project's model ({own}); {MODELS_URI} lists it once promote registered it")
    alias, version = _carded_alias(registry, name)
    found = registry.version(name, version)
    logged = artifacts.read_json(found["run_id"], CARD_ARTIFACT) if artifacts is not None else None
    head = {"model": name, "alias": alias, "version": version, "run_id": found["run_id"], "aliases": sorted(found["aliases"])}
    if isinstance(logged, dict):
        return {**head, "source": f"run artifact {CARD_ARTIFACT}", "card": logged if reveal else agent_card(logged)}
    tags = {k: v for k, v in sorted(found["tags"].items()) if k.startswith("card.")}
    if not tags:
        raise ResourceNotFoundError(f"{name} version {version} ({alias}) has no model card: it was not registered by promote")
    return {**head, "source": "model version tags card.* (the run's card artifact could not be read)", "card": tags if reveal else agent_card(tags)}


def _own_model(ctx: ReadContext) -> str:
    """Raises GovernanceError when the standards cannot be read."""
    return model_name(ctx.ports.standards.policy_config()["standards"])


def _models(ctx: ReadContext, params: Mapping[str, str]) -> str:
    return strict_json.dumps(models(ctx.ports.registry, _own_model(ctx)), sort_keys=True)


def _card(ctx: ReadContext, params: Mapping[str, str]) -> str:
    """Raises ResourceNotFoundError or GovernanceError."""
    return strict_json.dumps(card(ctx.ports.registry, ctx.ports.run_artifacts, str(params["name"]), ctx.principal.is_human, _own_model(ctx)), sort_keys=True)


SPECS = (
    ResourceSpec(MODELS_URI, "models", "Registered models", "This project's registered model with its aliases (champion, candidate) and versions, each version with its run id.",
                 _models, requires=("registry", "standards")),
    ResourceSpec(CARD_URI, "model_card", "Model card", "The model card of this project's model's champion version (else its candidate): intended use, limitations, provenance, metrics, gates, reproduction, approvals.",
                 _card, requires=("registry", "standards")),
)  # fmt: skip

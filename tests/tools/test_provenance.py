"""Provenance hashes: recomputable from the bytes and the config, insensitive to key order."""

from __future__ import annotations

import hashlib

import pytest

from tools.provenance import canonical_json, config_hash, feature_pipeline_hash, lockfile_hash, sha256_json, stable_json

FEATURES = b"def build_features(frame):\n    return frame.copy()\n"


def test_canonical_json_sorts_keys_and_drops_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_canonical_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_config_hash_ignores_key_order_but_not_values() -> None:
    first = config_hash({"model": {"type": "xgboost", "params": {"max_depth": 4}}, "seed": 42})
    reordered = config_hash({"seed": 42, "model": {"params": {"max_depth": 4}, "type": "xgboost"}})
    changed = config_hash({"seed": 43, "model": {"params": {"max_depth": 4}, "type": "xgboost"}})
    assert first == reordered != changed
    assert first == hashlib.sha256(b'{"model":{"params":{"max_depth":4},"type":"xgboost"},"seed":42}').hexdigest()


def test_lockfile_hash_is_the_sha256_of_the_bytes() -> None:
    assert lockfile_hash(b"version = 1\n") == hashlib.sha256(b"version = 1\n").hexdigest()


def test_feature_pipeline_hash_changes_with_the_source_or_the_feature_config() -> None:
    base = feature_pipeline_hash(FEATURES, {"exclude": [], "use_protected_attributes": False})
    assert base == feature_pipeline_hash(FEATURES, {"use_protected_attributes": False, "exclude": []})
    assert base != feature_pipeline_hash(FEATURES + b"# tweak\n", {"exclude": [], "use_protected_attributes": False})
    assert base != feature_pipeline_hash(FEATURES, {"exclude": ["income"], "use_protected_attributes": False})


def test_feature_pipeline_hash_is_recomputable_from_its_documented_construction() -> None:
    config = {"exclude": ["x"]}
    config_bytes = canonical_json(config).encode()
    digest = hashlib.sha256(b"mlgate.feature_pipeline.v1\n")
    for part in (FEATURES, config_bytes):
        digest.update(len(part).to_bytes(8, "big") + part)
    assert feature_pipeline_hash(FEATURES, config) == digest.hexdigest()


def test_stable_json_is_indented_sorted_and_ends_with_a_newline() -> None:
    assert stable_json({"b": 1, "a": 2}) == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert sha256_json({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()

"""The secret scanner: credentials by name or by shape; provenance hashes are not secrets."""

from __future__ import annotations

import pytest

from tools.secrets_scan import MIN_RANDOM_ENTROPY_BITS, SecretFinding, _entropy_bits, find_secrets, is_secret_key, secret_kind_of_value, strip_secrets


@pytest.mark.parametrize("key", ["token", "GH_TOKEN", "db.password", "apiKey", "api_key", "aws.secret_access_key", "ssh-key", "Authorization", "client_secret", "credentials.path"])
def test_credential_names_are_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["tokens_used", "max_depth", "sort_key", "model.params.learning_rate", "keyword", "monkey", "author"])
def test_ordinary_names_are_not_secret_keys(key: str) -> None:
    assert not is_secret_key(key)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("ghp_" + "a1B2" * 9, "github_token"),
        ("sk-" + "x9Y8" * 6, "openai_style_key"),
        ("AKIAABCDEFGHIJKLMNOP", "aws_access_key_id"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "private_key_block"),
        ("Bearer abcdefghijklmnop1234", "bearer_header"),
        ("postgresql://mlflow:hunter2@db.internal/mlflow", "url_with_password"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ("k8Zq2LmP0xW7vR4tY9uB3nC6dF1gH5jK", "high_entropy_string"),
    ],
)
def test_credential_shaped_values_are_found(value: str, kind: str) -> None:
    assert secret_kind_of_value(value) == kind


@pytest.mark.parametrize(
    "value",
    [
        "3b7e1c7f0d6a4b2e9f8c1a5d7e3b9c2f4a6d8e0b1c3d5e7f9a2b4c6d8e0f1a3b",  # a sha256 content hash
        "0123456789abcdef0123456789abcdef",  # an MLflow run id
        "https://mlflow.internal:5000/#/experiments/1",
        "sqlite:////srv/mlgate/state/mlflow.db",
        "A reference roc_auc every later change is compared against.",
        0.1,
        42,
    ],
)
def test_provenance_values_and_prose_are_not_secrets(value: object) -> None:
    assert secret_kind_of_value(value) is None


def test_find_secrets_reports_dotted_paths_in_nested_documents_without_values() -> None:
    document = {
        "model": {"params": {"max_depth": 4}},
        "data": {"source": "postgresql://u:pw@host/db", "api_key": "abc"},
        "notes": ["fine", "token ghp_" + "Zz09" * 9],
        "empty_password": "",
    }
    findings = find_secrets(document)
    assert findings == [
        SecretFinding("data.source", "url_with_password"),
        SecretFinding("data.api_key", "secret_key_name"),
        SecretFinding("notes.1", "github_token"),
    ]
    assert "pw" not in repr(findings)


def test_strip_secrets_drops_secret_entries_of_a_flat_mapping_and_names_them() -> None:
    clean, dropped = strip_secrets({"model.max_depth": "4", "auth.token": "t0p", "tracking": "https://u:p@h/x", "tokens_used": "1200"})
    assert clean == {"model.max_depth": "4", "tokens_used": "1200"}
    assert dropped == ["auth.token", "tracking"]


@pytest.mark.parametrize("random_part", ["UyjlrNxerSkxBxCVVWfbRfe-cyOhMKqFItWnHMTbPHY", "nOpFVanRgGmftBVYkaxVr-xXJNQtqVpduqymnkyhQzk"])
def test_an_mlgate_bearer_token_is_found_even_without_a_digit(random_part: str) -> None:
    # About one token in 1 500 that `mlgate token create` issues has no digit in its 43 random characters.
    assert secret_kind_of_value("mlgate_" + random_part) == "mlgate_token"
    assert secret_kind_of_value(f"reasoning that quotes mlgate_{random_part} by mistake") == "mlgate_token"


# Column names of public credit-scoring datasets and of bank feature stores: long, mixed-case, digits.
COLUMN_NAMES = [
    "NumberOfTime30-59DaysPastDueNotWorse",
    "NumberOfTime60-89DaysPastDueNotWorse",
    "TotalOutstandingBalanceAmount12M",
    "Debt_To_Income_Ratio_Last12Months",
    "customerLifetimeValueEstimate2024Q3",
    "MonthlyIncomeVerifiedByEmployer2023",
    "HasCoApplicantWithIncomeAbove50K",
    "CreditLimitUtilisation3MonthAvgPct",
    "CardTxnCnt90DaysOverLimit2",
    "MortgagePmtAmt12MthLTV95",
]


@pytest.mark.parametrize("name", COLUMN_NAMES)
def test_a_column_style_name_is_not_a_credential(name: str) -> None:
    assert secret_kind_of_value(name) is None
    assert strip_secrets({"feature_columns": f'["age", "{name}"]'}) == ({"feature_columns": f'["age", "{name}"]'}, [])


def test_random_strings_are_still_credentials_though_some_fall_into_camel_case() -> None:
    import random  # noqa: PLC0415
    import string  # noqa: PLC0415

    chosen = random.Random(20261202)
    alphabet = string.ascii_letters + string.digits
    tokens = ["".join(chosen.choice(alphabet) for _ in range(length)) for length in (32, 40, 64) for _ in range(2000)]
    mixed = [t for t in tokens if any(c.isupper() for c in t) and any(c.islower() for c in t) and any(c.isdigit() for c in t)]
    flagged_by_entropy = [t for t in mixed if _entropy_bits(t) >= MIN_RANDOM_ENTROPY_BITS]
    assert len(flagged_by_entropy) > 5900
    assert [t for t in flagged_by_entropy if secret_kind_of_value(t) is None] == []  # none reads as words

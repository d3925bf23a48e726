"""mlgate approvals commands (placeholder until implemented)."""


def register(subparsers) -> None:
    return None

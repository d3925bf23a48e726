"""mlgate data commands (placeholder until implemented)."""


def register(subparsers) -> None:
    return None

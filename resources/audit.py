"""audit resources (placeholder until implemented)."""


def register(server, ports) -> None:
    return None

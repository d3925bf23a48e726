"""`python -m training --run-dir DIR --stage features|fit`: the entrypoint the sandbox launcher runs,
once per stage, each in a sandbox of its own (training/__init__.py)."""

from training.runner import main

raise SystemExit(main())

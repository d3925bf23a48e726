"""`python -m training --run-dir DIR`: the entrypoint the sandbox launcher runs."""

from training.runner import main

raise SystemExit(main())

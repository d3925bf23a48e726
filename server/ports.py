"""The adapters a tool call may use, built once per server from the settings.

Tools receive this object as `CallContext.ports` and use only the attributes they need; each
attribute is an adapter implementing the small Protocol its tool module declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.server.subscriptions import InMemorySubscriptionBus

from server.acknowledgement_check import AcknowledgementCheck
from server.approvals import ApprovalStore, ConfigFiles, OverridesLog
from server.attached_runs import AttachedRuns
from server.audit.pr_vouch import PushedCommits
from server.audit.run_metrics import RunMetricsLedger
from server.audit.witness import chain_id, late_witness
from server.audit.workspace import open_chain
from server.redact import install_log_redaction
from server.cas import CasStore
from server.clock import SystemClock
from server.dataset_registry import DatasetRegistry
from server.detached_runs import DetachedRuns
from server.environment import Environment
from server.executors import build_executor
from server.files import private_dir
from server.git import GitRepo
from server.pr_providers import RunArtifacts, build_provider
from server.registry import ModelRegistry
from server.rundirs import RunDirs
from server.settings import Settings, policy_limits
from server.slots import RunSlots
from server.standards import StandardsSource
from server.test_queries import TestQueryLedger
from server.tracking import MlflowTracking, project_experiment
from server.worktree import Worktrees


@dataclass
class Ports:
    settings: Settings
    git: GitRepo
    audit: Any = None
    cas: Any = None
    standards: Any = None
    configs: Any = None
    approvals: Any = None
    overrides: Any = None
    tracking: Any = None
    sandbox: Any = None  # the executor of training children (server/executors.py)
    clock: Any = None
    rundirs: Any = None
    environment: Any = None
    slots: Any = None
    prs: Any = None  # the pull-request provider (server/pr_providers.py)
    run_artifacts: Any = None  # a run's JSON artifacts (server/pr_providers.RunArtifacts)
    registry: Any = None  # model registry and alias history (server/registry.py)
    worktrees: Any = None  # files at past commits, from the object store (server/worktree.py)
    test_queries: Any = None  # test-set query counts per dataset (server/test_queries.py)
    detached: Any = None  # detached runs: launch, live count, reconcile, cancel (server/detached_runs.py)
    attached: Any = None  # runs trained inside a live call of this process, cancellable (server/attached_runs.py)
    run_metrics: Any = None  # finished runs' metrics as the audit chain records them (server/audit/run_metrics.py)
    pushed_commits: Any = None  # the commits open_pr pushed, as the audit chain records them (server/audit/pr_vouch.py)
    events: Any = None  # the subscriptions bus every server built on these ports publishes to (resource updates)


def build_ports(settings: Settings) -> Ports:
    install_log_redaction()
    private_dir(settings.state_dir)
    git = GitRepo(settings.workspace)
    ports = Ports(settings=settings, git=git, clock=SystemClock())
    ports.standards = StandardsSource(git, settings.protected_ref, AcknowledgementCheck(git, settings.workspace, settings.state_dir))
    registry = DatasetRegistry(settings.state_dir, settings.audit_path)
    ports.cas = CasStore(settings.workspace, int(policy_limits()["datasets"]["max_files"]), registry)
    ports.configs = ConfigFiles(settings.workspace, settings.state_dir / "configs.lock")
    ports.approvals = ApprovalStore(settings.state_dir)
    ports.overrides = OverridesLog(settings.workspace, settings.audit_path)
    # adapters record the audit chain head as a witness (server/audit/witness.py); the chain is opened below
    witness = late_witness(ports)
    # orphans are looked for in this project's experiment only: a shared store holds other projects' runs
    project = lambda: project_experiment(ports.standards.policy_config()["standards"])  # noqa: E731
    ports.tracking = MlflowTracking.for_settings(settings, clock=ports.clock, witness=witness, chain=lambda: chain_id(settings.audit_path), project=project)
    ports.sandbox = build_executor(settings)  # server/executors.Executor: local bwrap or Ray
    ports.rundirs = RunDirs(settings.state_dir / "runs")
    ports.environment = Environment(settings.workspace)
    training = policy_limits()["training"]
    ports.slots = RunSlots(int(training["max_concurrent_runs"]), str(training["when_busy"]), state_dir=settings.state_dir)
    ports.audit = open_chain(settings, ports.clock)
    ports.run_metrics = RunMetricsLedger(settings.audit_path, ports.audit, ports.tracking)
    ports.pushed_commits = PushedCommits(settings.audit_path)
    ports.events = InMemorySubscriptionBus()
    ports.detached = DetachedRuns(settings, ports.audit, ports.tracking, ports.events)
    ports.slots.external = ports.detached.live_count  # a live detached worker holds a slot
    ports.attached = AttachedRuns()
    ports.prs = build_provider(settings, git, witness=witness)
    ports.run_artifacts = RunArtifacts(ports.tracking)
    ports.registry = ModelRegistry(ports.tracking, settings.state_dir / "registry", witness=witness)
    ports.worktrees = Worktrees(git)
    ports.test_queries = TestQueryLedger(settings.state_dir, ports.audit)
    return ports

"""The shipped Prometheus alerting rules (deploy/prometheus/rules.yml): valid, unit
tested with ``promtool test rules``, and written against metrics the worker serves.

promtool comes with Debian's ``prometheus`` package (``.ci/run`` installs it).
Without it these tests skip, unless DISPATCH_REQUIRE_SERVERS=1 (CI), where a
missing promtool is a failure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dispatch.kafka.metrics import WorkerMetrics
from tests.conftest import REQUIRE_SERVERS

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool"
                                         if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        message = "promtool not found (Debian package prometheus)"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_rules_are_valid() -> None:
    done = run("check", "rules", "rules.yml", cwd=RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = run("test", "rules", "rules_test.yml", cwd=RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_unit_tests_catch_a_wrong_rule(tmp_path: Path) -> None:
    """Summing the per-worker SLA gauges would double-count: the tests must notice."""
    rules = (RULES / "rules.yml").read_text(encoding="utf-8")
    wrong = rules.replace('max by (rule, area) (dispatch_sla_active_alerts{level="breach"})',
                          'sum by (rule, area) (dispatch_sla_active_alerts{level="breach"})')
    assert wrong != rules
    (tmp_path / "rules.yml").write_text(wrong, encoding="utf-8")
    (tmp_path / "rules_test.yml").write_text(
        (RULES / "rules_test.yml").read_text(encoding="utf-8"), encoding="utf-8")
    done = run("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "DispatchSlaBreaches" in done.stdout + done.stderr


def test_rules_use_metrics_the_worker_serves() -> None:
    served = {sample.name for metric in WorkerMetrics().registry.collect()
              for sample in metric.samples}
    rules = (RULES / "rules.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"\b(dispatch_[a-z_]+)\b", rules))
    assert used, "the rules name dispatch metrics"
    assert used <= served | {"dispatch_consumer_lag"}, used - served

"""checkov (security policies) on the rendered manifests of every scenario.

checkov lives in its own virtual environment, .venv-checkov (its pins clash with ours);
`make test` and `make chart` create it. No check may fail: the only exceptions are
`checkov.io/skip<N>` annotations the chart renders where a check does not fit, each with
its reason, and each listed in the chart README.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from _chart_support import CHART_DIR, SCENARIOS, Manifest, of_kind, render, scenario

REPO = Path(__file__).resolve().parents[3]
CHECKOV = Path(os.environ.get("ORDERLINE_CHECKOV") or REPO / ".venv-checkov" / "bin" / "checkov")
# Exceptions the chart may render, and the README must explain.
ALLOWED_SKIPS = {"CKV_K8S_8", "CKV_K8S_9", "CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}


def _checkov() -> Path:
    if CHECKOV.exists():
        return CHECKOV
    # `make test` and `make chart` install it and say so: there a missing checkov is an error.
    if os.environ.get("ORDERLINE_REQUIRE_CHECKOV") or os.environ.get("CI"):
        pytest.fail(f"{CHECKOV} is missing: `make test` installs it (rule .venv-checkov)")
    pytest.skip("checkov is not installed: run `make chart` (creates .venv-checkov)")


def _skips(manifest: Manifest) -> dict[str, str]:
    annotations = manifest["metadata"].get("annotations") or {}
    return dict(
        value.split("=", 1)
        for key, value in annotations.items()
        if key.startswith("checkov.io/skip")
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    checkov = _checkov()
    folder = tmp_path_factory.mktemp("rendered")
    for name in SCENARIOS:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump_all(scenario(name), sort_keys=False))
    result = subprocess.run(
        [
            str(checkov),
            *("--directory", str(folder), "--framework", "kubernetes"),
            *("--skip-download", "--quiet", "--compact", "--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    # Exit 1 means failed checks (reported below); anything else non-zero is checkov itself.
    assert result.returncode in (0, 1), result.stderr[-2000:]
    parsed = json.loads(result.stdout)
    reports = parsed if isinstance(parsed, list) else [parsed]
    (kubernetes,) = [r for r in reports if r.get("check_type") == "kubernetes"]
    return kubernetes  # type: ignore[no-any-return]


def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    assert summary["resource_count"] >= 100, summary
    assert summary["passed"] > 0, summary
    failed = sorted(
        {
            f"{c['check_id']} {c['check_name']} on {c['resource']} ({Path(c['file_path']).stem})"
            for c in report["results"]["failed_checks"]
        }
    )
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_checkov_exception_is_one_the_readme_justifies(name: str) -> None:
    readme = (CHART_DIR / "README.md").read_text()
    section = readme.split("## checkov", 1)[1].split("\n## ", 1)[0]
    for manifest in scenario(name):
        for check, reason in _skips(manifest).items():
            assert check in ALLOWED_SKIPS, (manifest["metadata"]["name"], check)
            assert len(reason.split()) >= 8, (check, reason)
            assert f"`{check}`" in section, f"{check} is skipped but not explained in README"
    for check in ALLOWED_SKIPS:
        assert re.search(rf"`{check}`", section), check


def test_exceptions_are_rendered_only_where_the_check_would_fail() -> None:
    """A digest and pull policy Always make the image exceptions go away."""
    pinned = {
        "defaults": {
            "image": {"digest": "sha256:" + "cd" * 32, "pullPolicy": "Always"},
            "auth": {"allowDevelopmentTokens": True},
        }
    }
    for manifest in of_kind(render(pinned), "Deployment").values():
        assert set(_skips(manifest)) == {"CKV_K8S_35"}
    for manifest in of_kind(scenario("minimal"), "Deployment").values():
        assert set(_skips(manifest)) == {"CKV_K8S_15", "CKV_K8S_35", "CKV_K8S_43"}
    # Only the helm test pod runs without probes.
    for manifest in scenario("minimal"):
        if {"CKV_K8S_8", "CKV_K8S_9"} & set(_skips(manifest)):
            assert manifest["kind"] == "Pod"
            assert manifest["metadata"]["annotations"]["helm.sh/hook"] == "test"


def test_a_missing_checkov_fails_the_run_where_make_requires_it(tmp_path: Path) -> None:
    """Inside `make test` no check may quietly turn into a skip."""
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"{Path(__file__)}::test_checkov_finds_no_failed_check",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={
            **os.environ,
            "ORDERLINE_CHECKOV": str(tmp_path / "no-checkov"),
            "ORDERLINE_REQUIRE_CHECKOV": "1",
        },
    )  # fmt: skip
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 error" in result.stdout and "is missing" in result.stdout, result.stdout[-2000:]

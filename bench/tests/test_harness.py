"""The harness's own arithmetic and parsing: fast, no processes started."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest

from bench import procstat, sqlite_wal
from bench.counters import count_spans
from bench.report import compare, fmt
from bench.stats import percentile, spread


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_spread_is_range_over_median() -> None:
    assert spread([9.0, 10.0, 11.0]) == pytest.approx(0.2)
    assert math.isnan(spread([1.0]))


def test_parse_stat_with_spaces_and_parentheses_in_the_name() -> None:
    fields = ["S", "41"] + ["0"] * 9 + ["120", "30", "7", "3"] + ["0"] * 30
    stat = procstat.parse_stat("1234 (py (worker) x) " + " ".join(fields))
    assert (stat.pid, stat.ppid, stat.utime, stat.stime) == (1234, 41, 120, 30)
    assert (stat.own_ticks, stat.tree_ticks) == (150, 160)


def _fake_proc(root: Path, pid: int, ppid: int, ticks: tuple[int, int, int, int]) -> None:
    (root / str(pid)).mkdir()
    fields = ["S", str(ppid)] + ["0"] * 9 + [str(t) for t in ticks] + ["0"] * 30
    (root / str(pid) / "stat").write_text(f"{pid} (p) " + " ".join(fields))


def test_tree_cpu_adds_descendants_and_reaped_children(tmp_path: Path) -> None:
    _fake_proc(tmp_path, 10, 1, (100, 0, 50, 0))  # root: own 100, reaped children 50
    _fake_proc(tmp_path, 11, 10, (20, 5, 0, 0))  # live child
    _fake_proc(tmp_path, 12, 11, (5, 0, 0, 0))  # grandchild
    _fake_proc(tmp_path, 20, 1, (999, 0, 0, 0))  # unrelated
    cpu = procstat.tree_cpu_seconds({"pg": 10, "gone": 99}, tmp_path)
    assert cpu["pg"] == pytest.approx(180 / procstat.CLOCK_TICKS)
    assert cpu["gone"] == 0.0


def test_rss_from_status() -> None:
    assert procstat.parse_rss_kib("Name:\tx\nVmRSS:\t  2048 kB\n") == 2048
    assert procstat.parse_rss_kib("Name:\tx\n") is None


def test_wal_index_counts_write_transactions(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (v)")
        before = sqlite_wal.write_transactions(db)
        assert before is not None
        for i in range(5):
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM t").fetchall()
        conn.execute("COMMIT")  # read-only: not counted
        after = sqlite_wal.write_transactions(db)
        assert after is not None
        assert sqlite_wal.delta(before, after) == 5
    finally:
        conn.close()
    assert sqlite_wal.delta(2**32 - 2, 3) == 5
    assert sqlite_wal.parse_ichange(b"\x00" * 48 + b"\x01" * 48) is None


def test_rpcs_are_server_spans_and_calls_to_untraced_servers(tmp_path: Path) -> None:
    lines = [
        '{"span_id":"a","parent_span_id":null,"kind":"CLIENT","name":"/s.A/Get",'
        '"service":"provisioning","start_ns":5}',
        '{"span_id":"b","parent_span_id":"a","kind":"SERVER","name":"/s.A/Get",'
        '"service":"intake","start_ns":6}',
        '{"span_id":"c","parent_span_id":null,"kind":"CLIENT","name":"/sim.D/Apply",'
        '"service":"provisioning","start_ns":7}',
        '{"span_id":"d","parent_span_id":null,"kind":"INTERNAL","name":"step",'
        '"service":"provisioning","start_ns":8}',
        '{"span_id":"e","parent_span_id":null,"kind":"SERVER","name":"/s.A/Get",'
        '"service":"intake","start_ns":50}',
        '{"trunc',
    ]
    (tmp_path / "x-1.jsonl").write_text("\n".join(lines))
    counts = count_spans(tmp_path, 0, 10)
    assert sum(counts.spans.values()) == 4
    assert counts.rpcs == {
        "intake /s.A/Get": 1,
        "provisioning /sim.D/Apply (to an untraced server)": 1,
    }


def test_compare_table_gives_medians_and_ratio() -> None:
    def run(cpu: float) -> dict[str, object]:
        return {"metrics": {"cpu": {"value": cpu, "unit": "ms", "better": "lower"}}}

    table = compare([run(200.0), run(220.0)], [run(40.0), run(44.0)])
    assert "| cpu | 210 ms | 42 ms | 0.20 |" in table
    assert fmt(None) == "not counted"


def test_falling_behind_needs_a_growing_backlog_and_missing_completions() -> None:
    from bench.run import _falling_behind

    assert not _falling_behind(9.0, grew=9, completed_per_s=5.0)  # a Poisson burst
    assert not _falling_behind(9.0, grew=30, completed_per_s=8.5)  # completions keep pace
    assert _falling_behind(9.0, grew=30, completed_per_s=6.0)
    assert _falling_behind(40.0, grew=45, completed_per_s=30.0)
    assert not _falling_behind(40.0, grew=35, completed_per_s=30.0)


def test_a_phase_whose_creates_were_refused_did_not_sustain_its_rate() -> None:
    from bench.load import Call
    from bench.run import _falling_behind, _refused_share

    # Shed creates never join the backlog: the backlog alone would call this phase kept up.
    assert _falling_behind(40.0, grew=0, completed_per_s=30.0, refused_share=0.25)
    assert not _falling_behind(40.0, grew=0, completed_per_s=40.0, refused_share=0.005)
    calls = [Call("p", 0.0, 0.0, code=code) for code in ["OK"] * 6 + ["RESOURCE_EXHAUSTED", ""]]
    assert _refused_share(calls) == 1 / 7  # the one still in flight is not counted
    assert _refused_share([]) == 0.0


def test_the_statement_micro_benchmark_runs_both_ways() -> None:
    """It measures nothing here (tests never time); it must keep running as the runtime
    changes, and it checks that both ways read the same rows before it times them."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "bench.statements", "--n", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    lines = out.strip().splitlines()
    assert lines[0].split()[0] == "statement"
    assert [line.split("  ")[0] for line in lines[1:]] == [
        "point select (22 columns)",
        "update by key (22 columns)",
        "IN-select of 8 ids",
    ]


async def test_jwt_identity_is_what_production_services_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--auth jwt`: each service's settings, read as the service reads them, make a complete
    identity without the development opt-in; its own token and the harness's verify against
    the JWKS with the roles they need; the development tokens are refused; intake reads its
    keys from the files."""
    import jwt as pyjwt

    from bench.identity import AUDIENCE, CLERK_PRINCIPAL, FRONT_END_PRINCIPAL, ISSUER, JwtIdentity
    from bench.stack import SERVICES
    from orderline_intake.bootstrap import customer_hasher, pii_cipher
    from orderline_intake.settings import IntakeSettings
    from orderline_provisioning.settings import ProvisioningSettings
    from orderline_runtime.errors import Unauthenticated
    from orderline_runtime.rpc.auth import configure_identity

    identity = JwtIdentity(tmp_path / "identity")
    assert (identity.pii_keys_file.stat().st_mode & 0o777) == 0o600
    assert (identity.hash_key_file.stat().st_mode & 0o777) == 0o600
    (jwk,) = json.loads(identity.jwks_file.read_text())["keys"]
    assert "d" not in jwk  # the public half only
    monkeypatch.delenv("ORDERLINE_ALLOW_DEVELOPMENT_TOKENS", raising=False)
    for svc in SERVICES:
        env = identity.service_env(svc)
        assert "ORDERLINE_ALLOW_DEVELOPMENT_TOKENS" not in env
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # Every service reads its identity through the runtime's settings; provisioning's class
        # stands for the four without intake's keys.
        settings = (IntakeSettings if svc == "intake" else ProvisioningSettings)()
        jwt_config = settings.jwt_config()
        assert jwt_config is not None and jwt_config.problem() is None
        configured = configure_identity(
            svc,
            tokens_file=None,
            allow_development_tokens=settings.allow_development_tokens,
            service_token=settings.service_token,
            calls_peers=True,
            jwt=jwt_config,
        )
        assert configured.problem is None and not configured.development
        verify = configured.authenticator.verify
        own = await verify(f"Bearer {settings.service_token}")
        assert (own.subject, sorted(own.roles)) == (svc, ["service"])
        with pytest.raises(Unauthenticated):
            await verify("Bearer dev-service")
    front_end = await verify(f"Bearer {identity.token(*FRONT_END_PRINCIPAL)}")
    clerk = await verify(f"Bearer {identity.token(*CLERK_PRINCIPAL)}")
    fleet = await verify(f"Bearer {identity.fleet_env()['ORDERLINE_SERVICE_TOKEN']}")
    assert sorted(front_end.roles) == sorted(fleet.roles) == ["service"]
    assert sorted(clerk.roles) == ["clerk"]
    for name, value in identity.service_env("intake").items():
        monkeypatch.setenv(name, value)
    intake = IntakeSettings()
    assert not intake.allow_development_tokens
    customer_hasher(intake)  # neither raises: the files are complete
    pii_cipher(intake)

    claims = pyjwt.decode(
        identity.token("x", ["clerk"], now=1000.0), options={"verify_signature": False}
    )
    assert claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "x",
        "iat": 1000,
        "nbf": 1000,
        "exp": 1000 + 12 * 3600,
        "roles": ["clerk"],
    }


def test_development_stack_keeps_todays_tokens(tmp_path: Path) -> None:
    from bench.load import CLERK, FRONT_END
    from bench.stack import BenchStack

    stack = BenchStack(tmp_path, tmp_path)
    assert stack.client_metadata() == (FRONT_END, CLERK)
    with pytest.raises(ValueError):
        BenchStack(tmp_path, tmp_path, auth="oidc")

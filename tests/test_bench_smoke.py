"""A smoke run of the benchmark (bench/run_bench.py) with tiny sizes: it must complete and
report every figure docs/benchmarks.md quotes. No timing is asserted: the benchmark
measures, this only keeps it working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bench._profile import side_by_side
from bench._runs import p50_ratio_interval

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("bare", "floor", "ours")
POOLS = ("orchestrator", "search", "llm")
PROCESSES = (*POOLS, "server", "providers", "client")
SMOKE = [
    "--concurrency", "1,2",
    "--deep-concurrency", "1",
    "--runs", "2",
    "--deep-runs", "1",
    "--rounds", "1",
    "--warmup", "1",
    "--searches", "2",
    "--hits", "2",
    "--provider-delay", "0.1",
    "--critical-searches", "2",
    "--critical-runs", "1",
    "--history-searches", "2",
    "--waiting", "3,2",
    "--profile-seconds", "1",
]  # fmt: skip


def number(value: Any, where: str) -> float:
    assert isinstance(value, int | float) and not isinstance(value, bool), f"{where}: {value!r}"
    return float(value)


def run_script(script: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python bench/SCRIPT ARGS...` from the repository root, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_benchmark_reports_every_figure(tmp_path: Path) -> None:
    saved = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TEMPORAL_")}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run_bench.py"),
            *SMOKE,
            "--profile",
            str(tmp_path / "profile"),
            "--save",
            str(saved),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"the benchmark failed:\n{done.stderr[-4000:]}"
    figures = json.loads(saved.read_text(encoding="utf-8"))

    comparison = figures["comparison"]
    assert set(comparison) == {"one round", "three rounds and a review"}
    for shape in comparison.values():
        for level in shape["levels"]:
            where = f"{shape['rounds']} rounds, concurrency {level['concurrency']}"
            for kind in KINDS:
                s = level["kinds"][kind]
                assert s["runs"] >= 1
                for key in ("p50", "p95"):
                    number(s["latency_seconds"][key], f"{where}: {kind} {key}")
                number(s["throughput_runs_per_second"], f"{where}: {kind} throughput")
                for process in PROCESSES:
                    number(s["cpu_seconds_per_run"][process], f"{where}: {kind} {process} CPU")
                assert number(s["history_bytes_per_run"], where) > 0
                assert number(s["history_events_per_run"], where) > 0
                assert s["searches_per_run"]["min"] == shape["searches"]
            low, high = level["ours_over_floor_p50_interval"]
            assert 0 < number(low, where) <= number(high, where)
            assert len(level["ours_over_floor_p50_by_round"]) == 1  # --rounds 1
            for other in ("floor", "bare"):
                for name, value in level[f"ours_over_{other}"].items():
                    number(value, f"{where}: ours/{other} {name}")
            # The floor makes the calls ours make; bare makes none.
            assert level["same_provider_calls"], level["kinds"]["floor"]["provider_calls_per_run"]
            assert level["kinds"]["bare"]["provider_calls_per_run"] == {}

    critical = figures["critical_path"]
    for name, shape in critical["shapes"].items():
        for kind in KINDS:
            number(shape["kinds"][kind]["end_to_end_seconds"], f"{name}: {kind}")
        for kind in ("floor", "ours"):
            number(shape["kinds"][kind]["over_critical_path"], f"{name}: {kind} ratio")
    for kind in KINDS:
        number(critical["tax_per_step_ms"][kind], f"tax per step of {kind}")

    recovery = figures["recovery"]
    number(recovery["kill_to_report_seconds"], "recovery")
    number(recovery["bound_seconds"], "recovery bound")
    assert recovery["outcome"] == "completed"
    assert recovery["searches_succeeded"] == 2

    for kind in KINDS:
        assert figures["history"]["kinds"][kind]["history_bytes"] > 0

    # Each count of waiting runs, in order, each from a freshly started orchestrator.
    assert [waiting["runs"] for waiting in figures["waiting"]] == [3, 2]
    for waiting in figures["waiting"]:
        assert waiting["completed"] == waiting["runs"]
        for key in ("idle", "waiting", "after"):
            assert number(waiting[f"orchestrator_rss_{key}_bytes"], key) > 0
        number(waiting["approve_to_all_complete_seconds"], "approve to complete")

    profile = figures["profile"]
    for pool in POOLS:
        for kind in ("floor", "ours"):
            summary = profile["kinds"][kind]["pools"][pool]
            assert summary["samples"] > 0, f"py-spy took no sample of the {kind} {pool} pool"
            assert summary["self"] and summary["self_by_area"]
        # Each area's time per run, both kinds side by side: the rows add up to the total.
        *areas, (name, floor, ours, extra) = profile["ms_per_run_by_area"][pool]
        assert name == "total" and areas, pool
        assert floor == pytest.approx(sum(row[1] for row in areas), abs=0.1 * len(areas))
        assert ours == pytest.approx(sum(row[2] for row in areas), abs=0.1 * len(areas))
        assert extra == pytest.approx(ours - floor, abs=0.11)
        assert [row[3] for row in areas] == sorted((row[3] for row in areas), reverse=True)

    # The text report renders every section.
    for heading in ("== one round", "== three rounds", "== profile", "== critical path"):
        assert heading in done.stdout
    for heading in ("== recovery", "== history", "runs waiting for a plan approval"):
        assert heading in done.stdout


def test_the_profile_sets_each_area_beside_the_floor() -> None:
    """An area only one kind spent time in still gets a row; the largest extra comes first,
    the total last."""
    rows = side_by_side(
        {"floor": {"HTTP": 27.2, "event loop": 21.1}, "ours": {"HTTP": 44.1, "store": 12.9}}
    )
    assert rows == [
        ["HTTP", 27.2, 44.1, 16.9],
        ["store", 0.0, 12.9, 12.9],
        ["event loop", 21.1, 0.0, -21.1],
        ["total", 48.3, 57.0, 8.7],
    ]


def test_the_serial_ratio_interval_holds_what_the_runs_allow() -> None:
    """The bootstrap's interval of ours' p50 over the floor's: exact when every run took the
    same time, around 1 when both kinds drew from the same times, reproducible."""
    assert p50_ratio_interval([0.4] * 9, [0.2] * 9) == (2.0, 2.0)
    same = [0.300 + 0.002 * i for i in range(20)]
    low, high = p50_ratio_interval(same, list(reversed(same)))
    assert low < 1.0 < high and high - low < 0.1
    assert p50_ratio_interval(same, same[::2]) == p50_ratio_interval(same, same[::2])


def test_the_store_floor_reports_both_ways(tmp_path: Path) -> None:
    done = run_script(
        "store_floor.py",
        *("--runs", "2", "--rounds", "1", "--floor-ms", "100", "--dir", str(tmp_path)),
        timeout=120,
    )
    assert done.returncode == 0, f"store_floor failed:\n{done.stderr[-4000:]}"
    lines = done.stdout.splitlines()
    assert lines[0] == "per run: 72 writes (35 flushed), 71 reads; 1 x 2 runs a way, alternating"
    for way in ("system calls only", "ours (Records, FileObjectStore, sealed)"):
        [line] = [line for line in lines if line.startswith(way)]
        least, median, most, share = (float(x) for x in line[len(way) :].split())
        assert 0 < least <= median <= most, line
        assert share == pytest.approx(median / 10, abs=0.01), line
    assert list(tmp_path.iterdir()) == [], "the store floor left files behind"


@pytest.mark.parametrize(
    "command",
    [
        ("store_floor.py", "--runs", "0"),
        ("hops.py", "--steps", "0"),
        ("step_cpu.py", "--calls", "0"),
        ("step_cpu.py", "--dir", "/no/such/folder"),
        ("run_bench.py", "--profile-concurrency", "0"),
    ],
)
def test_the_bench_tools_refuse_bad_options_in_one_line(command: tuple[str, ...]) -> None:
    done = run_script(*command, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and not done.stdout, done


def test_the_step_probe_reports_both_servers() -> None:
    """`bench/hops.py` starts the embedded dev server and the same one with the default
    queue read rates, and reports a time per step and a task wait for each."""
    done = run_script(
        "hops.py", *("--steps", "2", "--runs", "1", "--warmup", "0", "--rounds", "1", "--json")
    )
    assert done.returncode == 0, f"hops failed:\n{done.stderr[-4000:]}"
    rows = json.loads(done.stdout)
    assert [row["server"] for row in rows] == ["embedded", "default read rates"]
    for row in rows:
        for figure in ("execution_ms", "step_ms", "workflow_task_wait_ms"):
            assert number(row[figure], f"{row['server']} {figure}") >= 0
        assert row["step_ms"] == pytest.approx(row["execution_ms"] / 2, abs=0.1)


def test_the_step_cpu_probe_reports_every_kind(tmp_path: Path) -> None:
    """`bench/step_cpu.py` times a search and a plan call three ways and cleans up."""
    done = run_script(
        "step_cpu.py", *("--calls", "2", "--rounds", "1", "--dir", str(tmp_path), "--json")
    )
    assert done.returncode == 0, f"step_cpu failed:\n{done.stderr[-4000:]}"
    figures = json.loads(done.stdout)
    assert set(figures) == {"search", "plan"}
    for step, kinds in figures.items():
        assert list(kinds) == ["floor", "library", "ours"], step
        for kind, row in kinds.items():
            least, median, most = (row[f] for f in ("least_ms", "median_ms", "most_ms"))
            assert 0 < number(least, f"{step} {kind}") <= median <= most, row
            assert number(row["loop_thread_median_ms"], f"{step} {kind}") > 0, row
    assert list(tmp_path.iterdir()) == [], "step_cpu left files behind"

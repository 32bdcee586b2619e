"""The benchmark's figures as plain-text tables."""

from __future__ import annotations

from typing import Any

from bench._stack import KINDS, POOLS

_MIB = 2**20


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / _MIB:.0f} MiB"


def _calls(calls: dict[str, float]) -> str:
    return " ".join(f"{k} {v:g}" for k, v in calls.items()) or "none"


def _comparison(name: str, shape: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"== {name}: {shape['searches_per_round']} searches a round of {shape['hits_per_search']} "
        f"hits, {shape['rounds']} round(s), review {'yes' if shape['review'] else 'no'}; "
        f"{shape['model_calls']} model calls, {shape['sequential_steps']} sequential steps",
    ]
    for level in shape["levels"]:
        lines += [
            "",
            f"concurrency {level['concurrency']}, {level['runs_per_kind']} runs per kind "
            f"(load average before: {level['load_average_before']})",
            f"{'kind':<6}{'p50 s':>8}{'p95 s':>8}{'runs/s':>8}{'worker CPU ms/run':>19}"
            f"{'orch':>7}{'search':>8}{'llm':>7}{'server':>8}{'provid.':>9}{'client':>8}"
            f"{'hist KiB':>10}{'events':>8}",
        ]
        for kind in KINDS:
            s = level["kinds"][kind]
            cpu = s["cpu_seconds_per_run"]
            ms = {k: 1000 * v for k, v in cpu.items()}
            lines.append(
                f"{kind:<6}{s['latency_seconds']['p50']:>8.3f}{s['latency_seconds']['p95']:>8.3f}"
                f"{s['throughput_runs_per_second']:>8.2f}"
                f"{1000 * s['worker_cpu_seconds_per_run']:>19.1f}"
                f"{ms.get('orchestrator', 0):>7.1f}{ms.get('search', 0):>8.1f}"
                f"{ms.get('llm', 0):>7.1f}{ms.get('server', 0):>8.1f}"
                f"{ms.get('providers', 0):>9.1f}{ms.get('client', 0):>8.1f}"
                f"{s['history_bytes_per_run'] / 1024:>10.1f}{s['history_events_per_run']:>8.0f}"
            )
        for other in ("floor", "bare"):
            r = level[f"ours_over_{other}"]
            lines.append(
                f"ours/{other}: p50 x{_num(r['p50_latency'])}, p95 x{_num(r['p95_latency'])}, "
                f"throughput x{_num(r['throughput'])}, "
                f"worker CPU x{_num(r['worker_cpu_per_run'])}, "
                f"history x{_num(r['history_bytes_per_run'])}"
            )
        low, high = level["ours_over_floor_p50_interval"]
        lines.append(
            "ours/floor p50 by round: "
            + ", ".join(f"x{_num(r)}" for r in level["ours_over_floor_p50_by_round"])
            + f"; 90 % bootstrap interval x{_num(low)} to x{_num(high)}"
        )
        floor_calls = level["kinds"]["floor"]["provider_calls_per_run"]
        ours_calls = level["kinds"]["ours"]["provider_calls_per_run"]
        same = "the same" if level["same_provider_calls"] else "NOT the same"
        lines.append(
            f"provider calls per run, {same}: floor {_calls(floor_calls)}; "
            f"ours {_calls(ours_calls)}"
        )
        outside = [level["kinds"][k]["other_processes_cpu_cores"] for k in KINDS]
        if None not in outside:
            lines.append(
                "other processes on the machine meanwhile: "
                + ", ".join(f"{k} {v:.2f} cores" for k, v in zip(KINDS, outside, strict=True))
            )
        failed = level["kinds"]["ours"]["failed_searches"]
        if failed:
            lines.append(f"note: {failed} of our searches failed after their retries")
    return lines


def _critical(cp: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"== critical path: every model call and /search answered after "
        f"{cp['provider_delay_seconds']:g} s, one run at a time, median of {cp['runs']} "
        f"(load average before: {cp['load_average_before']})",
    ]
    for name, shape in cp["shapes"].items():
        lines += [
            f"{name} ({shape['sequential_steps']} sequential steps)",
            f"  {'kind':<6}{'end to end s':>14}{'critical path s':>17}{'ratio':>8}{'beyond s':>10}",
        ]
        for kind in KINDS:
            row = shape["kinds"][kind]
            lines.append(
                f"  {kind:<6}{row['end_to_end_seconds']:>14.3f}"
                f"{row['critical_path_seconds']:>17.1f}"
                f"{_num(row['over_critical_path'], 3):>8}{row['beyond_provider_seconds']:>10.3f}"
            )
    tax = cp["tax_per_step_ms"]
    lines.append(
        f"scheduling tax per extra sequential step ({cp['extra_sequential_steps']} steps): "
        + ", ".join(f"{k} {tax[k]:.1f} ms" for k in KINDS)
        + f"; ours minus bare {cp['ours_tax_minus_bare_ms']:.1f} ms"
    )
    return lines


def _recovery(r: dict[str, Any]) -> list[str]:
    return [
        "",
        f"== recovery: our search worker SIGKILLed {r['killed_after_start_seconds']:.2f} s into "
        f"a run, {r['searches']} searches in flight, providers answering after "
        f"{r['provider_delay_seconds']:g} s",
        f"kill to report {r['kill_to_report_seconds']:.2f} s; bound {r['bound_seconds']:.1f} s "
        f"(heartbeat timeout {r['heartbeat_timeout_seconds']:g} + remaining provider time "
        f"{r['remaining_provider_seconds']:g} + 2): {'met' if r['met'] else 'NOT met'}",
        f"from the history: the killed searches' next attempts started "
        f"{_num(r['kill_to_next_attempts_seconds'])} s after the kill (retry backoff "
        f"{r['retry_initial_interval_seconds']:g} s), the run completed "
        f"{_num(r['next_attempts_to_completed_seconds'])} s after that",
        f"restarted worker ready after {r['restarted_worker_ready_seconds']:.2f} s; outcome "
        f"{r['outcome']}, {r['searches_succeeded']} searches succeeded, "
        f"{r['searches_failed']} failed; {r['search_calls']} /search calls, "
        f"{r['model_calls']} model calls",
    ]


def _history(h: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"== history: one run of {h['searches']} searches of {h['hits_per_search']} hits over "
        f"{h['page_chars']}-character pages",
    ]
    for kind in KINDS:
        row = h["kinds"][kind]
        lines.append(
            f"{kind:<6}{row['history_bytes']:>10,} bytes ({row['history_bytes'] / 1024:.1f} KiB), "
            f"{row['history_events']} events, {row['searches']} searches"
        )
    return lines


def _waiting(w: dict[str, Any]) -> list[str]:
    return [
        "",
        f"== {w['runs']} runs waiting for a plan approval (load average before: "
        f"{w['load_average_before']})",
        f"started in {w['start_seconds']:.2f} s, all waiting after "
        f"{w['all_waiting_seconds']:.2f} s",
        f"orchestrator RSS: idle {_mib(w['orchestrator_rss_idle_bytes'])}, with all waiting "
        f"{_mib(w['orchestrator_rss_waiting_bytes'])}, after "
        f"{_mib(w['orchestrator_rss_after_bytes'])}"
        f"; server RSS idle {_mib(w['server_rss_idle_bytes'])}, waiting "
        f"{_mib(w['server_rss_waiting_bytes'])}",
        f"all approved in {w['approve_all_seconds']:.2f} s, all complete "
        f"{w['approve_to_all_complete_seconds']:.2f} s after the first approval "
        f"({w['completed']} completed)",
        f"orchestrator CPU per run: {1000 * w['orchestrator_cpu_seconds_per_run_to_waiting']:.1f}"
        f" ms to its wait, {1000 * w['orchestrator_cpu_seconds_per_run_approved']:.1f} ms from "
        "its approval to its report",
    ]


def _profile(p: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"== profile: py-spy at {p['rate_hz']} Hz for {p['seconds']:g} s a kind, runs at "
        f"concurrency {p['concurrency']} (floor {p['kinds']['floor']['runs']} runs, ours "
        f"{p['kinds']['ours']['runs']})",
    ]
    for pool in POOLS:
        s = p["kinds"]["ours"]["pools"][pool]
        floor = p["kinds"]["floor"]["pools"][pool]
        lines.append(
            f"{pool}: ours {s['samples']} busy samples, "
            f"{1000 * s['cpu_seconds_per_run']:.1f} ms CPU per run "
            f"(floor {1000 * floor['cpu_seconds_per_run']:.1f})"
        )
        lines.append(f"  {'area, sampled ms per run':<42} {'floor':>7} {'ours':>7} {'extra':>7}")
        lines += [
            f"  {area:<42} {f:>7.1f} {o:>7.1f} {d:>+7.1f}"
            for area, f, o, d in p["ms_per_run_by_area"][pool]
        ]
        lines.append(
            "  ours' areas (anywhere on the stack): "
            + ", ".join(f"{n} {v}%" for n, v in s["inclusive_by_area"][:10])
        )
        lines += [f"  {v:>5}%  {n}" for n, v in s["self"][:10]]
    return lines


def render(figures: dict[str, Any]) -> str:
    info = figures["machine"]
    lines = [
        f"{info.get('cpus')} CPUs ({info.get('cpu_model')}), {info.get('memory_gib')} GiB, "
        f"Python {info['python']}, temporalio {info.get('temporalio')}, "
        f"{info.get('temporal_cli', 'temporal CLI ?')}",
        f"server: {figures['config']['server']}; ours with "
        + ", ".join(k for k, on in figures["config"]["features_of_ours"].items() if on),
        f"load average (1, 5, 15 min) before: {info.get('load_average_before')}, after: "
        f"{figures.get('load_average_after')}",
    ]
    for name, shape in figures.get("comparison", {}).items():
        lines += _comparison(name, shape)
    if "profile" in figures:
        lines += _profile(figures["profile"])
    if "critical_path" in figures:
        lines += _critical(figures["critical_path"])
    if "recovery" in figures:
        lines += _recovery(figures["recovery"])
    if "history" in figures:
        lines += _history(figures["history"])
    for waited in figures.get("waiting", []):
        lines += _waiting(waited)
    return "\n".join(lines)

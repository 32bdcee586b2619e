"""The benchmark's providers: the test suite's Tavily- and OpenAI-speaking servers in a process
of their own, with a control endpoint.

The floor's and our workers call these over real HTTP, so both pay for the same requests,
and the servers' own CPU is counted apart from theirs. The model plans exactly the number of
searches a request allows (queries made from the question, so every run searches its own),
asks for one more round after each reflection, sends a draft back once, and writes a short
report; it tells the steps apart by the structured output each request asks for, so the
floor's plain requests and our agents' requests get the same answers.

The control endpoint (127.0.0.1, JSON):

    POST /settings {"model_delay": s, "search_delay": s, "extract_delay": s, "page_chars": n}
        every model request, /search and /extract answered after that many seconds;
        page_chars sets the length of every page /extract serves (null: the fake's own)
    GET /calls  {"search": {"received": n, "answered": n}, "extract": ..., "plan": ...}
        requests so far, by endpoint or model step

Calls are counted and forgotten as they are answered, so a long invocation does not keep
every request body. The keys the servers accept come from BENCH_TAVILY_KEY and
BENCH_OPENAI_KEY. When ready it prints one line, `providers ready {json}`, with the three
base URLs.

    python bench/providers.py
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.durability import (
    CLARIFY_STEP,
    PLAN_STEP,
    REFLECT_STEP,
    REPORT_ANSWER,
    REPORT_BODY,
    REPORT_SUMMARY,
    REVIEW_STEP,
    REVISE_STEP,
    TRIAGE_STEP,
    model_prompt,
    model_step,
)
from tests.helpers.fakes.faultserver import FakeProviderServer, Fault
from tests.helpers.fakes.openai_server import FakeOpenAIServer
from tests.helpers.fakes.tavily_server import FakeTavilyServer

READY = "providers ready"
PRUNE_SECONDS = 0.5
FOREVER = 10**12
REVIEW_NOTE = "Say what each source adds to the answer."


def topic(facts: dict[str, Any]) -> str:
    """What a run's queries are made from: its question, which names the run."""
    return " ".join(str(facts.get("question", "research")).split())[:300]


def answer(body: dict[str, Any]) -> str:
    """The model's answer to any step of a research run."""
    step = model_step(body)
    facts = model_prompt(body)
    if step == PLAN_STEP:
        count = max(1, int(facts.get("max_searches", 1)))
        searches = [
            {"query": f"{topic(facts)} aspect {n}", "reason": f"covers aspect {n}"}
            for n in range(1, count + 1)
        ]
        return json.dumps({"searches": searches})
    if step == REFLECT_STEP:
        number = int(facts.get("round", 1)) + 1
        count = max(1, int(facts.get("max_queries", 1)))
        follow_ups = [
            {"query": f"{topic(facts)} round {number} aspect {n}", "reason": f"gap {n}"}
            for n in range(1, count + 1)
        ]
        return json.dumps(
            {
                "done": False,
                "reason": "gaps remain",
                "gaps": [f"gap {n}" for n in range(1, count + 1)],
                "follow_up_searches": follow_ups,
            }
        )
    if step == REVIEW_STEP:
        return json.dumps({"approved": False, "notes": [REVIEW_NOTE]})
    if step == REVISE_STEP:
        return json.dumps(
            {
                "report_markdown": REPORT_BODY,
                "summary": REPORT_SUMMARY,
                "follow_up_questions": [],
                "changes": [REVIEW_NOTE],
            }
        )
    if step == TRIAGE_STEP:
        return json.dumps({"needs_clarification": False, "reason": "the question is clear"})
    if step == CLARIFY_STEP:
        return json.dumps({"questions": ["Which aspect matters most?"]})
    return REPORT_ANSWER


def _path_is(path: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda requested, _body: requested == path


class Providers:
    """Both fakes, their delays, and counts of the calls they answered."""

    def __init__(self, tavily_key: str, openai_key: str) -> None:
        self.tavily = FakeTavilyServer(api_key=tavily_key).start()
        self.model = FakeOpenAIServer(api_key=openai_key, responder=answer)
        self.model.start()
        self._lock = threading.Lock()
        self._received: Counter[str] = Counter()
        self._answered: Counter[str] = Counter()

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply a POST /settings document."""
        delays = {
            "search": float(settings.get("search_delay", 0.0)),
            "extract": float(settings.get("extract_delay", 0.0)),
        }
        self.tavily.clear_faults()
        for endpoint, delay in delays.items():
            if delay > 0:
                self.tavily.inject(
                    Fault(delay=delay, times=FOREVER, match=_path_is(f"/{endpoint}"))
                )
        self.model.clear_faults()
        model_delay = float(settings.get("model_delay", 0.0))
        if model_delay > 0:
            self.model.inject(Fault(delay=model_delay, times=FOREVER))
        page_chars = settings.get("page_chars")
        self.tavily.page_chars = int(page_chars) if page_chars else None

    def prune(self) -> None:
        """Count the calls answered since the last time, and forget them."""
        for fake in (self.tavily, self.model):
            with fake._lock:
                done = [c for c in fake.calls if c.answered_at is not None or c.outcome != "ok"]
                fake.calls[:] = [
                    c for c in fake.calls if c.answered_at is None and c.outcome == "ok"
                ]
            with self._lock:
                for call in done:
                    kind = self._kind(fake, call.path, call.body)
                    self._received[kind] += 1
                    self._answered[kind] += call.answered_at is not None
        with self.model._answers_lock:
            self.model.answers.clear()

    def counts(self) -> dict[str, dict[str, int]]:
        """Calls received and answered so far, by endpoint or model step."""
        self.prune()
        received = Counter(self._received)
        for fake in (self.tavily, self.model):
            with fake._lock:
                pending = list(fake.calls)
            for call in pending:
                received[self._kind(fake, call.path, call.body)] += 1
        with self._lock:
            return {
                kind: {"received": received[kind], "answered": self._answered[kind]}
                for kind in sorted(received)
            }

    @staticmethod
    def _kind(fake: FakeProviderServer, path: str, body: dict[str, Any]) -> str:
        if isinstance(fake, FakeTavilyServer):
            return path.strip("/") or "tavily"
        return model_step(body) or "model"


def control_server(providers: Providers) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/calls":
                self._send(404, {"error": "not found"})
                return
            self._send(200, providers.counts())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                settings = json.loads(self.rfile.read(length) or b"{}")
                providers.configure(settings)
            except (ValueError, TypeError) as err:
                self._send(400, {"error": str(err)})
                return
            self._send(200, {"ok": True})

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


def main() -> int:
    tavily_key = os.environ.get("BENCH_TAVILY_KEY", "")
    openai_key = os.environ.get("BENCH_OPENAI_KEY", "")
    if not tavily_key or not openai_key:
        print("error: BENCH_TAVILY_KEY and BENCH_OPENAI_KEY must be set", file=sys.stderr)
        return 2
    providers = Providers(tavily_key, openai_key)
    control = control_server(providers)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    urls = {
        "tavily": providers.tavily.base_url,
        "openai": providers.model.api_base_url,
        "control": f"http://127.0.0.1:{control.server_address[1]}",
    }
    print(f"{READY} {json.dumps(urls)}", flush=True)
    # Until SIGTERM (the default action ends the process, and every server thread with it).
    while True:
        time.sleep(PRUNE_SECONDS)
        providers.prune()


if __name__ == "__main__":
    sys.exit(main())

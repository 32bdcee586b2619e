// The research page: plain DOM code over the HTTP API, no build step. Progress comes from
// the run's Server-Sent Events, read with fetch so the API key can travel in a header
// (EventSource cannot send one).
"use strict";

const KEY_STORE = "deep-research-api-key";
const $ = (id) => document.getElementById(id);
// The open run: {id, stream: AbortController, signOffs: how many sign-off decisions this
// page has had accepted, seen: how many the last status showed}.
let current = null;

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const answer = await fetch(path, init);
  const type = answer.headers.get("content-type") || "";
  const data = type.includes("json") ? await answer.json() : await answer.text();
  if (!answer.ok) {
    const detail = data && data.detail ? data.detail : `${answer.status} ${answer.statusText}`;
    throw new Error(detail);
  }
  return data;
}

function showError(where, err) {
  $(where).textContent = err ? String(err.message || err) : "";
}

function say(text) {
  $("progress").textContent = text;
}

// -- starting ------------------------------------------------------------------------------

// A number field's value, or undefined when it is empty (the request then leaves the field
// out and the workflow's default applies); `scale` turns minutes into seconds.
function optionalNumber(id, scale = 1) {
  const text = $(id).value.trim();
  return text === "" ? undefined : Number(text) * scale;
}

function withoutUnset(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

function requestFromForm() {
  const budget = withoutUnset({
    max_total_tokens: optionalNumber("max-total-tokens"),
    max_cost_usd: optionalNumber("max-cost-usd"),
    max_searches_total: optionalNumber("max-searches-total"),
    max_wall_seconds: optionalNumber("max-wall-minutes", 60),
  });
  return withoutUnset({
    question: $("question").value,
    max_searches: Number($("max-searches").value),
    results_per_search: Number($("results-per-search").value),
    clarify: $("clarify").checked,
    max_clarifying_questions: Number($("max-clarifying-questions").value),
    approve_plan: $("approve-plan").checked,
    max_rounds: Number($("max-rounds").value),
    approve_report: $("approve-report").checked,
    max_review_rounds: Number($("max-review-rounds").value),
    priority: Number($("priority").value),
    budget: Object.keys(budget).length ? budget : undefined,
    clarification_timeout_seconds: optionalNumber("clarification-minutes", 60),
    approval_timeout_seconds: optionalNumber("approval-minutes", 60),
    on_approval_timeout: $("on-approval-timeout").value,
    report_review_timeout_seconds: optionalNumber("report-review-minutes", 60),
    on_report_review_timeout: $("on-report-review-timeout").value,
  });
}

async function startRun(event) {
  event.preventDefault();
  showError("form-error");
  const request = requestFromForm();
  try {
    const run = await api("POST", "/v1/research", request);
    openRun(run.id, request.question);
    refreshRuns();
  } catch (err) {
    showError("form-error", err);
  }
}

// -- one run -------------------------------------------------------------------------------

function openRun(id, question) {
  if (current) current.stream.abort();
  current = { id, stream: new AbortController(), signOffs: 0, seen: 0 };
  $("run").hidden = false;
  $("run-id").textContent = id;
  $("run-question").textContent = question || "";
  $("phase").textContent = "starting";
  $("searches").replaceChildren();
  $("answers-form").hidden = true;
  $("plan-form").hidden = true;
  $("draft-form").hidden = true;
  $("report-section").hidden = true;
  $("report").replaceChildren();
  showError("run-error");
  setSteering(true);
  $("run-heading").focus();
  follow(current);
}

async function follow(run) {
  try {
    const answer = await fetch(`/v1/research/${encodeURIComponent(run.id)}/events`, {
      headers: headers({ Accept: "text/event-stream" }),
      signal: run.stream.signal,
    });
    if (!answer.ok) throw new Error((await answer.json()).detail);
    const reader = answer.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        dispatch(run, block);
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") showError("run-error", err);
  }
}

function dispatch(run, block) {
  let type = "message";
  let data = "";
  for (const line of block.split(/\r?\n/)) {
    if (line.startsWith("event:")) type = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data || run !== current) return;
  const event = JSON.parse(data);
  const handler = HANDLERS[type];
  if (handler) handler(event);
}

const HANDLERS = {
  status(event) {
    const status = event.status;
    $("phase").textContent = status.phase.replaceAll("_", " ");
    $("paused-flag").hidden = !status.paused;
    if (!status.questions_pending.length) $("answers-form").hidden = true;
    if (!status.awaiting_approval) $("plan-form").hidden = true;
    // A status read before a decision reached the run still shows the old draft waiting:
    // the form opens again only for a draft asked about after the page's last decision.
    current.seen = status.review.filter((r) => r.by === "person").length;
    const asked = status.awaiting_report_review && current.seen >= current.signOffs;
    if (asked && $("draft-form").hidden) {
      $("draft").textContent = status.draft_report;
      $("draft-number").textContent =
        current.seen === 0 ? "The first draft." : `Draft ${current.seen + 1}, revised after your notes.`;
      $("draft-form").hidden = false;
      $("draft-heading").focus();
    } else if (!asked) {
      $("draft-form").hidden = true;
    }
    if (status.question) $("run-question").textContent = status.question;
  },
  phase(event) {
    say(`The run is now ${event.phase.replaceAll("_", " ")}.`);
  },
  questions(event) {
    const fields = event.questions.map((q) => {
      const id = `answer-${q.index}`;
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = q.question;
      const input = document.createElement("input");
      input.id = id;
      input.type = "text";
      input.dataset.index = q.index;
      input.maxLength = 2000;
      return [label, input];
    });
    $("answers-fields").replaceChildren(...fields.flat());
    $("answers-form").hidden = false;
    $("answers-heading").focus();
  },
  plan(event) {
    $("plan-queries").replaceChildren(...event.queries.map((q, n) => planItem(q.query, n + 1)));
    $("plan-form").hidden = false;
    $("plan-heading").focus();
  },
  search_started(event) {
    const item = document.createElement("li");
    item.id = `search-${event.search}`;
    item.dataset.outcome = "running";
    item.textContent = `${event.query}: running`;
    $("searches").append(item);
  },
  search_finished(event) {
    const item = $(`search-${event.search}`) || document.createElement("li");
    item.dataset.outcome = event.outcome;
    const what = event.outcome === "ok" ? `${event.hits} results` : `${event.outcome}: ${event.message || ""}`;
    item.textContent = `${event.query}: ${what}`;
    if (!item.parentNode) $("searches").append(item);
  },
  done(event) {
    setSteering(false);
    $("phase").textContent = event.outcome ? event.outcome.replaceAll("_", " ") : event.execution_status;
    if (event.execution_status === "completed") loadReport(current.id);
    else showError("run-error", event.message || `the run ${event.execution_status}`);
    refreshRuns();
  },
  error(event) {
    showError("run-error", event.detail);
  },
};

// Each query's field is named by its number, so a screen reader tells them apart.
function planItem(text, number) {
  const item = document.createElement("li");
  const input = document.createElement("input");
  input.type = "text";
  input.value = text;
  input.maxLength = 400;
  input.setAttribute("aria-label", `Search query ${number}`);
  item.append(input);
  return item;
}

function setSteering(enabled) {
  for (const id of ["pause", "resume", "finish", "cancel"]) $(id).disabled = !enabled;
}

async function steer(path, body, after) {
  showError("run-error");
  try {
    const result = await api("POST", `/v1/research/${encodeURIComponent(current.id)}/${path}`, body);
    if (after) after(result);
  } catch (err) {
    showError("run-error", err);
  }
}

function sendAnswers(event) {
  event.preventDefault();
  const answers = [...$("answers-fields").querySelectorAll("input")].map((input) => ({
    index: Number(input.dataset.index),
    answer: input.value.trim() || "no preference",
  }));
  steer("answers", { answers }, () => {
    $("answers-form").hidden = true;
    // The button that had the focus is gone: keep the keyboard in the run.
    $("run-heading").focus();
    say("Answers sent.");
  });
}

function review(body) {
  steer("plan-review", body, (result) => {
    $("plan-form").hidden = true;
    say(`Plan ${result.decision}: ${result.queries.length} searches.`);
    $("searches").focus();
  });
}

function reviewReport(body) {
  const before = current.seen; // decisions on record while this draft was shown
  steer("report-review", body, (result) => {
    current.signOffs = before + 1;
    $("draft-form").hidden = true;
    $("run-heading").focus();
    say(result.decision === "approve" ? "Report approved." : "Report sent back to be revised.");
  });
}

function editedPlan() {
  const queries = [...$("plan-queries").querySelectorAll("input")]
    .map((input) => input.value.trim())
    .filter((text) => text)
    .map((query) => ({ query, reason: "edited on the page" }));
  review({ decision: "edit", queries });
}

async function loadReport(id) {
  try {
    const text = await api("GET", `/v1/research/${encodeURIComponent(id)}/report.html`);
    const page = new DOMParser().parseFromString(text, "text/html");
    const article = page.querySelector("article");
    $("report").replaceChildren(document.importNode(article, true));
    $("report-section").hidden = false;
    $("report-heading").focus();
    say("The report is ready.");
  } catch (err) {
    showError("run-error", err);
  }
}

async function download(event) {
  event.preventDefault();
  const format = event.currentTarget.dataset.format;
  try {
    const answer = await fetch(`/v1/research/${encodeURIComponent(current.id)}/report.${format}`, { headers: headers() });
    if (!answer.ok) throw new Error((await answer.json()).detail);
    const url = URL.createObjectURL(await answer.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `${current.id}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    showError("run-error", err);
  }
}

// -- the list ------------------------------------------------------------------------------

async function refreshRuns() {
  try {
    const page = await api("GET", "/v1/research?page_size=20");
    $("runs").replaceChildren(
      ...page.runs.map((run) => {
        const item = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "Open";
        button.setAttribute("aria-label", `Open run ${run.id}`);
        button.addEventListener("click", () => openRun(run.id, run.question));
        item.append(`${run.question || run.id} (${run.execution_status}) `, button);
        return item;
      }),
    );
  } catch (err) {
    $("runs").replaceChildren(Object.assign(document.createElement("li"), { textContent: String(err.message) }));
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
    refreshRuns();
  });
  $("ask-form").addEventListener("submit", startRun);
  $("answers-form").addEventListener("submit", sendAnswers);
  $("plan-form").addEventListener("submit", (event) => {
    event.preventDefault();
    review({ decision: "approve" });
  });
  $("save-edit").addEventListener("click", editedPlan);
  $("reject").addEventListener("click", () => review({ decision: "reject", reason: $("reject-reason").value }));
  $("add-query").addEventListener("click", () => {
    const item = planItem("", $("plan-queries").children.length + 1);
    $("plan-queries").append(item);
    item.querySelector("input").focus();
  });
  $("pause").addEventListener("click", () => steer("pause", undefined, () => say("Pause sent.")));
  $("resume").addEventListener("click", () => steer("resume", undefined, () => say("Resume sent.")));
  $("finish").addEventListener("click", () => steer("finish", { reason: "finished on the page" }, () => say("Finish sent.")));
  $("draft-form").addEventListener("submit", (event) => {
    event.preventDefault();
    reviewReport({ decision: "approve" });
  });
  $("revise-report").addEventListener("click", () => reviewReport({ decision: "revise", notes: $("revise-notes").value }));
  $("cancel").addEventListener("click", () => steer("cancel", { reason: "cancelled on the page" }, () => say("Cancel sent.")));
  for (const link of document.querySelectorAll(".downloads a")) link.addEventListener("click", download);
  $("refresh-runs").addEventListener("click", refreshRuns);
  $("searches").tabIndex = -1;
  refreshRuns();
});

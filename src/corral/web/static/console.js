// corral console: the few scripts streaming and live pages need. No build step, no
// dependencies. Every text from the server or a model goes in with textContent (never
// innerHTML), and the CSP allows no inline script, so model output cannot run.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const csrf = () => $('meta[name="csrf-token"]')?.content || "";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A call to the JSON API with the session cookie; state changes carry the CSRF token.
async function api(method, path, body) {
  const headers = { "X-CSRF-Token": csrf() };
  const init = { method, headers, credentials: "same-origin" };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(data?.error?.message || `HTTP ${r.status}`);
  return data;
}

function showError(node, err) {
  node.textContent = err ? String(err.message || err) : "";
  node.hidden = !err;
}

function localTimes() {
  for (const td of document.querySelectorAll(".time[data-unix]")) {
    const t = Number(td.dataset.unix);
    if (t) td.textContent = new Date(t * 1000).toLocaleString();
  }
}

// ---------------------------------------------------------------- playground

function numberOf(id) {
  const v = $(id).value.trim();
  return v === "" ? undefined : Number(v);
}

function jsonOf(id, what) {
  const v = $(id).value.trim();
  if (!v) return undefined;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new Error(`${what} is not valid JSON: ${e.message}`);
  }
}

function requestFor(side, history) {
  const b = side === "b";
  const system = (b && $("#system_b").value.trim()) || $("#system").value.trim();
  const body = {
    model: $(b ? "#model_b" : "#model").value,
    messages: [...(system ? [{ role: "system", content: system }] : []), ...history],
    temperature: numberOf(b ? "#temperature_b" : "#temperature"),
    top_p: numberOf("#top_p"),
    max_tokens: numberOf("#max_tokens"),
    seed: numberOf("#seed"),
  };
  const stop = $("#stop").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (stop.length) body.stop = stop;
  if ($("#reasoning_effort").value) body.reasoning_effort = $("#reasoning_effort").value;
  const tools = jsonOf("#tools", "Tools");
  if (tools) body.tools = tools;
  if (tools && $("#tool_choice").value) body.tool_choice = $("#tool_choice").value;
  const schema = jsonOf("#schema", "The JSON schema");
  if (schema) {
    body.response_format = {
      type: "json_schema",
      json_schema: { name: "answer", schema, strict: true },
    };
  }
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return body;
}

function price(side) {
  const opt = $(side === "b" ? "#model_b" : "#model").selectedOptions[0];
  return { input: Number(opt?.dataset.input || 0), output: Number(opt?.dataset.output || 0) };
}

function turnNode(role, text) {
  const li = el("li", `turn ${role}`);
  li.append(el("div", "role", role));
  const content = el("div", "content", text || "");
  li.append(content);
  return li;
}

// Reads an SSE body; calls onEvent(json) per `data:` line until [DONE].
async function readSSE(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onEvent(JSON.parse(data));
      }
    }
  }
}

async function streamTurn(side, history, transcript, signal) {
  const body = { ...requestFor(side, history), stream: true, stream_options: { include_usage: true } };
  const li = turnNode("assistant");
  const content = $(".content", li);
  const reasoning = el("div", "reasoning");
  reasoning.hidden = true;
  const tools = el("pre", "tool-calls");
  tools.hidden = true;
  const stats = el("div", "stats", "waiting…");
  li.insertBefore(reasoning, content);
  li.append(tools, stats);
  transcript.append(li);
  const t0 = performance.now();
  let first = null;
  let usage = null;
  let served = body.model;
  const calls = [];
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
    signal,
  });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    li.remove();
    throw new Error(data?.error?.message || `HTTP ${response.status}`);
  }
  const reading = readSSE(response, (chunk) => {
    if (chunk.error) throw new Error(chunk.error.message);
    if (chunk.model) served = chunk.model;
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices || []) {
      const d = choice.delta || {};
      if (first === null && (d.content || d.reasoning_content || d.tool_calls)) {
        first = performance.now();
      }
      if (d.reasoning_content) {
        reasoning.hidden = false;
        reasoning.textContent += d.reasoning_content;
      }
      if (d.content) content.textContent += d.content;
      for (const call of d.tool_calls || []) {
        const slot = (calls[call.index || 0] ||= { id: "", name: "", arguments: "" });
        if (call.id) slot.id = call.id;
        if (call.function?.name) slot.name += call.function.name;
        if (call.function?.arguments) slot.arguments += call.function.arguments;
        tools.hidden = false;
        tools.textContent = calls.map((c) => `${c.name}(${c.arguments})`).join("\n");
      }
    }
  });
  let stopped = false;
  try {
    await reading;
  } catch (err) {
    if (err?.name !== "AbortError") throw err;
    stopped = true; // the Stop button: keep what came, the server stops generating
  }
  const end = performance.now();
  const out = usage?.completion_tokens ?? 0;
  const inp = usage?.prompt_tokens ?? 0;
  const p = price(side);
  const cost = (inp * p.input + out * p.output) / 1e6;
  const ttft = first === null ? null : first - t0;
  const rate = first !== null && end > first ? (out / ((end - first) / 1000)) : null;
  stats.dataset.tokens = String(out);
  stats.textContent = (stopped ? "stopped · " : "") +
    `${served} · ${inp} in / ${out} out tokens · TTFT ${ttft === null ? "–" : ttft.toFixed(0) + " ms"}` +
    ` · ${rate === null ? "–" : rate.toFixed(1) + " tok/s"} · $${cost.toFixed(6)}`;
  const message = { role: "assistant", content: content.textContent };
  if (calls.length) {
    message.tool_calls = calls.map((c, i) => ({
      id: c.id || `call_${i}`,
      type: "function",
      function: { name: c.name, arguments: c.arguments },
    }));
  }
  history.push(message);
}

function py(value, indent = 0) {
  const pad = " ".repeat(indent + 4);
  const end = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return `[\n${value.map((v) => pad + py(v, indent + 4)).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return `{\n${entries.map(([k, v]) => `${pad}${JSON.stringify(k)}: ${py(v, indent + 4)}`).join(",\n")},\n${end}}`;
}

function showCode(history) {
  const body = requestFor("a", history.length ? history : [{ role: "user", content: $("#message").value || "Hello" }]);
  const base = `${location.origin}/v1`;
  const args = Object.entries(body).map(([k, v]) => `    ${k}=${py(v, 4)},`).join("\n");
  $("#code-python").textContent =
    `import os\n\nfrom openai import OpenAI\n\nclient = OpenAI(base_url="${base}", api_key=os.environ["CORRAL_API_KEY"])\n` +
    `stream = client.chat.completions.create(\n${args}\n    stream=True,\n)\n` +
    `for chunk in stream:\n    if chunk.choices and chunk.choices[0].delta.content:\n` +
    `        print(chunk.choices[0].delta.content, end="", flush=True)\n`;
  const json = JSON.stringify({ ...body, stream: true }, null, 2).replaceAll("'", "'\\''");
  $("#code-curl").textContent =
    `curl ${base}/chat/completions \\\n  -H "Authorization: Bearer $CORRAL_API_KEY" \\\n` +
    `  -H "Content-Type: application/json" \\\n  -N -d '${json}'\n`;
}

function playground() {
  const histories = { a: [], b: [] };
  let controller = null;
  const compare = $("#compare");
  const error = $("#chat-error");
  compare.addEventListener("change", () => {
    $("#compare-settings").hidden = !compare.checked;
    $("#column-b").hidden = !compare.checked;
    $("#column-a .side").hidden = !compare.checked;
  });
  $("#clear").addEventListener("click", () => {
    histories.a = [];
    histories.b = [];
    $("#transcript-a").replaceChildren();
    $("#transcript-b").replaceChildren();
  });
  $("#stop-gen").addEventListener("click", () => controller?.abort());
  $("#view-code").addEventListener("click", (e) => {
    const code = $("#code");
    code.hidden = !code.hidden;
    e.target.setAttribute("aria-expanded", String(!code.hidden));
    try {
      showCode(histories.a);
    } catch (err) {
      showError(error, err);
    }
  });
  $("#message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("#composer").requestSubmit();
  });
  $("#composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("#message").value.trim();
    if (!text || controller) return;
    showError(error, null);
    const sides = compare.checked ? ["a", "b"] : ["a"];
    try {
      for (const s of sides) requestFor(s, []); // settings checked before anything is sent
    } catch (err) {
      showError(error, err);
      return;
    }
    controller = new AbortController();
    $("#send").disabled = true;
    $("#stop-gen").disabled = false;
    $("#message").value = "";
    const runs = sides.map((s) => {
      histories[s].push({ role: "user", content: text });
      const transcript = $(`#transcript-${s}`);
      transcript.append(turnNode("user", text));
      return streamTurn(s, histories[s], transcript, controller.signal);
    });
    const results = await Promise.allSettled(runs);
    const failed = results.find((r) => r.status === "rejected");
    if (failed && failed.reason?.name !== "AbortError") showError(error, failed.reason);
    controller = null;
    $("#send").disabled = false;
    $("#stop-gen").disabled = true;
    if (!$("#code").hidden) showCode(histories.a);
  });
}

// ---------------------------------------------------------------- keys

function keys() {
  const error = $("#key-error");
  $("#key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    showError(error, null);
    const project = $("#key-project").value;
    const body = { name: $("#key-name").value };
    for (const k of ["rpm", "tpm"]) {
      const v = numberOf(`#key-${k}`);
      if (v !== undefined) body[k] = v;
    }
    try {
      const created = await api("POST", `/v1/organization/projects/${encodeURIComponent(project)}/api_keys`, body);
      $("#key-value").textContent = created.value;
      $("#key-created").hidden = false;
      const row = el("tr");
      row.dataset.key = created.id;
      const projectName = $("#key-project").selectedOptions[0].textContent.replace(/ \(.*\)$/, "");
      for (const text of [body.name || "–", created.redacted_value, projectName, `${body.rpm || "–"} / ${body.tpm || "–"}`, "0", "0"]) {
        row.append(el("td", "", text));
      }
      row.append(el("td", "state", "active"));
      const cell = el("td");
      const button = el("button", "revoke", "Revoke");
      button.type = "button";
      button.dataset.project = project;
      button.dataset.key = created.id;
      cell.append(button);
      row.append(cell);
      $("#keys-table tbody").prepend(row);
    } catch (err) {
      showError(error, err);
    }
  });
  $("#keys-table").addEventListener("click", async (e) => {
    const button = e.target.closest("button.revoke");
    if (!button) return;
    showError(error, null);
    try {
      const { project, key } = button.dataset;
      await api("DELETE", `/v1/organization/projects/${encodeURIComponent(project)}/api_keys/${encodeURIComponent(key)}`);
      button.closest("tr").querySelector(".state").textContent = "revoked";
      button.remove();
    } catch (err) {
      showError(error, err);
    }
  });
}

// ---------------------------------------------------------------- fine-tuning

function fineTuning() {
  const result = $("#upload-result");
  const errors = $("#upload-errors");
  $("#upload-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = $("#upload-file").files[0];
    if (!file) return;
    errors.replaceChildren();
    result.textContent = "Uploading…";
    try {
      const form = new FormData();
      form.append("purpose", "fine-tune");
      form.append("file", file);
      const uploaded = await api("POST", "/v1/files", form);
      const check = await api("GET", `/console/api/files/${encodeURIComponent(uploaded.id)}/check`);
      result.textContent = `${uploaded.filename} (${uploaded.id}): ${check.examples} valid examples` +
        (check.errors.length ? `, ${check.errors.length} bad line${check.errors.length > 1 ? "s" : ""}:` : ", no errors.");
      for (const err of check.errors) errors.append(el("li", "", `line ${err.line}: ${err.error}`));
      const option = el("option", "", `${uploaded.filename} (${uploaded.id})`);
      option.value = uploaded.id;
      $("#job-file").prepend(option);
      if (!check.errors.length) $("#job-file").value = uploaded.id;
    } catch (err) {
      result.textContent = String(err.message || err);
    }
  });
  $("#job-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = $("#job-error");
    showError(error, null);
    const body = { training_file: $("#job-file").value, model: $("#job-model").value };
    if ($("#job-suffix").value) body.suffix = $("#job-suffix").value;
    const epochs = numberOf("#job-epochs");
    if (epochs) body.hyperparameters = { n_epochs: epochs };
    try {
      const job = await api("POST", "/v1/fine_tuning/jobs", body);
      location.assign(`/console/fine-tuning/${encodeURIComponent(job.id)}`);
    } catch (err) {
      showError(error, err);
    }
  });
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const SVG = "http://www.w3.org/2000/svg";

function svgNode(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawLoss(svg, points) {
  const W = 720, H = 240, P = 40;
  svg.replaceChildren();
  svg.append(svgNode("line", { x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#888" }));
  svg.append(svgNode("line", { x1: P, y1: P, x2: P, y2: H - P, stroke: "#888" }));
  if (!points.length) {
    svg.append(svgNode("text", { x: P + 10, y: H / 2, "font-size": 13 }, "No training steps yet."));
    return;
  }
  const maxStep = Math.max(...points.map((p) => p.step), 1);
  const losses = points.map((p) => p.loss);
  const top = Math.max(...losses), bottom = Math.min(...losses, 0);
  const x = (s) => P + ((W - 2 * P) * s) / maxStep;
  const y = (l) => H - P - ((H - 2 * P) * (l - bottom)) / (top - bottom || 1);
  svg.append(svgNode("polyline", {
    points: points.map((p) => `${x(p.step).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" "),
    fill: "none", stroke: "#4a78c2", "stroke-width": 2, class: "loss",
  }));
  const last = points[points.length - 1];
  svg.append(svgNode("text", { x: P, y: 20, "font-size": 13 },
    `training loss: ${last.loss.toFixed(4)} at step ${last.step} (max ${top.toFixed(3)})`));
  svg.append(svgNode("text", { x: W - P, y: H - P + 16, "font-size": 10, "text-anchor": "end" }, `step ${maxStep}`));
}

function job() {
  const box = $("#job");
  const id = box.dataset.job;
  const svg = $("#loss-chart");
  const cancel = $("#job-cancel");
  cancel.addEventListener("click", async () => {
    try {
      await api("POST", `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/cancel`);
    } catch (err) {
      alert(err.message);
    }
    refresh();
  });
  async function refresh() {
    const [state, events] = await Promise.all([
      api("GET", `/v1/fine_tuning/jobs/${encodeURIComponent(id)}`),
      api("GET", `/v1/fine_tuning/jobs/${encodeURIComponent(id)}/events?limit=1000`),
    ]);
    $("#job-status").textContent = state.status;
    if (state.fine_tuned_model && !$("#try-model")) {
      const dd = $("#job-model");
      dd.textContent = `${state.fine_tuned_model} · `;
      const a = el("a", "", "try in playground");
      a.id = "try-model";
      a.href = `/console/playground?model=${encodeURIComponent(state.fine_tuned_model)}`;
      dd.append(a);
    }
    const list = $("#events");
    list.replaceChildren(...events.data.map((ev) => el("li", `level-${ev.level}`, ev.message)));
    const points = events.data
      .filter((ev) => ev.type === "metrics" && ev.data)
      .map((ev) => ({ step: ev.data.step, loss: ev.data.train_loss }))
      .sort((a, b) => a.step - b.step);
    drawLoss(svg, points);
    cancel.hidden = TERMINAL.has(state.status);
    if (!TERMINAL.has(state.status)) setTimeout(refresh, 1500);
  }
  refresh().catch((err) => console.error(err));
}

// ---------------------------------------------------------------- evals

function run() {
  const box = $("#run");
  $("#rerun-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const out = $("#rerun-result");
    try {
      const created = await api(
        "POST",
        `/console/api/evals/${encodeURIComponent(box.dataset.eval)}/runs/${encodeURIComponent(box.dataset.run)}/rerun`,
        { model: $("#rerun-model").value },
      );
      location.assign(`/console/evals/${encodeURIComponent(created.eval_id)}/runs/${encodeURIComponent(created.id)}`);
    } catch (err) {
      out.textContent = String(err.message || err);
    }
  });
  const status = $("#run-status").textContent;
  if (status === "queued" || status === "in_progress") setTimeout(() => location.reload(), 2000);
}

function evals() {
  for (const form of document.querySelectorAll("form.run-form")) {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const error = form.parentElement.querySelector(".run-error");
      showError(error, null);
      const field = (name) => form.elements[name].value;
      const template = [];
      if (field("system").trim()) template.push({ role: "system", content: field("system") });
      template.push({ role: "user", content: field("user") });
      const body = {
        data_source: {
          type: "completions",
          model: field("model"),
          source: { type: "file_id", id: field("file") },
          input_messages: { type: "template", template },
          sampling_params: { max_completion_tokens: Number(field("max_tokens")) || 64 },
        },
      };
      try {
        const run = await api("POST", `/v1/evals/${encodeURIComponent(form.dataset.eval)}/runs`, body);
        location.assign(`/console/evals/${encodeURIComponent(run.eval_id)}/runs/${encodeURIComponent(run.id)}`);
      } catch (err) {
        showError(error, err);
      }
    });
  }
}

const PAGES = { playground, keys, "fine-tuning": fineTuning, evals };

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  const page = document.body.dataset.page;
  if ($("#job")) job();
  else if ($("#run")) run();
  else if (page === "fine-tuning" && $("#upload-form")) fineTuning();
  else if (PAGES[page]) PAGES[page]();
});

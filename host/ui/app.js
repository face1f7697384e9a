// wasmtx admin UI: a hash-routed page over the server's own HTTP API.
//
//   #/transactions?status=&mode=&module=   the list, newest first
//   #/tx/GID                                one transaction, its ops, history, controls
//   #/modules, #/modules/NAME               uploaded modules
//   #/server                                health, cluster, figures
//
// Every figure comes from a fetch to /v1 or /healthz, on this origin, carrying
// the token pasted above (sessionStorage) as `Authorization: Bearer`. Nodes are
// built with createElement and text, never from HTML strings: the data is the
// server's, but payloads and errors are anyone's.
"use strict";

const TOKEN_KEY = "wasmtx.token";
const LIVE_KEY = "wasmtx.live";
const POLL_MS = 2000;
const PAGE = 50;
const STATUSES = ["prepared", "submitted", "aborting", "succeeded", "failed"];
const MODES = ["saga", "tcc", "xa", "msg", "workflow"];

// ---------------------------------------------------------------- DOM

/** An element: `attrs` are attributes (`class`, `onclick`-style listeners), then children. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function replace(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== undefined && c !== null && c !== false));
}

function badge(status) {
  return h("span", { class: "badge s-" + status }, status);
}

/** RFC 3339 from the API, shown shorter; the full text in the tooltip. */
function when(text) {
  if (!text) return "";
  return h("time", { datetime: text, title: text }, text.replace("T", " ").replace(/\.\d+Z$/, "Z"));
}

function table(id, headings, rows, empty) {
  const body = rows.length ? rows : [h("tr", {}, h("td", { colspan: headings.length, class: "muted" }, empty))];
  return h("table", { id }, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))), h("tbody", {}, body));
}

function select(id, label, values, current) {
  return h(
    "select",
    { id, "aria-label": label },
    values.map((v) => h("option", { value: v, selected: v === current }, v || label)),
  );
}

function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** One request to this server; the body and answer are JSON; errors are `ApiError`s. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const init = { method, headers, mode: "same-origin", credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "unreachable", "the server did not answer (" + e.message + ")");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : { code: "http_" + response.status, message: String(data || response.statusText) };
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

function explain(error) {
  if (error.status === 401) {
    return "This server has tokens: paste one above (the read right shows data; the controls need admin). " + error.message;
  }
  return (error.status ? error.status + " " + error.code + ": " : "") + error.message;
}

const notice = () => document.getElementById("notice");

function showError(error) {
  notice().hidden = false;
  notice().textContent = explain(error);
}

function clearNotice() {
  notice().hidden = true;
  notice().textContent = "";
}

// ---------------------------------------------------------------- polling

// The view on screen: its `refresh` runs now and, while live, every POLL_MS
// after the previous one ended. A new view (or hash) bumps `generation`, which
// stops the old one's loop.
let generation = 0;
let timer = null;
let current = null;

const live = () => document.getElementById("live").checked;

function show(refresh) {
  current = { refresh, generation: ++generation };
  tick(current.generation);
}

// One refresh at a time: a tick asked for while one runs (a control, a new
// view) runs right after it.
let busy = false;
let again = false;

async function tick(gen) {
  clearTimeout(timer);
  if (!current || gen !== generation) return;
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  const health = checkHealth();
  try {
    await current.refresh();
    if (gen === generation) clearNotice();
  } catch (error) {
    if (gen === generation) showError(error);
  }
  await health;
  busy = false;
  if (again) {
    again = false;
    tick(generation);
  } else if (gen === generation && live()) {
    timer = setTimeout(() => tick(gen), POLL_MS);
  }
}

async function checkHealth() {
  const el = document.getElementById("health");
  try {
    const answer = await api("GET", "/healthz");
    el.className = "health " + (answer && answer.status === "ok" ? "ok" : "bad");
    el.textContent = "health: " + (answer && answer.status);
  } catch (error) {
    el.className = "health bad";
    el.textContent = "health: unreachable";
    el.title = explain(error);
  }
}

// ---------------------------------------------------------------- views

const view = () => document.getElementById("view");

/** `#/transactions?status=failed&mode=saga&module=bank` */
function listView(params) {
  const filters = { status: params.get("status") || "", mode: params.get("mode") || "", module: params.get("module") || "" };
  const status = select("filter-status", "any status", ["", ...STATUSES], filters.status);
  const mode = select("filter-mode", "any mode", ["", ...MODES], filters.mode);
  const module = h("input", { id: "filter-module", type: "search", placeholder: "module", value: filters.module, "aria-label": "module" });
  const apply = (event) => {
    if (event) event.preventDefault();
    const q = new URLSearchParams();
    if (status.value) q.set("status", status.value);
    if (mode.value) q.set("mode", mode.value);
    if (module.value.trim()) q.set("module", module.value.trim());
    const wanted = "#/transactions" + (q.toString() ? "?" + q : "");
    if (location.hash === wanted) tick(generation);
    else location.hash = wanted;
  };
  status.addEventListener("change", apply);
  mode.addEventListener("change", apply);
  const figures = h("div", { id: "figures", class: "figures" });
  const rows = h("div", { id: "transactions" });
  const more = h("button", { id: "more", type: "button", hidden: true }, "Load more");
  replace(
    view(),
    h("h1", {}, "Transactions"),
    h("form", { id: "filters", class: "filters", onsubmit: apply }, status, mode, module, h("button", { type: "submit" }, "Filter")),
    figures,
    rows,
    more,
  );

  let loaded = [];
  let cursor = null;
  const query = (limit, after) => {
    const q = new URLSearchParams({ limit: String(limit) });
    for (const [k, v] of Object.entries(filters)) if (v) q.set(k, v);
    if (after) q.set("cursor", after);
    return "/v1/transactions?" + q;
  };
  const render = () => {
    const counts = {};
    for (const t of loaded) counts[t.status] = (counts[t.status] || 0) + 1;
    replace(
      figures,
      h("span", { class: "figure" }, h("b", {}, String(loaded.length)), " shown"),
      STATUSES.filter((s) => counts[s]).map((s) => h("span", { class: "figure", "data-status": s }, badge(s), " ", h("b", {}, String(counts[s])))),
    );
    const body = loaded.map((t) =>
      h(
        "tr",
        { "data-gid": t.gid },
        h("td", {}, h("a", { href: "#/tx/" + encodeURIComponent(t.gid), class: "gid" }, t.gid)),
        h("td", {}, t.mode),
        h("td", {}, badge(t.status)),
        h("td", { class: "num" }, String(t.attempts)),
        h("td", {}, when(t.created_at)),
        h("td", {}, when(t.updated_at)),
        h("td", {}, when(t.next_retry_at)),
        h("td", { class: "why" }, t.rollback_reason || t.last_error || ""),
      ),
    );
    replace(rows, table("tx-table", ["gid", "mode", "status", "attempts", "created", "updated", "next retry", "reason / last error"], body, "No transactions match."));
    more.hidden = !cursor;
  };
  more.addEventListener("click", async () => {
    try {
      const page = await api("GET", query(PAGE, cursor));
      loaded = loaded.concat(page.transactions);
      cursor = page.next_cursor;
      render();
    } catch (error) {
      showError(error);
    }
  });
  // A refresh re-reads as many rows as are shown (the newest come first).
  show(async () => {
    const page = await api("GET", query(Math.min(1000, Math.max(PAGE, loaded.length))));
    loaded = page.transactions;
    cursor = page.next_cursor;
    render();
  });
}

/** `#/tx/GID`: the transaction, its branch ops, its history and the operator's controls. */
function txView(gid) {
  const path = "/v1/transactions/" + encodeURIComponent(gid);
  const summary = h("dl", { id: "tx-summary", class: "summary" });
  const reason = h("div", { id: "rollback-reason", class: "callout bad", hidden: true });
  const lastError = h("div", { id: "last-error", class: "callout warn", hidden: true });
  const controlReason = h("input", { id: "control-reason", type: "text", maxlength: 1000, placeholder: "reason (optional, recorded in the history)", "aria-label": "reason" });
  const result = h("div", { id: "control-result", class: "muted", role: "status" });
  const controls = [
    ["abort", "Abort", "Abort " + gid + "? Ops that completed are compensated (cancelled, rolled back)."],
    ["force-stop", "Force stop", "Force-stop " + gid + "? It is marked failed at once, without compensation: repair by hand."],
    ["retry-now", "Retry now", "Run the next attempt of " + gid + " now instead of at its retry time?"],
  ].map(([action, label, question]) =>
    h("button", {
      id: action,
      type: "button",
      class: action === "retry-now" ? "" : "danger",
      onclick: async () => {
        if (!window.confirm(question)) return;
        const why = controlReason.value.trim();
        result.textContent = label + "…";
        try {
          const after = await api("POST", path + "/" + action, why ? { reason: why } : {});
          result.textContent = label + ": done; the transaction is " + after.status + ".";
          tick(generation);
        } catch (error) {
          result.textContent = label + " refused: " + explain(error);
        }
      },
    }, label),
  );
  const ops = h("div");
  const extra = h("div");
  const history = h("div");
  const options = h("div");
  replace(
    view(),
    h("p", {}, h("a", { href: "#/transactions" }, "← transactions")),
    h("h1", {}, "Transaction ", h("code", { id: "tx-gid" }, gid), " ", h("span", { id: "tx-status" })),
    summary,
    reason,
    lastError,
    h("section", { class: "controls" }, h("h2", {}, "Controls"), controlReason, controls, result),
    h("h2", {}, "Branch ops"),
    ops,
    extra,
    h("h2", {}, "History"),
    history,
    h("h2", {}, "Options"),
    options,
  );

  show(async () => {
    const t = await api("GET", path);
    replace(document.getElementById("tx-status"), badge(t.status));
    const finalStatus = t.status === "succeeded" || t.status === "failed";
    for (const button of controls) button.disabled = finalStatus;
    const item = (term, value) => (value === undefined || value === null || value === "" ? [] : [h("dt", {}, term), h("dd", {}, value)]);
    replace(
      summary,
      item("mode", t.mode),
      item("attempts", String(t.attempts)),
      item("created", when(t.created_at)),
      item("updated", when(t.updated_at)),
      item("finished", when(t.finished_at)),
      item("next retry", when(t.next_retry_at)),
    );
    reason.hidden = !t.rollback_reason;
    replace(reason, h("strong", {}, "Rollback reason: "), h("span", { class: "text" }, t.rollback_reason || ""));
    lastError.hidden = !t.last_error;
    replace(lastError, h("strong", {}, "Last error: "), h("span", { class: "text" }, t.last_error || ""));

    const opRows = (t.branches || []).map((o) => {
      const target = o.url ? o.url : o.module + "." + o.function;
      // Only the transaction has a retry time: it is the waiting op's.
      const waiting = !finalStatus && o.status === "prepared" && o.last_error && t.next_retry_at;
      return h(
        "tr",
        { "data-branch": o.branch_id, "data-op": o.op, "data-status": o.status },
        h("td", {}, o.branch_id),
        h("td", {}, o.op),
        h("td", {}, h("code", { title: o.digest || "" }, target)),
        h("td", {}, badge(o.status)),
        h("td", { class: "num attempts" }, String(o.attempts)),
        h("td", { class: "why" }, o.last_error || ""),
        h("td", {}, waiting ? when(t.next_retry_at) : ""),
      );
    });
    replace(ops, table("ops", ["branch", "op", "target", "status", "attempts", "last error", "next retry"], opRows, "No ops."));

    const parts = [];
    if (t.journal) {
      const journalRows = t.journal.map((e) =>
        h("tr", {}, h("td", { class: "num" }, String(e.seq)), h("td", {}, when(e.at)), h("td", {}, json(e.call)), h("td", {}, json(e.answer))),
      );
      parts.push(h("h2", {}, "Workflow journal"), table("journal", ["seq", "at", "call", "answer"], journalRows, "No steps yet."));
    }
    if (t.output !== undefined) parts.push(h("h2", {}, "Output"), json(t.output));
    replace(extra, parts);

    const events = (t.history || []).map((e) =>
      h(
        "li",
        { class: "event o-" + (e.outcome || "none") },
        h("span", { class: "at" }, when(e.at)),
        h("span", { class: "kind" }, e.kind),
        e.outcome ? h("span", { class: "outcome" }, " " + e.outcome) : null,
        e.branch_id ? h("span", { class: "where" }, " " + e.branch_id + " " + (e.op || "")) : null,
        e.attempt !== undefined ? h("span", { class: "attempt" }, " attempt " + e.attempt) : null,
        e.actor ? h("span", { class: "actor" }, " by " + e.actor) : null,
        e.duration_ms !== undefined ? h("span", { class: "muted" }, " (" + e.duration_ms + " ms)") : null,
        e.detail ? h("div", { class: "detail" }, e.detail) : null,
      ),
    );
    replace(history, events.length ? h("ol", { id: "history", class: "timeline" }, events) : h("p", { class: "muted" }, "No history yet."));
    replace(options, json(t.options));
  });
}

function modulesView() {
  const list = h("div", { id: "modules" });
  replace(view(), h("h1", {}, "Modules"), list);
  show(async () => {
    const { modules } = await api("GET", "/v1/modules");
    const rows = modules.map((m) =>
      h(
        "tr",
        { "data-module": m.name },
        h("td", {}, h("a", { href: "#/modules/" + encodeURIComponent(m.name) }, m.name)),
        h("td", {}, m.world),
        h("td", {}, m.database),
        h("td", {}, h("code", { title: m.digest }, m.digest.slice(0, 19) + "…")),
        h("td", {}, m.functions.join(", ")),
        h("td", { class: "num" }, kib(m.size)),
        h("td", {}, when(m.created_at)),
      ),
    );
    replace(list, table("module-table", ["name", "world", "database", "digest", "functions", "size", "uploaded"], rows, "No modules uploaded yet."));
  });
}

function kib(bytes) {
  return (bytes / 1024).toFixed(1) + " KiB";
}

function moduleView(name) {
  const body = h("div", { id: "module" });
  replace(view(), h("p", {}, h("a", { href: "#/modules" }, "← modules")), h("h1", {}, "Module ", h("code", {}, name)), body);
  show(async () => {
    const m = await api("GET", "/v1/modules/" + encodeURIComponent(name));
    const item = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
    replace(
      body,
      h(
        "dl",
        { class: "summary" },
        item("current version", h("code", {}, m.digest)),
        item("world", m.world),
        item("bound database", m.database),
        item("size", kib(m.size)),
        item("uploaded", when(m.created_at)),
        item("instance reuse", m.instance_reuse ? "up to " + m.instance_reuse + " invocations" : "one invocation per instance"),
        item("outbound HTTP", m.http_hosts && m.http_hosts.length ? m.http_hosts.join(", ") : "none"),
      ),
      h("h2", {}, "Functions"),
      h("ul", { id: "functions", class: "chips" }, m.functions.map((f) => h("li", {}, h("code", {}, f)))),
      h("p", {}, h("a", { href: "#/transactions?module=" + encodeURIComponent(m.name) }, "Transactions using " + m.name + " →")),
    );
  });
}

function serverView() {
  const health = h("div", { id: "server-health" });
  const cluster = h("div", { id: "cluster" });
  const figures = h("div", { id: "server-figures" });
  replace(view(), h("h1", {}, "Server"), health, h("h2", {}, "Transactions (the newest 1000)"), figures, h("h2", {}, "Cluster"), cluster);
  show(async () => {
    const [healthz, info, page] = await Promise.all([
      api("GET", "/healthz").catch((e) => ({ status: "unreachable: " + explain(e) })),
      api("GET", "/v1/cluster"),
      api("GET", "/v1/transactions?limit=1000"),
    ]);
    replace(health, h("p", {}, "GET /healthz: ", h("b", {}, String(healthz.status))));
    const byStatus = {};
    const byMode = {};
    for (const t of page.transactions) {
      byStatus[t.status] = (byStatus[t.status] || 0) + 1;
      byMode[t.mode] = (byMode[t.mode] || 0) + 1;
    }
    const row = (keys, counts, label) =>
      keys.filter((k) => counts[k]).map((k) => h("span", { class: "figure" }, label(k), " ", h("b", {}, String(counts[k]))));
    replace(
      figures,
      h("div", { class: "figures" }, h("span", { class: "figure" }, h("b", {}, String(page.transactions.length)), " listed"), row(STATUSES, byStatus, badge)),
      h("div", { class: "figures" }, row(MODES, byMode, (mode) => mode)),
    );
    const rows = info.instances.map((i) =>
      h(
        "tr",
        { class: i.node === info.node ? "self" : "" },
        h("td", {}, h("code", {}, i.node), i.node === info.node ? " (answered)" : ""),
        h("td", {}, i.version),
        h("td", {}, when(i.started_at)),
        h("td", {}, when(i.heartbeat_at)),
        h("td", { class: "num" }, String(i.in_flight)),
      ),
    );
    replace(cluster, table("instances", ["node", "version", "started", "heartbeat", "in flight"], rows, "No instance has a heartbeat yet."));
  });
}

// ---------------------------------------------------------------- shell

function route() {
  const hash = location.hash.replace(/^#/, "") || "/transactions";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  for (const name of ["transactions", "modules", "server"]) {
    const active = parts[0] === name || (name === "transactions" && parts[0] === "tx");
    document.getElementById("nav-" + name).classList.toggle("active", active);
  }
  clearNotice();
  if (parts[0] === "tx" && parts[1]) txView(parts[1]);
  else if (parts[0] === "modules" && parts[1]) moduleView(parts[1]);
  else if (parts[0] === "modules") modulesView();
  else if (parts[0] === "server") serverView();
  else listView(new URLSearchParams(query || ""));
}

function start() {
  const liveBox = document.getElementById("live");
  liveBox.checked = sessionStorage.getItem(LIVE_KEY) !== "off";
  liveBox.addEventListener("change", () => {
    sessionStorage.setItem(LIVE_KEY, liveBox.checked ? "on" : "off");
    if (liveBox.checked) tick(generation);
    else clearTimeout(timer);
  });
  const tokenInput = document.getElementById("token");
  const tokenState = () => {
    tokenInput.placeholder = sessionStorage.getItem(TOKEN_KEY) ? "a token is set (paste another to replace it)" : "bearer token (if the server has tokens)";
  };
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    tokenInput.value = "";
    tokenState();
    tick(generation);
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    tokenInput.value = "";
    tokenState();
    tick(generation);
  });
  tokenState();
  window.addEventListener("hashchange", route);
  route();
}

start();

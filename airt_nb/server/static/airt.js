// The approvals page: reads /airt/api/..., decides with POST .../decision.  Plain JS, no build step.
// Everything the server sends is shown through textContent (never innerHTML): messages and outputs
// come from workflows and may contain anything.  Control and invisible characters in it (a carriage
// return, a zero-width space, a direction override that shows text backwards) are shown escaped
// (visible()), so that the person deciding reads what is recorded.
"use strict";

(function () {
  const settings = JSON.parse(document.getElementById("airt-settings").textContent);
  const api = settings.base.replace(/\/?$/, "/") + "airt/api/";
  const focusId = new URLSearchParams(location.search).get("approval");
  const cards = new Map(); // approval_id -> {el, key}
  let status = "PENDING";
  let timer = null;

  // C0 and C1 controls (not tab or line feed), soft hyphen, Arabic letter mark, zero-width and
  // direction marks, embeddings, overrides and isolates, word joiners, BOM, interlinear annotations.
  const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;
  const visible = (text) => String(text).replace(HIDDEN, (ch) => "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0"));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : visible(c));
    }
    return node;
  }

  const badge = (s) => el("span", { class: `airt-badge s-${s}` }, s);
  // A decider's name with how it was established (asserted, jupyterhub, database...): a claimed
  // name must not read like a proven one.  The engine's own decisions (a deadline) need no label.
  const by = (name, auth) => (auth && auth !== "system" ? `${name} (${auth})` : `${name}`);
  const when = (t) => (t ? t.slice(0, 19).replace("T", " ") + " UTC" : "");
  const json = (v) => {
    if (typeof v === "string") return v;
    const flat = JSON.stringify(v);
    return flat && flat.length <= 90 ? flat : JSON.stringify(v, null, 2);
  };

  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-XSRFToken"] = settings.xsrf;
    }
    const response = await fetch(api + path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { message: response.statusText }; }
    if (!response.ok) throw Object.assign(new Error(data.message || response.statusText), { status: response.status });
    return data;
  }

  // -- the approval's context, shown generically ---------------------------------------------------

  function kv(obj) {
    return el("div", { class: "airt-kv" }, Object.entries(obj).map(([k, v]) => [
      el("span", {}, k), el("pre", {}, json(v)),
    ]));
  }

  function section(title, ...body) {
    return el("div", { class: "airt-section" }, el("h3", {}, title), ...body);
  }

  function diffView(text) {
    return el("pre", { class: "airt-diff" }, String(text).split("\n").map((line) => {
      const css = line.startsWith("+++") || line.startsWith("---") ? "d-head" : line.startsWith("+") ? "d-add"
        : line.startsWith("-") ? "d-del" : line.startsWith("@@") ? "d-hunk" : null;
      return [el("span", { class: css }, line), "\n"];
    }));
  }

  // What each step the approval gates will do, as it would run now (a diff for file.write...).
  function previewView(preview) {
    const steps = (preview && preview.steps) || [];
    if (!steps.length) return null;
    const shownKeys = ["path", "src", "dst", "method", "url", "exists", "bytes", "bytes_now", "bytes_after",
      "src_bytes", "dst_exists", "headers", "json", "body", "undo"];
    const blocks = steps.map((e) => {
      const p = e.preview || {};
      const rows = shownKeys.filter((k) => k in p).map((k) => [el("span", {}, k), el("pre", {}, json(p[k]))]);
      return el("div", { class: "airt-preview-step", "data-step": e.step },
        el("div", {}, el("b", {}, e.step), " ", el("code", {}, e.action), e.when ? el("span", { class: "airt-meta" }, ` only when ${e.when}`) : null),
        rows.length ? el("div", { class: "airt-kv" }, rows) : null,
        p.note ? el("div", { class: "airt-wait" }, p.note) : null,
        p.diff ? diffView(p.diff) : null,
        p.removes ? [el("div", { class: "airt-meta" }, "would remove:"), el("pre", {}, p.removes)] : null,
        !e.preview ? el("pre", {}, json(e.inputs || {})) : null,
        (e.unknown || []).length ? el("div", { class: "airt-meta" }, `known only when it runs: ${e.unknown.join(", ")}`) : null);
    });
    const more = preview.more ? el("div", { class: "airt-meta" }, `and ${preview.more} more steps after them (not previewed)`) : null;
    return section("What it lets run, as it would run now", blocks, more);
  }

  function contextView(a) {
    const ctx = a.context || {};
    const parts = [];
    if (a.gate_step) parts.push(el("div", { class: "airt-wait" },
      `Asked again: step ${a.step_name} did not run because what it would do changed after step ${a.gate_step} was approved.`));
    if (ctx.depends_on && Object.keys(ctx.depends_on).length) parts.push(section("Outputs it follows", kv(ctx.depends_on)));
    const preview = previewView(a.preview);
    if (preview) parts.push(preview);
    const undo = ctx.undo || [];
    parts.push(section(undo.length ? "A rejection undoes (newest first)" : "A rejection undoes nothing",
      undo.length ? el("table", {}, el("tr", {}, el("th", {}, "step"), el("th", {}, "action"), el("th", {}, "inputs")),
        undo.map((u) => el("tr", {}, el("td", {}, u.step), el("td", { class: "mono" }, u.action), el("td", {}, el("pre", {}, json(u.inputs)))))) : null));
    if (ctx.not_undone && ctx.not_undone.length) parts.push(section("Completed, cannot be undone", el("div", {}, ctx.not_undone.join(", "))));
    if (ctx.values) parts.push(section("Values approved before", kv(ctx.values)));
    const known = new Set(["depends_on", "undo", "not_undone", "started_by", "asked_again", "values"]);
    const rest = Object.fromEntries(Object.entries(ctx).filter(([k]) => !known.has(k)));
    if (Object.keys(rest).length) parts.push(section("More context", kv(rest)));
    if ((a.decisions || []).length) parts.push(section("Decisions so far", el("div", {},
      a.decisions.map((d) => el("div", {}, `${d.decision.toLowerCase()} by ${by(d.decided_by, d.auth)} at ${when(d.decided_at)}` + (d.reason ? `: ${d.reason}` : ""))))));
    return parts;
  }

  // -- the form: typed fields (when the approval has them), a reason, the buttons --------------------

  function fieldInput(name, spec, approved, hint) {
    const type = spec.type || "string";
    const start = approved && name in approved ? approved[name] : spec.default;
    const id = `f-${name}-${Math.random().toString(36).slice(2, 8)}`;
    let input;
    if (type === "boolean") {
      input = el("input", { type: "checkbox", id, "data-field": name, "data-type": type, checked: start === true });
    } else if (type === "choice") {
      const options = spec.options || [];
      input = el("select", { id, "data-field": name, "data-type": type },
        start === undefined || start === null ? el("option", { value: "", selected: true }, "(choose)") : null,
        options.map((o, i) => el("option", { value: String(i), selected: o === start }, String(o))));
      input.options_values = options;
    } else {
      const numeric = type === "integer" || type === "number";
      input = el("input", {
        id, type: numeric ? "number" : "text", "data-field": name, "data-type": type,
        step: type === "integer" ? "1" : numeric ? "any" : undefined,
        min: spec.minimum, max: spec.maximum, value: start ?? undefined,
      });
    }
    const kind = hint ? ` (${hint})` : spec.required === false ? " (optional)" : "";
    const about = spec.description ? ` — ${spec.description}` : "";
    return el("label", { for: id }, `${name}${kind}${about}`, input);
  }

  function readValues(form) {
    const values = {};
    for (const input of form.querySelectorAll("[data-field]")) {
      const type = input.dataset.type;
      if (type === "boolean") values[input.dataset.field] = input.checked;
      else if (input.value === "") continue;
      else if (type === "choice") values[input.dataset.field] = input.options_values[Number(input.value)];
      else if (type === "integer" || type === "number") values[input.dataset.field] = Number(input.value);
      else values[input.dataset.field] = input.value;
    }
    return values;
  }

  function decisionForm(a, card) {
    const fields = a.fields && typeof a.fields === "object" ? a.fields : {};
    const approved = a.field_values && typeof a.field_values === "object" ? a.field_values : null;
    const reason = el("textarea", { class: "airt-reason", placeholder: "Reason (recorded with the decision)" });
    const result = el("div", { class: "airt-result", role: "status" });
    const form = el("div", { class: "airt-form" },
      approved && Object.keys(fields).length ? el("div", { class: "airt-meta" }, "The values approved so far: approving confirms them.") : null,
      Object.entries(fields).map(([name, spec]) => fieldInput(name, spec || {}, approved, (a.field_hints || {})[name])),
      el("label", {}, "Reason", reason));
    const buttons = [];
    const decide = async (decision) => {
      buttons.forEach((b) => (b.disabled = true));
      result.className = "airt-result";
      result.textContent = decision === "approve" ? "Approving…" : "Rejecting…";
      const body = { decision, reason: reason.value };
      const values = decision === "approve" ? readValues(form) : {};
      if (Object.keys(values).length) body.values = values;
      try {
        const data = await request("POST", `approvals/${encodeURIComponent(a.approval_id)}/decision`, body);
        const d = data.approval;
        if (d.status === "PENDING") {  // one of several approvals it needs
          result.textContent = visible(`your approval is recorded: ${d.approved_count} of ${d.min_approvals} approvals; it waits for the others`);
          form.remove();
          buttonRow.remove();
          card.classList.add("airt-decided");
          return;
        }
        result.textContent = visible(`${d.status.toLowerCase()} by ${by(d.decided_by, d.auth)}; the workflow is ${data.workflow_status}`);
        card.classList.add("airt-decided");
        card.querySelector(".airt-status").replaceWith(Object.assign(badge(d.status), { className: `airt-badge airt-status s-${d.status}` }));
        form.remove();
        buttonRow.remove();
      } catch (err) {
        result.className = "airt-result airt-error";
        result.textContent = visible(err.message);
        buttons.forEach((b) => (b.disabled = false));
      }
    };
    buttons.push(el("button", { type: "button", class: "airt-approve", onclick: () => decide("approve") }, "Approve"));
    buttons.push(el("button", { type: "button", class: "airt-reject", onclick: () => decide("reject") }, "Reject"));
    const buttonRow = el("div", { class: "airt-buttons" }, buttons);
    return [form, buttonRow, result];
  }

  // -- the workflow, on demand ------------------------------------------------------------------

  async function workflowView(workflowId, holder) {
    holder.textContent = "Loading…";
    try {
      const data = await request("GET", `workflows/${encodeURIComponent(workflowId)}`);
      const w = data.workflow;
      const pct = w.total_steps ? Math.round((100 * w.done_steps) / w.total_steps) : 0;
      holder.replaceChildren(
        el("div", { class: "airt-meta" }, badge(w.status), el("span", {}, `${w.done_steps}/${w.total_steps} steps`),
          el("span", {}, `started by ${w.started_by || "?"} at ${when(w.created_at)}`),
          w.error ? el("span", {}, `error: ${w.error}`) : null),
        el("div", { class: "airt-progress" }, el("div", { style: `width: ${pct}%` })),
        el("table", { class: "airt-steps" },
          el("tr", {}, ["#", "step", "action", "status", "attempt", "error"].map((h) => el("th", {}, h))),
          data.steps.map((s) => el("tr", {},
            el("td", {}, s.position + 1), el("td", {}, s.step_name),
            el("td", { class: "mono" }, s.type === "human_approval" ? "approval" : s.action || ""),
            el("td", {}, badge(s.status)), el("td", {}, s.attempt || ""), el("td", {}, s.error || "")))));
    } catch (err) {
      holder.textContent = visible(err.message);
    }
  }

  // -- one card per approval ------------------------------------------------------------------

  function card(a, focused) {
    const node = el("article", { class: "airt-card" + (focused ? " airt-focused" : ""), "data-approval": a.approval_id });
    const details = el("div", { class: "airt-workflow" });
    let open = false;
    const toggle = el("button", { type: "button", class: "airt-link", onclick: () => {
      open = !open;
      if (open) workflowView(a.workflow_id, details); else details.replaceChildren();
    } }, `workflow ${a.workflow_id}`);
    const approvers = (a.approvers || []).join(", ") || "anyone";
    const meta = [
      toggle,
      `step ${a.step_name}`,
      `approvers: ${approvers}`,
      a.started_by ? `started by ${a.started_by}` : null,
      `requested ${when(a.requested_at)}`,
      a.deadline ? `deadline ${when(a.deadline)} (then ${a.on_timeout === "approve" ? "approved" : "rejected"})` : null,
      a.min_approvals > 1 ? `${a.approved_count || 0} of ${a.min_approvals} approvals` : null,
      a.exclude_requester ? "who started it may not decide" : null,
      a.authenticated ? "authenticated decisions only" : null,
      a.reminders ? `reminded ${a.reminders} times` : null,
    ];
    node.append(
      el("h2", {}, Object.assign(badge(a.status), { className: `airt-badge airt-status s-${a.status}` }),
        a.workflow_name || a.workflow_id, a.workflow_status ? el("span", { class: "airt-meta" }, `(${a.workflow_status})`) : null),
      el("div", { class: "airt-message" }, a.message || `Approve step ${a.step_name}?`),
      el("div", { class: "airt-meta" }, meta.filter((m) => m !== null).map((m) => el("span", {}, m))),
      ...contextView(a),
      details,
    );
    if (a.status === "PENDING") node.append(...decisionForm(a, node));
    else node.append(el("div", { class: "airt-result" },
      `${a.status.toLowerCase()} by ${by(a.decided_by, a.auth)} at ${when(a.decided_at)}` + (a.reason ? `: ${a.reason}` : "")));
    return node;
  }

  const keyOf = (a) => `${a.status}|${a.decided_at}|${a.workflow_status}|${a.approved_count}|${a.approvers}`;

  function render(list, approvals) {
    const seen = new Set();
    let previous = null;
    for (const a of approvals) {
      if (a.approval_id === focusId) continue;
      seen.add(a.approval_id);
      let entry = cards.get(a.approval_id);
      // Keep a card whose approval did not change: a half-typed reason survives the refresh.
      if (!entry || (entry.key !== keyOf(a) && !entry.el.classList.contains("airt-decided"))) {
        const fresh = card(a, false);
        if (entry) entry.el.replaceWith(fresh);
        entry = { el: fresh, key: keyOf(a) };
        cards.set(a.approval_id, entry);
      }
      if (previous ? previous.nextSibling !== entry.el : list.firstChild !== entry.el) {
        if (previous) previous.after(entry.el); else list.prepend(entry.el);
      }
      previous = entry.el;
    }
    for (const [id, entry] of cards) {
      if (!seen.has(id) && !entry.el.classList.contains("airt-decided")) {
        entry.el.remove();
        cards.delete(id);
      }
    }
  }

  async function refresh() {
    const note = document.getElementById("airt-note");
    try {
      const data = await request("GET", `approvals?status=${status}`);
      whoami(data.user);
      document.getElementById("airt-footer").textContent = visible(`database: ${data.db}`);
      render(document.getElementById("airt-list"), data.approvals);
      const n = data.approvals.filter((a) => a.approval_id !== focusId).length;
      note.textContent = n ? "" : status === "PENDING" ? "Nothing waits for a decision." : `No ${status.toLowerCase()} approvals.`;
    } catch (err) {
      note.textContent = visible(err.message);
    }
  }

  // Who decides here and how the server knows it, or why this person cannot decide on this server.
  function whoami(user) {
    const node = document.getElementById("airt-whoami");
    node.classList.toggle("airt-error", Boolean(user.refused));
    node.textContent = visible(user.refused ? `${user.name} cannot decide here: ${user.refused}`
      : `deciding as ${user.name}` + (user.note ? ` (${user.note})` : ""));
  }

  async function showFocused() {
    if (!focusId) return;
    const holder = document.getElementById("airt-focus");
    try {
      const data = await request("GET", `approvals?status=ALL&approval_id=${encodeURIComponent(focusId)}`);
      if (!data.approvals.length) holder.replaceChildren(el("p", { class: "airt-note" }, `No approval ${focusId} in this database.`));
      else holder.replaceChildren(card(data.approvals[0], true));
    } catch (err) {
      holder.replaceChildren(el("p", { class: "airt-note" }, err.message));
    }
  }

  for (const button of document.querySelectorAll("#airt-tabs button")) {
    button.addEventListener("click", () => {
      status = button.dataset.status;
      document.querySelectorAll("#airt-tabs button").forEach((b) => b.classList.toggle("active", b === button));
      document.getElementById("airt-list").replaceChildren();
      cards.clear();
      refresh();
    });
  }
  whoami({ name: settings.user, note: settings.note });
  showFocused();
  refresh();
  timer = setInterval(() => { if (!document.hidden) refresh(); }, 3000);
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();

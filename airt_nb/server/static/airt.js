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
  // What a workflow ends in: a card decided here follows its workflow until then.
  const TERMINAL = new Set(["COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED"]);
  // approval_id -> the card's entry: {el, key, data, keep, busy, notice, open}.  keep: decided (or
  // refused) here, so it stays on the page after it leaves the list; busy: a decision is on its way.
  const cards = new Map();
  const focus = { el: null, key: null, data: null, keep: true, busy: false, notice: null, open: false };
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
    return parts;
  }

  // -- decisions: each once, with the values it approved ----------------------------------------------

  const valuesText = (values) => (values && typeof values === "object" && Object.keys(values).length
    ? " with " + Object.entries(values).map(([k, v]) => `${k}=${JSON.stringify(v ?? null)}`).join(", ") : "");
  const decisionText = (verb, name, auth, at, values, reason) =>
    `${verb} by ${by(name, auth)} at ${when(at)}${valuesText(values)}` + (reason ? `: ${reason}` : "");
  const ofDecision = (d) => decisionText(d.decision.toLowerCase(), d.decided_by, d.auth, d.decided_at, d.field_values, d.reason);

  // What became of the workflow: the card follows it, so the person who decided sees how it ended.
  const OUTCOME = {
    PENDING: "the workflow has not started", RUNNING: "the workflow is running", PAUSED: "the workflow is paused",
    COMPLETED: "the workflow completed", ROLLING_BACK: "the workflow is rolling back",
    ROLLED_BACK: "the workflow rolled back", FAILED: "the workflow failed", CANCELLED: "the workflow was cancelled",
  };

  function outcome(a) {
    const s = a.workflow_status;
    if (!s) return null;
    return el("div", { class: "airt-outcome" }, badge(s), " ", OUTCOME[s] || `the workflow is ${s}`,
      s === "FAILED" && a.workflow_error ? `: ${a.workflow_error}` : null,
      TERMINAL.has(s) ? null : el("span", { class: "airt-meta" }, " (this card follows it)"));
  }

  // A decided approval: the decision that decided it (its own record, else the approval's columns: a
  // cancellation is nobody's decision), then the earlier ones (N of M), each once.
  function decidedView(a) {
    const decisions = a.decisions || [];
    let last = -1;
    decisions.forEach((d, i) => { if (d.decision === a.status && d.decided_by === a.decided_by) last = i; });
    const final = last >= 0 ? ofDecision(decisions[last])
      : decisionText(a.status.toLowerCase(), a.decided_by, a.auth, a.decided_at, a.status === "APPROVED" ? a.field_values : null, a.reason);
    const earlier = decisions.filter((_, i) => i !== last);
    return [
      earlier.length ? section("Earlier decisions", el("div", { class: "airt-decisions" }, earlier.map((d) => el("div", {}, ofDecision(d))))) : null,
      el("div", { class: "airt-result" }, el("div", { class: "airt-decided-by" }, final), outcome(a)),
    ];
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
    input.dataset.required = spec.required === false ? "" : "1";
    input.dataset.hint = hint || "";
    const kind = hint ? ` (${hint})` : spec.required === false ? " (optional)" : "";
    const about = spec.description ? ` — ${spec.description}` : "";
    return el("label", { for: id }, `${name}${kind}${about}`, input);
  }

  // The values exactly as the boxes show them.  An empty box is never left out (the server would fill
  // in the default, a value the person deciding did not see): an optional one is sent as null (no
  // value), a required one is refused here, naming the field, as the API refuses null for it.
  function readValues(form) {
    const values = {};
    for (const input of form.querySelectorAll("[data-field]")) {
      const name = input.dataset.field;
      const type = input.dataset.type;
      input.removeAttribute("aria-invalid");
      if (type === "boolean") { values[name] = input.checked; continue; }
      if (input.validity && input.validity.badInput) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
        throw new Error(`${name}: what is typed is not a number (${input.dataset.hint || type}). Nothing was sent`);
      }
      if (input.value === "") {
        if (!input.dataset.required) { values[name] = null; continue; }
        input.setAttribute("aria-invalid", "true");
        input.focus();
        throw new Error(`${name}: a value is required (it is not optional)` +
          (input.dataset.hint ? `; ${input.dataset.hint}` : "") + ". Fill it in to approve. Nothing was sent");
      }
      if (type === "choice") values[name] = input.options_values[Number(input.value)];
      else if (type === "integer" || type === "number") values[name] = Number(input.value);
      else values[name] = input.value;
    }
    return values;
  }

  // Whether the person deciding here may decide (the server asks the notebook card's own check):
  // refusal: neither button; already (approved already): Reject only.  Both say why on the card.
  function decisionForm(a, entry) {
    const fields = a.fields && typeof a.fields === "object" ? a.fields : {};
    const approved = a.field_values && typeof a.field_values === "object" ? a.field_values : null;
    const standing = a.standing || {};
    const mayApprove = !standing.refusal && !standing.already;
    const mayReject = !standing.refusal;
    const why = standing.refusal || standing.already;
    const whyId = `why-${a.approval_id}`;
    const reason = el("textarea", { class: "airt-reason", placeholder: "Reason (recorded with the decision)", disabled: !mayReject });
    const result = el("div", { class: "airt-result", role: "status" });
    if (entry.notice) {
      result.className = entry.notice.error ? "airt-result airt-error" : "airt-result";
      result.textContent = visible(entry.notice.text);
    }
    const form = el("div", { class: "airt-form" },
      approved && Object.keys(fields).length ? el("div", { class: "airt-meta" }, "The values approved so far: approving confirms them.") : null,
      Object.entries(fields).map(([name, spec]) => fieldInput(name, spec || {}, approved, (a.field_hints || {})[name])),
      el("label", {}, "Reason", reason));
    if (!mayApprove) form.querySelectorAll("[data-field]").forEach((i) => (i.disabled = true));
    const approveButton = el("button", { type: "button", class: "airt-approve", disabled: !mayApprove, title: mayApprove ? null : why,
      "aria-describedby": mayApprove ? null : whyId, onclick: () => approve() }, "Approve");
    const rejectButton = el("button", { type: "button", class: "airt-reject", disabled: !mayReject, title: mayReject ? null : why,
      "aria-describedby": mayReject ? null : whyId, onclick: () => askReject() }, "Reject");
    const buttonRow = el("div", { class: "airt-buttons" }, approveButton, rejectButton);

    // Reject rolls back what the workflow did: asked once more, in place (no browser dialog).
    const undo = ((a.context || {}).undo || []).length;
    const no = el("button", { type: "button", class: "airt-confirm-no", onclick: () => confirming(false) }, "No");
    const yes = el("button", { type: "button", class: "airt-confirm-reject", onclick: () => decide("reject") }, "Yes, reject");
    const question = el("span", { id: `confirm-${a.approval_id}` }, `Reject step ${a.step_name}? ` +
      (undo ? `The workflow rolls back ${undo} completed step${undo === 1 ? "" : "s"}, newest first; this cannot be undone.` : "Nothing needs undoing."));
    const confirm = el("div", { class: "airt-confirm", role: "group", hidden: true, "aria-labelledby": question.id,
      onkeydown: (e) => { if (e.key === "Escape") confirming(false); } }, question, el("span", { class: "airt-buttons" }, yes, no));
    const confirming = (on) => {
      confirm.hidden = !on;
      buttonRow.hidden = on;
      (on ? no : rejectButton).focus();
    };
    const askReject = () => {
      result.className = "airt-result";
      result.textContent = "";
      confirming(true);
    };
    const approve = () => {
      let values;
      try {
        values = readValues(form);
      } catch (err) {
        result.className = "airt-result airt-error";
        result.textContent = visible(err.message);
        return;
      }
      decide("approve", values);
    };
    const decide = async (decision, values) => {
      entry.busy = true;
      confirm.hidden = true;
      buttonRow.hidden = false;
      [approveButton, rejectButton].forEach((b) => (b.disabled = true));
      result.className = "airt-result";
      result.textContent = decision === "approve" ? "Approving…" : "Rejecting…";
      const body = { decision, reason: reason.value };
      if (values && Object.keys(values).length) body.values = values;
      let data = null;
      try {
        data = await request("POST", `approvals/${encodeURIComponent(a.approval_id)}/decision`, body);
      } catch (err) {
        entry.busy = false;
        if (err.status === 409) {  // decided meanwhile, cancelled, timed out: show what it is now
          entry.keep = true;
          entry.notice = { text: err.message, error: true };
          entry.key = null;  // drawn again, whatever the approval says now
          try {
            if ((await follow(entry)).approvals.length) return;
          } catch (ignored) { /* shown below, on the card as it is */ }
        }
        result.className = "airt-result airt-error";
        result.textContent = visible(err.message);
        approveButton.disabled = !mayApprove;
        rejectButton.disabled = !mayReject;
        return;
      }
      const d = data.approval;
      entry.busy = false;
      entry.keep = true;  // it stays on the page and follows its workflow
      if (d.status === "PENDING") {  // one of several approvals it needs
        entry.notice = { text: `your approval is recorded: ${d.approved_count} of ${d.min_approvals} approvals; it waits for the others` };
        result.textContent = visible(entry.notice.text);
      } else {
        entry.notice = null;
        draw(entry, { ...a, ...d, decisions: undefined, workflow_status: data.workflow_status }, entry === focus);
      }
      entry.key = null;  // drawn again from what the server reads now (its decisions, who may still decide)
      try { await follow(entry); } catch (ignored) { /* the next refresh draws it */ }
    };
    const refusedWhy = why ? el("div", { class: "airt-why", id: whyId }, why) : null;
    return [form, refusedWhy, buttonRow, confirm, result];
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

  function card(a, focused, entry) {
    const node = el("article", { class: "airt-card" + (focused ? " airt-focused" : "") + (a.status === "PENDING" ? "" : " airt-decided"),
      "data-approval": a.approval_id });
    const details = el("div", { class: "airt-workflow" });
    const toggle = el("button", { type: "button", class: "airt-link", "aria-expanded": String(entry.open), onclick: () => {
      entry.open = !entry.open;
      toggle.setAttribute("aria-expanded", String(entry.open));
      if (entry.open) workflowView(a.workflow_id, details); else details.replaceChildren();
    } }, `workflow ${a.workflow_id}`);
    if (entry.open) workflowView(a.workflow_id, details);  // drawn again: still open, as it is now
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
        a.workflow_name || a.workflow_id, a.workflow_status ? el("span", { class: "airt-meta airt-workflow-status" }, `(${a.workflow_status})`) : null),
      el("div", { class: "airt-message" }, a.message || `Approve step ${a.step_name}?`),
      el("div", { class: "airt-meta" }, meta.filter((m) => m !== null).map((m) => el("span", {}, m))),
      ...contextView(a),
      details,
    );
    if (a.status === "PENDING") {
      if ((a.decisions || []).length) node.append(section("Decisions so far", el("div", { class: "airt-decisions" },
        a.decisions.map((d) => el("div", {}, ofDecision(d))))));
      node.append(...decisionForm(a, entry).filter(Boolean));
    } else {
      node.append(...decidedView(a).filter(Boolean));
      if (entry.notice && entry.notice.error) node.append(el("div", { class: "airt-result airt-error", role: "status" }, entry.notice.text));
    }
    return node;
  }

  // What, when it changes, draws a card again (else it is kept: a half-typed reason survives).
  const keyOf = (a) => JSON.stringify([a.status, a.decided_at, a.workflow_status, a.workflow_error || null, a.approved_count,
    a.approvers, (a.decisions || []).length, a.standing || null]);

  const newEntry = () => ({ el: null, key: null, data: null, keep: false, busy: false, notice: null, open: false });

  // Draw an approval into its entry, unless nothing changed or a decision on it is on its way.
  function draw(entry, a, focused) {
    const key = keyOf(a);
    if (entry.busy || (entry.el && entry.key === key)) return entry;
    const fresh = card(a, focused, entry);
    const typed = entry.el && entry.el.querySelector("textarea.airt-reason");
    const box = fresh.querySelector("textarea.airt-reason");
    if (typed && box && typed.value) box.value = typed.value;
    // Keyboard focus stays where it was: in the reason box, else on what the card says now.
    const active = entry.el && entry.el.contains(document.activeElement) ? document.activeElement : null;
    if (entry.el) entry.el.replaceWith(fresh);
    Object.assign(entry, { el: fresh, key, data: a });
    if (active) {
      const target = active === typed && box && !box.disabled ? box : fresh.querySelector(".airt-result");
      if (target) {
        if (target !== box) target.setAttribute("tabindex", "-1");
        target.focus();
      }
    }
    return entry;
  }

  // Read one approval again and draw it (a card decided here, the one the link opened).
  async function follow(entry) {
    const id = entry === focus ? focusId : entry.data && entry.data.approval_id;
    const data = await request("GET", `approvals?status=ALL&approval_id=${encodeURIComponent(id)}`);
    if (data.approvals.length) draw(entry, data.approvals[0], entry === focus);
    return data;
  }

  const following = (entry) => entry.data && (entry.data.status === "PENDING" || !TERMINAL.has(entry.data.workflow_status));

  function render(list, approvals) {
    const seen = new Set();
    let previous = null;
    for (const a of approvals) {
      if (a.approval_id === focusId) continue;
      seen.add(a.approval_id);
      let entry = cards.get(a.approval_id);
      if (!entry) cards.set(a.approval_id, (entry = newEntry()));
      draw(entry, a, false);
      if (previous ? previous.nextSibling !== entry.el : list.firstChild !== entry.el) {
        if (previous) previous.after(entry.el); else list.prepend(entry.el);
      }
      previous = entry.el;
    }
    for (const [id, entry] of cards) {
      if (!seen.has(id) && !entry.keep) {
        entry.el.remove();
        cards.delete(id);
      }
    }
    return seen;
  }

  async function showFocused() {
    if (!focusId) return;
    const holder = document.getElementById("airt-focus");
    try {
      const data = await follow(focus);
      if (!data.approvals.length) holder.replaceChildren(el("p", { class: "airt-note" }, `No approval ${focusId} in this database.`));
      else if (focus.el && focus.el.parentNode !== holder) holder.replaceChildren(focus.el);
    } catch (err) {
      if (!focus.el) holder.replaceChildren(el("p", { class: "airt-note" }, visible(err.message)));
    }
  }

  let refreshing = null;
  let again = false;

  // Every 3 seconds: the tab's list, the card the link opened, and the cards decided here whose
  // workflow has not ended yet (each until it has).
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      do {
        again = false;
        await refreshOnce();
      } while (again);
    })();
    try { await refreshing; } finally { refreshing = null; }
  }

  async function refreshOnce() {
    const note = document.getElementById("airt-note");
    const asked = status;
    let seen = new Set();
    try {
      const data = await request("GET", `approvals?status=${asked}`);
      if (asked !== status) { again = true; return; }  // the tab changed meanwhile
      whoami(data.user);
      document.getElementById("airt-footer").textContent = visible(`database: ${data.db}`);
      seen = render(document.getElementById("airt-list"), data.approvals);
      const n = data.approvals.filter((a) => a.approval_id !== focusId).length;
      note.textContent = n ? "" : status === "PENDING" ? "Nothing waits for a decision." : `No ${status.toLowerCase()} approvals.`;
    } catch (err) {
      note.textContent = visible(err.message);
    }
    const kept = [...cards].filter(([id, entry]) => entry.keep && !seen.has(id) && following(entry)).map(([, entry]) => entry);
    await Promise.all([showFocused(), ...kept.map((entry) => follow(entry).catch(() => null))]);
  }

  // Who decides here and how the server knows it, or why this person cannot decide on this server.
  function whoami(user) {
    const node = document.getElementById("airt-whoami");
    node.classList.toggle("airt-error", Boolean(user.refused));
    node.textContent = visible(user.refused ? `${user.name} cannot decide here: ${user.refused}`
      : `deciding as ${user.name}` + (user.note ? ` (${user.note})` : ""));
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
  refresh();
  timer = setInterval(() => { if (!document.hidden) refresh(); }, 3000);
  window.addEventListener("beforeunload", () => clearInterval(timer));
})();

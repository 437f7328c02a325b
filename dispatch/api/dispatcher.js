"use strict";
// The dispatcher's side of the control-room board: the queue of incidents waiting for a
// crew, the ranked recommendations with their reasons, and a dispatch button.
//
// It is built only when GET /api/session says the token is a dispatcher's; for any other
// role nothing of it exists in the page. The board (board.html) tells it when it has
// signed in ("board:started") and when an incident changed ("board:incident").
// Writes send the board's session cookie with the X-Dispatch-Board header, which the
// server requires for a write without a bearer token.
(() => {
  const desk = {role: null, selected: null, queue: [], refreshTimer: null, keys: new Map()};
  const PRIORITY = {normal: "普通 normal", vulnerable: "重点 vulnerable",
                    important: "重要 important"};
  const AREA = {urban: "城区 urban", rural: "农村 rural", remote: "偏远 remote"};
  const esc = (s) => String(s ?? "—").replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;",
    ">": "&gt;", '"': "&quot;"}[c]));
  const el = (id) => document.getElementById(id);

  async function call(path, options = {}) {
    const response = await fetch(path, {credentials: "same-origin", cache: "no-store",
      ...options, headers: {"X-Dispatch-Board": "1", ...(options.headers || {})}});
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    return {status: response.status, body};
  }

  async function start() {
    if (desk.role) { scheduleRefresh(0); return; }
    const answer = await call("/api/session");
    if (answer.status !== 200 || !answer.body || !answer.body.may_dispatch) return;
    desk.role = answer.body.role;
    build();
    await refresh();
  }

  function build() {
    const style = document.createElement("style");
    style.textContent = `
      #dispatcher { grid-column: 1 / -1; border-color: #388bfd; }
      #dispatcher .desk { display: grid; grid-template-columns: 1.15fr 1fr; gap: 14px; }
      #dispatch-queue tr { cursor: pointer; }
      #dispatch-queue tr.selected td { background: #1f2d45; }
      #dispatch-recs li { list-style: none; display: grid; grid-template-columns: 1fr auto;
                          gap: 4px 10px; padding: 6px 0; border-bottom: 1px solid var(--line); }
      #dispatch-recs { margin: 0; padding: 0; max-height: 330px; overflow: auto; }
      #dispatch-recs .reasons { color: var(--dim); font-size: 12px; grid-column: 1; }
      #dispatch-recs button { grid-row: 1 / span 2; grid-column: 2; align-self: center;
                              background: #238636; color: #fff; border: 0; border-radius: 6px;
                              padding: 6px 14px; font: inherit; cursor: pointer; }
      #dispatch-recs button:disabled { background: #30363d; cursor: wait; }
      #dispatch-message { min-height: 1.4em; margin-top: 8px; }
      #dispatch-message.ok { color: var(--ok); } #dispatch-message.refused { color: var(--breach); }`;
    document.head.appendChild(style);
    const section = document.createElement("section");
    section.id = "dispatcher";
    section.innerHTML = `
      <h2>调度台 <span class="en">Dispatcher: incidents waiting for a crew, and who to send
        (role <span id="dispatch-role"></span>)</span></h2>
      <div class="desk">
        <div class="scroll"><table>
          <thead><tr><th>待派工单 Incident</th><th>网格 Grid</th><th>区域 Area</th>
            <th>优先 Priority</th><th class="num">户数 Customers</th><th>来电 Call</th></tr></thead>
          <tbody id="dispatch-queue"></tbody>
        </table></div>
        <div>
          <div>推荐班组 <span class="en">Recommended crews for</span>
            <b id="dispatch-incident">—</b> <span id="dispatch-skill" class="en"></span></div>
          <ul id="dispatch-recs"></ul>
          <div id="dispatch-message"></div>
        </div>
      </div>`;
    const kpis = el("kpis");
    kpis.parentNode.insertBefore(section, kpis.nextSibling);
    el("dispatch-role").textContent = desk.role;
    el("dispatch-queue").addEventListener("click", (event) => {
      const row = event.target.closest("tr[data-incident]");
      if (row) select(row.dataset.incident);
    });
    el("dispatch-recs").addEventListener("click", (event) => {
      const button = event.target.closest("button[data-crew]");
      if (button) send(button.dataset.incident, button.dataset.crew, button);
    });
  }

  function scheduleRefresh(delay) {
    if (!desk.role) return;
    clearTimeout(desk.refreshTimer);
    desk.refreshTimer = setTimeout(() => { refresh().catch(() => {}); }, delay);
  }

  async function refresh() {
    const answer = await call("/api/queue");
    if (answer.status !== 200) return;
    desk.queue = answer.body.incidents;
    if (!desk.queue.some((i) => i.incident_id === desk.selected)) {
      desk.selected = desk.queue.length ? desk.queue[0].incident_id : null;
    }
    renderQueue();
    await recommend();
  }

  function renderQueue() {
    el("dispatch-queue").innerHTML = desk.queue.length ? desk.queue.map((i) =>
      `<tr data-incident="${esc(i.incident_id)}"
           class="${i.incident_id === desk.selected ? "selected" : ""}">
         <td>${esc(i.incident_id)}</td><td>${esc(i.grid)}</td><td>${esc(AREA[i.area] || i.area)}</td>
         <td>${esc(PRIORITY[i.priority] || i.priority)}</td>
         <td class="num">${esc(i.customers_affected)}</td>
         <td>${esc(String(i.call).slice(5, 16).replace("T", " "))}</td></tr>`).join("")
      : '<tr><td colspan="6" class="empty">无待派工单 · nothing waiting for a crew</td></tr>';
  }

  async function select(incidentId) {
    desk.selected = incidentId;
    renderQueue();
    await recommend();
  }

  async function recommend() {
    const incidentId = desk.selected;
    el("dispatch-incident").textContent = incidentId || "—";
    if (!incidentId) {
      el("dispatch-skill").textContent = "";
      el("dispatch-recs").innerHTML = "";
      return;
    }
    const answer = await call(`/api/incidents/${encodeURIComponent(incidentId)}/recommendations`);
    if (incidentId !== desk.selected) return;  // another incident was chosen meanwhile
    if (answer.status !== 200) {
      el("dispatch-recs").innerHTML = `<li class="empty">${esc(answer.body && answer.body.error)}</li>`;
      return;
    }
    const skill = answer.body.required_skill;
    el("dispatch-skill").textContent = skill ? `(需技能 required skill: ${skill})` : "";
    const ranked = answer.body.recommendations;
    el("dispatch-recs").innerHTML = ranked.length ? ranked.map((r, n) =>
      `<li data-crew="${esc(r.crew)}"><div><b>${n + 1}. ${esc(r.crew)}</b>
         <span class="en">${esc(r.grid)} · ${esc(r.skills.join(", ") || "no skills")} ·
         score ${esc(r.score)}</span></div>
         <div class="reasons">${r.reasons.map(esc).join(" · ")}</div>
         <button type="button" data-action="dispatch" data-incident="${esc(incidentId)}"
                 data-crew="${esc(r.crew)}">派工 · Dispatch</button></li>`).join("")
      : '<li class="empty">无空闲班组 · no crew available</li>';
  }

  function keyFor(incidentId, crew) {
    // One key per intended dispatch: a retry after a lost answer cannot send the crew twice.
    const intent = `${incidentId}\n${crew}`;
    if (!desk.keys.has(intent)) {
      desk.keys.set(intent, `board-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    }
    return [intent, desk.keys.get(intent)];
  }

  async function send(incidentId, crew, button) {
    const message = el("dispatch-message");
    button.disabled = true;
    const [intent, key] = keyFor(incidentId, crew);
    let answer;
    try {
      answer = await call(`/api/incidents/${encodeURIComponent(incidentId)}/events`, {
        method: "POST", headers: {"Content-Type": "application/json", "Idempotency-Key": key},
        body: JSON.stringify({type: "crew.dispatched", data: {crew}})});
    } catch (error) {
      button.disabled = false;
      message.className = "refused";
      message.textContent = `未送达，请重试 · not sent (${error.message}), try again`;
      return;
    }
    desk.keys.delete(intent);
    if (answer.status === 201) {
      message.className = "ok";
      message.textContent = `已派工 · ${crew} dispatched to ${incidentId}`;
    } else {
      message.className = "refused";
      message.textContent = `未派工 · refused (${answer.status}): ${
        (answer.body && answer.body.error) || "unknown reason"}`;
    }
    await refresh();
  }

  document.addEventListener("board:started", () => { start().catch(() => {}); });
  document.addEventListener("board:incident", () => scheduleRefresh(300));
})();

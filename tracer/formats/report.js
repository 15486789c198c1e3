// The report page of proctrace (tracer/formats/report.py writes it).
//
// The data is columnar JSON in <script id="proctrace-data">: one array per
// field, one entry per process, rows in depth-first tree order, so that a
// process's subtree is the rows right after it. Every string in it was
// escaped by proctrace already; this script only lays it out. It creates DOM
// with createElement and textContent alone (never innerHTML), and draws the
// bars on a canvas, so no string of the data is ever parsed as markup.
//
// Only the rows in view exist in the DOM (a virtual list), and one canvas
// draws their bars: a session of 100,000 processes costs the page a few
// dozen elements, not 100,000.
"use strict";

(function () {
  const ROW = 22; // pixels per row, in the list and on the canvas alike
  const OVERSCAN = 8; // rows drawn beyond the visible ones, for smooth scrolling
  const LABEL_MIN = 240;

  const data = JSON.parse(document.getElementById("proctrace-data").textContent);
  const S = data.strings;
  const P = data.processes;
  const N = P.pid.length;
  const ROLE = {};
  data.roles.forEach((name, i) => { ROLE[name] = i; });
  const FLAG = { pre: 1, incomplete: 2, zombie: 4, running: 8, critical: 16, failed: 32, gain: 64, core: 128, noStart: 256 };
  const MARK = { sent: 0, delivered: 1, execFailed: 2 };
  const END = Math.max(1, data.session.duration_us);

  const str = (i) => (i === undefined || i < 0 ? null : S[i]);

  // ---- times: the data codes them small (report.py says how); here absolute µs ----
  const start = new Float64Array(N);
  const end = new Float64Array(N);
  const reaped = new Float64Array(N);
  const ppid = new Float64Array(N);
  const execT = new Float64Array(data.execs.t.length);
  const markT = new Float64Array(data.marks.t.length);
  const lifeT = new Float64Array(data.life.t.length);
  const lifeRole = new Uint8Array(data.life.line.length);
  const lifeText = new Int32Array(data.life.line.length);
  (function decode() {
    let at = 0;
    for (let i = 0; i < N; i++) {
      at += P.start[i];
      start[i] = at;
      end[i] = P.end[i] < 0 ? -1 : at + P.end[i];
      reaped[i] = P.reaped[i] < 0 ? -1 : at + P.reaped[i];
      const p = P.parent[i];
      ppid[i] = P.ppid[i] || (p >= 0 ? P.pid[p] : 0);
      for (let e = P.exec[i]; e < P.exec[i + 1]; e++) execT[e] = at + data.execs.t[e];
      for (let m = P.mark[i]; m < P.mark[i + 1]; m++) markT[m] = at + data.marks.t[m];
      let t = at;
      for (let k = P.life[i]; k < P.life[i + 1]; k++) {
        t += data.life.t[k];
        lifeT[k] = t;
        const line = data.life.line[k];
        lifeRole[k] = line % data.role_codes;
        lifeText[k] = Math.floor(line / data.role_codes);
      }
    }
  })();

  // ---- the tree: depth and subtree size (rows are in DFS order) -------------
  const depth = new Int32Array(N);
  const size = new Int32Array(N).fill(1);
  const parentOf = P.parent;
  for (let i = 0; i < N; i++) {
    const p = parentOf[i];
    depth[i] = p >= 0 && p < i ? depth[p] + 1 : 0;
  }
  for (let i = N - 1; i >= 0; i--) {
    const p = parentOf[i];
    if (p >= 0 && p < i) size[p] += size[i];
  }

  // ---- elements ---------------------------------------------------------------
  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  const body = document.body;
  const header = el("header");
  const toolbar = el("div", "toolbar");
  const main = el("div", "main");
  const pane = el("div", "pane");
  const axis = el("canvas", "axis");
  const scroller = el("div", "scroller");
  const spacer = el("div", "spacer");
  const canvas = el("canvas", "bars");
  const tooltip = el("div", "tooltip");
  const detail = el("aside", "detail");
  detail.id = "detail";
  scroller.appendChild(spacer);
  spacer.appendChild(canvas);
  pane.append(axis, scroller, tooltip);
  main.append(pane, detail);
  body.append(header, toolbar, main);

  // ---- the session header -------------------------------------------------------
  function fact(parent, name, value, cls) {
    const item = el("div", "fact" + (cls ? " " + cls : ""));
    item.append(el("span", "name", name), el("span", "value", value));
    parent.appendChild(item);
    return item;
  }
  (function buildHeader() {
    const s = data.session;
    const c = data.counts;
    header.appendChild(el("h1", null, "proctrace: " + s.traced));
    const facts = el("div", "facts");
    fact(facts, "host", s.host);
    fact(facts, "kernel", s.kernel);
    fact(facts, "started", s.started || "unknown");
    fact(facts, "duration", s.duration);
    fact(facts, "from", s.source);
    header.appendChild(facts);
    const counts = el("div", "facts counts");
    fact(counts, "processes", c.processes + (c.left_out ? " (" + c.left_out + " ended early and are not in this report)" : ""));
    fact(counts, "events", c.events);
    const f = c.failures;
    const failed = Object.keys(f).reduce((n, k) => n + f[k], 0);
    const words = Object.keys(f).filter((k) => f[k]).map((k) => f[k] + " " + k);
    fact(counts, "failures", failed ? words.join(", ") : "none", failed ? "bad" : "ok");
    if (c.path_misses) fact(counts, "not failures", c.path_misses + " folded into their execs");
    fact(counts, "signals sent", c.signals_sent);
    header.appendChild(counts);
    const lost = el("div", "lost " + (c.lost_total ? "some" : "none"));
    lost.id = "lost";
    lost.textContent = c.lost_total ? c.lost_words : "Events lost: 0. Every event the kernel produced was read.";
    header.appendChild(lost);
  })();

  // ---- the toolbar --------------------------------------------------------------
  const search = el("input");
  search.id = "search";
  search.type = "search";
  search.placeholder = "search name, command line or pid";
  search.setAttribute("aria-label", "search processes");
  function toggle(id, label, checked) {
    const wrap = el("label", "toggle");
    const box = el("input");
    box.type = "checkbox";
    box.id = id;
    box.checked = checked;
    wrap.append(box, el("span", null, label));
    return [wrap, box];
  }
  const [failWrap, failuresOnly] = toggle("failures-only", "failures only", false);
  const [critWrap, criticalOn] = toggle("critical", "critical path", !!data.critical_path);
  if (!data.critical_path) critWrap.hidden = true;
  function button(label, title, onclick) {
    const b = el("button", null, label);
    b.type = "button";
    b.title = title;
    b.addEventListener("click", onclick);
    return b;
  }
  const shownCount = el("span", "shown");
  shownCount.id = "shown";
  toolbar.append(
    search, failWrap, critWrap,
    button("expand all", "expand every process", () => { collapsed.fill(0); refresh(); }),
    button("collapse all", "collapse every process with children", () => {
      for (let i = 0; i < N; i++) collapsed[i] = size[i] > 1 ? 1 : 0;
      refresh();
    }),
    button("−", "zoom out (or -)", () => zoom(2, 0.5)),
    button("+", "zoom in (or +)", () => zoom(0.5, 0.5)),
    button("fit", "the whole session (or 0)", () => { view0 = 0; span = END; draw(); }),
    shownCount,
  );

  // ---- which rows are shown -----------------------------------------------------
  const collapsed = new Uint8Array(N);
  let rows = new Int32Array(0); // the visible rows, in order
  let selected = -1;
  const lowered = new Array(S.length);
  const low = (i) => {
    if (i < 0) return "";
    let v = lowered[i];
    if (v === undefined) v = lowered[i] = S[i].toLowerCase();
    return v;
  };

  function matcher() {
    const q = search.value.trim().toLowerCase();
    const fails = failuresOnly.checked;
    if (!q && !fails) return null;
    const pid = /^\d+$/.test(q) ? Number(q) : -1;
    return (i) => {
      if (fails && !(P.flags[i] & FLAG.failed)) return false;
      if (!q) return true;
      return P.pid[i] === pid || low(P.comm[i]).includes(q) || low(P.cmd[i]).includes(q);
    };
  }

  function computeRows() {
    const match = matcher();
    const out = [];
    if (match === null) {
      for (let i = 0; i < N; i++) {
        out.push(i);
        if (collapsed[i]) i += size[i] - 1;
      }
    } else {
      // A match shows with its ancestors, so that it is seen where it ran.
      const keep = new Uint8Array(N);
      for (let i = N - 1; i >= 0; i--) {
        if (keep[i] || match(i)) {
          keep[i] = 1;
          const p = parentOf[i];
          if (p >= 0 && p < i) keep[p] = 1;
        }
      }
      for (let i = 0; i < N; i++) {
        if (!keep[i]) continue;
        out.push(i);
        if (collapsed[i]) i += size[i] - 1;
      }
    }
    rows = Int32Array.from(out);
    shownCount.textContent = rows.length === N ? N + " processes" : rows.length + " of " + N + " processes shown";
    spacer.style.height = rows.length * ROW + "px";
  }

  // ---- the list (virtual) and the bars --------------------------------------------
  const pool = [];
  let labelWidth = 420;
  let view0 = 0;
  let span = END;

  function rowElement() {
    const row = el("div", "row");
    const twist = el("span", "twist");
    const pid = el("span", "pid");
    const cmd = el("span", "cmd");
    const out = el("span", "outcome");
    row.append(twist, pid, cmd, out);
    row.addEventListener("click", (ev) => {
      const i = Number(row.dataset.row);
      if (ev.target === twist && size[i] > 1) {
        collapsed[i] ^= 1;
        refresh();
      } else {
        select(i);
      }
    });
    spacer.appendChild(row);
    return { row, twist, pid, cmd, out };
  }

  function layoutRows() {
    const top = scroller.scrollTop;
    const height = scroller.clientHeight;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    const count = Math.max(0, last - first);
    while (pool.length < count) pool.push(rowElement());
    for (let k = 0; k < pool.length; k++) {
      const item = pool[k];
      if (k >= count) {
        // Out of use until the view needs more rows: it stands for no process.
        item.row.hidden = true;
        delete item.row.dataset.row;
        delete item.row.dataset.pid;
        continue;
      }
      const r = first + k;
      const i = rows[r];
      item.row.hidden = false;
      item.row.style.top = r * ROW + "px";
      item.row.style.width = labelWidth + "px";
      item.row.dataset.row = String(i);
      item.row.dataset.pid = String(P.pid[i]);
      item.row.className = "row role-" + data.roles[P.role[i]] + (i === selected ? " selected" : "") +
        (P.flags[i] & FLAG.critical && criticalOn.checked ? " critical" : "");
      item.twist.style.marginLeft = Math.min(depth[i], 40) * 12 + "px";
      item.twist.textContent = size[i] > 1 ? (collapsed[i] ? "▸" : "▾") : "·";
      item.pid.textContent = String(P.pid[i]);
      item.cmd.textContent = str(P.cmd[i]);
      item.out.textContent = str(P.outcome[i]) + (P.flags[i] & FLAG.zombie ? ", zombie" : "");
    }
    canvas.style.top = top + "px";
  }

  const COLORS = {
    exit_ok: "#2e8b57", exit_bad: "#c0392b", running: "#3b6ea8", other: "#888888",
    zombie: "#9b9b9b", sent: "#d4a017", delivered: "#a23cb4", execFailed: "#e0301e", critical: "#ff8c00",
  };
  function roleColor(i) {
    const name = data.roles[P.role[i]];
    return COLORS[name] || COLORS.other;
  }

  function sizeCanvas(c, width, height) {
    const ratio = window.devicePixelRatio || 1;
    if (c.width !== Math.round(width * ratio) || c.height !== Math.round(height * ratio)) {
      c.width = Math.round(width * ratio);
      c.height = Math.round(height * ratio);
      c.style.width = width + "px";
      c.style.height = height + "px";
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    return ctx;
  }

  const x = (t, width) => ((t - view0) / span) * width;

  function endOf(i) {
    if (end[i] >= 0) return end[i];
    if (reaped[i] >= 0) return reaped[i];
    return END;
  }

  function drawBars() {
    const width = Math.max(50, scroller.clientWidth - labelWidth);
    const height = scroller.clientHeight;
    canvas.style.left = labelWidth + "px";
    const ctx = sizeCanvas(canvas, width, height);
    ctx.clearRect(0, 0, width, height);
    const top = scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW));
    const last = Math.min(rows.length, Math.ceil((top + height) / ROW));
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "middle";
    for (let r = first; r < last; r++) {
      const i = rows[r];
      const y = r * ROW - top;
      if (i === selected) {
        ctx.fillStyle = "rgba(59,110,168,0.12)";
        ctx.fillRect(0, y, width, ROW);
      }
      const t0 = Math.max(0, start[i]);
      const t1 = endOf(i);
      const x0 = x(t0, width);
      const x1 = Math.max(x0 + 1, x(t1, width));
      if (x1 < 0 || x0 > width) continue;
      const color = roleColor(i);
      // The life, then each exec's image over it, alternating in shade.
      ctx.globalAlpha = 0.35;
      ctx.fillStyle = color;
      ctx.fillRect(x0, y + 5, x1 - x0, ROW - 10);
      ctx.globalAlpha = 1;
      const e0 = P.exec[i];
      const e1 = P.exec[i + 1];
      for (let e = e0; e < e1; e++) {
        const a = x(execT[e], width);
        const b = Math.max(a + 1, x(e + 1 < e1 ? execT[e + 1] : t1, width));
        ctx.globalAlpha = (e - e0) % 2 ? 0.7 : 1;
        ctx.fillStyle = color;
        ctx.fillRect(a, y + 3, b - a, ROW - 6);
        ctx.globalAlpha = 1;
        if (b - a > 40) {
          ctx.save();
          ctx.beginPath();
          ctx.rect(a, y, b - a, ROW);
          ctx.clip();
          ctx.fillStyle = "#ffffff";
          ctx.fillText(S[data.execs.label[e]], Math.max(a, 0) + 3, y + ROW / 2);
          ctx.restore();
        }
      }
      // The zombie: from the exit to the reap (or to the end, never reaped).
      if (end[i] >= 0 && (reaped[i] >= 0 || P.flags[i] & FLAG.zombie)) {
        const z1 = x(reaped[i] >= 0 ? reaped[i] : END, width);
        if (z1 > x1) {
          ctx.setLineDash([2, 2]);
          ctx.strokeStyle = COLORS.zombie;
          ctx.strokeRect(x1, y + 7, z1 - x1, ROW - 14);
          ctx.setLineDash([]);
        }
      }
      if (P.flags[i] & FLAG.critical && criticalOn.checked) {
        ctx.strokeStyle = COLORS.critical;
        ctx.lineWidth = 2;
        ctx.strokeRect(x0, y + 2, x1 - x0, ROW - 4);
        ctx.lineWidth = 1;
      }
      for (let m = P.mark[i]; m < P.mark[i + 1]; m++) {
        const mx = x(markT[m], width);
        const kind = data.marks.kind[m];
        ctx.fillStyle = kind === MARK.sent ? COLORS.sent : kind === MARK.delivered ? COLORS.delivered : COLORS.execFailed;
        ctx.beginPath();
        if (kind === MARK.execFailed) {
          ctx.fillRect(mx - 3, y + 3, 6, ROW - 6);
        } else {
          ctx.moveTo(mx, y + ROW - 3);
          ctx.lineTo(mx - 4, y + 3);
          ctx.lineTo(mx + 4, y + 3);
          ctx.closePath();
          ctx.fill();
        }
      }
    }
  }

  function fmtDuration(us) {
    // As text.format_duration says durations, to the precision of the data (µs).
    if (us < 999.95) return us.toFixed(us < 10 ? 1 : 0) + "µs";
    if (us < 999950) return (us / 1000).toFixed(1) + "ms";
    if (us < 59995000) return (us / 1e6).toFixed(2) + "s";
    const s = Math.round(us / 1e6);
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    const m = Math.round(s / 60);
    return Math.floor(m / 60) + "h" + String(m % 60).padStart(2, "0") + "m";
  }

  function drawAxis() {
    const width = Math.max(50, scroller.clientWidth - labelWidth);
    axis.style.marginLeft = labelWidth + "px";
    const ctx = sizeCanvas(axis, width, 24);
    ctx.clearRect(0, 0, width, 24);
    ctx.fillStyle = "#555";
    ctx.strokeStyle = "#bbb";
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "top";
    const target = span / Math.max(1, width / 110);
    const steps = [1, 2, 5];
    let step = 1;
    for (let p = 1; step < target; p *= 10) {
      for (const s of steps) {
        step = s * p;
        if (step >= target) break;
      }
    }
    const firstTick = Math.ceil(view0 / step) * step;
    for (let t = firstTick; t <= view0 + span; t += step) {
      const px = x(t, width);
      ctx.beginPath();
      ctx.moveTo(px + 0.5, 14);
      ctx.lineTo(px + 0.5, 24);
      ctx.stroke();
      ctx.fillText(t === 0 ? "0" : "+" + fmtDuration(t), px + 2, 2);
    }
  }

  function draw() {
    span = Math.max(10, Math.min(span, END * 1.05));
    view0 = Math.max(-span * 0.02, Math.min(view0, END - span * 0.5));
    drawAxis();
    drawBars();
  }

  function refresh() {
    computeRows();
    layoutRows();
    draw();
  }

  function zoom(factor, at) {
    const centre = view0 + span * at;
    span *= factor;
    view0 = centre - span * at;
    draw();
  }

  // ---- the detail pane ------------------------------------------------------------
  function section(title) {
    const s = el("section");
    s.appendChild(el("h3", null, title));
    detail.appendChild(s);
    return s;
  }

  function copyText(text, status) {
    const done = () => { status.textContent = "copied"; };
    const fallback = () => {
      const area = el("textarea");
      area.value = text;
      detail.appendChild(area);
      area.select();
      try {
        document.execCommand("copy");
        done();
      } catch (e) {
        status.textContent = "select the command above and copy it";
      }
      area.remove();
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  }

  function select(i) {
    selected = i;
    layoutRows();
    drawBars();
    showDetail(i);
  }

  function showDetail(i) {
    detail.replaceChildren();
    if (i < 0) {
      detail.appendChild(el("p", "hint", "Select a process to see its life."));
      return;
    }
    const head = el("h2");
    head.append(el("span", "pid", P.pid[i]), document.createTextNode(" "), el("span", null, str(P.comm[i])));
    detail.appendChild(head);
    const cmdBox = el("pre", "command", str(P.cmd[i]));
    cmdBox.id = "detail-command";
    detail.appendChild(cmdBox);
    const status = el("span", "copy-status");
    const copy = button("copy as shell command", "copy the command line, quoted for bash", () => copyText(str(P.cmd[i]), status));
    copy.id = "copy-command";
    detail.append(copy, status);

    const facts = el("dl");
    const add = (name, value, cls) => {
      if (value === null || value === undefined || value === "") return;
      facts.append(el("dt", null, name), el("dd", cls || null, value));
    };
    const parentRow = P.parent[i];
    add("parent", ppid[i] + (parentRow >= 0 ? " (" + str(P.comm[parentRow]) + ")" : ""));
    add("outcome", str(P.outcome[i]) + (P.flags[i] & FLAG.zombie ? "; still a zombie at the end" : ""),
      "role-" + data.roles[P.role[i]]);
    const known = !(P.flags[i] & FLAG.noStart);
    add("started", known ? "+" + fmtDuration(start[i]) : "not known");
    if (end[i] >= 0 && known) add("lived", fmtDuration(end[i] - start[i]));
    add("user", str(P.user[i]));
    add("privileges", str(P.privileges[i]));
    add("cwd", str(P.cwd[i]));
    add("where", str(P.group[i]));
    add("cgroup", str(P.cgroup[i]));
    add("used", str(P.usage[i]));
    add("children", P.children[i] ? String(P.children[i]) : null);
    add("threads", P.threads[i] > 1 ? String(P.threads[i]) : null);
    if (P.critical_us[i] > 0) add("critical path", fmtDuration(P.critical_us[i]) + " of it on the critical path");
    const notes = [];
    if (P.flags[i] & FLAG.pre) notes.push("started before tracing");
    if (P.flags[i] & FLAG.incomplete) notes.push("incomplete: events were lost while it lived");
    if (notes.length) add("notes", notes.join("; "), "role-exit_bad");
    detail.appendChild(facts);
    if (parentRow >= 0) detail.appendChild(button("show parent", "select the parent", () => reveal(parentRow)));

    const life = section("life");
    const list = el("ol", "life");
    for (let k = P.life[i]; k < P.life[i + 1]; k++) {
      const item = el("li", "role-" + data.roles[lifeRole[k]]);
      const t = lifeT[k];
      item.append(el("span", "time", t >= 0 ? "+" + fmtDuration(t) : ""), el("span", "what", S[lifeText[k]]));
      list.appendChild(item);
    }
    life.appendChild(list);
    const env = str(P.env[i]);
    if (env !== null) {
      const s = section("environment (secrets redacted)");
      s.appendChild(el("pre", "env", env));
    }
  }

  function reveal(i) {
    // Open its ancestors, clear a filter that hides it, and scroll to it.
    for (let p = parentOf[i]; p >= 0; p = parentOf[p]) collapsed[p] = 0;
    computeRows();
    let r = rows.indexOf(i);
    if (r < 0) {
      search.value = "";
      failuresOnly.checked = false;
      computeRows();
      r = rows.indexOf(i);
    }
    if (r >= 0) {
      const top = scroller.scrollTop;
      if (r * ROW < top || (r + 1) * ROW > top + scroller.clientHeight) {
        scroller.scrollTop = r * ROW - scroller.clientHeight / 3;
      }
    }
    layoutRows();
    select(i);
  }

  // ---- events ----------------------------------------------------------------------
  let searchTimer = 0;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { scroller.scrollTop = 0; refresh(); }, N > 20000 ? 200 : 60);
  });
  failuresOnly.addEventListener("change", () => { scroller.scrollTop = 0; refresh(); });
  criticalOn.addEventListener("change", () => { layoutRows(); drawBars(); });
  scroller.addEventListener("scroll", () => { layoutRows(); drawBars(); }, { passive: true });
  window.addEventListener("resize", () => { fitLabels(); layoutRows(); draw(); });

  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const width = canvas.clientWidth;
    const at = Math.min(1, Math.max(0, ev.offsetX / width));
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      view0 += (span * (ev.deltaX || ev.deltaY)) / width;
      draw();
    } else {
      zoom(Math.pow(1.0015, ev.deltaY), at);
    }
  }, { passive: false });

  let drag = null;
  canvas.addEventListener("mousedown", (ev) => { drag = { x: ev.clientX, view0, moved: false }; });
  window.addEventListener("mousemove", (ev) => {
    if (drag) {
      const dx = ev.clientX - drag.x;
      if (Math.abs(dx) > 2) drag.moved = true;
      view0 = drag.view0 - (dx * span) / canvas.clientWidth;
      draw();
    }
  });
  window.addEventListener("mouseup", (ev) => {
    if (drag && !drag.moved && ev.target === canvas) {
      const r = Math.floor((ev.offsetY + scroller.scrollTop) / ROW);
      if (r >= 0 && r < rows.length) select(rows[r]);
    }
    drag = null;
  });

  canvas.addEventListener("mousemove", (ev) => {
    const r = Math.floor((ev.offsetY + scroller.scrollTop) / ROW);
    if (drag || r < 0 || r >= rows.length) {
      tooltip.hidden = true;
      return;
    }
    const i = rows[r];
    const width = canvas.clientWidth;
    const t = view0 + (ev.offsetX / width) * span;
    const near = (6 * span) / width;
    let text = null;
    for (let m = P.mark[i]; m < P.mark[i + 1]; m++) {
      if (Math.abs(markT[m] - t) <= near) text = S[data.marks.text[m]];
    }
    if (text === null) {
      for (let e = P.exec[i]; e < P.exec[i + 1]; e++) {
        if (execT[e] <= t) text = "exec " + S[data.execs.label[e]];
      }
    }
    const lines = [P.pid[i] + " " + str(P.comm[i]) + ": " + str(P.outcome[i])];
    if (text !== null) lines.push(text);
    tooltip.textContent = lines.join("\n");
    tooltip.hidden = false;
    tooltip.style.left = ev.clientX + 12 + "px";
    tooltip.style.top = ev.clientY + 12 + "px";
  });
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });

  document.addEventListener("keydown", (ev) => {
    if (ev.target === search) return;
    const r = selected >= 0 ? rows.indexOf(selected) : -1;
    if (ev.key === "j" || ev.key === "ArrowDown") {
      if (r + 1 < rows.length) reveal(rows[r + 1]);
    } else if (ev.key === "k" || ev.key === "ArrowUp") {
      if (r > 0) reveal(rows[r - 1]);
    } else if (ev.key === "Enter" && selected >= 0 && size[selected] > 1) {
      collapsed[selected] ^= 1;
      refresh();
    } else if (ev.key === "+" || ev.key === "=") {
      zoom(0.5, 0.5);
    } else if (ev.key === "-") {
      zoom(2, 0.5);
    } else if (ev.key === "0") {
      view0 = 0;
      span = END;
      draw();
    } else if (ev.key === "/") {
      ev.preventDefault();
      search.focus();
    } else {
      return;
    }
    ev.preventDefault();
  });

  function fitLabels() {
    labelWidth = Math.max(LABEL_MIN, Math.floor(scroller.clientWidth * 0.45));
  }

  tooltip.hidden = true;
  fitLabels();
  refresh();
  showDetail(N === 1 ? 0 : -1);
  body.dataset.ready = "1";
  window.proctraceReady = performance.now();
})();

/* eval_pipeline results explorer: plain JavaScript, no libraries, no server.
 *
 * data/index.js calls window.__explorer_index(index) before this file runs; a
 * partition's data/p/<dataset>@<model>.js is loaded by a <script> tag when it is opened
 * (browsers refuse fetch() of file:// URLs) and calls window.__explorer_partition(id, data).
 * Views are hash routes, so every view has a link: #/ (heatmap), #/trends,
 * #/p/<id> (samples), #/p/<id>/diff, #/p/<id>/trends.
 */
(function () {
  "use strict";

  var INDEX = window.__EXPLORER_INDEX;
  var ROW_HEIGHT = 36;
  var partitions = {}; // id -> data
  var pending = {}; // id -> [resolve, reject] callbacks
  var state = { sort: { key: "avg", desc: true }, modelFilter: "", datasetFilter: "", suite: "", tag: "" };

  window.__explorer_partition = function (id, data) {
    partitions[id] = data;
    (pending[id] || []).forEach(function (cb) { cb[0](data); });
    delete pending[id];
  };

  // ------------------------------------------------------------------ helpers
  function esc(text) {
    if (text === null || text === undefined) return "";
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function fmt(value, scale) {
    if (value === null || value === undefined || isNaN(value)) return "–";
    var wide = scale && scale[1] - scale[0] > 1.5;
    return Number(value).toFixed(wide ? 2 : 3);
  }
  function money(value) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "$0";
    return value < 0.01 ? "$" + value.toPrecision(2) : "$" + value.toFixed(2);
  }
  function pct(value) {
    return value === null || value === undefined ? "–" : (100 * value).toFixed(0) + "%";
  }
  function pval(p) {
    if (p === null || p === undefined) return "–";
    return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
  }
  function norm(value, scale) {
    if (value === null || value === undefined) return null;
    var t = (value - scale[0]) / (scale[1] - scale[0]);
    return Math.max(0, Math.min(1, t));
  }
  // Red (bad) through amber to green (good), evenly spaced stops.
  var STOPS = [[215, 48, 39], [244, 109, 67], [253, 174, 97], [254, 224, 139], [217, 239, 139], [145, 207, 96], [26, 152, 80]];
  function colour(t) {
    if (t === null) return "#eef0f3";
    var x = t * (STOPS.length - 1), i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
    var c = STOPS[i].map(function (a, k) { return Math.round(a + f * (STOPS[i + 1][k] - a)); });
    return "rgb(" + c.join(",") + ")";
  }
  function ink(t) { return t !== null && (t < 0.12 || t > 0.9) ? "#fff" : "#1d2330"; }
  function pid(dataset, model) { return dataset + INDEX.separator + model; }
  function el(id) { return document.getElementById(id); }
  function parseHash() {
    var hash = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
    var q = {}, parts = hash.split("?");
    (parts[1] || "").split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("=");
      q[kv.slice(0, i < 0 ? kv.length : i)] = i < 0 ? "1" : kv.slice(i + 1);
    });
    return { path: parts[0].split("/").filter(Boolean), query: q };
  }
  function link(path, query) {
    var qs = Object.keys(query || {}).filter(function (k) { return query[k] !== "" && query[k] !== undefined && query[k] !== null; })
      .map(function (k) { return k + "=" + encodeURIComponent(query[k]); }).join("&");
    return "#/" + path.map(encodeURIComponent).join("/") + (qs ? "?" + qs : "");
  }

  function loadPartition(id) {
    if (partitions[id]) return Promise.resolve(partitions[id]);
    return new Promise(function (resolve, reject) {
      var first = !pending[id];
      (pending[id] = pending[id] || []).push([resolve, reject]);
      if (!first) return;
      var tag = document.createElement("script");
      tag.src = "data/p/" + encodeURIComponent(id) + ".js";
      tag.onerror = function () {
        (pending[id] || []).forEach(function (cb) { cb[1](new Error("no per-sample data for " + id)); });
        delete pending[id];
      };
      document.body.appendChild(tag);
    });
  }

  // ------------------------------------------------------------------ tooltip
  var tip = document.createElement("div");
  tip.className = "tip";
  document.body.appendChild(tip);
  function showTip(html, ev) {
    tip.innerHTML = html;
    tip.style.display = "block";
    var x = ev.clientX + 14, y = ev.clientY + 14;
    var r = tip.getBoundingClientRect();
    if (x + r.width > window.innerWidth - 8) x = ev.clientX - r.width - 14;
    if (y + r.height > window.innerHeight - 8) y = ev.clientY - r.height - 14;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  // ------------------------------------------------------------------ heatmap
  var cellsByKey = null;
  function cellIndex() {
    if (cellsByKey) return cellsByKey;
    cellsByKey = {};
    INDEX.cells.forEach(function (c) { cellsByKey[c[0] + ":" + c[1]] = c; });
    return cellsByKey;
  }
  function visibleDatasets() {
    var f = state.datasetFilter.toLowerCase();
    return INDEX.datasets.map(function (d, i) { return i; }).filter(function (i) {
      var d = INDEX.datasets[i];
      if (f && d.name.toLowerCase().indexOf(f) < 0) return false;
      if (state.suite && d.suites.indexOf(state.suite) < 0) return false;
      if (state.tag && d.tags.indexOf(state.tag) < 0) return false;
      return true;
    });
  }
  function visibleModels() {
    var f = state.modelFilter.toLowerCase();
    return INDEX.models.map(function (m, i) { return i; }).filter(function (i) {
      return !f || INDEX.models[i].toLowerCase().indexOf(f) >= 0;
    });
  }
  function modelAverage(mi, dis) {
    var idx = cellIndex(), sum = 0, n = 0;
    dis.forEach(function (di) {
      var c = idx[di + ":" + mi];
      if (c && c[2] !== null) { sum += norm(c[2], INDEX.datasets[di].scale); n++; }
    });
    return n ? sum / n : null;
  }

  function renderHeatmap(app) {
    var allTags = {};
    INDEX.datasets.forEach(function (d) { d.tags.forEach(function (t) { allTags[t] = 1; }); });
    var tagOptions = Object.keys(allTags).sort();
    app.innerHTML =
      '<section class="toolbar">' +
      '<label>Model <input id="f-model" type="search" placeholder="filter models" value="' + esc(state.modelFilter) + '"></label>' +
      '<label>Dataset <input id="f-dataset" type="search" placeholder="filter datasets" value="' + esc(state.datasetFilter) + '"></label>' +
      (INDEX.suites.length ? '<label>Suite <select id="f-suite"><option value="">all</option>' +
        INDEX.suites.map(function (s) { return "<option" + (s === state.suite ? " selected" : "") + ">" + esc(s) + "</option>"; }).join("") + "</select></label>" : "") +
      (tagOptions.length ? '<label>Tag <select id="f-tag"><option value="">all</option>' +
        tagOptions.map(function (s) { return "<option" + (s === state.tag ? " selected" : "") + ">" + esc(s) + "</option>"; }).join("") + "</select></label>" : "") +
      '<span class="legend"><span>worse</span><i class="ramp"></i><span>better</span><em>each column on its own scale</em></span>' +
      '</section><div id="grid" class="grid-wrap"></div>' +
      '<p class="hint" id="grid-count"></p>';
    function rerender() { drawGrid(); }
    el("f-model").oninput = function () { state.modelFilter = this.value; rerender(); };
    el("f-dataset").oninput = function () { state.datasetFilter = this.value; rerender(); };
    if (el("f-suite")) el("f-suite").onchange = function () { state.suite = this.value; rerender(); };
    if (el("f-tag")) el("f-tag").onchange = function () { state.tag = this.value; rerender(); };
    drawGrid();
  }

  function drawGrid() {
    var dis = visibleDatasets(), mis = visibleModels(), idx = cellIndex();
    var avg = {};
    mis.forEach(function (mi) { avg[mi] = modelAverage(mi, dis); });
    var key = state.sort.key, desc = state.sort.desc;
    mis.sort(function (a, b) {
      var va, vb;
      if (key === "model") { va = INDEX.models[a]; vb = INDEX.models[b]; }
      else if (key === "avg") { va = avg[a]; vb = avg[b]; }
      else {
        var ca = idx[key + ":" + a], cb = idx[key + ":" + b];
        va = ca ? ca[2] : null; vb = cb ? cb[2] : null;
      }
      if (va === vb) return INDEX.models[a] < INDEX.models[b] ? -1 : 1;
      if (va === null) return 1;
      if (vb === null) return -1;
      return (va < vb ? -1 : 1) * (desc ? -1 : 1);
    });
    function arrow(k) { return state.sort.key === String(k) ? (state.sort.desc ? " ▾" : " ▴") : ""; }
    var html = ['<table class="heat"><thead><tr><th class="corner sortable" data-sort="model">model' + arrow("model") +
      '</th><th class="sortable avg" data-sort="avg" title="mean of the normalized scores of the shown columns">avg' + arrow("avg") + "</th>"];
    dis.forEach(function (di) {
      var d = INDEX.datasets[di];
      html.push('<th class="sortable col" data-sort="' + di + '" title="' + esc(d.name + ": " + d.metric + " on [" + d.scale[0] + ", " + d.scale[1] + "]") +
        '"><div class="colname">' + esc(d.name) + arrow(di) + '</div><div class="metric">' + esc(d.metric) + "</div></th>");
    });
    html.push("</tr></thead><tbody>");
    mis.forEach(function (mi) {
      var a = avg[mi];
      html.push('<tr><th class="rowname">' + esc(INDEX.models[mi]) + '</th><td class="avg" style="background:' + colour(a) + ";color:" + ink(a) + '">' + (a === null ? "–" : (100 * a).toFixed(0)) + "</td>");
      dis.forEach(function (di) {
        var c = idx[di + ":" + mi];
        if (!c) { html.push('<td class="empty"></td>'); return; }
        if (c[10] === "not_applicable") {
          html.push('<td class="cell na" data-c="' + di + ":" + mi + '" title="not applicable">n/a</td>');
          return;
        }
        var d = INDEX.datasets[di], t = norm(c[2], d.scale);
        var half = c[3] !== null && c[4] !== null ? (c[4] - c[3]) / 2 : null;
        html.push('<td class="cell" data-c="' + di + ":" + mi + '" style="background:' + colour(t) + ";color:" + ink(t) + '">' +
          '<a href="' + link(["p", pid(d.name, INDEX.models[mi])]) + '"><b>' + fmt(c[2], d.scale) + "</b>" +
          (half !== null ? "<small>±" + fmt(half, d.scale) + "</small>" : "") +
          (c[10] === "generate" && d.kind !== "rating" && isChoice(d) ? '<sup class="mode" title="generated answer">gen</sup>' : "") + "</a></td>");
      });
      html.push("</tr>");
    });
    html.push("</tbody></table>");
    var grid = el("grid");
    grid.innerHTML = html.join("");
    el("grid-count").textContent = mis.length + " models × " + dis.length + " datasets, " + INDEX.cells.length +
      " partitions in the store; generated " + INDEX.generated_at + ". Click a cell for its samples.";
    grid.querySelectorAll("th.sortable").forEach(function (th) {
      th.onclick = function () {
        var k = th.getAttribute("data-sort");
        if (state.sort.key === k) state.sort.desc = !state.sort.desc;
        else state.sort = { key: k, desc: k !== "model" };
        drawGrid();
      };
    });
    grid.onmousemove = function (ev) {
      var td = ev.target.closest ? ev.target.closest("td.cell") : null;
      if (!td) { hideTip(); return; }
      var c = idx[td.getAttribute("data-c")], d = INDEX.datasets[c[0]];
      showTip("<b>" + esc(d.name) + " · " + esc(INDEX.models[c[1]]) + "</b><br>" +
        esc(d.metric) + ": <b>" + (c[10] === "not_applicable" ? "n/a" : fmt(c[2], d.scale)) + "</b> (" + d.kind + " scale)<br>" +
        (c[10] ? "answer: " + esc(modeLabel(c[10])) + "<br>" : "") +
        "95% CI [" + fmt(c[3], d.scale) + ", " + fmt(c[4], d.scale) + "], n = " + c[5] + "<br>" +
        "cost " + money(c[6]) + ", errors " + c[7] + ", runs " + c[8] + sparkSvg(c[9], d.scale, 160, 34), ev);
    };
    grid.onmouseleave = hideTip;
  }

  // How a cell's number was obtained (generations.answer_mode).
  function modeLabel(mode) {
    return { loglikelihood: "log-likelihood", generate: "generated", not_applicable: "not applicable" }[mode] || mode;
  }
  function isChoice(d) { return /^acc/.test(d.metric); }

  function sparkSvg(values, scale, w, h) {
    var pts = (values || []).filter(function (v) { return v !== null; });
    if (pts.length < 2) return "";
    var xs = function (i) { return 2 + (i * (w - 4)) / (pts.length - 1); };
    var ys = function (v) { return h - 2 - norm(v, scale) * (h - 4); };
    var d = pts.map(function (v, i) { return (i ? "L" : "M") + xs(i).toFixed(1) + " " + ys(v).toFixed(1); }).join("");
    return '<br><svg class="spark" width="' + w + '" height="' + h + '"><rect class="frame" x="0.5" y="0.5" width="' + (w - 1) + '" height="' + (h - 1) + '" rx="3"/><path d="' + d + '"/>' +
      '<circle cx="' + xs(pts.length - 1) + '" cy="' + ys(pts[pts.length - 1]) + '" r="2.5"/></svg>';
  }

  // ------------------------------------------------------------------ global trends
  function renderAllTrends(app) {
    var idx = cellIndex(), items = [];
    visibleModels().forEach(function (mi) {
      visibleDatasets().forEach(function (di) {
        var c = idx[di + ":" + mi];
        if (c) items.push(c);
      });
    });
    items.sort(function (a, b) { return b[8] - a[8]; });
    var shown = items.slice(0, 400);
    app.innerHTML = '<h1>Trends</h1><p class="hint">Each partition\'s primary metric over its last runs (' +
      shown.length + " of " + items.length + " partitions, most runs first; heatmap filters apply). Click one for its runs with CIs and cost.</p>" +
      '<div class="cards">' + shown.map(function (c) {
        var d = INDEX.datasets[c[0]], m = INDEX.models[c[1]];
        return '<a class="card" href="' + link(["p", pid(d.name, m), "trends"]) + '"><div class="card-title">' + esc(d.name) + " · " + esc(m) +
          '</div><div class="card-value">' + fmt(c[2], d.scale) + " <small>" + esc(d.metric) + ", " + c[8] + " run" + (c[8] === 1 ? "" : "s") + "</small></div>" +
          (sparkSvg(c[9], d.scale, 200, 40) || '<div class="nospark">one run</div>') + "</a>";
      }).join("") + "</div>";
  }

  // ------------------------------------------------------------------ partition
  function renderPartition(app, id, tab, query) {
    app.innerHTML = '<p class="loading">Loading ' + esc(id) + "&hellip;</p>";
    loadPartition(id).then(function (p) {
      var tabs = [["samples", "Samples"], ["diff", "Run diff"], ["trends", "Trends"]];
      var aggs = p.aggregates.map(function (a) {
        var scale = p.scales[a.metric];
        return '<span class="chip' + (a.metric === p.metric ? " primary" : "") + '"><b>' + esc(a.metric) + "</b> " +
          (a.answer_mode === "not_applicable" ? "n/a" : fmt(a.mean, scale)) +
          ' <small>[' + fmt(a.ci_low, scale) + ", " + fmt(a.ci_high, scale) + "] n=" + a.n +
          (a.answer_mode ? ", " + esc(modeLabel(a.answer_mode)) : "") + "</small></span>";
      }).join("");
      // How far to trust the judges: position bias, self-consistency, agreement (95% CIs).
      var trust = (p.trust || []).map(function (t) {
        return '<span class="chip trust"><b>' + esc(t.figure.replace(/_/g, " ")) + "</b> " + fmt(t.value) +
          " <small>[" + fmt(t.ci_low) + ", " + fmt(t.ci_high) + "] " + esc(t.metric) +
          (t.judge ? ", " + esc(t.judge) : "") + (t.n === null ? "" : ", n=" + t.n) + "</small></span>";
      }).join("");
      app.innerHTML = '<div class="crumbs"><a href="#/">Leaderboard</a> › <b>' + esc(p.dataset) + "</b> · <b>" + esc(p.model) + "</b></div>" +
        '<div class="chips">' + aggs + "</div>" +
        (trust ? '<div class="chips" id="trust"><span class="chip-label">Judge trust</span>' + trust + "</div>" : "") +
        '<nav class="tabs">' + tabs.map(function (t) {
          return '<a class="' + (t[0] === tab ? "active" : "") + '" href="' + link(t[0] === "samples" ? ["p", id] : ["p", id, t[0]]) + '">' + t[1] + "</a>";
        }).join("") + '</nav><div id="tab"></div>';
      var body = el("tab");
      if (tab === "diff") renderDiff(body, id, p, query);
      else if (tab === "trends") renderTrends(body, p, query);
      else renderSamples(body, id, p, query);
    }, function (err) {
      app.innerHTML = '<div class="crumbs"><a href="#/">Leaderboard</a></div><p class="error">' + esc(err.message) + "</p>";
    });
  }

  function primaryValue(p, s) {
    var v = s.scores[p.metric];
    return v ? v[0] : null;
  }
  function failed(p, s) {
    if (s.error) return true;
    var v = primaryValue(p, s);
    if (v === null || v === undefined) return true;
    return norm(v, p.scales[p.metric] || [0, 1]) < 0.5;
  }

  function renderSamples(body, id, p, query) {
    var tags = {};
    p.samples.forEach(function (s) { s.tags.forEach(function (t) { tags[t] = 1; }); });
    var nFailed = p.samples.filter(function (s) { return failed(p, s); }).length;
    body.innerHTML = '<section class="toolbar">' +
      '<label class="check"><input id="f-failed" type="checkbox"' + (query.failed ? " checked" : "") + "> failed only <small>(" + nFailed + ")</small></label>" +
      (Object.keys(tags).length ? '<label>Slice <select id="f-slice"><option value="">all</option>' + Object.keys(tags).sort().map(function (t) {
        return "<option" + (t === query.tag ? " selected" : "") + ">" + esc(t) + "</option>";
      }).join("") + "</select></label>" : "") +
      '<label>Search <input id="f-q" type="search" placeholder="id, prompt, output, target" value="' + esc(query.q || "") + '"></label>' +
      '<span id="count" class="count"></span></section>' +
      '<div class="split"><div class="list"><div class="list-head"><span>sample</span><span>' + esc(p.metric) +
      '</span><span>output</span><span>tokens</span><span>latency</span><span>cost</span></div>' +
      '<div id="rows" class="rows"><div id="spacer"></div></div></div><aside id="detail" class="detail"><p class="hint">Pick a sample.</p></aside></div>';
    var selected = query.s || null, rows = [];
    var hay = p.samples.map(function (s) {
      return (s.id + "\n" + (s.output || "") + "\n" + (s.target || "") + "\n" +
        s.messages.map(function (m) { return typeof m.content === "string" ? m.content : JSON.stringify(m.content); }).join("\n")).toLowerCase();
    });
    function apply() {
      var onlyFailed = el("f-failed").checked, tag = el("f-slice") ? el("f-slice").value : "", q = el("f-q").value.toLowerCase();
      rows = [];
      p.samples.forEach(function (s, i) {
        if (onlyFailed && !failed(p, s)) return;
        if (tag && s.tags.indexOf(tag) < 0) return;
        if (q && hay[i].indexOf(q) < 0) return;
        rows.push(s);
      });
      el("count").textContent = rows.length + " of " + p.samples.length + " samples";
      var next = { failed: onlyFailed ? "1" : "", tag: tag, q: el("f-q").value, s: selected };
      history.replaceState(null, "", link(["p", id], next));
      el("spacer").style.height = rows.length * ROW_HEIGHT + "px";
      el("rows").scrollTop = 0;
      paint(true);
    }
    var painted = [-1, -1];
    function paint(force) {
      var box = el("rows");
      if (!box) return;
      var first = Math.max(0, Math.floor(box.scrollTop / ROW_HEIGHT) - 8);
      var last = Math.min(rows.length, Math.ceil((box.scrollTop + box.clientHeight) / ROW_HEIGHT) + 8);
      if (!force && first === painted[0] && last === painted[1]) return;
      painted = [first, last];
      var html = [];
      for (var i = first; i < last; i++) {
        var s = rows[i], v = primaryValue(p, s), bad = failed(p, s);
        html.push('<div class="row' + (bad ? " bad" : " good") + (s.id === selected ? " sel" : "") + '" data-i="' + i + '" style="top:' + i * ROW_HEIGHT + 'px">' +
          '<span class="sid"><i class="dot"></i>' + esc(s.id) + "</span>" +
          '<span class="score">' + fmt(v, p.scales[p.metric]) + "</span>" +
          '<span class="out">' + (s.error ? '<em class="err">' + esc(s.error) + "</em>" : esc((s.output || "").slice(0, 200))) + "</span>" +
          '<span class="num">' + (s.in || 0) + "→" + (s.out || 0) + "</span>" +
          '<span class="num">' + (s.latency === null ? "–" : s.latency.toFixed(2) + "s") + "</span>" +
          '<span class="num">' + money(s.cost) + (s.cached ? ' <i class="cached" title="answered from the response cache">cached</i>' : "") + "</span></div>");
      }
      var spacer = el("spacer");
      box.querySelectorAll(".row").forEach(function (r) { r.remove(); });
      spacer.insertAdjacentHTML("afterend", html.join(""));
    }
    var ticking = false;
    el("rows").onscroll = function () {
      if (ticking) return;
      ticking = true;
      requestAnimationFrame(function () { ticking = false; paint(false); });
    };
    el("rows").onclick = function (ev) {
      var r = ev.target.closest(".row");
      if (!r) return;
      selected = rows[Number(r.getAttribute("data-i"))].id;
      showSample(p, rows[Number(r.getAttribute("data-i"))]);
      apply2();
    };
    function apply2() {
      var q = parseHash().query;
      q.s = selected;
      history.replaceState(null, "", link(["p", id], q));
      paint(true);
    }
    // j / k or the arrow keys move through the listed samples, as in a log viewer.
    document.onkeydown = function (ev) {
      if (!el("rows") || /INPUT|SELECT|TEXTAREA/.test((ev.target.tagName || ""))) return;
      var step = ev.key === "ArrowDown" || ev.key === "j" ? 1 : ev.key === "ArrowUp" || ev.key === "k" ? -1 : 0;
      if (!step || !rows.length) return;
      ev.preventDefault();
      var at = -1;
      rows.some(function (r, i) { if (r.id === selected) { at = i; return true; } return false; });
      var next = Math.max(0, Math.min(rows.length - 1, at + step));
      selected = rows[next].id;
      showSample(p, rows[next]);
      var box = el("rows"), top = next * ROW_HEIGHT;
      if (top < box.scrollTop) box.scrollTop = top;
      else if (top + ROW_HEIGHT > box.scrollTop + box.clientHeight) box.scrollTop = top + ROW_HEIGHT - box.clientHeight;
      apply2();
    };
    el("f-failed").onchange = apply;
    if (el("f-slice")) el("f-slice").onchange = apply;
    el("f-q").oninput = apply;
    apply();
    if (selected) {
      var s = p.samples.filter(function (x) { return x.id === selected; })[0];
      if (s) {
        showSample(p, s);
        var at = rows.indexOf(s);
        if (at >= 0) el("rows").scrollTop = Math.max(0, at * ROW_HEIGHT - 100);
        paint(true);
      }
    }
  }

  function messageHtml(m) {
    var content = m.content;
    if (typeof content !== "string") content = JSON.stringify(content, null, 2);
    return '<div class="msg ' + esc(m.role) + '"><div class="role">' + esc(m.role) + "</div><pre>" + esc(content) + "</pre></div>";
  }
  function detailText(detail) {
    if (!detail) return "";
    try { return JSON.stringify(JSON.parse(detail), null, 2); } catch (e) { return detail; }
  }

  function showSample(p, s) {
    var scores = Object.keys(s.scores).sort().map(function (m) {
      var v = s.scores[m], scale = p.scales[m], t = norm(v[0], scale || [0, 1]);
      return "<tr><th>" + esc(m) + '</th><td><span class="pill" style="background:' + colour(t) + ";color:" + ink(t) + '">' + fmt(v[0], scale) + "</span></td><td>" +
        (v[1] ? "<pre>" + esc(detailText(v[1])) + "</pre>" : "") + "</td></tr>";
    }).join("");
    var judged = s.judgements.map(function (j) {
      return "<tr><th>" + esc(j.metric) + "<br><small>" + esc(j.judge) + "</small></th><td>" + esc(j.status) + "<br>score " + fmt(j.score, [1, 5]) +
        (j.calibrated !== null ? "<br>calibrated " + fmt(j.calibrated, [1, 5]) : "") + "</td><td>" +
        (j.reason ? "<p>" + esc(j.reason) + "</p>" : "") + (j.problem ? '<p class="err">' + esc(j.problem) + "</p>" : "") +
        "<details><summary>verdict</summary><pre>" + esc(j.verdict) + "</pre></details></td></tr>";
    }).join("");
    el("detail").innerHTML = '<h2>' + esc(s.id) + (s.tags.length ? ' <span class="tags">' + s.tags.map(function (t) { return "<i>" + esc(t) + "</i>"; }).join("") + "</span>" : "") + "</h2>" +
      '<dl class="meta"><dt>tokens</dt><dd>' + (s.in || 0) + " in, " + (s.out || 0) + " out</dd><dt>latency</dt><dd>" + (s.latency === null ? "–" : s.latency.toFixed(3) + " s") +
      "</dd><dt>cost</dt><dd>" + money(s.cost) + "</dd><dt>cached</dt><dd>" + (s.cached ? "yes" : "no") + "</dd><dt>finish</dt><dd>" + esc(s.finish || "–") +
      "</dd><dt>prompt</dt><dd>" + esc(s.prompt_version) + "</dd></dl>" +
      (s.error ? '<h3>Error</h3><pre class="err">' + esc(s.error) + "</pre>" : "") +
      "<h3>Prompt</h3>" + (s.messages.length ? s.messages.map(messageHtml).join("") : '<p class="hint">no messages recorded</p>') +
      '<h3>Output</h3><pre class="output">' + esc(s.output) + "</pre>" +
      '<h3>Target</h3><pre class="target">' + esc(s.target) + "</pre>" +
      '<h3>Scores</h3><table class="scores">' + scores + "</table>" +
      (judged ? '<h3>Judge verdicts</h3><table class="scores">' + judged + "</table>" : "");
  }

  // ------------------------------------------------------------------ run diff
  function renderDiff(body, id, p, query) {
    var runs = p.diff.runs, pairs = p.diff.pairs;
    if (!pairs.length) {
      body.innerHTML = '<p class="empty-note">This partition has ' + runs.length + " kept run" + (runs.length === 1 ? "" : "s") +
        " and no baseline covering it: nothing to compare yet. Every materialization is kept in the store's run history; " +
        "after the next run the two can be compared here (or with <code>eval-pipeline compare previous latest</code>).</p>";
      return;
    }
    var names = {};
    runs.forEach(function (r) { names[r.name] = r.time ? r.name + " (" + r.time.replace("T", " ") + ")" : r.name; });
    var b = query.b, a = query.a;
    var forB = function (bn) { return pairs.filter(function (x) { return x.b === bn; }); };
    if (!b || !forB(b).length) b = pairs[pairs.length - 1].b;
    // Default A: the run just before B, else the first candidate.
    var cands = forB(b);
    if (!a || !cands.some(function (x) { return x.a === a; })) {
      var runPairs = cands.filter(function (x) { return x.a.indexOf("baseline:") !== 0; });
      a = (runPairs.length ? runPairs[runPairs.length - 1] : cands[0]).a;
    }
    var pair = cands.filter(function (x) { return x.a === a; })[0];
    var metric = query.metric || p.metric;
    var comp = pair.comparisons.filter(function (c) { return c.metric === metric; })[0] || pair.comparisons[0];
    if (comp) metric = comp.metric;
    var bNames = [];
    pairs.forEach(function (x) { if (bNames.indexOf(x.b) < 0) bNames.push(x.b); });
    function opts(list, current) {
      return list.map(function (n) { return '<option value="' + esc(n) + '"' + (n === current ? " selected" : "") + ">" + esc(names[n] || n) + "</option>"; }).join("");
    }
    var html = '<section class="toolbar"><label>A (before) <select id="d-a">' + opts(cands.map(function (x) { return x.a; }), a) + "</select></label>" +
      '<label>B (after) <select id="d-b">' + opts(bNames, b) + "</select></label>" +
      '<label>Metric <select id="d-m">' + opts(pair.comparisons.map(function (c) { return c.metric; }), metric) + "</select></label></section>";
    if (!comp) {
      body.innerHTML = html + '<p class="empty-note">The two runs share no metric.</p>';
    } else {
      var scale = p.scales[comp.metric];
      var verdict = comp.regressed ? "regressed" : comp.improved ? "improved" : "unchanged";
      var words = { regressed: "Regression", improved: "Improvement", unchanged: "No significant change" }[verdict];
      var test = comp.test === "mcnemar" ? "McNemar mid-p" : "paired bootstrap";
      var flips = comp.worse.map(function (f) { return [f, "worse"]; }).concat(comp.better.map(function (f) { return [f, "better"]; }));
      html += '<div class="verdict ' + verdict + '"><div class="big">' + words + '</div><div class="facts">' +
        "<span><b>" + esc(comp.metric) + "</b> " + fmt(comp.baseline, scale) + " → " + fmt(comp.current, scale) + "</span>" +
        "<span>Δ <b>" + (comp.delta === null ? "–" : (comp.delta >= 0 ? "+" : "") + fmt(comp.delta, scale)) + "</b> [" + fmt(comp.ci_low, scale) + ", " + fmt(comp.ci_high, scale) + "]</span>" +
        "<span>" + test + " p = <b>" + pval(comp.p_value) + "</b></span><span>n = " + comp.n + " paired</span>" +
        "<span>" + comp.worse.length + " worse, " + comp.better.length + " better</span><span>threshold " + comp.threshold + "</span></div></div>";
      var outA = p.diff.outputs[a] || null, outB = p.diff.outputs[b] || null;
      html += '<table class="flips"><thead><tr><th>sample</th><th>' + esc(comp.metric) + '</th><th title="' + esc(a) + '">A · ' + esc(a) + '</th><th title="' + esc(b) + '">B · ' + esc(b) + "</th></tr></thead><tbody>" +
        flips.map(function (x) {
          var f = x[0];
          return '<tr class="flip ' + x[1] + '" data-sample="' + esc(f.sample_id) + '"><td><a href="' + link(["p", id], { s: f.sample_id }) + '">' + esc(f.sample_id) + "</a></td>" +
            '<td class="num">' + fmt(f.baseline, scale) + " → <b>" + fmt(f.current, scale) + "</b></td>" +
            "<td><pre>" + (outA ? esc(outA[f.sample_id]) : '<span class="hint">' + (a.indexOf("baseline:") === 0 ? "a baseline keeps scores only" : "output not kept") + "</span>") + "</pre></td>" +
            "<td><pre>" + (outB ? esc(outB[f.sample_id]) : '<span class="hint">output not kept</span>') + "</pre></td></tr>";
        }).join("") + "</tbody></table>" + (flips.length ? "" : '<p class="empty-note">No sample changed its ' + esc(comp.metric) + ".</p>");
      body.innerHTML = html;
    }
    function go(next) { location.hash = link(["p", id, "diff"], next); }
    el("d-a").onchange = function () { go({ a: this.value, b: b, metric: metric }); };
    el("d-b").onchange = function () { go({ b: this.value, metric: metric }); };
    if (el("d-m")) el("d-m").onchange = function () { go({ a: a, b: b, metric: this.value }); };
  }

  // ------------------------------------------------------------------ trends
  function chart(points, opts) {
    // points: [{x label, y, lo, hi}], drawn on opts.scale; an SVG string.
    var W = 760, H = opts.height || 240, L = 56, R = 16, T = 16, B = 44;
    var n = points.length, scale = opts.scale;
    var x = function (i) { return L + (n === 1 ? (W - L - R) / 2 : (i * (W - L - R)) / (n - 1)); };
    var y = function (v) { return T + (1 - (v - scale[0]) / (scale[1] - scale[0])) * (H - T - B); };
    var s = ['<svg class="chart" viewBox="0 0 ' + W + " " + H + '" width="100%" preserveAspectRatio="xMidYMid meet">'];
    for (var g = 0; g <= 4; g++) {
      var v = scale[0] + (g * (scale[1] - scale[0])) / 4;
      s.push('<line class="grid" x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v) + '" y2="' + y(v) + '"/><text class="axis" x="' + (L - 8) + '" y="' + (y(v) + 4) + '" text-anchor="end">' + opts.tick(v) + "</text>");
    }
    if (opts.bars) {
      var bw = Math.min(40, (W - L - R) / Math.max(1, n) * 0.6);
      points.forEach(function (p, i) {
        if (p.y === null) return;
        s.push('<rect class="bar" x="' + (x(i) - bw / 2) + '" y="' + y(p.y) + '" width="' + bw + '" height="' + (y(scale[0]) - y(p.y)) + '"><title>' + esc(p.label + ": " + opts.tick(p.y)) + "</title></rect>");
      });
    } else {
      var band = points.filter(function (p) { return p.lo !== null && p.hi !== null; });
      if (band.length > 1) {
        var up = [], down = [];
        points.forEach(function (p, i) { if (p.lo !== null && p.hi !== null) { up.push(x(i) + "," + y(p.hi)); down.unshift(x(i) + "," + y(p.lo)); } });
        s.push('<polygon class="band" points="' + up.concat(down).join(" ") + '"/>');
      }
      points.forEach(function (p, i) {
        if (p.lo !== null && p.hi !== null) s.push('<line class="whisker" x1="' + x(i) + '" x2="' + x(i) + '" y1="' + y(p.lo) + '" y2="' + y(p.hi) + '"/>');
      });
      var path = points.map(function (p, i) { return p.y === null ? "" : (i ? "L" : "M") + x(i) + " " + y(p.y); }).join("");
      s.push('<path class="line" d="' + path + '"/>');
      points.forEach(function (p, i) {
        if (p.y !== null) s.push('<circle class="pt" cx="' + x(i) + '" cy="' + y(p.y) + '" r="4"><title>' + esc(p.label + ": " + opts.tick(p.y) + (p.lo !== null ? " [" + opts.tick(p.lo) + ", " + opts.tick(p.hi) + "]" : "")) + "</title></circle>");
      });
    }
    var every = Math.max(1, Math.ceil(n / 8));
    points.forEach(function (p, i) {
      if (i % every !== 0 && i !== n - 1) return;
      var anchor = n > 1 && i === n - 1 ? "end" : n > 1 && i === 0 ? "start" : "middle";
      s.push('<text class="axis" x="' + x(i) + '" y="' + (H - B + 18) + '" text-anchor="' + anchor + '">' + esc(p.short) + "</text>");
    });
    s.push("</svg>");
    return s.join("");
  }

  function renderTrends(body, p, query) {
    var metric = query.metric || p.metric, runs = p.runs;
    if (!runs.length) {
      body.innerHTML = '<p class="empty-note">No kept runs for this partition (written before run history existed).</p>';
      return;
    }
    var scale = p.scales[metric] || [0, 1];
    var pts = runs.map(function (r) {
      var m = r.metrics[metric] || [null, null, null];
      return { label: r.id + " " + r.time, short: r.time.slice(5, 19).replace("T", " "), y: m[0], lo: m[1], hi: m[2] };
    });
    // A floor of one cent keeps a free run (cached, or a local model) on a readable axis.
    var maxCost = Math.max.apply(null, runs.map(function (r) { return r.cost || 0; }).concat([0.01 / 1.1]));
    var costs = runs.map(function (r) { return { label: r.id + " " + r.time, short: r.time.slice(5, 19).replace("T", " "), y: r.cost }; });
    body.innerHTML = '<section class="toolbar"><label>Metric <select id="t-m">' + p.metrics.map(function (m) {
      return "<option" + (m === metric ? " selected" : "") + ">" + esc(m) + "</option>";
    }).join("") + '</select></label><span class="count">' + runs.length + " run" + (runs.length === 1 ? "" : "s") + "</span></section>" +
      '<div class="panel"><h3>' + esc(metric) + " per run, 95% CI</h3>" + chart(pts, { scale: [scale[0], scale[1]], tick: function (v) { return fmt(v, scale); } }) + "</div>" +
      '<div class="panel"><h3>Cost per run</h3>' + chart(costs, { scale: [0, maxCost * 1.1], bars: true, height: 180, tick: money }) + "</div>" +
      '<table class="runs"><thead><tr><th>run</th><th>written</th><th>' + esc(metric) + "</th><th>95% CI</th><th>n</th><th>cost</th><th>cache hits</th></tr></thead><tbody>" +
      runs.slice().reverse().map(function (r) {
        var m = r.metrics[metric] || [null, null, null, null];
        return "<tr><td><code>" + esc(r.id) + "</code></td><td>" + esc(r.time.replace("T", " ")) + '</td><td class="num">' + fmt(m[0], scale) +
          '</td><td class="num">[' + fmt(m[1], scale) + ", " + fmt(m[2], scale) + ']</td><td class="num">' + (m[3] === null || m[3] === undefined ? "–" : m[3]) +
          '</td><td class="num">' + money(r.cost) + '</td><td class="num">' + pct(r.cache_hit_rate) + "</td></tr>";
      }).join("") + "</tbody></table>";
    el("t-m").onchange = function () { location.hash = link(["p", pidOf(p), "trends"], { metric: this.value }); };
  }
  function pidOf(p) { return pid(p.dataset, p.model); }

  // ------------------------------------------------------------------ router
  function route() {
    hideTip();
    document.onkeydown = null;
    var app = el("app"), r = parseHash();
    var nav = [["#/", "Leaderboard", r.path.length === 0], ["#/trends", "Trends", r.path[0] === "trends"]];
    el("nav").innerHTML = nav.map(function (n) { return '<a href="' + n[0] + '"' + (n[2] ? ' class="active"' : "") + ">" + n[1] + "</a>"; }).join("");
    document.body.setAttribute("data-view", r.path[0] === "p" ? "partition-" + (r.path[2] || "samples") : r.path[0] || "leaderboard");
    if (r.path[0] === "p" && r.path[1]) renderPartition(app, r.path[1], r.path[2] || "samples", r.query);
    else if (r.path[0] === "trends") renderAllTrends(app);
    else renderHeatmap(app);
  }

  if (!INDEX) {
    document.getElementById("app").innerHTML = '<p class="error">data/index.js is missing: rewrite the explorer with <code>eval-pipeline report</code>.</p>';
    return;
  }
  el("stamp").textContent = INDEX.cells.length + " partitions · " + INDEX.generated_at.replace("T", " ");
  window.addEventListener("hashchange", route);
  route();
  window.__explorerReady = performance.now();
})();

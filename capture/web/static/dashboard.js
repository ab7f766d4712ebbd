// The live camera wall: tiles by production line, updated from /api/stream, snap buttons.
"use strict";

(() => {
  const { h } = EC;
  const tiles = new Map(); // camera name -> {camera, root, img, ...}
  const pending = new Map(); // "event id camera" -> {tile, timer} of a snap awaiting its picture
  // A picture's stream message may arrive before the POST's answer names its event:
  // the latest outcomes by event id let the answer find it.
  const recent = new Map(); // "event id camera" -> ok
  const RECENT_MAX = 500;
  const SNAP_PATIENCE_MS = 30000;
  const notice = document.getElementById("notice");

  function say(message, loginLink) {
    notice.replaceChildren(message);
    if (loginLink) {
      notice.append(" ", h("a", { href: `/login?next=${encodeURIComponent(location.pathname)}` }, "Log in"));
    }
  }

  function openViewer(url, caption) {
    const viewer = document.getElementById("viewer");
    document.getElementById("viewer-image").src = url;
    document.getElementById("viewer-caption").textContent = caption;
    viewer.showModal();
  }

  function buildTile(camera) {
    const tile = {
      camera,
      img: h("img", { alt: `latest picture of ${camera.name}` }),
      empty: h("span", { class: "empty" }, "no picture yet"),
      badge: h("span", { class: "badge" }),
      time: h("time"),
      age: h("span", { class: "age" }),
      error: h("p", { class: "err" }),
      stats: h("p", { class: "stats" }),
      status: h("span", { class: "status", role: "status" }),
    };
    tile.link = h("a", { class: "shot", href: "#" , onclick: (e) => {
      e.preventDefault();
      if (tile.camera.latest) openViewer(tile.camera.latest.image_url, `${camera.name} · ${EC.dateTime(tile.camera.latest.time)}`);
    } }, tile.img, tile.empty);
    tile.button = h("button", { type: "button", class: "snap", onclick: () => snapCamera(tile) }, "Snap now");
    tile.root = h("article", { class: "tile", "data-camera": camera.name },
      tile.link,
      h("div", { class: "meta" },
        h("h3", {}, h("span", { class: "name" }, camera.name), tile.badge),
        camera.description ? h("p", { class: "desc" }, camera.description) : null,
        h("p", { class: "when" }, tile.time, " · ", tile.age),
        tile.error,
        tile.stats,
        h("div", { class: "actions" }, tile.button, tile.status)));
    return tile;
  }

  function showLatest(tile, latest) {
    tile.camera.latest = latest;
    if (latest) {
      if (tile.img.getAttribute("src") !== latest.thumb_url) tile.img.src = latest.thumb_url;
      tile.link.href = latest.image_url;
      tile.empty.hidden = true;
      tile.img.hidden = false;
    } else {
      tile.img.hidden = true;
      tile.empty.hidden = false;
    }
    tile.time.textContent = latest ? EC.clockTime(latest.time) : "never";
    tile.time.setAttribute("datetime", latest ? latest.time : "");
    updateAge(tile);
  }

  function showHealth(tile, status, lastError) {
    tile.badge.className = `badge ${status}`;
    tile.badge.textContent = { ok: "OK", error: "ERROR", unknown: "NO DATA" }[status] || status;
    tile.root.classList.toggle("error", status === "error");
    tile.error.textContent = lastError
      ? `${status === "error" ? "" : "last error "}${EC.clockTime(lastError.time)} ${lastError.type}: ${lastError.message || ""}`
      : "";
  }

  function showStats(tile, stats, stream) {
    const rate = stats.success_rate === null ? "–" : `${(stats.success_rate * 100).toFixed(stats.success_rate === 1 ? 0 : 1)} %`;
    let text = `last hour: ${rate} ok of ${stats.captures} · median ${EC.ms(stats.median_latency_ms)}`;
    // A stream-backed camera holds its stream all the time: say so, and what it costs.
    if (stream) {
      text += stream.up
        ? ` · stream ${stream.fps} fps, ${Math.round(stream.kbit_s)} kbit/s, ${stream.buffered_s} s buffered`
        : ` · stream DOWN (${stream.last_error || "connecting"})`;
    }
    tile.stats.textContent = text;
  }

  function updateAge(tile) {
    const latest = tile.camera.latest;
    tile.age.textContent = latest ? EC.age(latest.time) : "";
    tile.age.classList.toggle("old", latest ? EC.ageSeconds(latest.time) > 600 : false);
  }

  function showUpload(upload) {
    const pill = document.getElementById("upload");
    pill.hidden = !upload;
    if (!upload) return;
    const waiting = upload.waiting;
    const mb = (upload.waiting_bytes / 1048576).toFixed(1);
    pill.textContent = waiting
      ? `⇪ ${waiting} to upload (${mb} MB), oldest ${EC.age(upload.oldest)}`
      : "⇪ all uploaded";
    pill.classList.toggle("backlog", waiting > 0);
    pill.title = `object store bucket ${upload.bucket}`;
  }

  function render(doc) {
    EC.syncClock(doc.time);
    showUpload(doc.upload);
    document.getElementById("site").textContent = doc.site;
    document.title = `Cameras – ${doc.site}`;
    const container = document.getElementById("lines");
    const seen = new Set();
    const sections = doc.lines.map((line) => {
      const grid = h("div", { class: "grid" });
      for (const camera of line.cameras) {
        seen.add(camera.name);
        let tile = tiles.get(camera.name);
        if (!tile) { tile = buildTile(camera); tiles.set(camera.name, tile); }
        tile.camera = { ...tile.camera, ...camera };
        showLatest(tile, camera.latest);
        showHealth(tile, camera.status, camera.last_error);
        showStats(tile, camera.stats, camera.stream);
        grid.append(tile.root);
      }
      return h("section", { class: "line", "data-line": line.name }, h("h2", {}, line.name), grid);
    });
    for (const name of [...tiles.keys()]) if (!seen.has(name)) tiles.delete(name);
    container.replaceChildren(...sections);
    renderRules(doc.rules);
    renderTriggers(doc.triggers);
  }

  // Each trigger's health: a Modbus device or OPC UA server that stops answering
  // shows as "waiting" with its last error, a trigger that could not start as "failed".
  function renderTriggers(triggers) {
    const rows = triggers.map((trigger) =>
      h("tr", { "data-trigger": trigger.name, class: trigger.status },
        h("td", {}, trigger.name),
        h("td", {}, trigger.type),
        h("td", {}, h("span", { class: `badge ${trigger.status === "ok" ? "ok" : "error"}` },
          { ok: "OK", waiting: "WAITING", failed: "FAILED" }[trigger.status] || trigger.status)),
        h("td", {}, `${trigger.emitted} fired` + (trigger.rejected ? ` · ${trigger.rejected} rejected` : "")
          + (trigger.ignored ? ` · ${trigger.ignored} ignored` : "")),
        h("td", {}, trigger.last_event ? EC.clockTime(trigger.last_event) : "never"),
        h("td", { class: "err" }, trigger.error || "")));
    document.getElementById("triggers").replaceChildren(...(rows.length ? [
      h("h2", {}, "Triggers"),
      h("table", {}, h("thead", {}, h("tr", {}, ...["trigger", "kind", "status", "events", "last", "last problem"].map((title) => h("th", {}, title)))),
        h("tbody", {}, ...rows)),
    ] : []));
  }

  function renderRules(rules) {
    const bar = document.getElementById("rules");
    const buttons = rules.filter((rule) => rule.enabled).map((rule) =>
      h("button", { type: "button", class: "snap-rule", "data-rule": rule.name,
        title: `${rule.description || ""} cameras: ${rule.cameras.join(", ")}`.trim(),
        onclick: (e) => snapRule(rule, e.currentTarget) }, rule.name));
    bar.replaceChildren(...(buttons.length ? [h("span", { class: "label" }, "Fire a rule now:"), ...buttons] : []));
  }

  async function snapCamera(tile) {
    const name = tile.camera.name;
    tile.button.disabled = true;
    tile.status.textContent = "taking a picture…";
    let answer;
    try {
      answer = await EC.postJson("/api/snap", { camera: name });
    } catch (error) {
      tile.button.disabled = false;
      tile.status.textContent = "";
      say(`Snap ${name}: ${error.message}.`, error.status === 401);
      return;
    }
    const key = `${answer.event_id} ${name}`;
    if (recent.has(key)) { snapDone(tile, recent.get(key)); return; }
    // The stream may be down: never leave the button disabled for good.
    const timer = setTimeout(() => {
      pending.delete(key);
      tile.button.disabled = false;
      tile.status.textContent = "no answer yet: see Events";
    }, SNAP_PATIENCE_MS);
    pending.set(key, { tile, timer });
  }

  function snapDone(tile, ok) {
    tile.button.disabled = false;
    tile.status.textContent = ok ? "done" : "failed";
    setTimeout(() => { if (!tile.button.disabled) tile.status.textContent = ""; }, 4000);
  }

  function remember(key, ok) {
    recent.delete(key);
    recent.set(key, ok);
    if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value);
  }

  async function snapRule(rule, button) {
    button.disabled = true;
    try {
      await EC.postJson("/api/snap", { rule: rule.name, values: {} });
      say("");
    } catch (error) {
      say(`Rule ${rule.name}: ${error.message}.`, error.status === 401);
    } finally {
      setTimeout(() => { button.disabled = false; }, 1000);
    }
  }

  function onCapture(message) {
    const key = `${message.event_id} ${message.camera}`;
    remember(key, message.ok);
    const tile = tiles.get(message.camera);
    if (!tile) return;
    if (message.ok) {
      showLatest(tile, message.latest);
      showHealth(tile, "ok", tile.camera.last_error);
    } else {
      const error = { ...message.error, time: message.time };
      tile.camera.last_error = error;
      showHealth(tile, "error", error);
    }
    const waiting = pending.get(key);
    if (waiting) {
      pending.delete(key);
      clearTimeout(waiting.timer);
      snapDone(waiting.tile, message.ok);
    }
    refreshSoon();
  }

  const refresh = () => EC.getJson("/api/cameras").then(render).catch((error) => {
    say(`Cannot load the cameras: ${error.message}.`, error.status === 401);
  });
  const refreshSoon = EC.throttle(refresh, 5000);

  document.getElementById("viewer-close").addEventListener("click", () => document.getElementById("viewer").close());
  document.getElementById("viewer").addEventListener("click", (e) => { if (e.target.tagName === "IMG") e.currentTarget.close(); });
  EC.startClock(document.getElementById("clock"));
  setInterval(() => tiles.forEach(updateAge), 1000);
  setInterval(refresh, 15000); // figures age out of the last hour; trigger health changes quietly
  let everConnected = false;
  const indicator = EC.liveIndicator(document.getElementById("live"));
  EC.stream({ capture: onCapture }, (connected) => {
    indicator(connected);
    if (connected && everConnected) refresh(); // catch up on what the outage hid
    everConnected = everConnected || connected;
  });
  refresh();
})();

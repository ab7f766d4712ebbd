// The event timeline: filters and paging kept in the address (shareable), new events live on page one.
"use strict";

(() => {
  const { h } = EC;
  const PAGE = 20;
  const MAX_THUMBS = 8;
  const form = document.getElementById("filters");
  const notice = document.getElementById("notice");
  let offset = 0;
  let more = false;
  let generation = 0; // only the newest load may touch the page
  let inFlight = null;

  function filters() {
    const data = new FormData(form);
    const query = new URLSearchParams();
    for (const key of ["line", "camera", "rule"]) if (data.get(key)) query.set(key, data.get(key));
    const wanted = (data.get("class") || "").trim();
    if (wanted) query.set("class", wanted);
    if (data.get("failed")) query.set("failed", "1");
    return query;
  }

  function fillOptions(select, values, chosen) {
    const first = select.options[0];
    select.replaceChildren(first, ...values.map((value) => h("option", { value }, value)));
    select.value = values.includes(chosen) ? chosen : "";
  }

  function summary(values) {
    return Object.entries(values).map(([key, value]) => `${key}=${value}`).join("  ");
  }

  function entry(event) {
    const failed = event.ok === false;
    const shown = event.captures.slice(0, MAX_THUMBS).map((capture) => capture.ok
      ? h("a", { href: `/events/${encodeURIComponent(event.event_id)}`, title: `${capture.rule} · ${capture.camera} #${capture.seq}` },
          h("img", { src: capture.thumb_url, alt: `${capture.camera} #${capture.seq}`, loading: "lazy" }))
      : h("span", { class: "missing", title: capture.error ? capture.error.message : "" },
          `${capture.camera} #${capture.seq}: ${capture.error ? capture.error.type : "failed"}`));
    const hidden = event.captures.length - shown.length;
    const classes = [...new Set(event.detections.flatMap((d) => d.objects.map((object) => object.class)))];
    return h("li", { class: failed ? "failed" : "ok", "data-event": event.event_id },
      h("div", { class: "head" },
        h("a", { href: `/events/${encodeURIComponent(event.event_id)}` }, EC.dateTime(event.time)),
        h("span", {}, `${event.rules.join(", ")} ← ${event.trigger}`),
        h("span", { class: `badge ${failed ? "error" : "ok"}` }, failed ? "FAILED" : "OK"),
        h("span", { class: "values" }, summary(event.values)),
        classes.length ? h("span", { class: "objects" }, `objects: ${classes.join(", ")}`) : null),
      h("div", { class: "thumbs" }, shown, hidden > 0 ? h("span", { class: "missing" }, `+${hidden} more`) : null));
  }

  async function load() {
    const query = filters();
    if (offset) query.set("offset", offset);
    history.replaceState(null, "", `/events${query.toString() ? `?${query}` : ""}`);
    query.set("limit", PAGE);
    const mine = ++generation;
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    try {
      const page = await EC.getJson(`/api/events?${query}`, { signal: controller.signal });
      if (mine !== generation) return; // a newer filter or page was asked for meanwhile
      more = page.more;
      const list = document.getElementById("timeline");
      list.replaceChildren(...page.events.map(entry));
      if (!page.events.length) list.append(h("li", { class: "empty-list" }, "No events match these filters."));
      document.getElementById("page").textContent = `events ${offset + 1}–${offset + page.events.length}`;
      document.getElementById("newer").disabled = offset === 0;
      document.getElementById("older").disabled = !more;
      notice.replaceChildren();
    } catch (error) {
      if (mine !== generation) return; // aborted or overtaken by a newer load
      notice.textContent = `Cannot load events: ${error.message}.`;
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }

  async function init() {
    const params = new URLSearchParams(location.search);
    offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
    form.elements.failed.checked = params.get("failed") === "1";
    form.elements.class.value = params.get("class") || "";
    try {
      const doc = await EC.getJson("/api/cameras");
      EC.syncClock(doc.time);
      document.getElementById("site").textContent = doc.site;
      fillOptions(form.elements.line, doc.lines.map((line) => line.name), params.get("line"));
      fillOptions(form.elements.camera, doc.lines.flatMap((line) => line.cameras.map((camera) => camera.name)), params.get("camera"));
      fillOptions(form.elements.rule, [...doc.rules.map((rule) => rule.name), "snap"], params.get("rule"));
    } catch (error) {
      notice.textContent = `Cannot load the cameras: ${error.message}.`;
    }
    await load();
    ready = true;
  }

  form.addEventListener("change", () => { offset = 0; load(); });
  form.addEventListener("submit", (e) => e.preventDefault());
  document.getElementById("newer").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  document.getElementById("older").addEventListener("click", () => { if (more) { offset += PAGE; load(); } });
  EC.startClock(document.getElementById("clock"));
  const reloadSoon = EC.throttle(() => { if (offset === 0) load(); }, 2000);
  // Detections change what the class filter finds, after the firing that saved the pictures.
  const indicator = EC.liveIndicator(document.getElementById("live"));
  // Also reloaded when the stream (re)opens after the first load: firings before it
  // opened, or while it was down, came with no message. (Before, init's load covers them.)
  let ready = false;
  EC.stream({ firing: reloadSoon, detections: reloadSoon }, (connected) => {
    indicator(connected);
    if (connected && ready) reloadSoon();
  });
  init();
})();

// One event: the trigger's values and every frame of every rule's burst, full size on click,
// kept current by the live stream.
"use strict";

(() => {
  const { h } = EC;
  const id = decodeURIComponent(location.pathname.split("/").pop());

  // A picture's objects as boxes over it, placed in percent of the picture (CSSOM: the
  // page's Content-Security-Policy allows no inline style attributes).
  function withBoxes(link, capture, found) {
    if (!found || !found.objects.length || !capture.width || !capture.height) return link;
    link.style.aspectRatio = `${capture.width} / ${capture.height}`;
    for (const object of found.objects) {
      const [left, top, right, bottom] = object.box;
      const box = h("span", { class: "box", title: `${object.class} ${object.score.toFixed(2)}` },
        h("span", { class: "box-label" }, `${object.class} ${object.score.toFixed(2)}`));
      box.style.left = `${(100 * left) / capture.width}%`;
      box.style.top = `${(100 * top) / capture.height}%`;
      box.style.width = `${(100 * (right - left)) / capture.width}%`;
      box.style.height = `${(100 * (bottom - top)) / capture.height}%`;
      link.append(box);
    }
    return link;
  }

  function detectionLine(found) {
    if (!found) return [];
    if (found.status !== "analysed") return [h("p", { class: "err" }, `objects: ${found.status.replace("_", " ")}${found.error ? ` (${found.error})` : ""}`)];
    const names = found.objects.map((object) => `${object.class} ${object.score.toFixed(2)}`);
    return [h("p", { class: "objects" }, `objects: ${names.join(", ") || "none of the classes asked for"}`)];
  }

  function frame(capture, found) {
    if (!capture.ok) {
      return h("article", { class: "frame failed" },
        h("div", { class: "meta" },
          h("h3", {}, `${capture.camera} #${capture.seq}`, h("span", { class: "badge error" }, "FAILED")),
          h("p", { class: "err" }, `${capture.error.type}: ${capture.error.message}`)));
    }
    return h("article", { class: "frame" },
      withBoxes(h("a", { class: "shot", href: capture.image_url, target: "_blank", rel: "noopener" },
        h("img", { src: capture.thumb_url, alt: `${capture.camera} frame ${capture.seq}` })), capture, found),
      h("div", { class: "meta" },
        h("h3", {}, `${capture.camera} #${capture.seq}`, capture.stale ? h("span", { class: "badge error", title: "identical to the previous picture" }, "STALE") : h("span", { class: "badge ok" }, "OK")),
        h("p", {}, `${capture.path}`),
        ...(capture.missing_fields.length ? [h("p", { class: "err" }, `not in the event: ${capture.missing_fields.join(", ")} (written as "unknown" in the file name)`)] : []),
        h("p", {}, `${capture.width || "?"}×${capture.height || "?"} · ${Math.round(capture.bytes / 1024)} KB · fetch ${EC.ms(capture.latency_ms)} · ${EC.ms(capture.trigger_to_image_ms)} after the trigger`),
        ...detectionLine(found)));
  }

  async function load() {
    let event;
    try {
      event = await EC.getJson(`/api/events/${encodeURIComponent(id)}`);
    } catch (error) {
      document.getElementById("notice").textContent = `Event ${id}: ${error.message}.`;
      return;
    }
    document.getElementById("notice").textContent = "";
    document.title = `Event ${event.event_id} – event-capture`;
    document.getElementById("title").textContent = `${EC.dateTime(event.time)} · ${event.trigger}`;
    document.getElementById("summary").replaceChildren(
      `Event ${event.event_id} · rules: ${event.rules.join(", ") || "none"} · `,
      h("span", { class: `badge ${event.ok === false ? "error" : "ok"}` }, event.ok === false ? "FAILED" : "OK"));
    const rows = Object.entries(event.values).map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, JSON.stringify(value))));
    document.querySelector("#values tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", {}, "no values"))]));
    const detections = new Map(event.detections.map((d) => [`${d.rule}/${d.camera}/${d.seq}`, d]));
    const byRule = new Map();
    for (const capture of event.captures) {
      if (!byRule.has(capture.rule)) byRule.set(capture.rule, []);
      byRule.get(capture.rule).push(capture);
    }
    document.getElementById("rules").replaceChildren(...[...byRule].map(([rule, captures]) =>
      h("section", { "data-rule": rule }, h("h3", {}, `Rule ${rule}: ${captures.length} frame${captures.length === 1 ? "" : "s"}`),
        h("div", { class: "frames" }, captures.map((capture) => frame(capture, detections.get(`${capture.rule}/${capture.camera}/${capture.seq}`)))))));
  }

  load();
  // Redrawn when this event changes after the page opened: a firing still taking its
  // burst, a follow-up rule, or detection finishing after the pictures (docs/web.md).
  const reloadSoon = EC.throttle(load, 500);
  const ours = (message) => { if (message.event_id === id) reloadSoon(); };
  // Reloaded whenever the stream (re)opens: what changed before it opened, or while it was
  // down (a restart, a dropped slow client), came with no message.
  EC.stream({ firing: ours, detections: ours }, (connected) => { if (connected) reloadSoon(); });
})();

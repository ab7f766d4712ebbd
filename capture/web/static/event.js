// One event: the trigger's values and every frame of every rule's burst, full size on click.
"use strict";

(() => {
  const { h } = EC;
  const id = decodeURIComponent(location.pathname.split("/").pop());

  function frame(capture) {
    if (!capture.ok) {
      return h("article", { class: "frame failed" },
        h("div", { class: "meta" },
          h("h3", {}, `${capture.camera} #${capture.seq}`, h("span", { class: "badge error" }, "FAILED")),
          h("p", { class: "err" }, `${capture.error.type}: ${capture.error.message}`)));
    }
    return h("article", { class: "frame" },
      h("a", { class: "shot", href: capture.image_url, target: "_blank", rel: "noopener" },
        h("img", { src: capture.thumb_url, alt: `${capture.camera} frame ${capture.seq}` })),
      h("div", { class: "meta" },
        h("h3", {}, `${capture.camera} #${capture.seq}`, capture.stale ? h("span", { class: "badge error", title: "identical to the previous picture" }, "STALE") : h("span", { class: "badge ok" }, "OK")),
        h("p", {}, `${capture.path}`),
        ...(capture.missing_fields.length ? [h("p", { class: "err" }, `not in the event: ${capture.missing_fields.join(", ")} (written as "unknown" in the file name)`)] : []),
        h("p", {}, `${capture.width || "?"}×${capture.height || "?"} · ${Math.round(capture.bytes / 1024)} KB · fetch ${EC.ms(capture.latency_ms)} · ${EC.ms(capture.trigger_to_image_ms)} after the trigger`)));
  }

  async function load() {
    let event;
    try {
      event = await EC.getJson(`/api/events/${encodeURIComponent(id)}`);
    } catch (error) {
      document.getElementById("notice").textContent = `Event ${id}: ${error.message}.`;
      return;
    }
    document.title = `Event ${event.event_id} – event-capture`;
    document.getElementById("title").textContent = `${EC.dateTime(event.time)} · ${event.trigger}`;
    document.getElementById("summary").replaceChildren(
      `Event ${event.event_id} · rules: ${event.rules.join(", ") || "none"} · `,
      h("span", { class: `badge ${event.ok === false ? "error" : "ok"}` }, event.ok === false ? "FAILED" : "OK"));
    const rows = Object.entries(event.values).map(([key, value]) => h("tr", {}, h("th", { scope: "row" }, key), h("td", {}, JSON.stringify(value))));
    document.querySelector("#values tbody").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", {}, "no values"))]));
    const byRule = new Map();
    for (const capture of event.captures) {
      if (!byRule.has(capture.rule)) byRule.set(capture.rule, []);
      byRule.get(capture.rule).push(capture);
    }
    document.getElementById("rules").replaceChildren(...[...byRule].map(([rule, captures]) =>
      h("section", { "data-rule": rule }, h("h3", {}, `Rule ${rule}: ${captures.length} frame${captures.length === 1 ? "" : "s"}`),
        h("div", { class: "frames" }, captures.map(frame)))));
  }

  load();
})();

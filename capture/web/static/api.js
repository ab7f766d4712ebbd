// The API page: renders /openapi.json as text (no CDN, no inline script): every path, its
// parameters, request body and answers, with each payload's fields, types and descriptions.
"use strict";

(() => {
  const { h } = EC;
  let spec = null;

  /** Text with `code spans` as <code> elements (descriptions are written that way). */
  const prose = (text) => String(text).split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));

  /** The schema a $ref names (#/components/schemas/X), else the schema itself. */
  function resolve(schema) {
    if (schema && schema.$ref) return spec.components.schemas[schema.$ref.split("/").pop()] || {};
    return schema || {};
  }

  function typeOf(schema) {
    if (schema.$ref) return schema.$ref.split("/").pop();
    if (schema.anyOf || schema.oneOf) return (schema.anyOf || schema.oneOf).map(typeOf).join(" | ");
    if (Array.isArray(schema.type)) return schema.type.join(" | ");
    if (schema.type === "array") return `array of ${typeOf(schema.items || {})}`;
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    return schema.type || "any";
  }

  /** A schema as a nested list of its fields; `seen` stops recursion through references. */
  function fields(schema, seen = new Set()) {
    const named = schema.$ref ? schema.$ref.split("/").pop() : null;
    const target = resolve(schema.items && schema.type === "array" ? schema.items : schema);
    const nested = (schema.anyOf || schema.oneOf || []).filter((s) => s.$ref);
    if (nested.length && !schema.properties) {
      return h("ul", { class: "fields" }, nested.map((s) => h("li", {}, h("code", {}, typeOf(s)), fields(s, seen))));
    }
    if (!target.properties || (named && seen.has(named))) return null;
    const inner = new Set(seen);
    if (named) inner.add(named);
    const required = new Set(target.required || []);
    return h("ul", { class: "fields" }, Object.entries(target.properties).map(([name, property]) => h("li", {},
      h("code", { class: "field" }, name), " ", h("span", { class: "type" }, typeOf(property)),
      required.has(name) ? " (required)" : "",
      property.description ? h("span", { class: "desc" }, " — ", prose(property.description)) : "",
      fields(property, inner),
    )));
  }

  function body(content) {
    return Object.entries(content || {}).map(([type, media]) => h("div", { class: "media" },
      h("p", {}, h("code", {}, type), media.schema ? ` ${typeOf(media.schema)}` : ""),
      media.schema ? fields(media.schema) : null,
    ));
  }

  function operation(path, method, op) {
    const parameters = (op.parameters || []).map((p) => h("li", {},
      h("code", { class: "field" }, p.name), ` (${p.in}${p.required ? ", required" : ""}) `,
      h("span", { class: "type" }, typeOf(p.schema || {})),
      p.description || (p.schema && p.schema.description) ? ` — ${p.description || p.schema.description}` : "",
    ));
    const answers = Object.entries(op.responses || {}).map(([status, answer]) => h("li", {},
      h("strong", {}, status), ` ${answer.description || ""}`, body(answer.content),
    ));
    return h("section", { class: "operation", id: op.operationId || `${method}-${path}` },
      h("h2", {}, h("span", { class: `method ${method}` }, method.toUpperCase()), " ", h("code", {}, path)),
      op.summary ? h("p", { class: "summary" }, prose(op.summary)) : null,
      op.description ? h("p", { class: "desc" }, prose(op.description)) : null,
      parameters.length ? [h("h3", {}, "Parameters"), h("ul", {}, parameters)] : null,
      op.requestBody ? [h("h3", {}, "Body"), ...body(op.requestBody.content)] : null,
      h("h3", {}, "Answers"), h("ul", {}, answers),
    );
  }

  async function load() {
    try {
      spec = await EC.getJson("/openapi.json");
    } catch (error) {
      document.getElementById("notice").textContent = `Cannot read /openapi.json: ${error.message}`;
      return;
    }
    document.getElementById("intro").replaceChildren(
      h("p", {}, `${spec.info.title} ${spec.info.version} — OpenAPI ${spec.openapi}`),
      ...spec.info.description.split("\n\n").map((text) => h("p", {}, prose(text.replace(/\s+/g, " ")))),
    );
    const sections = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(item)) sections.push(operation(path, method, op));
    }
    document.getElementById("operations").replaceChildren(...sections);
    document.body.dataset.loaded = "true";
  }

  load();
})();

// Shared helpers of the dashboard pages: DOM building without innerHTML, API calls, times, the live stream.
"use strict";

const EC = (() => {
  /** Build an element; strings become text nodes, so payload values can never inject markup. */
  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function request(path, options = {}, renewed = false) {
    const response = await fetch(path, { credentials: "same-origin", ...options });
    if (response.status === 401 && options.method === "POST" && !renewed) {
      // Without a configured token the page's session ends when the service restarts;
      // loading the page again renews it (with a token configured it does not: log in).
      await fetch(location.pathname, { method: "HEAD", credentials: "same-origin", cache: "no-store" }).catch(() => null);
      return request(path, options, true);
    }
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      throw new ApiError(response.status, (body && body.error) || `HTTP ${response.status}`);
    }
    return body;
  }

  const getJson = (path, options = {}) => request(path, options);
  const postJson = (path, document) => request(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(document),
  });

  // The server's clock decides ages: a phone's clock may be minutes off the Pi's.
  // The site's UTC offset comes with the server's time, so the clock needs no time-zone data.
  let skewMs = 0;
  let offsetMs = 0;
  function syncClock(serverIso) {
    if (!serverIso) return;
    skewMs = Date.parse(serverIso) - Date.now();
    const offset = /([+-])(\d\d):(\d\d)$/.exec(serverIso);
    offsetMs = offset ? (offset[1] === "-" ? -1 : 1) * (offset[2] * 3600000 + offset[3] * 60000) : 0;
    clockTick();
  }
  const now = () => Date.now() + skewMs;

  function age(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, Math.round((now() - Date.parse(iso)) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }
  const ageSeconds = (iso) => (iso ? (now() - Date.parse(iso)) / 1000 : Infinity);

  /** Show a time as the site's clock reads it: the ISO text carries the site's offset. */
  function clockTime(iso) {
    return iso ? iso.slice(11, 19) : "";
  }
  function dateTime(iso) {
    return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : "";
  }
  const ms = (value) => (value === null || value === undefined ? "–" : `${Math.round(value)} ms`);

  /**
   * Connect to /api/stream; `handlers` maps event names to callbacks. The browser
   * retries a dropped connection by itself, but gives up for good on an error answer
   * (a 503 with too many tabs open, a proxy's 502 while the service restarts, a 401):
   * then a new stream is opened after 3 s, doubling to a minute, so a page left open
   * on a wall screen never freezes. `onState(true)` at each (re)opening.
   */
  function stream(handlers, onState) {
    let delay = 3000;
    const connect = () => {
      const source = new EventSource("/api/stream");
      source.addEventListener("open", () => { delay = 3000; onState(true); });
      source.addEventListener("error", () => {
        onState(false);
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(connect, delay);
          delay = Math.min(delay * 2, 60000);
        }
      });
      for (const [name, handler] of Object.entries(handlers)) {
        source.addEventListener(name, (message) => handler(JSON.parse(message.data)));
      }
    };
    connect();
  }

  function liveIndicator(element) {
    return (connected) => {
      element.textContent = connected ? "● live" : "● reconnecting";
      element.className = `pill ${connected ? "live" : "offline"}`;
    };
  }

  /** Run `fn` at most once per `waitMs`, trailing call included. */
  function throttle(fn, waitMs) {
    let timer = null;
    let last = 0;
    return () => {
      if (timer) return;
      const delay = Math.max(0, last + waitMs - Date.now());
      timer = setTimeout(() => { timer = null; last = Date.now(); fn(); }, delay);
    };
  }

  let clockTick = () => {};
  function startClock(element) {
    clockTick = () => { element.textContent = new Date(now() + offsetMs).toISOString().slice(11, 19); };
    clockTick();
    setInterval(clockTick, 1000);
  }

  return { h, getJson, postJson, ApiError, syncClock, age, ageSeconds, clockTime, dateTime, ms, stream, liveIndicator, throttle, startClock };
})();

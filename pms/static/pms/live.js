// Live pages (pms.live): the server pushes the regions of this page that changed.
// Each region is an element with data-live-region="NAME"; its content is replaced as
// the server renders it for this viewer. While the connection is down the page says
// so and offers a reload; a region the user is working in (a focused field, ticked
// boxes) is not replaced under them: the status offers the update instead.
"use strict";
(() => {
  const script = document.currentScript;
  const STOP = {
    4003: "This page is no longer shown to you.",
    4029: "Too many of your pages are open live.",
    4401: "You are signed out.",
    4404: "",
  };
  const RECHECK = 4001;
  let socket = null;
  let attempts = 0;
  let status = null;
  const pending = new Map();

  function address() {
    const explicit = script.dataset.liveUrl;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const base = explicit || `${scheme}//${location.hostname}:${script.dataset.livePort}/live/`;
    const params = new URLSearchParams({ path: location.pathname, query: location.search.slice(1) });
    return `${base}?${params}`;
  }

  function show(state, text, action) {
    status.className = state;
    status.dataset.state = state;
    status.replaceChildren();
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    status.append(dot, text);
    if (action) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "button";
      button.textContent = action.label;
      button.addEventListener("click", action.run);
      status.append(button);
    }
  }

  const reload = { label: "Reload", run: () => location.reload() };

  function busy(region) {
    const active = document.activeElement;
    const editing = active && region.contains(active) && active.matches("input, select, textarea");
    return editing || region.querySelector("input[type=checkbox]:checked") !== null;
  }

  function replace(name, html) {
    const region = document.querySelector(`[data-live-region="${name}"]`);
    if (!region) return;
    region.innerHTML = html;
    region.dispatchEvent(new CustomEvent("live:updated", { bubbles: true, detail: { region: name } }));
  }

  function applyPending() {
    for (const [name, html] of pending) replace(name, html);
    pending.clear();
    show("live", "Live");
  }

  function receive(message) {
    for (const [name, html] of Object.entries(message.regions || {})) {
      const region = document.querySelector(`[data-live-region="${name}"]`);
      if (region && busy(region)) pending.set(name, html);
      else replace(name, html);
    }
    if (pending.size) show("pending", "Changes arrived", { label: "Update", run: applyPending });
  }

  function connect() {
    socket = new WebSocket(address());
    socket.addEventListener("open", () => {
      attempts = 0;
      if (!pending.size) show("live", "Live");
    });
    socket.addEventListener("message", (event) => receive(JSON.parse(event.data)));
    socket.addEventListener("close", (event) => {
      socket = null;
      // Jittered, so the pages of a restarted server or a mass re-check do not all
      // reconnect in the same instant.
      if (event.code === RECHECK) return setTimeout(connect, Math.random() * 2000);
      if (event.code in STOP) {
        show("off", `Live updates off. ${STOP[event.code]} Reload to see changes.`, reload);
        return;
      }
      show("off", "Live updates are off: reload to see changes.", reload);
      attempts += 1;
      const delay = Math.min(30, 2 ** Math.min(attempts, 5)) * (0.5 + Math.random());
      setTimeout(connect, delay * 1000);
    });
  }

  function start() {
    if (!document.querySelector("[data-live-region]") || !("WebSocket" in window)) return;
    status = document.createElement("div");
    status.id = "live-status";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    document.body.append(status);
    show("off", "Connecting live updates…");
    connect();
    setInterval(() => socket && socket.readyState === 1 && socket.send('{"ping":true}'), 25000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

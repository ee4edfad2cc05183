// tickr dashboard: times in the viewer's zone (UTC on hover), and live refresh by polling every 2 s.
// Each page marks its live part with [data-live]; the server answers the same URL with
// {"ok": true, "regions": {"live": "<html>"}} when asked with the X-Tickr-Live header.
"use strict";
(function () {
  const POLL_MS = 2000;
  const fmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]")) {
      const when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.textContent = fmt.format(when);
    }
  }

  function banner(text) {
    const el = document.getElementById("banner");
    if (!el) return;
    el.hidden = !text;
    if (text) el.textContent = text;
  }

  async function refresh(region) {
    if (document.hidden) return;
    let body;
    try {
      const response = await fetch(location.href, { headers: { "X-Tickr-Live": "1" }, credentials: "same-origin" });
      if (response.status === 401 || response.redirected) { banner("Session ended: reload to log in."); return; }
      body = await response.json();
    } catch (err) {
      banner("The tickr API cannot be reached.");
      return;
    }
    if (!body.ok) { banner(body.error); return; }
    banner("");
    const html = body.regions[region.id];
    if (html === undefined || html === region.dataset.html) return;
    if (region.contains(document.activeElement) && document.activeElement !== document.body) return;
    const template = document.createElement("template");
    template.innerHTML = html;
    localTimes(template.content);
    region.replaceChildren(template.content);
    region.dataset.html = html;
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    const region = document.querySelector("[data-live]");
    if (!region) return;
    let busy = false;
    setInterval(async function () {
      if (busy) return;
      busy = true;
      try { await refresh(region); } finally { busy = false; }
    }, POLL_MS);
  });
})();

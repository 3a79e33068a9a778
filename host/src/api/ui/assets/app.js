// The dashboard's one script: a confirmation before a form that changes something, and the
// live part of a running instance's page, fetched again every second until it ends.
"use strict";

document.addEventListener("submit", (e) => {
  const question = e.target.dataset.confirm;
  if (question && !window.confirm(question)) e.preventDefault();
});

function follow(live) {
  const part = live.firstElementChild;
  if (!part || part.dataset.running !== "true") return;
  setTimeout(async () => {
    try {
      const r = await fetch(live.dataset.src, { credentials: "same-origin" });
      if (r.redirected) {
        window.location.assign("/ui/login");
        return;
      }
      if (r.ok) live.innerHTML = await r.text();
    } catch (_) {
      // The server is away for a moment: try again.
    }
    follow(live);
  }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) follow(live);
});

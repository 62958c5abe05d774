// kap-outcomes dashboard: live updates from the event feed (no framework, no build step).
// The page works without this script; with it, an alert opened, acknowledged or resolved
// elsewhere, or a changed signal, refreshes the page's content in place and says so.

const body = document.body;
const liveUrl = body.dataset.liveUrl;

function refresh(reason) {
  // Fetch this same page again and swap its <main>, unless the user is typing in it.
  const active = document.activeElement;
  if (active && (active.tagName === "INPUT" || active.tagName === "SELECT") && active.value) {
    announce(`${reason}: reload the page to see it.`);
    return;
  }
  fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((resp) => (resp.ok ? resp.text() : Promise.reject(resp.status)))
    .then((html) => {
      const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("main");
      if (fresh) {
        document.querySelector("main").replaceChildren(...fresh.childNodes);
        announce(`${reason}; the page is up to date.`);
      }
    })
    .catch(() => announce(`${reason}: reload the page to see it.`));
}

function announce(text) {
  document.getElementById("live-status").textContent = text;
}

const WORDS = {
  "alert.opened": "A new alert",
  "alert.acknowledged": "An alert was acknowledged",
  "alert.resolved": "An alert was resolved",
  "signal.changed": "A booster status changed",
  "assessment.submitted": "A new assessment",
};

if (liveUrl && "EventSource" in window) {
  const params = new URLSearchParams({ after: body.dataset.liveAfter });
  if (body.dataset.livePatient) params.set("patient_id", body.dataset.livePatient);
  const source = new EventSource(`${liveUrl}?${params}`);
  let timer = null;
  const onEvent = (event) => {
    clearTimeout(timer); // a burst of events: one refresh
    timer = setTimeout(() => refresh(WORDS[event.type] || "New activity"), 300);
  };
  Object.keys(WORDS).forEach((type) => source.addEventListener(type, onEvent));
  window.addEventListener("pagehide", () => source.close());
}

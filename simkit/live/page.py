"""The page ``LocalServer`` serves at ``/``: a tab that behaves like the post-mortem's client.

It keeps its id in sessionStorage (per-tab identity), connects, shows its id and the
server's live counts, closes its socket on ``pagehide`` and reconnects with a doubling
backoff. Open it in a browser, reload, open a second tab, and watch the counts.
"""

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>simkit tab</title>
<style>body{font:15px system-ui;margin:2em}td{padding:2px 12px}code{background:#eee}</style>
</head><body>
<h1>simkit tab</h1>
<p>user id <code id="user"></code>, socket <b id="state">connecting</b>,
pushes received <b id="pushes">0</b></p>
<table id="stats"></table>
<script>
const user = sessionStorage.getItem("user") ||
  ("tab-" + Math.random().toString(16).slice(2, 10));
sessionStorage.setItem("user", user);
document.getElementById("user").textContent = user;
let socket = null, attempt = 0, pushes = 0;
function connect() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("user", user);
  const session = sessionStorage.getItem("session");
  if (session) url.searchParams.set("session", session);
  socket = new WebSocket(url);
  socket.onopen = () => { attempt = 0; show("open"); };
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.t === "welcome") sessionStorage.setItem("session", message.session);
    if (message.t === "push") document.getElementById("pushes").textContent = ++pushes;
  };
  socket.onclose = (event) => {
    show("closed " + event.code);
    attempt += 1;
    setTimeout(connect, Math.min(5000, 1000 * 2 ** (attempt - 1)));
  };
}
function show(state) { document.getElementById("state").textContent = state; }
addEventListener("pagehide", () => { if (socket) socket.close(1000, "pagehide"); });
async function stats() {
  const counts = await (await fetch("/stats")).json();
  document.getElementById("stats").innerHTML = Object.entries(counts)
    .map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
}
connect(); stats(); setInterval(stats, 1000);
</script></body></html>
"""

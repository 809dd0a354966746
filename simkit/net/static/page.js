(() => {
const q = new URLSearchParams(location.search);
const opt = (k, d) => q.has(k) ? q.get(k) : d;
const num = (k, d) => q.has(k) ? Number(q.get(k)) : d;
const policy = {
  identity: opt("identity", "per-tab"), unload: opt("unload", "pagehide"),
  visibility: opt("visibility", "keep"), guard: opt("guard", "none"),
  guard_wait: num("guard_wait", 3), backoff: opt("backoff", "exponential"),
  base: num("base", 1), factor: num("factor", 2), max: num("max", 5), rand: num("rand", 0.5),
  first_max: num("first_max", 5), on_resume: opt("on_resume", "reconnect"),
  on_pageshow: opt("on_pageshow", "reconnect"), strict: opt("strict", "0") === "1",
  on_replaced: opt("on_replaced", "retry"),
  scale: num("scale", 1),
};
const tab = q.has("tab") ? Number(q.get("tab")) : null;
const hex = () => Array.from(crypto.getRandomValues(new Uint8Array(6)),
  (b) => b.toString(16).padStart(2, "0")).join("");
function claim() {
  if (policy.identity === "shared") {
    if (!localStorage.getItem("user_id")) localStorage.setItem("user_id", opt("person", "anon"));
    return localStorage.getItem("user_id");
  }
  if (policy.identity === "fresh-per-load") return hex();
  if (!sessionStorage.getItem("tab_id")) sessionStorage.setItem("tab_id", hex());
  return sessionStorage.getItem("tab_id");
}
const load = hex();
const S = window.simkit = {
  load, tab, policy, user: claim(), state: "idle", link: null, pushes: 0, pushIds: [],
  opens: 0, closes: [], connects: 0, pings: 0, pongs: 0, events: [],
};
function report(e, extra) {
  const ev = Object.assign({e, load, tab, t: performance.now()}, extra || {});
  S.events.push(ev);
  if (S.events.length > 500) S.events.shift();
  if (typeof window.simkitReport === "function") {
    // one JSON string: a raw CDP binding (Runtime.addBinding) takes exactly one string
    try {
      const sent = window.simkitReport(JSON.stringify(ev));
      if (sent && typeof sent.catch === "function") sent.catch(() => {});
    } catch (err) { /* page going away */ }
  }
}
function show(state) {
  S.state = state;
  document.getElementById("state").textContent = state;
}
document.getElementById("user").textContent = S.user;
document.getElementById("policy").textContent =
  ["identity", "unload", "visibility", "guard", "backoff"].map((k) => policy[k]).join(" / ");
report("load", {user: S.user});

function backoffDelay(attempt) {
  const p = policy, grown = Math.min(p.max, p.base * p.factor ** Math.min(attempt - 1, 64));
  if (p.backoff === "immediate") return 0;
  if (p.backoff === "exponential") {
    const spread = grown * p.rand;
    return Math.max(0, Math.min(p.max, grown + (Math.random() * 2 - 1) * spread));
  }
  if (p.backoff === "full-jitter") {
    const low = Math.min(p.base, grown);
    return low + Math.random() * (grown - low);
  }
  if (attempt === 1) return Math.random() * p.first_max;  // rfc6455
  return Math.min(p.max, p.base * p.factor ** Math.min(attempt - 2, 64));
}
const later = (seconds, fn) => setTimeout(fn, seconds * policy.scale * 1000);

// the connection manager: the same rules as the tab actor (simkit/actors/tab.py)
let socket = null, want = false, attempt = 0, retry = null, waiting = false;
let epoch = 0;  // bumped by every freeze (entering the back/forward cache freezes too)
let elsewhere = false;  // replaced by another connection of this user, stopped (on_replaced)
const closeWhenOpen = new Set();
function forget() {
  if (retry !== null) { clearTimeout(retry); retry = null; }
  waiting = false;
}
function connect() {
  if (!want) return;
  if (socket && socket.readyState === WebSocket.OPEN && !closeWhenOpen.has(socket)) return;
  const inFlight = socket && (socket.readyState === WebSocket.CONNECTING ||
    closeWhenOpen.has(socket));
  if (inFlight && policy.guard === "single-flight") {
    if (!waiting) {
      waiting = true;
      const slow = socket;
      later(policy.guard_wait, () => guardExpired(slow));
    }
    return;
  }
  open();
}
function guardExpired(slow) {
  if (!waiting) return;
  if (socket === null || (socket === slow && slow.readyState !== WebSocket.OPEN)) {
    if (socket === slow) closeWhenOpen.add(slow);
    open();
  }
}
function open() {
  waiting = false;
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (q.has("ws")) url.port = q.get("ws");
  url.searchParams.set("user", S.user);
  const session = sessionStorage.getItem("session");
  if (session) url.searchParams.set("session", session);
  let link = null;
  if (tab !== null) {
    const n = Number(sessionStorage.getItem("simkit_seq") || "0") + 1;
    sessionStorage.setItem("simkit_seq", String(n));
    link = tab * 10000 + n;
    url.searchParams.set("link", String(link));
  }
  report("connecting", {link, user: S.user});
  const ws = new WebSocket(url);
  ws.simkitLink = link; ws.simkitEpoch = epoch;
  socket = ws; S.link = link; S.connects += 1;
  show("connecting");
  ws.onopen = () => {
    if (closeWhenOpen.has(ws)) {
      closeWhenOpen.delete(ws);
      if (socket === ws) { socket = null; S.link = null; }
      ws.close(1000, "double mount");
      return;
    }
    if (ws !== socket) return;
    attempt = 0; waiting = false; S.opens += 1;
    show("open");
    report("open", {link});
  };
  ws.onmessage = (event) => {
    let m;
    try { m = JSON.parse(event.data); } catch (err) { return; }
    if (m.t === "ping") {
      S.pings += 1;
      // byte for byte the server's PONG
      if (ws.readyState === WebSocket.OPEN) { ws.send('{"t": "pong"}'); S.pongs += 1; }
    } else if (m.t === "welcome") {
      sessionStorage.setItem("session", m.session);
      S.session = m.session;
    } else if (m.t === "push") {
      S.pushes += 1; S.pushIds.push(m.id);
      if (S.pushIds.length > 1000) S.pushIds.shift();
      document.getElementById("pushes").textContent = S.pushes;
      report("push", {link, id: m.id});
    }
  };
  ws.onclose = (event) => {
    S.closes.push({link, code: event.code});
    if (S.closes.length > 200) S.closes.shift();
    report("close", {link, code: event.code});
    if (ws === socket) {
      socket = null; S.link = null; show("closed " + event.code);
      if ((event.code === 4000 || event.code === 4001) && policy.on_replaced === "stop" && want) {
        // replaced by another connection of this user: say so, stop until reloaded
        want = false; elsewhere = true;
        if (retry !== null) { clearTimeout(retry); retry = null; }
        show("opened elsewhere"); report("elsewhere", {link});
        return;
      }
    }
    else if (!waiting || socket !== null) return;
    if (waiting) { open(); return; }
    if (want && retry === null) {
      attempt += 1;
      retry = later(backoffDelay(attempt), () => { retry = null; connect(); });
    }
  };
}
function disconnect(code, reason) {
  want = false;
  forget();
  const ws = socket;
  if (ws === null) return;
  if (ws.readyState === WebSocket.CONNECTING && policy.guard === "single-flight") {
    closeWhenOpen.add(ws);  // a connection manager closes a socket only once it is open
    return;
  }
  socket = null; S.link = null;
  ws.close(code || 1000, reason || "");
  show("closed by page");
}
function mount() { want = true; attempt = 0; connect(); }

function onUnload(kind) {
  if (policy.unload !== kind) return;
  disconnect(1000, kind);
}
addEventListener("beforeunload", () => onUnload("beforeunload"));
addEventListener("pagehide", (event) => {
  report("pagehide", {persisted: event.persisted});
  onUnload("pagehide");
});
document.addEventListener("visibilitychange", () => {
  report("visibility", {state: document.visibilityState});
  if (policy.visibility !== "disconnect-when-hidden") return;
  if (document.visibilityState === "hidden") disconnect(1000, "hidden");
  else if (!elsewhere) mount();
});
function wake(handler) {
  // Chromium closes a socket that lived through a freeze or the bfcache as the page wakes
  // (the server sees 1001, the page 1006). Without a handler ("none") nothing else
  // happens: the page's ordinary close handling above decides (it retries while it wants a
  // connection). "reconnect" closes the old socket itself and connects at once, once per
  // wake-up: a bfcache restore fires both resume and pageshow.
  if (handler !== "reconnect" || elsewhere) return;
  const ws = socket;
  if (ws !== null && ws.simkitEpoch === epoch) return;  // already opened since the freeze
  want = true; attempt = 0; forget();
  if (ws !== null) {
    socket = null; S.link = null;
    ws.close(1000, "resumed");
  }
  connect();
}
document.addEventListener("resume", () => { report("resume"); wake(policy.on_resume); });
document.addEventListener("freeze", () => { epoch += 1; report("freeze"); });
addEventListener("pageshow", (event) => {
  if (event.persisted) { report("pageshow"); wake(policy.on_pageshow); }
});

mount();
if (policy.strict) { disconnect(1000, "strict-mode cleanup"); mount(); }

async function stats() {
  try {
    const counts = await (await fetch("/stats")).json();
    document.getElementById("stats").innerHTML = Object.entries(counts)
      .map(([k, v]) => `<tr><td>${k}</td><td>${v}</td></tr>`).join("");
  } catch (err) { /* server gone */ }
}
if (opt("stats", "1") !== "0") { stats(); setInterval(stats, 1000); }
})();

"use client";
// The one page: calls the HTTP API once per load (GET /api/database/select, through the
// rewrites or straight to NEXT_PUBLIC_API_URL; ?delay=SECONDS is passed on to the backend)
// and shows the socket's state from the context. Elements carry ids a test can read.
import { useEffect, useState } from "react";
import { useSocket } from "../lib/WebSocketContext";

export default function Page() {
  const socket = useSocket();
  const [api, setApi] = useState("pending");

  useEffect(() => {
    const params = new URLSearchParams(window.location.search);
    const base = (process.env.NEXT_PUBLIC_API_URL ?? "").replace(/\/+$/, "");
    const delay = params.get("delay");
    const url = `${base}/api/database/select${delay ? `?delay=${encodeURIComponent(delay)}` : ""}`;
    fetch(url)
      .then(async (r) => setApi(r.ok ? `ok ${JSON.stringify(await r.json())}` : `error ${r.status}`))
      .catch((e: unknown) => setApi(`failed ${String(e)}`));
  }, []);

  return (
    <main>
      <h1>The post-mortem&apos;s front end</h1>
      <p>
        client <span id="client">{socket?.client ?? ""}</span>, user{" "}
        <span id="user">{socket?.userId ?? ""}</span>
      </p>
      <p>
        socket <span id="status">{socket?.status ?? "idle"}</span>, opened{" "}
        <span id="opened">{socket?.opened ?? 0}</span>, messages{" "}
        <span id="messages">{socket?.messages ?? 0}</span>
      </p>
      <p>
        api <span id="api">{api}</span>
      </p>
      <pre id="events">{socket?.events.join("\n") ?? ""}</pre>
    </main>
  );
}

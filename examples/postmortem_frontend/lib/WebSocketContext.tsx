"use client";
// The WebSocket context, in two versions, chosen by the page's ?client= query parameter
// (no rebuild): "postfix" (the default) is the post-mortem's, "prefix" the one before it.
//
// postfix: a fresh id for every page load, kept in sessionStorage; listeners close the
// socket on beforeunload and when the page is hidden (and reconnect when it is shown);
// the effect's cleanup removes them and closes the socket (StrictMode's unmount included).
// prefix: the id in sessionStorage is reused across loads of the tab (a reload reconnects
// as the same user); no listeners, no cleanup.
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { PostfixManager, PrefixManager, type SocketManager } from "./websocket-manager";

export type ClientVersion = "prefix" | "postfix";

export interface SocketState {
  client: ClientVersion;
  userId: string;
  status: string;
  opened: number;
  messages: number;
  events: string[];
}

const ID_KEY = "simkit-user-id";
const Context = createContext<SocketState | null>(null);

function newId(): string {
  return `u-${Math.random().toString(36).slice(2, 10)}`;
}

// Where the socket goes: ?ws= when given; else the backend itself (NEXT_PUBLIC_API_URL,
// the fix); else this page's own origin, which the rewrites forward to the backend.
export function socketUrl(userId: string): string {
  const params = new URLSearchParams(window.location.search);
  const conn = Math.random().toString(36).slice(2, 10);
  const query = `user=${encodeURIComponent(userId)}&simkit_conn=${conn}`;
  const given = params.get("ws");
  if (given) return `${given}${given.includes("?") ? "&" : "?"}${query}`;
  const api = process.env.NEXT_PUBLIC_API_URL;
  const base = api
    ? api.replace(/^http/, "ws").replace(/\/+$/, "")
    : `${window.location.protocol === "https:" ? "wss" : "ws"}://${window.location.host}`;
  return `${base}/ws?${query}`;
}

export function clientVersion(): ClientVersion {
  const asked = new URLSearchParams(window.location.search).get("client");
  return asked === "prefix" ? "prefix" : "postfix";
}

export function WebSocketProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SocketState | null>(null);

  useEffect(() => {
    const client = clientVersion();
    let userId: string;
    if (client === "postfix") {
      userId = newId();
      sessionStorage.setItem(ID_KEY, userId);
    } else {
      userId = sessionStorage.getItem(ID_KEY) ?? newId();
      sessionStorage.setItem(ID_KEY, userId);
    }
    setState({ client, userId, status: "idle", opened: 0, messages: 0, events: [] });
    const listener = (event: string, detail?: string) =>
      setState((s) =>
        s && {
          ...s,
          status: event === "message" ? s.status : event,
          opened: s.opened + (event === "open" ? 1 : 0),
          messages: s.messages + (event === "message" ? 1 : 0),
          events: event === "message" ? s.events : [...s.events, detail ? `${event} ${detail}` : event],
        },
      );

    if (client === "prefix") {
      const manager: SocketManager = new PrefixManager(listener);
      void manager.connect(socketUrl(userId));
      return;
    }

    const manager = new PostfixManager(listener);
    void manager.connect(socketUrl(userId));
    const onBeforeUnload = () => manager.disconnect();
    const onVisibility = () => {
      if (document.visibilityState === "hidden") manager.disconnect();
      else void manager.connect(socketUrl(userId));
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    document.addEventListener("visibilitychange", onVisibility);
    return () => {
      window.removeEventListener("beforeunload", onBeforeUnload);
      document.removeEventListener("visibilitychange", onVisibility);
      manager.disconnect();
    };
  }, []);

  return <Context.Provider value={state}>{children}</Context.Provider>;
}

export function useSocket(): SocketState | null {
  return useContext(Context);
}

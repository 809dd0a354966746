// Two ways to reach the backend, chosen by the environment when the app starts (`next dev`)
// or is built (`next build`: rewrites and NEXT_PUBLIC_* values are fixed at build time):
//
// - BACKEND_URL=http://host:port: the set-up before the post-mortem's fix. The HTTP API and
//   the WebSocket path are rewritten to the backend, so the browser talks only to Next.js,
//   whose bundled http-proxy forwards both (WebSocket upgrades included).
// - NEXT_PUBLIC_API_URL=http://host:port: the fix. No rewrites; the page calls the backend
//   itself (the backend must allow the page's origin: CORS).
//
// PROXY_TIMEOUT_MS, when set, is the rewrites proxy's timeout (experimental.proxyTimeout,
// 30 s when unset).
import type { NextConfig } from "next";

const backend = process.env.BACKEND_URL?.replace(/\/+$/, "");
const proxyTimeout = process.env.PROXY_TIMEOUT_MS ? Number(process.env.PROXY_TIMEOUT_MS) : undefined;

const nextConfig: NextConfig = {
  reactStrictMode: true,
  // Builds go to SIMKIT_DIST_DIR when set, so that builds with different settings can sit
  // side by side; .next otherwise.
  distDir: process.env.SIMKIT_DIST_DIR || ".next",
  // ...with a tsconfig of their own (Next.js adds each build directory's types to it).
  typescript: { tsconfigPath: process.env.SIMKIT_TSCONFIG || "tsconfig.json" },
  experimental: proxyTimeout ? { proxyTimeout } : {},
  async rewrites() {
    if (!backend) return [];
    return [
      { source: "/api/:path*", destination: `${backend}/api/:path*` },
      { source: "/ws", destination: `${backend}/ws` },
    ];
  },
};

export default nextConfig;

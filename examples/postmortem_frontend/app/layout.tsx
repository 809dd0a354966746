import type { ReactNode } from "react";
import { WebSocketProvider } from "../lib/WebSocketContext";

export const metadata = { title: "simkit: the post-mortem's front end" };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <WebSocketProvider>{children}</WebSocketProvider>
      </body>
    </html>
  );
}

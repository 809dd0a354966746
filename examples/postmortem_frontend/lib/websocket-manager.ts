// The socket manager, in two versions.
//
// PostfixManager is the post-mortem's: a connect while another is in flight waits for it
// (up to 3 s, checking every 100 ms), then the old socket is closed (close() with no code)
// and, 100 ms later, the new one is opened.
//
// PrefixManager is the version before the fix: every connect opens a new socket and
// forgets the previous one, which stays open until the server or the page's end closes it.

export type Listener = (event: string, detail?: string) => void;

export interface SocketManager {
  connect(url: string): Promise<void>;
  disconnect(): void;
  readonly socket: WebSocket | null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class PostfixManager implements SocketManager {
  socket: WebSocket | null = null;
  private connecting = false;

  constructor(private readonly listener: Listener) {}

  async connect(url: string): Promise<void> {
    for (let waited = 0; this.connecting && waited < 3000; waited += 100) {
      await sleep(100);
    }
    if (this.socket) {
      this.socket.close();
      this.socket = null;
      await sleep(100);
    }
    this.connecting = true;
    const socket = new WebSocket(url);
    this.socket = socket;
    this.listener("connecting", url);
    socket.onopen = () => {
      this.connecting = false;
      this.listener("open");
    };
    socket.onmessage = (event) => this.listener("message", String(event.data));
    socket.onclose = (event) => {
      if (this.socket === socket) {
        this.connecting = false;
      }
      this.listener("close", String(event.code));
    };
  }

  disconnect(): void {
    if (this.socket) {
      this.socket.close();
      this.socket = null;
    }
    this.connecting = false;
  }
}

export class PrefixManager implements SocketManager {
  socket: WebSocket | null = null;

  constructor(private readonly listener: Listener) {}

  async connect(url: string): Promise<void> {
    const socket = new WebSocket(url);
    this.socket = socket;
    this.listener("connecting", url);
    socket.onopen = () => this.listener("open");
    socket.onmessage = (event) => this.listener("message", String(event.data));
    socket.onclose = (event) => this.listener("close", String(event.code));
  }

  disconnect(): void {
    this.socket?.close();
    this.socket = null;
  }
}

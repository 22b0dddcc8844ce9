/**
 * A socket that is not there yet. The client's stream exists from CONNECTED on, but its
 * SOCKS socket joins only after the SOCKS reply was written: bytes the exit sends meanwhile
 * (a server that speaks first) wait here, bounded by the stream's deliver window (500
 * cells), instead of being dropped (C tor attaches the edge connection before CONNECTED is
 * handled, so its inbuf takes them).
 * @module
 */

import type { EdgeSocket } from "./stream.ts";

/** An {@link EdgeSocket} whose reads and writes wait for {@link LateSocket.attach}. */
export class LateSocket implements EdgeSocket {
  #socket?: EdgeSocket;
  #ready: Promise<EdgeSocket>;
  #resolve!: (s: EdgeSocket) => void;
  #reject!: (e: Error) => void;
  #closed = false;

  /** A socket to be attached later. */
  constructor() {
    this.#ready = new Promise((res, rej) => (this.#resolve = res, this.#reject = rej));
    this.#ready.catch(() => {});
  }

  /** The real socket arrived (closed at once when this was closed first). */
  attach(socket: EdgeSocket): void {
    if (this.#closed) {
      try {
        socket.close();
      } catch { /* closed */ }
      return;
    }
    this.#socket = socket;
    this.#resolve(socket);
  }

  /** Reads from the real socket once it is attached. */
  async read(p: Uint8Array): Promise<number | null> {
    return (this.#socket ?? await this.#ready).read(p);
  }

  /** Writes to the real socket once it is attached. */
  async write(p: Uint8Array): Promise<number> {
    return (this.#socket ?? await this.#ready).write(p);
  }

  /** Closes the real socket, or makes waiting reads and writes fail. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#socket) this.#socket.close();
    else this.#reject(new Error("stream closed before its socket was attached"));
  }
}

/**
 * A Tor control-port client (control-spec): PROTOCOLINFO, AUTHENTICATE by cookie, SAFECOOKIE
 * or password, commands with their replies in order, and asynchronous events (650) to
 * listeners. Enough to pin circuits: EXTENDCIRCUIT, ATTACHSTREAM under
 * __LeaveStreamsUnattached, CIRC / STREAM / CIRC_BW events.
 * @module
 */

import { createHmac } from "node:crypto";
import { fromHex, toHex } from "../util/bytes.ts";

/** A reply: status code and its lines (without the code prefix). */
export interface ControlReply {
  /** Status code of the final line (250 is success). */
  code: number;
  /** Lines, the code and separator removed; data blocks included as lines. */
  lines: string[];
}

/** A failed control command or authentication. */
export class ControlError extends Error {
  override name = "ControlError";
}

const SAFECOOKIE_SERVER = "Tor safe cookie authentication server-to-controller hash";
const SAFECOOKIE_CLIENT = "Tor safe cookie authentication controller-to-server hash";

/** An authenticated control connection. */
export class TorControl {
  #conn: Deno.TcpConn;
  #pending: { resolve: (r: ControlReply) => void; reject: (e: Error) => void }[] = [];
  #listeners = new Set<(event: string) => void>();
  #closed = false;
  #done: Promise<void>;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#done = this.#readLoop();
  }

  /** Connects to HOST:PORT (not yet authenticated). */
  static async connect(host: string, port: number): Promise<TorControl> {
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: host, port });
    } catch (e) {
      throw new ControlError(
        `cannot connect to the control port ${host}:${port}: ${(e as Error).message}`,
      );
    }
    return new TorControl(conn);
  }

  async #readLoop(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    let lines: string[] = [];
    let inData = false;
    const chunk = new Uint8Array(16384);
    try {
      for (;;) {
        const n = await this.#conn.read(chunk);
        if (n === null) break;
        buf += dec.decode(chunk.subarray(0, n), { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\r\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 2);
          if (inData) {
            if (line === ".") inData = false;
            else lines.push(line.startsWith("..") ? line.slice(1) : line);
            continue;
          }
          const code = Number(line.slice(0, 3));
          const sep = line[3];
          const rest = line.slice(4);
          lines.push(rest);
          if (sep === "+") inData = true;
          if (sep === " ") {
            const reply = { code, lines };
            lines = [];
            if (code === 650) {
              for (const l of this.#listeners) l(reply.lines.join("\n"));
            } else {
              this.#pending.shift()?.resolve(reply);
            }
          }
        }
      }
    } catch { /* closed */ }
    this.#closed = true;
    for (const p of this.#pending.splice(0)) {
      p.reject(new ControlError("control connection closed"));
    }
  }

  /** Sends one command line and resolves its reply; a non-2xx reply rejects. */
  async command(line: string): Promise<ControlReply> {
    if (this.#closed) throw new ControlError("control connection closed");
    const p = new Promise<ControlReply>((resolve, reject) =>
      this.#pending.push({ resolve, reject })
    );
    await this.#conn.write(new TextEncoder().encode(line + "\r\n"));
    const r = await p;
    if (r.code < 200 || r.code >= 300) {
      throw new ControlError(`${line.split(" ")[0]}: ${r.code} ${r.lines.join(" ")}`);
    }
    return r;
  }

  /** Listens to asynchronous events (after SETEVENTS); returns a function that stops it. */
  onEvent(listener: (event: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Authenticates: with `password` if given; else SAFECOOKIE or COOKIE (from PROTOCOLINFO's
   * cookie file, or `cookieFile`); else NULL.
   */
  async authenticate(options: { password?: string; cookieFile?: string } = {}): Promise<string> {
    const info = (await this.command("PROTOCOLINFO 1")).lines.join("\n");
    const methods = /METHODS=([A-Z,]+)/.exec(info)?.[1]?.split(",") ?? [];
    const cookiePath = options.cookieFile ??
      /COOKIEFILE="((?:[^"\\]|\\.)*)"/.exec(info)?.[1]?.replace(/\\(.)/g, "$1");
    if (options.password !== undefined) {
      await this.command(`AUTHENTICATE "${options.password.replace(/["\\]/g, "\\$&")}"`);
      return "password";
    }
    if (methods.includes("SAFECOOKIE") && cookiePath) {
      const cookie = await Deno.readFile(cookiePath);
      const clientNonce = crypto.getRandomValues(new Uint8Array(32));
      const r = (await this.command(`AUTHCHALLENGE SAFECOOKIE ${toHex(clientNonce)}`)).lines.join(
        " ",
      );
      const serverHash = /SERVERHASH=([0-9A-Fa-f]+)/.exec(r)?.[1];
      const serverNonce = /SERVERNONCE=([0-9A-Fa-f]+)/.exec(r)?.[1];
      if (!serverHash || !serverNonce) throw new ControlError("malformed AUTHCHALLENGE reply");
      const msg = new Uint8Array([...cookie, ...clientNonce, ...fromHex(serverNonce)]);
      const expect = createHmac("sha256", SAFECOOKIE_SERVER).update(msg).digest("hex");
      if (expect !== serverHash.toLowerCase()) {
        throw new ControlError("tor's SAFECOOKIE server hash does not verify");
      }
      const clientHash = createHmac("sha256", SAFECOOKIE_CLIENT).update(msg).digest("hex");
      await this.command(`AUTHENTICATE ${clientHash}`);
      return "safecookie";
    }
    if (methods.includes("COOKIE") && cookiePath) {
      await this.command(`AUTHENTICATE ${toHex(await Deno.readFile(cookiePath))}`);
      return "cookie";
    }
    if (methods.includes("NULL")) {
      await this.command("AUTHENTICATE");
      return "null";
    }
    throw new ControlError(
      `no usable authentication method (tor offers ${methods.join(",") || "none"})`,
    );
  }

  /** Closes the connection. */
  async close(): Promise<void> {
    if (!this.#closed) {
      try {
        await this.command("QUIT").catch(() => {});
      } finally {
        try {
          this.#conn.close();
        } catch { /* closed */ }
      }
    }
    await this.#done;
  }
}

/** Parses KEY=VALUE pairs of an event line. */
export function eventFields(event: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of event.matchAll(/([A-Z_]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    out[m[1]!] = m[2]!.replace(/^"|"$/g, "");
  }
  return out;
}

/**
 * Chosen circuits with a real Tor client: builds a circuit through given relays with
 * EXTENDCIRCUIT, attaches each of our streams to it with ATTACHSTREAM (under
 * __LeaveStreamsUnattached, restored on close), and reports the circuit's path, build time
 * (LAUNCHED → BUILT events) and, where Tor reports them (CIRC_BW), congestion window and RTT.
 *
 * The path may differ per stream: a SOCKS user name `pctcp-path=R1,R2,R3;…` (what `measure
 * --arm` sends, and what our own client reads too) asks for a circuit through those relays,
 * one circuit per user name (Tor isolates by SOCKS authentication). A circuit that cannot be
 * built closes the stream at once (control-spec CLOSESTREAM with a RELAY_END reason of tor-spec
 * §6.3, 1 = MISC) and says why, so the fetch fails fast and its record names the failure instead
 * of waiting for Tor's SOCKS timeout.
 * @module
 */

import { ControlError, eventFields, TorControl } from "./control.ts";

/** What a record learns of the circuit. */
export interface PinnedCircuitInfo {
  id: string;
  path: string[];
  build_ms: number | null;
  cwnd?: number;
  rtt_ms?: number;
  /** Why no circuit could be built for this stream (CIRC FAILED reason, or the refusal). */
  error?: string;
}

/** The relays a SOCKS user name asks for (`pctcp-path=R1,R2,R3;…`), or undefined. */
export function pathFromSocksUser(user: string): string[] | undefined {
  const m = /^pctcp-path=([^;\0]+)/.exec(user);
  return m ? m[1]!.split(",").map((x) => x.trim().replace(/^\$/, "")).filter(Boolean) : undefined;
}

/** A pinned circuit on a Tor client, with its stream attacher running. */
export class PinnedCircuits {
  #ctl: TorControl;
  #previous: string;
  #path: string[] | null;
  #circuits = new Map<string, Promise<string>>();
  #pathOf = new Map<string, string[]>();
  #failReason = new Map<string, string>();
  #failed = new Map<number, { path: string[]; error: string }>();
  #open = new Set<string>();
  #buildMs = new Map<string, number>();
  #launched = new Map<string, number>();
  #built = new Map<string, (ok: boolean) => void>();
  #cc = new Map<string, { cwnd?: number; rtt?: number }>();
  #stopEvents: () => void;
  #attached = new Map<number, string>();

  private constructor(ctl: TorControl, path: string[] | null, previous: string) {
    this.#ctl = ctl;
    this.#path = path;
    this.#previous = previous;
    this.#stopEvents = ctl.onEvent((e) => this.#onEvent(e));
  }

  /**
   * Connects, authenticates, and takes over stream attachment. `path` is used for streams
   * whose SOCKS user name names none (null: those go to a circuit Tor picks).
   */
  static async open(
    control: string,
    path: string[] | null,
    auth: { password?: string; cookieFile?: string } = {},
  ): Promise<PinnedCircuits> {
    const m = /^(.+):(\d+)$/.exec(control);
    if (!m) throw new ControlError(`expected HOST:PORT for the control port, got ${control}`);
    const ctl = await TorControl.connect(m[1]!, Number(m[2]));
    try {
      await ctl.authenticate(auth);
      const prev = (await ctl.command("GETCONF __LeaveStreamsUnattached")).lines[0] ?? "";
      const previous = /=(\d)/.exec(prev)?.[1] ?? "0";
      const p = new PinnedCircuits(
        ctl,
        path ? path.map((x) => x.replace(/^\$/, "")) : null,
        previous,
      );
      await ctl.command("SETEVENTS CIRC STREAM CIRC_BW");
      await ctl.command("SETCONF __LeaveStreamsUnattached=1");
      return p;
    } catch (e) {
      await ctl.close();
      throw e;
    }
  }

  #onEvent(e: string): void {
    const [kind, id, status] = e.split(" ");
    if (kind === "CIRC" && id) {
      if (status === "LAUNCHED") this.#launched.set(id, performance.now());
      if (status === "BUILT" || status === "FAILED" || status === "CLOSED") {
        if (status !== "BUILT") {
          const f = eventFields(e);
          if (f.REASON) {
            this.#failReason.set(
              id,
              `${status} ${f.REASON}${f.REMOTE_REASON ? ` (remote ${f.REMOTE_REASON})` : ""}`,
            );
          }
        }
        const w = this.#built.get(id);
        this.#built.delete(id);
        if (status === "BUILT" && this.#launched.has(id)) {
          this.#buildMs.set(
            id,
            Math.round((performance.now() - this.#launched.get(id)!) * 1000) / 1000,
          );
        }
        if (status !== "BUILT" && this.#open.delete(id)) {
          for (const [u, p] of this.#circuits) {
            p.then((c) => c === id && this.#circuits.delete(u), () => {});
          }
        }
        w?.(status === "BUILT");
      }
    } else if (kind === "CIRC_BW") {
      const f = eventFields(e);
      if (f.ID) {
        this.#cc.set(f.ID, {
          ...(f.CWND ? { cwnd: Number(f.CWND) } : {}),
          ...(f.RTT ? { rtt: Number(f.RTT) } : {}),
        });
      }
    } else if (kind === "STREAM" && id && status === "NEW") {
      const f = eventFields(e);
      const port = Number(f.SOURCE_ADDR?.split(":").pop());
      this.#attach(id, port, f.SOCKS_USERNAME ?? "").catch(() => {});
    }
  }

  async #attach(streamId: string, sourcePort: number, user: string): Promise<void> {
    const path = pathFromSocksUser(user) ?? this.#path;
    if (!path) {
      // Not ours to pin: let Tor choose, as it would without us.
      await this.#ctl.command(`ATTACHSTREAM ${streamId} 0`);
      return;
    }
    let circ: string;
    try {
      circ = await this.circuit(user);
    } catch (e) {
      this.#attached.delete(sourcePort);
      this.#failed.set(sourcePort, { path, error: (e as Error).message });
      // REASON_MISC (1): the stream ends now and the SOCKS client hears a failure.
      await this.#ctl.command(`CLOSESTREAM ${streamId} 1`).catch(() => {});
      return;
    }
    this.#failed.delete(sourcePort); // a reused source port
    this.#attached.set(sourcePort, circ);
    this.#pathOf.set(circ, path);
    try {
      await this.#ctl.command(`ATTACHSTREAM ${streamId} ${circ}`);
    } catch (e) {
      this.#attached.delete(sourcePort);
      this.#failed.set(sourcePort, { path, error: (e as Error).message });
      await this.#ctl.command(`CLOSESTREAM ${streamId} 1`).catch(() => {});
    }
  }

  /**
   * The pinned circuit for a SOCKS user name (one circuit per user, as Tor isolates by
   * SOCKS authentication), built (again) if it is not open. Its path comes from the user
   * name (`pctcp-path=…`) or else the default path.
   */
  circuit(user = ""): Promise<string> {
    let p = this.#circuits.get(user);
    if (!p) {
      const path = pathFromSocksUser(user) ?? this.#path;
      if (!path) return Promise.reject(new ControlError("no path to pin for this stream"));
      p = this.#build(path);
      this.#circuits.set(user, p);
      p.catch(() => this.#circuits.delete(user));
    }
    return p;
  }

  async #build(path: string[]): Promise<string> {
    const r = await this.#ctl.command(`EXTENDCIRCUIT 0 ${path.join(",")}`);
    const id = /EXTENDED (\d+)/.exec(r.lines.join(" "))?.[1];
    if (!id) throw new ControlError(`EXTENDCIRCUIT gave no circuit id: ${r.lines.join(" ")}`);
    if (!this.#launched.has(id)) this.#launched.set(id, performance.now());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ok = await new Promise<boolean>((resolve) => {
      this.#built.set(id, resolve);
      timer = setTimeout(() => resolve(false), 60_000);
    }).finally(() => clearTimeout(timer));
    if (!ok) {
      const why = this.#failReason.get(id);
      throw new ControlError(
        `circuit ${id} through ${path.join(",")} failed${why ? `: ${why}` : " (no BUILT in 60 s)"}`,
      );
    }
    this.#open.add(id);
    return id;
  }

  /** What to record for a stream from `sourcePort`. */
  info(sourcePort: number): PinnedCircuitInfo | null {
    const failed = this.#failed.get(sourcePort);
    if (failed) return { id: "", path: failed.path, build_ms: null, error: failed.error };
    const id = this.#attached.get(sourcePort);
    if (!id) return null;
    const cc = this.#cc.get(id);
    return {
      id,
      path: this.#pathOf.get(id) ?? this.#path ?? [],
      build_ms: this.#buildMs.get(id) ?? null,
      ...(cc?.cwnd !== undefined ? { cwnd: cc.cwnd } : {}),
      ...(cc?.rtt !== undefined ? { rtt_ms: cc.rtt } : {}),
    };
  }

  /** Restores __LeaveStreamsUnattached, closes the circuit and the connection. */
  async close(): Promise<void> {
    this.#stopEvents();
    try {
      await this.#ctl.command(`SETCONF __LeaveStreamsUnattached=${this.#previous}`);
      for (const id of this.#open) await this.#ctl.command(`CLOSECIRCUIT ${id}`).catch(() => {});
      await this.#ctl.command("SETEVENTS");
    } finally {
      await this.#ctl.close();
    }
  }
}

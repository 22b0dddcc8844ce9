/**
 * Chosen circuits with a real Tor client: builds a circuit through given relays with
 * EXTENDCIRCUIT, attaches each of our streams to it with ATTACHSTREAM (under
 * __LeaveStreamsUnattached, restored on close), and reports the circuit's path, build time
 * (LAUNCHED → BUILT events) and, where Tor reports them (CIRC_BW), congestion window and RTT.
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
}

/** A pinned circuit on a Tor client, with its stream attacher running. */
export class PinnedCircuits {
  #ctl: TorControl;
  #previous: string;
  #path: string[];
  #circuits = new Map<string, Promise<string>>();
  #open = new Set<string>();
  #buildMs = new Map<string, number>();
  #launched = new Map<string, number>();
  #built = new Map<string, (ok: boolean) => void>();
  #cc = new Map<string, { cwnd?: number; rtt?: number }>();
  #stopEvents: () => void;
  #attached = new Map<number, string>();

  private constructor(ctl: TorControl, path: string[], previous: string) {
    this.#ctl = ctl;
    this.#path = path;
    this.#previous = previous;
    this.#stopEvents = ctl.onEvent((e) => this.#onEvent(e));
  }

  /** Connects, authenticates, and takes over stream attachment. */
  static async open(
    control: string,
    path: string[],
    auth: { password?: string; cookieFile?: string } = {},
  ): Promise<PinnedCircuits> {
    const m = /^(.+):(\d+)$/.exec(control);
    if (!m) throw new ControlError(`expected HOST:PORT for the control port, got ${control}`);
    const ctl = await TorControl.connect(m[1]!, Number(m[2]));
    try {
      await ctl.authenticate(auth);
      const prev = (await ctl.command("GETCONF __LeaveStreamsUnattached")).lines[0] ?? "";
      const previous = /=(\d)/.exec(prev)?.[1] ?? "0";
      const p = new PinnedCircuits(ctl, path.map((x) => x.replace(/^\$/, "")), previous);
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
    const circ = await this.circuit(user);
    this.#attached.set(sourcePort, circ);
    await this.#ctl.command(`ATTACHSTREAM ${streamId} ${circ}`);
  }

  /**
   * The pinned circuit for a SOCKS user name (one circuit per user, as Tor isolates by
   * SOCKS authentication), built (again) if it is not open.
   */
  circuit(user = ""): Promise<string> {
    let p = this.#circuits.get(user);
    if (!p) {
      p = this.#build();
      this.#circuits.set(user, p);
      p.catch(() => this.#circuits.delete(user));
    }
    return p;
  }

  async #build(): Promise<string> {
    const r = await this.#ctl.command(`EXTENDCIRCUIT 0 ${this.#path.join(",")}`);
    const id = /EXTENDED (\d+)/.exec(r.lines.join(" "))?.[1];
    if (!id) throw new ControlError(`EXTENDCIRCUIT gave no circuit id: ${r.lines.join(" ")}`);
    if (!this.#launched.has(id)) this.#launched.set(id, performance.now());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ok = await new Promise<boolean>((resolve) => {
      this.#built.set(id, resolve);
      timer = setTimeout(() => resolve(false), 60_000);
    }).finally(() => clearTimeout(timer));
    if (!ok) throw new ControlError(`circuit ${id} through ${this.#path.join(",")} failed`);
    this.#open.add(id);
    return id;
  }

  /** What to record for a stream from `sourcePort`. */
  info(sourcePort: number): PinnedCircuitInfo | null {
    const id = this.#attached.get(sourcePort);
    if (!id) return null;
    const cc = this.#cc.get(id);
    return {
      id,
      path: this.#path,
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

/**
 * Per-address budgets against denial of service, after C tor's DoS subsystem (dos.c, dos.h;
 * tor manual "DENIAL OF SERVICE MITIGATION OPTIONS"). Only clients are subject to it: links
 * whose peer authenticated as a relay of the network are exempt, as C tor exempts known
 * relays. Pure bookkeeping with an injected clock; the relay calls it at accept, after the
 * link handshake, on every CREATE2 and on every BEGIN/RESOLVE.
 *
 * * Concurrent connections (DoSConnectionMaxConcurrentCount): an address holding that many
 *   client links has new connections closed at accept (DOS_CONN_DEFENSE_CLOSE). PCTCP's
 *   per-circuit client links are counted apart, against the per-peer cap of PCTCP (512).
 * * Connect rate (DoSConnectionConnectRate/Burst, off unless set): an address that opens
 *   links faster is refused for DoSConnectionConnectDefenseTimePeriod.
 * * Circuit creation (DoSCircuitCreationRate/Burst/MinConnections/DefenseTimePeriod): a
 *   token bucket per address, refilled at `rate` per second up to `burst`, takes one token
 *   per CREATE2 on a shared link; an address with no token left while it holds at least
 *   `minConnections` shared links is marked for the defense period, and its CREATE2 cells
 *   on shared links are answered with DESTROY (RESOURCELIMIT) until then
 *   (DOS_CC_DEFENSE_REFUSE_CELL). A PCTCP per-circuit link carries exactly one circuit
 *   (bound in its handshake), so there the link budget above bounds circuit creation, and a
 *   PCTCP client, which holds a link per circuit, is not marked for having many.
 * * Stream creation (DoSStreamCreationRate/Burst, tor 0.4.9): a token bucket per circuit;
 *   a BEGIN or RESOLVE past it is refused with END RESOURCELIMIT (defense type 2, "refuse").
 * @module
 */

/** Limits, with C tor's defaults. */
export interface DosOptions {
  /**
   * Client links one address may hold (DoSConnectionMaxConcurrentCount; default 50, the
   * value the Tor network's consensus sets — C tor's compiled default is 100).
   */
  maxConcurrentConnections?: number;
  /** Per-circuit (PCTCP) client links one address may hold (default 512). */
  maxConcurrentCircuitConnections?: number;
  /** Links per second one address may open (DoSConnectionConnectRate, C tor 20; off by default). */
  connectRate?: number;
  /** Burst of that (DoSConnectionConnectBurst, C tor 40). */
  connectBurst?: number;
  /** How long an address past the connect rate is refused (C tor 24 h). */
  connectDefenseMs?: number;
  /** CREATE2 per second refilled per address (DoSCircuitCreationRate, default 3). */
  circuitRate?: number;
  /** Bucket size (DoSCircuitCreationBurst, default 90). */
  circuitBurst?: number;
  /** Links an address must hold before the circuit defense applies (default 3). */
  circuitMinConnections?: number;
  /** How long a marked address has its CREATE2 refused (default 1 h). */
  circuitDefenseMs?: number;
  /** BEGIN/RESOLVE per second refilled per circuit (DoSStreamCreationRate, default 100). */
  streamRate?: number;
  /** Bucket size (DoSStreamCreationBurst, default 300). */
  streamBurst?: number;
}

/** C tor's defaults (dos.h; the consensus value of DoSConnectionMaxConcurrentCount). */
export const DOS_DEFAULTS: Required<DosOptions> = {
  maxConcurrentConnections: 50,
  maxConcurrentCircuitConnections: 512,
  connectRate: 0,
  connectBurst: 40,
  connectDefenseMs: 24 * 3600_000,
  circuitRate: 3,
  circuitBurst: 90,
  circuitMinConnections: 3,
  circuitDefenseMs: 3600_000,
  streamRate: 100,
  streamBurst: 300,
};

/** A token bucket refilled continuously at `rate` per second up to `burst`. */
export class TokenCounter {
  #tokens: number;
  #at: number;
  #rate: number;
  #burst: number;
  #now: () => number;

  /** Full at first. */
  constructor(rate: number, burst: number, now: () => number = () => performance.now()) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#now = now;
    this.#at = now();
  }

  /** Takes a token; false when none is left. */
  take(): boolean {
    const t = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((t - this.#at) / 1000) * this.#rate);
    this.#at = t;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}

interface AddressStats {
  shared: number;
  circuit: number;
  circuits?: TokenCounter;
  connects?: TokenCounter;
  circuitMarkedUntil: number;
  connectMarkedUntil: number;
}

/** The DoS bookkeeping of one relay. */
export class DosGuard {
  readonly #o: Required<DosOptions>;
  readonly #now: () => number;
  #by = new Map<string, AddressStats>();
  /** Connections refused, CREATE2 and BEGIN refused (for stats). */
  readonly refused = { connections: 0, circuits: 0, streams: 0 };

  /** Limits `options` over {@link DOS_DEFAULTS}; `now` in ms. */
  constructor(options: DosOptions = {}, now: () => number = () => performance.now()) {
    this.#o = { ...DOS_DEFAULTS, ...options };
    this.#now = now;
  }

  #stats(address: string): AddressStats {
    let s = this.#by.get(address);
    if (!s) {
      s = { shared: 0, circuit: 0, circuitMarkedUntil: -Infinity, connectMarkedUntil: -Infinity };
      this.#by.set(address, s);
    }
    return s;
  }

  #gc(address: string, s: AddressStats): void {
    const now = this.#now();
    if (
      s.shared === 0 && s.circuit === 0 && s.circuitMarkedUntil < now &&
      s.connectMarkedUntil < now
    ) this.#by.delete(address);
  }

  /**
   * At accept, before any handshake (C tor dos_conn_addr_get_defense_type): false when the
   * address already holds its share of client links or was marked for its connect rate.
   */
  connectionAllowed(address: string): boolean {
    const s = this.#by.get(address);
    if (!s) return true;
    const ok = s.shared < this.#o.maxConcurrentConnections &&
      s.connectMarkedUntil < this.#now();
    if (!ok) this.refused.connections++;
    return ok;
  }

  /**
   * A client link from `address` finished its handshake (C tor dos_new_client_conn); false
   * when it is one too many (handshakes that raced past the accept check) and must be closed.
   * Call {@link clientLinkClosed} later only when this returned true.
   */
  clientLinkOpened(address: string, purpose: "shared" | "circuit"): boolean {
    const s = this.#stats(address);
    const max = purpose === "shared"
      ? this.#o.maxConcurrentConnections
      : this.#o.maxConcurrentCircuitConnections;
    if ((purpose === "shared" ? s.shared : s.circuit) >= max) {
      this.refused.connections++;
      this.#gc(address, s);
      return false;
    }
    if (purpose === "shared") s.shared++;
    else s.circuit++;
    if (this.#o.connectRate > 0) {
      s.connects ??= new TokenCounter(this.#o.connectRate, this.#o.connectBurst, this.#now);
      if (!s.connects.take()) s.connectMarkedUntil = this.#now() + this.#o.connectDefenseMs;
    }
    return true;
  }

  /** A client link counted by {@link clientLinkOpened} closed (C tor dos_close_client_conn). */
  clientLinkClosed(address: string, purpose: "shared" | "circuit"): void {
    const s = this.#by.get(address);
    if (!s) return;
    if (purpose === "shared") s.shared = Math.max(0, s.shared - 1);
    else s.circuit = Math.max(0, s.circuit - 1);
    this.#gc(address, s);
  }

  /**
   * A CREATE2 from a client at `address` on a shared link (C tor dos_cc_new_create_cell,
   * then dos_cc_get_defense_type): false when it must be refused with DESTROY RESOURCELIMIT.
   */
  createAllowed(address: string): boolean {
    const s = this.#stats(address);
    const now = this.#now();
    s.circuits ??= new TokenCounter(this.#o.circuitRate, this.#o.circuitBurst, this.#now);
    const hadToken = s.circuits.take();
    if (!hadToken && s.shared >= this.#o.circuitMinConnections) {
      if (s.circuitMarkedUntil < now) s.circuitMarkedUntil = now + this.#o.circuitDefenseMs;
    }
    if (s.circuitMarkedUntil >= now) {
      this.refused.circuits++;
      return false;
    }
    return true;
  }

  /** A per-circuit stream-creation bucket (DoSStreamCreationRate/Burst). */
  streamBucket(): TokenCounter {
    return new TokenCounter(this.#o.streamRate, this.#o.streamBurst, this.#now);
  }
}

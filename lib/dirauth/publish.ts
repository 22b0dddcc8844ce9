/**
 * Uploading a server descriptor to the directory authorities (dir-spec §2.1: "Uploading server
 * descriptors and extra-info documents": HTTP POST to `/tor/` on each authority's DirPort).
 *
 * What a C tor 0.4.9 authority answers (src/feature/dircache/dircache.c
 * `directory_handle_command_post`, src/feature/dirauth/process_descs.c
 * `dirserv_add_multiple_descriptors`), as seen from Debian's tor 0.4.9.11:
 * * `HTTP/1.0 400 <reason>` — refused, e.g. `Missing TAP key in descriptor.`;
 * * `HTTP/1.0 200 OK` with `X-Descriptor-Not-New: Yes` — it already has this descriptor;
 * * `HTTP/1.0 200 [None]` — taken, **or nothing in the POST parsed** (a bad signature, a
 *   malformed line): the caller's message starts as "[None]" and is never replaced in either
 *   case, so the status line cannot tell them apart.
 *
 * So after a 200 the upload is confirmed by fetching the descriptor back by its digest
 * (`GET /tor/server/d/<SHA-1 of the signed part>`, dir-spec §4.2): `accepted` means the authority
 * holds this very descriptor. (It is listed only after its reachability test.)
 *
 * Tor republishes at least every 18 hours (router.c `FORCE_REGENERATE_DESCRIPTOR_INTERVAL`) and
 * on change; authorities drop a descriptor published more than 24 h ago.
 * @module
 */

import type { DirAuthority } from "./authorities.ts";
import { type Logger, nullLogger } from "../util/log.ts";
import { descriptorContentKey, descriptorDigestHex } from "./descriptor.ts";

/** One authority's answer to one upload. */
export interface PublishResult {
  /** The authority: its nickname, else ADDR:DIRPORT. */
  authority: string;
  /** Its DirPort, ADDR:PORT. */
  address: string;
  /** HTTP status (200, 400, …), or 0 when no answer came (the error is the reason). */
  status: number;
  /** The status line's reason phrase (and what the confirmation found), or the error. */
  reason: string;
  /** True when the authority holds this descriptor (fetched back after a 200; see the module doc). */
  accepted: boolean;
  /** When the answer came (ISO 8601). */
  at: string;
}

/** Options of {@linkcode publishDescriptor}. */
export interface PublishOptions {
  /** Give up on one authority after this many ms, upload and confirmation (default 20 000). */
  timeoutMs?: number;
  /** Sent as `X-Desc-Gen-Reason` (tor logs it at info level). */
  reason?: string;
  /** Fetch the descriptor back after a 200 (default true); without, a 200 counts accepted. */
  confirm?: boolean;
  /** Clock for the results' `at` (default: the system clock). */
  now?: () => Date;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

interface HttpAnswer {
  status: number;
  reason: string;
  headers: string[];
  body: Uint8Array;
}

/** Reads the whole answer until the authority closes (HTTP/1.0), at most 1 MiB. */
async function readAll(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(16384);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
    if (total > 1 << 20) throw new RangeError("Answer over 1 MiB");
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Parses an HTTP/1.x answer: status line, headers, body. SyntaxError if it is not one. */
function parseAnswer(bytes: Uint8Array): HttpAnswer {
  let end = -1;
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      end = i;
      break;
    }
  }
  const head = dec.decode(end >= 0 ? bytes.subarray(0, end) : bytes);
  const [statusLine = "", ...headers] = head.split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!m) throw new SyntaxError(`Not an HTTP status line: ${JSON.stringify(statusLine)}`);
  return {
    status: Number(m[1]),
    reason: m[2] ?? "",
    headers,
    body: end >= 0 ? bytes.subarray(end + 4) : new Uint8Array(0),
  };
}

/** One HTTP/1.0 request to an authority's DirPort; rejects on any failure or past `deadline`. */
async function exchange(
  a: DirAuthority,
  request: Uint8Array,
  deadline: number,
): Promise<HttpAnswer> {
  let conn: Deno.Conn | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const ms = Math.max(0, deadline - Date.now());
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      try {
        conn?.close();
      } catch { /* closed */ }
      reject(new Error("no answer in time"));
    }, ms);
  });
  const work = (async () => {
    const c = await Deno.connect({ hostname: a.address, port: a.dirPort });
    if (timedOut) {
      c.close();
      throw new Error("no answer in time");
    }
    conn = c;
    for (let off = 0; off < request.length;) off += await c.write(request.subarray(off));
    const answer = await readAll(c);
    if (answer.length === 0) throw new Error("the authority closed without an answer");
    return parseAnswer(answer);
  })();
  try {
    return await Promise.race([work, timeout]);
  } finally {
    work.catch(() => {});
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

function request(head: string, body = new Uint8Array(0)): Uint8Array {
  const h = enc.encode(head);
  const out = new Uint8Array(h.length + body.length);
  out.set(h, 0);
  out.set(body, h.length);
  return out;
}

function sameText(a: Uint8Array, text: string): boolean {
  return dec.decode(a).trimEnd() === text.trimEnd();
}

async function publishOne(
  text: string,
  a: DirAuthority,
  o: PublishOptions,
): Promise<{ status: number; reason: string; accepted: boolean }> {
  const timeoutMs = o.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  const host = `${a.address}:${a.dirPort}`;
  const body = enc.encode(text);
  let status = 0, reason = "";
  try {
    const gen = o.reason ? `X-Desc-Gen-Reason: ${o.reason.replace(/[\r\n]/g, " ")}\r\n` : "";
    const answer = await exchange(
      a,
      request(
        `POST /tor/ HTTP/1.0\r\nHost: ${host}\r\nContent-Length: ${body.length}\r\n${gen}\r\n`,
        body,
      ),
      deadline,
    );
    status = answer.status;
    reason = answer.reason;
    const notNew = answer.headers.some((h) => /^X-Descriptor-Not-New:\s*yes/i.test(h));
    if (status !== 200) return { status, reason, accepted: false };
    if (o.confirm === false) {
      return notNew
        ? { status, reason: `${reason} (X-Descriptor-Not-New)`, accepted: false }
        : { status, reason, accepted: true };
    }
    // dir-spec §4.2: /tor/server/d/<D> is the descriptor whose digest is D.
    const back = await exchange(
      a,
      request(`GET /tor/server/d/${descriptorDigestHex(text)} HTTP/1.0\r\nHost: ${host}\r\n\r\n`),
      deadline,
    );
    const held = back.status === 200 && sameText(back.body, text);
    const what = notNew ? "X-Descriptor-Not-New, " : "";
    return {
      status,
      reason: held
        ? `${reason} (${what}confirmed: the authority serves it)`
        : `${reason} (${what}not taken: the authority does not serve it (GET answered ` +
          `${back.status} ${back.reason}); tor answers 200 also to a descriptor it cannot parse)`,
      accepted: held,
    };
  } catch (e) {
    const why = (e as Error).message === "no answer in time"
      ? `no answer within ${timeoutMs} ms`
      : (e as Error).message;
    return status === 0
      ? { status: 0, reason: why, accepted: false }
      : { status, reason: `${reason} (unconfirmed: ${why})`, accepted: false };
  }
}

/**
 * Uploads a descriptor (`text`, as made by makeServerDescriptor) to every authority's DirPort
 * at once (HTTP/1.0 `POST /tor/`), confirms each 200 by fetching it back, and resolves one
 * result per authority in their order. Never rejects for one authority's failure: no answer is
 * status 0 with the error as reason.
 */
export async function publishDescriptor(
  text: string,
  authorities: DirAuthority[],
  o: PublishOptions = {},
): Promise<PublishResult[]> {
  const now = o.now ?? (() => new Date());
  return await Promise.all(authorities.map(async (a) => {
    const r = await publishOne(text, a, o);
    return {
      authority: a.nickname ?? `${a.address}:${a.dirPort}`,
      address: `${a.address}:${a.dirPort}`,
      ...r,
      at: now().toISOString(),
    };
  }));
}

/** Timers a {@linkcode DescriptorPublisher} uses (injected in tests). */
export interface PublisherTimers {
  /** Like globalThis.setTimeout. */
  setTimeout(fn: () => void, ms: number): number;
  /** Like globalThis.clearTimeout. */
  clearTimeout(id: number): void;
}

/** Options of a {@linkcode DescriptorPublisher}. */
export interface DescriptorPublisherOptions {
  /** The authorities to publish to. */
  authorities: DirAuthority[];
  /** Makes a fresh signed descriptor for the time given (its `published` line). */
  build: (now: Date) => string;
  /** Republish an unchanged descriptor after this long (default 17 h: before tor's 18 h). */
  republishMs?: number;
  /** Rebuild and compare this often; a changed descriptor is published at once (default 60 s). */
  checkMs?: number;
  /** Retry the authorities that did not accept after this long (default 5 min). */
  retryMs?: number;
  /** The clock (default: the system clock). */
  now?: () => Date;
  /** Timers (default: the global ones). */
  timers?: PublisherTimers;
  /** The upload itself (default: {@linkcode publishDescriptor}; injected in tests). */
  publish?: (text: string, authorities: DirAuthority[]) => Promise<PublishResult[]>;
  /** Per-authority timeout of the default upload (ms). */
  timeoutMs?: number;
  /** Where each answer is logged (accepted at info, anything else at warn). */
  log?: Logger;
}

/**
 * Keeps a relay's descriptor published: uploads it at {@linkcode DescriptorPublisher.start},
 * again whenever its content changes (checked every `checkMs`, or at once through
 * {@linkcode DescriptorPublisher.check}; `published`, `uptime` and the signatures do not count
 * as a change), again to every authority before it is 18 h old, and retries the authorities
 * that did not accept it. The last answer of each authority is in
 * {@linkcode DescriptorPublisher.published} (for the relay's stats file).
 *
 * @example How a relay keeps its descriptor published
 * ```ts ignore
 * const publisher = new DescriptorPublisher({
 *   authorities: authoritiesFromTorrc(await Deno.readTextFile("torrc")),
 *   // Called at every check: read the current (possibly renewed) keys and settings.
 *   build: (now) =>
 *     makeServerDescriptor(state.keys, {
 *       nickname: "pctcp1",
 *       address: "127.0.0.1",
 *       orPort: 9001,
 *       bandwidth: { rate: 1 << 20, burst: 1 << 20, observed: state.observedBytesPerSecond },
 *       exitPolicy: ["reject *:*"],
 *       published: now,
 *       uptime: (now.getTime() - state.startedAt.getTime()) / 1000,
 *     }),
 *   log: makeLogger("relay"),
 * });
 * await publisher.start(); // first round answered
 * stats.published = publisher.published; // [{ authority, status, reason, accepted, … }]
 * await publisher.check(); // after renewTorRelayKeys changed a key: republish now
 * await publisher.stop();
 * ```
 */
export class DescriptorPublisher {
  #o: DescriptorPublisherOptions;
  #now: () => Date;
  #timers: PublisherTimers;
  #log: Logger;
  #timer: number | undefined;
  #running = false;
  #busy: Promise<void> = Promise.resolve();
  #key: string | undefined;
  #lastFullAt = 0;
  #lastTryAt = 0;
  #results = new Map<string, PublishResult>();
  #rounds = 0;

  /** A publisher; nothing is sent before start(). */
  constructor(o: DescriptorPublisherOptions) {
    if (o.authorities.length === 0) throw new RangeError("No directory authorities to publish to");
    this.#o = o;
    this.#now = o.now ?? (() => new Date());
    this.#timers = o.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as number,
      clearTimeout: (id) => clearTimeout(id),
    };
    this.#log = o.log ?? nullLogger;
  }

  /** Each authority's last answer, in the authorities' order (empty before the first round). */
  get published(): PublishResult[] {
    return this.#o.authorities
      .map((a) => this.#results.get(`${a.address}:${a.dirPort}`))
      .filter((r): r is PublishResult => r !== undefined);
  }

  /** Upload rounds so far. */
  get rounds(): number {
    return this.#rounds;
  }

  /** True once every authority's last answer accepted the current descriptor. */
  get allAccepted(): boolean {
    return this.#o.authorities.length > 0 &&
      this.published.length === this.#o.authorities.length &&
      this.published.every((r) => r.accepted);
  }

  /** Publishes now and keeps it published until stop(); resolves after the first round. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.check();
  }

  /**
   * Rebuilds the descriptor and publishes it if it changed, is due (≥ republishMs since the last
   * round to every authority) or some authority has not accepted it for retryMs; resolves once
   * that round is answered. The relay calls this when something in its descriptor changed.
   */
  check(): Promise<void> {
    this.#busy = this.#busy.then(() => this.#round()).catch((e) => {
      this.#log.error(`descriptor publishing failed: ${(e as Error).message}`);
    });
    return this.#busy;
  }

  /** Resolves once no round is under way (one started by a timer included). */
  settled(): Promise<void> {
    return this.#busy;
  }

  /** Stops republishing; resolves once a round under way is answered. */
  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#busy;
  }

  async #round(): Promise<void> {
    if (!this.#running) return;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      const now = this.#now();
      const t = now.getTime();
      const text = this.#o.build(now);
      const key = descriptorContentKey(text);
      const changed = key !== this.#key;
      const due = t - this.#lastFullAt >= (this.#o.republishMs ?? 17 * 3600_000);
      let targets: DirAuthority[] = [];
      let why = "";
      if (changed || due) {
        targets = this.#o.authorities;
        why = this.#key === undefined ? "first" : changed ? "changed" : "republish";
      } else if (t - this.#lastTryAt >= (this.#o.retryMs ?? 300_000)) {
        targets = this.#o.authorities.filter((a) =>
          !this.#results.get(`${a.address}:${a.dirPort}`)?.accepted
        );
        why = "retry";
      }
      if (targets.length > 0) {
        this.#log.info(`publishing descriptor (${why}) to ${targets.length} authorities`);
        const results = await (this.#o.publish ??
          ((x, a) =>
            publishDescriptor(x, a, {
              now: this.#now,
              reason: why,
              ...(this.#o.timeoutMs ? { timeoutMs: this.#o.timeoutMs } : {}),
            })))(text, targets);
        this.#rounds++;
        if (changed || due) {
          this.#key = key;
          this.#lastFullAt = t;
        }
        this.#lastTryAt = t;
        for (const r of results) {
          this.#results.set(r.address, r);
          const line = `descriptor to ${r.authority}: ${r.status} ${r.reason}`;
          if (r.accepted) this.#log.info(line);
          else this.#log.warn(line);
        }
      }
    } finally {
      if (this.#running) {
        this.#timer = this.#timers.setTimeout(() => {
          this.#timer = undefined;
          void this.check();
        }, this.#o.checkMs ?? 60_000);
      }
    }
  }
}

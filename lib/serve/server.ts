/**
 * The test web and file server of `pctcp serve`: `GET /bytes/SIZE` answers SIZE deterministic
 * bytes with Content-Length and an RFC 9530 `Repr-Digest: sha-256=:…:` header (also
 * `X-Content-SHA256` in hex); other paths are files of a folder (web pages).
 * @module
 */

import { Buffer } from "node:buffer";
import { bodySha256, bodyStream } from "./body.ts";
import { parseSize } from "./sizes.ts";

/** Options of the server. */
export interface ServeOptions {
  /** Address (default 127.0.0.1). */
  address?: string;
  /** Port (0: any). */
  port?: number;
  /** Folder of static files (web pages); none by default. */
  root?: string;
  /** Web pages by path (`index.html`), served when there is no `root` (the built-in pages). */
  pages?: Readonly<Record<string, string>>;
  /** Largest /bytes/ size served (default 1 GiB). */
  maxSize?: number;
}

/** A running server. */
export interface TestServer {
  /** The bound port. */
  port: number;
  /** The base URL. */
  url: string;
  /** Stops the server. */
  stop(): Promise<void>;
}

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css",
  js: "text/javascript",
  png: "image/png",
  jpg: "image/jpeg",
  svg: "image/svg+xml",
  json: "application/json",
  txt: "text/plain",
};

/** The response to one request (exported for tests and embedding). */
export async function handle(req: Request, options: ServeOptions = {}): Promise<Response> {
  const url = new URL(req.url);
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405 });
  }
  const m = /^\/bytes\/([^/]+)$/.exec(url.pathname);
  if (m) {
    let size: number;
    try {
      size = parseSize(decodeURIComponent(m[1]!));
    } catch (e) {
      return new Response(`${(e as Error).message}\n`, { status: 400 });
    }
    if (size > (options.maxSize ?? 1024 ** 3)) {
      return new Response("size too large\n", { status: 413 });
    }
    const hex = bodySha256(size);
    const headers = {
      "content-type": "application/octet-stream",
      "content-length": String(size),
      "repr-digest": `sha-256=:${Buffer.from(hex, "hex").toString("base64")}:`,
      "x-content-sha256": hex,
      "cache-control": "no-store",
    };
    return new Response(req.method === "HEAD" ? null : bodyStream(size), { headers });
  }
  if (options.root) {
    const rel = decodeURIComponent(url.pathname).replace(/\/+$/, "/index.html");
    if (rel.split("/").some((p) => p === "..")) return new Response("bad path\n", { status: 400 });
    try {
      const data = await Deno.readFile(`${options.root}${rel}`);
      const ext = rel.split(".").pop() ?? "";
      return new Response(req.method === "HEAD" ? null : data, {
        headers: { "content-type": TYPES[ext] ?? "application/octet-stream" },
      });
    } catch {
      // fall through to 404
    }
  }
  if (!options.root && options.pages) {
    const rel = decodeURIComponent(url.pathname).replace(/\/+$/, "/index.html").slice(1);
    if (Object.hasOwn(options.pages, rel)) {
      return new Response(req.method === "HEAD" ? null : options.pages[rel]!, {
        headers: { "content-type": TYPES[rel.split(".").pop() ?? ""] ?? "text/plain" },
      });
    }
  }
  return new Response("not found\n", { status: 404 });
}

/** Starts the server; resolves once it listens. */
export function serve(options: ServeOptions = {}): Promise<TestServer> {
  const address = options.address ?? "127.0.0.1";
  return new Promise((resolve) => {
    const server = Deno.serve(
      {
        hostname: address,
        port: options.port ?? 0,
        onListen: ({ port }) => {
          resolve({ port, url: `http://${address}:${port}`, stop: () => server.shutdown() });
        },
      },
      (req) => handle(req, options),
    );
  });
}

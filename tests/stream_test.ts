import { assert, assertEquals } from "./_assert.ts";
import { type EdgeSocket, EdgeStream, type StreamCircuit } from "../lib/edge/stream.ts";
import { PackageWindow } from "../lib/circuit/flow.ts";
import { RELAY_DATA_LEN, RelayCommand } from "../lib/cell/relay_cell.ts";

/** A socket that yields `input` in one read, then EOF; records writes. */
function socket(input: Uint8Array) {
  let given = false;
  const writes: Uint8Array[] = [];
  const s: EdgeSocket = {
    read(p) {
      if (given) return Promise.resolve(null);
      given = true;
      p.set(input.subarray(0, p.length));
      return Promise.resolve(Math.min(p.length, input.length));
    },
    write(p) {
      writes.push(p.slice());
      return Promise.resolve(p.length);
    },
    close() {},
  };
  return { s, writes };
}

function circuit(drained?: () => Promise<void> | undefined) {
  const sent: { command: number; data: Uint8Array }[] = [];
  const c: StreamCircuit = {
    sendRelay: (command, _id, data) => void sent.push({ command, data: data.slice() }),
    packageWindow: new PackageWindow(1000, 100),
    removeStream() {},
    ...(drained ? { drained } : {}),
  };
  return { c, sent };
}

Deno.test("EdgeStream waits for the circuit's drained event before it reads and packages", async () => {
  const input = new Uint8Array(RELAY_DATA_LEN * 3 + 7).map((_, i) => i & 0xff);
  const { s } = socket(input);
  let release!: () => void;
  let calls = 0;
  const gate = new Promise<void>((r) => release = r);
  const { c, sent } = circuit(() => calls++ === 0 ? gate : undefined);
  const stream = new EdgeStream(1, s, c);
  const done = stream.pump();
  await new Promise((r) => setTimeout(r, 20));
  assertEquals(sent.length, 0, "cells were packaged while the circuit was not drained");
  release();
  await done;
  const data = sent.filter((x) => x.command === RelayCommand.DATA);
  assertEquals(data.map((x) => x.data.length), [498, 498, 498, 7]);
  assertEquals(data.map((x) => x.data).reduce((a, b) => new Uint8Array([...a, ...b])), input);
  assertEquals(sent.at(-1)?.command, RelayCommand.END);
});

Deno.test("EdgeStream writes the DATA cells delivered in one turn with one socket write", async () => {
  const { s, writes } = socket(new Uint8Array(0));
  const { c } = circuit();
  const stream = new EdgeStream(1, s, c);
  for (let i = 0; i < 5; i++) assert(stream.deliver(new Uint8Array(RELAY_DATA_LEN).fill(i)));
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(writes.map((w) => w.length), [5 * RELAY_DATA_LEN]);
  assertEquals(writes[0]![4 * RELAY_DATA_LEN], 4);
  stream.abort();
});

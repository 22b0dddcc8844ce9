// Edge stream rules against hostile peers (issue 24 items 1 and 11): the stream deliver
// window is enforced with the edge buffer bounded, at the exit and at the client alike (both
// use EdgeStream).
import { assert, assertEquals } from "./_assert.ts";
import { EdgeStream } from "../lib/edge/stream.ts";
import { PackageWindow } from "../lib/circuit/flow.ts";
import { RelayCommand } from "../lib/cell/mod.ts";

function fakeCircuit(sent: number[]) {
  return {
    sendRelay: (command: number) => void sent.push(command),
    packageWindow: new PackageWindow(1000, 100),
    removeStream: () => {},
  };
}

Deno.test("EdgeStream refuses the 501st cell while its socket does not drain, and buffers at most 500", async () => {
  const sent: number[] = [];
  let writes = 0;
  const stuck = {
    read: () => new Promise<number | null>(() => {}),
    write: () => (writes++, new Promise<number>(() => {})), // a socket that never drains
    close() {},
  };
  const s = new EdgeStream(1, stuck, fakeCircuit(sent));
  const cell = new Uint8Array(498);
  for (let i = 0; i < 500; i++) assert(s.deliver(cell), `cell ${i} refused`);
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(s.deliver(cell), false, "the 501st cell past the window was accepted");
  assert(s.bufferedBytes <= 500 * 498, `${s.bufferedBytes} bytes buffered`);
  assertEquals(sent.filter((c) => c === RelayCommand.SENDME).length, 0, "SENDME before a write");
  assert(writes >= 1);
});

Deno.test("EdgeStream sends one stream SENDME per 50 cells written and keeps taking cells as the socket drains", async () => {
  const sent: number[] = [];
  const sock = {
    read: () => new Promise<number | null>(() => {}),
    write: (p: Uint8Array) => Promise.resolve(p.length),
    close() {},
  };
  const s = new EdgeStream(1, sock, fakeCircuit(sent));
  const cell = new Uint8Array(498);
  // 2000 cells, 250 at a time with the writes let through: an honest sender that waits for
  // SENDMEs never overruns.
  for (let k = 0; k < 8; k++) {
    for (let i = 0; i < 250; i++) assert(s.deliver(cell), `cell ${k * 250 + i} refused`);
    await new Promise((r) => setTimeout(r, 0));
  }
  await new Promise((r) => setTimeout(r, 10));
  assertEquals(sent.filter((c) => c === RelayCommand.SENDME).length, 40);
  assertEquals(s.deliverWindow.value, 500);
});

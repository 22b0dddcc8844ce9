// Cell codec and relay crypto throughput: `deno task bench`. Reports time per 514-byte cell;
// MB/s = 514 B / time.
import { CellReader, encodeCell, encodeRelayCell, RelayCommand } from "../lib/cell/mod.ts";
import { ClientCrypto, RelayCrypto } from "../lib/crypto/mod.ts";
import { setCtrImplementation, setSha1Implementation } from "../lib/crypto/relay_crypto.ts";
import { nativeAes } from "../lib/transport/openssl.ts";

const payload = new Uint8Array(509).fill(7);
const cells = new Uint8Array(514 * 64);
for (let i = 0; i < 64; i++) {
  cells.set(encodeCell({ circId: 0x80000001, command: 3, payload }), i * 514);
}

Deno.bench("cell encode (1 fixed cell)", () => {
  encodeCell({ circId: 0x80000001, command: 3, payload });
});

Deno.bench("cell decode (64 cells per push)", { n: 64 } as Deno.BenchDefinition, () => {
  const r = new CellReader();
  r.push(cells);
  while (r.next());
});

const seed = new Uint8Array(72).map((_, i) => i);
const relay = new RelayCrypto(seed);
const client = new ClientCrypto();
client.addHop(seed);
const data = new Uint8Array(498);

Deno.bench("relay crypto: client seal+encrypt 1 hop (1 cell)", () => {
  const p = encodeRelayCell({ command: RelayCommand.DATA, streamId: 1, data }, () => {});
  client.encrypt(p, 0);
});

Deno.bench("relay crypto: relay encryptInbound (1 cell, a middle hop)", () => {
  relay.encryptInbound(payload);
});

// The same layers with OpenSSL through FFI (what relays and clients use when it loads).
if (nativeAes) {
  const aes = nativeAes;
  setCtrImplementation((key) => new aes.ctr(key));
  setSha1Implementation((seed, state) => new aes.sha1(seed, state), aes.sha1.stateBytes);
  const nRelay = new RelayCrypto(seed);
  const nClient = new ClientCrypto();
  nClient.addHop(seed);
  setCtrImplementation();
  setSha1Implementation();
  Deno.bench("relay crypto (OpenSSL FFI): client seal+encrypt 1 hop (1 cell)", () => {
    const p = encodeRelayCell({ command: RelayCommand.DATA, streamId: 1, data }, () => {});
    nClient.encrypt(p, 0);
  });
  Deno.bench("relay crypto (OpenSSL FFI): relay encryptInbound (1 cell, a middle hop)", () => {
    nRelay.encryptInbound(payload);
  });
}

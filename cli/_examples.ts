/**
 * An example (or two) for every command's help, kept in one place so they are easy to check
 * against each other and docs/cli.md. main.ts adds them to commands whose own file gives none;
 * tests/cli_test.ts checks that every command's help has one.
 * @module
 */

/** Examples by command path ("network up"), as printed after the options. */
export const EXAMPLES: Readonly<Record<string, string>> = {
  "": `
Examples:
  pctcp experiment interference --scenario quick --out ./pctcp-demo   # the main job (loopback)
  pctcp network up                  # prints its SOCKS proxy and server, e.g. 127.0.0.1:38751
  pctcp measure --socks 127.0.0.1:38751 --url http://127.0.0.1:40697/bytes/1MiB --count 5 \\
    --out m.jsonl
  pctcp stats m.jsonl
  pctcp network down

Exit codes (every command): 0 done; 1 runtime failure; 2 usage error; 3 partial (some
fetches failed, some lines skipped); 130 stopped by Ctrl-C. Durations take units (90s, 500ms,
5m). Results go to stdout, progress and errors to stderr. More: docs/cli.md.`,
  keygen: `
Example:
  pctcp keygen --out relay1.keys.json`,
  relay: `
Example (network up does all this for you):
  pctcp relay --keys relay1.keys.json --nickname relay1 --directory net/directory.json \\
    --or-port 9001 --transport pctcp`,
  client: `
Example:
  pctcp client --directory net/directory.json --socks-port 9050 --path relay1,relay2,relay3
  # then: curl --socks5-hostname 127.0.0.1:9050 http://127.0.0.1:8080/bytes/1MiB -o /dev/null`,
  network: `
Examples:
  pctcp network up --relays 3 --transport pctcp --dir ./pctcp-net
  pctcp network status --dir ./pctcp-net
  pctcp network down --dir ./pctcp-net`,
  "network up": `
Examples:
  pctcp network up                                  # 3 relays, client and server on loopback
  sudo pctcp network up --netns --latency 30ms --loss 0.5% --topology four-cities

Prints the SOCKS port and the server URL (--format json: the state as JSON), then returns;
the network runs until 'pctcp network down'.`,
  "network status": `
Example:
  pctcp network status --dir ./pctcp-net --format json`,
  "network down": `
Example:
  pctcp network down --dir ./pctcp-net     # returns once every process of the network is gone`,
  "network emulate": `
Example (started by 'network up --netns'; not usually run by hand):
  pctcp network emulate --config pctcp-net/emulation/config.json`,
  stats: `
Examples:
  pctcp stats m.jsonl
  pctcp stats 'data/*.jsonl' --by arm --format markdown
  pctcp stats pctcp-demo/records-pctcp.jsonl --outcome ok --time-origin tgen`,
  compare: `
Examples:
  pctcp compare pctcp-demo/records-tor.jsonl pctcp-demo/records-pctcp.jsonl
  pctcp compare --by arm --baseline baseline 'ab/*.jsonl'`,
  report: `
Examples:
  pctcp report pctcp-demo                       # writes pctcp-demo/report.html
  pctcp report 'data/*.jsonl' --out weekly --title "Week 49"`,
  experiment: `
Examples:
  pctcp experiment interference --scenario quick --out ./pctcp-demo
  pctcp experiment sweep --param latency --values 10,40,80 --out ./sweep`,
  "experiment interference": `
Examples:
  pctcp experiment interference --scenario quick --out ./pctcp-demo    # ~2 min, loopback
  sudo pctcp experiment interference --scenario quick-netns --runs 3 --arms tor,tor-kist,pctcp`,
  "experiment sweep": `
Example:
  sudo pctcp experiment sweep --netns --param loss --values 0,0.5,1,2 --duration 60s --out ./sweep`,
  schedule: `
Examples:
  pctcp schedule add --preset onionperf --socks 127.0.0.1:9050 --server http://HOST:8080
  pctcp schedule list
  pctcp schedule remove onionperf`,
  "schedule add": `
Examples:
  pctcp schedule add --preset onionperf --socks 127.0.0.1:9050 --server http://HOST:8080
  pctcp schedule add --every 5m -- measure --socks 127.0.0.1:9050 \\
    --url http://HOST:8080/bytes/1MiB --out 'data/%Y-%m-%d.jsonl'      # daily files, UTC day

The crontab line runs this program as it was started (deno run -A …/cli/main.ts, deno run -A
…/pctcp.js, or the compiled binary); --print shows it without changing the crontab.`,
  "schedule list": `
Example:
  pctcp schedule list --format json`,
  "schedule remove": `
Examples:
  pctcp schedule remove onionperf
  pctcp schedule remove --all`,
};

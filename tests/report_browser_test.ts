// The experiment report opened in headless Chromium (Debian's chromium): every plot is drawn
// (an SVG with a non-empty box and marks) and the page logs no console error.
import { assert, assertEquals, skipUnless } from "./_assert.ts";
import { writeExperimentReport } from "../lib/experiment/report.ts";

const FIXTURE = new URL("./fixtures/experiment-small", import.meta.url).pathname;

function chromiumPath(): string | undefined {
  for (const p of ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  return undefined;
}

const chromium = chromiumPath();

// Appended to a copy of the page: checks each figure's SVG once laid out, records errors,
// and writes the verdict into the DOM, which --dump-dom prints.
const PROBE = `<script>
const errors = [];
window.addEventListener("error", (e) => errors.push(String(e.message)));
const _error = console.error;
console.error = (...a) => { errors.push(a.join(" ")); _error(...a); };
window.addEventListener("load", () => {
  const plots = [...document.querySelectorAll("figure.plot")].map((f) => {
    const svg = f.querySelector("svg");
    const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
    const marks = svg ? svg.querySelectorAll("path, rect, circle, line, symbol, use").length : 0;
    return { id: f.id, width: Math.round(box.width), height: Math.round(box.height), marks };
  });
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify({ plots, errors });
  document.body.appendChild(out);
});
</script>`;

Deno.test({
  name: "report.html renders every plot in headless Chromium with no console error",
  ignore: skipUnless(chromium, "no chromium (apt-get install chromium; scripts/setup.sh)"),
  async fn() {
    const out = await Deno.makeTempDir();
    try {
      const r = await writeExperimentReport(FIXTURE, out);
      const html = await Deno.readTextFile(r.html);
      const probe = `${out}/probe.html`;
      await Deno.writeTextFile(probe, html.replace("</body>", `${PROBE}</body>`));
      const cmd = new Deno.Command(chromium!, {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-dev-shm-usage",
          "--no-first-run",
          `--user-data-dir=${out}/profile`,
          "--enable-logging=stderr",
          "--v=0",
          "--virtual-time-budget=5000",
          "--dump-dom",
          `file://${probe}`,
        ],
        stdout: "piped",
        stderr: "piped",
      });
      const child = cmd.spawn();
      const timer = setTimeout(() => child.kill("SIGKILL"), 90_000);
      const res = await child.output();
      clearTimeout(timer);
      const stdout = new TextDecoder().decode(res.stdout);
      const stderr = new TextDecoder().decode(res.stderr);
      assertEquals(res.code, 0, stderr.slice(-2000));
      const m = /<pre id="probe-result">([\s\S]*?)<\/pre>/.exec(stdout);
      assert(m, `no probe result in the DOM:\n${stdout.slice(-1000)}\n${stderr.slice(-1000)}`);
      const text = m[1]!.replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">")
        .replace(/&amp;/g, "&");
      const probeResult = JSON.parse(text) as {
        plots: { id: string; width: number; height: number; marks: number }[];
        errors: string[];
      };
      assertEquals(probeResult.errors, []);
      // Console errors Chromium logs itself (a page's own console.error is caught above).
      const consoleErrors = stderr.split("\n").filter((l) =>
        /CONSOLE\(\d+\)/.test(l) && /error/i.test(l)
      );
      assertEquals(consoleErrors, []);
      assertEquals(probeResult.plots.length, r.plots.length, "every plot is on the page");
      assert(probeResult.plots.length >= 9, `${probeResult.plots.length} plots`);
      for (const p of probeResult.plots) {
        assert(p.width > 100 && p.height > 100 && p.marks > 5, `${p.id}: ${JSON.stringify(p)}`);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});

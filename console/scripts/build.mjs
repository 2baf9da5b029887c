// Builds the console into crates/praxis-server/ui/, which the server embeds. The output is
// committed; CI rebuilds it and fails when it differs.
import { build } from "esbuild";
import { copyFile, mkdir } from "node:fs/promises";

const out = new URL("../../crates/praxis-server/ui/", import.meta.url);
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL("../src/main.ts", import.meta.url).pathname],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  outfile: new URL("app.js", out).pathname,
  logLevel: "warning",
});
await copyFile(new URL("../static/index.html", import.meta.url), new URL("index.html", out));
await copyFile(new URL("../static/app.css", import.meta.url), new URL("app.css", out));
console.log("built crates/praxis-server/ui/{index.html,app.js,app.css}");

// Generates src/generated/*.ts from the published JSON Schemas in ../schema (records and the
// live feed). CI runs this and fails when the committed files differ.
import { compile } from "json-schema-to-typescript";
import { readFile, writeFile } from "node:fs/promises";

const targets = [
  ["../schema/records.schema.json", "src/generated/records.ts", "LedgerRecord"],
  ["../schema/feed.schema.json", "src/generated/feed.ts", "FeedEventData"],
];
for (const [input, output, name] of targets) {
  const schema = JSON.parse(await readFile(new URL(input, import.meta.url.replace("/scripts/", "/")), "utf8"));
  schema.title = name;
  const ts = await compile(schema, name, {
    bannerComment: `// Generated from ${input.slice(3)} by scripts/types.mjs (json-schema-to-typescript). Do not edit.`,
    additionalProperties: false,
    strictIndexSignatures: true,
    format: true,
    unreachableDefinitions: true,
  });
  await writeFile(new URL(output, import.meta.url.replace("/scripts/", "/")), ts);
  console.log(`wrote ${output}`);
}

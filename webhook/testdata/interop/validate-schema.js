// Validates JSON events (one per line on stdin) against the JSON Schema at
// argv[2] with ajv (draft 2020-12). Prints "ok N", or each error and exits 1.
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020");
const addFormats = require("ajv-formats");

const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(fs.readFileSync(process.argv[2], "utf8")));
const lines = fs.readFileSync(0, "utf8").split("\n").filter((l) => l.trim() !== "");
let bad = 0;
for (const line of lines) {
  const ev = JSON.parse(line);
  if (!validate(ev)) {
    bad++;
    console.log(ev.type + " " + JSON.stringify(validate.errors));
  }
}
if (bad > 0) process.exit(1);
console.log("ok " + lines.length);

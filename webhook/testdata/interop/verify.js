// Reads {"secret", "body", "headers"} as JSON on stdin and verifies the
// delivery with the standardwebhooks npm package. Prints "ok", or the
// error and exits 1.
const { Webhook } = require("standardwebhooks");

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const { secret, body, headers } = JSON.parse(input);
  try {
    new Webhook(secret).verify(body, headers);
    console.log("ok");
  } catch (e) {
    console.log(String(e && e.message ? e.message : e));
    process.exit(1);
  }
});

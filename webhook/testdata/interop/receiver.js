// An embassy's webhook receiver, independent of checkinbot's own code: it
// verifies every delivery with the standardwebhooks npm package and appends
// each verified body, once per webhook-id, as one JSON line.
//
//   node receiver.js OUT_FILE
//
// The secret(s) come from the environment variable RECEIVER_SECRET
// (whsec_..., several space-separated during rotation). It listens on a free
// loopback port and prints "receiver: listening on http://127.0.0.1:PORT/".
// A line is appended (synchronously) before the 2xx answer, so anything the
// sender saw accepted is in the file. A delivery that does not verify, or
// whose body id differs from its webhook-id, gets 4xx and is not written.
// Ids already in OUT_FILE are remembered, so a restarted receiver still
// de-duplicates redeliveries.
"use strict";
const fs = require("fs");
const http = require("http");
const { Webhook } = require("standardwebhooks");

const out = process.argv[2];
if (!out) {
  console.error("usage: node receiver.js OUT_FILE");
  process.exit(2);
}
const secrets = (process.env.RECEIVER_SECRET || "").split(/\s+/).filter(Boolean);
if (secrets.length === 0) {
  console.error("receiver: RECEIVER_SECRET is empty");
  process.exit(2);
}
const verifiers = secrets.map((s) => new Webhook(s));

const seen = new Set();
if (fs.existsSync(out)) {
  for (const line of fs.readFileSync(out, "utf8").split("\n")) {
    if (line.trim() !== "") seen.add(JSON.parse(line).id);
  }
}

function verify(body, headers) {
  let last;
  for (const v of verifiers) {
    try {
      return v.verify(body, headers);
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const headers = {
      "webhook-id": req.headers["webhook-id"],
      "webhook-timestamp": req.headers["webhook-timestamp"],
      "webhook-signature": req.headers["webhook-signature"],
    };
    let event;
    try {
      event = verify(body, headers);
    } catch (e) {
      console.error("receiver: rejected:", String(e && e.message ? e.message : e));
      res.writeHead(401).end();
      return;
    }
    if (!event || event.id !== headers["webhook-id"]) {
      console.error("receiver: rejected: body id differs from webhook-id");
      res.writeHead(400).end();
      return;
    }
    if (!seen.has(event.id)) {
      fs.appendFileSync(out, JSON.stringify(event) + "\n");
      seen.add(event.id);
    }
    res.writeHead(204).end();
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(`receiver: listening on http://127.0.0.1:${server.address().port}/`);
});

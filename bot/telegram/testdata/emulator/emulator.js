// Starts telegram-test-api on 127.0.0.1:<argv[2]> and prints "ready <apiURL>".
// It stops when its stdin closes (the Go test owns its lifetime).
const TelegramServer = require("telegram-test-api");

(async () => {
  const server = new TelegramServer({ port: Number(process.argv[2]), host: "127.0.0.1", storeTimeout: 600 });
  await server.start();
  console.log("ready " + server.config.apiURL);
  process.stdin.resume();
  process.stdin.on("end", async () => {
    await server.stop();
    process.exit(0);
  });
})();

// The peer's API gateway: moleculer-web on its own broker, POST /api/bench/echo -> bench.echo over NATS.
// Usage: NATS_URL=nats://127.0.0.1:PORT PORT=8081 node gateway.js
"use strict";
const { ServiceBroker } = require("moleculer");
const ApiService = require("moleculer-web");

const broker = new ServiceBroker({
  nodeID: `bench-gateway-${process.pid}`,
  transporter: process.env.NATS_URL,
  logger: false,
  metrics: false,
  tracing: false,
});

broker.createService({
  name: "api",
  mixins: [ApiService],
  settings: {
    ip: "127.0.0.1",
    port: Number(process.env.PORT || 8081),
    logRequest: null,
    logResponse: null,
    log4XXResponses: false,
    routes: [
      {
        path: "/api",
        mappingPolicy: "restrict",
        aliases: { "POST bench/echo": "bench.echo" },
        bodyParsers: { json: true },
      },
    ],
  },
});

broker.start().then(() => console.log("ready"));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => broker.stop().then(() => process.exit(0)));

// The peer's service: a Moleculer broker on the NATS transporter with one action, bench.echo.
// Usage: NATS_URL=nats://127.0.0.1:PORT node service.js
"use strict";
const { ServiceBroker } = require("moleculer");

const broker = new ServiceBroker({
  nodeID: `bench-service-${process.pid}`,
  transporter: process.env.NATS_URL,
  logger: false,
  metrics: false,
  tracing: false,
});

broker.createService({
  name: "bench",
  actions: {
    // Same answer as the Space Cloud gateway: {"result": <params>}
    echo(ctx) {
      return { result: ctx.params.params };
    },
  },
});

broker.start().then(() => console.log("ready"));
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => broker.stop().then(() => process.exit(0)));

"""Live queries: Space Cloud's realtime-subscribe / realtime-feed over the WebSocket, fed by NATS."""

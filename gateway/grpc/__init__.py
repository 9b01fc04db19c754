"""Space Cloud's gRPC API (`proto.SpaceCloud`, port 4124) over the same core, rules and features as HTTP and WebSocket.

`space_cloud.proto` is the contract; `generate` makes the Python stubs from it; `stubs` loads them;
`convert` turns messages into the bodies the features take and results into `Response`s; `peers` are
the RealTime and Service streams as live queries and the service bridge see a client; `servicer` is
every rpc; `server` runs it (see docs/grpc.md).
"""

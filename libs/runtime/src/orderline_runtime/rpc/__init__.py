"""gRPC edge: server with health and reflection, auth, error mapping, client channels."""

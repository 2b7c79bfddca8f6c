"""gRPC servicers: validate, call the read side, convert. Thin by design."""

"""The archive's gRPC servicers (thin: validate, call the app, translate to messages)."""

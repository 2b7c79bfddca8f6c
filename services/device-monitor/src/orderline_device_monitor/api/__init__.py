"""gRPC servicers (thin): validate, convert, call the application."""

"""The provisioning domain: pure Python, no gRPC, no SQL, no clock of its own."""

"""Events: envelope, transactional outbox and relay, JetStream consumers with an inbox."""

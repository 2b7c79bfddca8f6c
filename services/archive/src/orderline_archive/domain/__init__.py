"""The archive's pure domain: documents, the hash chain and its verification (no I/O)."""

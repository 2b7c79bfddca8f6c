"""Development-only tools: the servers, fixtures and waits that tests, `orderline up` and the
benchmark use. Installed by the workspace's dev group, never by a service image."""

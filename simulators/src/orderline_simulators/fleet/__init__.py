"""Device fleet simulator: many CPE devices behind one DeviceAgentService endpoint."""

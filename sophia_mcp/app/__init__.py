"""Building the services a workflow runs on from settings: the backends of each port, logs, telemetry."""

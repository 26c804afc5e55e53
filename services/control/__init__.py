"""The control plane: run records in Redis, the HTTP API, the dashboard and the launchers."""

"""The authenticated proxy behind `serve` and `run --proxy`: server, gate, guard, events, metrics, serve's sidecar parts."""

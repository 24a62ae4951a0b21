"""Rollout: the client of the vLLM replicas, weight pushes to them, and the log-prob cross-check."""

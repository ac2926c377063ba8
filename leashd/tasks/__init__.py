"""The task orchestrator's room."""

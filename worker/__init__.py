"""The sluicegate worker: ``python -m worker``."""

"""The REST API (FastAPI) in front of a ``ControlPlaneService``; build it with ``create_api``."""

"""Standalone apps to point ``simkit.run(..., target=...)`` at (``uvicorn examples.X:app``)."""

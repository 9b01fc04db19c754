"""The realtime todo app: config, a static frontend, and a Python service. Run: `python -m examples.todo`."""

"""Leaf modules every layer shares (adapters, mesh, the db worker, gateway, sdk); they import nothing of the project."""

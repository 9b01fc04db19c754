"""Database adapters: one module per database behind the small `Adapter` protocol."""

"""SQL backends: one compiler (`compiler`, `pipeline`) over three dialects, one generic adapter."""

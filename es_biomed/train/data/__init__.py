"""Training data for every model: sources, the pair file, hard-negative mining, provenance (framework-neutral)."""

"""Data in: loaders for every source, one normalized schema, validation with quarantine, the split."""

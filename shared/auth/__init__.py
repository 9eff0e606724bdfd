"""API keys: their format, their hash, and the secret of that hash."""

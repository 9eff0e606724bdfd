"""Webhooks: the address guard, the callback URL check and Standard Webhooks signing."""

"""Accounts: API keys, rate limits, budgets, metering, settlement, usage and idempotency."""

"""The ledger (outbox): the single source of truth for every notification."""

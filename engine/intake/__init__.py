"""Intake: the engine's side of a trigger (``emit``): every event through every rule of its
source, written to the ledger in one transaction with the trigger's progress."""

"""Triggers: sources of events (entry-point group ``nextstep.triggers``)."""

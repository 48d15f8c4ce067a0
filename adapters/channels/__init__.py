"""Channels: ways to reach someone (entry-point group ``nextstep.channels``)."""

"""Sending: the dispatcher leases due notifications and hands them to one lane per channel
(rate limit, in-flight cap, circuit); ``attempt`` decides what each outcome means (sent, retry,
in doubt, failed) and ``writer`` records the results in batches."""

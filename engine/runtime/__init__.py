"""Runtime: the daemon that hosts every stage (``daemon``), hot reload of rules (``reload``),
supervised triggers, the HTTP server (events, webhooks, health, metrics) and logging."""

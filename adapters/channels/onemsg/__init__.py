"""The 1MSG WhatsApp Business API channel, its answer classification, templates, and the local
sandbox that stands in for the API in demos, tests and benchmarks."""

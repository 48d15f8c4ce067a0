"""The csv trigger: files dropped in a folder (``detect``: encoding and delimiter; ``reader``:
rows; ``trigger``: watching, progress, done/ and failed/)."""

"""Sub-commands of `audioenc`; one module per command (see `audioenc.cli`)."""

"""The row-level stages of a night, chunk by chunk in worker processes: normalise, scope, rules."""

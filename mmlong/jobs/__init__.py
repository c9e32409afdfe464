"""Jobs: the one job runner of batch and eval, sharding over ranks, the crash-safe result log and rank detection."""

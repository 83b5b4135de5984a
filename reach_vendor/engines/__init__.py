"""Speech engines behind one protocol (`base.Processor`): local ones (`local/`), remote job
APIs (`remote/`), the registry that builds them by name and the routing between them."""

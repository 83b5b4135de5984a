"""What every layer shares and none owns: secret redaction, safe file names, encryption of
stored keys, configuration errors and the metric instruments. Imports only `domain`."""

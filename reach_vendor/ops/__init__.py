"""What vendor ops use: the command line, the status API and ops page, metrics and logs."""

"""Load, fault and abuse benchmarks that start the service themselves and talk to 127.0.0.1 only."""

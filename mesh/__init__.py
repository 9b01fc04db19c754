"""What every process shares to speak over NATS: subjects, codec, errors, requests, services."""

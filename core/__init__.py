"""What the services share: settings and broker profile, the Kafka client factory, the config snapshot, the error model."""

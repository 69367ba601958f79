"""Code shared by the four services: settings, embedded infrastructure, the event store and the consumer loop."""

"""Models: the backbone registry and the popularity model."""

"""The gRPC service: a thin adapter from ``recommender.v1.Recommender`` to the engine."""

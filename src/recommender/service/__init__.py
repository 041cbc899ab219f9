"""The gRPC and HTTP/JSON service: thin adapters from ``recommender.v1.Recommender`` and the
HTTP routes to the engine (``server``, ``httpapi``), with the conversions (``convert``),
interceptors, metrics, per-client write limits, what HTTP believes of a request and how long
a connection may take (``httpguards``), and several processes on one port.

An adapter: may import anything in the package; nothing below imports it.
"""

"""The sample collector: where shadows on a real cloud send their samples.

* :mod:`~shadow_service.collector.tokens`: per-shadow write-only tokens a
  cloud driver issues when it boots a shadow, and their checks;
* :mod:`~shadow_service.collector.ingest`: validating sample lines (from a
  request body or a console log) and writing them to the history store
  tagged from the token;
* :mod:`~shadow_service.collector.server`: the HTTP endpoint
  ``POST /v1/samples`` (``[collector]`` options).

It imports the history schema and nothing above it; the ``openstack``
cloud driver starts it (see ``doc/source/openstack.rst``).
"""

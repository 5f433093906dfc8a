"""The JSON-lines form of a sample: what the JSON-lines sink writes, the
collector sink sends and the shadow service's collector reads (one JSON
object per line, see ``doc/source/contributor/contracts.rst``)."""

import json


def to_json(point):
    """The JSON-lines form of a point (one line, no newline)."""
    return json.dumps(point, sort_keys=True)

"""EventBridge's pattern matching for the tests: moto's matcher, on the event as EventBridge
flattens it.

EventBridge matches a pattern's fields inside arrays of objects (a rule on
`requestParameters.ipPermissions.items.ipRanges.items.cidrIp` sees every range of every
permission), and `exists` looks at values only ("exists matching only works on leaf nodes"), so
an empty array or object is no value. moto 5 does neither: it stops at arrays and takes an
empty object as a value. `flattened` hands moto the event with each array of objects merged
into one object whose fields hold every object's values, and empty arrays and objects left
out; moto's own matcher does the rest.
"""
import json

from moto.events.models import EventPattern


def flattened(node):
    if isinstance(node, dict):
        fields = {key: flattened(value) for key, value in node.items()}
        return {key: value for key, value in fields.items() if value not in ([], {})}
    if isinstance(node, list):
        objects = [flattened(item) for item in node if isinstance(item, dict)]
        values = []
        for item in node:
            if isinstance(item, list):
                inner = flattened(item)
                values.extend(inner if isinstance(inner, list) else [])
            elif not isinstance(item, dict):
                values.append(item)
        if not objects:
            return values
        merged = {}
        for obj in objects:
            for key, value in obj.items():
                merged.setdefault(key, []).append(value)
        return {key: _combined(values) for key, values in merged.items()}
    return node


def _combined(values):
    if all(isinstance(value, dict) for value in values):
        return flattened(values)
    out = []
    for value in values:
        if isinstance(value, list):
            out.extend(value)
        elif not isinstance(value, dict):
            out.append(value)
    return out


def matcher(pattern):
    """A matcher for `pattern` (a dict) whose `matches(event)` is EventBridge's verdict."""
    moto = EventPattern.load(json.dumps(pattern))

    class Matcher:
        def matches(self, event):
            return moto.matches_event(flattened(event))

        matches_event = matches

    return Matcher()


def matches(pattern, event):
    return matcher(pattern).matches(event)


if __name__ == "__main__":
    # For the Rust tests: {"patterns": {name: pattern}, "events": [event]} on standard input,
    # the names of the patterns each event matches on standard output.
    import sys

    request = json.load(sys.stdin)
    matchers = {name: matcher(pattern) for name, pattern in request["patterns"].items()}
    json.dump([sorted(name for name, m in matchers.items() if m.matches(event)) for event in request["events"]],
              sys.stdout)

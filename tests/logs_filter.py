"""CloudWatch Logs JSON filter patterns, the subset the template writes, evaluated on a record
the way CloudWatch Logs documents it. The semantics relied on, with where AWS says so
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html, and the
2018-2020 text of the same page in awsdocs/amazon-cloudwatch-logs-user-guide):

- `{ $.a.b = "v" }` compares the whole string, case-sensitively. A `*` at the start or the end
  of the value is a wildcard ("*UnauthorizedOperation", "AccessDenied*"); `!=` takes the same
  wildcards (AWS's example: `$.sourceIPAddress != 123.123.*`). A `*` elsewhere is a literal
  character (the 2018-2020 text: "Ev*ent will only match the actual string Ev*ent").
- A selector that reaches no value makes `=` and `!=` both false ("if the items ... do not have
  an id property, this will be false"). So excluding a value from a field some records lack
  needs `($.x NOT EXISTS || $.x != "v")`.
- `$.x NOT EXISTS` is true when the record has no such field.
- `&&` binds tighter than `||`; parentheses group.
- A pattern is at most 1,024 characters (CloudWatch Logs' PutSubscriptionFilter limit).
"""
import re

MAX_PATTERN_LENGTH = 1024

_TOKEN = re.compile(r"""\s*(?:
    (?P<open>\() | (?P<close>\)) | (?P<and>&&) | (?P<or>\|\|)
  | (?P<selector>\$(?:\.[A-Za-z0-9_-]+)+)
  | (?P<not_exists>NOT\s+EXISTS)
  | (?P<op>!=|=)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<bare>[A-Za-z0-9_.*:/-]+)
)""", re.VERBOSE)


class FilterPatternError(ValueError):
    pass


def parse(pattern):
    """The pattern as a tree of ("or"|"and", left, right), ("cmp", selector, op, value) and
    ("missing", selector)."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise FilterPatternError(f"{len(pattern)} characters, more than {MAX_PATTERN_LENGTH}")
    body = pattern.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise FilterPatternError("not a JSON filter pattern { ... }")
    tokens = _tokens(body[1:-1])
    tree, rest = _or(tokens)
    if rest:
        raise FilterPatternError(f"unexpected {rest[0]}")
    return tree


def _tokens(text):
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise FilterPatternError(f"cannot read {text[position:position + 20]!r}")
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "string":
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            kind = "value"
        elif kind == "bare":
            kind = "value"
        tokens.append((kind, value))
        position = match.end()
    return tokens


def _or(tokens):
    left, tokens = _and(tokens)
    while tokens and tokens[0][0] == "or":
        right, tokens = _and(tokens[1:])
        left = ("or", left, right)
    return left, tokens


def _and(tokens):
    left, tokens = _term(tokens)
    while tokens and tokens[0][0] == "and":
        right, tokens = _term(tokens[1:])
        left = ("and", left, right)
    return left, tokens


def _term(tokens):
    if not tokens:
        raise FilterPatternError("pattern ends too soon")
    kind, value = tokens[0]
    if kind == "open":
        tree, rest = _or(tokens[1:])
        if not rest or rest[0][0] != "close":
            raise FilterPatternError("unbalanced parenthesis")
        return tree, rest[1:]
    if kind == "selector":
        if len(tokens) >= 2 and tokens[1][0] == "not_exists":
            return ("missing", value), tokens[2:]
        if len(tokens) >= 3 and tokens[1][0] == "op" and tokens[2][0] == "value":
            return ("cmp", value, tokens[1][1], tokens[2][1]), tokens[3:]
    raise FilterPatternError(f"cannot read a condition at {tokens[:3]}")


_MISSING = object()


def _select(record, selector):
    value = record
    for key in selector.split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _equals(actual, expected):
    if expected == "*":
        return True
    if expected.startswith("*") and expected.endswith("*") and len(expected) > 1:
        raise FilterPatternError("a value with * at both ends is not documented")
    if expected.startswith("*"):
        return actual.endswith(expected[1:])
    if expected.endswith("*"):
        return actual.startswith(expected[:-1])
    return actual == expected


def evaluate(tree, record):
    kind = tree[0]
    if kind == "or":
        return evaluate(tree[1], record) or evaluate(tree[2], record)
    if kind == "and":
        return evaluate(tree[1], record) and evaluate(tree[2], record)
    if kind == "missing":
        return _select(record, tree[1]) is _MISSING
    _, selector, op, expected = tree
    actual = _select(record, selector)
    if actual is _MISSING or isinstance(actual, (dict, list)) or actual is None:
        return False
    text = actual if isinstance(actual, str) else str(actual).lower() if isinstance(actual, bool) else str(actual)
    return _equals(text, expected) if op == "=" else not _equals(text, expected)


def matches(pattern, record):
    return evaluate(parse(pattern), record)

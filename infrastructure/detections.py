#!/usr/bin/env python3
"""The template's EventBridge rules, their parameters and README's detection table, made from
the detection catalogue (crates/detections/catalogue.json), so that nothing drifts:

  python3 infrastructure/detections.py --write   (./dev.sh detections)
  python3 infrastructure/detections.py --check   (the template test runs it: exit 1 when stale)

Each family of the catalogue is switched by its parameter. Its detections' patterns are grouped
by the service they come from (`source`), one rule per family and service: the rule's pattern
is the alternatives ($or) of its detections' patterns, those that differ only in their event
names merged into one. A rule receives read-only calls (State
ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS) only when one of its detections needs them.
`${Name}` in a pattern is a value of the stack, written with !Sub.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUE = os.path.join(ROOT, "crates", "detections", "catalogue.json")
TEMPLATE = os.path.join(ROOT, "infrastructure", "cloudformation.yaml")
MEMBER = os.path.join(ROOT, "infrastructure", "member.yaml")
README = os.path.join(ROOT, "README.md")

ALL_EVENTS = "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS"


def load():
    with open(CATALOGUE, encoding="utf-8") as f:
        return json.load(f)


def branches(pattern):
    """A pattern as its alternatives: its top-level $or, or itself."""
    return list(pattern["$or"]) if list(pattern) == ["$or"] else [pattern]


def service(branch):
    """The one service a pattern names (its `source`), or "" for one that takes any of AWS's."""
    sources = branch.get("source")
    return sources[0] if sources and len(sources) == 1 and isinstance(sources[0], str) else ""


def camel(text):
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", text) if part)


def merged(patterns):
    """Alternatives that differ only in detail.eventName become one, their names together."""
    out = []
    for pattern in patterns:
        key = json.dumps({**pattern, "detail": {k: v for k, v in pattern.get("detail", {}).items() if k != "eventName"}},
                         sort_keys=True)
        for existing in out:
            if existing[0] == key and "eventName" in existing[1].get("detail", {}) and "eventName" in pattern.get("detail", {}):
                names = existing[1]["detail"]["eventName"]
                names.extend(n for n in pattern["detail"]["eventName"] if n not in names)
                break
        else:
            out.append((key, json.loads(json.dumps(pattern))))
    return [pattern for _, pattern in out]


def keyed(values):
    return {json.dumps(v, sort_keys=True) for v in values}


def subsumes(wide, narrow):
    """Whether every event `narrow` matches, `wide` matches too: the same fields but for fewer
    conditions, and event names among its own."""
    if {k: v for k, v in wide.items() if k != "detail"} != {k: v for k, v in narrow.items() if k != "detail"}:
        return False
    wide_detail, narrow_detail = wide.get("detail", {}), narrow.get("detail", {})
    for key, value in wide_detail.items():
        if key == "eventName":
            # Names compare as written (a prefix filter is kept as it is, never expanded).
            if not keyed(narrow_detail.get(key, [None])) <= keyed(value):
                return False
        elif narrow_detail.get(key) != value:
            return False
    return True


def rule_pattern(patterns):
    patterns = merged(patterns)
    # An alternative another one already covers adds nothing to the rule.
    patterns = [p for i, p in enumerate(patterns)
                if not any(j != i and subsumes(q, p) and not (subsumes(p, q) and j > i) for j, q in enumerate(patterns))]
    if len(patterns) == 1:
        return patterns[0]
    common = {k: patterns[0][k] for k in ("source", "detail-type")
              if k in patterns[0] and all(p.get(k) == patterns[0][k] for p in patterns)}
    rest = [{k: v for k, v in p.items() if k not in common} for p in patterns]
    if all(list(r) == ["detail"] for r in rest):
        return {**common, "detail": {"$or": [r["detail"] for r in rest]}}
    return {**common, "$or": rest} if common else {"$or": rest}


SUCCESS_ONLY = {"errorCode": [{"exists": False}]}


def with_attempts(branch):
    """A high or critical detection's branch as its rule sends it: failed calls too, which the
    source tells as attempts (the first of a burst high, the rest low)."""
    branch = json.loads(json.dumps(branch))
    detail = branch.get("detail", {})
    if detail.get("errorCode") == SUCCESS_ONLY["errorCode"]:
        del detail["errorCode"]
    for alternative in detail.get("$or", []):
        if alternative.get("errorCode") == SUCCESS_ONLY["errorCode"]:
            del alternative["errorCode"]
    return branch


def rules(catalogue):
    """The rules, in catalogue order: name, family, pattern, state, detection ids."""
    out = {}
    families = {f["name"]: f for f in catalogue["families"]}
    for detection in catalogue["detections"]:
        family = families[detection["family"]]
        if family.get("hand-written-rules"):
            continue
        for branch in branches(detection["pattern"]):
            if detection["severity"] in ("high", "critical"):
                branch = with_attempts(branch)
            key = (family["name"], service(branch))
            rule = out.setdefault(key, {"family": family, "patterns": [], "reads": False, "detections": []})
            rule["patterns"].append(branch)
            rule["reads"] = rule["reads"] or detection.get("reads", False)
            if detection["id"] not in rule["detections"]:
                rule["detections"].append(detection["id"])
    per_family = {}
    for family, _ in out:
        per_family[family] = per_family.get(family, 0) + 1
    made = []
    for (family, source), rule in out.items():
        suffix = camel(source.removeprefix("aws.")) if per_family[family] > 1 else ""
        made.append({
            "name": f"{family}{suffix}Rule",
            "family": rule["family"],
            "pattern": rule_pattern(rule["patterns"]),
            "state": ALL_EVENTS if rule["reads"] else "ENABLED",
            "detections": rule["detections"],
        })
    return made


def condition(family):
    return family.get("condition") or f"{family['parameter']}On"


def switched(catalogue):
    """The families whose Enabled/Disabled parameter and condition the generator writes."""
    return [f for f in catalogue["families"] if f.get("parameter") and not f.get("condition")
            and not f.get("hand-written-rules")]


# --- YAML text: block mappings, flow lists of values, !Sub where a value names the stack ---

PLAIN_KEY = re.compile(r"^[A-Za-z0-9_$.-]+$")


def scalar(value):
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return f"!Sub {text}" if "${" in value else text
    return json.dumps(value)


def flow(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return scalar(value)


def block(value, indent):
    pad = " " * indent
    lines = []
    for key, item in value.items():
        name = key if PLAIN_KEY.match(key) else json.dumps(key)
        if isinstance(item, dict):
            lines.append(f"{pad}{name}:")
            lines.extend(block(item, indent + 2))
        elif isinstance(item, list) and item and all(isinstance(i, dict) and not is_filter(i) for i in item):
            lines.append(f"{pad}{name}:")
            for entry in item:
                inner = block(entry, indent + 4)
                lines.append(f"{pad}  - {inner[0].lstrip()}")
                lines.extend(inner[1:])
        else:
            lines.append(f"{pad}{name}: {flow(item)}")
    return lines


def is_filter(value):
    return isinstance(value, dict) and len(value) == 1 and not any(isinstance(v, dict) and not is_filter_arg(v)
                                                                   for v in value.values()) and next(iter(value)) in (
        "prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr")


def is_filter_arg(value):
    return isinstance(value, dict) and len(value) == 1


def numeric_placeholder(pattern):
    text = json.dumps(pattern)
    return re.search(r'"numeric": \[[^\]]*"\$\{', text) is not None


def event_pattern_lines(pattern):
    """A rule's EventPattern property: a JSON string under !Sub when a parameter must go in as a
    number, YAML otherwise."""
    if numeric_placeholder(pattern):
        text = re.sub(r'"(\$\{[A-Za-z0-9:.]+\})"', r"\1", json.dumps(pattern))
        return [f"      EventPattern: !Sub '{text}'"]
    return ["      EventPattern:"] + block(pattern, 8)


def parameters_text(catalogue):
    lines = []
    for family in switched(catalogue):
        lines += [f"  {family['parameter']}:",
                  "    Type: String",
                  f"    Description: {json.dumps(family['description'] + ' See README, Detections.')}",
                  "    Default: Enabled",
                  "    AllowedValues: [Enabled, Disabled]"]
    return lines


def conditions_text(catalogue):
    return [f"  {condition(f)}: !Equals [!Ref {f['parameter']}, Enabled]" for f in switched(catalogue)]


def parameter_group_text(catalogue):
    names = [f["parameter"] for f in catalogue["families"] if f.get("parameter")]
    return [f"          - {name}" for name in names]


def rules_text(catalogue):
    lines = []
    for rule in rules(catalogue):
        family = rule["family"]
        titles = {d["id"]: d["title"] for d in catalogue["detections"]}
        description = "; ".join(titles[d] for d in rule["detections"])
        if len(description) > 480:
            description = description[:477] + "..."
        # Self-protection is also told to the operations topic, which shares neither the stack's
        # topic nor its key: what it reports cut does not stop it being told.
        operations = ["        - Id: OperationsTopic",
                      "          Arn: !Ref OperationsTopic"] if family["name"] == "SelfProtection" else []
        lines += [f"  {rule['name']}:",
                  "    Type: AWS::Events::Rule",
                  f"    Condition: {condition(family)}",
                  "    Properties:",
                  f"      Description: {json.dumps(description)}"]
        lines += event_pattern_lines(rule["pattern"])
        lines += [f"      State: {rule['state']}",
                  "      Targets:",
                  "        - Id: SourceEventbridge",
                  "          Arn: !GetAtt SourceEventbridgeLambda.Arn",
                  "          DeadLetterConfig:",
                  "            Arn: !GetAtt SourceEventbridgeFailureQueue.Arn",
                  *operations,
                  ""]
    return lines[:-1]


# What member stacks do not forward: the central stack's own parts are in its own account and
# region, and so is the honey bucket.
CENTRAL_ONLY = {"SelfProtection", "HoneyBucket"}


def member_families(catalogue):
    return [f for f in switched(catalogue) if f["name"] not in CENTRAL_ONLY]


def member_parameters_text(catalogue):
    lines = []
    for family in member_families(catalogue):
        lines += [f"  {family['parameter']}:",
                  "    Type: String",
                  f"    Description: {json.dumps('The central stack' + chr(39) + 's ' + family['parameter'] + '.')}",
                  "    Default: Enabled",
                  "    AllowedValues: [Enabled, Disabled]"]
    return lines


def member_condition(family):
    return f"{family['name']}Forwarded"


def member_conditions_text(catalogue):
    return [f"  {member_condition(f)}: !And [Condition: Forwards, !Equals [!Ref {f['parameter']}, Enabled]]"
            for f in member_families(catalogue)]


def member_rules_text(catalogue):
    """The rules a member stack forwards with: the central stack's, aimed at its bus."""
    names = {f["name"] for f in member_families(catalogue)}
    lines = []
    for rule in rules(catalogue):
        family = rule["family"]
        if family["name"] not in names:
            continue
        lines += [f"  {rule['name']}:",
                  "    Type: AWS::Events::Rule",
                  f"    Condition: {member_condition(family)}",
                  "    Properties:",
                  f"      Description: {json.dumps('Forwards to the central stack: ' + family['name'])}"]
        lines += event_pattern_lines(rule["pattern"])
        lines += [f"      State: {rule['state']}",
                  "      Targets:",
                  "        - Id: CentralBus",
                  "          Arn: !Ref CentralEventBusArn",
                  "          RoleArn: !GetAtt ForwardRole.Arn",
                  ""]
    return lines[:-1]


def member_parameter_values_text(catalogue, deployment):
    """What a StackSet of the central stack gives member.yaml: where the central bus is, which
    deployment it is, and the central stack's own settings for what members forward."""
    values = [("CentralEventBusArn", "!GetAtt CentralEventBus.Arn"),
              ("CentralAccountId", "!Ref AWS::AccountId"),
              ("CentralRegion", "!Ref AWS::Region"),
              ("CentralStackName", "!Ref AWS::StackName"),
              ("Deployment", deployment),
              # The stack's own id: no secret, but no other stack's.
              ("ResponderExternalId", '!Select [2, !Split ["/", !Ref AWS::StackId]]'),
              ("ResponderRoleArn", '!If [OpenSecurityGroupResponseOn, !GetAtt ResponseSecurityGroupRole.Arn, ""]'),
              ("OrganizationId", "!Ref OrganizationId"),
              ("OpenSecurityGroupResponse", "!Ref OpenSecurityGroupResponse"),
              ("GuardDutyMinimumSeverity", "!Ref GuardDutyMinimumSeverity")]
    values += [(f["parameter"], f"!Ref {f['parameter']}") for f in member_families(catalogue)]
    return [f"        - ParameterKey: {key}\n          ParameterValue: {value}" for key, value in values]


# The responders' rules match what a detection matches: their patterns come from it.
RESPONSE_PATTERNS = {"open security group pattern": "security-group-open-to-internet",
                     "central open security group pattern": "security-group-open-to-internet"}


def response_pattern_text(catalogue, detection_id):
    [detection] = [d for d in catalogue["detections"] if d["id"] == detection_id]
    return block(detection["pattern"], 8)


def event_names(pattern):
    names = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "eventName":
                    names.extend(n for n in value if isinstance(n, str) and n not in names)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(pattern)
    return names


def answer_text(answer):
    """One public rule or technique a detection answers, as the table shows it: ATT&CK ids bare,
    Sigma ids by their first eight characters, Stratus techniques without `aws.`."""
    kind, _, rest = answer.partition(" ")
    if kind == "ATT&CK":
        return rest
    if kind == "Sigma":
        return f"Sigma {rest[:8]}"
    if kind == "Stratus":
        return f"Stratus {rest.removeprefix('aws.')}"
    return answer


def answers_text(answers, most=6):
    shown = [answer_text(a) for a in answers]
    if len(shown) > most:
        return "; ".join(shown[:most]) + f" and {len(shown) - most} more"
    return "; ".join(shown)


def readme_text(catalogue):
    families = {f["name"]: f for f in catalogue["families"]}
    lines = ["| Detection | Severity | ATT&CK | Answers | Calls | Why it matters | Noise to expect |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    current = None
    for d in catalogue["detections"]:
        family = families[d["family"]]
        if d["family"] != current:
            current = d["family"]
            lines.append(f"| **{family['parameter']}** | | | | | {family['description']} | |")
        names = event_names(d["pattern"])
        calls = ", ".join(names) if names else "(any)"
        if len(calls) > 160:
            calls = ", ".join(names[:6]) + f" and {len(names) - 6} more"
        cells = [f"`{d['id']}`: {d['title']}", d["severity"], d["tactic"], answers_text(d.get("answers", [])), calls,
                 d["why"], d["noise"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


# --- the marked regions ---

def replace_region(text, name, lines, comment="#"):
    if comment == "#":
        begin = re.compile(rf"^( *)# --- generated: {name} .*$", re.M)
        end_marker = "# --- end of generated {} ---"
    else:
        begin = re.compile(rf"^()<!-- generated: {name} .*-->$", re.M)
        end_marker = "<!-- end of generated {} -->"
    match = begin.search(text)
    if not match:
        raise SystemExit(f"{name}: no '# --- generated: {name} ...' line")
    end = text.find(end_marker.format(name), match.end())
    if end < 0:
        raise SystemExit(f"{name}: no end marker")
    line_start = text.rfind("\n", 0, end) + 1
    body = "\n".join(lines)
    return text[:match.end()] + "\n" + body + ("\n" if body else "") + text[line_start:]


def generated():
    catalogue = load()
    with open(TEMPLATE, encoding="utf-8") as f:
        template = f.read()
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    template = replace_region(template, "parameter group", parameter_group_text(catalogue))
    template = replace_region(template, "parameters", parameters_text(catalogue))
    template = replace_region(template, "conditions", conditions_text(catalogue))
    template = replace_region(template, "rules", rules_text(catalogue))
    template = replace_region(template, "central account member parameters",
                              member_parameter_values_text(catalogue, "CentralAccount"))
    template = replace_region(template, "organization member parameters",
                              member_parameter_values_text(catalogue, "Organization"))
    for region, detection_id in RESPONSE_PATTERNS.items():
        template = replace_region(template, region, response_pattern_text(catalogue, detection_id))
    readme = replace_region(readme, "detections", readme_text(catalogue), comment="<!--")
    with open(MEMBER, encoding="utf-8") as f:
        member = f.read()
    member = replace_region(member, "member parameters", member_parameters_text(catalogue))
    member = replace_region(member, "member conditions", member_conditions_text(catalogue))
    member = replace_region(member, "member rules", member_rules_text(catalogue))
    return template, readme, member


def main(argv):
    if argv not in (["--write"], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    template, readme, member = generated()
    stale = []
    for path, text in [(TEMPLATE, template), (README, readme), (MEMBER, member)]:
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                stale.append(os.path.relpath(path, ROOT))
                if argv == ["--write"]:
                    with open(path, "w", encoding="utf-8") as out:
                        out.write(text)
    if argv == ["--check"] and stale:
        print(f"not made from the catalogue: {', '.join(stale)}; run ./dev.sh detections", file=sys.stderr)
        return 1
    if argv == ["--write"]:
        print(f"{len(rules(load()))} rules; rewrote {', '.join(stale) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

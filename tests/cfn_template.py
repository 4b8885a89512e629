"""The template as CloudFormation resolves it for a given set of parameters: enough of the
intrinsic functions (Ref, Fn::If, Fn::Join, Fn::Split, Fn::Select, Fn::Sub, Fn::FindInMap and
the condition functions) to read the values the tests check, such as a rule's EventPattern or
the subscription filter's FilterPattern. Pseudo parameters and attributes of resources are left
unresolved."""
import json
import os
import re

from cfnlint.decode import cfn_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "infrastructure", "cloudformation.yaml")
MEMBER = os.path.join(ROOT, "infrastructure", "member.yaml")

NO_VALUE = object()


def load(path=TEMPLATE):
    """The decoded template (the central one unless another is named) as plain dicts and lists."""
    return json.loads(json.dumps(cfn_yaml.load(path)))


# The values the tests give what CloudFormation knows only at deploy time: pseudo parameters,
# and the attributes and references !Sub names.
STACK_VALUES = {
    "AWS::AccountId": "111122223333",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "ids",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:111122223333:stack/ids/0f0e0d0c-0000-4000-8000-000000000001",
    "StackKey.Arn": "arn:aws:kms:us-east-1:111122223333:key/0f0e0d0c-0000-4000-8000-000000000001",
    "StackKey": "0f0e0d0c-0000-4000-8000-000000000001",
    "SNSTopic": "arn:aws:sns:us-east-1:111122223333:ids-SNSTopic-1",
}


class LazyConditions(dict):
    def __init__(self, resolved, bodies):
        super().__init__()
        self.resolved = resolved
        self.bodies = bodies

    def __missing__(self, name):
        value = self.resolved.value(self.bodies[name])
        self[name] = value
        return value


class Resolved:
    def __init__(self, template, stack_values=None, **parameters):
        unknown = set(parameters) - set(template["Parameters"])
        assert not unknown, f"no such parameters: {unknown}"
        self.template = template
        self.stack_values = dict(STACK_VALUES, **(stack_values or {}))
        # CloudFormation hands every parameter to the template as a string.
        self.parameters = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        self.parameters.update({name: str(value) for name, value in parameters.items()})
        # Conditions may name others: each is resolved when first asked for.
        self.conditions = LazyConditions(self, template.get("Conditions", {}))

    def named(self, name):
        """A parameter's value, or a value only a deployed stack knows, as the tests give it."""
        return self.parameters[name] if name in self.parameters else self.stack_values[name]

    def property(self, resource, name):
        """A resource's property, resolved."""
        return self.value(self.template["Resources"][resource]["Properties"][name])

    def condition(self, resource):
        """Whether the resource is made with these parameters."""
        name = self.template["Resources"][resource].get("Condition")
        return name is None or self.conditions[name]

    def value(self, node):
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self.named(arg)
            if key == "Condition":
                return self.conditions[arg]
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.value(then if self.conditions[name] else otherwise)
            if key == "Fn::Equals":
                left, right = (self.value(v) for v in arg)
                return left == right
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(v) for v in arg)
            if key == "Fn::Or":
                return any(self.value(v) for v in arg)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(self.value(items))
            if key == "Fn::Split":
                separator, text = arg
                return self.value(text).split(separator)
            if key == "Fn::FindInMap":
                mapping, top, second = (self.value(v) for v in arg)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::Select":
                index, items = arg
                return self.value(items)[int(self.value(index))]
            if key == "Fn::GetAtt" and ".".join(arg) in self.stack_values:
                return self.stack_values[".".join(arg)]
            if key == "Fn::Sub" and isinstance(arg, str):
                return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", lambda m: self.named(m.group(1)), arg)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not NO_VALUE}


def resources(template, type_name):
    """The names of the template's resources of a type, in the template's order."""
    return [name for name, resource in template["Resources"].items() if resource["Type"] == type_name]

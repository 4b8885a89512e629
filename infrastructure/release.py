#!/usr/bin/env python3
"""The pieces of `./dev.sh release`, each a command of its own so that it can be run and tested
without building anything:

  release.py version                   the version, [workspace.package] version in Cargo.toml
  release.py functions                 the functions the template deploys, one per line
  release.py zip --binary B --out Z    a Lambda zip of one binary (as `bootstrap`), the same
                                       bytes for the same binary whenever and wherever made
  release.py installable-template --zips DIR --out FILE [--version V] [--base-url URL]
                                       the template that installs with nothing but itself:
                                       infrastructure/cloudformation.yaml, its functions' code
                                       copied at deploy time from the release into a bucket
                                       the stack makes (see below)
  release.py quick-install --template-url URL --out FILE [--version V]
                                       the quick-create links of every default region, printed
                                       and written as a Markdown table
  release.py sums DIR                  DIR/SHA256SUMS (sha256sum's format) of every file in DIR

The installable template is infrastructure/cloudformation.yaml with, added:
- CodeBucket, a private, encrypted bucket of the stack's own, in the stack's region;
- CodeCopy, a custom resource backed by CodeCopyLambda, a Python function whose code is in the
  template (infrastructure/code_copy.py): it downloads each zip of the stack's Architecture from
  ReleaseBaseUrl (by default this version's GitHub release), checks it against the SHA-256 the
  template holds and puts it into CodeBucket;
- each function's Code in CodeBucket, under a prefix of this release's own, and DependsOn CodeCopy;
- CodeSigningProfileVersionArn: when given, a code signing config enforced on every function;
- the output ReleaseVersion.
Every parameter of infrastructure/cloudformation.yaml stays as it is, so an installed stack
upgrades by replacing its template with a newer release's and keeps its parameters and secrets.
"""
import argparse
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
import urllib.parse
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(ROOT, "infrastructure", "cloudformation.yaml")
COPIER = os.path.join(ROOT, "infrastructure", "code_copy.py")
CARGO_TOML = os.path.join(ROOT, "Cargo.toml")
ARCHITECTURES = ("arm64", "x86_64")
# The regions every AWS account has without opting in.
REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1",
           "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1",
           "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2"]
DEFAULT_STACK_NAME = "Activity-Aware-IDS"
# A zip's one entry, and its date: the earliest a zip can hold, the same for every build.
ZIP_ENTRY = "bootstrap"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
CODE_LINE = re.compile(r"^(?P<indent> +)Code: \.\./dist/(?P<fn>[a-z0-9-]+)/(?P=fn)\.zip[ \t]*$", re.M)
NEW_PARAMETERS = ["ReleaseBaseUrl", "CodeSigningProfileVersionArn"]
NEW_RESOURCES = ["CodeBucket", "CodeBucketPolicy", "CodeCopyRole", "CodeCopyLogGroup", "CodeCopyLambda",
                 "CodeCopy", "CodeSigningConfig"]


class ReleaseError(Exception):
    pass


# --- what the release is ---

def workspace_package(cargo_toml=CARGO_TOML):
    """[workspace.package] of Cargo.toml, as a dict of its plain string values."""
    with open(cargo_toml, encoding="utf-8") as f:
        text = f.read()
    section = re.search(r"^\[workspace\.package\][ \t]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not section:
        raise ReleaseError(f"{cargo_toml} has no [workspace.package]")
    return dict(re.findall(r'^([A-Za-z0-9_-]+)[ \t]*=[ \t]*"([^"]*)"', section.group(1), re.M))


def version(cargo_toml=CARGO_TOML):
    found = workspace_package(cargo_toml).get("version")
    if not found or not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?", found):
        raise ReleaseError(f'{cargo_toml} has no [workspace.package] version = "X.Y.Z"')
    return found


def repository(cargo_toml=CARGO_TOML):
    found = workspace_package(cargo_toml).get("repository", "").rstrip("/")
    if not re.fullmatch(r"https://github\.com/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", found):
        raise ReleaseError(f"{cargo_toml}'s [workspace.package] repository is not a GitHub repository URL")
    return found


def releases_url(cargo_toml=CARGO_TOML):
    """Where the project's GitHub releases' files are: <releases_url>v<version>/<file>."""
    return repository(cargo_toml) + "/releases/download/"


def release_url(release_version, cargo_toml=CARGO_TOML):
    return f"{releases_url(cargo_toml)}v{release_version}/"


def functions(template_text):
    """The functions the template deploys (each `Code: ../dist/<fn>/<fn>.zip`), once each."""
    found = []
    for match in CODE_LINE.finditer(template_text):
        if match.group("fn") not in found:
            found.append(match.group("fn"))
    return found


def zip_name(function, architecture):
    return f"{function}-{architecture}.zip"


# --- the zips ---

def deterministic_zip(binary, out):
    """Zips a binary as `bootstrap`, mode 0755, dated 1980-01-01, deflated at level 9: the bytes
    depend on the binary's alone, not on when, where or by whom the zip is made."""
    with open(binary, "rb") as f:
        data = f.read()
    info = zipfile.ZipInfo(ZIP_ENTRY, date_time=ZIP_DATE)
    info.create_system = 3  # Unix, so that the mode below is read
    info.external_attr = (stat.S_IFREG | 0o755) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".zip.tmp")
    try:
        with os.fdopen(handle, "wb") as raw, zipfile.ZipFile(raw, "w") as archive:
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.chmod(temporary, 0o644)
        os.replace(temporary, out)
    except BaseException:
        os.unlink(temporary)
        raise


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sums(directory):
    """DIR/SHA256SUMS: every other file in DIR, by name, as `sha256sum` prints and checks it."""
    names = sorted(name for name in os.listdir(directory)
                   if name != "SHA256SUMS" and os.path.isfile(os.path.join(directory, name)))
    if not names:
        raise ReleaseError(f"{directory} has no files to sum")
    lines = [f"{sha256_of(os.path.join(directory, name))}  {name}\n" for name in names]
    with open(os.path.join(directory, "SHA256SUMS"), "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    return lines


# --- the installable template ---

def release_files(template_text, zips_dir):
    """[(name, sha256)] of every function's zip for every architecture, in a fixed order."""
    files, missing = [], []
    for function in functions(template_text):
        for architecture in ARCHITECTURES:
            path = os.path.join(zips_dir, zip_name(function, architecture))
            if os.path.isfile(path):
                files.append((zip_name(function, architecture), sha256_of(path)))
            else:
                missing.append(zip_name(function, architecture))
    if missing:
        raise ReleaseError(f"{zips_dir} lacks {', '.join(missing)}")
    if not files:
        raise ReleaseError("the template deploys no function (no `Code: ../dist/<fn>/<fn>.zip`)")
    return files


def release_prefix(release_version, files):
    """The key prefix of this release's zips in CodeBucket: new for every release, and for every
    build of a version, so that an upgrade always gives each function a new S3Key (CloudFormation
    updates a function's code only when its Code changes)."""
    digest = hashlib.sha256("".join(f"{sha}  {name}\n" for name, sha in files).encode()).hexdigest()
    return f"{release_version}-{digest[:16]}/"


def top_level_span(lines, key):
    """(first, end) line indexes of a top-level section's body (after `key:`, up to the next
    top-level key, trailing blank and comment lines left out)."""
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{key}:")
    except StopIteration:
        raise ReleaseError(f"the template has no top-level {key}:") from None
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"[A-Za-z]", lines[i])), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return start + 1, end


def insert_at_end_of(lines, key, text):
    _, end = top_level_span(lines, key)
    lines[end:end] = ["\n"] + text.splitlines(keepends=True)


def yaml_string(value):
    return json.dumps(value)


def indent(text, spaces):
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def new_parameters(default_base_url):
    return f"""\
  # --- The release (added by infrastructure/release.py) ---
  ReleaseBaseUrl:
    Type: String
    Description: >-
      Where the functions' zips are downloaded from when the stack is created or updated: this
      release's files on GitHub, or your own copy of them (an https:// URL ending in /, serving
      the same file names). Each zip is checked against the SHA-256 this template holds,
      wherever it comes from; one that differs fails the stack. A value naming another release
      of the project (kept from the stack's previous template on an upgrade) means this one.
    Default: {yaml_string(default_base_url)}
    AllowedPattern: '^https://[^\\s?#]+/$'
    ConstraintDescription: must be an https:// URL ending in /
  CodeSigningProfileVersionArn:
    Type: String
    Description: >-
      An AWS Signer signing profile version (arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME/VERSION):
      when given, every function of the stack takes only code signed by it (a code signing
      config, UntrustedArtifactOnDeployment Enforce), so the zips must carry its signature.
      Empty: no code signing config.
    Default: ""
    AllowedPattern: '^$|^arn:aws[a-z-]*:signer:[a-z0-9-]+:[0-9]{{12}}:/signing-profiles/[A-Za-z0-9_]{{2,64}}/[A-Za-z0-9]{{10}}$'
    ConstraintDescription: must be empty or a signing profile version ARN
"""


def new_resources(release_version, prefix, files, default_base_url, project_releases):
    with open(COPIER, encoding="utf-8") as f:
        copier = f.read()
    if "\t" in copier:
        raise ReleaseError(f"{COPIER} has a tab: YAML's block scalar takes spaces only")
    file_entries = "".join(f"        - {{Name: {yaml_string(name)}, Sha256: {yaml_string(sha)}}}\n" for name, sha in files)
    return f"""\
  # --- The functions' code (added by infrastructure/release.py) ---
  # The stack installs in any region with nothing but this template: CodeCopy copies this
  # release's zips (from ReleaseBaseUrl, each checked against its SHA-256 below) into a bucket of
  # the stack's own, in the stack's region, where Lambda reads them.

  CodeBucket:
    Type: AWS::S3::Bucket
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_18
            comment: Holds only copies of the release's public function zips, written by CodeCopy alone (CodeBucketPolicy); there is no access worth a log bucket of its own.
          - id: CKV_AWS_21
            comment: Each release's zips are written once under a prefix of their own and checked against their SHA-256 before; versions would only keep what the stack deleted.
    Properties:
      BucketEncryption:
        ServerSideEncryptionConfiguration:
          - ServerSideEncryptionByDefault:
              SSEAlgorithm: AES256
      PublicAccessBlockConfiguration:
        BlockPublicAcls: true
        BlockPublicPolicy: true
        IgnorePublicAcls: true
        RestrictPublicBuckets: true
      OwnershipControls:
        Rules:
          - ObjectOwnership: BucketOwnerEnforced
      LifecycleConfiguration:
        Rules:
          - Id: AbortIncompleteUploads
            Status: Enabled
            AbortIncompleteMultipartUpload:
              DaysAfterInitiation: 1

  # Only CodeCopy writes or deletes the functions' code, and nothing without TLS.
  CodeBucketPolicy:
    Type: AWS::S3::BucketPolicy
    Properties:
      Bucket: !Ref CodeBucket
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Sid: OnlyCodeCopyWrites
            Effect: Deny
            Principal: "*"
            Action:
              - s3:PutObject
              - s3:DeleteObject
            Resource: !Sub "${{CodeBucket.Arn}}/*"
            Condition:
              ArnNotEquals:
                aws:PrincipalArn: !GetAtt CodeCopyRole.Arn
          - Sid: TlsOnly
            Effect: Deny
            Principal: "*"
            Action: "s3:*"
            Resource:
              - !GetAtt CodeBucket.Arn
              - !Sub "${{CodeBucket.Arn}}/*"
            Condition:
              Bool:
                aws:SecureTransport: "false"

  CodeCopyRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Action: sts:AssumeRole
            Principal:
              Service: lambda.amazonaws.com
      Policies:
        - PolicyName: CopyTheReleaseIntoCodeBucket
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action:
                  - s3:PutObject
                  - s3:DeleteObject
                Resource: !Sub "${{CodeBucket.Arn}}/*"
              - Effect: Allow
                Action: s3:ListBucket
                Resource: !GetAtt CodeBucket.Arn
              - Effect: Allow
                Action:
                  - logs:CreateLogStream
                  - logs:PutLogEvents
                Resource: !GetAtt CodeCopyLogGroup.Arn

  CodeCopyLogGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub "/aws/lambda/${{AWS::StackName}}-CodeCopy"
      RetentionInDays: !Ref LogRetentionInDays
      KmsKeyId: !GetAtt StackKey.Arn

  CodeCopyLambda:
    Type: AWS::Lambda::Function
    Metadata:
      checkov:
        skip:
          - id: CKV_AWS_115
            comment: Runs only during this stack's own operations, one request at a time; a reservation would only make stack creation fail on accounts at the minimum concurrency quota.
          - id: CKV_AWS_116
            comment: CloudFormation invokes it once per stack operation and reads its answer at the ResponseURL; a failure fails the stack operation, there is nothing to queue.
          - id: CKV_AWS_117
            comment: Downloads the release's public zips and writes them to S3; a VPC would need NAT for no gain.
          - id: CKV_AWS_272
            comment: Its code is in this template, where it can be read; it runs before any signed code could be copied, and it checks every zip's SHA-256 instead.
    Properties:
      Description: Backs a CloudFormation custom resource copying the release's function zips, checked against their SHA-256, into CodeBucket
      Role: !GetAtt CodeCopyRole.Arn
      Runtime: python3.12
      Handler: index.handler
      Architectures: [!Ref Architecture]
      MemorySize: 512
      Timeout: 600
      LoggingConfig:
        LogGroup: !Ref CodeCopyLogGroup
        LogFormat: JSON
      TracingConfig:
        Mode: PassThrough
      Code:
        ZipFile: |
{indent(copier, 10)}
  CodeCopy:
    Type: Custom::ReleaseCode
    Properties:
      ServiceToken: !GetAtt CodeCopyLambda.Arn
      # Longer than CodeCopyLambda's timeout: a stack never waits an hour for an answer.
      ServiceTimeout: 900
      Bucket: !Ref CodeBucket
      Prefix: {yaml_string(prefix)}
      Architecture: !Ref Architecture
      BaseUrl: !Ref ReleaseBaseUrl
      ReleaseUrl: {yaml_string(default_base_url)}
      ReleasesUrl: {yaml_string(project_releases)}
      Release: {yaml_string(release_version)}
      # Every zip of the release and its SHA-256: what is copied must be exactly these bytes.
      Files:
{file_entries}
  CodeSigningConfig:
    Type: AWS::Lambda::CodeSigningConfig
    Condition: HasCodeSigningProfile
    Properties:
      Description: The stack's functions take only code signed by CodeSigningProfileVersionArn
      AllowedPublishers:
        SigningProfileVersionArns: [!Ref CodeSigningProfileVersionArn]
      CodeSigningPolicies:
        UntrustedArtifactOnDeployment: Enforce

  # --- end of the functions' code ---
"""


def remove_cfn_lint_exception(lines):
    """The source template asks cfn-lint to ignore W3002 (its Code names local zips); the
    installable template's Code is in S3, so it is linted without that exception."""
    if not any(line.rstrip() == "Metadata:" for line in lines):
        return
    start, end = top_level_span(lines, "Metadata")
    for i in range(start, end):
        if lines[i].rstrip() == "  cfn-lint:":
            stop = next((j for j in range(i + 1, end) if re.match(r"  \S", lines[j])), end)
            del lines[i:stop]
            return


def rewrite_functions(lines, prefix):
    """Each function's Code in CodeBucket under the release's prefix, DependsOn CodeCopy, and
    the code signing config when given. Returns the functions' logical IDs."""
    start, end = top_level_span(lines, "Resources")
    rewritten = []
    i = start
    while i < end:
        header = re.match(r"  ([A-Za-z0-9]+):\s*$", lines[i])
        if not header:
            i += 1
            continue
        stop = next((j for j in range(i + 1, end) if re.match(r"  \S", lines[j])), end)
        block = lines[i:stop]
        code = [k for k, line in enumerate(block) if CODE_LINE.match(line)]
        is_function = any(line.rstrip() == "    Type: AWS::Lambda::Function" for line in block)
        if code and not is_function:
            raise ReleaseError(f"{header.group(1)} has a Code line but is no AWS::Lambda::Function")
        if is_function and code:
            if any(re.match(r"      CodeSigningConfigArn:", line) for line in block):
                raise ReleaseError(f"{header.group(1)} already has a CodeSigningConfigArn")
            (k,) = code
            match = CODE_LINE.match(block[k])
            pad, function = match.group("indent"), match.group("fn")
            block[k:k + 1] = [
                f"{pad}Code:\n",
                f"{pad}  S3Bucket: !Ref CodeBucket\n",
                f"{pad}  S3Key: !Sub \"{prefix}{function}-${{Architecture}}.zip\"\n",
                f"{pad}CodeSigningConfigArn: !If [HasCodeSigningProfile, !GetAtt CodeSigningConfig.CodeSigningConfigArn, !Ref AWS::NoValue]\n",
            ]
            depends_on(block, header.group(1))
            lines[i:stop] = block
            grown = len(block) - (stop - i)
            end += grown
            stop += grown
            rewritten.append(header.group(1))
        i = stop
    return rewritten


def depends_on(block, name):
    """The resource's DependsOn, with CodeCopy first: `DependsOn: X` and `DependsOn: [X, Y]`
    become lists; a block list takes CodeCopy as its first item."""
    found = [k for k, line in enumerate(block) if re.match(r"    DependsOn:", line)]
    if not found:
        type_line = next(k for k, line in enumerate(block) if line.rstrip() == "    Type: AWS::Lambda::Function")
        block.insert(type_line + 1, "    DependsOn: CodeCopy\n")
        return
    (k,) = found
    value = block[k].split(":", 1)[1].split(" #", 1)[0].strip()
    if not value:
        block.insert(k + 1, "      - CodeCopy\n")
    elif re.fullmatch(r"[A-Za-z0-9]+", value):
        block[k] = f"    DependsOn: [CodeCopy, {value}]\n"
    elif re.fullmatch(r"\[\s*[A-Za-z0-9]+(\s*,\s*[A-Za-z0-9]+)*\s*\]", value):
        block[k] = f"    DependsOn: [CodeCopy, {value[1:-1].strip()}]\n"
    else:
        raise ReleaseError(f"{name}'s DependsOn ({value}) is not a form release.py can add CodeCopy to")


def installable_template(source_text, zips_dir, release_version, base_url=None, cargo_toml=CARGO_TOML):
    """The installable template's text, made from the source template's."""
    files = release_files(source_text, zips_dir)
    prefix = release_prefix(release_version, files)
    own_release = release_url(release_version, cargo_toml)
    default_base_url = base_url or own_release
    if not default_base_url.endswith("/"):
        default_base_url += "/"
    lines = source_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    text = "".join(lines)
    for name in NEW_PARAMETERS + NEW_RESOURCES + ["HasCodeSigningProfile", "ReleaseVersion"]:
        if re.search(rf"^  {name}:", text, re.M):
            raise ReleaseError(f"the template already has {name}, which the installable template adds")
    rewritten = rewrite_functions(lines, prefix)
    remove_cfn_lint_exception(lines)
    insert_at_end_of(lines, "Parameters", new_parameters(default_base_url))
    insert_at_end_of(lines, "Conditions", "  HasCodeSigningProfile: !Not [!Equals [!Ref CodeSigningProfileVersionArn, \"\"]]\n")
    _, end = top_level_span(lines, "Resources")
    start = next(i for i, line in enumerate(lines) if line.rstrip() == "Resources:") + 1
    lines[start:start] = new_resources(release_version, prefix, files, own_release,
                                       releases_url(cargo_toml)).splitlines(keepends=True) + ["\n"]
    insert_at_end_of(lines, "Outputs", f"""\
  ReleaseVersion:
    Description: The release of Activity Aware IDS this stack runs
    Value: {yaml_string(release_version)}
""")
    add_parameter_group(lines)
    result = "".join(lines)
    check_installable(result, rewritten, files, prefix)
    return result


def add_parameter_group(lines):
    """A console group for the new parameters, after the template's own groups."""
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "    ParameterGroups:")
    except StopIteration:
        return
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith("      ")):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    lines[end:end] = [
        "      - Label: {default: \"Release (where the functions' code comes from)\"}\n",
        f"        Parameters: [{', '.join(NEW_PARAMETERS)}]\n",
    ]


def check_installable(text, rewritten, files, prefix):
    """What the installable template must be, checked on the template as CloudFormation reads it."""
    from cfnlint.decode import cfn_yaml  # .venv's cfn-lint, as ./dev.sh installs it

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        template = json.loads(json.dumps(cfn_yaml.load(f.name)))
    if "../dist/" in text:
        raise ReleaseError("the installable template still names a local zip (../dist/)")
    resources = template["Resources"]
    for name in NEW_RESOURCES:
        if name not in resources:
            raise ReleaseError(f"the installable template lacks {name}")
    functions_in = [n for n, r in resources.items() if r["Type"] == "AWS::Lambda::Function" and n != "CodeCopyLambda"]
    if sorted(functions_in) != sorted(rewritten):
        raise ReleaseError(f"functions not rewritten: {sorted(set(functions_in) - set(rewritten))}")
    for name in functions_in:
        code = resources[name]["Properties"]["Code"]
        if code.get("S3Bucket") != {"Ref": "CodeBucket"} or not code.get("S3Key", {}).get("Fn::Sub", "").startswith(prefix):
            raise ReleaseError(f"{name}'s Code is not in CodeBucket: {code}")
        depends = resources[name].get("DependsOn")
        if "CodeCopy" not in ([depends] if isinstance(depends, str) else depends or []):
            raise ReleaseError(f"{name} does not depend on CodeCopy")
    listed = {(f["Name"], f["Sha256"]) for f in resources["CodeCopy"]["Properties"]["Files"]}
    if listed != set(files):
        raise ReleaseError("CodeCopy's Files are not the release's zips")
    for name, spec in template["Parameters"].items():
        if "Default" not in spec and "bucket" in name.lower():
            raise ReleaseError(f"the parameter {name} names a bucket and has no default")


# --- quick install ---

def quick_create_link(region, template_url, stack_name=DEFAULT_STACK_NAME):
    query = urllib.parse.urlencode({"templateURL": template_url, "stackName": stack_name})
    return f"https://console.aws.amazon.com/cloudformation/home?region={region}#/stacks/quickcreate?{query}"


def quick_install(template_url, release_version, member_url=None):
    links = [(region, quick_create_link(region, template_url)) for region in REGIONS]
    rows = "".join(f"| {region} | [Launch stack]({link}) |\n" for region, link in links)
    markdown = (
        f"Release {release_version}: the template at <{template_url}>, the functions' zips from its "
        f"GitHub release. Pick your region, then give the stack your Slack webhook URL.\n\n"
        f"| Region | Install |\n| --- | --- |\n{rows}")
    if member_url:
        markdown += (f"\nFor an organisation's member accounts (StackSets), give the stack "
                     f"`MemberTemplateURL` {member_url}\n")
    return links, markdown


# --- the command line ---

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("version", help="the version in Cargo.toml's [workspace.package]")
    listing = commands.add_parser("functions", help="the functions the template deploys")
    listing.add_argument("--template", default=TEMPLATE)
    make_zip = commands.add_parser("zip", help="a reproducible Lambda zip of one binary")
    make_zip.add_argument("--binary", required=True)
    make_zip.add_argument("--out", required=True)
    template = commands.add_parser("installable-template", help="the template that installs with nothing but itself")
    template.add_argument("--zips", required=True, help="the directory holding <function>-<arch>.zip")
    template.add_argument("--out", required=True)
    template.add_argument("--template", default=TEMPLATE)
    template.add_argument("--version", help="the release's version (default: Cargo.toml's)")
    template.add_argument("--base-url", help="ReleaseBaseUrl's default (default: this version's GitHub release)")
    quick = commands.add_parser("quick-install", help="the quick-create links of every default region")
    quick.add_argument("--template-url", required=True)
    quick.add_argument("--out", required=True)
    quick.add_argument("--version", help="the release's version (default: Cargo.toml's)")
    sums = commands.add_parser("sums", help="DIR/SHA256SUMS of every file in DIR")
    sums.add_argument("directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "version":
            print(version())
        elif args.command == "functions":
            with open(args.template, encoding="utf-8") as f:
                print("\n".join(functions(f.read())))
        elif args.command == "zip":
            deterministic_zip(args.binary, args.out)
        elif args.command == "installable-template":
            with open(args.template, encoding="utf-8") as f:
                source = f.read()
            text = installable_template(source, args.zips, args.version or version(), args.base_url)
            with open(args.out, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        elif args.command == "quick-install":
            # The member accounts' template, when the release has one, is published beside it.
            member = os.path.join(os.path.dirname(os.path.abspath(args.out)), "member.yaml")
            member_url = args.template_url.rsplit("/", 1)[0] + "/member.yaml" if os.path.isfile(member) else None
            links, markdown = quick_install(args.template_url, args.version or version(), member_url)
            with open(args.out, "w", encoding="utf-8", newline="\n") as f:
                f.write(markdown)
            for region, link in links:
                print(f"  {region:<15} {link}")
            if member_url:
                print(f"The member accounts' template (MemberTemplateURL): {member_url}")
        elif args.command == "sums":
            sys.stdout.writelines(write_sums(args.directory))
    except (ReleaseError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The release's pieces (infrastructure/release.py, the CodeCopy custom resource's code and
./dev.sh release's wiring), without building any Rust: the installable template is made from
infrastructure/cloudformation.yaml with small fake zips.

- the installable template passes cfn-lint and checkov, holds every zip's SHA-256, keeps every
  parameter of the source template, needs no bucket of the installer's, and creates in moto in
  several regions, its functions' code where CodeCopy puts it;
- CodeCopy's code, taken from the template, against moto's S3 and a local HTTP server playing
  the GitHub release and CloudFormation's ResponseURL: a good zip is copied, a tampered or
  missing one is refused with a reason naming it (and both hashes) and nothing is left, Delete
  empties the bucket, every request is answered;
- zips are the same bytes for the same binary, SHA256SUMS is what sha256sum checks, the
  quick-create links cover the 17 default regions.

  .venv/bin/python -m unittest tests.release_test      (./dev.sh test runs every *_test.py)
"""
import hashlib
import http.server
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse
import warnings
import zipfile
from unittest import mock

import boto3
import yaml
from cfnlint.decode import cfn_yaml
from moto import mock_aws

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "infrastructure"))
import release  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
TEMPLATE = os.path.join(ROOT, "infrastructure", "cloudformation.yaml")
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "VALIDATE_LAMBDA_S3": "false"}


def tool(name):
    """A tool of .venv/bin (./dev.sh installs them), else from PATH."""
    path = os.path.join(VENV_BIN, name)
    return path if os.path.exists(path) else shutil.which(name) or name


def camel(name):
    return "".join(part.capitalize() for part in name.split("-"))


def load_yaml(path):
    return json.loads(json.dumps(cfn_yaml.load(path)))


class Server:
    """A local HTTP server: GET /<path> answers the bytes `files` holds for it (404 otherwise),
    PUT records the body (CloudFormation's ResponseURL)."""

    def __init__(self):
        self.files = {}
        self.answers = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.answers.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Release(unittest.TestCase):
    """The installable template made from the current infrastructure/cloudformation.yaml."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="release-test-")
        cls.zips = os.path.join(cls.work, "zips")
        os.makedirs(cls.zips)
        with open(TEMPLATE, encoding="utf-8") as f:
            cls.source_text = f.read()
        cls.functions = release.functions(cls.source_text)
        binary = os.path.join(cls.work, "bootstrap")
        for function in cls.functions:
            for architecture in release.ARCHITECTURES:
                with open(binary, "wb") as f:
                    f.write(f"\x7fELF a fake {function} for {architecture}\n".encode() * 50)
                release.deterministic_zip(binary, os.path.join(cls.zips, release.zip_name(function, architecture)))
        cls.out = os.path.join(cls.work, "cloudformation.yaml")
        subprocess.run([sys.executable, os.path.join(ROOT, "infrastructure", "release.py"), "installable-template",
                        "--zips", cls.zips, "--out", cls.out, "--version", "0.1.0"], check=True)
        # The linters take seconds each: they run while the other tests do.
        cls.lint = subprocess.Popen([tool("cfn-lint"), "--", cls.out], stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        cls.shellcheck = subprocess.Popen([tool("shellcheck"), os.path.join(ROOT, "dev.sh")], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, text=True)
        cls.checkov = subprocess.Popen([tool("checkov"), "--config-file", os.path.join(ROOT, "infrastructure", ".checkov.yaml"),
                                        "-f", cls.out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        with open(cls.out, encoding="utf-8") as f:
            cls.text = f.read()
        cls.template = load_yaml(cls.out)
        cls.source = load_yaml(TEMPLATE)
        cls.resources = cls.template["Resources"]

    @classmethod
    def tearDownClass(cls):
        for process in (cls.lint, cls.checkov, cls.shellcheck):
            if process.poll() is None:
                process.kill()
                process.communicate()
        shutil.rmtree(cls.work, ignore_errors=True)

    def zip_sha256(self):
        return {name: release.sha256_of(os.path.join(self.zips, name)) for name in sorted(os.listdir(self.zips))}

    # --- the installable template ---

    def test_it_passes_cfn_lint(self):
        output, _ = self.lint.communicate(timeout=120)
        self.assertEqual(self.lint.returncode, 0, output)

    def test_it_passes_checkov_and_every_skip_has_a_reason(self):
        output, _ = self.checkov.communicate(timeout=120)
        self.assertEqual(self.checkov.returncode, 0, output)
        self.assertIn("Failed checks: 0", output)
        for name in release.NEW_RESOURCES:
            for skip in self.resources[name].get("Metadata", {}).get("checkov", {}).get("skip", []):
                self.assertRegex(skip["id"], r"^CKV2?_AWS_\d+$", name)
                self.assertGreater(len(skip.get("comment", "")), 40, f"{name} skips {skip['id']} without a reason")

    def test_every_zip_and_its_sha256_is_in_it(self):
        files = {f["Name"]: f["Sha256"] for f in self.resources["CodeCopy"]["Properties"]["Files"]}
        self.assertEqual(files, self.zip_sha256())
        self.assertEqual(len(files), 2 * len(self.functions))
        for sha in files.values():
            self.assertIn(sha, self.text)

    def test_no_bucket_of_the_installers_own(self):
        for name, spec in self.template["Parameters"].items():
            if "Default" not in spec:
                self.assertNotIn("bucket", (name + spec.get("Description", "")).lower(), name)
        self.assertNotIn("../dist/", self.text)
        self.assertNotIn("Transform", self.template)
        bucket = self.resources["CodeBucket"]["Properties"]
        self.assertNotIn("BucketName", bucket, "a fixed name would collide between stacks and regions")
        self.assertEqual(bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"],
                         {"SSEAlgorithm": "AES256"})
        self.assertTrue(all(bucket["PublicAccessBlockConfiguration"].values()))
        self.assertEqual(len(bucket["PublicAccessBlockConfiguration"]), 4)
        self.assertNotIn("VersioningConfiguration", bucket)

    def test_every_parameter_stays_as_it_is_for_upgrades(self):
        for name, spec in self.source["Parameters"].items():
            self.assertEqual(self.template["Parameters"][name], spec, name)
        self.assertEqual(sorted(set(self.template["Parameters"]) - set(self.source["Parameters"])),
                         sorted(release.NEW_PARAMETERS))
        for name in release.NEW_PARAMETERS:
            self.assertIn("Default", self.template["Parameters"][name])
        # The secrets' custom resources are as in the source: an upgrade does not encrypt again.
        for name, resource in self.source["Resources"].items():
            if resource["Type"] == "Custom::KmsEncryption":
                self.assertEqual(self.resources[name], resource, name)
        grouped = [p for group in self.template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
                   for p in group["Parameters"]]
        for name in release.NEW_PARAMETERS:
            self.assertIn(name, grouped)

    def test_only_functions_code_and_the_lint_exception_change(self):
        changed = sorted(name for name, resource in self.source["Resources"].items() if self.resources[name] != resource)
        functions = sorted(name for name, resource in self.source["Resources"].items()
                           if resource["Type"] == "AWS::Lambda::Function")
        self.assertEqual(changed, functions)
        self.assertNotIn("cfn-lint", self.template["Metadata"])
        self.assertEqual(self.template["Outputs"]["ReleaseVersion"]["Value"], "0.1.0")

    def test_each_functions_code_is_in_code_bucket_for_its_architecture_after_code_copy(self):
        prefix = self.resources["CodeCopy"]["Properties"]["Prefix"]
        self.assertRegex(prefix, r"^0\.1\.0-[0-9a-f]{16}/$")
        seen = set()
        for name, resource in self.source["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            function = re.fullmatch(r"\.\./dist/([a-z0-9-]+)/\1\.zip", resource["Properties"]["Code"]).group(1)
            seen.add(function)
            new = self.resources[name]
            listed = lambda depends: [depends] if isinstance(depends, str) else list(depends or [])  # noqa: E731
            self.assertEqual(listed(new["DependsOn"]), ["CodeCopy"] + listed(resource.get("DependsOn")), name)
            self.assertEqual(new["Properties"]["Code"], {
                "S3Bucket": {"Ref": "CodeBucket"},
                "S3Key": {"Fn::Sub": f"{prefix}{function}-${{Architecture}}.zip"}}, name)
            self.assertEqual(new["Properties"]["CodeSigningConfigArn"], {"Fn::If": [
                "HasCodeSigningProfile", {"Fn::GetAtt": ["CodeSigningConfig", "CodeSigningConfigArn"]},
                {"Ref": "AWS::NoValue"}]}, name)
        self.assertEqual(sorted(seen), sorted(self.functions))

    def test_code_copy_is_inline_python_with_a_role_on_code_bucket_alone(self):
        copier = self.resources["CodeCopyLambda"]["Properties"]
        self.assertEqual((copier["Runtime"], copier["Handler"]), ("python3.12", "index.handler"))
        self.assertEqual(set(copier["Code"]), {"ZipFile"})
        with open(os.path.join(ROOT, "infrastructure", "code_copy.py"), encoding="utf-8") as f:
            self.assertEqual(copier["Code"]["ZipFile"].strip(), f.read().strip())
        self.assertNotIn("CodeSigningConfigArn", copier, "its code is in the template: nothing can sign it")
        statements = self.resources["CodeCopyRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        allowed = sorted((a, json.dumps(s["Resource"], sort_keys=True)) for s in statements
                         for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]))
        bucket, objects = {"Fn::GetAtt": ["CodeBucket", "Arn"]}, {"Fn::Sub": "${CodeBucket.Arn}/*"}
        logs = {"Fn::GetAtt": ["CodeCopyLogGroup", "Arn"]}
        self.assertEqual(allowed, sorted([
            ("s3:PutObject", json.dumps(objects)), ("s3:DeleteObject", json.dumps(objects)),
            ("s3:ListBucket", json.dumps(bucket)),
            ("logs:CreateLogStream", json.dumps(logs)), ("logs:PutLogEvents", json.dumps(logs))]))
        self.assertTrue(all(s["Effect"] == "Allow" for s in statements))
        custom = self.resources["CodeCopy"]["Properties"]
        self.assertEqual(custom["ServiceToken"], {"Fn::GetAtt": ["CodeCopyLambda", "Arn"]})
        self.assertGreater(custom["ServiceTimeout"], copier["Timeout"])
        self.assertEqual(custom["Architecture"], {"Ref": "Architecture"})
        self.assertEqual(custom["BaseUrl"], {"Ref": "ReleaseBaseUrl"})

    def test_release_base_url_defaults_to_this_versions_github_release(self):
        repository = release.repository()
        self.assertEqual(repository, "https://github.com/activity-aware-ids/activity-aware-ids-aws-rust")
        url = f"{repository}/releases/download/v0.1.0/"
        self.assertEqual(self.template["Parameters"]["ReleaseBaseUrl"]["Default"], url)
        self.assertEqual(self.resources["CodeCopy"]["Properties"]["ReleaseUrl"], url)
        self.assertEqual(self.resources["CodeCopy"]["Properties"]["ReleasesUrl"], f"{repository}/releases/download/")
        self.assertTrue(re.fullmatch(self.template["Parameters"]["ReleaseBaseUrl"]["AllowedPattern"], url))

    def test_code_signing_is_enforced_when_a_profile_is_given(self):
        config = self.resources["CodeSigningConfig"]
        self.assertEqual(config["Condition"], "HasCodeSigningProfile")
        self.assertEqual(config["Properties"]["CodeSigningPolicies"], {"UntrustedArtifactOnDeployment": "Enforce"})
        self.assertEqual(config["Properties"]["AllowedPublishers"],
                         {"SigningProfileVersionArns": [{"Ref": "CodeSigningProfileVersionArn"}]})
        self.assertEqual(self.template["Conditions"]["HasCodeSigningProfile"],
                         {"Fn::Not": [{"Fn::Equals": [{"Ref": "CodeSigningProfileVersionArn"}, ""]}]})
        pattern = self.template["Parameters"]["CodeSigningProfileVersionArn"]["AllowedPattern"]
        self.assertTrue(re.fullmatch(pattern, ""))
        self.assertTrue(re.fullmatch(pattern, "arn:aws:signer:eu-west-1:111122223333:/signing-profiles/ids_release/a1b2c3d4e5"))

    def test_a_new_build_gets_new_keys_and_a_missing_zip_stops_it(self):
        other = os.path.join(self.work, "other-zips")
        shutil.copytree(self.zips, other)
        name = release.zip_name(self.functions[0], "x86_64")
        with open(os.path.join(other, name), "ab") as f:
            f.write(b"changed")
        changed = release.installable_template(self.source_text, other, "0.1.0")
        prefix = self.resources["CodeCopy"]["Properties"]["Prefix"]
        self.assertNotIn(prefix, changed)
        os.remove(os.path.join(other, name))
        with self.assertRaisesRegex(release.ReleaseError, name):
            release.installable_template(self.source_text, other, "0.1.0")

    def test_creates_in_moto_in_several_regions_with_the_code_where_code_copy_puts_it(self):
        copier = CodeCopy.from_template(self.template)
        server = Server()
        self.addCleanup(server.close)
        for name, sha in self.zip_sha256().items():
            with open(os.path.join(self.zips, name), "rb") as f:
                server.files[f"/v0.1.0/{name}"] = f.read()
        from moto.cloudformation import cloudformation_backends
        from moto.cloudformation import models as cloudformation_models
        from moto.events import models as events_models

        # moto reads every template with PyYAML first, seconds for this one: JSON is read as JSON.
        read_template = cloudformation_models.Stack.parse_template

        def parse_template(template):
            try:
                return json.loads(template)
            except ValueError:
                return read_template(template)

        # moto's CloudFormation encodes an EventPattern that Fn::Sub made (a JSON string) once
        # more; EventBridge takes it as the JSON it is.
        original = events_models.EventPattern.load.__func__

        def load(cls, raw):
            try:
                decoded = json.loads(raw)
            except (TypeError, ValueError):
                decoded = None
            return original(cls, decoded if isinstance(decoded, str) else raw)

        with mock.patch.dict(os.environ, AWS_ENV), mock_aws(config={"lambda": {"use_docker": False}}), \
                mock.patch.object(events_models.EventPattern, "load", classmethod(load)), \
                mock.patch("moto.awslambda.models.LambdaFunction.invoke", lambda *args, **kwargs: None), \
                mock.patch("moto.settings.is_docker", lambda: False), \
                mock.patch.object(cloudformation_models.Stack, "parse_template", staticmethod(parse_template)), \
                warnings.catch_warnings():
            # What moto's CloudFormation does not make (subscriptions, filters, queue policies) is
            # the template test's to check.
            warnings.simplefilter("ignore")
            logging.getLogger("moto").setLevel(logging.CRITICAL)
            templates = boto3.client("s3", region_name="us-east-1")
            templates.create_bucket(Bucket="templates")
            # The same template as JSON, which moto reads many times faster than YAML.
            templates.put_object(Bucket="templates", Key="0.1.0/cloudformation.yaml", Body=json.dumps(self.template))
            for region, architecture in [("us-east-1", "arm64"), ("eu-west-3", "x86_64"), ("ap-northeast-3", "arm64")]:
                cloudformation = boto3.client("cloudformation", region_name=region)
                stack_id = cloudformation.create_stack(
                    StackName="Activity-Aware-IDS",
                    TemplateURL="https://templates.s3.amazonaws.com/0.1.0/cloudformation.yaml",
                    Parameters=[{"ParameterKey": "SlackWebhookURL", "ParameterValue": "https://hooks.slack.com/services/T0/B0/x"},
                                {"ParameterKey": "Architecture", "ParameterValue": architecture}],
                    Capabilities=["CAPABILITY_IAM"])["StackId"]
                resources = {r.get("LogicalResourceId"): r for r in
                             cloudformation.describe_stack_resources(StackName=stack_id)["StackResources"]}
                for name in ["CodeBucket", "CodeCopyLambda", "CodeCopy"] + [
                        n for n, r in self.resources.items() if r["Type"] == "AWS::Lambda::Function" and "Condition" not in r]:
                    self.assertTrue(name in resources, f"{name} was not created in {region}")
                self.assertFalse("CodeSigningConfig" in resources, "a code signing config without a profile")
                bucket = resources["CodeBucket"]["PhysicalResourceId"]
                # moto runs no custom resource: CodeCopy's code runs here, with the properties
                # the stack gives it, then every custom resource is answered as done.
                properties = copier.properties(self.template, bucket=bucket, architecture=architecture,
                                               base_url=f"{server.url}/v0.1.0/")
                answer = copier.run(server, "Create", properties, region=region)
                self.assertEqual(answer["Status"], "SUCCESS", answer)
                stack = cloudformation_backends["123456789012"][region].get_stack(stack_id)
                for custom in stack.custom_resources.values():
                    custom.set_data({"CipherText": "AQICAHg="})
                stack.verify_readiness()
                self.assertEqual(cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"],
                                 "CREATE_COMPLETE", region)
                s3 = boto3.client("s3", region_name=region)
                self.assertEqual(s3.get_bucket_location(Bucket=bucket)["LocationConstraint"],
                                 None if region == "us-east-1" else region)
                for name, resource in self.resources.items():
                    if resource["Type"] != "AWS::Lambda::Function" or name == "CodeCopyLambda":
                        continue
                    key = resource["Properties"]["Code"]["S3Key"]["Fn::Sub"].replace("${Architecture}", architecture)
                    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    self.assertEqual(hashlib.sha256(body).hexdigest(), self.zip_sha256()[key.split("/")[-1]], key)

    # --- the pieces ./dev.sh release runs ---

    def test_a_zip_is_the_same_bytes_whenever_it_is_made(self):
        binary = os.path.join(self.work, "same")
        with open(binary, "wb") as f:
            f.write(os.urandom(100000))
        first, second = os.path.join(self.work, "first.zip"), os.path.join(self.work, "second.zip")
        os.utime(binary, (1_000_000_000, 1_000_000_000))
        os.chmod(binary, 0o600)
        subprocess.run([sys.executable, os.path.join(ROOT, "infrastructure", "release.py"), "zip",
                        "--binary", binary, "--out", first], check=True)
        os.utime(binary, (1_700_000_000, 1_700_000_000))
        os.chmod(binary, 0o755)
        subprocess.run([sys.executable, os.path.join(ROOT, "infrastructure", "release.py"), "zip",
                        "--binary", binary, "--out", second], check=True)
        with open(first, "rb") as a, open(second, "rb") as b:
            self.assertEqual(a.read(), b.read())
        with zipfile.ZipFile(first) as archive:
            (info,) = archive.infolist()
            self.assertEqual(info.filename, "bootstrap")
            self.assertEqual(info.date_time, (1980, 1, 1, 0, 0, 0))
            self.assertEqual(info.external_attr >> 16, 0o100755)
            with open(binary, "rb") as f:
                self.assertEqual(archive.read("bootstrap"), f.read())

    def test_sums_are_what_sha256sum_checks(self):
        directory = os.path.join(self.work, "sums")
        os.makedirs(directory)
        for name, body in [("b.zip", b"bee"), ("a.yaml", b"a: 1\n"), ("QUICK-INSTALL.md", b"# links\n")]:
            with open(os.path.join(directory, name), "wb") as f:
                f.write(body)
        subprocess.run([sys.executable, os.path.join(ROOT, "infrastructure", "release.py"), "sums", directory],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(directory, "SHA256SUMS"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        self.assertEqual([line.split("  ")[1] for line in lines], ["QUICK-INSTALL.md", "a.yaml", "b.zip"])
        self.assertEqual(lines[2], hashlib.sha256(b"bee").hexdigest() + "  b.zip")
        if shutil.which("sha256sum"):
            checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=directory, capture_output=True, text=True)
            self.assertEqual(checked.returncode, 0, checked.stdout + checked.stderr)

    def test_quick_install_links_every_default_region(self):
        url = "https://activity-aware-ids-templates.s3.amazonaws.com/0.1.0/cloudformation.yaml"
        links, markdown = release.quick_install(url, "0.1.0")
        self.assertEqual([region for region, _ in links], [
            "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-west-1", "eu-west-2",
            "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2",
            "ap-northeast-3", "ap-southeast-1", "ap-southeast-2"])
        for region, link in links:
            base, fragment = link.split("#", 1)
            self.assertEqual(base, f"https://console.aws.amazon.com/cloudformation/home?region={region}")
            path, query = fragment.split("?", 1)
            self.assertEqual(path, "/stacks/quickcreate")
            self.assertEqual(urllib.parse.parse_qs(query)["templateURL"], [url])
            self.assertIn(f"| {region} | [Launch stack]({link}) |", markdown)

    def test_quick_install_names_the_member_template_when_the_release_has_one(self):
        directory = os.path.join(self.work, "with-member")
        os.makedirs(directory)
        url = "https://templates.example/0.1.0/cloudformation.yaml"
        command = [sys.executable, os.path.join(ROOT, "infrastructure", "release.py"), "quick-install",
                   "--version", "0.1.0", "--template-url", url, "--out", os.path.join(directory, "QUICK-INSTALL.md")]
        printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        self.assertEqual(len(printed.splitlines()), 17)
        with open(os.path.join(directory, "member.yaml"), "w", encoding="utf-8") as f:
            f.write("Resources: {}\n")
        printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        self.assertIn("https://templates.example/0.1.0/member.yaml", printed)
        with open(os.path.join(directory, "QUICK-INSTALL.md"), encoding="utf-8") as f:
            self.assertIn("`MemberTemplateURL` https://templates.example/0.1.0/member.yaml", f.read())

    def test_version_and_functions_are_the_ones_dev_sh_uses(self):
        self.assertRegex(release.version(), r"^[0-9]+\.[0-9]+\.[0-9]+")
        listed = subprocess.run([os.path.join(ROOT, "dev.sh"), "functions"], capture_output=True, text=True, check=True)
        self.assertEqual(listed.stdout.split(), self.functions)
        with open(os.path.join(ROOT, "dev.sh"), encoding="utf-8") as f:
            dev_sh = f.read()
        self.assertIn("    release) cmd_release", dev_sh)
        self.assertIn("--require-hashes", dev_sh)

    def test_dev_sh_passes_shellcheck(self):
        output, _ = self.shellcheck.communicate(timeout=120)
        self.assertEqual(self.shellcheck.returncode, 0, output)

    def test_the_release_workflow_builds_on_a_tag_with_actions_pinned_by_commit(self):
        with open(os.path.join(ROOT, ".github", "workflows", "release.yml"), encoding="utf-8") as f:
            text = f.read()
        workflow = yaml.safe_load(text)
        triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare on as true
        self.assertEqual(triggers, {"push": {"tags": ["v*"]}})
        uses = re.findall(r"uses: ([^\s]+)", text)
        self.assertTrue(uses)
        for action in uses:
            self.assertRegex(action, r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
        for needed in ["actions/attest-build-provenance@", "aws-actions/configure-aws-credentials@",
                       "./dev.sh release", "release/toolchain", "sha256sum -c SHA256SUMS", "id-token: write"]:
            self.assertIn(needed, text)
        self.assertNotIn("secrets.AWS", text, "AWS through OIDC only, no stored keys")

    def test_every_python_package_is_pinned_with_its_hash(self):
        with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
            requirements = f.read()
        entries = re.split(r"\n(?=[A-Za-z0-9])", requirements.split("\n\n", 1)[-1].strip())
        pinned = {}
        for entry in entries:
            if entry.startswith("#"):
                continue
            name = re.match(r"([A-Za-z0-9_.-]+)==([^ \\]+)", entry)
            self.assertIsNotNone(name, entry)
            self.assertRegex(entry, r"--hash=sha256:[0-9a-f]{64}", name.group(1))
            pinned[name.group(1).lower().replace("_", "-")] = name.group(2)
        with open(os.path.join(ROOT, "requirements.in"), encoding="utf-8") as f:
            for line in f:
                top = re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", line)
                if top:
                    self.assertEqual(pinned.get(top.group(1).lower()), top.group(3), top.group(1))
        self.assertIn("ziglang", pinned)


class CodeCopy:
    """CodeCopy's code as the template holds it, run in-process (under moto for its S3)."""

    def __init__(self, namespace):
        self.namespace = namespace

    @classmethod
    def from_template(cls, template):
        code = template["Resources"]["CodeCopyLambda"]["Properties"]["Code"]["ZipFile"]
        namespace = {"__name__": "index"}
        exec(compile(code, "index.py", "exec"), namespace)
        return cls(namespace)

    @staticmethod
    def properties(template, bucket, architecture, base_url, **overrides):
        props = json.loads(json.dumps(template["Resources"]["CodeCopy"]["Properties"]))
        props.update({"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:CodeCopy", "Bucket": bucket,
                      "Architecture": architecture, "BaseUrl": base_url, "ServiceTimeout": "900"})
        props.update(overrides)
        return props

    def run(self, server, kind, properties, physical=None, region="us-east-1"):
        event = {"RequestType": kind, "ResponseURL": f"{server.url}/response/{len(server.answers)}",
                 "StackId": f"arn:aws:cloudformation:{region}:123456789012:stack/Activity-Aware-IDS/1",
                 "RequestId": f"request-{len(server.answers)}", "LogicalResourceId": "CodeCopy",
                 "ResourceType": "Custom::ReleaseCode", "ResourceProperties": properties}
        if physical:
            event["PhysicalResourceId"] = physical
        answers = len(server.answers)
        with mock.patch.dict(os.environ, {"AWS_DEFAULT_REGION": region}):
            self.namespace["handler"](event, None)
        self.namespace_answers = server.answers[answers:]
        assert len(server.answers) == answers + 1, "the request was not answered exactly once"
        path, answer = server.answers[-1]
        assert path == urllib.parse.urlparse(event["ResponseURL"]).path
        assert (answer["StackId"], answer["RequestId"], answer["LogicalResourceId"]) == (
            event["StackId"], event["RequestId"], "CodeCopy")
        return answer


class CodeCopyRequests(unittest.TestCase):
    """CodeCopy's code, taken from an installable template, against moto's S3 and a local HTTP
    server playing the release and CloudFormation's ResponseURL."""

    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="code-copy-test-")
        zips = os.path.join(cls.work, "zips")
        os.makedirs(zips)
        # Two functions are enough: the template's own list is the other test class's.
        source = ("AWSTemplateFormatVersion: \"2010-09-09\"\nParameters:\n  Architecture:\n    Type: String\n"
                  "    Default: arm64\n  LogRetentionInDays:\n    Type: Number\n    Default: 90\n"
                  "Conditions:\n  Always: !Equals [a, a]\nResources:\n  StackKey:\n    Type: AWS::KMS::Key\n"
                  "    Properties:\n      KeyPolicy: {}\n")
        for function in ["source-one", "destination-two"]:
            source += (f"  {camel(function)}Lambda:\n    Type: AWS::Lambda::Function\n    Properties:\n"
                       f"      Runtime: provided.al2023\n      Handler: bootstrap\n      Role: arn:aws:iam::1:role/r\n"
                       f"      Code: ../dist/{function}/{function}.zip\n")
            for architecture in release.ARCHITECTURES:
                binary = os.path.join(cls.work, "bin")
                with open(binary, "wb") as f:
                    f.write(f"{function} {architecture}".encode() * 1000)
                release.deterministic_zip(binary, os.path.join(zips, release.zip_name(function, architecture)))
        source += "Outputs:\n  Nothing:\n    Value: x\n"
        cls.template = json.loads(json.dumps(cfn_yaml.loads(release.installable_template(source, zips, "0.2.0"))))
        cls.copier = CodeCopy.from_template(cls.template)
        cls.zips = {}
        for name in os.listdir(zips):
            with open(os.path.join(zips, name), "rb") as f:
                cls.zips[name] = f.read()

        # One moto for all the requests, and a bucket of its own for each test.
        cls.environment = mock.patch.dict(os.environ, AWS_ENV)
        cls.environment.start()
        cls.aws = mock_aws()
        cls.aws.start()
        cls.s3 = boto3.client("s3", region_name="eu-west-3")
        cls.buckets = 0

    @classmethod
    def tearDownClass(cls):
        cls.aws.stop()
        cls.environment.stop()
        shutil.rmtree(cls.work, ignore_errors=True)

    def setUp(self):
        self.server = Server()
        self.addCleanup(self.server.close)
        for name, body in self.zips.items():
            self.server.files[f"/v0.2.0/{name}"] = body
        type(self).buckets += 1
        self.bucket = f"code-{self.buckets}"
        self.s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})

    def properties(self, architecture="arm64", **overrides):
        return CodeCopy.properties(self.template, bucket=self.bucket, architecture=architecture,
                                   base_url=f"{self.server.url}/v0.2.0/", **overrides)

    def run_request(self, kind, properties, physical=None):
        return self.copier.run(self.server, kind, properties, physical=physical, region="eu-west-3")

    def stored(self):
        return {item["Key"]: self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                for item in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])}

    def test_good_zips_are_copied_for_the_stacks_architecture(self):
        properties = self.properties()
        answer = self.run_request("Create", properties)
        self.assertEqual(answer["Status"], "SUCCESS", answer)
        prefix = properties["Prefix"]
        self.assertEqual(answer["PhysicalResourceId"], f"s3://{self.bucket}/{prefix}*-arm64.zip")
        self.assertEqual(answer["Data"], {"Prefix": prefix})
        self.assertEqual(self.stored(), {prefix + name: body for name, body in self.zips.items() if name.endswith("-arm64.zip")})

    def test_a_tampered_zip_is_refused_naming_it_and_both_hashes_and_nothing_is_left(self):
        name = "destination-two-arm64.zip"
        tampered = bytearray(self.zips[name])
        tampered[len(tampered) // 2] ^= 0xFF
        self.server.files[f"/v0.2.0/{name}"] = bytes(tampered)
        answer = self.run_request("Create", self.properties())
        self.assertEqual(answer["Status"], "FAILED")
        self.assertIn(name, answer["Reason"])
        self.assertIn(hashlib.sha256(self.zips[name]).hexdigest(), answer["Reason"])
        self.assertIn(hashlib.sha256(bytes(tampered)).hexdigest(), answer["Reason"])
        self.assertIn("expected", answer["Reason"])
        self.assertEqual(self.stored(), {})

    def test_a_missing_zip_fails_naming_it_and_nothing_is_left(self):
        del self.server.files["/v0.2.0/source-one-x86_64.zip"]
        answer = self.run_request("Create", self.properties("x86_64"))
        self.assertEqual(answer["Status"], "FAILED")
        self.assertIn("source-one-x86_64.zip", answer["Reason"])
        self.assertIn("404", answer["Reason"])
        self.assertEqual(self.stored(), {})

    def test_delete_empties_the_bucket_and_answers_when_it_is_gone(self):
        properties = self.properties()
        created = self.run_request("Create", properties)
        self.assertEqual(len(self.stored()), 2)
        answer = self.run_request("Delete", properties, physical=created["PhysicalResourceId"])
        self.assertEqual((answer["Status"], answer["PhysicalResourceId"]), ("SUCCESS", created["PhysicalResourceId"]))
        self.assertEqual(self.stored(), {})
        self.s3.delete_bucket(Bucket=self.bucket)
        answer = self.run_request("Delete", properties, physical=created["PhysicalResourceId"])
        self.assertEqual(answer["Status"], "SUCCESS", answer)

    def test_an_upgrade_copies_the_new_release_and_the_cleanup_removes_only_the_old(self):
        old = self.properties(Prefix="0.1.0-0000000000000000/")
        created = self.run_request("Create", old)
        new = self.properties()
        updated = self.run_request("Update", new, physical=created["PhysicalResourceId"])
        self.assertEqual(updated["Status"], "SUCCESS", updated)
        self.assertNotEqual(updated["PhysicalResourceId"], created["PhysicalResourceId"])
        self.assertEqual(len(self.stored()), 4)
        # After the update succeeded, CloudFormation deletes the old resource, with its properties.
        cleaned = self.run_request("Delete", old, physical=created["PhysicalResourceId"])
        self.assertEqual(cleaned["Status"], "SUCCESS")
        self.assertEqual(sorted(self.stored()), sorted(new["Prefix"] + n for n in self.zips if n.endswith("-arm64.zip")))

    def test_a_failed_update_keeps_the_old_physical_id_and_what_was_there(self):
        created = self.run_request("Create", self.properties())
        before = self.stored()
        self.server.files.clear()
        answer = self.run_request("Update", self.properties("x86_64"), physical=created["PhysicalResourceId"])
        self.assertEqual(answer["Status"], "FAILED")
        self.assertEqual(answer["PhysicalResourceId"], created["PhysicalResourceId"])
        self.assertEqual(self.stored(), before)

    def test_a_base_url_of_another_release_kept_by_an_upgrade_means_this_release(self):
        self.server.files = {path.replace("/v0.2.0/", "/releases/v0.2.0/"): body for path, body in self.server.files.items()}
        answer = self.run_request("Create", self.properties(
            BaseUrl=f"{self.server.url}/releases/v0.1.0/", ReleaseUrl=f"{self.server.url}/releases/v0.2.0/",
            ReleasesUrl=f"{self.server.url}/releases/"))
        self.assertEqual(answer["Status"], "SUCCESS", answer)
        # A mirror of the user's own is used as given.
        answer = self.run_request("Create", self.properties(
            BaseUrl=f"{self.server.url}/mirror/", ReleaseUrl=f"{self.server.url}/releases/v0.2.0/",
            ReleasesUrl=f"{self.server.url}/releases/"))
        self.assertEqual(answer["Status"], "FAILED")
        self.assertIn("/mirror/", answer["Reason"])

    def test_an_unknown_request_or_missing_properties_are_answered_failed(self):
        answer = self.run_request("Rename", self.properties())
        self.assertEqual(answer["Status"], "FAILED")
        self.assertIn("Rename", answer["Reason"])
        properties = self.properties()
        del properties["Files"]
        answer = self.run_request("Create", properties)
        self.assertEqual(answer["Status"], "FAILED")
        self.assertIn("lack 'Files'", answer["Reason"])
        self.assertEqual(self.stored(), {})


if __name__ == "__main__":
    unittest.main()

# The installable template's CodeCopy custom resource (inlined there by infrastructure/release.py):
# copies the release's function zips for the stack's architecture into the stack's own bucket,
# CodeBucket, each checked against the SHA-256 the template holds, so that the stack installs in
# any region with nothing but its template. Python's standard library and boto3 only, both in
# Lambda's Python runtime: it runs before any of the stack's own code exists.
#
# Its properties (ResourceProperties) say everything it does, so that whichever release's copy
# of this code runs a request (a rollback, or the cleanup after an upgrade, runs the newer code
# with the older properties) does what the properties' release needs:
#   Bucket        CodeBucket
#   Prefix        the release's key prefix ("<version>-<digest>/"), new for every release
#   Architecture  arm64 or x86_64: the zips named <function>-<Architecture>.zip are copied
#   Files         [{Name, Sha256}] for every zip of the release
#   BaseUrl       where the zips are downloaded from (the ReleaseBaseUrl parameter)
#   ReleaseUrl    this release's own download URL on GitHub (ReleaseBaseUrl's default)
#   ReleasesUrl   where the project's releases are (BaseUrl under it, of another release, is
#                 the default the console kept from the release installed before: ReleaseUrl
#                 is used instead)
# Create and Update copy (all zips are downloaded and checked before any is written: a
# mismatch or a failed download writes nothing and answers FAILED, naming the zip, the expected
# and the actual SHA-256). Delete removes the zips of its prefix and architecture, which empties
# the bucket when the stack is deleted; after an upgrade it removes the previous release's. The
# physical ID names the prefix and architecture: a new release or architecture is a new ID, so
# CloudFormation deletes the old zips only once the update has succeeded (a rollback still
# finds them).
import hashlib
import json
import logging
import time
import urllib.error
import urllib.request

import boto3

LOG = logging.getLogger()
LOG.setLevel(logging.INFO)
# Lambda takes zips of up to 50 MB.
MAX_ZIP_BYTES = 50 * 1024 * 1024
TRIES = 3


class Refused(Exception):
    pass


def handler(event, context):
    kind = event.get("RequestType")
    props = event.get("ResourceProperties") or {}
    physical = event.get("PhysicalResourceId") or "%s-not-created" % event.get("LogicalResourceId", "CodeCopy")
    status, reason, data = "SUCCESS", "", {}
    try:
        if kind in ("Create", "Update"):
            new_physical = physical_id(props)
            if kind == "Create":
                physical = new_physical
            copied = copy(boto3.client("s3"), props, context)
            physical = new_physical
            data = {"Prefix": props["Prefix"]}
            reason = "copied %s" % ", ".join(copied)
        elif kind == "Delete":
            removed = remove(boto3.client("s3"), props)
            reason = "removed %d zip(s)" % removed
        else:
            raise Refused("not a request this resource understands (RequestType %r)" % kind)
    except KeyError as error:
        status, reason = "FAILED", "the resource's properties lack %s" % error
    except Exception as error:
        status, reason = "FAILED", str(error) or repr(error)
    LOG.info(json.dumps({"request": kind, "status": status, "reason": reason, "physical": physical}))
    answer(event, status, reason, physical, data)
    return {"Status": status, "Reason": reason, "PhysicalResourceId": physical}


def physical_id(props):
    return "s3://%s/%s*-%s.zip" % (props["Bucket"], props["Prefix"], props["Architecture"])


def base_url(props):
    base, own, releases = props.get("BaseUrl") or props["ReleaseUrl"], props["ReleaseUrl"], props.get("ReleasesUrl")
    if releases and base != own and base.startswith(releases):
        base = own
    if not base.startswith(("https://", "http://")):
        raise Refused("the zips can only be downloaded over https or http, not from %s" % base)
    return base if base.endswith("/") else base + "/"


def wanted(props):
    suffix = "-%s.zip" % props["Architecture"]
    files = [(f["Name"], f["Sha256"].lower()) for f in props["Files"] if f["Name"].endswith(suffix)]
    if not files:
        raise Refused("the release has no zip for the architecture %s" % props["Architecture"])
    return files


def copy(s3, props, context):
    bucket, prefix, base = props["Bucket"], props["Prefix"], base_url(props)
    fetched = []
    for name, expected in wanted(props):
        if context is not None and context.get_remaining_time_in_millis() < 60000:
            raise Refused("out of time before downloading %s; nothing was installed" % name)
        body = download(base + name, name)
        actual = hashlib.sha256(body).hexdigest()
        if actual != expected:
            raise Refused("%s from %s is not the release's zip: expected SHA-256 %s, got %s; nothing was installed"
                          % (name, base + name, expected, actual))
        fetched.append((name, body))
    before = set(keys(s3, bucket, prefix))
    written = []
    try:
        for name, body in fetched:
            s3.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType="application/zip")
            written.append(prefix + name)
    except Exception:
        for key in written:
            if key not in before:
                s3.delete_object(Bucket=bucket, Key=key)
        raise
    return [name for name, _ in fetched]


def download(url, name):
    last = None
    for attempt in range(TRIES):
        if attempt:
            time.sleep(2 * attempt)
        try:
            request = urllib.request.Request(url, headers={"User-Agent": "activity-aware-ids-code-copy"})
            with urllib.request.urlopen(request, timeout=60) as response:
                body = response.read(MAX_ZIP_BYTES + 1)
            if len(body) > MAX_ZIP_BYTES:
                raise Refused("%s from %s is larger than Lambda takes (%d bytes); nothing was installed" % (name, url, MAX_ZIP_BYTES))
            return body
        except urllib.error.HTTPError as error:
            last = "HTTP %s %s" % (error.code, error.reason)
            if error.code < 500 and error.code != 429:
                break
        except (urllib.error.URLError, OSError) as error:
            last = str(getattr(error, "reason", error))
    raise Refused("could not download %s from %s (%s); nothing was installed" % (name, url, last))


def keys(s3, bucket, prefix):
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(item["Key"] for item in page.get("Contents", []))
    return found


def remove(s3, props):
    if not all(props.get(name) for name in ("Bucket", "Prefix", "Architecture")):
        return 0
    bucket, prefix, suffix = props["Bucket"], props["Prefix"], "-%s.zip" % props["Architecture"]
    try:
        doomed = [key for key in keys(s3, bucket, prefix) if key.endswith(suffix)]
    except s3.exceptions.NoSuchBucket:
        return 0
    for start in range(0, len(doomed), 1000):
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in doomed[start:start + 1000]], "Quiet": True})
    return len(doomed)


def answer(event, status, reason, physical, data):
    body = json.dumps({
        "Status": status,
        "Reason": (reason or status)[:3000],
        "PhysicalResourceId": physical,
        "StackId": event.get("StackId"),
        "RequestId": event.get("RequestId"),
        "LogicalResourceId": event.get("LogicalResourceId"),
        "Data": data,
    }).encode()
    for attempt in range(TRIES):
        try:
            request = urllib.request.Request(event["ResponseURL"], data=body, method="PUT",
                                             headers={"Content-Type": "", "Content-Length": str(len(body))})
            with urllib.request.urlopen(request, timeout=30):
                return
        except (urllib.error.URLError, OSError) as error:
            LOG.warning(json.dumps({"answer": "not delivered", "try": attempt + 1, "error": str(error)}))
            time.sleep(2 * (attempt + 1))
    raise RuntimeError("could not deliver the answer to the ResponseURL")

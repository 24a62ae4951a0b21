"""Upload a compiled ovr pipeline to the KFP API: a new pipeline, or a new version of an existing one.

Run by the chart's post-install/post-upgrade Job (templates/kfp/upload-job.yaml). A version that
already exists (a retried Job) counts as success, so reruns are idempotent.
"""

from __future__ import annotations

import argparse
import os
import sys


def upload(host: str, name: str, version: str, package: str, token: str | None) -> str:
    """Upload ``package`` as pipeline ``name`` (first time) or as version ``version``; return a summary."""
    import kfp
    from kfp_server_api.exceptions import ApiException

    client = kfp.Client(host=host, existing_token=token)
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        created = client.upload_pipeline(package, pipeline_name=name)
        return f"created pipeline {name} ({created.pipeline_id})"
    try:
        client.upload_pipeline_version(package, pipeline_version_name=version, pipeline_id=pipeline_id)
    except ApiException as exc:
        if exc.status != 409:
            raise
        return f"pipeline {name} already has version {version}"
    return f"uploaded version {version} of pipeline {name} ({pipeline_id})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True, help="KFP API base URL")
    parser.add_argument("--name", required=True, help="pipeline name")
    parser.add_argument("--version", required=True, help="version name used when the pipeline exists")
    parser.add_argument("--package", required=True, help="compiled pipeline YAML")
    args = parser.parse_args(argv)
    if not os.path.getsize(args.package):
        print(f"{args.package} is empty: nothing to upload", file=sys.stderr)
        return 2
    print(upload(args.host, args.name, args.version, args.package, os.environ.get("KFP_TOKEN") or None))
    return 0


if __name__ == "__main__":
    sys.exit(main())

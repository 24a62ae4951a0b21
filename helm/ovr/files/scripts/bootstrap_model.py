"""Copy a starting model from the Hugging Face hub into the S3 store, once.

Run by the chart's model bootstrap Job (templates/rollout/model-bootstrap.yaml) in the ovr image.
The rollout replicas' init container waits for the marker file this script writes LAST
(``<dest>/ovr-model.json``), so a replica never loads a half-uploaded model and never crash-loops
while the download runs. A rerun (a retried or re-created Job) finds the marker of the same hub id
and revision and exits at once. The hub is read through ``huggingface_hub.snapshot_download``, so
``HF_TOKEN``, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` (a mirrored cache) work as usual.
"""

from __future__ import annotations

import argparse
import fnmatch
import io
import json
import os
import sys
import time
from pathlib import Path

MARKER = "ovr-model.json"
#: what vLLM and transformers read from a model folder (weights, configs, tokenizer, processor, chat template)
PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja", "*.py"]


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix without slashes at the ends)."""
    if not uri.startswith("s3://") or "/" not in uri[5:].strip("/"):
        raise ValueError(f"--dest must be s3://bucket/prefix, got {uri!r}")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.strip("/")


def s3_client(endpoint: str, secure: bool):
    from minio import Minio

    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise SystemExit("AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set (the chart's S3 Secret)")
    return Minio(endpoint, access_key=key, secret_key=secret, secure=secure, region=os.environ.get("S3_REGION") or None)


def wait_for_bucket(client, bucket: str, timeout_s: float, poll_s: float = 5.0) -> None:
    """Wait until the S3 endpoint answers (the bundled MinIO may still be starting); create the bucket."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
            return
        except Exception as err:  # connection refused, 503 while starting, ...
            if time.monotonic() > deadline:
                raise SystemExit(f"S3 endpoint not usable after {timeout_s:.0f} s: {err}") from err
            print(f"waiting for the S3 endpoint ({type(err).__name__}: {str(err)[:120]})", flush=True)
            time.sleep(poll_s)


def read_marker(client, bucket: str, prefix: str) -> dict | None:
    try:
        response = client.get_object(bucket, f"{prefix}/{MARKER}")
    except Exception:
        return None
    try:
        return json.loads(response.read())
    finally:
        response.close()
        response.release_conn()


def upload(client, bucket: str, prefix: str, folder: Path) -> list[str]:
    """Every model file of ``folder`` (:data:`PATTERNS`; a cached snapshot may hold more) under
    ``prefix``, with progress on stdout; the relative names."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.name != MARKER and any(fnmatch.fnmatch(p.name, pat) for pat in PATTERNS)
    )
    total = sum(p.stat().st_size for p in files)
    done = 0
    for i, path in enumerate(files, 1):
        rel = path.relative_to(folder).as_posix()
        client.fput_object(bucket, f"{prefix}/{rel}", str(path))
        done += path.stat().st_size
        print(f"[{i}/{len(files)}] {rel} ({done / 2**30:.2f} of {total / 2**30:.2f} GiB)", flush=True)
    return [p.relative_to(folder).as_posix() for p in files]


def bootstrap(repo_id: str, revision: str, dest: str, endpoint: str, secure: bool, wait_s: float) -> str:
    """Copy ``repo_id@revision`` to ``dest`` unless its marker says it is there; a one-line summary."""
    from huggingface_hub import snapshot_download

    bucket, prefix = split_uri(dest)
    client = s3_client(endpoint, secure)
    wait_for_bucket(client, bucket, wait_s)
    marker = read_marker(client, bucket, prefix)
    if marker and marker.get("repo_id") == repo_id and marker.get("revision") == revision:
        return f"{dest} already holds {repo_id}@{revision} ({len(marker.get('files', []))} files)"
    print(f"downloading {repo_id}@{revision}", flush=True)
    folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=PATTERNS))
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{repo_id}@{revision} has no config.json: not a model folder")
    files = upload(client, bucket, prefix, folder)
    body = json.dumps({"repo_id": repo_id, "revision": revision, "commit": folder.name, "files": files}).encode()
    client.put_object(bucket, f"{prefix}/{MARKER}", io.BytesIO(body), len(body), content_type="application/json")
    return f"copied {repo_id}@{revision} to {dest} ({len(files)} files)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo-id", required=True, help="hub id, e.g. Qwen/Qwen2.5-VL-7B-Instruct")
    parser.add_argument("--revision", default="main", help="branch, tag or commit")
    parser.add_argument("--dest", required=True, help="s3://bucket/prefix the replicas read")
    parser.add_argument("--endpoint", required=True, help="S3 host:port")
    parser.add_argument("--secure", action="store_true", help="HTTPS to the S3 endpoint")
    parser.add_argument("--wait-s", type=float, default=600.0, help="how long to wait for the S3 endpoint")
    args = parser.parse_args(argv)
    print(bootstrap(args.repo_id, args.revision, args.dest, args.endpoint, args.secure, args.wait_s), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The store against a real S3-protocol server process and against a local folder."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from ovr.config import StoreConfig
from ovr.store import MANIFEST, Store, StoreError, step_prefix


def _ckpt(dir_, payload: bytes = b"weights"):
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / "model.safetensors").write_bytes(payload)
    (dir_ / "sub").mkdir(exist_ok=True)
    (dir_ / "sub" / "state.json").write_text('{"step": 1}')
    return dir_


def test_s3_multipart_roundtrip_50mb_with_hash_check(s3_store_cfg, tmp_path):
    store = Store.from_config(s3_store_cfg.model_copy(update={"part_size_mb": 8}))
    big = tmp_path / "src" / "big.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(50 * 1024 * 1024))
    manifest = store.commit("datasets/big", big.parent, run="r", kind="dataset")
    assert manifest.files[0].size == 50 * 1024 * 1024
    out = store.download("datasets/big", tmp_path / "dst")
    assert hashlib.sha256((out / "big.bin").read_bytes()).hexdigest() == manifest.files[0].sha256


def test_s3_hash_mismatch_is_detected(s3_store_cfg, tmp_path):
    store = Store.from_config(s3_store_cfg)
    store.commit("datasets/x", _ckpt(tmp_path / "c"), run="r", kind="dataset")
    store.put_bytes("datasets/x/model.safetensors", b"tampered")
    with pytest.raises(StoreError, match="hash mismatch"):
        store.download("datasets/x", tmp_path / "d")


@pytest.mark.parametrize("backend", ["s3", "local"])
def test_commit_interrupted_before_manifest_is_invisible(backend, s3_store_cfg, tmp_path, monkeypatch):
    cfg = s3_store_cfg if backend == "s3" else StoreConfig(uri=str(tmp_path / "store"))
    store = Store.from_config(cfg)
    store.commit_checkpoint("run1", 10, _ckpt(tmp_path / "c10", b"ten"))

    real_put = store.put_bytes

    def crash_on_manifest(key, data):
        if key.endswith(MANIFEST):
            raise KeyboardInterrupt("killed before the manifest")
        real_put(key, data)

    monkeypatch.setattr(store, "put_bytes", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        store.commit_checkpoint("run1", 20, _ckpt(tmp_path / "c20", b"twenty"))
    monkeypatch.undo()
    # the files of step 20 are there, but without a manifest the checkpoint does not exist
    assert store.exists(step_prefix("run1", 20) + "/model.safetensors")
    assert store.latest("run1").step == 10
    assert [m.step for m in store.checkpoints("run1")] == [10]
    with pytest.raises(StoreError, match="no manifest"):
        store.download_checkpoint("run1", 20, tmp_path / "x")
    store.commit_checkpoint("run1", 30, _ckpt(tmp_path / "c30", b"thirty"))
    latest = store.latest("run1")
    assert latest.step == 30
    got = store.download_checkpoint("run1", latest.step, tmp_path / "got")
    assert (got / "model.safetensors").read_bytes() == b"thirty"
    assert (got / "sub" / "state.json").read_text() == '{"step": 1}'


def test_unreachable_endpoint_fails_clearly_after_bounded_retries(monkeypatch):
    monkeypatch.setenv("OVR_S3_ACCESS_KEY", "a")
    monkeypatch.setenv("OVR_S3_SECRET_KEY", "b")
    from ovr.serving import free_port

    cfg = StoreConfig(uri="s3://bucket", endpoint=f"127.0.0.1:{free_port()}", retries=3, backoff_s=0.05)
    t0 = time.monotonic()
    with pytest.raises(StoreError, match=r"unreachable after 4 attempts"):
        Store.from_config(cfg)
    # 3 backoffs: 0.05 + 0.1 + 0.2 s; bounded, not hanging
    assert time.monotonic() - t0 < 30


def test_credentials_from_secret_folder_and_never_in_errors(s3_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OVR_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("OVR_S3_SECRET_KEY", raising=False)
    (tmp_path / "access_key").write_text("folder-access\n")
    (tmp_path / "secret_key").write_text("very-secret-value\n")
    cfg = StoreConfig(uri="s3://creds-bucket", endpoint=f"127.0.0.1:{s3_server.port}", credentials_file=str(tmp_path))
    store = Store.from_config(cfg)
    store.put_bytes("a/b.txt", b"hello")
    assert store.get_bytes("a/b.txt") == b"hello"
    with pytest.raises(StoreError) as err:
        store.get_bytes("missing/key")
    assert "very-secret-value" not in str(err.value) and "no such object" in str(err.value)
    assert "very-secret-value" not in repr(store)


def test_local_store_rejects_keys_outside_root(tmp_path):
    store = Store.from_config(StoreConfig(uri=str(tmp_path / "s")))
    with pytest.raises(StoreError, match="escapes"):
        store.put_bytes("../outside.txt", b"x")
    assert not (tmp_path / "outside.txt").exists()

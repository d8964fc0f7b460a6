"""A batchId is held by one run: claim_batch_id's conditional write, on SeaweedFS (what every local
deployment stores in) and on moto's S3 (the unit-test double of AWS's)."""

from __future__ import annotations

import json
import threading

import boto3
import pytest
from moto import mock_aws

from smgt.batch import CLAIM_NAME, batch_prefix, claim_batch_id
from smgt.config import BatchConfigError
from smgt.manifests import Storage
from smgt.settings import Settings

SETTINGS = Settings(processing_bucket="claims-bucket")


@pytest.fixture
def seaweedfs(tmp_path_factory):
    from s3_store import seaweedfs_store

    with seaweedfs_store(tmp_path_factory.mktemp("claims")) as store:
        client = boto3.client("s3", endpoint_url=store.endpoint_url, aws_access_key_id=store.access_key,
                              aws_secret_access_key=store.secret_key, region_name="us-east-1")
        client.create_bucket(Bucket=SETTINGS.processing_bucket)
        yield Storage(client)


@pytest.fixture(params=["seaweedfs", "moto"])
def storage(request, monkeypatch):
    if request.param == "seaweedfs":
        yield request.getfixturevalue("seaweedfs")
        return
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)  # the mock only answers AWS's own endpoints
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=SETTINGS.processing_bucket)
        yield Storage(client)


def claimed_by(storage: Storage, batch_id: str) -> dict:
    return storage.read_json(f"{batch_prefix(SETTINGS, batch_id)}/{CLAIM_NAME}")


def test_the_holding_run_may_claim_again_another_run_is_refused(storage):
    claim_batch_id(storage, SETTINGS, "b1", "smgt_batch/manual__1")
    claim_batch_id(storage, SETTINGS, "b1", "smgt_batch/manual__1")  # a retry or a cleared run
    with pytest.raises(BatchConfigError) as err:
        claim_batch_id(storage, SETTINGS, "b1", "smgt_batch/manual__2")
    assert err.value.problems == ["batchId: 'b1' is already used by an existing batch (run smgt_batch/manual__1)"]
    assert claimed_by(storage, "b1") == {"batchId": "b1", "run": "smgt_batch/manual__1"}
    claim_batch_id(storage, SETTINGS, "b2", "smgt_batch/manual__2")  # another id is free


def test_of_runs_claiming_one_id_at_once_exactly_one_holds_it(seaweedfs):
    """On the store every local deployment uses (moto's mock checks and writes without a lock, so
    two of eight concurrent conditional writes could both win there: not what S3 does)."""
    storage = seaweedfs
    runs = [f"smgt_batch/manual__{i}" for i in range(8)]
    won, refused, barrier = [], [], threading.Barrier(len(runs))

    def claim(run: str) -> None:
        barrier.wait()
        try:
            claim_batch_id(storage, SETTINGS, "race", run)
        except BatchConfigError:
            refused.append(run)
        else:
            won.append(run)

    threads = [threading.Thread(target=claim, args=(run,)) for run in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(won) == 1 and len(refused) == len(runs) - 1
    assert claimed_by(storage, "race")["run"] == won[0]


def test_local_paths_are_created_only_once(tmp_path):
    storage, path = Storage(), str(tmp_path / "a" / "claim.json")
    assert storage.create_if_absent(path, b'{"run": 1}') is True
    assert storage.create_if_absent(path, b'{"run": 2}') is False
    assert json.loads((tmp_path / "a" / "claim.json").read_bytes()) == {"run": 1}


def test_a_claim_of_a_run_deleted_from_airflow_is_taken_over(storage):
    claim_batch_id(storage, SETTINGS, "b3", "smgt_batch/manual__old")
    asked = []

    def exists(holder: str) -> bool:
        asked.append(holder)
        return holder != "smgt_batch/manual__old"

    claim_batch_id(storage, SETTINGS, "b3", "smgt_batch/manual__new", holder_exists=exists)
    assert asked == ["smgt_batch/manual__old"]
    assert claimed_by(storage, "b3") == {"batchId": "b3", "run": "smgt_batch/manual__new"}
    with pytest.raises(BatchConfigError, match="run smgt_batch/manual__new"):  # a holder that exists holds
        claim_batch_id(storage, SETTINGS, "b3", "smgt_batch/manual__third", holder_exists=exists)

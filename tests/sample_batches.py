"""Sample batch configs shared by tests (importable: tests/ is on sys.path via conftest)."""

from __future__ import annotations

INPUT = "s3://smgt-workflows-123456789012-us-east-1-batch-input"


NOTEBOOK_MANIFEST = f"{INPUT}/tracking_manifests/MOT17-13-SDP.manifest"


def notebook_batch(batch_id: str = "nb-track-1a2b3c4d", manifest: str = NOTEBOOK_MANIFEST) -> dict:
    """The reference notebook's 4-job batch, as its users send it (a new dict each call)."""
    return {
        "batchId": batch_id,
        "labelingJobs": [
            {
                "jobName": f"{batch_id}-vehicle",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTracking",
                "labelAttributeName": "vehicle-ref",
                "labelCategoryConfigS3Uri": f"{INPUT}/tracking_manifests/vehicle_label_category.json",
                "inputConfig": {"inputManifestS3Uri": manifest},
                "jobLevel": 1,
            },
            {
                "jobName": f"{batch_id}-lane",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTracking",
                "labelAttributeName": "lane-ref",
                "labelCategoryConfigS3Uri": f"{INPUT}/tracking_manifests/lane_label_category.json",
                "inputConfig": {"inputManifestS3Uri": manifest},
                "jobLevel": 1,
            },
            {
                "jobName": f"{batch_id}-vehicle-audit",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTrackingAudit",
                "labelAttributeName": "vehicle-audit-ref",
                "labelCategoryConfigS3Uri": f"{INPUT}/tracking_manifests/vehicle_label_category_audit.json",
                "inputConfig": {"chainFromJobName": f"{batch_id}-vehicle"},
                "jobLevel": 2,
            },
            {
                "jobName": f"{batch_id}-lane-audit",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTrackingAudit",
                "labelAttributeName": "lane-audit-ref",
                "labelCategoryConfigS3Uri": f"{INPUT}/tracking_manifests/lane_label_category_audit.json",
                "inputConfig": {"chainFromJobName": f"{batch_id}-lane"},
                "jobLevel": 2,
            },
        ],
    }


def targeted_demo_batch(batch_id: str, demo: dict, *, rate: float = 40, exploration: float = 25) -> dict:
    """The notebook's batch on the emulator's demo data (`upload_demo_data()`'s URIs), with a fixed
    audit rate and targeted down-sampling (`exploration` % of the budget drawn at random)."""
    conf = notebook_batch(batch_id)
    for job in conf["labelingJobs"]:
        if "inputManifestS3Uri" in job["inputConfig"]:
            job["inputConfig"]["inputManifestS3Uri"] = demo["manifest_uri"]
        else:
            job["inputConfig"]["downSamplingRate"] = rate
        name = job["labelCategoryConfigS3Uri"].rsplit("/", 1)[-1].removesuffix(".json")
        job["labelCategoryConfigS3Uri"] = demo["label_configs"][name]
    conf["samplingStrategy"], conf["explorationPercent"] = "targeted", exploration
    return conf

"""Request bodies shared by the API tests."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path
from typing import Any

from smgt.embedded import PASSWORDS  # noqa: F401  (the users the test stack has)

ROOT = Path(__file__).resolve().parents[2]
BATCH_DAG_ID = "smgt_batch"

INPUT = "s3://smgt-workflows-123456789012-us-east-1-batch-input"


def new_batch_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def notebook_batch(
    batch_id: str, manifest: str = f"{INPUT}/tracking_manifests/MOT17-13-SDP.manifest"
) -> dict[str, Any]:
    """The reference notebook's 4-job batch (vehicles + lanes, one audit each at level 2)."""
    configs = f"{INPUT}/tracking_manifests"
    jobs: list[dict[str, Any]] = []
    for what in ("vehicle", "lane"):
        jobs.append(
            {
                "jobName": f"{batch_id}-{what}",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTracking",
                "labelAttributeName": f"{what}-ref",
                "labelCategoryConfigS3Uri": f"{configs}/{what}_label_category.json",
                "inputConfig": {"inputManifestS3Uri": manifest},
                "jobLevel": 1,
            }
        )
    for what in ("vehicle", "lane"):
        jobs.append(
            {
                "jobName": f"{batch_id}-{what}-audit",
                "jobType": "BATCH",
                "jobModality": "VideoObjectTrackingAudit",
                "labelAttributeName": f"{what}-audit-ref",
                "labelCategoryConfigS3Uri": f"{configs}/{what}_label_category_audit.json",
                "inputConfig": {"chainFromJobName": f"{batch_id}-{what}"},
                "jobLevel": 2,
            }
        )
    return {"batchId": batch_id, "labelingJobs": copy.deepcopy(jobs)}

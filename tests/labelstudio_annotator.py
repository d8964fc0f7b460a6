"""A scripted stand-in for a person labeling in Label Studio: it uses only Label Studio's REST API,
with the person's own API token, and builds results the way the labeling UI saves them (percent
coordinates of each frame, `item_index` on a frame list, per-region controls sharing the region id,
per-frame controls with `item_index`). It reads the project's labeling config like a person reads
the page: controls are found by the header shown above them. Independent of the product's own
conversion code, so a round trip through it tests that code.
"""

from __future__ import annotations

import time
import uuid
import xml.etree.ElementTree as ET
from typing import Any

from smgt.local.labelstudio.client import LabelStudioClient


class ScriptedAnnotator:
    def __init__(self, url: str, token: str) -> None:
        self.ls = LabelStudioClient(url, token)

    # ------------------------------------------------------------ finding work

    def project(self, job_name: str, timeout: float = 120) -> dict[str, Any]:
        """The project of a labeling job (made by the emulator), once its tasks are imported."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for project in self.ls.list_projects(title_contains=job_name[:40]):
                if (project.get("description") or "").startswith(f"{job_name}:") and project.get("task_number"):
                    return self.ls.get_project(project["id"])
            time.sleep(1)
        raise AssertionError(f"no Label Studio project with tasks for job {job_name} after {timeout}s")

    def tasks(self, project_id: int) -> list[dict[str, Any]]:
        return self.ls.list_tasks(project_id)

    # ------------------------------------------------------------ the page

    @staticmethod
    def controls(project: dict[str, Any]) -> dict[str, str]:
        """{shown header (attribute name) or tag role: control name} read from the labeling config."""
        root = ET.fromstring(project["label_config"])
        found: dict[str, str] = {}
        for view in root.iter("View"):
            header = None
            for child in view:
                if child.tag == "Header":
                    header = child.get("value", "").split(":")[0]
                elif child.tag in ("Choices", "Number", "TextArea") and header and child.get("name"):
                    found["object #" if header.startswith("Object #") else header] = child.get("name")
                    header = None
        for child in root:
            if child.tag.endswith("Labels"):
                found["tool"] = child.get("name")
                found["tool_type"] = child.tag.lower()
            if child.tag == "Image":
                found["object"] = child.get("name")
        return found

    # ------------------------------------------------------------ drawing

    @staticmethod
    def region(controls: dict[str, str], *, label: str, item: int | None, size: tuple[int, int],
               box: tuple[float, float, float, float] | None = None,
               polyline: list[tuple[float, float]] | None = None, number: int | None = None,
               attributes: dict[str, Any] | None = None, region_id: str | None = None) -> list[dict[str, Any]]:
        """One drawn shape (pixels in, percent out) with its object number and attribute values."""
        width, height = size
        rid = region_id or uuid.uuid4().hex[:10]
        if box is not None:
            left, top, w, h = box
            geometry = {"x": 100 * left / width, "y": 100 * top / height, "width": 100 * w / width,
                        "height": 100 * h / height, "rotation": 0}
        else:
            assert polyline is not None
            geometry = {"vertices": [{"x": 100 * x / width, "y": 100 * y / height, "id": f"{rid}v{i}",
                                      "isBezier": False} for i, (x, y) in enumerate(polyline)], "closed": False}
        common: dict[str, Any] = {"id": rid, "to_name": controls["object"], "original_width": width,
                                  "original_height": height, "image_rotation": 0, "origin": "manual"}
        if item is not None:
            common["item_index"] = item
        out = [{**common, "from_name": controls["tool"], "type": controls["tool_type"],
                "value": {**geometry, controls["tool_type"]: [label]}}]
        if number is not None:
            out.append({**common, "from_name": controls["object #"], "type": "number",
                        "value": {**geometry, "number": number}})
        for name, value in (attributes or {}).items():
            kind = "number" if isinstance(value, int | float) else "choices"
            out.append({**common, "from_name": controls[name], "type": kind,
                        "value": {**geometry, kind: value if kind == "number" else [value]}})
        return out

    @staticmethod
    def frame_value(controls: dict[str, str], name: str, item: int, value: Any) -> dict[str, Any]:
        kind = "number" if isinstance(value, int | float) else "choices"
        return {"id": f"f{item}{name}", "from_name": controls[name], "to_name": controls["object"], "type": kind,
                "item_index": item, "value": {kind: value if kind == "number" else [value]}}

    def submit(self, task_id: int, result: list[dict[str, Any]], lead_time: float = 42.0) -> dict[str, Any]:
        return self.ls.create_annotation(task_id, result, lead_time=lead_time)


def login_session(url: str, email: str, password: str) -> Any:
    """A requests session logged in through Label Studio's real login form (CSRF cookie + form post);
    `whoami(session)` then names the user, or is None when the login failed."""
    import requests

    session = requests.Session()
    session.get(f"{url}/user/login/", timeout=30).raise_for_status()
    csrf = session.cookies.get("csrftoken")
    session.post(f"{url}/user/login/", data={"email": email, "password": password, "csrfmiddlewaretoken": csrf},
                 timeout=30, allow_redirects=False)
    return session


def whoami(url: str, session: Any) -> str | None:
    response = session.get(f"{url}/api/current-user/whoami", timeout=30)
    return response.json().get("email") if response.status_code == 200 else None

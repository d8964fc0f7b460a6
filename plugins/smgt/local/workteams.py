"""Private work teams (CreateWorkteam, DescribeWorkteam, ListWorkteams) backed by Cognito groups.

A team is only accepted if its Cognito user pool, group and app client exist (checked through the
embedded Cognito, as GT checks the real one). The workers of a job are the users of the team's
groups. Teams are kept in the state file and loaded again after a restart.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import ResourceInUse, ValidationException
from .state import StateStore
from .validation import check_request


@dataclass
class Workteam:
    name: str
    arn: str
    members: list[dict[str, Any]]
    description: str
    region: str
    account: str
    notification: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    sub_domain: str | None = None  # where workers log in; GT's own labeling portal domain by default

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha1(f"{self.account}:{self.region}".encode()).hexdigest()[:10]
        out: dict[str, Any] = {
            "WorkteamName": self.name, "MemberDefinitions": self.members, "WorkteamArn": self.arn,
            "WorkforceArn": f"arn:aws:sagemaker:{self.region}:{self.account}:workforce/default",
            "ProductListingIds": [], "Description": self.description,
            "SubDomain": self.sub_domain or f"{digest}.labeling.{self.region}.sagemaker.aws",
            "CreateDate": self.created, "LastUpdatedDate": self.created,
        }
        if self.notification:
            out["NotificationConfiguration"] = self.notification
        return out


class WorkteamStore:
    def __init__(self, *, account: str, cognito_check: Callable[[dict[str, Any]], str | None],
                 store: StateStore, portal_url: str | None = None) -> None:
        self.account = account
        self._check = cognito_check  # returns a problem message or None
        self.store = store
        self.portal_url = portal_url  # the workforce's labeling portal (Label Studio), shown as SubDomain
        self._teams: dict[str, Workteam] = {}  # arn -> team
        self._lock = threading.Lock()
        for row in store.teams():
            self._add(row["arn"], row["request"], row["region"], row["created"])

    def _add(self, arn: str, request: dict[str, Any], region: str, created: float) -> Workteam:
        team = Workteam(request["WorkteamName"], arn, request["MemberDefinitions"], request["Description"], region,
                        self.account, request.get("NotificationConfiguration"), created, self.portal_url)
        self._teams[arn] = team
        return team

    def exists(self, arn: str) -> bool:
        return arn in self._teams

    def by_arn(self, arn: str) -> Workteam | None:
        return self._teams.get(arn)

    def create(self, request: dict[str, Any], region: str) -> dict[str, Any]:
        """CreateWorkteam: the API definition's field constraints (name, description, 1..10 member
        definitions, tags, ...: check_request, after https://docs.aws.amazon.com/sagemaker/latest/APIReference/
        API_CreateWorkteam.html), then what the local workforce needs: Cognito members whose pool, group
        and app client exist. Raises ValidationException naming the field, ResourceInUse for a taken name."""
        check_request("CreateWorkteam", request)
        name = request["WorkteamName"]
        for member in request["MemberDefinitions"]:
            cognito = member.get("CognitoMemberDefinition")
            if not isinstance(cognito, dict):
                raise ValidationException("Only CognitoMemberDefinition members are supported by the local workforce")
            if problem := self._check(cognito):
                raise ValidationException(problem)
        keys = [t["Key"] for t in request.get("Tags") or []]
        if len(set(keys)) != len(keys):  # API_Tag.html: "Tag keys must be unique per resource."
            raise ValidationException("Tags: tag keys must be unique per resource")
        arn = f"arn:aws:sagemaker:{region}:{self.account}:workteam/private-crowd/{name}"
        with self._lock:
            if arn in self._teams:
                raise ResourceInUse(f"Workteam {name} already exists")
            created = time.time()
            self.store.insert_team(arn, request, region, created)
            self._add(arn, request, region, created)
        return {"WorkteamArn": arn}

    def describe(self, request: dict[str, Any], region: str) -> dict[str, Any]:
        check_request("DescribeWorkteam", request)
        name = request["WorkteamName"]
        team = self._teams.get(f"arn:aws:sagemaker:{region}:{self.account}:workteam/private-crowd/{name}")
        if team is None:
            raise ValidationException(f"Workteam {name} does not exist")
        return {"Workteam": team.describe()}

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        teams = list(self._teams.values())
        if contains := params.get("NameContains"):
            teams = [t for t in teams if contains.lower() in t.name.lower()]
        if params.get("SortBy", "CreateDate") == "Name":
            teams.sort(key=lambda t: t.name)
        else:
            teams.sort(key=lambda t: t.created)
        if params.get("SortOrder", "Ascending") == "Descending":
            teams.reverse()
        from .jobs import _paginate

        page, token = _paginate(teams, params)
        out: dict[str, Any] = {"Workteams": [t.describe() for t in page]}
        if token:
            out["NextToken"] = token
        return out

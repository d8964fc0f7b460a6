"""AWS calls the batch API makes, all through the Airflow connection named in Settings.

The API server talks to the same account as the DAG (real AWS or the local emulator) because both
build their boto3 clients from one Airflow connection (`aws_default` unless SMGT_AWS_CONN_ID says
otherwise), endpoint_url included. Nothing here is cached across connection edits for long: clients
are kept for a few minutes only, so a rotated credential or a moved endpoint is picked up without a
restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from smgt.config import parse_s3_uri
from smgt.settings import Settings

# Presigned GET URLs handed out by batch/show and the UI page live this long.
PRESIGN_SECONDS = 3600
_CLIENT_TTL_SECONDS = 300
# DescribeLabelingJob error codes that mean "no such job" (GT says ResourceNotFound; some
# implementations answer ValidationException "Could not find ...").
_NOT_FOUND_CODES = {"ResourceNotFound", "ResourceNotFoundException", "ValidationException"}

_clients: dict[tuple[str, str, str], tuple[float, Any]] = {}
_clients_lock = threading.Lock()


class AwsUnavailableError(RuntimeError):
    """An AWS call the API needs failed for a reason the caller cannot fix (502)."""


def _cached(key: tuple[str, str, str], make: Any, what: str, settings: Settings) -> Any:
    """`make()`'s result, built once per `key` for _CLIENT_TTL_SECONDS; a failure to build it is an
    AwsUnavailableError naming the Airflow connection."""
    now = time.monotonic()
    with _clients_lock:
        cached = _clients.get(key)
        if cached and now - cached[0] < _CLIENT_TTL_SECONDS:
            return cached[1]
    try:
        made = make()
    except Exception as exc:  # connection missing or malformed: say which one
        raise AwsUnavailableError(
            f"cannot build {what} from Airflow connection {settings.aws_conn_id!r}: {exc}"
        ) from exc
    with _clients_lock:
        _clients[key] = (now, made)
    return made


def client(service: str, settings: Settings) -> Any:
    """boto3 client for `service` built from the Airflow AWS connection (endpoint_url honoured)."""

    def make() -> Any:
        # Imported here: the provider pulls in a lot, and only API requests need it.
        from smgt.gt.hooks import AwsHook

        return AwsHook(aws_conn_id=settings.aws_conn_id, client_type=service, region_name=settings.region).get_conn()

    return _cached((service, settings.aws_conn_id, settings.region), make, f"an AWS {service} client", settings)


def preflight_clients(settings: Settings) -> Any:
    """`smgt.preflight.AwsClients` from the same connection, with the pre-flight's short timeouts."""

    def make() -> Any:
        from smgt.preflight import aws_clients

        return aws_clients(settings)

    return _cached(("preflight", settings.aws_conn_id, settings.region), make, "AWS clients", settings)


def presigner(settings: Settings) -> Any:
    """A `presign(s3_uri) -> url` callable for describe_batch (GET URLs, PRESIGN_SECONDS long)."""
    s3 = client("s3", settings)

    def presign(uri: str) -> str:
        bucket, key = parse_s3_uri(uri)
        return s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
        )

    return presign


def existing_job_names(names: Iterable[str], settings: Settings) -> list[str]:
    """Names among `names` that Ground Truth already has (GT never frees a job name)."""
    sagemaker = client("sagemaker", settings)
    found = []
    for name in names:
        try:
            sagemaker.describe_labeling_job(LabelingJobName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND_CODES:
                continue
            raise AwsUnavailableError(f"DescribeLabelingJob({name!r}) failed: {exc}") from exc
        except BotoCoreError as exc:
            raise AwsUnavailableError(f"DescribeLabelingJob({name!r}) failed: {exc}") from exc
        found.append(name)
    return found


def workteam_name(arn: str) -> str:
    """`arn:...:workteam/private-crowd/NAME` -> NAME (DescribeWorkteam takes the name)."""
    return arn.rsplit("/", 1)[-1]


def describe_workforce(settings: Settings) -> list[dict[str, Any]]:
    """SPEC 7 workforce/show: both work teams with the members of each Cognito group."""
    sagemaker = client("sagemaker", settings)
    cognito = client("cognito-idp", settings)
    teams = (
        ("PRIMARY", settings.first_level_workteam_arn),
        ("SECONDARY", settings.second_level_workteam_arn),
    )
    result = []
    for category, arn in teams:
        name = workteam_name(arn)
        try:
            team = sagemaker.describe_workteam(WorkteamName=name)["Workteam"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            raise AwsUnavailableError(f"DescribeWorkteam({name!r}) failed: {exc}") from exc
        definitions = []
        for definition in team.get("MemberDefinitions", []):
            cognito_def = definition.get("CognitoMemberDefinition")
            if cognito_def is None:
                # OIDC work teams have no Cognito group to list; show what GT says about them.
                definitions.append({"oidc": definition.get("OidcMemberDefinition", {})})
                continue
            definitions.append(_member_definition(cognito, cognito_def))
        entry = {
            "category": category,
            "workteamName": team.get("WorkteamName", name),
            "workteamArn": team.get("WorkteamArn", arn),
            "memberDefinitions": definitions,
        }
        if portal := labeling_portal_url(team.get("SubDomain")):
            entry["labelingPortalUrl"] = portal
        result.append(entry)
    return result


def labeling_portal_url(sub_domain: str | None) -> str | None:
    """Where the team's workers log in: GT's portal is `https://{SubDomain}`; the local Ground Truth
    with the Label Studio workforce gives Label Studio's URL there (members log in with their e-mail)."""
    if not sub_domain:
        return None
    return sub_domain if "://" in sub_domain else f"https://{sub_domain}"


def _member_definition(cognito: Any, definition: dict[str, str]) -> dict[str, Any]:
    pool, group = definition["UserPool"], definition["UserGroup"]
    members: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"UserPoolId": pool, "GroupName": group, "Limit": 60}
    while True:
        try:
            page = cognito.list_users_in_group(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise AwsUnavailableError(f"ListUsersInGroup({pool!r}, {group!r}) failed: {exc}") from exc
        members.extend(_member(user) for user in page.get("Users", []))
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    return {"userPool": pool, "userGroup": group, "clientId": definition.get("ClientId"), "members": members}


def _member(user: dict[str, Any]) -> dict[str, Any]:
    attributes = {a["Name"]: a.get("Value") for a in user.get("Attributes", [])}
    member: dict[str, Any] = {
        "username": user["Username"],
        "enabled": user.get("Enabled"),
        "userStatus": user.get("UserStatus"),
    }
    if "email" in attributes:
        member["email"] = attributes["email"]
    for key, field in (
        ("userCreateDate", "UserCreateDate"),
        ("userLastModifiedDate", "UserLastModifiedDate"),
    ):
        if user.get(field) is not None:
            member[key] = user[field].isoformat() if hasattr(user[field], "isoformat") else str(user[field])
    return member

"""The local counterpart of the reference CloudFormation stack, created on every start.

Everything is named from `Settings` so the product's defaults point at it: input and processing
buckets, a Cognito user pool with first- and second-level groups, a few users and an app client, the
two private work teams, and the default SNS topic with an SQS queue subscribed (raw delivery, so a
queue message body is exactly the published message). Idempotent: moto's state is per process, and
a second emulator in the same process reuses what the first created.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from smgt.settings import Settings

from .workteams import WorkteamStore

USER_POOL_NAME = "smgt-workflows-user-pool"
APP_CLIENT_NAME = "smgt-workflows-app-client"
# group -> users; the group name is also the work team name. The default members; a deployment
# names its own (`parse_work_team_members`).
USERS = {
    "smgt-workflows-first-level": ["labeler-1", "labeler-2", "labeler-3"],
    "smgt-workflows-second-level": ["qa-manager-1", "qa-manager-2"],
}
WORK_TEAM_MEMBERS_ENV = "SMGT_LOCAL_WORK_TEAM_MEMBERS"
# Lower case so that a user name, its e-mail and its Label Studio login stay one identity; within
# Cognito's user name rules (1-128 characters of \p{L}\p{M}\p{S}\p{N}\p{P}).
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def parse_work_team_members(value: str | Mapping[str, Any] | None, *, where: str = WORK_TEAM_MEMBERS_ENV
                            ) -> dict[str, list[str]]:
    """The members of the two work teams, from JSON text or a mapping: `{team name: [user name]}`.

    A team left out keeps its default members (`USERS`); None or "" means all defaults. User names
    are 1-64 characters of a-z, 0-9, '.', '_' and '-' (the e-mail is `<name>@example.com`). Raises
    ValueError naming `where` and the team for anything else (unknown team, empty or repeated names).
    """
    if value is None or value == "":
        return {team: list(users) for team, users in USERS.items()}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: must be a JSON object of work team name -> list of user names")
    problems = [f"{where}: {team!r} is not a work team (teams: {', '.join(USERS)})" for team in value
                if team not in USERS]
    members = {team: list(users) for team, users in USERS.items()}
    for team, users in value.items():
        if team not in USERS:
            continue
        if not isinstance(users, list) or not users:
            problems.append(f"{where}.{team}: must be a non-empty list of user names")
            continue
        bad = [u for u in users if not isinstance(u, str) or not _USERNAME.fullmatch(u)]
        if bad:
            problems.append(f"{where}.{team}: {bad!r}: user names are 1-64 characters of a-z, 0-9, '.', '_', '-'"
                            " starting with a letter or digit")
        repeated = sorted({u for u in users if users.count(u) > 1})
        if repeated:
            problems.append(f"{where}.{team}: {repeated!r} listed more than once")
        members[team] = list(users)
    if problems:
        raise ValueError("; ".join(problems))
    return members


def worker_email(username: str) -> str:
    """A worker's e-mail: their Cognito attribute, and their login in the Label Studio workforce."""
    return f"{username}@example.com"


@dataclass(frozen=True)
class Bootstrapped:
    user_pool_id: str
    client_id: str
    workteam_arns: dict[str, str]  # team name -> arn
    topic_arn: str
    queue_url: str


def bootstrap(clients: Any, teams: WorkteamStore, settings: Settings,
              members: Mapping[str, Sequence[str]] | None = None) -> Bootstrapped:
    """`clients(service)` returns a boto3 client on the emulator's endpoint. `members`: each work
    team's user names (default `USERS`); a user no longer listed leaves the team's Cognito group
    (the user itself stays, so a GT workerId is never reused), and so labels none of its next jobs."""
    members = parse_work_team_members(dict(members) if members is not None else None)
    s3 = clients("s3")
    for bucket in (settings.input_bucket, settings.processing_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    idp = clients("cognito-idp")
    pools = idp.list_user_pools(MaxResults=60)["UserPools"]
    pool_id = next((p["Id"] for p in pools if p["Name"] == USER_POOL_NAME), None)
    if pool_id is None:
        pool_id = idp.create_user_pool(PoolName=USER_POOL_NAME)["UserPool"]["Id"]
    app_clients = idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
    client_id = next((c["ClientId"] for c in app_clients if c["ClientName"] == APP_CLIENT_NAME), None)
    if client_id is None:
        client_id = idp.create_user_pool_client(UserPoolId=pool_id, ClientName=APP_CLIENT_NAME)["UserPoolClient"]["ClientId"]
    existing_users = {u["Username"] for u in idp.list_users(UserPoolId=pool_id)["Users"]}
    for group, users in members.items():
        try:
            idp.create_group(GroupName=group, UserPoolId=pool_id, Description=f"{group} labelers")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "GroupExistsException":
                raise
        in_group = idp.list_users_in_group(UserPoolId=pool_id, GroupName=group)["Users"]
        for former in {u["Username"] for u in in_group} - set(users):
            idp.admin_remove_user_from_group(UserPoolId=pool_id, Username=former, GroupName=group)
        for user in users:
            if user not in existing_users:
                idp.admin_create_user(UserPoolId=pool_id, Username=user, UserAttributes=[
                    {"Name": "email", "Value": worker_email(user)}, {"Name": "email_verified", "Value": "true"}])
                # The embedded Cognito draws a new random sub at every start; a sub derived from pool
                # and name keeps each worker's GT identity (workerId) the same across restarts.
                idp.admin_update_user_attributes(UserPoolId=pool_id, Username=user, UserAttributes=[
                    {"Name": "sub", "Value": str(uuid.uuid5(uuid.NAMESPACE_URL, f"cognito:{pool_id}:{user}"))}])
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=user, GroupName=group)

    arns = {}
    for name, expected in (("smgt-workflows-first-level", settings.first_level_workteam_arn),
                           ("smgt-workflows-second-level", settings.second_level_workteam_arn)):
        if not teams.exists(expected):
            teams.create({"WorkteamName": name, "Description": f"{name} private work team",
                          "MemberDefinitions": [{"CognitoMemberDefinition": {
                              "UserPool": pool_id, "UserGroup": name, "ClientId": client_id}}]},
                         settings.region)
        if not teams.exists(expected):
            raise RuntimeError(f"work team ARN {expected} (from settings) does not match the emulator's "
                               f"region/account; bootstrap created a different ARN for {name}")
        arns[name] = expected

    sns, sqs = clients("sns"), clients("sqs")
    topic_name = settings.default_sns_topic_arn.rsplit(":", 1)[-1]
    topic_arn = sns.create_topic(Name=topic_name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{topic_name}-queue")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    subscribed = any(s["Endpoint"] == queue_arn for s in sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"])
    if not subscribed:
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn,
                      Attributes={"RawMessageDelivery": "true"})
    return Bootstrapped(pool_id, client_id, arns, topic_arn, queue_url)


def cognito_problem(idp: Any, member: dict[str, Any]) -> str | None:
    """Why a CognitoMemberDefinition is unusable, or None (GT checks pool, group and client)."""
    pool, group, client = member.get("UserPool"), member.get("UserGroup"), member.get("ClientId")
    try:
        idp.describe_user_pool(UserPoolId=pool)
    except (ClientError, Exception):
        return f"Cognito user pool {pool} does not exist"
    try:
        idp.get_group(GroupName=group, UserPoolId=pool)
    except (ClientError, Exception):
        return f"Cognito user group {group} does not exist in user pool {pool}"
    try:
        idp.describe_user_pool_client(UserPoolId=pool, ClientId=client)
    except (ClientError, Exception):
        return f"Cognito app client {client} does not exist in user pool {pool}"
    return None

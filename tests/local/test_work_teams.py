"""A deployment names its own work team members: the emulator makes them Cognito users in the team's
group, a member taken off the list leaves the group on the next start, and a bad list is refused
with the field named (by the emulator and by scripts/up.sh before anything starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from smgt.embedded import ROOT
from smgt.local import LocalGroundTruth
from smgt.local.bootstrap import USERS, parse_work_team_members

FIRST, SECOND = "smgt-workflows-first-level", "smgt-workflows-second-level"


def group_members(emu: LocalGroundTruth, team: str) -> list[str]:
    idp = emu.client("cognito-idp")
    users = idp.list_users_in_group(UserPoolId=emu.resources.user_pool_id, GroupName=team)["Users"]
    return sorted(u["Username"] for u in users)


def test_members_default_and_a_team_left_out_keeps_its_default() -> None:
    assert parse_work_team_members(None) == USERS
    assert parse_work_team_members(json.dumps({FIRST: ["ana", "bo.b"]})) == {FIRST: ["ana", "bo.b"], SECOND: USERS[SECOND]}


@pytest.mark.parametrize(("value", "fragment"), [
    ("{not json", "SMGT_LOCAL_WORK_TEAM_MEMBERS: not valid JSON"),
    ('["ana"]', "must be a JSON object of work team name -> list of user names"),
    ('{"third-level": ["ana"]}', "'third-level' is not a work team"),
    (json.dumps({FIRST: []}), f"SMGT_LOCAL_WORK_TEAM_MEMBERS.{FIRST}: must be a non-empty list"),
    (json.dumps({FIRST: ["Ana Lopez"]}), f"{FIRST}: ['Ana Lopez']: user names are 1-64 characters"),
    (json.dumps({SECOND: ["qa", "qa"]}), f"{SECOND}: ['qa'] listed more than once"),
])
def test_bad_members_are_refused_naming_the_field(value: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_work_team_members(value)
    assert fragment in str(caught.value)


def test_members_are_the_teams_and_one_taken_off_the_list_leaves_on_the_next_start(tmp_path, s3_store) -> None:
    state = tmp_path / "gt"
    with LocalGroundTruth(port=0, s3=s3_store, state_dir=state,
                          work_team_members={FIRST: ["ana", "bo"], SECOND: ["qa-lead"]}) as emu:
        assert group_members(emu, FIRST) == ["ana", "bo"]
        assert group_members(emu, SECOND) == ["qa-lead"]
        team = emu.client("sagemaker").describe_workteam(WorkteamName=FIRST)["Workteam"]
        assert team["MemberDefinitions"][0]["CognitoMemberDefinition"]["UserGroup"] == FIRST

    with LocalGroundTruth(port=0, s3=s3_store, state_dir=state,
                          work_team_members={FIRST: ["bo", "cy"], SECOND: ["qa-lead"]}) as emu:
        assert group_members(emu, FIRST) == ["bo", "cy"]
        # ana is still a Cognito user (her past answers keep their workerId), only not in the team.
        users = {u["Username"] for u in emu.client("cognito-idp").list_users(UserPoolId=emu.resources.user_pool_id)["Users"]}
        assert {"ana", "bo", "cy", "qa-lead"} <= users


def test_emulator_refuses_bad_members() -> None:
    with pytest.raises(ValueError, match="work_team_members.smgt-workflows-first-level: must be a non-empty list"):
        LocalGroundTruth(port=0, s3=None, work_team_members={FIRST: []})  # type: ignore[arg-type]


def test_up_refuses_bad_members_in_deployment_json_before_starting_anything(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "deployment.json").write_text(json.dumps({
        "created": 0, "ports": {}, "secrets": {}, "workforce": "simulated",
        "work_team_members": {FIRST: ["Ana Lopez"]}}))
    done = subprocess.run([sys.executable, "-m", "smgt.up", "--simulated", "--any-ports", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")})
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{state / 'deployment.json'}: work_team_members.{FIRST}: ['Ana Lopez']" in done.stderr
    assert not (state / "s3").exists() and not (state / "logs").exists()  # nothing was started

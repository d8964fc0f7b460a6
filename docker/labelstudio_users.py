"""Make the work teams' members Label Studio users who can log in: docker-compose.yaml's one-shot
`labelstudio-users` service, run with the official Label Studio image's python on Label Studio's
data volume once the server is healthy (the same database the server uses).

    python3 labelstudio_users.py          create or update every member (idempotent); prints what changed
    python3 labelstudio_users.py --show   print each member's login (team, e-mail, password) and exit

The image has Label Studio but not our package, so what this needs from smgt is read from its source
(mounted read-only at SMGT_PLUGINS_DIR, default /opt/smgt/plugins) without importing it:
- the teams and their members: `USERS` in smgt/local/bootstrap.py (a literal);
- the Django code that makes a user who can log in, with an API token, in the admin's organization:
  `_ENSURE_USERS_SCRIPT` in smgt/local/labelstudio/server.py, the code LabelStudioServer.ensure_users
  runs for the native deployment (each user its own transaction; a second run changes nothing).
Logins are derived as the native deployment derives them (tests/stack/test_compose.py checks both):
e-mail `smgt.local.bootstrap.worker_email(username)`, password
`smgt.deployment.worker_password(SMGT_LABELSTUDIO_WORKER_SECRET, username)`.

Environment: LABEL_STUDIO_USERNAME (the admin's e-mail, as the server got it),
SMGT_LABELSTUDIO_WORKER_SECRET (required), SMGT_PLUGINS_DIR; Label Studio's own settings
(LABEL_STUDIO_BASE_DATA_DIR, DJANGO_SETTINGS_MODULE) come from the image or the service.
Exit status 0 when every member exists with its password, 1 with the reason otherwise.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

BOOTSTRAP = "smgt/local/bootstrap.py"
SERVER = "smgt/local/labelstudio/server.py"


def fail(message: str) -> None:
    print(f"labelstudio-users: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def module_literal(path: Path, name: str) -> Any:
    """The value of the module-level literal assignment `name = ...` in the Python file `path`."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError) as exc:
        fail(f"cannot read {path}: {exc} (is plugins/ mounted at SMGT_PLUGINS_DIR?)")
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(target, ast.Name) and target.id == name for target in targets) and node.value is not None:
            return ast.literal_eval(node.value)
    fail(f"{path} has no literal {name}: smgt changed, update docker/labelstudio_users.py")


def worker_email(username: str) -> str:
    """As smgt.local.bootstrap.worker_email."""
    return f"{username}@example.com"


def worker_password(secret: str, username: str) -> str:
    """As smgt.deployment.worker_password: HMAC-SHA256(secret, username), first 16 hex digits."""
    return hmac.new(secret.encode(), username.encode(), hashlib.sha256).hexdigest()[:16]


def logins(users: dict[str, list[str]], secret: str) -> list[dict[str, str]]:
    """[{team, username, email, password}] for every member of every team, in USERS' order."""
    return [{"team": team, "username": user, "email": worker_email(user), "password": worker_password(secret, user)}
            for team, members in users.items() for user in members]


def ensure_users(script: str, prefix: str, admin_email: str, members: list[dict[str, str]]) -> dict[str, Any]:
    """Run server.py's Django script with this python; returns its result `{tokens, changes}`."""
    spec = {"admin_email": admin_email,
            "users": [{"email": m["email"], "password": m["password"], "first_name": m["username"]} for m in members]}
    done = subprocess.run([sys.executable, "-c", f"PREFIX = {prefix!r}\n{script}"], input=json.dumps(spec).encode(),
                          capture_output=True, timeout=600)
    out = done.stdout.decode("utf-8", "replace")
    lines = [line for line in out.splitlines() if line.startswith(prefix)]
    if done.returncode != 0 or not lines:
        tail = "\n".join((out + done.stderr.decode("utf-8", "replace")).splitlines()[-40:])
        fail(f"creating the users failed (exit {done.returncode}):\n{tail}")
    return json.loads(lines[-1][len(prefix):])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labelstudio_users.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="print the logins (with passwords) and exit")
    args = parser.parse_args(argv)
    plugins = Path(os.environ.get("SMGT_PLUGINS_DIR", "/opt/smgt/plugins"))
    secret = os.environ.get("SMGT_LABELSTUDIO_WORKER_SECRET", "")
    if not secret:
        fail("SMGT_LABELSTUDIO_WORKER_SECRET is empty: the members' passwords are derived from it (see .env.example)")
    users = module_literal(plugins / BOOTSTRAP, "USERS")
    members = logins(users, secret)
    if args.show:
        for member in members:
            print(f"{member['team']}\t{member['email']}\t{member['password']}")
        return 0
    admin_email = os.environ.get("LABEL_STUDIO_USERNAME", "")
    if "@" not in admin_email:
        fail(f"LABEL_STUDIO_USERNAME must be the admin's e-mail, got {admin_email!r}")
    result = ensure_users(module_literal(plugins / SERVER, "_ENSURE_USERS_SCRIPT"),
                          module_literal(plugins / SERVER, "_READY_PREFIX"), admin_email, members)
    # The API tokens stay out of the log; people log in with e-mail and password.
    for change in result["changes"]:
        print(f"labelstudio-users: {change}", flush=True)
    print(f"labelstudio-users: {len(result['tokens'])} members can log in"
          f" ({', '.join(m['email'] for m in members)}); passwords: run with --show", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

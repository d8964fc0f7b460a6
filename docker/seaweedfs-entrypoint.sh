#!/bin/sh
# Entrypoint of docker-compose.yaml's `seaweedfs` service (official image chrislusf/seaweedfs):
# write the S3 identities file from SMGT_LOCAL_S3_ACCESS_KEY / SMGT_LOCAL_S3_SECRET_KEY, then hand
# over to the image's own /entrypoint.sh with the service's command (`mini ...`), which fixes /data's
# ownership, drops to the `seaweed` user and execs weed (so weed is PID 1 and gets SIGTERM).
#
# With an identities file SeaweedFS refuses anonymous requests (403); without one its S3 is open to
# anyone (measured on 4.48, /work/shared/notes/seaweedfs.md). Format, one identity with every action:
# https://github.com/seaweedfs/seaweedfs/blob/master/docker/compose/s3.json (as smgt.local.seaweedfs).
# Rewritten on every start, so a key changed in .env takes effect on the next `up`.
#
# Settings for tests (tests/stack/test_compose.py runs this script against the local weed 4.48):
#   SMGT_SEAWEEDFS_IDENTITIES  where to write the file (default /etc/seaweedfs/identities.json; the
#                              command's -s3.config must name the same path)
#   SMGT_SEAWEEDFS_ENTRYPOINT  what to exec with the command (default the image's /entrypoint.sh)
set -eu

identities=${SMGT_SEAWEEDFS_IDENTITIES:-/etc/seaweedfs/identities.json}

check_key() {  # check_key NAME VALUE: the key goes verbatim into JSON and an AWS signature
    case "$2" in
        "" | *[!A-Za-z0-9+/=._-]*)
            echo "seaweedfs: $1 must be set to a non-empty string of A-Z a-z 0-9 + / = . _ - (see .env.example)" >&2
            exit 1
            ;;
    esac
}
check_key SMGT_LOCAL_S3_ACCESS_KEY "${SMGT_LOCAL_S3_ACCESS_KEY:-}"
check_key SMGT_LOCAL_S3_SECRET_KEY "${SMGT_LOCAL_S3_SECRET_KEY:-}"

umask 077
mkdir -p "$(dirname "$identities")"
printf '{"identities": [{"name": "smgt-local", "credentials": [{"accessKey": "%s", "secretKey": "%s"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}\n' \
    "$SMGT_LOCAL_S3_ACCESS_KEY" "$SMGT_LOCAL_S3_SECRET_KEY" >"$identities.tmp"
# weed runs as `seaweed` (the image's entrypoint drops to it): it must be able to read the file.
if [ "$(id -u)" = 0 ] && id seaweed >/dev/null 2>&1; then
    chown seaweed:seaweed "$identities.tmp"
fi
mv -f "$identities.tmp" "$identities"
# The keys stay out of weed's environment: it would also accept AWS_ACCESS_KEY_ID as an admin identity.
unset SMGT_LOCAL_S3_ACCESS_KEY SMGT_LOCAL_S3_SECRET_KEY

exec "${SMGT_SEAWEEDFS_ENTRYPOINT:-/entrypoint.sh}" "$@"

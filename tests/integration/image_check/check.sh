#!/bin/sh
# Run by the image's user in a build stage: the example campaign mounted read-only at /campaign (the image's
# AMPLIFIER_CONFIG), small campaigns whose Mastodon accounts live on a loopback mastodon-mock at /secret-campaigns,
# their tokens as Docker Compose mounts them: one file per secret in /run/secrets, the host's owner and mode kept.
# Each step's stdout, stderr and exit code go to /tmp/out/<step>.{out,err,rc}; the test asserts on them.
set -u
out=/tmp/out
mkdir -p "$out"
step() {
    name=$1
    shift
    "$@" >"$out/$name.out" 2>"$out/$name.err"
    echo $? >"$out/$name.rc"
}
quiet=2026-11-20T12:00 # before the first post of every campaign here: nothing is due

step id id -u
step secrets ls -ln /run/secrets
step python python3 -c "import platform; print(platform.python_version())"
step freeze python3 -m pip list --format=freeze --disable-pip-version-check
step validate amplifier validate --now 2026-11-21T12:00
step preview amplifier preview --from 2027-10-31 --to 2027-11-01 --format json
step write-campaign touch /campaign/written-by-the-image
step write-state touch /state/written-by-the-image

# Every account's secret read from /run/secrets and checked by the server (amplifier accounts).
step accounts env AMPLIFIER_CONFIG=/secret-campaigns/all/schedule.yaml AMPLIFIER_STATE=/tmp/state-all \
    amplifier accounts --format json

# The health check after a real pass at a quiet instant: healthy with every secret readable...
mkdir -p -m 0700 /tmp/state-ok /tmp/state-all
step run-ok env AMPLIFIER_CONFIG=/secret-campaigns/ok/schedule.yaml AMPLIFIER_STATE=/tmp/state-ok \
    amplifier run --once --now "$quiet"
step check-ok env AMPLIFIER_CONFIG=/secret-campaigns/ok/schedule.yaml AMPLIFIER_STATE=/tmp/state-ok \
    amplifier status --check --format json --now 2026-11-20T12:01
# ... never while a secret is missing or unreadable.
step run-all env AMPLIFIER_CONFIG=/secret-campaigns/all/schedule.yaml AMPLIFIER_STATE=/tmp/state-all \
    amplifier run --once --now "$quiet"
step check-all env AMPLIFIER_CONFIG=/secret-campaigns/all/schedule.yaml AMPLIFIER_STATE=/tmp/state-all \
    amplifier status --check --format json --now 2026-11-20T12:01
exit 0

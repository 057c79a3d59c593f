#!/usr/bin/env bash
# Removes everything the tests create: containers, compose projects, networks and images
# whose names start with dwtest. Safe to run any time; touches nothing else.
set -uo pipefail
ids=$(docker ps -aq --filter 'name=^/?dwtest' 2>/dev/null)
[ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
ids=$(docker ps -aq --filter 'label=com.docker.compose.project' 2>/dev/null | while read -r id; do
  p=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.project"}}' "$id" 2>/dev/null)
  case "$p" in dwtest*) echo "$id" ;; esac
done)
[ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1
nets=$(docker network ls -q --filter 'name=^dwtest' 2>/dev/null)
[ -n "$nets" ] && docker network rm $nets >/dev/null 2>&1
imgs=$(docker images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep '^dwtest' || true)
[ -n "$imgs" ] && docker rmi -f $imgs >/dev/null 2>&1
exit 0

#!/usr/bin/env bash
# Debian's docker-compose (v1) validates docker-compose.yaml in tests without a Docker engine.
set -u
command -v docker-compose >/dev/null 2>&1 && exit 0
export DEBIAN_FRONTEND=noninteractive
{ apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1 \
  || { apt-get update -qq && apt-get install -y --no-install-recommends docker-compose >/dev/null 2>&1; }; } \
  || echo "docker-compose could not be installed: test_compose.py skips its 'config' check"
exit 0

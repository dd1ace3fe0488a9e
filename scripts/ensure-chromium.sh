#!/usr/bin/env bash
# Install Debian's headless Chromium for the report screenshot test, if it is missing and we are root.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium (report screenshot test)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "chromium could not be installed: the screenshot test will be skipped"
else
  echo "chromium missing and not root: the screenshot test will be skipped"
fi
exit 0

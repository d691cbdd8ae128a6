#!/usr/bin/env bash
# Debian packages of the real peers the suites run against (monitoring systems, PostgreSQL,
# the BMC simulator ipmi_sim and the ClusterLabs fence agents).
# Installs only what is missing; needs root. Nothing is started here: the tests start their
# own daemons on 127.0.0.1. The real Nova installs itself (python -m tests.realnova.novalab install).
set -euo pipefail

packages=(prometheus-alertmanager prometheus prometheus-node-exporter
          nagios4-core monitoring-plugins-basic icinga2-bin icinga2-common
          zabbix-server-pgsql zabbix-frontend-php php-pgsql php-cli postgresql zabbix-agent curl
          openipmi ipmitool fence-agents)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "install_peers: root needed to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Debian's postinst scripts would start system-wide daemons (on 0.0.0.0); a policy-rc.d that
# answers 101 forbids that during the install.
made_policy=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    made_policy=1
fi
trap 'if [[ -n $made_policy ]]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install_peers: installed ${missing[*]}"

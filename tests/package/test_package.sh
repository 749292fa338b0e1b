#!/usr/bin/env bash
# The Debian package, end to end: builds it (cmake --build BUILD --target package), checks its
# name, control fields and Depends: (against the libraries the binary links), runs lintian
# (no E: allowed), installs it with dpkg -i on this machine, runs the installed amqp-gw
# (--version, check -c /etc/amqp-gw/amqp-gw.yaml, also as an unprivileged user), reads both
# man pages (man -l, man --warnings, lexgrog), verifies the systemd unit (systemd-analyze
# verify, and security --offline=yes with an exposure of 2.0 or lower), then purges the
# package and checks that nothing of it is left. The purge runs on failure too.
#
#   tests/package/test_package.sh [BUILD-DIR]     (default: <repo>/build, already configured)
#
# Needs root (or sudo) for dpkg, and lintian, systemd (systemd-analyze), man-db and file
# (scripts/bootstrap installs them). No broker, no running systemd. Refuses to run when an
# amqp-gw package is installed already: it would replace it and then purge it. Prints one
# line per check and closes with "package: N checks passed, N failed"; exits 1 if any failed.
# shellcheck disable=SC2015  # `COND && ok ... || fail ...`: ok always succeeds
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
BUILD=${1:-$REPO/build}
MAX_EXPOSURE=2.0
PKG=amqp-gw

n_ok=0
n_failed=0
ok() {
  n_ok=$((n_ok + 1))
  echo "package: ok   $*"
}
fail() {
  n_failed=$((n_failed + 1))
  echo "package: FAIL $*"
}
die() { # a failure the rest cannot run after
  fail "$*"
  exit 1
}

# Everything the package ships (and the directories it creates): none may be left after purge.
SHIPPED=(/usr/bin/amqp-gw /etc/amqp-gw /etc/default/amqp-gw /lib/systemd/system/amqp-gw.service
  /usr/share/man/man1/amqp-gw.1.gz /usr/share/man/man5/amqp-gw.yaml.5.gz /usr/share/doc/amqp-gw
  /usr/share/lintian/overrides/amqp-gw)
SUDO=()
installed_status() { dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true; }
not_installed() { [[ -z "$(installed_status)" || "$(installed_status)" == "unknown ok not-installed" ]]; }
we_installed=0
purge() {
  [[ $we_installed -eq 1 ]] || return 0
  we_installed=0
  if "${SUDO[@]}" dpkg --purge "$PKG" >/dev/null; then
    ok "dpkg --purge $PKG"
  else
    fail "dpkg --purge $PKG exited non-zero"
  fi
  local left=() p
  for p in "${SHIPPED[@]}"; do
    [[ -e "$p" ]] && left+=("$p")
  done
  if [[ ${#left[@]} -eq 0 ]] && not_installed; then
    ok "nothing left after purge"
  else
    fail "left after purge: ${left[*]:-} (dpkg status: $(installed_status))"
  fi
}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/amqp-gw-package.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
finish() {
  local rc=$?
  purge
  rm -rf "$OUT"
  echo "package: $n_ok checks passed, $n_failed failed"
  [[ $rc -eq 0 && $n_failed -eq 0 ]] || exit 1
  exit 0
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "dpkg -i needs root: run as root or with sudo available"
  SUDO=(sudo)
fi
for tool in dpkg-deb dpkg-shlibdeps lintian systemd-analyze man lexgrog readelf file setpriv flock; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found: run scripts/bootstrap (it installs lintian, systemd, man-db, file, dpkg-dev)"
done
[[ -f "$BUILD/CMakeCache.txt" ]] || die "$BUILD is not a configured build: cmake -S $REPO -B $BUILD"

# Two runs on one machine would install over each other: take turns.
LOCK=${TMPDIR:-/tmp}/amqp-gw-package-test.lock
exec 9>"$LOCK"
flock -w 600 9 || die "another package test held $LOCK for 10 minutes"

if ! not_installed; then
  die "package $PKG is already on this machine ($(installed_status)): this test installs and then purges its own build, so it does not run over it; remove it first (dpkg --purge $PKG)"
fi

# --- build ----------------------------------------------------------------------------------
if ! cmake --build "$BUILD" --target package >"$OUT/build.log" 2>&1; then
  cat "$OUT/build.log"
  die "cmake --build $BUILD --target package failed"
fi
version=$("$BUILD/amqp-gw" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
DEB="$BUILD/${PKG}_${version}_${arch}.deb"
[[ -f "$DEB" ]] || die "expected $DEB (amqp-gw_<version>_<arch>.deb), found: $(ls "$BUILD"/*.deb 2>/dev/null)"
ok "built $(basename "$DEB")"

# --- control fields -------------------------------------------------------------------------
field() { dpkg-deb -f "$DEB" "$1"; }
[[ "$(field Package)" == "$PKG" && "$(field Version)" == "$version" &&
  "$(field Architecture)" == "$arch" ]] &&
  ok "Package/Version/Architecture: $PKG $version $arch" ||
  fail "Package/Version/Architecture: $(field Package) $(field Version) $(field Architecture)"
for f in Maintainer Section Priority Description; do
  [[ -n "$(field "$f")" ]] && ok "$f: $(field "$f" | head -n 1)" || fail "no $f: field"
done

# Every library the binary links (its NEEDED entries) must come from a package in Depends:.
depends=$(field Depends)
dep_names=" $(echo "$depends" | tr ',' '\n' | sed -E 's/^ *//; s/[ (].*//' | paste -sd' ' -) "
missing=()
while read -r soname; do
  path=$(ldd "$BUILD/amqp-gw" | awk -v s="$soname" '$1 == s {print $3}')
  [[ -n "$path" ]] || { missing+=("$soname (not found by ldd)"); continue; }
  owner=""
  for cand in "$path" "$(readlink -f "$path")"; do # dpkg knows one of /lib/... and /usr/lib/...
    owner=$(dpkg -S "$cand" 2>/dev/null | head -n 1 | cut -d: -f1 || true)
    [[ -z "$owner" ]] || break
  done
  [[ -n "$owner" && "$dep_names" == *" $owner "* ]] || missing+=("$soname (${owner:-no package})")
done < <(readelf -d "$BUILD/amqp-gw" | sed -n -E 's/.*\(NEEDED\).*\[(.*)\]/\1/p')
for lib in librabbitmq4 libyaml-0-2 libcjson1 libmicrohttpd12 libcurl4; do
  [[ "$dep_names" == *" $lib "* ]] || missing+=("$lib")
done
[[ ${#missing[@]} -eq 0 ]] && ok "Depends: $depends" ||
  fail "Depends: $depends lacks ${missing[*]}"

conffiles=$(dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles)
for c in /etc/amqp-gw/amqp-gw.yaml /etc/amqp-gw/routes.yaml /etc/default/amqp-gw; do
  grep -qx "$c" <<<"$conffiles" && ok "conffile $c" || fail "$c is not a conffile"
done

# --- lintian --------------------------------------------------------------------------------
# lintian exits 1 when it reports an error (E:), 2 when it could not check the package.
lint_rc=0
lintian --allow-root --info --display-info "$DEB" >"$OUT/lintian" 2>&1 || lint_rc=$?
grep -v '^N:' "$OUT/lintian" || true
n_e=$(grep -c '^E: ' "$OUT/lintian" || true)
n_w=$(grep -c '^W: ' "$OUT/lintian" || true)
n_i=$(grep -c '^I: ' "$OUT/lintian" || true)
if [[ $n_e -eq 0 && $lint_rc -eq 0 ]]; then
  ok "lintian: $n_e errors, $n_w warnings, $n_i info"
else
  fail "lintian (exit $lint_rc): $n_e errors, $n_w warnings, $n_i info (above)"
fi

# --- install --------------------------------------------------------------------------------
we_installed=1 # from here on, purge on exit (even if dpkg -i half-fails)
if "${SUDO[@]}" dpkg -i "$DEB" >"$OUT/dpkg" 2>&1; then
  ok "dpkg -i $(basename "$DEB")"
else
  cat "$OUT/dpkg"
  die "dpkg -i failed"
fi

got=$(/usr/bin/amqp-gw --version 2>&1) || true
[[ "$got" == "amqp-gw $version" ]] && ok "/usr/bin/amqp-gw --version: $got" ||
  fail "/usr/bin/amqp-gw --version printed '$got', expected 'amqp-gw $version'"

# The shipped config as the service runs it: no AMQP_GW_* from the caller's environment, and
# read by an unprivileged user (the unit's DynamicUser= is one).
clean_env=(env -u AMQP_GW_URL -u AMQP_GW_USER -u AMQP_GW_PASSWORD -u AMQP_GW_CONFIG)
if out=$("${clean_env[@]}" /usr/bin/amqp-gw check -c /etc/amqp-gw/amqp-gw.yaml 2>&1); then
  ok "amqp-gw check -c /etc/amqp-gw/amqp-gw.yaml: ${out//$'\n'/ }"
else
  fail "amqp-gw check -c /etc/amqp-gw/amqp-gw.yaml: $out"
fi
if out=$("${SUDO[@]}" setpriv --reuid=65534 --regid=65534 --clear-groups "${clean_env[@]}" \
  /usr/bin/amqp-gw check -c /etc/amqp-gw/amqp-gw.yaml 2>&1); then
  ok "the same check as uid 65534"
else
  fail "the same check as uid 65534: $out"
fi
out=$("${clean_env[@]}" /usr/bin/amqp-gw explain -c /etc/amqp-gw/amqp-gw.yaml order.created 2>&1) || true
grep -q "routes.yaml" <<<"$out" && ok "explain names /etc/amqp-gw/routes.yaml" ||
  fail "explain does not route with /etc/amqp-gw/routes.yaml: $out"
mode=$(stat -c '%a %U' /etc/default/amqp-gw)
[[ "$mode" == "600 root" ]] && ok "/etc/default/amqp-gw is 600 root" ||
  fail "/etc/default/amqp-gw is $mode, not 600 root (it holds the broker password)"

# --- man pages ------------------------------------------------------------------------------
# The installed pages; on a machine whose dpkg leaves /usr/share/man out (path-exclude, as in
# slim container images) the same files from the .deb.
dpkg-deb -x "$DEB" "$OUT/deb"
check_man() { # PAGE-FILE NAME SECTION-HEADINGS...
  local page=$1 name=$2
  shift 2
  local text warnings lex
  if [[ ! -e "$page" ]]; then
    echo "package: $page was not installed (dpkg path-exclude?): checking the .deb's copy"
    page="$OUT/deb$page"
  fi
  text=$(MANWIDTH=80 man -l "$page" 2>/dev/null) || true
  local absent=()
  for h in "$@"; do
    grep -q "^$h" <<<"$text" || absent+=("$h")
  done
  [[ -n "$text" && ${#absent[@]} -eq 0 ]] && ok "man -l $page: $(wc -l <<<"$text") lines" ||
    fail "man -l $page lacks: ${absent[*]:-its text}"
  warnings=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null) || true
  [[ -z "$warnings" ]] && ok "man --warnings $page: none" || fail "man --warnings $page: $warnings"
  if lex=$(lexgrog "$page" 2>&1) && grep -q ": \"$name - " <<<"$lex"; then
    ok "lexgrog: ${lex#*: }"
  else
    fail "lexgrog $page: $lex"
  fi
  if [[ "$page" != "$OUT"/* ]]; then
    man -w "$name" >/dev/null 2>&1 && ok "man -w $name finds it" || fail "man -w $name finds nothing"
  fi
}
check_man /usr/share/man/man1/amqp-gw.1.gz amqp-gw NAME SYNOPSIS COMMANDS OPTIONS SIGNALS \
  "EXIT STATUS" ENVIRONMENT FILES
check_man /usr/share/man/man5/amqp-gw.yaml.5.gz amqp-gw.yaml NAME "GATEWAY CONFIG" \
  "ROUTING TABLE" ENVIRONMENT
page5=$(MANWIDTH=80 man -l "$OUT/deb/usr/share/man/man5/amqp-gw.yaml.5.gz" 2>/dev/null || true)
for key in forward_headers queue_type routes_file contract versions version_from type_from; do
  grep -q "$key" <<<"$page5" || fail "amqp-gw.yaml(5) does not mention $key"
done

# --- the systemd unit -----------------------------------------------------------------------
UNIT=/lib/systemd/system/amqp-gw.service
# shellcheck disable=SC2016  # $MAINPID is literal: systemd expands it
for line in "ExecStart=/usr/bin/amqp-gw run -c /etc/amqp-gw/amqp-gw.yaml" \
  'ExecReload=/bin/kill -HUP $MAINPID' Restart=on-failure DynamicUser=yes \
  ProtectSystem=strict ProtectHome=yes NoNewPrivileges=yes PrivateTmp=yes CapabilityBoundingSet= \
  SystemCallFilter=@system-service "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" \
  EnvironmentFile=-/etc/default/amqp-gw; do
  grep -qxF "$line" "$UNIT" || fail "$UNIT has no line '$line'"
done
if out=$(systemd-analyze verify "$UNIT" 2>&1); then
  ok "systemd-analyze verify $UNIT${out:+ ($out)}"
else
  fail "systemd-analyze verify $UNIT: $out"
fi
systemd-analyze security --offline=yes "$UNIT" >"$OUT/security" 2>&1 || true
exposure=$(sed -n -E 's/.*Overall exposure level for amqp-gw\.service: ([0-9.]+).*/\1/p' "$OUT/security")
if [[ -z "$exposure" ]]; then
  cat "$OUT/security"
  fail "systemd-analyze security --offline=yes printed no exposure level"
elif awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }'; then
  ok "systemd-analyze security --offline=yes: exposure $exposure (<= $MAX_EXPOSURE) $(grep -o 'OK\|MEDIUM\|EXPOSED\|UNSAFE' "$OUT/security" | tail -n 1)"
else
  grep '✗' "$OUT/security" || true
  fail "systemd-analyze security --offline=yes: exposure $exposure > $MAX_EXPOSURE"
fi

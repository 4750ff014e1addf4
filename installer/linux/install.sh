#!/bin/sh
# Installs lojad as a systemd service on a Linux store PC.
#
#   sudo installer/linux/install.sh [PATH/TO/lojad] -- [lojad init options]
#
# e.g. sudo installer/linux/install.sh target/release/lojad -- \
#        --central-url https://retaguarda.example.com.br --store-id loja-0042 --store-token XXXX
#
# Creates the system user `loja`, copies the binary to /usr/local/bin/lojad,
# writes /etc/loja/lojad.toml with `lojad init --system` if there is no config
# yet (the POS token it generates is printed once: note it), installs the unit
# /etc/systemd/system/lojad.service, then enables and starts it.
# Idempotent: run it again to upgrade the binary (the config is kept).
set -eu

BIN_SRC="${1:-./lojad}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift

BIN=/usr/local/bin/lojad
CONFIG=/etc/loja/lojad.toml
DATA=/var/lib/loja

if [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo)" >&2
    exit 2
fi
if [ ! -x "$BIN_SRC" ]; then
    echo "install.sh: $BIN_SRC is not an executable lojad binary" >&2
    exit 2
fi

if ! id loja >/dev/null 2>&1; then
    useradd --system --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin loja
fi

install -m 0755 "$BIN_SRC" "$BIN.new"
mv -f "$BIN.new" "$BIN"

install -d -m 0750 -o loja -g loja "$DATA"
install -d -m 0750 -o root -g loja /etc/loja

if [ ! -f "$CONFIG" ]; then
    "$BIN" init --system --config "$CONFIG" --data-dir "$DATA" "$@"
fi
chown root:loja "$CONFIG"
chmod 0640 "$CONFIG"

# The unit, rendered with these paths, then daemon-reload, enable, start.
"$BIN" --config "$CONFIG" service install

echo "lojad installed. Check it with: lojad --config $CONFIG status   and   lojad --config $CONFIG doctor"

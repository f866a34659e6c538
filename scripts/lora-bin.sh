# shellcheck shell=sh
# Sourced (. scripts/lora-bin.sh, from the repository root) by the scripts and shell tests.
# Sets BIN, and nothing else, to the directory holding lora and its lora-* links, from
# $LORA_BIN: that directory, or the lora binary itself (mk/asan.mk sets
# LORA_BIN=.../build/asan/bin/lora); default bin. A relative path stays relative.
BIN=${LORA_BIN:-bin}
if [ -f "$BIN" ]; then BIN=$(dirname "$BIN"); fi

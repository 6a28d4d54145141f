# Sourced by register.sh and soak.sh: import the bench users once.
#
# bench_import_users: reads $CSV (SIPp's "user;password;" after a header
# line), imports it with $BIN into $UCW/pristine for $DOMAIN unless the
# same CSV was already imported there, and sets PRISTINE. The import uses
# cheap Argon2id (IMPORT_ARGON2_MEMORY/TIME/PARALLELISM, default 1024/1/1)
# and a minimum password length of 8: bench-only hashes; Digest never
# touches Argon2. Needs log() from the sourcing script.
bench_import_users() {
  PRISTINE="$UCW/pristine"
  local mark="$PRISTINE/imported.txt" want out import_csv
  want="csv_md5=$(md5sum < "$CSV" | cut -d' ' -f1) domain=$DOMAIN"
  if [ -f "$mark" ] && [ "$(head -1 "$mark")" = "$want" ]; then
    log "users already imported into $PRISTINE ($(sed -n 2p "$mark"))"
    return 0
  fi
  rm -rf "$PRISTINE"; mkdir -p "$PRISTINE"
  import_csv="$UCW/import.csv"
  { echo "username,password"; awk -F';' 'NR > 1 && NF >= 2 { print $1 "," $2 }' "$CSV"; } > "$import_csv"
  log "importing users into $PRISTINE (Argon2id m=${IMPORT_ARGON2_MEMORY:-1024} t=${IMPORT_ARGON2_TIME:-1} p=${IMPORT_ARGON2_PARALLELISM:-1}: bench-only hashes)"
  if ! out="$(USERS_CORE_PASSWORD_ARGON2_MEMORY_COST="${IMPORT_ARGON2_MEMORY:-1024}" \
      USERS_CORE_PASSWORD_ARGON2_TIME_COST="${IMPORT_ARGON2_TIME:-1}" \
      USERS_CORE_PASSWORD_ARGON2_PARALLELISM="${IMPORT_ARGON2_PARALLELISM:-1}" \
      USERS_CORE_PASSWORD_MIN_LENGTH=8 \
      "$BIN" user import "$import_csv" --data-dir "$PRISTINE" --domain "$DOMAIN" --log-format json 2>&1)"; then
    log "import failed: $out"; rm -rf "$PRISTINE"; return 1
  fi
  log "$out"
  { echo "$want"; echo "$out"; } > "$mark"
}

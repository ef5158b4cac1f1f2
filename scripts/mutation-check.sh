#!/usr/bin/env bash
# Breaks the code on purpose, one mutation at a time, and checks that the
# tests notice. Each mutation is undone afterwards (git checkout of the file).
# Usage: bash scripts/mutation-check.sh   (takes a few minutes; not part of CI)
set -uo pipefail
cd "$(dirname "$0")/.."
if ! git diff --quiet; then echo "commit or stash your changes first"; exit 2; fi

# file | sed expression | package | description
mutations=(
  "shared/crypto/src/merkle.rs|s/sha256_parts(\&\[\&\[0x01\], \&left.0, \&right.0\])/sha256_parts(\&[\&[0x02], \&left.0, \&right.0])/|glucochain-crypto|Merkle node prefix 0x01 -> 0x02"
  "shared/crypto/src/merkle.rs|0,/r = node_hash(p, \&r);/s//r = node_hash(\&r, p);/|glucochain-crypto|inclusion verification hashes in the wrong order"
  "shared/crypto/src/domain.rs|s/v.push(0);/v.clear();/|glucochain-crypto|domain tag dropped from signed bytes"
  "shared/crypto/src/jose.rs|s/if self.header.typ.as_deref() != Some(expected) {/if false {/|glucochain-crypto|JWS typ not checked"
  "shared/crypto/src/jose.rs|s/if now >= claims.exp + policy.leeway_secs {/if false {/|glucochain-crypto|token expiry not checked"
  "shared/types/src/block.rs|s/(power as u128) \* 3 > (self.total_power() as u128) \* 2/(power as u128) * 3 >= (self.total_power() as u128) * 2/|glucochain-types|quorum of exactly 2/3 accepted"
  "shared/types/src/block.rs|s/if !seen.insert(\&s.validator) {/if false \&\& !seen.insert(\&s.validator) {/|glucochain-types|duplicate certificate signers counted"
  "shared/types/src/tx.rs|s/#\[serde(deny_unknown_fields)\]\nstruct RawPayload/struct RawPayload/;s/^#\[serde(deny_unknown_fields)\]$/#[serde()]/|glucochain-types|unknown fields accepted"
  "shared/store/src/chain.rs|s/Some(h) if h == b.hash => return Ok(InsertOutcome::AlreadyPresent),/Some(_) => return Ok(InsertOutcome::AlreadyPresent),/|glucochain-store|a forked block treated as a redelivery"
  "shared/crypto/src/keys.rs|s/if mode \& 0o077 != 0 {/if mode \& 0o007 != 0 {/|glucochain-crypto|group-readable key files accepted"
)

caught=0; missed=0
for m in "${mutations[@]}"; do
  IFS='|' read -r file expr pkg what <<<"$m"
  cp "$file" /tmp/mutation.bak
  sed -i "$expr" "$file"
  if cmp -s "$file" /tmp/mutation.bak; then
    echo "SKIP   $what (pattern not found in $file)"; continue
  fi
  if cargo test -q -p "$pkg" >/tmp/mutation.log 2>&1; then
    echo "MISSED $what"; missed=$((missed+1))
  else
    echo "CAUGHT $what"; caught=$((caught+1))
  fi
  git checkout -q -- "$file"
done
echo "$caught caught, $missed missed"
[ "$missed" = 0 ]

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
  # Issue 19: the checks its findings added.
  "shared/state/src/contracts.rs|s/Role::Clinician \x7c Role::Lab) \x7c\x7c who.institution/Role::Clinician \x7c Role::Lab \x7c Role::Patient) \x7c\x7c who.institution/|glucochain-state|C1: an institution's patients covered by its consents"
  "shared/state/src/lib.rs|s/if r.institution.is_some() \&\& !r.role.may_belong_to_institution() {/if false {/|glucochain-state|C1: any role may name an institution"
  "shared/state/src/contracts.rs|s/            (Some(person), Role::Notifier) => {/            (Some(person), _) => {/|glucochain-state|M4: any service relays acknowledgements"
  "shared/state/src/contracts.rs|s/            if a.entries < last.entries {/            if false {/|glucochain-state|M7: audit checkpoints may go backwards"
  "shared/state/src/contracts.rs|s/        if !held {/        if false {/|glucochain-state|M1: break-glass without the card"
  "shared/state/src/contracts.rs|s/if recent >= EMERGENCY_MAX_PER_WINDOW {/if false {/|glucochain-state|M1: break-glass without a daily limit"
  "shared/state/src/contracts.rs|s/            if !self.channels_declared(\&c.participant, \&c.channels) {/            if false {/|glucochain-state|H4: a care plan names undeclared channels"
  "shared/state/src/contracts.rs|s/ReadDecision::Scoped { reason, .. } if decision.covers_type(RecordType::Careplan) =>/ReadDecision::Scoped { reason, .. } =>/|glucochain-state|M6: any read consent opens the care plan"
  "shared/state/src/contracts.rs|s/                    \x7c\x7c self.effects.contracts.emergency.values().any(in_use)//|glucochain-state|low: one card for two patients in one block"
  "shared/types/src/tx.rs|s/k == code \&\& system.as_deref() == Some(s)/k == code/|glucochain-types|M6: scope codes compared without their system"
  "shared/types/src/tx.rs|s/        check_bounds(\&mut \"body\".to_string(), \&raw.body, limits)?;//|glucochain-types|low: unbounded text fields"
  "shared/crypto/src/jose.rs|s/if claims.chain_id != policy.chain_id {/if false {/|glucochain-crypto|M2: tokens of another chain accepted"
  "services/ingest/src/rejections.rs|s/if !votes.decided \&\& u128::from(votes.power) \* 3 > u128::from(set.total_power()) {/if !votes.decided {/|glucochain-ingest|M9: one validator's rejection believed"
  "services/notifier/src/sms_reply.rs|s/if (now - t).abs() > MAX_SKEW_SECS {/if false {/|glucochain-notifier|M5: old SMS replies replayed"
  "services/ledger/src/api.rs|s/    if d.height < min_height {/    if false {/|glucochain-ledger|M3: stale access decisions used"
  "services/contracts/src/engine.rs|s/    if height < req.min_height {/    if false {/|glucochain-contracts|M3: the engine answers from older state"
  "shared/bus/src/access.rs|s/DURABLES.iter().filter(\x7c(s, _)\x7c \*s == stream)/DURABLES.iter().filter(\x7c_\x7c false)/|glucochain-bus|M9: run-time consumers may borrow others' durables"
  "shared/store/src/sessions.rs|s/if spent == 0 {/if false {/|glucochain-store|M2: a sign-in token opens many sessions"
  "shared/web/src/page.rs|s/return matches!(site, \"same-origin\" \x7c \"none\");/return true;/|glucochain-web|low: cross-site requests pass"
  # Issue 20: the severe-low guarantee, repeats and snoozes.
  "shared/detect/src/lib.rs|s/^        if g < t.urgent_low {/        if !held \&\& g < t.urgent_low {/|glucochain-detect|the compression hold holds urgent lows"
  "shared/detect/src/lib.rs|s/^                AlertKind::VeryHigh => covered(/                AlertKind::Low => covered(\&[AlertKind::PredictedLow], 60, \&kept, \&self.last_fired),\n                AlertKind::VeryHigh => covered(/|glucochain-detect|a low folded into its prediction"
  "shared/detect/src/lib.rs|s/if g <= SENSOR_FLOOR {/if false {/|glucochain-detect|39 not said to be the sensor's LOW"
  "shared/detect/src/lib.rs|s/let real = c.falls >= 2 \x7c\x7c /let real = /|glucochain-detect|a step that keeps falling waits for the hold"
  "shared/detect/src/lib.rs|s/if g < t.low \&\& (previous_below(t.low) \x7c\x7c self.falling_steadily(3)) {/if g < t.low \&\& previous_below(t.low) {/|glucochain-detect|a low needs two readings even at the end of a fall"
  "shared/types/src/tx.rs|s/AlertRepeat { urgent_minutes: 15, warning_minutes: 30 }/AlertRepeat { urgent_minutes: 5, warning_minutes: 30 }/|glucochain-notifier|urgent alerts repeat every 5 minutes again"
  "services/notifier/src/policy.rs|s/Level::Urgent => \&\[15, 30\],/Level::Urgent => \&[15, 30, 240],/|glucochain-notifier|urgent alerts snoozed for hours"
  "shared/detect/src/treatments.rs|s/let isf = profile.sensitivity_mg_dl_per_u;/let isf = 0.0;/|glucochain-detect|recorded insulin ignored by the forecast"
  "shared/detect/src/treatments.rs|s/let csf = isf \/ profile.carb_ratio_g_per_u;/let csf = 0.0;/|glucochain-detect|recorded carbohydrates ignored by the forecast"
  "shared/detect/src/lib.rs|s/let trend_limit = if forecast.is_some() { t.urgent_low } else { t.low };/let trend_limit = if forecast.is_some() { 0.0 } else { t.low };/|glucochain-detect|the trend's coming severe low silenced by the record"
  # Issue 21: who may erase.
  "shared/state/src/contracts.rs|s/            Role::Admin if e.request.is_none() => {/            Role::Admin if false => {/|glucochain-state|an admin erases without a verified request"
  "shared/state/src/lib.rs|s/let erasing_for_former = signer_role == Role::Admin \&\& matches!(tx.payload.body, TxBody::RecordErase(_));/let erasing_for_former = signer_role != Role::Patient;/|glucochain-state|former patients' records writable by anyone"
  # Issue 21: records off the chain.
  "shared/types/src/sealed.rs|0,/        if payload.body.body_commitment() != Some(\&commit(\&salt, \&canonical)) {/s//        if false {/|glucochain-types|a sealed body that is not the committed one accepted"
  "shared/types/src/sealed.rs|s/                if expected.count != env.count {/                if false {/|glucochain-types|a body with more observations than its envelope accepted"
  "shared/vault/src/record_vault.rs|s/            \&\& r.patient == patient$/            \&\& !r.patient.is_empty()/|glucochain-vault|an erasure reaches another patient's record"
  "shared/vault/src/replica.rs|s/            self.purge(\&format!(\"emr.vault.rec.{p}.{c}.{}\", token(tx)?)).await?;/            self.purge(\&format!(\"emr.vault.rec.{p}.{c}.>\")).await?;/|glucochain-vault|a replayed class erasure purges records written after it"
  "shared/store/src/vault.rs|s/WHERE COALESCE((SELECT e.epoch FROM vault_epoch e/WHERE 1 = 1 OR COALESCE((SELECT e.epoch FROM vault_epoch e/|glucochain-vault|a writer's remembered data key used after an erasure destroyed it"
  # Late double votes (the byzantine cluster test failed on a busy CI box).
  "shared/consensus/src/node.rs|s/            \&\& let ConsensusMessage::Vote(v) = msg$/            \&\& false \&\& let ConsensusMessage::Vote(v) = msg/|glucochain-consensus|double votes arriving after the decision dropped as stale"
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

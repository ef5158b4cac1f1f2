#!/usr/bin/env python3
"""JOSE interoperability between GlucoChain and an independent implementation (joserfc).

Two jobs:

  make-fixtures OUT.json   Sign transactions and read tokens with joserfc, using a
                           fixed TEST-ONLY key, and write them with the public key.
                           The Rust tests verify these with our implementation.
  verify                   Read JSON lines {"jws", "x", "typ", "kind"} on stdin, each
                           made by our implementation, verify them with joserfc and
                           print one JSON line {"ok": bool, "error": str} per input.

Nothing here is secret: the fixture key is derived from a public constant.
"""
import json
import sys
import warnings

from joserfc import jws, jwt
from joserfc.jwk import OKPKey

warnings.filterwarnings("ignore")  # joserfc warns that EdDSA is deprecated by RFC 9864

# RFC 8032 test 1 secret key: public knowledge, never a real key.
TEST_SEED_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"


def b64u(b: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def fixture_key() -> OKPKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    sk = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(TEST_SEED_HEX))
    return OKPKey.import_key(sk)


def make_fixtures(out_path: str) -> None:
    key = fixture_key()
    kid = "pfixture"
    payload = json.dumps({
        "type": "observation.record",
        "chain_id": "glucochain-interop",
        "nonce": "n-1",
        "created_at": "2026-11-25T08:00:00Z",
        "patient": "pfixturepatient",
        "body": {"data_class": "private", "observations": []},
    }, separators=(",", ":")).encode()
    tx_ed25519 = jws.serialize_compact(
        {"alg": "Ed25519", "typ": "emr-tx+jws", "kid": kid}, payload, key, algorithms=["Ed25519"])
    tx_eddsa = jws.serialize_compact(
        {"alg": "EdDSA", "typ": "emr-tx+jws", "kid": kid}, payload, key, algorithms=["EdDSA"])
    iat = 1_800_000_000
    token = jwt.encode(
        {"alg": "Ed25519", "typ": "emr-auth+jwt", "kid": kid},
        {"iss": kid, "aud": "glucochain-ledger", "iat": iat, "exp": iat + 120, "jti": "fixture-1",
         "chain_id": "glucochain-test"},
        key, algorithms=["Ed25519"])
    # A token typed as a transaction must be refused by a token verifier.
    token_as_tx = jwt.encode(
        {"alg": "Ed25519", "typ": "emr-tx+jws", "kid": kid},
        {"iss": kid, "aud": "glucochain-ledger", "iat": iat, "exp": iat + 120, "jti": "fixture-2",
         "chain_id": "glucochain-test"},
        key, algorithms=["Ed25519"])
    x = key.as_dict()["x"]
    out = {
        "note": "Made by tests/interop/jose_interop.py with joserfc; TEST-ONLY key (RFC 8032 test 1).",
        "kid": kid,
        "public_key_x": x,
        "payload": payload.decode(),
        "tx_ed25519": tx_ed25519,
        "tx_eddsa": tx_eddsa,
        "token": token,
        "token_iat": iat,
        "token_as_tx": token_as_tx,
    }
    with open(out_path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def verify() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        key = OKPKey.import_key({"kty": "OKP", "crv": "Ed25519", "x": req["x"]})
        try:
            header = json.loads(__import__("base64").urlsafe_b64decode(req["jws"].split(".")[0] + "=="))
            algs = [header.get("alg")]
            if req["kind"] == "token":
                tok = jwt.decode(req["jws"], key, algorithms=algs)
                if tok.header.get("typ") != req["typ"]:
                    raise ValueError("typ mismatch")
                jwt.JWTClaimsRegistry(iss={"essential": True}, aud={"essential": True}).validate(tok.claims)
            else:
                obj = jws.deserialize_compact(req["jws"], key, algorithms=algs)
                if obj.headers().get("typ") != req["typ"]:
                    raise ValueError("typ mismatch")
            print(json.dumps({"ok": True, "error": ""}))
        except Exception as e:  # noqa: BLE001 - report any refusal
            print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "make-fixtures":
        make_fixtures(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "verify":
        verify()
    else:
        sys.exit(__doc__)

"""Writes a TUF repository with python-tuf that carries tuf-on-ci's quirks, for tests/it/tuf_quirks.rs.

    make_tuf_repo.py OUT_DIR TARGET_FILE [--plain]

OUT_DIR receives a consistent-snapshot repository (1.root.json, 2.root.json, timestamp.json,
N.snapshot.json, N.targets.json, N.sigstore.json, targets/<sha256>.trusted_root.json) whose
`trusted_root.json` target is TARGET_FILE. The quirks, as GitHub's tuf-on-ci repository has them:

- key IDs are sha256 over the key WITHOUT its `x-tuf-on-ci-*` fields, which the keys carry;
- timestamp and snapshot `meta` entries hold only `version` (no length, no hashes);
- the snapshot keeps an entry for a role that is no longer delegated;
- the target lives in a delegated targets role (`sigstore`), not in top-level targets, and that
  role expires first (in 2 days; everything else in 30);
- root v1 has expired and is rotated to v2 (new root keys, signed by the old and the new), so
  a client must update from an expired initial root.

With --plain none of the quirks are applied except consistent snapshots (a control).
Also writes timestamp.v2.json, a newer timestamp for the same snapshot (rollback tests).
Prints the path of the initial root (1.root.json).
"""

import hashlib
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer


def quirky_key(signer, owner, quirks):
    """The signer's public key; with quirks it also carries tuf-on-ci's extra fields, which
    its (unchanged) key ID does not cover."""
    key = signer.public_key
    if not quirks:
        return key
    return SSlibKey(
        key.keyid,
        key.keytype,
        key.scheme,
        key.keyval,
        {"x-tuf-on-ci-keyowner": owner, "x-tuf-on-ci-online-uri": "azurekms:https://example.vault"},
    )


def main():
    out, target_path = sys.argv[1], sys.argv[2]
    quirks = "--plain" not in sys.argv[3:]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    later = now + timedelta(days=30)
    os.makedirs(os.path.join(out, "targets"), exist_ok=True)
    serializer = JSONSerializer(compact=False)

    def write(md, name):
        md.to_file(os.path.join(out, name), serializer)

    old_root_signer = CryptoSigner.generate_ecdsa()
    new_root_signers = [CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ed25519()]
    online = CryptoSigner.generate_ecdsa()
    targets_signer = CryptoSigner.generate_ed25519()
    delegate = CryptoSigner.generate_ecdsa()

    # Root v1: expired when quirks are on.
    root = Root(expires=(now - timedelta(days=1)) if quirks else later, consistent_snapshot=True)
    root.add_key(quirky_key(old_root_signer, "@old-root", quirks), "root")
    for role in ("timestamp", "snapshot"):
        root.add_key(quirky_key(online, "@online", quirks), role)
    root.add_key(quirky_key(targets_signer, "@targets", quirks), "targets")
    root_md = Metadata(root)
    root_md.sign(old_root_signer)
    write(root_md, "1.root.json")

    if quirks:
        # Root v2: two new root keys (threshold 2), signed by v1's key and by both new ones.
        root.version = 2
        root.expires = later
        root.revoke_key(old_root_signer.public_key.keyid, "root")
        for i, signer in enumerate(new_root_signers):
            root.add_key(quirky_key(signer, f"@root-{i}", quirks), "root")
        root.roles["root"].threshold = 2
        root_md = Metadata(root)
        root_md.sign(old_root_signer, append=True)
        for signer in new_root_signers:
            root_md.sign(signer, append=True)
        write(root_md, "2.root.json")

    with open(target_path, "rb") as f:
        content = f.read()
    target = TargetFile.from_data("trusted_root.json", content, ["sha256"])
    digest = hashlib.sha256(content).hexdigest()
    with open(os.path.join(out, "targets", f"{digest}.trusted_root.json"), "wb") as f:
        f.write(content)

    targets = Targets(expires=later)
    if quirks:
        # The delegated role expires first (in 2 days): clients must count its expiry too.
        delegated = Targets(expires=now + timedelta(days=2))
        delegated.targets["trusted_root.json"] = target
        targets.delegations = Delegations(
            keys={delegate.public_key.keyid: quirky_key(delegate, "@sigstore", quirks)},
            roles={
                "sigstore": DelegatedRole(
                    name="sigstore",
                    keyids=[delegate.public_key.keyid],
                    threshold=1,
                    terminating=True,
                    paths=["*.json"],
                )
            },
        )
        delegated_md = Metadata(delegated)
        delegated_md.sign(delegate)
        write(delegated_md, "1.sigstore.json")
    else:
        targets.targets["trusted_root.json"] = target
    targets_md = Metadata(targets)
    targets_md.sign(targets_signer)
    write(targets_md, "1.targets.json")

    snapshot = Snapshot(expires=later)
    snapshot.meta["targets.json"] = MetaFile(version=1)
    if quirks:
        snapshot.meta["sigstore.json"] = MetaFile(version=1)
        snapshot.meta["retired-role.json"] = MetaFile(version=3)  # no longer delegated
    else:
        with open(os.path.join(out, "1.targets.json"), "rb") as f:
            snapshot.meta["targets.json"] = MetaFile(version=1, length=len(f.read()))
    snapshot_md = Metadata(snapshot)
    snapshot_md.sign(online)
    write(snapshot_md, "1.snapshot.json")

    timestamp = Timestamp(expires=later, snapshot_meta=MetaFile(version=1))
    timestamp_md = Metadata(timestamp)
    timestamp_md.sign(online)
    write(timestamp_md, "timestamp.json")
    # A newer timestamp (version 2) for rollback tests: serve it first, then the old one.
    timestamp.version = 2
    newer_md = Metadata(timestamp)
    newer_md.sign(online)
    write(newer_md, "timestamp.v2.json")
    print(os.path.join(out, "1.root.json"))


if __name__ == "__main__":
    main()
